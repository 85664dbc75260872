//! Loading and unloading the driver: `DriverEntry` with a fake `DRIVER_OBJECT` and
//! registry path, and the `fltmc unload` path (the filter's unload callback).

use crate::image::win64::driver_call;
use crate::kernel::{pool, thread};
use crate::verifier::{self, rule};
use crate::{filter, names, process, registration};
use parking_lot::Mutex;
use portfilter_bindings::{
    FLTFL_FILTER_UNLOAD_MANDATORY, NTSTATUS, PDRIVER_OBJECT, STATUS_INVALID_DEVICE_STATE,
    STATUS_NOT_SUPPORTED, UNICODE_STRING, nt_success,
};

/// The driver's entry point, as portfilter declares it.
pub type DriverEntry = unsafe extern "system" fn(PDRIVER_OBJECT, *const UNICODE_STRING) -> NTSTATUS;

/// Size of a real x64 `DRIVER_OBJECT`; the fake is that many zeroed bytes (Type 4, Size).
const DRIVER_OBJECT_SIZE: usize = 0x150;
/// The service key DriverEntry receives.
pub const REGISTRY_PATH: &str = r"\Registry\Machine\System\CurrentControlSet\Services\portfilter";

struct Loaded {
    object: Box<[u64]>,
    _path_buffer: Box<[u16]>,
    path: Box<UNICODE_STRING>,
}
// SAFETY: the boxes are owned here; the raw pointer inside `path` points into
// `_path_buffer`, which lives exactly as long.
unsafe impl Send for Loaded {}

static LOADED: Mutex<Option<Loaded>> = Mutex::new(None);

pub(crate) fn is_driver_object(p: PDRIVER_OBJECT) -> bool {
    LOADED
        .lock()
        .as_ref()
        .is_some_and(|l| l.object.as_ptr().cast::<std::ffi::c_void>() == p.cast_const())
}

/// Whether a driver is loaded.
#[must_use]
pub fn is_loaded() -> bool {
    LOADED.lock().is_some()
}

/// Loads the driver: calls `entry(DriverObject, RegistryPath)` on the calling thread (in
/// the System process, at PASSIVE_LEVEL). A failure status unloads it again (with the
/// leak checks of an unload).
///
/// # Errors
/// `STATUS_INVALID_DEVICE_STATE` if a driver is loaded; DriverEntry's failure status.
pub fn load_driver(entry: DriverEntry) -> Result<(), NTSTATUS> {
    let (object, path): (*mut std::ffi::c_void, *const UNICODE_STRING) = {
        let mut loaded = LOADED.lock();
        if loaded.is_some() {
            return Err(STATUS_INVALID_DEVICE_STATE);
        }
        let mut object = vec![0u64; DRIVER_OBJECT_SIZE / 8].into_boxed_slice();
        // DRIVER_OBJECT.Type = IO_TYPE_DRIVER (4), .Size = sizeof(DRIVER_OBJECT).
        object[0] = 4 | ((DRIVER_OBJECT_SIZE as u64) << 16);
        let mut buf: Box<[u16]> = REGISTRY_PATH.encode_utf16().collect();
        let bytes = u16::try_from(buf.len() * 2).unwrap_or(u16::MAX);
        let path = Box::new(UNICODE_STRING {
            Length: bytes,
            MaximumLength: bytes,
            Buffer: buf.as_mut_ptr(),
        });
        let l = loaded.insert(Loaded {
            object,
            _path_buffer: buf,
            path,
        });
        (l.object.as_mut_ptr().cast(), &raw const *l.path)
    };
    let status = {
        let _system = process::enter_unchecked(process::SYSTEM_PID);
        // SAFETY: the driver's entry point with a driver object and registry path that
        // stay valid while it is loaded.
        unsafe { driver_call(entry, (object, path)) }
    };
    if nt_success(status) {
        Ok(())
    } else {
        if let Some(f) = filter::current() {
            // DriverEntry failed but left the filter registered: the image goes away
            // with the filter still pointing into it.
            verifier::report(
                rule::UNLOAD_WITHOUT_UNREGISTER,
                format!("DriverEntry failed with {status:#x} without FltUnregisterFilter"),
            );
            registration::FltUnregisterFilter(f.as_ptr());
        }
        finish_unload("after DriverEntry failed");
        Err(status)
    }
}

/// `fltmc unload`: calls the filter's unload callback (flags 0). A refusal is returned and
/// the driver stays loaded. After a successful unload the model checks that the filter
/// unregistered, that no system thread runs, no kernel handle is open and no pool is
/// left (each a verifier violation).
///
/// # Errors
/// The unload callback's failure status; `STATUS_NOT_SUPPORTED` when the filter has no
/// unload callback (it cannot be unloaded); `STATUS_INVALID_DEVICE_STATE` when no
/// filter is registered.
pub fn unload_driver() -> Result<(), NTSTATUS> {
    unload_with_flags(0)
}

/// The unload of a shutdown / machine teardown (`FLTFL_FILTER_UNLOAD_MANDATORY`).
///
/// # Errors
/// As [`unload_driver`]; a refusal is also a verifier violation here.
pub fn unload_driver_mandatory() -> Result<(), NTSTATUS> {
    unload_with_flags(FLTFL_FILTER_UNLOAD_MANDATORY)
}

fn unload_with_flags(flags: u32) -> Result<(), NTSTATUS> {
    let Some(f) = filter::current() else {
        if is_loaded() {
            // A driver that never registered a filter cannot be unloaded through
            // the Filter Manager; the machine forgets it.
            finish_unload("driver without a filter");
            return Ok(());
        }
        return Err(STATUS_INVALID_DEVICE_STATE);
    };
    let Some(unload) = f.callbacks.unload else {
        return Err(STATUS_NOT_SUPPORTED);
    };
    let status = {
        let _system = process::enter_unchecked(process::SYSTEM_PID);
        // SAFETY: the driver's unload callback.
        unsafe { driver_call(unload, (flags,)) }
    };
    if !nt_success(status) {
        if flags & FLTFL_FILTER_UNLOAD_MANDATORY == 0 {
            return Err(status);
        }
        verifier::report(
            rule::MANDATORY_UNLOAD_REFUSED,
            format!("status {status:#x}"),
        );
    }
    if let Some(f) = filter::current() {
        verifier::report(
            rule::UNLOAD_WITHOUT_UNREGISTER,
            "the unload callback returned with the filter still registered",
        );
        registration::FltUnregisterFilter(f.as_ptr());
    }
    finish_unload("at unload");
    if nt_success(status) {
        Ok(())
    } else {
        Err(status)
    }
}

fn finish_unload(when: &str) {
    let running = thread::running_system_threads();
    if running > 0 {
        verifier::report(
            rule::THREAD_RUNNING_AT_UNLOAD,
            format!("{running} thread(s) {when}"),
        );
    }
    let open = thread::open_kernel_handles();
    if open > 0 {
        verifier::report(rule::KERNEL_HANDLE_LEAK, format!("{open} handle(s) {when}"));
    }
    names::report_unreleased(when);
    pool::report_leaks(when);
    *LOADED.lock() = None;
    crate::image::on_unload();
}

pub(crate) fn reset() {
    *LOADED.lock() = None;
}
