//! Synchronisation: a push lock with RAII guards (`FltAcquirePushLock*` enter a critical
//! region) and a kernel event wrapper.

use core::cell::UnsafeCell;
use portfilter_bindings::{
    EX_PUSH_LOCK, EXECUTIVE, FALSE, FltAcquirePushLockExclusive, FltAcquirePushLockShared,
    FltDeletePushLock, FltInitializePushLock, FltReleasePushLock, KERNEL_MODE, KEVENT,
    KeClearEvent, KeInitializeEvent, KeSetEvent, KeWaitForSingleObject, LARGE_INTEGER,
    NOTIFICATION_EVENT, STATUS_TIMEOUT, SYNCHRONIZATION_EVENT,
};

/// A Filter Manager push lock protecting a `T`.
///
/// It must not move after [`PushLock::init`]: it lives inside a pool allocation.
pub(crate) struct PushLock<T> {
    lock: UnsafeCell<EX_PUSH_LOCK>,
    data: UnsafeCell<T>,
}

// SAFETY: a writer holds the push lock exclusively (it may move or mutate the `T`, hence
// `T: Send`); readers hold it shared and use `&T` at the same time, hence `T: Sync`.
unsafe impl<T: Send + Sync> Sync for PushLock<T> {}
// SAFETY: the lock word and T move together.
unsafe impl<T: Send> Send for PushLock<T> {}

impl<T> PushLock<T> {
    /// A lock that still needs [`PushLock::init`] at its final address.
    pub(crate) const fn new(value: T) -> Self {
        Self {
            lock: UnsafeCell::new(0),
            data: UnsafeCell::new(value),
        }
    }

    /// Initialises the lock word in place. Call once, before any other use.
    pub(crate) fn init(&self) {
        // SAFETY: the lock word is ours and not yet in use.
        unsafe { FltInitializePushLock(self.lock.get()) };
    }

    /// Deletes the lock. Call once, when no thread can use it any more.
    pub(crate) fn delete(&self) {
        // SAFETY: by contract no thread holds or waits on the lock.
        unsafe { FltDeletePushLock(self.lock.get()) };
    }

    /// Shared access.
    pub(crate) fn read(&self) -> ReadGuard<'_, T> {
        // SAFETY: the lock was initialised by `init`.
        unsafe { FltAcquirePushLockShared(self.lock.get()) };
        ReadGuard { lock: self }
    }

    /// Exclusive access.
    pub(crate) fn write(&self) -> WriteGuard<'_, T> {
        // SAFETY: the lock was initialised by `init`.
        unsafe { FltAcquirePushLockExclusive(self.lock.get()) };
        WriteGuard { lock: self }
    }
}

/// Shared guard.
pub(crate) struct ReadGuard<'a, T> {
    lock: &'a PushLock<T>,
}
impl<T> core::ops::Deref for ReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: we hold the lock shared: no writer exists.
        unsafe { &*self.lock.data.get() }
    }
}
impl<T> Drop for ReadGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: we acquired the lock in `read`.
        unsafe { FltReleasePushLock(self.lock.lock.get()) };
    }
}

/// Exclusive guard.
pub(crate) struct WriteGuard<'a, T> {
    lock: &'a PushLock<T>,
}
impl<T> core::ops::Deref for WriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: we hold the lock exclusively.
        unsafe { &*self.lock.data.get() }
    }
}
impl<T> core::ops::DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: we hold the lock exclusively.
        unsafe { &mut *self.lock.data.get() }
    }
}
impl<T> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: we acquired the lock in `write`.
        unsafe { FltReleasePushLock(self.lock.lock.get()) };
    }
}

/// A kernel event (`KEVENT`) that must not move after [`Event::init`] (it lives inside a
/// pool allocation).
pub(crate) struct Event {
    event: UnsafeCell<KEVENT>,
}

// SAFETY: a KEVENT is designed to be signalled and waited on from any thread; the Ke*
// routines synchronise access to it.
unsafe impl Sync for Event {}
// SAFETY: as above; it is not yet in use when moved (before `init`).
unsafe impl Send for Event {}

/// What a bounded wait ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The event was signalled.
    Signalled,
    /// The timeout expired first.
    TimedOut,
}

impl Event {
    /// An event that still needs [`Event::init`] at its final address.
    pub(crate) const fn new() -> Self {
        Self {
            event: UnsafeCell::new(KEVENT::ZERO),
        }
    }

    /// Initialises the event in place, not signalled. `auto_reset`: a synchronization
    /// event (one wait consumes the signal); otherwise a notification event.
    pub(crate) fn init(&self, auto_reset: bool) {
        let kind = if auto_reset {
            SYNCHRONIZATION_EVENT
        } else {
            NOTIFICATION_EVENT
        };
        // SAFETY: the event storage is ours, at its final address, and not yet in use.
        unsafe { KeInitializeEvent(self.event.get(), kind, FALSE) };
    }

    /// Signals the event.
    pub(crate) fn set(&self) {
        // SAFETY: the event was initialised by `init`.
        unsafe { KeSetEvent(self.event.get(), 0, FALSE) };
    }

    /// Resets the event to not signalled.
    pub(crate) fn clear(&self) {
        // SAFETY: the event was initialised by `init`.
        unsafe { KeClearEvent(self.event.get()) };
    }

    /// Waits until the event is signalled, at most `timeout_ms` milliseconds
    /// (`None`: without a bound — only for waits whose end another bound guarantees).
    pub(crate) fn wait(&self, timeout_ms: Option<u32>) -> Wait {
        let mut timeout = relative_timeout(timeout_ms.unwrap_or(0));
        let timeout_ptr = if timeout_ms.is_some() {
            &raw mut timeout
        } else {
            core::ptr::null_mut()
        };
        // SAFETY: the event was initialised by `init`; the timeout lives across the call.
        let status = unsafe {
            KeWaitForSingleObject(
                self.event.get().cast(),
                EXECUTIVE,
                KERNEL_MODE,
                FALSE,
                timeout_ptr,
            )
        };
        if status == STATUS_TIMEOUT {
            Wait::TimedOut
        } else {
            Wait::Signalled
        }
    }
}

/// A relative timeout in the kernel's form: negative, in 100 ns units.
pub(crate) fn relative_timeout(ms: u32) -> LARGE_INTEGER {
    -(i64::from(ms) * 10_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_reports_whether_the_event_was_signalled_or_the_timeout_expired() {
        let _machine = fltsim::Machine::boot();
        let event = std::boxed::Box::new(Event::new());
        event.init(true);
        assert_eq!(event.wait(Some(10)), Wait::TimedOut, "not signalled yet");
        event.set();
        assert_eq!(event.wait(Some(10)), Wait::Signalled);
        // A synchronization event: the wait consumed the signal.
        assert_eq!(event.wait(Some(10)), Wait::TimedOut);
        event.set();
        assert_eq!(
            event.wait(None),
            Wait::Signalled,
            "an unbounded wait on a set event"
        );
    }

    #[test]
    fn a_cleared_notification_event_is_no_longer_signalled() {
        let _machine = fltsim::Machine::boot();
        let event = std::boxed::Box::new(Event::new());
        event.init(false);
        event.set();
        // A notification event stays signalled for every waiter until cleared.
        assert_eq!(event.wait(Some(10)), Wait::Signalled);
        assert_eq!(event.wait(Some(10)), Wait::Signalled);
        event.clear();
        assert_eq!(event.wait(Some(10)), Wait::TimedOut);
    }

    #[test]
    fn a_relative_timeout_is_negative_in_100_ns_units() {
        assert_eq!(relative_timeout(0), 0);
        assert_eq!(relative_timeout(1), -10_000);
        assert_eq!(relative_timeout(u32::MAX), -(i64::from(u32::MAX) * 10_000));
    }
}
