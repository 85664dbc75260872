//! fltsim's model of pended creates: the creating thread blocks until
//! `FltCompletePendedPreOperation`, whose status then decides; and the verifier rules
//! for completing twice, denying with a non-error status, leaving a create pended at
//! unload, and completing after unload.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;

use common::{Config, PENDED, PreCreate, boot_loaded};
use fltsim::CreateRequest;
use fltsim::rule;
use portfilter_bindings::{
    FLT_CALLBACK_DATA, FLT_PREOP_COMPLETE, FLT_PREOP_SUCCESS_NO_CALLBACK,
    FltCompletePendedPreOperation, STATUS_ACCESS_DENIED, STATUS_CANCELLED, STATUS_SUCCESS,
};
use std::ptr::null_mut;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

fn pend_one(path: &str) -> (JoinHandle<i32>, *mut FLT_CALLBACK_DATA) {
    PENDED.store(null_mut(), Ordering::SeqCst);
    let req = CreateRequest::new(path);
    let t = std::thread::spawn(move || fltsim::create(&req).status);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let data = PENDED.load(Ordering::SeqCst);
        if !data.is_null() && fltsim::pended::pended_count() == 0 {
            // Give the pre-create time to return PENDING (it returns right after the store).
            std::thread::sleep(Duration::from_millis(5));
            return (t, data);
        }
        assert!(Instant::now() < deadline, "create never pended");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn join(t: JoinHandle<i32>) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !t.is_finished() {
        assert!(Instant::now() < deadline, "pended create never returned");
        std::thread::sleep(Duration::from_millis(1));
    }
    t.join().unwrap()
}

fn cfg() -> Config {
    Config {
        pre_create: PreCreate::Pend,
        ..Config::default()
    }
}

#[test]
fn a_pended_create_waits_for_its_completion_and_takes_its_status() {
    let m = boot_loaded(cfg());
    let (t, data) = pend_one(r"C:\p\allowed.txt");
    assert!(!t.is_finished(), "the creating thread blocks while pended");
    // SAFETY: the pended create's callback data, completed once.
    unsafe { FltCompletePendedPreOperation(data, FLT_PREOP_SUCCESS_NO_CALLBACK, null_mut()) };
    assert_eq!(join(t), STATUS_SUCCESS);

    let (t, data) = pend_one(r"C:\p\denied.txt");
    // SAFETY: as above; a deny sets IoStatus first.
    unsafe {
        (*data).IoStatus.u.Status = STATUS_ACCESS_DENIED;
        FltCompletePendedPreOperation(data, FLT_PREOP_COMPLETE, null_mut());
    }
    assert_eq!(join(t), STATUS_ACCESS_DENIED);
    fltsim::unload_driver().unwrap();
    assert!(m.shutdown().is_empty());
}

#[test]
fn completing_twice_and_denying_with_a_success_status_are_reported() {
    let mut m = boot_loaded(cfg());
    m.expect_violation(rule::PENDED_COMPLETED_TWICE);
    m.expect_violation(rule::PENDED_DENY_NOT_ERROR);
    let (t, data) = pend_one(r"C:\p\twice.txt");
    // SAFETY: the pended create's callback data; the second call is the bug under test
    // (the model keeps the data alive until the creating thread returns).
    unsafe {
        (*data).IoStatus.u.Status = 0x0000_0103; // STATUS_PENDING: not an error
        FltCompletePendedPreOperation(data, FLT_PREOP_COMPLETE, null_mut());
    }
    let _ = join(t);
    // SAFETY: the data is gone: the model only looks the pointer up.
    unsafe { FltCompletePendedPreOperation(data, FLT_PREOP_SUCCESS_NO_CALLBACK, null_mut()) };
    let rules: Vec<_> = m.take_violations().iter().map(|v| v.rule).collect();
    assert!(rules.contains(&rule::PENDED_DENY_NOT_ERROR), "{rules:?}");
    assert!(rules.contains(&rule::PENDED_COMPLETED_TWICE), "{rules:?}");
    fltsim::unload_driver().unwrap();
    let _ = m.shutdown();
}

#[test]
fn a_create_left_pended_at_unload_and_a_completion_after_it_are_reported() {
    let mut m = boot_loaded(cfg());
    m.expect_violation(rule::PENDED_NOT_COMPLETED_AT_UNLOAD);
    m.expect_violation(rule::PENDED_COMPLETED_AFTER_UNLOAD);
    let (t, data) = pend_one(r"C:\p\forgotten.txt");
    fltsim::unload_driver().unwrap();
    // The model fails it so that the thread returns.
    assert_eq!(join(t), STATUS_CANCELLED);
    // SAFETY: the data is gone: the model only looks the pointer up.
    unsafe { FltCompletePendedPreOperation(data, FLT_PREOP_SUCCESS_NO_CALLBACK, null_mut()) };
    let rules: Vec<_> = m.take_violations().iter().map(|v| v.rule).collect();
    assert!(
        rules.contains(&rule::PENDED_NOT_COMPLETED_AT_UNLOAD),
        "{rules:?}"
    );
    assert!(
        rules.contains(&rule::PENDED_COMPLETED_AFTER_UNLOAD),
        "{rules:?}"
    );
    let _ = m.shutdown();
}
