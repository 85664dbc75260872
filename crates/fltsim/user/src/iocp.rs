//! I/O completion ports.

use parking_lot::{Condvar, Mutex};
use portfilter_bindings::NTSTATUS;
use std::collections::VecDeque;
use std::time::Instant;

/// One completion packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// Bytes transferred.
    pub bytes: u32,
    /// The completion key of the bound handle (or the posted key).
    pub key: usize,
    /// The OVERLAPPED address (opaque for posted packets).
    pub overlapped: usize,
    /// The I/O status (`STATUS_SUCCESS` for posted packets).
    pub status: NTSTATUS,
}

/// Why a wait on a completion port ended without a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    /// The timeout expired.
    Timeout,
    /// The port was closed while waiting.
    Closed,
}

#[derive(Debug, Default)]
struct State {
    packets: VecDeque<Packet>,
    closed: bool,
}

/// An I/O completion port: a FIFO of packets that any number of threads dequeue.
#[derive(Debug, Default)]
pub struct Iocp {
    state: Mutex<State>,
    cond: Condvar,
}

impl Iocp {
    /// Queues a packet and wakes one waiter.
    pub fn post(&self, packet: Packet) {
        let mut st = self.state.lock();
        if st.closed {
            return;
        }
        st.packets.push_back(packet);
        drop(st);
        self.cond.notify_one();
    }

    /// Closes the port: waiters return [`WaitError::Closed`].
    pub fn close(&self) {
        let mut st = self.state.lock();
        st.closed = true;
        st.packets.clear();
        drop(st);
        self.cond.notify_all();
    }

    /// Dequeues up to `max` packets (at least one), waiting until the deadline.
    ///
    /// # Errors
    /// [`WaitError::Timeout`] or [`WaitError::Closed`].
    pub fn wait(&self, max: usize, deadline: Option<Instant>) -> Result<Vec<Packet>, WaitError> {
        let mut st = self.state.lock();
        loop {
            if st.closed {
                return Err(WaitError::Closed);
            }
            if !st.packets.is_empty() {
                let n = max.min(st.packets.len());
                return Ok(st.packets.drain(..n).collect());
            }
            match deadline {
                None => self.cond.wait(&mut st),
                Some(d) => {
                    if self.cond.wait_until(&mut st, d).timed_out()
                        && st.packets.is_empty()
                        && !st.closed
                    {
                        return Err(WaitError::Timeout);
                    }
                }
            }
        }
    }
}
