//! Push locks (`FltInitializePushLock` & co.): an `EX_PUSH_LOCK` is one word, and so is
//! parking_lot's `RawRwLock`, so the lock lives in the driver's own word. A side table
//! tracks owners to catch release by a non-owner, recursive acquisition (a deadlock on
//! Windows: fatal here too) and use before initialisation.

use super::thread::current_thread_id;
use crate::verifier::{self, rule};
use parking_lot::Mutex;
use parking_lot::lock_api::RawRwLock as _;
use portfilter_bindings::EX_PUSH_LOCK;
use std::collections::BTreeMap;

type Raw = parking_lot::RawRwLock;
const _: () = assert!(size_of::<Raw>() == size_of::<EX_PUSH_LOCK>());
const _: () = assert!(align_of::<Raw>() <= align_of::<EX_PUSH_LOCK>());

#[derive(Debug, Default)]
struct Owners {
    exclusive: Option<u64>,
    shared: Vec<u64>,
}

static LOCKS: Mutex<BTreeMap<usize, Owners>> = Mutex::new(BTreeMap::new());

pub(crate) fn reset() {
    LOCKS.lock().clear();
}

/// Number of push locks currently held (any mode), for tests.
#[must_use]
pub fn held_count() -> usize {
    LOCKS
        .lock()
        .values()
        .filter(|o| o.exclusive.is_some() || !o.shared.is_empty())
        .count()
}

fn raw<'a>(lock: *mut EX_PUSH_LOCK) -> &'a Raw {
    // SAFETY: `lock` is a non-null, aligned EX_PUSH_LOCK word initialised with
    // `Raw::INIT` (checked by the callers); `Raw` is one word of atomics, so a shared
    // reference to it is how it is meant to be used concurrently.
    unsafe { &*lock.cast::<Raw>() }
}

fn check(lock: *mut EX_PUSH_LOCK, routine: &str, exclusive: bool) {
    if lock.is_null() {
        verifier::fatal(rule::NULL_POINTER, routine);
    }
    let me = current_thread_id();
    let mut locks = LOCKS.lock();
    let owners = locks.entry(lock as usize).or_insert_with(|| {
        verifier::report(
            rule::PUSH_LOCK_UNINITIALIZED,
            format!("{routine}({lock:p})"),
        );
        Owners::default()
    });
    if owners.exclusive == Some(me) || (exclusive && owners.shared.contains(&me)) {
        drop(locks);
        verifier::fatal(
            rule::PUSH_LOCK_RECURSIVE,
            &format!("{routine}({lock:p}) by thread {me} that already holds it"),
        );
    }
}

/// `FltInitializePushLock`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn FltInitializePushLock(lock: *mut EX_PUSH_LOCK) {
    if lock.is_null() {
        verifier::fatal(rule::NULL_POINTER, "FltInitializePushLock");
    }
    // SAFETY: non-null; the driver owns this word and is initialising it.
    unsafe { lock.cast::<Raw>().write(Raw::INIT) };
    LOCKS.lock().insert(lock as usize, Owners::default());
}

/// `FltDeletePushLock`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn FltDeletePushLock(lock: *mut EX_PUSH_LOCK) {
    let removed = LOCKS.lock().remove(&(lock as usize));
    if let Some(o) = removed
        && (o.exclusive.is_some() || !o.shared.is_empty())
    {
        verifier::report(rule::PUSH_LOCK_DELETED_HELD, format!("{lock:p}"));
    }
}

/// `FltAcquirePushLockExclusive`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn FltAcquirePushLockExclusive(lock: *mut EX_PUSH_LOCK) {
    super::counts::bump(super::counts::Routine::AcquirePushLockExclusive);
    check(lock, "FltAcquirePushLockExclusive", true);
    raw(lock).lock_exclusive();
    if let Some(o) = LOCKS.lock().get_mut(&(lock as usize)) {
        o.exclusive = Some(current_thread_id());
    }
}

/// `FltAcquirePushLockShared`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn FltAcquirePushLockShared(lock: *mut EX_PUSH_LOCK) {
    super::counts::bump(super::counts::Routine::AcquirePushLockShared);
    check(lock, "FltAcquirePushLockShared", false);
    raw(lock).lock_shared();
    if let Some(o) = LOCKS.lock().get_mut(&(lock as usize)) {
        o.shared.push(current_thread_id());
    }
}

/// `FltReleasePushLock`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn FltReleasePushLock(lock: *mut EX_PUSH_LOCK) {
    super::counts::bump(super::counts::Routine::ReleasePushLock);
    if lock.is_null() {
        verifier::fatal(rule::NULL_POINTER, "FltReleasePushLock");
    }
    let me = current_thread_id();
    let mut locks = LOCKS.lock();
    let Some(o) = locks.get_mut(&(lock as usize)) else {
        drop(locks);
        verifier::report(
            rule::PUSH_LOCK_UNINITIALIZED,
            format!("FltReleasePushLock({lock:p})"),
        );
        return;
    };
    let exclusive = if o.exclusive == Some(me) {
        o.exclusive = None;
        true
    } else if let Some(i) = o.shared.iter().position(|&t| t == me) {
        o.shared.swap_remove(i);
        false
    } else if let Some(owner) = o.exclusive.take() {
        verifier::report(
            rule::PUSH_LOCK_NOT_OWNER,
            format!("{lock:p} held exclusive by thread {owner}, released by thread {me}"),
        );
        true
    } else if !o.shared.is_empty() {
        let owner = o.shared.swap_remove(0);
        verifier::report(
            rule::PUSH_LOCK_NOT_OWNER,
            format!("{lock:p} held shared by thread {owner}, released by thread {me}"),
        );
        false
    } else {
        drop(locks);
        verifier::report(
            rule::PUSH_LOCK_NOT_OWNER,
            format!("{lock:p} released while not held"),
        );
        return;
    };
    drop(locks);
    // SAFETY: the lock is held in the mode we release (tracked above).
    unsafe {
        if exclusive {
            raw(lock).unlock_exclusive();
        } else {
            raw(lock).unlock_shared();
        }
    }
}
