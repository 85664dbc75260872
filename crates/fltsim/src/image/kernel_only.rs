//! Kernel routines only a loaded image imports: `ProbeForRead` / `ProbeForWrite` (called
//! by the SEH helper `src/glue/usercopy.c` inside its `__try`) and `KeBugCheckEx` (the
//! cross build's panic handler). The rlib build has no use for them: there fltsim defines
//! the helper's `PfCopyFromUser` / `PfCopyToUser` itself.
//!
//! `ProbeFor*` raise an exception on Windows. Here the check runs in Rust; when it fails,
//! the entry point faults deliberately on a reserved page with the exception code in
//! `ecx` and the image caller's registers untouched, and [`super::seh`] dispatches that
//! fault as an exception raised at the call site in the image.

use super::shadow;
use crate::verifier::{self, rule};
use std::arch::naked_asm;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `STATUS_DATATYPE_MISALIGNMENT` (a warning-severity code `ProbeFor*` raise).
pub(crate) const STATUS_DATATYPE_MISALIGNMENT: u32 = 0x8000_0002;
/// `STATUS_ACCESS_VIOLATION`.
pub(crate) const STATUS_ACCESS_VIOLATION: u32 = 0xC000_0005;

/// An inaccessible page: a fault on it is an exception raised by `ProbeFor*`.
pub(crate) static RAISE_PAGE: AtomicUsize = AtomicUsize::new(0);

/// Reserves [`RAISE_PAGE`] (once).
pub(crate) fn init() -> bool {
    if RAISE_PAGE.load(Ordering::Acquire) != 0 {
        return true;
    }
    // SAFETY: a fresh anonymous inaccessible page.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return false;
    }
    if RAISE_PAGE
        .compare_exchange(0, p as usize, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // SAFETY: our own page, never published.
        unsafe { libc::munmap(p, 4096) };
    }
    true
}

/// The checks of `ProbeForRead`/`ProbeForWrite`; 0 or the exception code to raise.
fn probe(address: usize, length: usize, alignment: u32, write: bool) -> u32 {
    let routine = if write {
        "ProbeForWrite"
    } else {
        "ProbeForRead"
    };
    if length == 0 {
        return 0;
    }
    if !matches!(alignment, 1 | 2 | 4 | 8 | 16) {
        verifier::fatal(
            rule::NULL_POINTER,
            &format!("{routine}: alignment {alignment}"),
        );
    }
    if !address.is_multiple_of(alignment as usize) {
        return STATUS_DATATYPE_MISALIGNMENT;
    }
    // User space, in this model, is the buffers of the MessageNotify calls in progress
    // (what PfCopy* accept in the rlib build); anything else is a kernel address, which
    // ProbeFor* refuse with an access violation.
    match shadow::materialize(address, length, write) {
        shadow::Probe::NotUser => {
            verifier::report(
                rule::USER_COPY_OUT_OF_RANGE,
                format!("{routine}({address:#x}, {length} bytes)"),
            );
            STATUS_ACCESS_VIOLATION
        }
        // ProbeForWrite touches every page; an unwritable one raises here. ProbeForRead
        // only checks the range: an unreadable page faults later, in the copy.
        shadow::Probe::Inaccessible if write => STATUS_ACCESS_VIOLATION,
        shadow::Probe::Inaccessible | shadow::Probe::Ready => 0,
    }
}

extern "win64" fn probe_read_status(address: usize, length: usize, alignment: u32) -> u32 {
    probe(address, length, alignment, false)
}

extern "win64" fn probe_write_status(address: usize, length: usize, alignment: u32) -> u32 {
    probe(address, length, alignment, true)
}

/// A `ProbeFor*` entry point (Windows x64 convention): calls `$check`; on a non-zero
/// status, faults on [`RAISE_PAGE`] with the status in `ecx`, RSP at the return address
/// into the image and every other non-volatile register as the image left it.
macro_rules! probe_entry {
    ($(#[$doc:meta])* $name:ident => $check:ident) => {
        $(#[$doc])*
        #[unsafe(naked)]
        unsafe extern "win64" fn $name(_address: usize, _length: usize, _alignment: u32) {
            naked_asm!(
                "sub rsp, 40",
                "call {check}",
                "add rsp, 40",
                "test eax, eax",
                "jnz 2f",
                "ret",
                "2:",
                "mov ecx, eax",
                "mov rax, qword ptr [rip + {page}]",
                "mov byte ptr [rax], 0",
                "ud2",
                check = sym $check,
                page = sym RAISE_PAGE,
            )
        }
    };
}

probe_entry!(
    /// `ProbeForRead(Address, Length, Alignment)`.
    probe_for_read => probe_read_status
);
probe_entry!(
    /// `ProbeForWrite(Address, Length, Alignment)`.
    probe_for_write => probe_write_status
);

/// The entry point of `ProbeForRead`.
pub(crate) fn probe_for_read_entry() -> usize {
    probe_for_read as *const () as usize
}

/// The entry point of `ProbeForWrite`.
pub(crate) fn probe_for_write_entry() -> usize {
    probe_for_write as *const () as usize
}

/// `KeBugCheckEx`: the machine stops. Named on stderr, then the process aborts.
pub(crate) extern "win64" fn ke_bug_check_ex(
    code: u32,
    p1: usize,
    p2: usize,
    p3: usize,
    p4: usize,
) -> ! {
    verifier::fatal(
        "KeBugCheckEx",
        &format!("bug check {code:#010x} ({p1:#x}, {p2:#x}, {p3:#x}, {p4:#x}) from the image"),
    )
}
