//! Structured exception handling for a loaded image: what Windows does for a fault in a
//! driver's `__try` block, limited to what the image needs.
//!
//! * [`dispatch`]: the fault → the function's `.pdata` entry → its language-specific
//!   handler → unwind to the `__except` target, non-volatile registers restored from the
//!   `UNWIND_INFO` codes ([`unwind`]);
//! * [`__C_specific_handler`] (imported by the image from ntoskrnl.exe): the scope table
//!   of a function with `__try`, its filters, `__except` targets and `__finally` blocks.

mod dispatch;
mod types;
pub(crate) mod unwind;

pub(crate) use dispatch::on_fault;
pub use dispatch::{ExceptionCounts, exception_counts};

use types::{
    Context, DispatcherContext, EXCEPTION_CONTINUE_EXECUTION, EXCEPTION_CONTINUE_SEARCH,
    EXCEPTION_EXIT_UNWIND, EXCEPTION_TARGET_UNWIND, EXCEPTION_UNWINDING, ExceptionPointers,
    ExceptionRecord, ScopeRecord,
};

/// `EXCEPTION_EXECUTE_HANDLER`: a constant filter in a scope record.
const EXCEPTION_EXECUTE_HANDLER: u32 = 1;

/// What `RtlUnwindEx` was asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnwindRequest {
    pub target_frame: u64,
    pub target_ip: u64,
    pub return_value: u64,
}

/// The `DISPATCHER_CONTEXT` fltsim's dispatcher passes, with room for the unwind request
/// its `__C_specific_handler` makes (on Windows the handler calls `RtlUnwindEx`, which
/// does not return; here it records the request and returns to the dispatcher).
#[repr(C)]
pub(crate) struct Dispatcher {
    pub base: DispatcherContext,
    pub unwind: Option<UnwindRequest>,
}

type Filter = unsafe extern "win64" fn(*mut ExceptionPointers, u64) -> i32;
type Termination = unsafe extern "win64" fn(u8, u64);

/// `__C_specific_handler`, Windows x64 convention.
///
/// # Safety
/// Called only by fltsim's dispatcher, with its `Dispatcher` behind `dispatcher` and a
/// scope table (`u32` count, then [`ScopeRecord`]s) at `HandlerData`.
#[allow(non_snake_case)]
pub(crate) unsafe extern "win64" fn __C_specific_handler(
    record: *mut ExceptionRecord,
    establisher_frame: u64,
    context: *mut Context,
    dispatcher: *mut DispatcherContext,
) -> i32 {
    // SAFETY: the dispatcher passes its own `Dispatcher`, whose first field this is.
    let d = unsafe { &mut *dispatcher.cast::<Dispatcher>() };
    let base = d.base.image_base;
    let table = d.base.handler_data as *const u32;
    // SAFETY: the scope table of the image's unwind info, mapped readable.
    let count = unsafe { table.read_unaligned() };
    let scope = |i: u32| -> ScopeRecord {
        // SAFETY: `i < count`: inside the table.
        unsafe {
            table
                .add(1)
                .cast::<ScopeRecord>()
                .add(i as usize)
                .read_unaligned()
        }
    };
    let pc = d.base.control_pc;
    let covers = |s: &ScopeRecord, address: u64| {
        address >= base + u64::from(s.begin) && address < base + u64::from(s.end)
    };
    // SAFETY: the dispatcher's record.
    let flags = unsafe { (*record).flags };

    if flags & (EXCEPTION_UNWINDING | EXCEPTION_EXIT_UNWIND) == 0 {
        // Search: the first `__except` whose range covers the PC and whose filter accepts.
        for i in d.base.scope_index..count {
            let s = scope(i);
            if !covers(&s, pc) || s.jump_target == 0 {
                continue;
            }
            if s.handler != EXCEPTION_EXECUTE_HANDLER {
                let mut pointers = ExceptionPointers { record, context };
                // SAFETY: the image's filter funclet for this scope.
                let verdict = unsafe {
                    let f: Filter = std::mem::transmute((base + u64::from(s.handler)) as usize);
                    f(&raw mut pointers, establisher_frame)
                };
                match verdict {
                    v if v < 0 => return EXCEPTION_CONTINUE_EXECUTION,
                    0 => continue,
                    _ => {}
                }
            }
            d.base.scope_index = i + 1;
            d.unwind = Some(UnwindRequest {
                target_frame: establisher_frame,
                target_ip: base + u64::from(s.jump_target),
                // SAFETY: the dispatcher's record.
                return_value: u64::from(unsafe { (*record).code }),
            });
            return EXCEPTION_CONTINUE_SEARCH;
        }
        return EXCEPTION_CONTINUE_SEARCH;
    }

    // Unwind: run the `__finally` blocks covering the PC, innermost first, stopping (in
    // the target frame) at the scope the target lies in.
    for i in d.base.scope_index..count {
        let s = scope(i);
        if !covers(&s, pc) || s.jump_target != 0 {
            continue;
        }
        if flags & EXCEPTION_TARGET_UNWIND != 0 && covers(&s, d.base.target_ip) {
            break;
        }
        d.base.scope_index = i + 1;
        // SAFETY: the image's termination handler for this scope (abnormal = TRUE).
        unsafe {
            let f: Termination = std::mem::transmute((base + u64::from(s.handler)) as usize);
            f(1, establisher_frame);
        }
    }
    EXCEPTION_CONTINUE_SEARCH
}

/// The entry point of `__C_specific_handler`.
pub(crate) fn c_specific_handler_entry() -> usize {
    __C_specific_handler as *const () as usize
}
