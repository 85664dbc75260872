//! The calling thread's context as far as "may this thread wait for user mode?" goes:
//! its `TopLevelIrp` field (`IoGetTopLevelIrp`) and whether all APCs are disabled
//! (`KeAreAllApcsDisabled`: inside a guarded region, or IRQL ≥ `APC_LEVEL`).
//!
//! A simulated create sets them from its request (`CreateRequest::top_level_irp`,
//! `CreateRequest::apcs_disabled`) while the filter's callbacks run; tests can also set
//! them on any thread with the guards below. What depends on them:
//! * `FltGetFileNameInformation` fails with `STATUS_FLT_INVALID_NAME_REQUEST` while a
//!   top-level IRP is set [doc: "cannot get file name information if the TopLevelIrp
//!   field of the current thread is not NULL, because the resulting file system
//!   recursion could cause deadlocks or stack overflows"];
//! * `FltSendMessage` waiting for a reply in either context is a verifier violation
//!   ([`rule::REPLY_WAIT_IN_UNSAFE_CONTEXT`](crate::rule::REPLY_WAIT_IN_UNSAFE_CONTEXT)).

use super::irql::{self, APC_LEVEL};
use portfilter_bindings::{BOOLEAN, FALSE, PIRP, TRUE};
use std::cell::Cell;

/// `FSRTL_FSP_TOP_LEVEL_IRP`: a recursive call (a file system's own worker).
pub const FSRTL_FSP_TOP_LEVEL_IRP: usize = 0x01;
/// `FSRTL_CACHE_TOP_LEVEL_IRP`: the cache manager is the top-level component.
pub const FSRTL_CACHE_TOP_LEVEL_IRP: usize = 0x02;
/// `FSRTL_MOD_WRITE_TOP_LEVEL_IRP`: the modified page writer is the top-level component.
pub const FSRTL_MOD_WRITE_TOP_LEVEL_IRP: usize = 0x03;
/// `FSRTL_FAST_IO_TOP_LEVEL_IRP`: the cache manager, in a fast I/O path.
pub const FSRTL_FAST_IO_TOP_LEVEL_IRP: usize = 0x04;

thread_local! {
    static TOP_LEVEL_IRP: Cell<usize> = const { Cell::new(0) };
    static GUARDED_REGIONS: Cell<u32> = const { Cell::new(0) };
    static CRITICAL_REGIONS: Cell<u32> = const { Cell::new(0) };
}

/// How deep the calling thread is in critical regions (`KeEnterCriticalRegion`), for
/// tests: 0 outside any.
#[must_use]
pub fn critical_regions() -> u32 {
    CRITICAL_REGIONS.with(Cell::get)
}

/// The calling thread's `TopLevelIrp` (0 = none).
#[must_use]
pub fn top_level_irp() -> usize {
    TOP_LEVEL_IRP.with(Cell::get)
}

/// Whether all APCs are disabled on the calling thread (guarded region or IRQL ≥
/// `APC_LEVEL`).
#[must_use]
pub fn all_apcs_disabled() -> bool {
    GUARDED_REGIONS.with(Cell::get) > 0 || irql::current() >= APC_LEVEL
}

/// Whether the calling thread may hold file-system or memory-manager resources, so that
/// waiting for user mode could deadlock.
#[must_use]
pub fn unsafe_to_wait_for_user_mode() -> bool {
    top_level_irp() != 0 || all_apcs_disabled()
}

/// Restores the previous `TopLevelIrp` when dropped.
#[derive(Debug)]
pub struct TopLevelIrpGuard(usize);

impl Drop for TopLevelIrpGuard {
    fn drop(&mut self) {
        TOP_LEVEL_IRP.with(|c| c.set(self.0));
    }
}

/// Sets the calling thread's `TopLevelIrp` to `value` (a file-system IRP pointer or one
/// of the `FSRTL_*_TOP_LEVEL_IRP` values; 0 clears it) until the guard drops.
#[must_use]
pub fn set_top_level_irp(value: usize) -> TopLevelIrpGuard {
    TopLevelIrpGuard(TOP_LEVEL_IRP.with(|c| c.replace(value)))
}

/// Leaves the guarded region when dropped.
#[derive(Debug)]
pub struct GuardedRegion(());

impl Drop for GuardedRegion {
    fn drop(&mut self) {
        GUARDED_REGIONS.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// Enters a guarded region (`KeEnterGuardedRegion`: all APCs disabled) until the guard
/// drops.
#[must_use]
pub fn enter_guarded_region() -> GuardedRegion {
    GUARDED_REGIONS.with(|c| c.set(c.get() + 1));
    GuardedRegion(())
}

/// `IoGetTopLevelIrp`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn IoGetTopLevelIrp() -> PIRP {
    top_level_irp() as PIRP
}

/// `KeAreAllApcsDisabled`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn KeAreAllApcsDisabled() -> BOOLEAN {
    if all_apcs_disabled() { TRUE } else { FALSE }
}

/// `KeEnterCriticalRegion`: normal kernel APCs are disabled until the matching leave (no
/// APC is delivered here, so only the nesting is tracked; a leave without an enter is a
/// verifier violation).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn KeEnterCriticalRegion() {
    CRITICAL_REGIONS.with(|c| c.set(c.get().saturating_add(1)));
}

/// `KeLeaveCriticalRegion`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn KeLeaveCriticalRegion() {
    let unbalanced = CRITICAL_REGIONS.with(|c| {
        let depth = c.get();
        c.set(depth.saturating_sub(1));
        depth == 0
    });
    if unbalanced {
        crate::verifier::report(
            crate::verifier::rule::CRITICAL_REGION_UNBALANCED,
            "KeLeaveCriticalRegion without KeEnterCriticalRegion".to_string(),
        );
    }
}
