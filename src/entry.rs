//! `DriverEntry` and unload, in the order the Filter Manager requires:
//!
//! load:   state (config, queue) → `FltRegisterFilter` → server port → worker thread →
//!         `FltStartFiltering`
//! unload: mark unloading (creates stop reporting, connects are refused) → close server
//!         port (no new connects) → stop the worker (bounded by one send timeout) → drop
//!         what is still queued, counted → `FltUnregisterFilter` (the Filter Manager
//!         disconnects the clients — our Disconnect closes each client port, which
//!         releases waiting creates at once — and waits for running callbacks) → free
//!         the state.
//!
//! Every failure in `DriverEntry` unwinds what succeeded, in reverse.

use crate::state::{self, DriverState};
use crate::stats::Counter;
use core::sync::atomic::Ordering;
use portfilter_bindings::{
    FltCloseCommunicationPort, FltRegisterFilter, FltStartFiltering, FltUnregisterFilter, NTSTATUS,
    PDRIVER_OBJECT, PFLT_FILTER, STATUS_INSUFFICIENT_RESOURCES, STATUS_SUCCESS, UNICODE_STRING,
    nt_success,
};

/// The driver's entry point.
///
/// # Safety
/// Called once by the I/O manager (or fltsim) with a valid driver object.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn DriverEntry(
    driver_object: PDRIVER_OBJECT,
    _registry_path: *const UNICODE_STRING,
) -> NTSTATUS {
    let Some(st) = state::create() else {
        return STATUS_INSUFFICIENT_RESOURCES;
    };

    let mut filter: PFLT_FILTER = core::ptr::null_mut();
    // SAFETY: REGISTRATION is a valid static registration; `filter` is a valid out pointer.
    let status = unsafe {
        FltRegisterFilter(
            driver_object,
            &raw const crate::registration::REGISTRATION,
            &raw mut filter,
        )
    };
    if !nt_success(status) {
        crate::log!("FltRegisterFilter failed: {status:#010x}");
        // SAFETY: nothing was registered; no callback can run.
        unsafe { state::destroy() };
        return status;
    }
    st.filter.store(filter, Ordering::Release);

    if let Err(status) = crate::port::create_server_port(st) {
        crate::log!("FltCreateCommunicationPort failed: {status:#010x}");
        // SAFETY: filtering never started; unregistering waits for nothing.
        unsafe { FltUnregisterFilter(filter) };
        // SAFETY: after FltUnregisterFilter no callback runs.
        unsafe { state::destroy() };
        return status;
    }

    if let Err(status) = st.worker.start(st) {
        crate::log!("PsCreateSystemThread failed: {status:#010x}");
        // SAFETY: the server port was created just above and is closed once.
        unsafe { FltCloseCommunicationPort(*st.server_port.get()) };
        // SAFETY: the filter handle is valid.
        unsafe { FltUnregisterFilter(filter) };
        // SAFETY: after FltUnregisterFilter no callback runs; no worker was started.
        unsafe { state::destroy() };
        return status;
    }

    // SAFETY: the filter handle is valid.
    let status = unsafe { FltStartFiltering(filter) };
    if !nt_success(status) {
        crate::log!("FltStartFiltering failed: {status:#010x}");
        // SAFETY: the server port is ours and closed once.
        unsafe { FltCloseCommunicationPort(*st.server_port.get()) };
        st.worker.stop();
        // SAFETY: the filter handle is valid.
        unsafe { FltUnregisterFilter(filter) };
        // SAFETY: after FltUnregisterFilter no callback runs; the worker has exited.
        unsafe { state::destroy() };
        return status;
    }
    crate::log!("loaded; port {} open", crate::PORT_NAME);
    STATUS_SUCCESS
}

/// `FilterUnloadCallback` (`fltmc unload`, service stop).
pub(crate) unsafe extern "system" fn filter_unload(_flags: u32) -> NTSTATUS {
    let Some(st) = state::get() else {
        return STATUS_SUCCESS;
    };
    // SAFETY: called once, from the Filter Manager's unload path.
    unsafe { shut_down(st) };
    crate::log!("unloaded");
    STATUS_SUCCESS
}

/// The unload sequence (see the module documentation).
///
/// # Safety
/// Called once, on unload; `st` is the published state.
unsafe fn shut_down(st: &DriverState) {
    st.unloading.store(true, Ordering::Release);
    // 1. No new connections.
    // SAFETY: the server port was created in DriverEntry and is closed only here.
    unsafe { FltCloseCommunicationPort(*st.server_port.get()) };
    // 2. Stop the worker: it finishes its current send (finite timeout) and exits.
    st.worker.stop();
    // 3. Drop what is still queued, counted.
    let dropped = st.queue.clear();
    if dropped != 0 {
        st.stats.add(Counter::QueueDropped, dropped);
        crate::log!("unload: {dropped} queued events dropped");
    }
    // 4. Unregister: disconnects clients (our Disconnect runs), waits for callbacks.
    // SAFETY: the filter handle is valid until this returns.
    unsafe { FltUnregisterFilter(st.filter()) };
    // 5. Nothing can observe the state any more.
    // SAFETY: FltUnregisterFilter has returned and the worker has exited.
    unsafe { state::destroy() };
}
