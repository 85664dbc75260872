//! A push lock with RAII guards (`FltAcquirePushLock*` enter a critical region).

use core::cell::UnsafeCell;
use portfilter_bindings::{
    EX_PUSH_LOCK, FltAcquirePushLockExclusive, FltAcquirePushLockShared, FltDeletePushLock,
    FltInitializePushLock, FltReleasePushLock,
};

/// A Filter Manager push lock protecting a `T`.
///
/// It must not move after [`PushLock::init`]: it lives inside a pool allocation.
pub(crate) struct PushLock<T> {
    lock: UnsafeCell<EX_PUSH_LOCK>,
    data: UnsafeCell<T>,
}

// SAFETY: access to `data` is serialised by the push lock.
unsafe impl<T: Send> Sync for PushLock<T> {}
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
