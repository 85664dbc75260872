//! User buffers as a loaded image sees them.
//!
//! MessageNotify hands the driver *translated* addresses in an inaccessible region
//! (`crate::usercopy`). The rlib build never touches them: fltsim's own `PfCopy*` copy
//! with `process_vm_*`. A loaded image carries the real SEH helper, which probes the range
//! (`ProbeForRead`/`ProbeForWrite`) and then copies with plain loads and stores inside
//! `__try`. So the probe *materializes* the pages it accepts: each translated page gets a
//! private copy of the client's bytes (read-only for a read probe, read-write for a write
//! probe, whose writability is checked by writing the same bytes back). A page whose
//! client memory cannot be read (or written) stays inaccessible, so the copy faults
//! exactly where it would on Windows and the image's own `__except` handles it.
//! When the call ends, written pages go back to the client and every page is discarded.
//!
//! Bytes of a page outside the call's buffer are zero in the copy and never written back.
//! A page the driver touches without probing it first still faults (as the rlib's direct
//! dereference does); inside `__try` that becomes an access violation, outside it the
//! image's exception is unhandled and the process stops.

use crate::usercopy;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::ffi::c_void;

const PAGE: usize = 4096;

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// Not inside the buffers of a MessageNotify call in progress.
    NotUser,
    /// A client page in the range cannot be read (or, for a write probe, written).
    Inaccessible,
    /// Every page is materialized.
    Ready,
}

#[derive(Debug, Clone, Copy)]
struct Page {
    /// The part of the page that belongs to the buffer: `[lo, hi)` (translated).
    lo: usize,
    hi: usize,
    /// The client address of `lo`.
    user: usize,
    writable: bool,
}

static PAGES: Mutex<BTreeMap<usize, Page>> = Mutex::new(BTreeMap::new());

fn remap(page: usize, prot: libc::c_int) -> bool {
    let flags = libc::MAP_PRIVATE
        | libc::MAP_ANONYMOUS
        | libc::MAP_FIXED
        | if prot == libc::PROT_NONE {
            libc::MAP_NORESERVE
        } else {
            0
        };
    // SAFETY: `page` is a page of fltsim's reserved region of translated buffers, which
    // nothing but this module maps.
    let p = unsafe { libc::mmap(page as *mut c_void, PAGE, prot, flags, -1, 0) };
    p != libc::MAP_FAILED
}

fn protect(page: usize, prot: libc::c_int) -> bool {
    // SAFETY: as in `remap`.
    unsafe { libc::mprotect(page as *mut c_void, PAGE, prot) == 0 }
}

/// Probes `[address, address + length)` for reading or writing and materializes its pages.
pub(crate) fn materialize(address: usize, length: usize, write: bool) -> Probe {
    let Some((start, user, len)) = usercopy::window_of(address, length) else {
        return Probe::NotUser;
    };
    let end = start + len;
    let mut pages = PAGES.lock();
    let mut result = Probe::Ready;
    let first = address & !(PAGE - 1);
    let mut page = first;
    while page < address + length {
        let lo = page.max(start);
        let hi = (page + PAGE).min(end);
        let client = user + (lo - start);
        let ok = match pages.get(&page).copied() {
            Some(p) if p.writable || !write => true,
            Some(mut p) => {
                // Read-only so far: check that the client page takes writes.
                let ok = usercopy::copy_raw(true, lo as *mut c_void, client, hi - lo)
                    && protect(page, libc::PROT_READ | libc::PROT_WRITE);
                p.writable = ok;
                pages.insert(page, p);
                ok
            }
            None => {
                let ok = remap(page, libc::PROT_READ | libc::PROT_WRITE)
                    && usercopy::copy_raw(false, lo as *mut c_void, client, hi - lo)
                    && (!write || usercopy::copy_raw(true, lo as *mut c_void, client, hi - lo))
                    && (write || protect(page, libc::PROT_READ));
                if ok {
                    pages.insert(
                        page,
                        Page {
                            lo,
                            hi,
                            user: client,
                            writable: write,
                        },
                    );
                } else {
                    remap(page, libc::PROT_NONE);
                }
                ok
            }
        };
        if !ok {
            result = Probe::Inaccessible;
        }
        page += PAGE;
    }
    result
}

/// The call whose window spans `[start, start + span)` ended: writes back what the image
/// wrote and makes the pages inaccessible again.
pub(crate) fn release(start: usize, span: usize) {
    let mut pages = PAGES.lock();
    if pages.is_empty() {
        return;
    }
    let taken: Vec<(usize, Page)> = pages
        .range(start..start + span)
        .map(|(k, v)| (*k, *v))
        .collect();
    for (page, p) in taken {
        pages.remove(&page);
        if p.writable {
            // A failure here means the client unmapped its buffer during the call; the
            // bytes are lost as they would be on Windows.
            let _ = usercopy::copy_raw(true, p.lo as *mut c_void, p.user, p.hi - p.lo);
        }
        remap(page, libc::PROT_NONE);
    }
}

/// Discards every materialized page (machine reset).
pub(crate) fn reset() {
    let mut pages = PAGES.lock();
    for page in std::mem::take(&mut *pages).into_keys() {
        remap(page, libc::PROT_NONE);
    }
}
