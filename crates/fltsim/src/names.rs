//! File name information: `FltGetFileNameInformation`, `FltParseFileNameInformation`,
//! `FltReleaseFileNameInformation`, for the file of a simulated create.
//!
//! Normalized names are the long form of the path (`CreateRequest::long_name`, e.g. with
//! `PEDRO~1.GUS` expanded); opened names are the path as the caller passed it. Both are
//! `\Device\HarddiskVolumeN\...`. Short names (`FLT_FILE_NAME_SHORT`) are not modelled
//! (`STATUS_NOT_SUPPORTED`). Requests can be made to fail (see `CreateRequest`); every
//! query fails with `STATUS_FLT_INVALID_NAME_REQUEST` while the thread has a top-level
//! IRP [doc].
//! Every block handed out is tracked: one not released when its operation ends is a
//! verifier violation, as is one still held at unload.

use crate::create;
use crate::verifier::{self, rule};
use parking_lot::Mutex;
use portfilter_bindings::{
    FLT_CALLBACK_DATA, FLT_FILE_NAME_INFORMATION, FLT_FILE_NAME_NORMALIZED, FLT_FILE_NAME_OPENED,
    FLT_FILE_NAME_SHORT, FLTFL_FILE_NAME_PARSED_EXTENSION, FLTFL_FILE_NAME_PARSED_FINAL_COMPONENT,
    FLTFL_FILE_NAME_PARSED_PARENT_DIR, FLTFL_FILE_NAME_PARSED_STREAM, NTSTATUS,
    STATUS_FLT_INVALID_NAME_REQUEST, STATUS_INVALID_PARAMETER, STATUS_NOT_SUPPORTED,
    STATUS_SUCCESS, UNICODE_STRING,
};
use std::collections::BTreeMap;

/// A name block: the structure the driver sees, followed by the characters it points to.
#[repr(C)]
struct NameBlock {
    info: FLT_FILE_NAME_INFORMATION,
    chars: Vec<u16>,
    volume_units: usize,
}

#[derive(Debug)]
struct Record {
    op: u64,
    name: String,
    reported: bool,
}

static NAMES: Mutex<BTreeMap<usize, Record>> = Mutex::new(BTreeMap::new());

pub(crate) fn reset() {
    // Blocks a previous machine's driver never released (the verifier reported them when
    // their operation ended): that driver is gone, so the model frees them now.
    let leaked: Vec<usize> = std::mem::take(&mut *NAMES.lock()).into_keys().collect();
    for p in leaked {
        // SAFETY: every key is a `Box<NameBlock>` from FltGetFileNameInformation that was
        // never released (release removes the key); no driver of this machine can hold it.
        drop(unsafe { Box::from_raw(p as *mut NameBlock) });
    }
}

/// Name blocks handed out and not released.
#[must_use]
pub fn outstanding() -> usize {
    NAMES.lock().len()
}

/// Reports blocks of operation `op` still held when it ended.
pub(crate) fn check_operation_end(op: u64) {
    let mut names = NAMES.lock();
    let mut leaked = Vec::new();
    for r in names.values_mut().filter(|r| r.op == op && !r.reported) {
        r.reported = true;
        leaked.push(r.name.clone());
    }
    drop(names);
    for n in leaked {
        verifier::report(
            rule::NAME_INFO_NOT_RELEASED,
            format!("{n} (when its create completed)"),
        );
    }
}

/// Reports every block still held (unload).
pub(crate) fn report_unreleased(when: &str) {
    let mut names = NAMES.lock();
    let mut leaked = Vec::new();
    for r in names.values_mut().filter(|r| !r.reported) {
        r.reported = true;
        leaked.push(r.name.clone());
    }
    drop(names);
    for n in leaked {
        verifier::report(rule::NAME_INFO_NOT_RELEASED, format!("{n} ({when})"));
    }
}

fn counted(chars: &[u16], start: usize, len: usize) -> UNICODE_STRING {
    if len == 0 {
        return UNICODE_STRING::EMPTY;
    }
    let bytes = u16::try_from(len * 2).unwrap_or(0xFFFE);
    UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        // SAFETY-free: pointer arithmetic within `chars` (start + len <= chars.len()).
        Buffer: chars[start..].as_ptr().cast_mut(),
    }
}

/// `FltGetFileNameInformation`.
///
/// # Safety
/// `file_name_information` is writable.
#[inline(never)]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltGetFileNameInformation(
    callback_data: *mut FLT_CALLBACK_DATA,
    name_options: u32,
    file_name_information: *mut *mut FLT_FILE_NAME_INFORMATION,
) -> NTSTATUS {
    if file_name_information.is_null() || callback_data.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let Some(op) = create::op_names(callback_data) else {
        verifier::report(
            rule::INVALID_OBJECT,
            format!("FltGetFileNameInformation({callback_data:p})"),
        );
        return STATUS_INVALID_PARAMETER;
    };
    if name_options & 0xFF00 == 0 {
        return STATUS_INVALID_PARAMETER;
    }
    let format = name_options & 0xFF;
    let (name, failure) = match format {
        FLT_FILE_NAME_NORMALIZED => (&op.normalized, op.normalized_failure.or(op.name_failure)),
        FLT_FILE_NAME_OPENED => (&op.opened, op.name_failure),
        FLT_FILE_NAME_SHORT => return STATUS_NOT_SUPPORTED,
        _ => return STATUS_INVALID_PARAMETER,
    };
    if let Some(status) = failure {
        return status;
    }
    if let Some(status) = crate::faults::enter(crate::faults::Routine::FltGetFileNameInformation) {
        return status;
    }
    if crate::kernel::context::top_level_irp() != 0 {
        // [doc] "cannot get file name information if the TopLevelIrp field of the current
        // thread is not NULL, because the resulting file system recursion could cause
        // deadlocks or stack overflows."
        return STATUS_FLT_INVALID_NAME_REQUEST;
    }
    let chars: Vec<u16> = name.encode_utf16().collect();
    let volume_units = op.volume.encode_utf16().count().min(chars.len());
    let mut block = Box::new(NameBlock {
        info: FLT_FILE_NAME_INFORMATION {
            Size: u16::try_from(size_of::<FLT_FILE_NAME_INFORMATION>()).unwrap_or(0),
            NamesParsed: 0,
            Format: format,
            Name: UNICODE_STRING::EMPTY,
            Volume: UNICODE_STRING::EMPTY,
            Share: UNICODE_STRING::EMPTY,
            Extension: UNICODE_STRING::EMPTY,
            Stream: UNICODE_STRING::EMPTY,
            FinalComponent: UNICODE_STRING::EMPTY,
            ParentDir: UNICODE_STRING::EMPTY,
        },
        chars,
        volume_units,
    });
    block.info.Name = counted(&block.chars, 0, block.chars.len());
    block.info.Volume = counted(&block.chars, 0, volume_units);
    let p = Box::into_raw(block);
    NAMES.lock().insert(
        p as usize,
        Record {
            op: op.id,
            name: name.clone(),
            reported: false,
        },
    );
    // SAFETY: non-null, writable per the contract; `info` is the block's first field.
    unsafe { file_name_information.write(p.cast()) };
    STATUS_SUCCESS
}

fn live(p: *mut FLT_FILE_NAME_INFORMATION) -> bool {
    NAMES.lock().contains_key(&(p as usize))
}

/// `FltParseFileNameInformation`: fills ParentDir, FinalComponent, Extension, Stream.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn FltParseFileNameInformation(
    file_name_information: *mut FLT_FILE_NAME_INFORMATION,
) -> NTSTATUS {
    if !live(file_name_information) {
        verifier::report(
            rule::INVALID_OBJECT,
            format!("FltParseFileNameInformation({file_name_information:p})"),
        );
        return STATUS_INVALID_PARAMETER;
    }
    if let Some(status) = crate::faults::enter(crate::faults::Routine::FltParseFileNameInformation)
    {
        return status;
    }
    // SAFETY: a live block created by FltGetFileNameInformation (checked above).
    let block = unsafe { &mut *file_name_information.cast::<NameBlock>() };
    let rest = &block.chars[block.volume_units..];
    let base = block.volume_units;
    let bs = u16::from(b'\\');
    if let Some(last) = rest.iter().rposition(|&c| c == bs) {
        let parent_len = last + 1;
        let final_start = parent_len;
        let final_comp = &rest[final_start..];
        let colon = final_comp.iter().position(|&c| c == u16::from(b':'));
        let name_part = &final_comp[..colon.unwrap_or(final_comp.len())];
        let ext = name_part
            .iter()
            .rposition(|&c| c == u16::from(b'.'))
            .map(|dot| (dot + 1, name_part.len() - dot - 1));
        block.info.ParentDir = counted(&block.chars, base, parent_len);
        block.info.FinalComponent = counted(&block.chars, base + final_start, final_comp.len());
        block.info.Stream = colon.map_or(UNICODE_STRING::EMPTY, |c| {
            counted(&block.chars, base + final_start + c, final_comp.len() - c)
        });
        block.info.Extension = ext.map_or(UNICODE_STRING::EMPTY, |(start, len)| {
            counted(&block.chars, base + final_start + start, len)
        });
    }
    block.info.NamesParsed = FLTFL_FILE_NAME_PARSED_FINAL_COMPONENT
        | FLTFL_FILE_NAME_PARSED_EXTENSION
        | FLTFL_FILE_NAME_PARSED_STREAM
        | FLTFL_FILE_NAME_PARSED_PARENT_DIR;
    STATUS_SUCCESS
}

/// `FltReleaseFileNameInformation`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn FltReleaseFileNameInformation(
    file_name_information: *mut FLT_FILE_NAME_INFORMATION,
) {
    if NAMES
        .lock()
        .remove(&(file_name_information as usize))
        .is_none()
    {
        verifier::report(
            rule::NAME_INFO_BAD_RELEASE,
            format!("FltReleaseFileNameInformation({file_name_information:p})"),
        );
        return;
    }
    // SAFETY: created by Box::into_raw in FltGetFileNameInformation, released once
    // (removed from the table above).
    drop(unsafe { Box::from_raw(file_name_information.cast::<NameBlock>()) });
}
