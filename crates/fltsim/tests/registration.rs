//! Registration lifecycle, load/unload, and the verifier checks around them.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;
use common::*;
use fltsim::{CreateRequest, create, rule};
use portfilter_bindings::*;
use std::ptr::null_mut;
use std::sync::atomic::Ordering;

static mut BAD_REGISTRATION: FLT_REGISTRATION = REGISTRATION;
static UNTERMINATED: [FLT_OPERATION_REGISTRATION; 64] = [FLT_OPERATION_REGISTRATION {
    MajorFunction: IRP_MJ_CREATE,
    Flags: 0,
    PreOperation: None,
    PostOperation: None,
    Reserved1: null_mut(),
}; 64];

unsafe extern "system" fn register_bad(
    driver: PDRIVER_OBJECT,
    _p: *const UNICODE_STRING,
) -> NTSTATUS {
    let mut f = null_mut();
    // SAFETY: test driver; the registration is a valid static being probed.
    unsafe { FltRegisterFilter(driver, &raw const BAD_REGISTRATION, &mut f) }
}

fn try_registration(edit: impl FnOnce(&mut FLT_REGISTRATION)) -> NTSTATUS {
    let mut r = REGISTRATION;
    edit(&mut r);
    // SAFETY: the tests in this process are serialised by the machine lock.
    unsafe { BAD_REGISTRATION = r };
    fltsim::load_driver(register_bad)
        .err()
        .unwrap_or(STATUS_SUCCESS)
}

#[test]
fn register_filter_validates_size_version_and_operation_list() {
    let _m = boot(Config::default());
    assert_eq!(try_registration(|r| r.Size = 100), STATUS_INVALID_PARAMETER);
    assert_eq!(
        try_registration(|r| r.Version = 0x0300),
        STATUS_INVALID_PARAMETER
    );
    assert_eq!(
        try_registration(|r| r.OperationRegistration = UNTERMINATED.as_ptr()),
        STATUS_INVALID_PARAMETER
    );
    assert!(
        !fltsim::is_loaded(),
        "a failed DriverEntry unloads the image"
    );
}

#[test]
fn driver_entry_connect_disconnect_unload_leaves_zero_pool() {
    let m = boot(Config::default());
    fltsim::load_driver(driver_entry).unwrap();
    assert!(fltsim::is_loaded());
    let h = connect(b"hello");
    assert_eq!(send(h, b"Eping", &mut [0u8; 8]), (0, 5));
    assert!(close(h));
    fltsim::unload_driver().unwrap();
    assert!(!fltsim::is_loaded());
    assert_eq!(fltsim::kernel::pool::live_count(), 0);
    assert!(
        fltsim::kernel::pool::total_allocations() > 0,
        "the security descriptor came from pool"
    );
    assert!(seen().contains(&Seen::Unload { flags: 0 }));
    assert!(seen().contains(&Seen::TeardownStart));
    assert_eq!(m.shutdown(), vec![]);
}

#[test]
fn unload_refusal_is_returned_and_the_driver_stays_loaded() {
    let _m = boot_loaded(Config {
        unload_status: STATUS_FLT_DO_NOT_DETACH,
        ..Config::default()
    });
    assert_eq!(fltsim::unload_driver(), Err(STATUS_FLT_DO_NOT_DETACH));
    assert!(fltsim::is_loaded());
    let h = connect(&[]);
    close(h);
    // Let the guard's mandatory unload succeed.
    CONFIG.lock().as_mut().unwrap().unload_status = STATUS_SUCCESS;
}

/// `STATUS_FLT_DO_NOT_DETACH`.
const STATUS_FLT_DO_NOT_DETACH: NTSTATUS = 0xC01C_0010_u32 as i32;

#[test]
fn unload_without_unregister_is_a_violation() {
    let mut m = boot_loaded(Config {
        unregister_in_unload: false,
        ..Config::default()
    });
    m.expect_violation(rule::UNLOAD_WITHOUT_UNREGISTER);
    fltsim::unload_driver().unwrap();
    assert!(
        m.take_violations()
            .iter()
            .any(|v| v.rule == rule::UNLOAD_WITHOUT_UNREGISTER)
    );
}

#[test]
fn server_port_left_open_at_unregister_is_a_violation() {
    let mut m = boot_loaded(Config {
        close_server_port_in_unload: false,
        ..Config::default()
    });
    m.expect_violation(rule::SERVER_PORT_OPEN_AT_UNREGISTER);
    fltsim::unload_driver().unwrap();
    assert!(
        m.take_violations()
            .iter()
            .any(|v| v.rule == rule::SERVER_PORT_OPEN_AT_UNREGISTER)
    );
    assert!(fltsim::port::server_port_names().is_empty());
}

#[test]
fn unload_with_a_create_waiting_for_a_reply_releases_it_before_unregister_returns() {
    let _m = boot_loaded(Config {
        pre_create: PreCreate::Ask {
            timeout_100ns: 600_000_000,
        },
        ..Config::default()
    });
    let h = connect(&[]);
    std::thread::scope(|s| {
        let creator = s.spawn(|| create(&CreateRequest::new(r"C:\held.txt")));
        wait_until("create waiting in FltSendMessage", || {
            fltsim::port::waiting_senders() == 1
        });
        fltsim::unload_driver().unwrap();
        // FltUnregisterFilter disconnected the client (waking the sender) and waited for
        // the pre-create to return: the create has finished by now.
        assert!(creator.is_finished());
        let out = creator.join().unwrap();
        assert_eq!(
            out.status, STATUS_SUCCESS,
            "fails open on STATUS_PORT_DISCONNECTED"
        );
    });
    close(h);
}

#[test]
fn callbacks_stop_after_unregister() {
    let _m = boot_loaded(Config::default());
    fltsim::unload_driver().unwrap();
    let before = seen().len();
    let out = create(&CreateRequest::new(r"C:\after.txt"));
    assert!(!out.filtered);
    assert_eq!(seen().len(), before);
}

#[test]
fn start_filtering_twice_or_with_a_bad_filter_fails() {
    let mut m = boot_loaded(Config::default());
    m.expect_violation(rule::INVALID_OBJECT);
    assert_eq!(
        // SAFETY: FFI into the model.
        unsafe { FltStartFiltering(FILTER.load(Ordering::SeqCst)) },
        STATUS_INVALID_DEVICE_STATE
    );
    assert_eq!(
        // SAFETY: as above; a bogus pointer is the point.
        unsafe { FltStartFiltering(0x1000 as PFLT_FILTER) },
        STATUS_INVALID_PARAMETER
    );
}

#[test]
fn load_twice_fails() {
    let _m = boot_loaded(Config::default());
    assert_eq!(
        fltsim::load_driver(driver_entry),
        Err(STATUS_INVALID_DEVICE_STATE)
    );
}

#[test]
fn machine_guard_unloads_a_loaded_driver_with_the_mandatory_flag() {
    let m = boot_loaded(Config::default());
    let h = connect(&[]);
    let _ = h;
    assert_eq!(m.shutdown(), vec![]);
    assert!(seen().contains(&Seen::Unload {
        flags: FLTFL_FILTER_UNLOAD_MANDATORY
    }));
}
