//! Pool, push locks, events, system threads, time, ids and the DbgPrint log.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]
#![allow(clippy::missing_safety_doc)]

use fltsim::{Machine, rule};
use portfilter_bindings::*;
use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicUsize, Ordering};

unsafe extern "C" {
    /// fltsim defines it; the bindings do not declare it (since Vista its output is
    /// filtered out by default, so a driver uses `DbgPrintEx`).
    fn DbgPrint(format: *const u8, ...) -> u32;
}

const TAG: u32 = u32::from_le_bytes(*b"KsTs");

#[test]
fn pool_accounts_by_tag_and_zeroes_unless_asked_not_to() {
    let _m = Machine::boot();
    // SAFETY: FFI into the model; allocations are used within their size.
    unsafe {
        let a = ExAllocatePool2(POOL_FLAG_NON_PAGED, 100, TAG);
        let b = ExAllocatePool2(POOL_FLAG_PAGED | POOL_FLAG_UNINITIALIZED, 10, TAG);
        assert!(!a.is_null() && !b.is_null());
        assert_eq!(a as usize % 16, 0);
        assert!(
            std::slice::from_raw_parts(a.cast::<u8>(), 100)
                .iter()
                .all(|&x| x == 0)
        );
        assert!(
            std::slice::from_raw_parts(b.cast::<u8>(), 10)
                .iter()
                .all(|&x| x == 0xCD)
        );
        assert_eq!(fltsim::kernel::pool::live_bytes(TAG), 110);
        let usage = fltsim::kernel::pool::outstanding();
        assert_eq!(usage.len(), 1);
        assert_eq!((usage[0].tag.as_str(), usage[0].count), ("KsTs", 2));
        ExFreePoolWithTag(a, TAG);
        ExFreePoolWithTag(b, TAG);
    }
    assert_eq!(fltsim::kernel::pool::live_count(), 0);
}

#[test]
fn pool_double_free_wrong_tag_and_bad_flags_are_violations() {
    let mut m = Machine::boot();
    m.expect_violation(rule::POOL_DOUBLE_FREE);
    m.expect_violation(rule::POOL_WRONG_TAG);
    m.expect_violation(rule::POOL_BAD_CALLER);
    m.expect_violation(rule::POOL_BAD_FREE);
    // SAFETY: FFI; the misuse is detected by the model, not executed.
    unsafe {
        let a = ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, TAG);
        ExFreePoolWithTag(a, TAG);
        ExFreePoolWithTag(a, TAG);
        let b = ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, TAG);
        ExFreePoolWithTag(b, u32::from_le_bytes(*b"Oops"));
        assert!(ExAllocatePool2(POOL_FLAG_NON_PAGED | POOL_FLAG_PAGED, 8, TAG).is_null());
        assert!(ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, 0).is_null());
        ExFreePoolWithTag(0x4000 as *mut c_void, TAG);
    }
    let rules: Vec<_> = m.take_violations().into_iter().map(|v| v.rule).collect();
    for r in [
        rule::POOL_DOUBLE_FREE,
        rule::POOL_WRONG_TAG,
        rule::POOL_BAD_CALLER,
        rule::POOL_BAD_FREE,
    ] {
        assert!(rules.contains(&r), "{r} in {rules:?}");
    }
}

#[test]
fn pool_failure_injection_makes_allocations_return_null() {
    let _m = Machine::boot();
    fltsim::kernel::pool::fail_next(1);
    // SAFETY: FFI.
    unsafe {
        assert!(ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, TAG).is_null());
        let p = ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, TAG);
        assert!(!p.is_null());
        ExFreePoolWithTag(p, TAG);
    }
}

#[test]
fn a_leak_at_machine_shutdown_is_reported_by_tag() {
    let m = Machine::boot();
    // SAFETY: FFI; leaked on purpose.
    let _ = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, TAG) };
    // No driver is loaded, so no unload check ran; the report is on demand.
    let usage = fltsim::kernel::pool::outstanding();
    assert_eq!(usage[0].tag, "KsTs");
    assert_eq!(m.shutdown(), vec![]);
}

static mut LOCK: EX_PUSH_LOCK = 0;
static INSIDE: AtomicUsize = AtomicUsize::new(0);
static MAX_INSIDE: AtomicUsize = AtomicUsize::new(0);

fn lock_ptr() -> *mut EX_PUSH_LOCK {
    &raw mut LOCK
}

#[test]
fn push_lock_exclusive_excludes_and_shared_shares() {
    let _m = Machine::boot();
    // SAFETY: FFI on a static push lock word.
    unsafe { FltInitializePushLock(lock_ptr()) };
    INSIDE.store(0, Ordering::SeqCst);
    MAX_INSIDE.store(0, Ordering::SeqCst);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..200 {
                    // SAFETY: initialised above; released below by the same thread.
                    unsafe { FltAcquirePushLockExclusive(lock_ptr()) };
                    let n = INSIDE.fetch_add(1, Ordering::SeqCst) + 1;
                    MAX_INSIDE.fetch_max(n, Ordering::SeqCst);
                    INSIDE.fetch_sub(1, Ordering::SeqCst);
                    // SAFETY: as above.
                    unsafe { FltReleasePushLock(lock_ptr()) };
                }
            });
        }
    });
    assert_eq!(MAX_INSIDE.load(Ordering::SeqCst), 1);
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                // SAFETY: as above.
                unsafe { FltAcquirePushLockShared(lock_ptr()) };
                barrier.wait(); // both hold it shared at once, or this deadlocks
                // SAFETY: as above.
                unsafe { FltReleasePushLock(lock_ptr()) };
            });
        }
    });
    assert_eq!(fltsim::kernel::pushlock::held_count(), 0);
    // SAFETY: as above.
    unsafe { FltDeletePushLock(lock_ptr()) };
}

#[test]
fn push_lock_released_by_a_non_owner_or_used_uninitialised_is_a_violation() {
    let mut m = Machine::boot();
    m.expect_violation(rule::PUSH_LOCK_NOT_OWNER);
    m.expect_violation(rule::PUSH_LOCK_UNINITIALIZED);
    // SAFETY: FFI on a static push lock word.
    unsafe {
        FltInitializePushLock(lock_ptr());
        FltAcquirePushLockExclusive(lock_ptr());
    }
    let p = lock_ptr() as usize;
    // SAFETY: as above (the release from another thread is the point).
    std::thread::spawn(move || unsafe { FltReleasePushLock(p as *mut EX_PUSH_LOCK) })
        .join()
        .unwrap();
    let mut other: EX_PUSH_LOCK = 0;
    // SAFETY: a zero word is an unlocked lock; the missing initialisation is the point.
    unsafe {
        FltAcquirePushLockShared(&mut other);
        FltReleasePushLock(&mut other);
    }
    let rules: Vec<_> = m.take_violations().into_iter().map(|v| v.rule).collect();
    assert!(rules.contains(&rule::PUSH_LOCK_NOT_OWNER), "{rules:?}");
    assert!(rules.contains(&rule::PUSH_LOCK_UNINITIALIZED), "{rules:?}");
}

#[test]
fn kevent_set_clear_wait_and_timeouts() {
    let _m = Machine::boot();
    let mut notification = KEVENT::ZERO;
    let mut sync = KEVENT::ZERO;
    // SAFETY: FFI on our own KEVENTs.
    unsafe {
        KeInitializeEvent(&mut notification, NOTIFICATION_EVENT, FALSE);
        KeInitializeEvent(&mut sync, SYNCHRONIZATION_EVENT, TRUE);
        let mut zero = 0i64;
        assert_eq!(
            KeWaitForSingleObject(
                (&raw mut notification).cast(),
                EXECUTIVE,
                KERNEL_MODE,
                FALSE,
                &mut zero
            ),
            STATUS_TIMEOUT
        );
        let mut rel = -10 * 10_000i64;
        assert_eq!(
            KeWaitForSingleObject(
                (&raw mut notification).cast(),
                EXECUTIVE,
                KERNEL_MODE,
                FALSE,
                &mut rel
            ),
            STATUS_TIMEOUT
        );
        assert_eq!(KeSetEvent(&mut notification, 0, FALSE), 0);
        assert_eq!(KeSetEvent(&mut notification, 0, FALSE), 1, "previous state");
        assert_eq!(
            KeWaitForSingleObject(
                (&raw mut notification).cast(),
                EXECUTIVE,
                KERNEL_MODE,
                FALSE,
                null_mut()
            ),
            STATUS_SUCCESS
        );
        assert_eq!(
            KeWaitForSingleObject(
                (&raw mut notification).cast(),
                EXECUTIVE,
                KERNEL_MODE,
                FALSE,
                &mut zero
            ),
            STATUS_SUCCESS,
            "stays set"
        );
        KeClearEvent(&mut notification);
        assert_eq!(
            KeWaitForSingleObject(
                (&raw mut notification).cast(),
                EXECUTIVE,
                KERNEL_MODE,
                FALSE,
                &mut zero
            ),
            STATUS_TIMEOUT
        );
        assert_eq!(
            KeWaitForSingleObject(
                (&raw mut sync).cast(),
                EXECUTIVE,
                KERNEL_MODE,
                FALSE,
                &mut zero
            ),
            STATUS_SUCCESS
        );
        assert_eq!(
            KeWaitForSingleObject(
                (&raw mut sync).cast(),
                EXECUTIVE,
                KERNEL_MODE,
                FALSE,
                &mut zero
            ),
            STATUS_TIMEOUT,
            "auto-reset"
        );
    }
}

static RAN_IN: AtomicUsize = AtomicUsize::new(0);

unsafe extern "system" fn worker(ctx: *mut c_void) {
    // SAFETY: FFI into the model.
    RAN_IN.store(
        unsafe { PsGetCurrentProcessId() } as usize,
        Ordering::SeqCst,
    );
    let ev = ctx.cast::<KEVENT>();
    // SAFETY: the test passes an initialised KEVENT that outlives the thread.
    unsafe { KeWaitForSingleObject(ev.cast(), EXECUTIVE, KERNEL_MODE, FALSE, null_mut()) };
}

#[test]
fn system_threads_run_in_the_system_process_and_are_waited_and_closed() {
    let _m = Machine::boot();
    let mut ev = KEVENT::ZERO;
    let mut h: HANDLE = null_mut();
    // SAFETY: FFI; the KEVENT outlives the thread (it is waited for below).
    unsafe {
        KeInitializeEvent(&mut ev, NOTIFICATION_EVENT, FALSE);
        assert_eq!(
            PsCreateSystemThread(
                &mut h,
                THREAD_ALL_ACCESS,
                null_mut(),
                null_mut(),
                null_mut(),
                worker,
                (&raw mut ev).cast()
            ),
            STATUS_SUCCESS
        );
        let mut zero = 0i64;
        assert_eq!(ZwWaitForSingleObject(h, FALSE, &mut zero), STATUS_TIMEOUT);
        assert_eq!(fltsim::kernel::thread::running_system_threads(), 1);
        KeSetEvent(&mut ev, 0, FALSE);
        assert_eq!(ZwWaitForSingleObject(h, FALSE, null_mut()), STATUS_SUCCESS);
        assert_eq!(ZwClose(h), STATUS_SUCCESS);
    }
    assert_eq!(RAN_IN.load(Ordering::SeqCst), 4, "System");
    assert_eq!(fltsim::kernel::thread::open_kernel_handles(), 0);
}

#[test]
fn closing_an_unknown_kernel_handle_is_a_violation() {
    let mut m = Machine::boot();
    m.expect_violation(rule::BAD_KERNEL_HANDLE);
    // SAFETY: FFI; the bad handle is the point.
    assert_eq!(unsafe { ZwClose(0x1234 as HANDLE) }, STATUS_INVALID_HANDLE);
    assert_eq!(m.take_violations().len(), 1);
}

#[test]
fn dbg_print_is_captured_with_percent_s_and_percent_percent() {
    let _m = Machine::boot();
    // SAFETY: FFI with C strings.
    unsafe {
        DbgPrint(c"%s".as_ptr().cast(), c"portfilter: loaded\n".as_ptr());
        DbgPrint(c"100%% %s and %d\n".as_ptr().cast(), c"sure".as_ptr());
    }
    assert_eq!(
        fltsim::log::lines(),
        vec![
            "portfilter: loaded".to_owned(),
            "100% sure and %d".to_owned()
        ]
    );
    assert!(fltsim::log::contains("loaded"));
    fltsim::log::clear();
    assert!(fltsim::log::lines().is_empty());
}

#[test]
fn the_captured_log_keeps_the_newest_lines_and_counts_what_it_forgot() {
    let _m = Machine::boot();
    let before = fltsim::log::dropped();
    let n = fltsim::log::MAX_LINES + 10;
    for i in 0..n {
        fltsim::log::record(&format!("line {i}"));
    }
    let lines = fltsim::log::lines();
    assert!(lines.len() <= fltsim::log::MAX_LINES, "{}", lines.len());
    assert_eq!(
        lines.last().map(String::as_str),
        Some(format!("line {}", n - 1).as_str())
    );
    // Nothing in between is lost: the kept lines are the newest, in order.
    let first = n - lines.len();
    assert_eq!(lines.first(), Some(&format!("line {first}")));
    assert_eq!(fltsim::log::dropped() - before, first as u64);
    fltsim::log::clear();
}

#[test]
fn dbg_print_ex_is_captured_with_component_and_level_and_only_errors_show_by_default() {
    let _m = Machine::boot();
    // SAFETY: FFI with C strings.
    unsafe {
        DbgPrintEx(
            DPFLTR_IHVDRIVER_ID,
            DPFLTR_ERROR_LEVEL,
            c"%s".as_ptr().cast(),
            c"x: failed\n".as_ptr(),
        );
        DbgPrintEx(
            DPFLTR_IHVDRIVER_ID,
            DPFLTR_INFO_LEVEL,
            c"%s".as_ptr().cast(),
            c"x: loaded\n".as_ptr(),
        );
        DbgPrint(c"%s".as_ptr().cast(), c"x: plain\n".as_ptr());
    }
    let entries = fltsim::log::entries();
    let summary: Vec<(u32, u32, &str, bool)> = entries
        .iter()
        .map(|e| (e.component, e.level, e.text.as_str(), e.shown_by_default()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (77, 0, "x: failed", true),
            (77, 3, "x: loaded", false),
            // Vista and later: DbgPrint is component DEFAULT (101) at the info level.
            (101, 3, "x: plain", false),
        ]
    );
}

#[test]
fn time_and_ids() {
    let _m = Machine::boot();
    let mut t = 0i64;
    // SAFETY: FFI.
    unsafe { KeQuerySystemTimePrecise(&mut t) };
    let unix_100ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
        / 100;
    assert!(
        (t - 116_444_736_000_000_000 - unix_100ns).abs() < 10_000_000,
        "within a second"
    );
    // SAFETY: FFI.
    assert_eq!(
        // SAFETY: FFI into the model with valid arguments (misuse is the point where noted).
        unsafe { PsGetCurrentProcessId() } as usize,
        4,
        "System by default"
    );
    fltsim::process::spawn(77, "x.exe", false);
    {
        let _p = fltsim::process::enter(77);
        // SAFETY: FFI.
        assert_eq!(unsafe { PsGetCurrentProcessId() } as usize, 77);
    }
    // SAFETY: FFI.
    let tid = unsafe { PsGetCurrentThreadId() } as usize;
    assert_eq!(tid % 4, 0);
    // SAFETY: FFI.
    let other = std::thread::spawn(|| unsafe { PsGetCurrentThreadId() } as usize)
        .join()
        .unwrap();
    assert_ne!(tid, other);
}
