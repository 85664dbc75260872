//! User buffers of `MessageNotify`, placed so that touching them directly is caught.
//!
//! The driver never sees the client's real buffer addresses. Each call maps them to
//! *translated* addresses inside a reserved `PROT_NONE` region, keeping the low 12 bits
//! (so alignment checks see the real alignment). A direct dereference faults; the
//! SIGSEGV handler installed here recognises the region, names the rule and aborts.
//! `PfCopyFromUser` / `PfCopyToUser` translate back and copy with
//! `process_vm_readv`/`process_vm_writev` on the own process, which report `EFAULT`
//! for a bad client pointer instead of faulting: the copy returns
//! `STATUS_ACCESS_VIOLATION`. Addresses outside the buffers of a call in progress are a
//! verifier violation (and `STATUS_ACCESS_VIOLATION`).
//!
//! Linux only for `process_vm_*` (other Unix systems fall back to copying through a pipe,
//! which also reports `EFAULT`).

use crate::verifier::{self, rule};
use parking_lot::Mutex;
use portfilter_bindings::{
    NTSTATUS, STATUS_ACCESS_VIOLATION, STATUS_INSUFFICIENT_RESOURCES, STATUS_SUCCESS,
};
use std::ffi::c_void;
use std::sync::OnceLock;

/// Size of the reserved region (address space only; nothing is committed).
const REGION_SIZE: usize = 256 << 20;
const PAGE: usize = 4096;

struct Region(usize);
static REGION: OnceLock<Option<Region>> = OnceLock::new();

#[derive(Debug, Clone, Copy)]
struct Window {
    /// Offset of the window's first page in the region.
    offset: usize,
    /// Bytes reserved (pages, plus one guard page).
    span: usize,
    /// Translated start address (region + offset + low 12 bits of `user`).
    translated: usize,
    /// The client's address.
    user: usize,
    len: usize,
}

struct Windows {
    next: usize,
    active: Vec<Window>,
}

static WINDOWS: Mutex<Windows> = Mutex::new(Windows {
    next: 0,
    active: Vec::new(),
});

struct OldAction(libc::sigaction);
// SAFETY: written once before the handler is installed, then only read.
unsafe impl Sync for OldAction {}
// SAFETY: plain data.
unsafe impl Send for OldAction {}
static OLD_SEGV: OnceLock<OldAction> = OnceLock::new();
static OLD_BUS: OnceLock<OldAction> = OnceLock::new();

fn region_base() -> Option<usize> {
    REGION
        .get_or_init(|| {
            // SAFETY: an anonymous PROT_NONE reservation; no memory is touched.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    REGION_SIZE,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return None;
            }
            install_fault_handler();
            Some(Region(p as usize))
        })
        .as_ref()
        .map(|r| r.0)
}

/// Whether `address` lies in the region of translated user buffers.
#[must_use]
pub fn is_translated(address: usize) -> bool {
    region_base().is_some_and(|b| address >= b && address < b + REGION_SIZE)
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // A fault in a loaded image's code is a Windows exception: SEH dispatch.
    if crate::image::seh::on_fault(sig, info, ctx) {
        return;
    }
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let base = REGION
        .get()
        .and_then(|r| r.as_ref().map(|r| r.0))
        .unwrap_or(0);
    if base != 0 && addr >= base && addr < base + REGION_SIZE {
        let msg = b"fltsim verifier: FATAL: user-mode buffer dereferenced directly (not through PfCopyFromUser/PfCopyToUser); on Windows a bad client pointer here crashes the machine. Aborting.\n";
        // SAFETY: write(2) and abort(3) are async-signal-safe.
        unsafe {
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::abort();
        }
    }
    // Not ours: restore the previous disposition and return; the instruction faults
    // again and the previous handler (or the default action) deals with it.
    let old = if sig == libc::SIGBUS {
        OLD_BUS.get()
    } else {
        OLD_SEGV.get()
    };
    if let Some(old) = old {
        // SAFETY: restoring a disposition saved by sigaction.
        unsafe { libc::sigaction(sig, &raw const old.0, std::ptr::null_mut()) };
    }
}

fn install_fault_handler() {
    for (sig, slot) in [(libc::SIGSEGV, &OLD_SEGV), (libc::SIGBUS, &OLD_BUS)] {
        // SAFETY: zeroed sigaction structs are valid to fill in; sigaction(2) with valid
        // pointers; the handler only calls async-signal-safe functions.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_fault as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&raw mut new.sa_mask);
            if libc::sigaction(sig, &raw const new, &raw mut old) == 0 {
                let _ = slot.set(OldAction(old));
            }
        }
    }
}

/// The translated addresses of one MessageNotify call; unmapped when dropped.
pub(crate) struct Mapping {
    input: usize,
    output: usize,
    offsets: Vec<usize>,
}

impl Mapping {
    pub fn input(&self) -> *mut c_void {
        self.input as *mut c_void
    }
    pub fn output(&self) -> *mut c_void {
        self.output as *mut c_void
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let mut w = WINDOWS.lock();
        let base = region_base().unwrap_or(0);
        for win in w.active.iter().filter(|w| self.offsets.contains(&w.offset)) {
            // A loaded image touched the buffer directly (inside its SEH helper): write
            // back and discard the pages it materialized.
            crate::image::shadow::release(base + win.offset, win.span);
        }
        w.active.retain(|w| !self.offsets.contains(&w.offset));
    }
}

fn place(w: &mut Windows, base: usize, user: usize, len: usize) -> Option<Window> {
    let low = user & (PAGE - 1);
    let span = (low + len).div_ceil(PAGE) * PAGE + PAGE;
    if span > REGION_SIZE {
        return None;
    }
    let mut candidate = w.next;
    for _ in 0..=w.active.len() + 1 {
        if candidate + span > REGION_SIZE {
            candidate = 0;
        }
        match w
            .active
            .iter()
            .find(|a| candidate < a.offset + a.span && a.offset < candidate + span)
        {
            Some(a) => candidate = a.offset + a.span,
            None => {
                let win = Window {
                    offset: candidate,
                    span,
                    translated: base + candidate + low,
                    user,
                    len,
                };
                w.next = candidate + span;
                w.active.push(win);
                return Some(win);
            }
        }
    }
    None
}

/// Maps a call's buffers (null stays null).
pub(crate) fn map_call(
    input: *const c_void,
    input_len: u32,
    output: *mut c_void,
    output_len: u32,
) -> Result<Mapping, NTSTATUS> {
    let base = region_base().ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    let mut m = Mapping {
        input: 0,
        output: 0,
        offsets: Vec::new(),
    };
    let mut w = WINDOWS.lock();
    for (user, len, slot) in [
        (input as usize, input_len as usize, &mut m.input),
        (output as usize, output_len as usize, &mut m.output),
    ] {
        if user == 0 {
            continue;
        }
        let win = place(&mut w, base, user, len).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        m.offsets.push(win.offset);
        *slot = win.translated;
    }
    Ok(m)
}

/// The window holding `[translated, translated + len)`: (its translated start, the client
/// address there, its length).
pub(crate) fn window_of(translated: usize, len: usize) -> Option<(usize, usize, usize)> {
    let w = WINDOWS.lock();
    w.active
        .iter()
        .find(|a| {
            translated >= a.translated
                && translated
                    .checked_add(len)
                    .is_some_and(|end| end <= a.translated + a.len)
        })
        .map(|a| (a.translated, a.user, a.len))
}

/// Installs the fault handler (and reserves the region) if not done yet.
pub(crate) fn install_fault_handling() -> bool {
    region_base().is_some()
}

/// The client address of `[translated, translated + len)`, if it lies in an active window.
fn translate(translated: usize, len: usize) -> Option<usize> {
    window_of(translated, len).map(|(start, user, _)| user + (translated - start))
}

#[cfg(target_os = "linux")]
pub(crate) fn copy_raw(to_user: bool, local: *mut c_void, remote: usize, len: usize) -> bool {
    let liov = libc::iovec {
        iov_base: local,
        iov_len: len,
    };
    let riov = libc::iovec {
        iov_base: remote as *mut c_void,
        iov_len: len,
    };
    // SAFETY: process_vm_* on our own pid validate the remote range in the kernel
    // (EFAULT instead of a fault); the local range is the driver's kernel buffer.
    let n = unsafe {
        if to_user {
            libc::process_vm_writev(libc::getpid(), &raw const liov, 1, &raw const riov, 1, 0)
        } else {
            libc::process_vm_readv(libc::getpid(), &raw const liov, 1, &raw const riov, 1, 0)
        }
    };
    if n < 0 {
        let e = std::io::Error::last_os_error().raw_os_error();
        if matches!(e, Some(libc::ENOSYS | libc::EPERM)) {
            return copy_through_pipe(to_user, local, remote, len);
        }
        return false;
    }
    usize::try_from(n).is_ok_and(|n| n == len)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn copy_raw(to_user: bool, local: *mut c_void, remote: usize, len: usize) -> bool {
    copy_through_pipe(to_user, local, remote, len)
}

/// Copies through a pipe: write(2)/read(2) report EFAULT for a bad user address.
fn copy_through_pipe(to_user: bool, local: *mut c_void, remote: usize, len: usize) -> bool {
    let (src, dst) = if to_user {
        (local as usize, remote)
    } else {
        (remote, local as usize)
    };
    let mut fds = [0; 2];
    // SAFETY: pipe(2) with a valid array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return false;
    }
    let mut ok = true;
    let mut done = 0;
    while done < len && ok {
        let chunk = (len - done).min(PAGE);
        // SAFETY: write/read validate user addresses (EFAULT); fds are ours.
        let w = unsafe { libc::write(fds[1], (src + done) as *const c_void, chunk) };
        let r = if w > 0 {
            // SAFETY: read(2) validates the destination (EFAULT); fds are ours.
            unsafe { libc::read(fds[0], (dst + done) as *mut c_void, w.unsigned_abs()) }
        } else {
            -1
        };
        ok = w > 0 && r == w;
        done += w.max(0).unsigned_abs();
    }
    // SAFETY: closing our own fds.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    ok
}

fn copy(
    to_user: bool,
    kernel: *mut c_void,
    user: *const c_void,
    len: usize,
    routine: &str,
) -> NTSTATUS {
    if len == 0 {
        return STATUS_SUCCESS;
    }
    if kernel.is_null() {
        verifier::fatal(rule::NULL_POINTER, routine);
    }
    let Some(real) = translate(user as usize, len) else {
        verifier::report(
            rule::USER_COPY_OUT_OF_RANGE,
            format!("{routine}({user:p}, {len} bytes)"),
        );
        return STATUS_ACCESS_VIOLATION;
    };
    if copy_raw(to_user, kernel, real, len) {
        STATUS_SUCCESS
    } else {
        STATUS_ACCESS_VIOLATION
    }
}

/// `PfCopyFromUser`: copies from a (translated) user address, fault-tolerantly.
///
/// # Safety
/// `destination` is a kernel buffer of `length` writable bytes.
#[inline(never)]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn PfCopyFromUser(
    destination: *mut c_void,
    user_source: *const c_void,
    length: usize,
) -> NTSTATUS {
    copy(false, destination, user_source, length, "PfCopyFromUser")
}

/// `PfCopyToUser`: copies to a (translated) user address, fault-tolerantly.
///
/// # Safety
/// `source` is a kernel buffer of `length` readable bytes.
#[inline(never)]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn PfCopyToUser(
    user_destination: *mut c_void,
    source: *const c_void,
    length: usize,
) -> NTSTATUS {
    copy(
        true,
        source.cast_mut(),
        user_destination,
        length,
        "PfCopyToUser",
    )
}

pub(crate) fn reset() {
    let mut w = WINDOWS.lock();
    w.active.clear();
    w.next = 0;
}
