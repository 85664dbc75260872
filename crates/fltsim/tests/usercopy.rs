//! MessageNotify user buffers: translated addresses, fault-tolerant copies, and the
//! guard that catches a direct dereference.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;
use common::*;
use fltsim::rule;

const E_NOACCESS: i32 = 0x8007_03E6_u32 as i32;

#[test]
fn translated_user_addresses_keep_their_alignment() {
    let _m = boot_loaded(Config::default());
    let h = connect(&[]);
    let buf = [b'E'; 64];
    for offset in [0usize, 1, 3, 8] {
        let input = &buf[offset..offset + 4];
        assert_eq!(send(h, input, &mut [0u8; 8]), (0, 4));
        let low = input.as_ptr() as usize & 0xFFF;
        assert!(
            seen().iter().any(|s| matches!(s, Seen::Notify { input_low, translated: true, .. } if *input_low == low)),
            "offset {offset}"
        );
    }
    close(h);
}

#[test]
fn user_copy_outside_the_buffers_of_the_current_call_is_a_violation_and_an_access_violation() {
    let mut m = boot_loaded(Config::default());
    m.expect_violation(rule::USER_COPY_OUT_OF_RANGE);
    let h = connect(&[]);
    assert_eq!(send(h, b"O123", &mut []).0, E_NOACCESS);
    assert!(
        m.take_violations()
            .iter()
            .any(|v| v.rule == rule::USER_COPY_OUT_OF_RANGE)
    );
    close(h);
}

#[test]
fn user_copy_from_an_unmapped_client_address_fails_cleanly() {
    let _m = boot_loaded(Config::default());
    let h = connect(&[]);
    let mut n = 0u32;
    let mut out = [0u8; 4];
    // SAFETY: FFI; the bad output address (never mapped) is the point.
    let hr = unsafe {
        windows_sys::Win32::Storage::InstallableFileSystems::FilterSendMessage(
            h,
            b"E123".as_ptr().cast(),
            4,
            0x20 as *mut _,
            4,
            &mut n,
        )
    };
    assert_eq!(
        hr, E_NOACCESS,
        "PfCopyToUser reported STATUS_ACCESS_VIOLATION"
    );
    assert_eq!(
        send(h, b"E123", &mut out),
        (0, 4),
        "the connection is still fine"
    );
    close(h);
}

const CHILD: &str = "FLTSIM_DEREF_CHILD";

#[test]
fn direct_dereference_of_a_user_buffer_aborts_naming_the_rule() {
    if std::env::var_os(CHILD).is_some() {
        let _m = boot_loaded(Config::default());
        let h = connect(&[]);
        let _ = send(h, b"D", &mut []);
        unreachable!("the dereference must not return");
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "direct_dereference_of_a_user_buffer_aborts_naming_the_rule",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("dereferenced directly"), "{stderr}");
}
