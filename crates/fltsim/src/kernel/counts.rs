//! Per-thread counts of the kernel routines a driver calls, for benchmarks: push-lock
//! acquisitions, the interlocked operations those routines cost on Windows, and pool
//! allocations.
//!
//! Counts are kept per calling thread (a thread-local array, no shared cache line), so a
//! benchmark reads exactly what one create cost on the creating thread:
//! ```ignore
//! let before = fltsim::kernel::counts::snapshot();
//! fltsim::create(&request);
//! let cost = fltsim::kernel::counts::snapshot() - before;
//! ```
//! Work a create causes on *another* thread (the queued worker's pops, a client's
//! `FilterGetMessage`) is counted on that thread.
//!
//! **Interlocked operations** are what the routine costs on Windows on its uncontended
//! fast path (a `lock`-prefixed instruction on a cache line other CPUs share), not what
//! fltsim's model does: acquiring or releasing a push lock is one compare-exchange each;
//! `KeSetEvent` takes and releases the event's dispatcher lock (two); `ExAllocatePool2` /
//! `ExFreePoolWithTag` of a small block pop / push a per-processor lookaside list (one
//! each). The driver's own atomics (`AtomicU64::fetch_add` & co.) are not kernel routines
//! and are not counted here: count them in the driver's source (docs/driver.md).

use std::cell::Cell;

/// A counted kernel routine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Routine {
    /// `FltAcquirePushLockShared`.
    AcquirePushLockShared,
    /// `FltAcquirePushLockExclusive`.
    AcquirePushLockExclusive,
    /// `FltReleasePushLock`.
    ReleasePushLock,
    /// `KeSetEvent`.
    KeSetEvent,
    /// `ExAllocatePool2`.
    ExAllocatePool2,
    /// `ExFreePoolWithTag`.
    ExFreePoolWithTag,
    /// `FltSendMessage`.
    FltSendMessage,
}

const ROUTINES: usize = 7;

impl Routine {
    /// Every counted routine.
    pub const ALL: [Self; ROUTINES] = [
        Self::AcquirePushLockShared,
        Self::AcquirePushLockExclusive,
        Self::ReleasePushLock,
        Self::KeSetEvent,
        Self::ExAllocatePool2,
        Self::ExFreePoolWithTag,
        Self::FltSendMessage,
    ];

    /// Interlocked operations one call costs on Windows' fast path (see the module
    /// documentation; `FltSendMessage` is not estimated: 0).
    #[must_use]
    pub const fn interlocked(self) -> u64 {
        match self {
            Self::AcquirePushLockShared
            | Self::AcquirePushLockExclusive
            | Self::ReleasePushLock
            | Self::ExAllocatePool2
            | Self::ExFreePoolWithTag => 1,
            Self::KeSetEvent => 2,
            Self::FltSendMessage => 0,
        }
    }
}

thread_local! {
    static COUNTS: [Cell<u64>; ROUTINES] = const { [const { Cell::new(0) }; ROUTINES] };
}

/// Counts one call of `routine` on the calling thread.
pub(crate) fn bump(routine: Routine) {
    COUNTS.with(|c| {
        let cell = &c[routine as usize];
        cell.set(cell.get() + 1);
    });
}

/// The calling thread's counts so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    calls: [u64; ROUTINES],
}

/// The calling thread's counts since it started.
#[must_use]
pub fn snapshot() -> Counts {
    Counts {
        calls: COUNTS.with(|c| core::array::from_fn(|i| c[i].get())),
    }
}

impl Counts {
    /// Calls of `routine`.
    #[must_use]
    pub fn calls(&self, routine: Routine) -> u64 {
        self.calls[routine as usize]
    }

    /// Push-lock acquisitions, shared and exclusive.
    #[must_use]
    pub fn lock_acquisitions(&self) -> u64 {
        self.calls(Routine::AcquirePushLockShared) + self.calls(Routine::AcquirePushLockExclusive)
    }

    /// Interlocked operations these calls cost on Windows ([`Routine::interlocked`]).
    #[must_use]
    pub fn interlocked(&self) -> u64 {
        Routine::ALL
            .iter()
            .map(|&r| self.calls(r) * r.interlocked())
            .sum()
    }

    /// Pool allocations.
    #[must_use]
    pub fn allocations(&self) -> u64 {
        self.calls(Routine::ExAllocatePool2)
    }
}

impl core::ops::Sub for Counts {
    type Output = Self;
    fn sub(self, earlier: Self) -> Self {
        Self {
            calls: core::array::from_fn(|i| self.calls[i].saturating_sub(earlier.calls[i])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_per_thread_and_subtract() {
        let before = snapshot();
        bump(Routine::AcquirePushLockShared);
        bump(Routine::ReleasePushLock);
        bump(Routine::KeSetEvent);
        let d = snapshot() - before;
        assert_eq!(d.lock_acquisitions(), 1);
        assert_eq!(d.interlocked(), 4);
        assert_eq!(d.allocations(), 0);
        let other = std::thread::spawn(|| snapshot().lock_acquisitions())
            .join()
            .unwrap();
        assert_eq!(other, 0);
    }
}
