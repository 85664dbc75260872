//! The image's unwind data (`.pdata` → `UNWIND_INFO`), decoded once at load with goblin,
//! and the virtual unwind of one frame as Microsoft's x64 exception-handling
//! documentation describes it: undo the prolog's effects recorded in the unwind codes
//! (only those of prolog instructions already executed when the PC is inside the prolog),
//! follow chained unwind info, then pop the return address. A PC in no function's range is
//! a leaf function: the return address is at `[rsp]`.
//!
//! Not handled: a PC inside an *epilogue* (Windows recognises the epilogue's instructions
//! and emulates them). Faults there mean a corrupted stack; the dispatcher would unwind
//! that frame as if its body were running.

use super::types::{Context, RSP};
use goblin::pe::PE;
use goblin::pe::exception::{RuntimeFunction, UnwindInfo, UnwindOperation};

/// `UNW_FLAG_EHANDLER`: the handler is called while searching for an exception handler.
const UNW_FLAG_EHANDLER: u8 = 0x1;
/// `UNW_FLAG_UHANDLER`: the handler is called while unwinding.
const UNW_FLAG_UHANDLER: u8 = 0x2;
/// Longest chain of chained unwind infos followed.
const MAX_CHAIN: usize = 32;

#[derive(Debug, Clone, Copy)]
enum Op {
    Push(u8),
    Alloc(u32),
    SetFp,
    Save(u8, u32),
    SaveXmm128(u8, u32),
    MachineFrame(bool),
}

#[derive(Debug, Clone)]
struct Info {
    prolog: u8,
    frame_register: u8,
    frame_offset: u32,
    /// (prolog offset after the instruction, operation), in unwind order.
    codes: Vec<(u8, Op)>,
    flags: u8,
    /// (handler rva, rva of its data) when EHANDLER or UHANDLER is set.
    handler: Option<(u32, u32)>,
    chained: Option<Box<Info>>,
}

#[derive(Debug, Clone)]
struct Function {
    begin: u32,
    end: u32,
    /// RVA of the `RUNTIME_FUNCTION` entry (for `DISPATCHER_CONTEXT.FunctionEntry`).
    entry: u32,
    info: Info,
}

/// The decoded unwind data of an image.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    functions: Vec<Function>,
}

/// A language-specific handler of a frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Handler {
    /// RVA of the handler routine.
    pub routine: u32,
    /// RVA of its data (for `__C_specific_handler`: the scope table).
    pub data: u32,
}

/// What unwinding one frame found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    /// The establisher frame (the frame base: RSP after the prolog's fixed allocation,
    /// or the frame register minus its offset).
    pub establisher: u64,
    /// RVA of the function's `RUNTIME_FUNCTION`, 0 for a leaf.
    pub function_entry: u32,
    /// Called while searching (UNW_FLAG_EHANDLER), when the PC is past the prolog.
    pub exception_handler: Option<Handler>,
    /// Called while unwinding (UNW_FLAG_UHANDLER), when the PC is past the prolog.
    pub unwind_handler: Option<Handler>,
}

fn decode(
    pe: &PE<'_>,
    data: &goblin::pe::exception::ExceptionData<'_>,
    function: RuntimeFunction,
    info_flags: &dyn Fn(u32) -> Option<(u8, u8)>,
    depth: usize,
) -> Result<Info, String> {
    if depth > MAX_CHAIN {
        return Err("chained unwind info too deep".into());
    }
    let unwind: UnwindInfo<'_> = data
        .get_unwind_info(function, &pe.sections)
        .map_err(|e| format!("unwind info of {:#x}: {e}", function.begin_address))?;
    let mut codes = Vec::new();
    for code in unwind.unwind_codes() {
        let code =
            code.map_err(|e| format!("unwind code of {:#x}: {e}", function.begin_address))?;
        let reg = |r: goblin::pe::exception::Register| r.0;
        let xmm = |r: goblin::pe::exception::Register| r.0.wrapping_sub(17);
        let off = |o: goblin::pe::exception::StackFrameOffset| match o {
            goblin::pe::exception::StackFrameOffset::RSP(o)
            | goblin::pe::exception::StackFrameOffset::FP(o) => o,
        };
        let op = match code.operation {
            UnwindOperation::PushNonVolatile(r) => Op::Push(reg(r)),
            UnwindOperation::Alloc(n) => Op::Alloc(n),
            UnwindOperation::SetFPRegister => Op::SetFp,
            UnwindOperation::SaveNonVolatile(r, o) => Op::Save(reg(r), off(o)),
            UnwindOperation::SaveXMM128(r, o) => Op::SaveXmm128(xmm(r), off(o)),
            UnwindOperation::PushMachineFrame(e) => Op::MachineFrame(e),
            UnwindOperation::Epilog { .. } | UnwindOperation::Noop => continue,
            other => {
                return Err(format!(
                    "unwind operation {other:?} in {:#x} is not supported",
                    function.begin_address
                ));
            }
        };
        codes.push((code.code_offset, op));
    }
    // The flags byte and the handler's data address are read from the unwind info itself.
    let (flags, count) = info_flags(function.unwind_info_address & !1)
        .ok_or_else(|| format!("unwind info of {:#x} unreadable", function.begin_address))?;
    let handler = match unwind.handler {
        Some(
            goblin::pe::exception::UnwindHandler::ExceptionHandler(rva, _)
            | goblin::pe::exception::UnwindHandler::TerminationHandler(rva, _),
        ) => {
            let slots = u32::from(count).next_multiple_of(2);
            let data = (function.unwind_info_address & !1) + 4 + 2 * slots + 4;
            Some((rva, data))
        }
        None => None,
    };
    let chained = match unwind.chained_info {
        Some(next) => Some(Box::new(decode(pe, data, next, info_flags, depth + 1)?)),
        None => None,
    };
    Ok(Info {
        prolog: unwind.size_of_prolog,
        frame_register: unwind.frame_register.0,
        frame_offset: unwind.frame_register_offset,
        codes,
        flags,
        handler,
        chained,
    })
}

impl Table {
    /// Decodes every function of the image's exception directory. `image` is the mapped
    /// image (read for the flags byte and code count of each unwind info).
    pub fn decode(pe: &PE<'_>, image: &[u8]) -> Result<Self, String> {
        let Some(data) = &pe.exception_data else {
            return Ok(Self::default());
        };
        let pdata = pe
            .header
            .optional_header
            .and_then(|o| o.data_directories.get_exception_table().copied())
            .map_or(0, |d| d.virtual_address);
        let info_flags = |rva: u32| -> Option<(u8, u8)> {
            let at = usize::try_from(rva).ok()?;
            let version_flags = *image.get(at)?;
            let count = *image.get(at + 2)?;
            Some((version_flags >> 3, count))
        };
        let mut functions = Vec::with_capacity(data.len());
        for (i, f) in data.functions().enumerate() {
            let f = f.map_err(|e| format!(".pdata entry {i}: {e}"))?;
            let info = decode(pe, data, f, &info_flags, 0)?;
            functions.push(Function {
                begin: f.begin_address,
                end: f.end_address,
                entry: pdata + u32::try_from(i * 12).map_err(|_| "too many functions")?,
                info,
            });
        }
        functions.sort_by_key(|f| f.begin);
        Ok(Self { functions })
    }

    /// Number of functions with unwind data.
    pub fn len(&self) -> usize {
        self.functions.len()
    }

    fn lookup(&self, rva: u32) -> Option<&Function> {
        let i = self.functions.partition_point(|f| f.begin <= rva);
        let f = self.functions.get(i.checked_sub(1)?)?;
        (rva < f.end).then_some(f)
    }

    /// Unwinds `ctx` (at `ctx.rip`, inside the image mapped at `base`) to its caller.
    ///
    /// # Errors
    /// A stack slot the unwind codes name that cannot be read.
    pub fn unwind(&self, base: u64, ctx: &mut Context) -> Result<Frame, String> {
        let rva = u32::try_from(ctx.rip.wrapping_sub(base)).map_err(|_| "pc outside the image")?;
        let Some(f) = self.lookup(rva) else {
            // Leaf function: no prolog, the return address is at [rsp].
            let establisher = ctx.gpr[RSP];
            ctx.rip = read_u64(ctx.gpr[RSP])?;
            ctx.gpr[RSP] += 8;
            return Ok(Frame {
                establisher,
                function_entry: 0,
                exception_handler: None,
                unwind_handler: None,
            });
        };
        let offset = rva - f.begin;
        let info = &f.info;
        let in_prolog = offset < u32::from(info.prolog);
        let frame_set = info.frame_register != 0
            && (!in_prolog
                || info
                    .codes
                    .iter()
                    .any(|(o, op)| matches!(op, Op::SetFp) && u32::from(*o) <= offset));
        let establisher = if frame_set {
            ctx.gpr[usize::from(info.frame_register)].wrapping_sub(u64::from(info.frame_offset))
        } else {
            ctx.gpr[RSP]
        };
        let mut machine_frame = apply(info, in_prolog.then_some(offset), frame_set, ctx)?;
        let mut next = info.chained.as_deref();
        while let Some(chained) = next {
            machine_frame |= apply(chained, None, chained.frame_register != 0, ctx)?;
            next = chained.chained.as_deref();
        }
        if !machine_frame {
            ctx.rip = read_u64(ctx.gpr[RSP])?;
            ctx.gpr[RSP] += 8;
        }
        let handler = |flag: u8| {
            (!in_prolog && info.flags & flag != 0)
                .then_some(info.handler)
                .flatten()
                .map(|(routine, data)| Handler { routine, data })
        };
        Ok(Frame {
            establisher,
            function_entry: f.entry,
            exception_handler: handler(UNW_FLAG_EHANDLER),
            unwind_handler: handler(UNW_FLAG_UHANDLER),
        })
    }
}

/// Undoes the operations of `info` (those at or before `prolog_offset` when the PC is in
/// the prolog). Returns whether a machine frame was popped (then RIP and RSP are set).
fn apply(
    info: &Info,
    prolog_offset: Option<u32>,
    frame_set: bool,
    ctx: &mut Context,
) -> Result<bool, String> {
    let frame_base = |ctx: &Context| {
        if frame_set {
            ctx.gpr[usize::from(info.frame_register)].wrapping_sub(u64::from(info.frame_offset))
        } else {
            ctx.gpr[RSP]
        }
    };
    let mut machine_frame = false;
    for &(at, op) in &info.codes {
        if prolog_offset.is_some_and(|p| u32::from(at) > p) {
            continue;
        }
        match op {
            Op::Push(r) => {
                ctx.gpr[usize::from(r & 15)] = read_u64(ctx.gpr[RSP])?;
                ctx.gpr[RSP] += 8;
            }
            Op::Alloc(n) => ctx.gpr[RSP] += u64::from(n),
            Op::SetFp => {
                ctx.gpr[RSP] = ctx.gpr[usize::from(info.frame_register & 15)]
                    .wrapping_sub(u64::from(info.frame_offset));
            }
            Op::Save(r, o) => {
                ctx.gpr[usize::from(r & 15)] = read_u64(frame_base(ctx) + u64::from(o))?;
            }
            Op::SaveXmm128(x, o) => {
                let at = frame_base(ctx) + u64::from(o);
                let lo = read_u64(at)?.to_le_bytes();
                let hi = read_u64(at + 8)?.to_le_bytes();
                let mut v = [0u8; 16];
                v[..8].copy_from_slice(&lo);
                v[8..].copy_from_slice(&hi);
                ctx.set_xmm(usize::from(x), v);
            }
            Op::MachineFrame(error_code) => {
                let rsp = ctx.gpr[RSP] + if error_code { 8 } else { 0 };
                ctx.rip = read_u64(rsp)?;
                ctx.gpr[RSP] = read_u64(rsp + 24)?;
                machine_frame = true;
            }
        }
    }
    Ok(machine_frame)
}

/// Reads a stack slot, refusing addresses that cannot be a thread's stack.
fn read_u64(address: u64) -> Result<u64, String> {
    if address < 0x1_0000 || !address.is_multiple_of(8) {
        return Err(format!("stack slot {address:#x} is not readable"));
    }
    let mut value = 0u64;
    // process_vm_readv on our own pid reports a bad address instead of faulting.
    if crate::usercopy::copy_raw(false, (&raw mut value).cast(), address as usize, 8) {
        Ok(value)
    } else {
        Err(format!("stack slot {address:#x} is not readable"))
    }
}
