//! `DriverEntry` and unload, in the order the Filter Manager requires:
//!
//! load:   state (config, queue) → `FltRegisterFilter` → server port → worker thread →
//!         `FltStartFiltering`
//! unload: mark unloading (creates stop reporting, connects are refused) → close server
//!         port (no new connects) → tell the worker to stop → close every client port
//!         ourselves (wakes every sender blocked on one — the worker, creates waiting
//!         for the decider or an observer — under every reading of the Filter Manager's
//!         disconnect, and seals the connection table) → join the worker (it has nothing
//!         left to wait for) → drop what is still queued, counted → `FltUnregisterFilter`
//!         (disconnects nothing any more; waits for running callbacks, which no client
//!         can hold) → free the state. No step waits for a client: unload is bounded by
//!         scheduling, not by any timeout (docs/driver.md, "Bounds").
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
        crate::log_error!("no pool for the driver state; not loaded");
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
        crate::log_error!("FltRegisterFilter failed: {status:#010x}");
        // SAFETY: nothing was registered; no callback can run.
        unsafe { state::destroy() };
        return status;
    }
    st.filter.store(filter, Ordering::Release);

    if let Err(status) = crate::port::create_server_port(st) {
        crate::log_error!("FltCreateCommunicationPort failed: {status:#010x}");
        // SAFETY: filtering never started; unregistering waits for nothing.
        unsafe { FltUnregisterFilter(filter) };
        // SAFETY: after FltUnregisterFilter no callback runs.
        unsafe { state::destroy() };
        return status;
    }

    if let Err(status) = st.worker.start(st) {
        crate::log_error!("starting the queued-notify worker failed: {status:#010x}");
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
        crate::log_error!("FltStartFiltering failed: {status:#010x}");
        // SAFETY: the server port is ours and closed once.
        unsafe { FltCloseCommunicationPort(*st.server_port.get()) };
        st.worker.stop();
        // SAFETY: the filter handle is valid.
        unsafe { FltUnregisterFilter(filter) };
        // SAFETY: after FltUnregisterFilter no callback runs; the worker has exited.
        unsafe { state::destroy() };
        return status;
    }
    crate::log_info!("loaded; port {} open", crate::PORT_NAME);
    STATUS_SUCCESS
}

/// `FilterUnloadCallback` (`fltmc unload`, service stop).
pub(crate) unsafe extern "system" fn filter_unload(_flags: u32) -> NTSTATUS {
    let Some(st) = state::get() else {
        return STATUS_SUCCESS;
    };
    // SAFETY: called once, from the Filter Manager's unload path.
    unsafe { shut_down(st) };
    crate::log_info!("unloaded");
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
    // 2. Close every client port: each FltSendMessage blocked on one returns at once
    //    (fltmgr may otherwise wake senders only at FltCloseClientPort, and the worker
    //    must not be joined while it waits for a frozen client). The worker is told to
    //    stop first, so that when its send returns it starts no other.
    st.worker.request_stop();
    let closed = st.connections.close_all(st.filter());
    if closed != 0 {
        crate::log_info!("unload: {closed} clients disconnected");
    }
    // 3. Stop the worker: any send it was in has returned; it exits.
    st.worker.stop();
    // 4. Drop what is still queued, counted.
    let dropped = st.queue.clear();
    if dropped != 0 {
        st.stats.add(Counter::QueueDropped, dropped);
        crate::log_warning!("unload: {dropped} queued events dropped");
    }
    // 5. Unregister: waits for running callbacks (none can wait for a client now).
    // SAFETY: the filter handle is valid until this returns.
    unsafe { FltUnregisterFilter(st.filter()) };
    // 6. Nothing can observe the state any more.
    // SAFETY: FltUnregisterFilter has returned and the worker has exited.
    unsafe { state::destroy() };
}
