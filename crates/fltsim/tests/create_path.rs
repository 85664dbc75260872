//! The create path: real FLT_CALLBACK_DATA, pre/post-create, final status, names.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;
use common::*;
use fltsim::{CreateRequest, create, rule};
use portfilter_bindings::*;

fn pre_creates() -> Vec<Seen> {
    seen()
        .into_iter()
        .filter(|s| matches!(s, Seen::PreCreate { .. }))
        .collect()
}

#[test]
fn create_builds_real_callback_data_in_the_requestor_context() {
    let _m = boot_loaded(Config::default());
    let out = create(
        &CreateRequest::new(r"C:\Users\a\report.txt")
            .pid(4242)
            .tid(0x99c)
            .access(FILE_WRITE_DATA | SYNCHRONIZE)
            .disposition(FILE_OPEN_IF)
            .options(FILE_NON_DIRECTORY_FILE),
    );
    assert!(out.filtered);
    let Seen::PreCreate {
        pid,
        requestor,
        tid,
        thread_tid,
        name,
        flags,
        options,
        access,
        kernel,
        volume_open,
        file_name,
        data_flags,
        top_level_irp,
        apcs_disabled,
        ..
    } = pre_creates().pop().unwrap()
    else {
        unreachable!()
    };
    // An IRP-based operation: fltKernel.h's FLTFL_CALLBACK_DATA_IRP_OPERATION is 0x1
    // (FAST_IO_OPERATION is 0x2).
    assert_eq!(data_flags, 0x0000_0001, "Data->Flags");
    assert_eq!((top_level_irp, apcs_disabled), (0, false));
    assert_eq!(
        (pid, requestor),
        (4242, 4242),
        "PsGetCurrentProcessId and FltGetRequestorProcessId"
    );
    assert_eq!(
        (tid, thread_tid),
        (0x99c, 0x99c),
        "PsGetThreadId(Data->Thread) and PsGetCurrentThreadId"
    );
    assert_eq!(name, r"\Device\HarddiskVolume3\Users\a\report.txt");
    assert_eq!(
        file_name, r"\Users\a\report.txt",
        "FILE_OBJECT.FileName is relative to the volume"
    );
    assert_eq!(flags, 0);
    assert_eq!(options >> 24, FILE_OPEN_IF);
    assert_eq!(options & 0x00FF_FFFF, FILE_NON_DIRECTORY_FILE);
    assert_eq!(access, FILE_WRITE_DATA | SYNCHRONIZE);
    assert!(!kernel && !volume_open);
}

#[test]
fn preop_complete_status_is_what_the_caller_sees() {
    let _m = boot_loaded(Config {
        pre_create: PreCreate::DenyContaining("secret".into()),
        ..Config::default()
    });
    let denied = create(&CreateRequest::new(r"C:\secret.txt"));
    assert_eq!(denied.status, STATUS_ACCESS_DENIED);
    assert_eq!(denied.pre_status, Some(FLT_PREOP_COMPLETE));
    assert!(!denied.post_called);
    let allowed = create(&CreateRequest::new(r"C:\public.txt"));
    assert_eq!(allowed.status, STATUS_SUCCESS);
}

#[test]
fn success_with_callback_calls_post_create_with_the_file_system_result() {
    let _m = boot_loaded(Config::default());
    let out = create(
        &CreateRequest::new(r"C:\dir")
            .directory()
            .fs_result(STATUS_SUCCESS, 2),
    );
    assert_eq!(
        (out.status, out.information, out.post_called),
        (STATUS_SUCCESS, 2, true)
    );
    assert!(seen().contains(&Seen::PostCreate {
        status: STATUS_SUCCESS,
        is_dir: Some(true)
    }));
    let failed = create(&CreateRequest::new(r"C:\missing").fs_result(0xC000_0034_u32 as i32, 0));
    assert_eq!(failed.status, 0xC000_0034_u32 as i32);
    assert!(seen().contains(&Seen::PostCreate {
        status: 0xC000_0034_u32 as i32,
        is_dir: Some(false)
    }));
}

#[test]
fn success_no_callback_skips_post_create() {
    let _m = boot_loaded(Config {
        pre_create: PreCreate::PassNoCallback,
        ..Config::default()
    });
    let out = create(&CreateRequest::new(r"C:\x"));
    assert_eq!(out.pre_status, Some(FLT_PREOP_SUCCESS_NO_CALLBACK));
    assert!(!out.post_called);
}

#[test]
fn paging_file_target_directory_volume_open_and_kernel_mode_are_visible_to_the_filter() {
    let _m = boot_loaded(Config::default());
    let _ = create(
        &CreateRequest::new(r"C:\pagefile.sys")
            .paging_file()
            .kernel_mode(),
    );
    let _ = create(&CreateRequest::new(r"C:\a\b").target_directory());
    let _ = create(&CreateRequest::new(r"C:").volume_open());
    let p = pre_creates();
    let Seen::PreCreate { flags, kernel, .. } = &p[0] else {
        unreachable!()
    };
    assert_eq!(*flags & SL_OPEN_PAGING_FILE, SL_OPEN_PAGING_FILE);
    assert!(*kernel);
    let Seen::PreCreate { flags, .. } = &p[1] else {
        unreachable!()
    };
    assert_eq!(*flags & SL_OPEN_TARGET_DIRECTORY, SL_OPEN_TARGET_DIRECTORY);
    let Seen::PreCreate {
        volume_open,
        file_name,
        name,
        ..
    } = &p[2]
    else {
        unreachable!()
    };
    assert!(*volume_open);
    assert_eq!(file_name, "");
    assert_eq!(name, r"\Device\HarddiskVolume3");
}

#[test]
fn creates_can_come_from_threads_that_hold_file_system_resources() {
    use fltsim::kernel::context::FSRTL_MOD_WRITE_TOP_LEVEL_IRP;
    let _m = boot_loaded(Config::default());
    let _ = create(&CreateRequest::new(r"C:\t\cache.txt").top_level_irp());
    let _ = create(
        &CreateRequest::new(r"C:\t\writer.txt").top_level_irp_value(FSRTL_MOD_WRITE_TOP_LEVEL_IRP),
    );
    let _ = create(&CreateRequest::new(r"C:\t\guarded.txt").apcs_disabled());
    let _ = create(
        &CreateRequest::new(r"C:\t\smb.txt")
            .kernel_mode()
            .force_access_check(),
    );
    let p = pre_creates();
    let facts: Vec<(usize, bool, String, u8)> = p
        .iter()
        .map(|s| match s {
            Seen::PreCreate {
                top_level_irp,
                apcs_disabled,
                name,
                flags,
                ..
            } => (*top_level_irp, *apcs_disabled, name.clone(), *flags),
            _ => unreachable!(),
        })
        .collect();
    // [doc] No name can be queried while a top-level IRP is set.
    let invalid = format!("<{STATUS_FLT_INVALID_NAME_REQUEST:#x}>");
    assert_eq!(facts[0], (2, false, invalid.clone(), 0));
    assert_eq!(facts[1], (3, false, invalid, 0));
    assert_eq!(
        facts[2],
        (
            0,
            true,
            r"\Device\HarddiskVolume3\t\guarded.txt".to_owned(),
            0
        )
    );
    assert_eq!(facts[3].3 & SL_FORCE_ACCESS_CHECK, SL_FORCE_ACCESS_CHECK);
    // Outside the create the thread's context is back to normal.
    // SAFETY: FFI into the model.
    unsafe {
        assert!(IoGetTopLevelIrp().is_null());
        assert_eq!(KeAreAllApcsDisabled(), 0);
    }
    {
        let _irql = fltsim::kernel::irql::raise(fltsim::kernel::irql::APC_LEVEL);
        // SAFETY: FFI into the model.
        assert_ne!(unsafe { KeAreAllApcsDisabled() }, 0, "IRQL >= APC_LEVEL");
    }
}

#[test]
fn normalized_name_expands_the_long_form_and_opened_keeps_the_short_one() {
    let _m = boot_loaded(Config::default());
    let _ = create(
        &CreateRequest::new(r"C:\Users\PEDRO~1.GUS\x.txt")
            .long_name(r"C:\Users\pedro.gusmao\x.txt"),
    );
    let Seen::PreCreate { name, opened, .. } = pre_creates().pop().unwrap() else {
        unreachable!()
    };
    assert_eq!(name, r"\Device\HarddiskVolume3\Users\pedro.gusmao\x.txt");
    assert_eq!(opened, r"\Device\HarddiskVolume3\Users\PEDRO~1.GUS\x.txt");
}

#[test]
fn name_queries_fail_on_request() {
    let _m = boot_loaded(Config::default());
    let _ = create(
        &CreateRequest::new(r"C:\a.txt").fail_normalized_name(STATUS_FLT_INVALID_NAME_REQUEST),
    );
    let Seen::PreCreate { name, .. } = pre_creates().pop().unwrap() else {
        unreachable!()
    };
    assert_eq!(
        name, r"\Device\HarddiskVolume3\a.txt",
        "the filter fell back to the opened name"
    );
    let _ = create(&CreateRequest::new(r"C:\b.txt").fail_names(STATUS_OBJECT_NAME_NOT_FOUND));
    let Seen::PreCreate { name, .. } = pre_creates().pop().unwrap() else {
        unreachable!()
    };
    assert_eq!(name, format!("<{:#x}>", STATUS_OBJECT_NAME_NOT_FOUND));
}

#[test]
fn parse_file_name_information_splits_volume_parent_final_extension_and_stream() {
    let _m = boot_loaded(Config::default());
    let _ = create(&CreateRequest::new(
        r"C:\Docs\My Files\Test Results.txt:stream1",
    ));
    assert!(seen().contains(&Seen::Parsed {
        volume: r"\Device\HarddiskVolume3".into(),
        parent: r"\Docs\My Files\".into(),
        final_component: "Test Results.txt:stream1".into(),
        extension: "txt".into(),
        stream: ":stream1".into(),
    }));
}

#[test]
fn waiting_for_a_reply_where_the_requestor_holds_file_system_resources_is_a_violation() {
    let mut m = boot_loaded(Config {
        pre_create: PreCreate::Ask {
            timeout_100ns: 1_000_000,
        },
        ..Config::default()
    });
    m.expect_violation(rule::REPLY_WAIT_IN_UNSAFE_CONTEXT);
    let _ = create(&CreateRequest::new(r"C:\ok.txt"));
    assert!(m.violations().is_empty(), "an ordinary create may wait");
    let _ = create(&CreateRequest::new(r"C:\cache.txt").top_level_irp());
    let _ = create(&CreateRequest::new(r"C:\guarded.txt").apcs_disabled());
    let v = m.take_violations();
    assert_eq!(
        v.iter()
            .filter(|v| v.rule == rule::REPLY_WAIT_IN_UNSAFE_CONTEXT)
            .count(),
        2,
        "{v:?}"
    );
}

#[test]
fn name_information_not_released_by_the_end_of_the_create_is_a_violation() {
    let mut m = boot_loaded(Config {
        release_names: false,
        ..Config::default()
    });
    m.expect_violation(rule::NAME_INFO_NOT_RELEASED);
    let _ = create(&CreateRequest::new(r"C:\leak.txt"));
    let v = m.take_violations();
    assert!(
        v.iter()
            .any(|v| v.rule == rule::NAME_INFO_NOT_RELEASED && v.detail.contains("leak.txt")),
        "{v:?}"
    );
}

#[test]
fn instance_setup_returning_do_not_attach_means_no_callbacks_on_that_volume() {
    let _m = boot_loaded(Config {
        attach: false,
        ..Config::default()
    });
    // FLT_FILESYSTEM_TYPE runs UNKNOWN 0, RAW 1, NTFS 2, FAT 3, …
    assert!(seen().iter().any(|s| matches!(
        s,
        Seen::InstanceSetup {
            device_type: FILE_DEVICE_DISK_FILE_SYSTEM,
            fs: 2
        }
    )));
    assert_eq!(FLT_FSTYPE_NTFS, 2);
    let out = create(&CreateRequest::new(r"C:\x"));
    assert!(!out.filtered);
    assert!(pre_creates().is_empty());
}

#[test]
fn volumes_map_dos_names_and_nt_names_and_unknown_paths_fail() {
    let _m = boot_loaded(Config::default());
    fltsim::volumes::add('D', r"\Device\HarddiskVolume7");
    let out = create(&CreateRequest::new(r"\Device\HarddiskVolume7\data.bin"));
    assert!(
        out.filtered,
        "a volume added while filtering gets an instance"
    );
    let out = create(&CreateRequest::new(r"\??\D:\data.bin"));
    assert!(out.filtered);
    let Seen::PreCreate { name, .. } = pre_creates().pop().unwrap() else {
        unreachable!()
    };
    assert_eq!(name, r"\Device\HarddiskVolume7\data.bin");
    let out = create(&CreateRequest::new(r"Q:\nowhere"));
    assert_eq!(out.status, fltsim::create::STATUS_OBJECT_PATH_NOT_FOUND);
    assert!(!out.filtered);
}

#[test]
fn create_without_a_driver_returns_the_file_system_result() {
    let _m = boot(Config::default());
    let out = create(&CreateRequest::new(r"C:\x").fs_result(STATUS_SUCCESS, 1));
    assert_eq!((out.status, out.filtered), (STATUS_SUCCESS, false));
}

#[test]
fn request_reply_create_waits_for_the_client_verdict() {
    let _m = boot_loaded(Config {
        pre_create: PreCreate::Ask {
            timeout_100ns: 50_000_000,
        },
        ..Config::default()
    });
    let h = connect(&[]) as usize;
    std::thread::scope(|s| {
        let client = s.spawn(move || {
            for verdict in [0u32, 1] {
                let mut buf = [0u8; 512];
                assert_eq!(get_message(h as _, &mut buf), 0);
                let id = header_of(&buf).1;
                assert_eq!(reply(h as _, STATUS_SUCCESS, id, &verdict.to_le_bytes()), 0);
            }
        });
        assert_eq!(
            create(&CreateRequest::new(r"C:\deny.txt")).status,
            STATUS_ACCESS_DENIED
        );
        assert_eq!(
            create(&CreateRequest::new(r"C:\allow.txt")).status,
            STATUS_SUCCESS
        );
        client.join().unwrap();
    });
    close(h as _);
}

#[test]
fn critical_regions_nest_per_thread_and_a_leave_without_an_enter_is_a_violation() {
    let m = fltsim::Machine::boot();
    // SAFETY: FFI into the model.
    unsafe {
        KeEnterCriticalRegion();
        KeEnterCriticalRegion();
    }
    assert_eq!(fltsim::kernel::context::critical_regions(), 2);
    std::thread::spawn(|| assert_eq!(fltsim::kernel::context::critical_regions(), 0))
        .join()
        .expect("another thread");
    // SAFETY: as above.
    unsafe {
        KeLeaveCriticalRegion();
        KeLeaveCriticalRegion();
    }
    assert_eq!(fltsim::kernel::context::critical_regions(), 0);
    assert!(m.violations().is_empty(), "balanced");
    // SAFETY: as above.
    unsafe { KeLeaveCriticalRegion() };
    let violations = m.take_violations();
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].rule, rule::CRITICAL_REGION_UNBALANCED);
}
