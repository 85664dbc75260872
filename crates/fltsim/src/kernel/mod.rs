//! Kernel services the driver imports: pool, events, push locks, system threads, time,
//! process/thread ids, the simulated IRQL, and the thread context a create runs in
//! (top-level IRP, APCs disabled).

pub mod context;
pub mod counts;
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
    time::reset();
}
