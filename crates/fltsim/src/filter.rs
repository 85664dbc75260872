//! The registered filter: what `FltRegisterFilter` copied out of the driver's
//! `FLT_REGISTRATION`, its instances, and the count of driver callbacks in flight (so
//! `FltUnregisterFilter` can wait for them).

use crate::volumes::Volume;
use parking_lot::{Condvar, Mutex};
use portfilter_bindings::{
    FLT_REGISTRATION, PFLT_FILTER, PFLT_FILTER_UNLOAD_CALLBACK,
    PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK, PFLT_INSTANCE_SETUP_CALLBACK,
    PFLT_INSTANCE_TEARDOWN_CALLBACK, PFLT_POST_OPERATION_CALLBACK, PFLT_PRE_OPERATION_CALLBACK,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One operation registration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operation {
    pub major: u8,
    pub pre: Option<PFLT_PRE_OPERATION_CALLBACK>,
    pub post: Option<PFLT_POST_OPERATION_CALLBACK>,
}

/// The callbacks of an `FLT_REGISTRATION`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Callbacks {
    pub unload: Option<PFLT_FILTER_UNLOAD_CALLBACK>,
    pub instance_setup: Option<PFLT_INSTANCE_SETUP_CALLBACK>,
    pub _query_teardown: Option<PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK>,
    pub teardown_start: Option<PFLT_INSTANCE_TEARDOWN_CALLBACK>,
    pub teardown_complete: Option<PFLT_INSTANCE_TEARDOWN_CALLBACK>,
}

impl Callbacks {
    pub fn from_registration(r: &FLT_REGISTRATION) -> Self {
        Self {
            unload: r.FilterUnloadCallback,
            instance_setup: r.InstanceSetupCallback,
            _query_teardown: r.InstanceQueryTeardownCallback,
            teardown_start: r.InstanceTeardownStartCallback,
            teardown_complete: r.InstanceTeardownCompleteCallback,
        }
    }
}

/// An instance of the filter on a volume. Its address is the `PFLT_INSTANCE`.
#[derive(Debug)]
pub(crate) struct Instance {
    pub volume: Arc<Volume>,
}

#[derive(Debug, Default)]
pub(crate) struct FilterState {
    pub started: bool,
    /// `FltUnregisterFilter` began: no new callbacks, no new ports.
    pub deleting: bool,
    pub instances: Vec<Arc<Instance>>,
}

/// The filter object. Its address is the `PFLT_FILTER`.
#[derive(Debug)]
pub(crate) struct Filter {
    pub operations: Vec<Operation>,
    pub callbacks: Callbacks,
    pub state: Mutex<FilterState>,
    active: Mutex<u32>,
    idle: Condvar,
}

static FILTER: Mutex<Option<Arc<Filter>>> = Mutex::new(None);

impl Filter {
    pub fn new(operations: Vec<Operation>, callbacks: Callbacks) -> Self {
        Self {
            operations,
            callbacks,
            state: Mutex::new(FilterState::default()),
            active: Mutex::new(0),
            idle: Condvar::new(),
        }
    }

    pub fn as_ptr(self: &Arc<Self>) -> PFLT_FILTER {
        Arc::as_ptr(self).cast_mut().cast()
    }

    pub fn is_deleting(&self) -> bool {
        self.state.lock().deleting
    }

    /// Counts a driver callback in; `None` once the filter is being unregistered.
    pub fn enter_callback(self: &Arc<Self>) -> Option<CallbackGuard> {
        let deleting = self.state.lock().deleting;
        if deleting {
            return None;
        }
        *self.active.lock() += 1;
        Some(CallbackGuard(self.clone()))
    }

    /// Waits until no counted callback runs; false if `limit` passed first.
    pub fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut a = self.active.lock();
        while *a > 0 {
            if self.idle.wait_until(&mut a, deadline).timed_out() {
                return *a == 0;
            }
        }
        true
    }

    pub fn operation(&self, major: u8) -> Option<Operation> {
        self.operations.iter().find(|o| o.major == major).copied()
    }
}

/// A driver callback in flight.
#[derive(Debug)]
pub(crate) struct CallbackGuard(Arc<Filter>);

impl Drop for CallbackGuard {
    fn drop(&mut self) {
        let mut a = self.0.active.lock();
        *a -= 1;
        if *a == 0 {
            self.0.idle.notify_all();
        }
    }
}

/// The registered filter, if any.
pub(crate) fn current() -> Option<Arc<Filter>> {
    FILTER.lock().clone()
}

/// The registered filter if `p` is its address.
pub(crate) fn from_ptr(p: PFLT_FILTER) -> Option<Arc<Filter>> {
    FILTER
        .lock()
        .as_ref()
        .filter(|f| Arc::as_ptr(f).cast::<std::ffi::c_void>() == p.cast_const())
        .cloned()
}

pub(crate) fn set(f: Option<Arc<Filter>>) {
    *FILTER.lock() = f;
}
