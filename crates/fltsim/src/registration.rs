//! Registration lifecycle: `FltRegisterFilter`, `FltStartFiltering` (instance setup on
//! each simulated volume), `FltUnregisterFilter`.

use crate::filter::{self, Callbacks, Filter, Instance, Operation};
use crate::image::win64::driver_call;
use crate::verifier::{self, rule};
use crate::volumes::{self, Volume};
use crate::{names, port};
use portfilter_bindings::{
    FLT_OPERATION_REGISTRATION, FLT_REGISTRATION, FLT_RELATED_OBJECTS, IRP_MJ_OPERATION_END,
    NTSTATUS, PDRIVER_OBJECT, PFLT_FILTER, STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER,
    STATUS_SUCCESS, nt_success,
};
use std::sync::Arc;
use std::time::Duration;

/// `FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT`.
pub const FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT: u32 = 0x1;
/// `FLTFL_INSTANCE_SETUP_NEWLY_MOUNTED_VOLUME`.
pub const FLTFL_INSTANCE_SETUP_NEWLY_MOUNTED_VOLUME: u32 = 0x4;
/// `FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD`.
pub const FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD: u32 = 0x2;
/// Longest operation list scanned for `IRP_MJ_OPERATION_END`.
pub const MAX_OPERATIONS: usize = 64;
/// How long `FltUnregisterFilter` waits for running callbacks before reporting them.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// `FLT_RELATED_OBJECTS` for an instance.
pub(crate) fn related_objects(f: &Arc<Filter>, instance: &Arc<Instance>) -> FLT_RELATED_OBJECTS {
    FLT_RELATED_OBJECTS {
        Size: u16::try_from(size_of::<FLT_RELATED_OBJECTS>()).unwrap_or(u16::MAX),
        TransactionContext: 0,
        Filter: f.as_ptr(),
        Volume: Arc::as_ptr(&instance.volume).cast_mut().cast(),
        Instance: Arc::as_ptr(instance).cast_mut().cast(),
        FileObject: std::ptr::null_mut(),
        Transaction: std::ptr::null_mut(),
    }
}

/// Reads and validates the operation array.
///
/// # Safety
/// `ops` is null or readable up to its terminator (checked up to [`MAX_OPERATIONS`]).
unsafe fn read_operations(ops: *const FLT_OPERATION_REGISTRATION) -> Option<Vec<Operation>> {
    let mut out = Vec::new();
    if ops.is_null() {
        return Some(out);
    }
    for i in 0..MAX_OPERATIONS {
        // SAFETY: within the array per the contract (stops at the terminator).
        let op = unsafe { ops.add(i).read() };
        if op.MajorFunction == IRP_MJ_OPERATION_END {
            return Some(out);
        }
        if op.PreOperation.is_none() && op.PostOperation.is_none() {
            return None;
        }
        out.push(Operation {
            major: op.MajorFunction,
            pre: op.PreOperation,
            post: op.PostOperation,
        });
    }
    None
}

/// `FltRegisterFilter`.
///
/// # Safety
/// `registration` is null or a readable `FLT_REGISTRATION`; `ret_filter` is writable.
#[inline(never)]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltRegisterFilter(
    driver: PDRIVER_OBJECT,
    registration: *const FLT_REGISTRATION,
    ret_filter: *mut PFLT_FILTER,
) -> NTSTATUS {
    if registration.is_null() || ret_filter.is_null() || driver.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    if !crate::driver::is_driver_object(driver) {
        verifier::report(rule::BAD_DRIVER_OBJECT, format!("{driver:p}"));
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: non-null, readable per the contract.
    let r = unsafe { registration.read() };
    if usize::from(r.Size) != size_of::<FLT_REGISTRATION>()
        || !(0x0200..=0x0203).contains(&r.Version)
    {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the contract covers the operation array.
    let Some(operations) = (unsafe { read_operations(r.OperationRegistration) }) else {
        return STATUS_INVALID_PARAMETER;
    };
    if filter::current().is_some() {
        // [inf] one filter per driver in this model.
        return STATUS_INVALID_DEVICE_STATE;
    }
    if let Some(status) = crate::faults::enter(crate::faults::Routine::FltRegisterFilter) {
        return status;
    }
    let f = Arc::new(Filter::new(operations, Callbacks::from_registration(&r)));
    let p = f.as_ptr();
    filter::set(Some(f));
    // SAFETY: non-null, writable per the contract.
    unsafe { ret_filter.write(p) };
    STATUS_SUCCESS
}

/// Creates the instance on `volume` unless InstanceSetup declines.
fn attach(f: &Arc<Filter>, volume: &Arc<Volume>, flags: u32) {
    let instance = Arc::new(Instance {
        volume: volume.clone(),
    });
    if let Some(setup) = f.callbacks.instance_setup {
        let objects = related_objects(f, &instance);
        let Some(_running) = f.enter_callback() else {
            return;
        };
        // SAFETY: the driver's callback with objects valid for the call.
        let status = unsafe {
            driver_call(
                setup,
                (
                    &raw const objects,
                    flags,
                    volume.device_type,
                    volume.filesystem,
                ),
            )
        };
        if !nt_success(status) {
            // STATUS_FLT_DO_NOT_ATTACH (or any failure): no instance on this volume.
            return;
        }
    }
    f.state.lock().instances.push(instance);
}

/// `FltStartFiltering`: instance setup on every volume.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn FltStartFiltering(filter: PFLT_FILTER) -> NTSTATUS {
    let Some(f) = filter::from_ptr(filter) else {
        verifier::report(
            rule::INVALID_OBJECT,
            format!("FltStartFiltering({filter:p})"),
        );
        return STATUS_INVALID_PARAMETER;
    };
    {
        let mut st = f.state.lock();
        if st.started || st.deleting {
            return STATUS_INVALID_DEVICE_STATE;
        }
        if let Some(status) = crate::faults::enter(crate::faults::Routine::FltStartFiltering) {
            return status;
        }
        st.started = true;
    }
    for v in volumes::all() {
        attach(&f, &v, FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT);
    }
    STATUS_SUCCESS
}

/// A volume mounted while the filter is filtering gets an instance.
pub(crate) fn attach_new_volume(volume: &Arc<Volume>) {
    if let Some(f) = filter::current() {
        let started = {
            let st = f.state.lock();
            st.started && !st.deleting
        };
        if started {
            attach(
                &f,
                volume,
                FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT
                    | FLTFL_INSTANCE_SETUP_NEWLY_MOUNTED_VOLUME,
            );
        }
    }
}

/// The instance of the filter on `volume`, if attached and not being torn down.
pub(crate) fn instance_on(f: &Arc<Filter>, volume: &Arc<Volume>) -> Option<Arc<Instance>> {
    let st = f.state.lock();
    if st.deleting || !st.started {
        return None;
    }
    st.instances
        .iter()
        .find(|i| Arc::ptr_eq(&i.volume, volume))
        .cloned()
}

/// `FltUnregisterFilter`: stops new callbacks, disconnects remaining clients (their
/// Disconnect callbacks run here), waits for callbacks in flight, tears instances
/// down, and checks what the driver left behind.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn FltUnregisterFilter(filter: PFLT_FILTER) {
    let Some(f) = filter::from_ptr(filter) else {
        verifier::report(
            rule::INVALID_OBJECT,
            format!("FltUnregisterFilter({filter:p})"),
        );
        return;
    };
    f.state.lock().deleting = true;
    // A server port still open holds a reference: the real FltUnregisterFilter would
    // wait for it forever.
    port::disconnect_all(filter);
    port::close_server_ports_at_unregister(filter);
    // Pended creates hold their callbacks open: the driver must have completed them.
    crate::pended::check_at_unregister();
    if !f.wait_idle(DRAIN_LIMIT) {
        verifier::report(
            rule::CALLBACK_AFTER_TEARDOWN,
            format!("callbacks still running {DRAIN_LIMIT:?} into FltUnregisterFilter"),
        );
    }
    let instances = std::mem::take(&mut f.state.lock().instances);
    for i in &instances {
        let objects = related_objects(&f, i);
        if let Some(start) = f.callbacks.teardown_start {
            // SAFETY: the driver's callback with objects valid for the call.
            unsafe {
                driver_call(
                    start,
                    (&raw const objects, FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD),
                )
            };
        }
        if let Some(complete) = f.callbacks.teardown_complete {
            // SAFETY: as above.
            unsafe {
                driver_call(
                    complete,
                    (&raw const objects, FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD),
                )
            };
        }
    }
    port::force_close_remaining(filter);
    names::report_unreleased("at FltUnregisterFilter");
    filter::set(None);
}
