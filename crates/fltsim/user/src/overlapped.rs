//! `OVERLAPPED.Internal` / `InternalHigh` as the completing thread and a polling client
//! share them.
//!
//! On Windows the kernel writes them when a request completes while the client may poll
//! `Internal` from another thread (`HasOverlappedIoCompleted`, `GetOverlappedResult`
//! without a wait). Here both sides are Rust threads, so the status word is accessed
//! atomically: the completion stores `InternalHigh` first, then `Internal` with release
//! ordering; a reader that loads `Internal` with acquire ordering and sees it complete
//! also sees `InternalHigh`. (Volatile accesses alone are a data race in Rust's memory
//! model, and ThreadSanitizer reported exactly that: docs/fuzzing.md, "Sanitizers".)

use std::sync::atomic::{AtomicUsize, Ordering};
use windows_sys::Win32::System::IO::OVERLAPPED;

/// Publishes a completion: `information` in `InternalHigh`, then `status` in `Internal`.
///
/// # Safety
/// `ov` is a live, 8-aligned OVERLAPPED that only this protocol writes while the request
/// is in flight (the Win32 contract: the client does not touch it until completion).
pub unsafe fn complete(ov: *mut OVERLAPPED, status: usize, information: usize) {
    // SAFETY: `ov` is live (contract); `Internal`/`InternalHigh` are usize fields aligned
    // as AtomicUsize, accessed only atomically while the request is in flight.
    unsafe {
        AtomicUsize::from_ptr(std::ptr::addr_of_mut!((*ov).InternalHigh))
            .store(information, Ordering::Relaxed);
        AtomicUsize::from_ptr(std::ptr::addr_of_mut!((*ov).Internal))
            .store(status, Ordering::Release);
    }
}

/// Marks a request in progress: `Internal` = `status` (STATUS_PENDING), `InternalHigh` = 0.
///
/// # Safety
/// As [`complete`].
pub unsafe fn start(ov: *mut OVERLAPPED, status: usize) {
    // SAFETY: as in `complete`.
    unsafe { complete(ov, status, 0) };
}

/// `Internal` (acquire: a completed status comes with its `InternalHigh`).
///
/// # Safety
/// `ov` is a live, 8-aligned OVERLAPPED.
#[must_use]
pub unsafe fn status(ov: *const OVERLAPPED) -> usize {
    // SAFETY: live (contract), aligned usize field, written only atomically.
    unsafe { AtomicUsize::from_ptr(std::ptr::addr_of!((*ov).Internal).cast_mut()) }
        .load(Ordering::Acquire)
}

/// `InternalHigh` (read after [`status`] saw the request complete).
///
/// # Safety
/// As [`status`].
#[must_use]
pub unsafe fn information(ov: *const OVERLAPPED) -> usize {
    // SAFETY: as in `status`.
    unsafe { AtomicUsize::from_ptr(std::ptr::addr_of!((*ov).InternalHigh).cast_mut()) }
        .load(Ordering::Relaxed)
}
