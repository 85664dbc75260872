//! The Windows x64 structures of exception dispatch, in their documented layouts
//! (`CONTEXT`, `EXCEPTION_RECORD`, `EXCEPTION_POINTERS`, `DISPATCHER_CONTEXT`,
//! `C_SCOPE_TABLE`), with sizes and offsets asserted.

/// `CONTEXT` (x64): what a filter sees through `EXCEPTION_POINTERS`, and the register
/// state the dispatcher unwinds. `gpr` is in the order of the unwind-code register
/// numbers (rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8–r15), which is also `CONTEXT`'s.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
pub(crate) struct Context {
    pub p_home: [u64; 6],
    pub context_flags: u32,
    pub mx_csr: u32,
    pub segments: [u16; 6],
    pub eflags: u32,
    pub debug: [u64; 6],
    pub gpr: [u64; 16],
    pub rip: u64,
    /// `XMM_SAVE_AREA32` (the FXSAVE layout); XMM registers at 0xA0.
    pub flt_save: [u8; 512],
    pub vector_register: [[u64; 2]; 26],
    pub vector_control: u64,
    pub debug_control: u64,
    pub last_branch: [u64; 4],
}

const _: () = {
    assert!(size_of::<Context>() == 0x4d0);
    assert!(std::mem::offset_of!(Context, context_flags) == 0x30);
    assert!(std::mem::offset_of!(Context, eflags) == 0x44);
    assert!(std::mem::offset_of!(Context, gpr) == 0x78);
    assert!(std::mem::offset_of!(Context, rip) == 0xf8);
    assert!(std::mem::offset_of!(Context, flt_save) == 0x100);
    assert!(std::mem::offset_of!(Context, vector_register) == 0x300);
};

/// `CONTEXT_AMD64 | CONTEXT_CONTROL | CONTEXT_INTEGER | CONTEXT_FLOATING_POINT`.
pub(crate) const CONTEXT_FULL: u32 = 0x0010_000b;
/// Register numbers of the unwind codes.
pub(crate) const RAX: usize = 0;
pub(crate) const RCX: usize = 1;
pub(crate) const RSP: usize = 4;
/// Offset of XMM0 in `flt_save`.
const XMM_OFFSET: usize = 0xa0;

impl Context {
    /// An all-zero context.
    pub fn zeroed() -> Self {
        Self {
            p_home: [0; 6],
            context_flags: CONTEXT_FULL,
            mx_csr: 0,
            segments: [0; 6],
            eflags: 0,
            debug: [0; 6],
            gpr: [0; 16],
            rip: 0,
            flt_save: [0; 512],
            vector_register: [[0; 2]; 26],
            vector_control: 0,
            debug_control: 0,
            last_branch: [0; 4],
        }
    }

    /// Sets XMM register `n` (0–15).
    pub fn set_xmm(&mut self, n: usize, value: [u8; 16]) {
        let at = XMM_OFFSET + 16 * (n & 15);
        self.flt_save[at..at + 16].copy_from_slice(&value);
    }
}

/// `EXCEPTION_RECORD`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct ExceptionRecord {
    pub code: u32,
    pub flags: u32,
    pub record: *mut ExceptionRecord,
    pub address: u64,
    pub number_parameters: u32,
    pub information: [u64; 15],
}

const _: () = {
    assert!(size_of::<ExceptionRecord>() == 152);
    assert!(std::mem::offset_of!(ExceptionRecord, address) == 16);
    assert!(std::mem::offset_of!(ExceptionRecord, information) == 32);
};

/// `EXCEPTION_NONCONTINUABLE`.
pub(crate) const EXCEPTION_NONCONTINUABLE: u32 = 0x1;
/// `EXCEPTION_UNWINDING`.
pub(crate) const EXCEPTION_UNWINDING: u32 = 0x2;
/// `EXCEPTION_EXIT_UNWIND`.
pub(crate) const EXCEPTION_EXIT_UNWIND: u32 = 0x4;
/// `EXCEPTION_TARGET_UNWIND`.
pub(crate) const EXCEPTION_TARGET_UNWIND: u32 = 0x20;

/// `EXCEPTION_POINTERS`.
#[repr(C)]
pub(crate) struct ExceptionPointers {
    pub record: *mut ExceptionRecord,
    pub context: *mut Context,
}

/// `EXCEPTION_DISPOSITION` values.
pub(crate) const EXCEPTION_CONTINUE_EXECUTION: i32 = 0;
pub(crate) const EXCEPTION_CONTINUE_SEARCH: i32 = 1;

/// `DISPATCHER_CONTEXT` (x64).
#[repr(C)]
pub(crate) struct DispatcherContext {
    pub control_pc: u64,
    pub image_base: u64,
    pub function_entry: u64,
    pub establisher_frame: u64,
    pub target_ip: u64,
    pub context_record: *mut Context,
    pub language_handler: u64,
    pub handler_data: u64,
    pub history_table: u64,
    pub scope_index: u32,
    pub fill0: u32,
}

const _: () = {
    assert!(size_of::<DispatcherContext>() == 80);
    assert!(std::mem::offset_of!(DispatcherContext, handler_data) == 56);
    assert!(std::mem::offset_of!(DispatcherContext, scope_index) == 72);
};

/// One `C_SCOPE_TABLE` entry (image-relative addresses).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScopeRecord {
    pub begin: u32,
    pub end: u32,
    /// The filter, `EXCEPTION_EXECUTE_HANDLER` (1) for a constant filter, or the
    /// termination handler when `jump_target` is 0.
    pub handler: u32,
    /// The `__except` block; 0 for a `__finally`.
    pub jump_target: u32,
}
