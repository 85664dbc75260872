//! Kernel services the driver imports: pool, events, push locks, system threads, time,
//! process/thread ids, and the simulated IRQL.

pub mod event;
pub mod irql;
pub mod pool;
pub mod pushlock;
pub mod thread;
pub mod time;

pub(crate) fn reset() {
    pool::reset();
    event::reset();
    pushlock::reset();
    thread::reset();
}
