//! Exception dispatch for code running in a loaded image.
//!
//! 1. **The fault** (signal handler, async-signal-safe): a SIGSEGV/SIGBUS whose PC lies in
//!    the image, or a deliberate fault on the raise page by `ProbeFor*`, becomes an
//!    `EXCEPTION_RECORD` and a `CONTEXT` written on the faulting thread's stack below its
//!    RSP. The handler then redirects the thread to [`dispatch_entry`] and returns — as
//!    Windows hands a user-mode exception to `KiUserExceptionDispatcher` on the thread's
//!    own stack. Everything after runs in normal context (filters may fault again).
//! 2. **Search**: frame by frame (`.pdata` → `UNWIND_INFO`), each frame whose function
//!    has an exception handler gets it called — through the image's own handler address,
//!    Windows x64 convention — with a `DISPATCHER_CONTEXT`.
//! 3. **Unwind**: when `__C_specific_handler` decides to execute an `__except`, it asks
//!    for an unwind to (establisher frame, target); frames in between get their
//!    termination handlers called; the target frame's registers (non-volatiles restored
//!    from the unwind codes) are loaded with RIP = the `__except` block and RAX = the
//!    exception code.
//!
//! Anything the image does not need (nested exceptions, collided unwinds, a handler
//! returning something else) stops the process with the reason, as an unhandled
//! exception stops Windows (bug check `KMODE_EXCEPTION_NOT_HANDLED`).

use super::types::{
    Context, DispatcherContext, EXCEPTION_CONTINUE_EXECUTION, EXCEPTION_CONTINUE_SEARCH,
    EXCEPTION_NONCONTINUABLE, EXCEPTION_TARGET_UNWIND, EXCEPTION_UNWINDING, ExceptionRecord, RAX,
    RCX, RSP,
};
use super::unwind::{Frame, Handler};
use super::{Dispatcher, UnwindRequest};
use crate::image::kernel_only::{RAISE_PAGE, STATUS_ACCESS_VIOLATION};
use crate::image::{self, Loaded};
use crate::verifier;
use std::arch::naked_asm;
use std::sync::atomic::{AtomicU64, Ordering};

/// Frames searched before giving up.
const MAX_FRAMES: usize = 256;
/// Bytes left untouched below the faulting RSP before the dispatcher's stack.
const STACK_GAP: usize = 256;

/// Exceptions dispatched in images since the process started: (hardware faults,
/// raised by `ProbeFor*`, ended in an `__except` block).
static FAULTS: AtomicU64 = AtomicU64::new(0);
static RAISED: AtomicU64 = AtomicU64::new(0);
static HANDLED: AtomicU64 = AtomicU64::new(0);

/// Counts of exceptions in loaded images since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExceptionCounts {
    /// Hardware faults (SIGSEGV/SIGBUS) at a PC inside the image.
    pub faults: u64,
    /// Exceptions raised by `ProbeForRead`/`ProbeForWrite`.
    pub raised: u64,
    /// Exceptions that ended in one of the image's `__except` blocks.
    pub handled: u64,
}

/// The counts so far.
#[must_use]
pub fn exception_counts() -> ExceptionCounts {
    ExceptionCounts {
        faults: FAULTS.load(Ordering::Relaxed),
        raised: RAISED.load(Ordering::Relaxed),
        handled: HANDLED.load(Ordering::Relaxed),
    }
}

/// What the signal handler hands to [`dispatch_entry`].
#[repr(C)]
struct ExceptionFrame {
    record: ExceptionRecord,
    context: Context,
}

/// Linux `gregs` index of each unwind-numbered register (rax, rcx, rdx, rbx, rsp, rbp,
/// rsi, rdi, r8–r15).
const GREG_OF: [libc::c_int; 16] = [
    libc::REG_RAX,
    libc::REG_RCX,
    libc::REG_RDX,
    libc::REG_RBX,
    libc::REG_RSP,
    libc::REG_RBP,
    libc::REG_RSI,
    libc::REG_RDI,
    libc::REG_R8,
    libc::REG_R9,
    libc::REG_R10,
    libc::REG_R11,
    libc::REG_R12,
    libc::REG_R13,
    libc::REG_R14,
    libc::REG_R15,
];

/// The signal side. Returns false when the fault is not the image's (the caller goes on
/// with its own handling).
pub(crate) fn on_fault(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    uctx: *mut libc::c_void,
) -> bool {
    if (sig != libc::SIGSEGV && sig != libc::SIGBUS) || info.is_null() || uctx.is_null() {
        return false;
    }
    // SAFETY: the kernel passes valid siginfo and ucontext to an SA_SIGINFO handler.
    let (uc, address) = unsafe {
        (
            &mut *uctx.cast::<libc::ucontext_t>(),
            (*info).si_addr() as u64,
        )
    };
    let greg = |uc: &libc::ucontext_t, i: libc::c_int| uc.uc_mcontext.gregs[i as usize] as u64;
    let pc = greg(uc, libc::REG_RIP);
    let raise_page = RAISE_PAGE.load(Ordering::Relaxed) as u64;

    let mut context = Context::zeroed();
    for (n, &g) in GREG_OF.iter().enumerate() {
        context.gpr[n] = greg(uc, g);
    }
    context.rip = pc;
    context.eflags = greg(uc, libc::REG_EFL) as u32;
    if !uc.uc_mcontext.fpregs.is_null() {
        // SAFETY: the kernel's FXSAVE-layout area of this signal frame (512 bytes).
        let fx = unsafe { std::slice::from_raw_parts(uc.uc_mcontext.fpregs.cast::<u8>(), 512) };
        context.flt_save.copy_from_slice(fx);
        // SAFETY: as above.
        context.mx_csr = unsafe { (*uc.uc_mcontext.fpregs).mxcsr };
    }

    let mut record = ExceptionRecord {
        code: STATUS_ACCESS_VIOLATION,
        flags: 0,
        record: std::ptr::null_mut(),
        address: pc,
        number_parameters: 0,
        information: [0; 15],
    };
    if raise_page != 0 && address >= raise_page && address < raise_page + 4096 {
        // Raised by ProbeFor*: ecx holds the code; the stack holds the return address
        // into the image, the other registers are the image caller's.
        record.code = context.gpr[RCX] as u32;
        let rsp = context.gpr[RSP];
        // SAFETY: the raising stub was called by the image: [rsp] is its return address.
        let ret = unsafe { (rsp as *const u64).read() };
        context.rip = ret;
        context.gpr[RSP] = rsp + 8;
        record.address = ret;
        RAISED.fetch_add(1, Ordering::Relaxed);
    } else if image::code_contains(pc as usize) {
        // A hardware fault: an access violation with (read/write/execute, address).
        let err = greg(uc, libc::REG_ERR);
        record.number_parameters = 2;
        record.information[0] = if err & 0x10 != 0 {
            8
        } else if err & 0x2 != 0 {
            1
        } else {
            0
        };
        record.information[1] = address;
        FAULTS.fetch_add(1, Ordering::Relaxed);
    } else {
        return false;
    }

    // The exception goes to a per-thread slot (the signal frame may sit on this very
    // stack below RSP, so nothing is written there now); the thread continues in
    // `dispatch_entry` on its own stack, below the faulting RSP.
    // SAFETY: a const-initialised thread-local without destructor (no allocation); the
    // thread is here, not in `dispatch_entry`'s copy-out.
    PENDING.with(|p| unsafe { p.get().write(Some(ExceptionFrame { record, context })) });
    let fault_rsp = greg(uc, libc::REG_RSP) as usize;
    // RSP ≡ 8 (mod 16) at entry, as after a call; it never returns.
    let entry_rsp = ((fault_rsp - STACK_GAP) & !15) - 8;
    uc.uc_mcontext.gregs[libc::REG_RSP as usize] = entry_rsp as i64;
    uc.uc_mcontext.gregs[libc::REG_RIP as usize] = dispatch_entry as *const () as usize as i64;
    true
}

thread_local! {
    /// The exception the signal handler caught on this thread, for `dispatch_entry`.
    static PENDING: std::cell::UnsafeCell<Option<ExceptionFrame>> =
        const { std::cell::UnsafeCell::new(None) };
}

/// Where a faulting thread continues after the signal handler: dispatches the exception
/// and continues at the `__except` block it selects, or stops the process.
extern "C" fn dispatch_entry() -> ! {
    // SAFETY: the signal handler filled the slot before redirecting this thread here; no
    // other code touches it until the next fault on this thread.
    let Some(mut frame) = PENDING.with(|p| unsafe { (*p.get()).take() }) else {
        verifier::fatal("SEH dispatch", "no pending exception on this thread");
    };
    let target = match image::current() {
        Some(img) => {
            let original = frame.context;
            let outcome = dispatch(&img, &mut frame.record, &mut frame.context);
            drop(img);
            match outcome {
                Ok(target) => target,
                Err(reason) => unhandled(&frame.record, &original, &reason),
            }
        }
        None => unhandled(&frame.record, &frame.context, "no image is loaded"),
    };
    // SAFETY: a complete register state of a frame of the image (or the faulting one).
    unsafe { restore(&raw const target) }
}

fn unhandled(record: &ExceptionRecord, context: &Context, reason: &str) -> ! {
    let at = image::describe(context.rip);
    verifier::fatal(
        "exception not handled in the driver image (KMODE_EXCEPTION_NOT_HANDLED)",
        &format!(
            "exception {:#010x} at {at} (parameters {:#x?}): {reason}",
            record.code,
            &record.information[..record.number_parameters.min(15) as usize]
        ),
    )
}

type LanguageHandler = unsafe extern "win64" fn(
    *mut ExceptionRecord,
    u64,
    *mut Context,
    *mut DispatcherContext,
) -> i32;

/// A frame whose language handler is called.
struct Site {
    /// The frame's PC (`DISPATCHER_CONTEXT.ControlPc`).
    pc: u64,
    frame: Frame,
    handler: Handler,
}

/// Calls the site's language handler through the image with a `DISPATCHER_CONTEXT`
/// (`TargetIp` = `target_ip`, `ContextRecord` = `caller`, the frame unwound so far).
/// Returns its disposition and the unwind it asked for.
fn call_handler(
    base: u64,
    site: &Site,
    target_ip: u64,
    caller: &mut Context,
    record: &mut ExceptionRecord,
    context: &mut Context,
) -> (i32, Option<UnwindRequest>) {
    let mut dc = Dispatcher {
        base: DispatcherContext {
            control_pc: site.pc,
            image_base: base,
            function_entry: base + u64::from(site.frame.function_entry),
            establisher_frame: site.frame.establisher,
            target_ip,
            context_record: caller,
            language_handler: base + u64::from(site.handler.routine),
            handler_data: base + u64::from(site.handler.data),
            history_table: 0,
            scope_index: 0,
            fill0: 0,
        },
        unwind: None,
    };
    // SAFETY: the image's language handler for this frame (an address in its code, from
    // its unwind info), with the structures the Windows x64 contract gives it.
    let disposition = unsafe {
        let f: LanguageHandler = std::mem::transmute(dc.base.language_handler as usize);
        f(record, site.frame.establisher, context, &raw mut dc.base)
    };
    (disposition, dc.unwind)
}

/// Search phase; on a handler's unwind request, the unwind phase. The target context.
fn dispatch(
    img: &Loaded,
    record: &mut ExceptionRecord,
    context: &mut Context,
) -> Result<Context, String> {
    let base = img.base() as u64;
    let mut walk = *context;
    for _ in 0..MAX_FRAMES {
        if !img.contains(walk.rip as usize) {
            return Err(format!(
                "no __except in the image's frames took it (the search left the image at {:#x})",
                walk.rip
            ));
        }
        let pc = walk.rip;
        let frame = img.unwind().unwind(base, &mut walk)?;
        let Some(handler) = frame.exception_handler else {
            continue;
        };
        let mut caller = walk;
        let site = Site { pc, frame, handler };
        let (disposition, request) = call_handler(base, &site, 0, &mut caller, record, context);
        if let Some(request) = request {
            return unwind(img, record, context, request);
        }
        match disposition {
            EXCEPTION_CONTINUE_SEARCH => {}
            EXCEPTION_CONTINUE_EXECUTION if record.flags & EXCEPTION_NONCONTINUABLE == 0 => {
                return Ok(*context);
            }
            other => return Err(format!("language handler returned disposition {other}")),
        }
    }
    Err(format!("more than {MAX_FRAMES} frames"))
}

/// `RtlUnwindEx`: unwinds to `request.target_frame`, calling termination handlers of the
/// frames on the way, and returns the target frame's context at `request.target_ip`.
fn unwind(
    img: &Loaded,
    record: &mut ExceptionRecord,
    context: &Context,
    request: UnwindRequest,
) -> Result<Context, String> {
    let base = img.base() as u64;
    record.flags |= EXCEPTION_UNWINDING;
    let mut walk = *context;
    for _ in 0..MAX_FRAMES {
        if !img.contains(walk.rip as usize) {
            break;
        }
        let mut here = walk;
        let pc = walk.rip;
        let frame = img.unwind().unwind(base, &mut walk)?;
        if frame.establisher > request.target_frame {
            break;
        }
        let is_target = frame.establisher == request.target_frame;
        if let Some(handler) = frame.unwind_handler {
            if is_target {
                record.flags |= EXCEPTION_TARGET_UNWIND;
            }
            let site = Site { pc, frame, handler };
            let (disposition, again) =
                call_handler(base, &site, request.target_ip, &mut walk, record, &mut here);
            if disposition != EXCEPTION_CONTINUE_SEARCH || again.is_some() {
                return Err(format!(
                    "language handler returned disposition {disposition} while unwinding"
                ));
            }
        }
        if is_target {
            HANDLED.fetch_add(1, Ordering::Relaxed);
            let mut target = here;
            target.rip = request.target_ip;
            target.gpr[RAX] = request.return_value;
            return Ok(target);
        }
    }
    Err(format!(
        "unwind target frame {:#x} not found on the stack",
        request.target_frame
    ))
}

/// Loads every register of `ctx` and continues at its RIP on its RSP.
///
/// # Safety
/// `ctx` is a consistent register state of live code; the stack below its RSP is free.
#[unsafe(naked)]
unsafe extern "C" fn restore(ctx: *const Context) -> ! {
    naked_asm!(
        "ldmxcsr [rdi + 0x34]",
        "movdqa xmm0, [rdi + 0x1a0]",
        "movdqa xmm1, [rdi + 0x1b0]",
        "movdqa xmm2, [rdi + 0x1c0]",
        "movdqa xmm3, [rdi + 0x1d0]",
        "movdqa xmm4, [rdi + 0x1e0]",
        "movdqa xmm5, [rdi + 0x1f0]",
        "movdqa xmm6, [rdi + 0x200]",
        "movdqa xmm7, [rdi + 0x210]",
        "movdqa xmm8, [rdi + 0x220]",
        "movdqa xmm9, [rdi + 0x230]",
        "movdqa xmm10, [rdi + 0x240]",
        "movdqa xmm11, [rdi + 0x250]",
        "movdqa xmm12, [rdi + 0x260]",
        "movdqa xmm13, [rdi + 0x270]",
        "movdqa xmm14, [rdi + 0x280]",
        "movdqa xmm15, [rdi + 0x290]",
        // The target RAX, RDI and RIP go onto the target stack (free below its RSP),
        // then everything else is loaded, then RSP switches and the three are popped:
        // nothing is read from below RSP after the switch.
        "mov rax, [rdi + 0x98]",
        "sub rax, 24",
        "mov rcx, [rdi + 0x78]",
        "mov [rax], rcx",
        "mov rcx, [rdi + 0xb0]",
        "mov [rax + 8], rcx",
        "mov rcx, [rdi + 0xf8]",
        "mov [rax + 16], rcx",
        "mov rcx, [rdi + 0x80]",
        "mov rdx, [rdi + 0x88]",
        "mov rbx, [rdi + 0x90]",
        "mov rbp, [rdi + 0xa0]",
        "mov rsi, [rdi + 0xa8]",
        "mov r8, [rdi + 0xb8]",
        "mov r9, [rdi + 0xc0]",
        "mov r10, [rdi + 0xc8]",
        "mov r11, [rdi + 0xd0]",
        "mov r12, [rdi + 0xd8]",
        "mov r13, [rdi + 0xe0]",
        "mov r14, [rdi + 0xe8]",
        "mov r15, [rdi + 0xf0]",
        "mov rsp, rax",
        "pop rax",
        "pop rdi",
        "ret",
    )
}
