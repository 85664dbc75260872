//! Kernel events (`KEVENT`): the 24-byte object's address maps to a model event.

use super::time::Deadline;
use crate::verifier::{self, rule};
use parking_lot::{Condvar, Mutex};
use portfilter_bindings::{
    BOOLEAN, KEVENT, KPROCESSOR_MODE, LARGE_INTEGER, NOTIFICATION_EVENT, NTSTATUS,
    STATUS_INVALID_PARAMETER, STATUS_SUCCESS, STATUS_TIMEOUT,
};
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::Arc;

/// A model event: notification (stays set) or synchronization (auto-reset).
#[derive(Debug)]
pub struct KernelEvent {
    notification: bool,
    state: Mutex<bool>,
    cond: Condvar,
}

impl KernelEvent {
    fn set(&self) -> bool {
        let mut s = self.state.lock();
        let previous = *s;
        *s = true;
        if self.notification {
            self.cond.notify_all();
        } else {
            self.cond.notify_one();
        }
        previous
    }

    fn clear(&self) {
        *self.state.lock() = false;
    }

    fn wait(&self, deadline: Deadline) -> bool {
        let mut s = self.state.lock();
        loop {
            if *s {
                if !self.notification {
                    *s = false;
                }
                return true;
            }
            match deadline {
                Deadline::Immediate => return false,
                Deadline::Never => self.cond.wait(&mut s),
                Deadline::At(at) => {
                    if self.cond.wait_until(&mut s, at).timed_out() && !*s {
                        return false;
                    }
                }
            }
        }
    }
}

static EVENTS: Mutex<BTreeMap<usize, Arc<KernelEvent>>> = Mutex::new(BTreeMap::new());

fn lookup(event: *const c_void, routine: &str) -> Option<Arc<KernelEvent>> {
    let e = EVENTS.lock().get(&(event as usize)).cloned();
    if e.is_none() {
        verifier::report(rule::EVENT_UNINITIALIZED, format!("{routine}({event:p})"));
    }
    e
}

pub(crate) fn reset() {
    EVENTS.lock().clear();
}

/// `KeInitializeEvent`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn KeInitializeEvent(event: *mut KEVENT, kind: i32, state: BOOLEAN) {
    if event.is_null() {
        verifier::fatal(rule::NULL_POINTER, "KeInitializeEvent(NULL)");
    }
    EVENTS.lock().insert(
        event as usize,
        Arc::new(KernelEvent {
            notification: kind == NOTIFICATION_EVENT,
            state: Mutex::new(state != 0),
            cond: Condvar::new(),
        }),
    );
}

/// `KeSetEvent`: returns the previous state.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn KeSetEvent(event: *mut KEVENT, _increment: i32, _wait: BOOLEAN) -> i32 {
    super::counts::bump(super::counts::Routine::KeSetEvent);
    lookup(event.cast(), "KeSetEvent").map_or(0, |e| i32::from(e.set()))
}

/// `KeClearEvent`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn KeClearEvent(event: *mut KEVENT) {
    if let Some(e) = lookup(event.cast(), "KeClearEvent") {
        e.clear();
    }
}

/// `KeWaitForSingleObject` on an event.
///
/// # Safety
/// `timeout` is null or a readable `LARGE_INTEGER`.
#[inline(never)]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn KeWaitForSingleObject(
    object: *mut c_void,
    _wait_reason: i32,
    _wait_mode: KPROCESSOR_MODE,
    _alertable: BOOLEAN,
    timeout: *mut LARGE_INTEGER,
) -> NTSTATUS {
    let Some(e) = lookup(object, "KeWaitForSingleObject") else {
        return STATUS_INVALID_PARAMETER;
    };
    // SAFETY: the caller's contract.
    let deadline = unsafe { Deadline::from_nt(timeout) };
    if e.wait(deadline) {
        STATUS_SUCCESS
    } else {
        STATUS_TIMEOUT
    }
}
