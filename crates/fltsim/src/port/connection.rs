//! A client connection: the kernel's client port and the user's port handle meet here.
//!
//! Message flow (docs/port-semantics.md): a kernel sender waits until the client has a
//! `FilterGetMessage` pending (too-small requests are completed with
//! `STATUS_BUFFER_TOO_SMALL` and the sender keeps waiting), then — if it expects a
//! reply — until `FilterReplyMessage` with its MessageId, all within one timeout budget.
//! Disconnects follow the documented order.

use super::REGISTRY;
use super::hold;
use super::server::ServerPort;
use crate::image::win64::driver_call;
use crate::kernel::time::{Deadline, SendTimeout};
use crate::readings::{self, DisconnectWake, ErrorLength, TimeoutBudget};
use crate::verifier::{self, rule};
use crate::{filter, usercopy};
use fltsim_user::{Connection, GetRequest};
use parking_lot::{Condvar, Mutex, MutexGuard};
use portfilter_bindings::{
    FILTER_HEADER_SIZE, NTSTATUS, PFLT_FILTER, STATUS_BUFFER_OVERFLOW, STATUS_BUFFER_TOO_SMALL,
    STATUS_CANCELLED, STATUS_FLT_DELETING_OBJECT, STATUS_FLT_NO_WAITER_FOR_REPLY,
    STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_PARAMETER, STATUS_PORT_DISCONNECTED,
    STATUS_SUCCESS, STATUS_TIMEOUT,
};
use std::collections::{BTreeMap, VecDeque};
use std::ffi::c_void;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

#[derive(Debug)]
enum Outcome {
    /// Not yet taken by a FilterGetMessage.
    Waiting,
    /// Taken; waiting for a reply if one is expected.
    Delivered,
    /// Replied (status for FltSendMessage, payload bytes for the reply buffer).
    Replied { status: NTSTATUS, data: Vec<u8> },
    /// The connection went away.
    Disconnected,
    /// The wait's deadline passed before a delivery or reply ended it: unlinked by
    /// whoever saw it first (a `FilterGetMessage`, a `FilterReplyMessage`, a disconnect)
    /// while the sender's thread had not run yet; the sender returns `STATUS_TIMEOUT`.
    TimedOut,
}

/// Whether the deadline of a timed wait has passed — on the clock the waits use, so a
/// wait that has ended on its timer and one the model refuses to complete agree. An
/// [`Deadline::Immediate`] wait (a zero timeout under the polling reading, an absolute
/// time already past) is left to its sender, which gives up as soon as it looks.
fn past(deadline: Deadline) -> bool {
    matches!(deadline, Deadline::At(at) if Instant::now() >= at)
}

#[derive(Debug)]
struct Sender {
    payload: Vec<u8>,
    /// `FILTER_MESSAGE_HEADER.ReplyLength`.
    reply_length_field: u32,
    message_id: u64,
    reply_capacity: Option<u32>,
    outcome: Outcome,
    /// Too-small `FilterGetMessage` requests that bounced this message.
    bounces: u32,
    /// The end of the wait the sender is in now, kept up to date by whoever changes the
    /// wait (a bounce or a delivery re-arms a relative timeout under
    /// [`TimeoutBudget::RearmedPerWait`]; under [`TimeoutBudget::OneTotal`] it never
    /// changes), so that a delivery or reply can see that the wait has ended even if the
    /// sender's thread has not run since — as the kernel's timer ends it on Windows.
    deadline: Deadline,
    /// The caller's timeout (for re-arming).
    timeout: SendTimeout,
    /// The [`TimeoutBudget::RearmedPerWait`] reading, as read when the send started.
    rearm: bool,
    /// The wait after a too-small `FilterGetMessage` has been re-armed (once).
    rearmed_after_bounce: bool,
    /// This sender's own wake-up (with the connection's mutex): only the sender whose
    /// state changed is woken, not every sender of the connection.
    wake: Arc<Condvar>,
}

impl Sender {
    fn needed(&self) -> usize {
        FILTER_HEADER_SIZE + self.payload.len()
    }

    /// What a delivery writes besides the payload.
    fn header(&self) -> Self {
        Self {
            payload: Vec::new(),
            reply_length_field: self.reply_length_field,
            message_id: self.message_id,
            reply_capacity: self.reply_capacity,
            outcome: Outcome::Delivered,
            bounces: 0,
            deadline: self.deadline,
            timeout: self.timeout,
            rearm: self.rearm,
            rearmed_after_bounce: self.rearmed_after_bounce,
            wake: Arc::clone(&self.wake),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// The client side is gone (close, exit, unload): no new operations.
    disconnecting: bool,
    /// The Disconnect callback has returned (or will never be called).
    disconnect_finished: bool,
    /// FltCloseClientPort ran.
    filter_closed: bool,
    /// Per-connection MessageId counter (from 1).
    next_message_id: u64,
    next_seq: u64,
    gets: VecDeque<GetRequest>,
    undelivered: VecDeque<u64>,
    awaiting_reply: BTreeMap<u64, u64>,
    senders: BTreeMap<u64, Sender>,
    running_notify: u32,
}

/// A connection. Its address is the client `PFLT_PORT` the driver holds.
pub(crate) struct ClientConn {
    pub server: Arc<ServerPort>,
    /// The connecting process.
    pub pid: u32,
    /// `FilterConnectCommunicationPort` options.
    pub _options: u32,
    cookie: AtomicUsize,
    st: Mutex<State>,
    /// Waiters on the connection's own state (disconnect, running MessageNotify calls);
    /// senders wait on their [`Sender::wake`].
    cond: Condvar,
    reported_not_closed: AtomicBool,
}

/// Result of a kernel send.
pub(crate) struct KernelSend {
    pub status: NTSTATUS,
    pub reply: Vec<u8>,
    /// A reply arrived (ReplyLength is written back).
    pub replied: bool,
}

fn disconnected_result() -> KernelSend {
    KernelSend {
        status: STATUS_PORT_DISCONNECTED,
        reply: Vec::new(),
        replied: false,
    }
}

/// What a delivery writes into the client's buffer: ReplyLength at 0, MessageId at 8,
/// payload at 16; bytes 4..8 (padding) are not written. [re]
fn deliver(request: GetRequest, s: &Sender, payload: &[u8]) {
    let reply_len = s.reply_length_field.to_le_bytes();
    let id = s.message_id.to_le_bytes();
    request.complete_segments(
        STATUS_SUCCESS,
        &[(0, &reply_len), (8, &id), (FILTER_HEADER_SIZE, payload)],
        FILTER_HEADER_SIZE + payload.len(),
    );
}

impl ClientConn {
    pub fn new(server: Arc<ServerPort>, pid: u32, options: u32) -> Self {
        Self {
            server,
            pid,
            _options: options,
            cookie: AtomicUsize::new(0),
            st: Mutex::new(State {
                next_message_id: 1,
                ..State::default()
            }),
            cond: Condvar::new(),
            reported_not_closed: AtomicBool::new(false),
        }
    }

    pub fn set_cookie(&self, cookie: usize) {
        self.cookie.store(cookie, Ordering::SeqCst);
    }

    fn cookie(&self) -> *mut c_void {
        self.cookie.load(Ordering::SeqCst) as *mut c_void
    }

    fn addr(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// (queued FilterGetMessage requests, waiting senders).
    pub fn counts(&self) -> (usize, usize) {
        let st = self.st.lock();
        (st.gets.len(), st.senders.len())
    }

    pub fn not_closed_reported(&self) -> bool {
        self.reported_not_closed.load(Ordering::SeqCst)
    }

    /// Marks every waiting sender disconnected.
    fn wake_senders(&self, st: &mut MutexGuard<'_, State>) {
        st.undelivered.clear();
        st.awaiting_reply.clear();
        for s in st.senders.values_mut() {
            if matches!(s.outcome, Outcome::Waiting | Outcome::Delivered) {
                // A wait whose deadline has passed ended on its timer, not on the
                // disconnect.
                s.outcome = if past(s.deadline) {
                    Outcome::TimedOut
                } else {
                    Outcome::Disconnected
                };
                s.wake.notify_one();
            }
        }
        self.cond.notify_all();
    }

    /// The Connect callback failed: the connection never existed.
    pub fn abandon(&self) {
        REGISTRY.lock().connections.remove(&self.addr());
        let mut st = self.st.lock();
        st.disconnecting = true;
        st.disconnect_finished = true;
        if !st.filter_closed {
            st.filter_closed = true;
            drop(st);
            self.server.release_slot();
        }
    }

    /// FltCloseClientPort (after the registry entry is gone): the slot is released, and
    /// the client's pending and later calls fail with `STATUS_PORT_DISCONNECTED`.
    pub fn close_by_filter(&self) {
        REGISTRY.lock().connections.remove(&self.addr());
        let gets = {
            let mut st = self.st.lock();
            if st.filter_closed {
                return;
            }
            st.filter_closed = true;
            self.wake_senders(&mut st);
            std::mem::take(&mut st.gets)
        };
        for g in gets {
            g.complete(STATUS_PORT_DISCONNECTED, &[], 0);
        }
        self.server.release_slot();
    }

    /// The disconnect sequence [re]: mark disconnecting → wake senders with
    /// `STATUS_PORT_DISCONNECTED` → fail queued FilterGetMessage requests → wait for
    /// running MessageNotify calls → call Disconnect. Under the ReactOS reading
    /// ([`DisconnectWake::AtClientPortClose`], the default) the senders are not woken
    /// here but only when the filter calls `FltCloseClientPort`. `from_unload`: run by
    /// FltUnregisterFilter (the callback is not counted as in flight then).
    pub fn disconnect(&self, from_unload: bool) {
        let gets = {
            let mut st = self.st.lock();
            if st.disconnecting || st.filter_closed {
                // Someone else runs (or ran) the sequence: wait until its Disconnect call
                // has returned — also when that callback already closed the port with
                // FltCloseClientPort and is still running (FltUnregisterFilter must not
                // return before it). If the filter closed the port before any sequence
                // started, there is nothing to wait for.
                while st.disconnecting && !st.disconnect_finished {
                    self.cond.wait(&mut st);
                }
                return;
            }
            st.disconnecting = true;
            if readings::current().disconnect_wake == DisconnectWake::BeforeDisconnect {
                self.wake_senders(&mut st);
            }
            std::mem::take(&mut st.gets)
        };
        for g in gets {
            g.complete(STATUS_PORT_DISCONNECTED, &[], 0);
        }
        {
            let mut st = self.st.lock();
            while st.running_notify > 0 {
                self.cond.wait(&mut st);
            }
        }
        let running = if from_unload {
            None
        } else {
            filter::from_ptr(self.server.filter as PFLT_FILTER).and_then(|f| f.enter_callback())
        };
        // SAFETY: the driver's Disconnect callback with the cookie its Connect returned.
        unsafe { driver_call(self.server.disconnect, (self.cookie(),)) };
        drop(running);
        let mut st = self.st.lock();
        st.disconnect_finished = true;
        let closed = st.filter_closed;
        self.cond.notify_all();
        drop(st);
        if !closed && !self.reported_not_closed.swap(true, Ordering::SeqCst) {
            verifier::report(
                rule::CLIENT_PORT_NOT_CLOSED,
                format!(
                    "Disconnect of process {}'s connection returned without FltCloseClientPort",
                    self.pid
                ),
            );
        }
    }

    /// The body of FltSendMessage once the port is resolved. The waits follow the
    /// current [readings](crate::readings): a zero timeout waits forever or polls; a
    /// relative timeout is one budget or is re-armed for each wait (for a reader, again
    /// after the first too-small `FilterGetMessage`, and for the reply).
    pub fn kernel_send(
        &self,
        payload: &[u8],
        reply_capacity: Option<u32>,
        timeout: SendTimeout,
    ) -> KernelSend {
        let timed_out = || KernelSend {
            status: STATUS_TIMEOUT,
            reply: Vec::new(),
            replied: false,
        };
        let readings = readings::current();
        let rearm = readings.timeout_budget == TimeoutBudget::RearmedPerWait;
        let deadline = timeout.arm(readings.zero_timeout);
        let mut st = self.st.lock();
        if st.disconnecting || st.filter_closed {
            return disconnected_result();
        }
        let message_id = if reply_capacity.is_some() {
            let id = st.next_message_id;
            st.next_message_id += 1;
            id
        } else {
            0
        };
        let seq = st.next_seq;
        st.next_seq += 1;
        let mut sender = Sender {
            payload: payload.to_vec(),
            reply_length_field: reply_capacity.map_or(0, |c| c.saturating_add(16)),
            message_id,
            reply_capacity,
            outcome: Outcome::Waiting,
            bounces: 0,
            deadline,
            timeout,
            rearm,
            rearmed_after_bounce: false,
            wake: Arc::new(Condvar::new()),
        };
        let needed = sender.needed();
        let mut too_small = Vec::new();
        let mut taker = None;
        while let Some(g) = st.gets.pop_front() {
            if (g.capacity() as usize) < needed {
                too_small.push(g);
            } else {
                taker = Some(g);
                break;
            }
        }
        sender.bounces = u32::try_from(too_small.len()).unwrap_or(u32::MAX);
        // Bounced at the start of the first wait: its deadline is already fresh.
        sender.rearmed_after_bounce = sender.bounces > 0;
        let delivered_now = taker.is_some();
        if delivered_now {
            // Delivered at the start: the reply wait keeps the deadline just armed.
            sender.outcome = Outcome::Delivered;
            if reply_capacity.is_some() {
                st.awaiting_reply.insert(message_id, seq);
            }
        } else if deadline != Deadline::Immediate {
            st.undelivered.push_back(seq);
        }
        let payload_copy = if delivered_now {
            std::mem::take(&mut sender.payload)
        } else {
            Vec::new()
        };
        let header_only = sender.header();
        let keep = (delivered_now && reply_capacity.is_some())
            || (!delivered_now && deadline != Deadline::Immediate);
        let wake = Arc::clone(&sender.wake);
        if keep {
            st.senders.insert(seq, sender);
        }
        drop(st);
        for g in too_small {
            g.complete(STATUS_BUFFER_TOO_SMALL, &[], needed);
        }
        if let Some(g) = taker {
            deliver(g, &header_only, &payload_copy);
            if reply_capacity.is_none() {
                return KernelSend {
                    status: STATUS_SUCCESS,
                    reply: Vec::new(),
                    replied: false,
                };
            }
        }
        if !keep {
            return timed_out();
        }
        let mut st = self.st.lock();
        loop {
            if hold::held() {
                // A test holds the senders' threads (port::hold_senders): this one does
                // not run until it is released.
                MutexGuard::unlocked(&mut st, hold::wait_while_held);
            }
            let Some(s) = st.senders.get_mut(&seq) else {
                return disconnected_result();
            };
            // A reply (or delivery, or disconnect) that came first settles the send even
            // if this thread only looks after the deadline: it completed the wait first.
            let settled = match (&mut s.outcome, s.reply_capacity) {
                (Outcome::Disconnected, _) => Some(disconnected_result()),
                (Outcome::TimedOut, _) => Some(timed_out()),
                (Outcome::Delivered, None) => Some(KernelSend {
                    status: STATUS_SUCCESS,
                    reply: Vec::new(),
                    replied: false,
                }),
                (Outcome::Replied { status, data }, _) => Some(KernelSend {
                    status: *status,
                    reply: std::mem::take(data),
                    replied: true,
                }),
                (Outcome::Waiting | Outcome::Delivered, _) => None,
            };
            if let Some(result) = settled {
                st.senders.remove(&seq);
                return result;
            }
            // The deadline of the wait the sender is in now (a delivery or a bounce may
            // have re-armed it since this thread last looked; they do not wake it: it
            // takes the new deadline when it next wakes, at the latest at the old one).
            let expired = match s.deadline {
                Deadline::Never => {
                    wake.wait(&mut st);
                    false
                }
                Deadline::Immediate => true,
                Deadline::At(at) if Instant::now() >= at => true,
                Deadline::At(at) => {
                    let _ = wake.wait_until(&mut st, at);
                    false
                }
            };
            if expired {
                // Unlinked: a reply arriving later finds no waiter.
                st.undelivered.retain(|&q| q != seq);
                st.awaiting_reply.retain(|_, &mut q| q != seq);
                st.senders.remove(&seq);
                return timed_out();
            }
        }
    }
}

impl Connection for ClientConn {
    fn get_message(&self, request: GetRequest) -> Result<(), (GetRequest, NTSTATUS)> {
        let mut st = self.st.lock();
        if st.disconnecting || st.filter_closed {
            return Err((request, STATUS_PORT_DISCONNECTED));
        }
        // The first message whose sender is still waiting: one whose deadline has passed
        // is no longer offered (its wait ended on the timer, even if its thread has not
        // run since), and is unlinked here.
        let seq = loop {
            let Some(&seq) = st.undelivered.front() else {
                st.gets.push_back(request);
                return Ok(());
            };
            match st.senders.get_mut(&seq) {
                Some(s) if past(s.deadline) => {
                    s.outcome = Outcome::TimedOut;
                    s.wake.notify_one();
                    st.undelivered.pop_front();
                }
                Some(_) => break seq,
                None => {
                    st.gets.push_back(request);
                    return Ok(());
                }
            }
        };
        let Some(s) = st.senders.get_mut(&seq) else {
            st.gets.push_back(request);
            return Ok(());
        };
        let needed = s.needed();
        if needed > request.capacity() as usize {
            s.bounces = s.bounces.saturating_add(1);
            // The sender starts a new wait: re-armed (once) under the [re] budget reading.
            if s.rearm && !s.rearmed_after_bounce {
                if let Some(d) = s.timeout.rearm() {
                    s.deadline = d;
                }
                s.rearmed_after_bounce = true;
            }
            drop(st);
            // The message stays with its sender, which keeps waiting. [re]
            request.complete(STATUS_BUFFER_TOO_SMALL, &[], needed);
            return Ok(());
        }
        let payload = std::mem::take(&mut s.payload);
        s.outcome = Outcome::Delivered;
        if s.reply_capacity.is_some()
            && s.rearm
            && let Some(d) = s.timeout.rearm()
        {
            // The reply wait starts now, with a fresh budget under the [re] reading.
            s.deadline = d;
        }
        if s.reply_capacity.is_none() {
            // The delivery settles a send that expects no reply.
            s.wake.notify_one();
        }
        let header = s.header();
        st.undelivered.pop_front();
        if header.reply_capacity.is_some() {
            st.awaiting_reply.insert(header.message_id, seq);
        }
        drop(st);
        deliver(request, &header, &payload);
        Ok(())
    }

    fn cancel(&self, id: u64) -> bool {
        let found = {
            let mut st = self.st.lock();
            st.gets
                .iter()
                .position(|g| g.id() == id)
                .and_then(|i| st.gets.remove(i))
        };
        match found {
            Some(g) => {
                g.complete(STATUS_CANCELLED, &[], 0);
                true
            }
            None => false,
        }
    }

    fn reply(&self, reply: &[u8]) -> NTSTATUS {
        let (Some(status), Some(id)) = (
            reply
                .get(0..4)
                .and_then(|b| b.try_into().ok())
                .map(i32::from_le_bytes),
            reply
                .get(8..16)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes),
        ) else {
            return STATUS_INVALID_PARAMETER;
        };
        let payload = reply.get(FILTER_HEADER_SIZE..).unwrap_or(&[]);
        let mut st = self.st.lock();
        if st.disconnecting || st.filter_closed {
            return STATUS_PORT_DISCONNECTED;
        }
        let Some(seq) = st.awaiting_reply.remove(&id) else {
            return STATUS_FLT_NO_WAITER_FOR_REPLY;
        };
        let Some(s) = st.senders.get_mut(&seq) else {
            return STATUS_FLT_NO_WAITER_FOR_REPLY;
        };
        if past(s.deadline) {
            // The sender's wait ended on its timer, whether or not its thread has run
            // since: no waiter (and it stays unlinked: removed from awaiting_reply above).
            s.outcome = Outcome::TimedOut;
            s.wake.notify_one();
            return STATUS_FLT_NO_WAITER_FOR_REPLY;
        }
        let capacity = s.reply_capacity.unwrap_or(0) as usize;
        let truncated = payload.len() > capacity;
        let n = payload.len().min(capacity);
        s.outcome = Outcome::Replied {
            status: if truncated {
                STATUS_BUFFER_OVERFLOW
            } else {
                status
            },
            data: payload[..n].to_vec(),
        };
        s.wake.notify_one();
        if truncated {
            STATUS_BUFFER_OVERFLOW
        } else {
            STATUS_SUCCESS
        }
    }

    unsafe fn send(
        &self,
        input: *const c_void,
        input_len: u32,
        output: *mut c_void,
        output_len: u32,
        returned: &mut u32,
    ) -> NTSTATUS {
        let notify = {
            let mut st = self.st.lock();
            if st.disconnecting || st.filter_closed {
                return STATUS_PORT_DISCONNECTED;
            }
            let Some(notify) = self.server.notify else {
                return STATUS_INVALID_DEVICE_REQUEST;
            };
            if input.is_null() || input_len == 0 {
                return STATUS_INVALID_PARAMETER;
            }
            st.running_notify += 1;
            notify
        };
        let finish = || {
            let mut st = self.st.lock();
            st.running_notify -= 1;
            self.cond.notify_all();
        };
        let Some(running) =
            filter::from_ptr(self.server.filter as PFLT_FILTER).and_then(|f| f.enter_callback())
        else {
            finish();
            return STATUS_FLT_DELETING_OBJECT;
        };
        let mapping = match usercopy::map_call(input, input_len, output, output_len) {
            Ok(m) => m,
            Err(status) => {
                drop(running);
                finish();
                return status;
            }
        };
        let mut ret = 0u32;
        // SAFETY: the driver's MessageNotify, on the caller's thread, with translated
        // user addresses (touching them directly faults; PfCopy* translate them back).
        let status = unsafe {
            driver_call(
                notify,
                (
                    self.cookie(),
                    mapping.input(),
                    input_len,
                    mapping.output(),
                    output_len,
                    &raw mut ret,
                ),
            )
        };
        drop(mapping);
        drop(running);
        finish();
        // STATUS_BUFFER_TOO_SMALL carries the *needed* size, which may exceed the buffer.
        if ret > output_len && status != STATUS_BUFFER_TOO_SMALL {
            verifier::report(
                rule::RETURN_LENGTH_TOO_LARGE,
                format!("{ret} > OutputBufferLength {output_len}"),
            );
            ret = output_len;
        }
        #[allow(clippy::cast_sign_loss)]
        let warning = (status as u32) >> 30 == 2;
        // [doc] the length reaches the caller for success and warning statuses; [re] one
        // fltmgr also delivers it with STATUS_BUFFER_TOO_SMALL (readings::ErrorLength).
        let kept_with_error = status == STATUS_BUFFER_TOO_SMALL
            && readings::current().error_length == ErrorLength::Kept;
        *returned = if status >= 0 || warning || kept_with_error {
            ret
        } else {
            0
        };
        status
    }

    fn close(&self) {
        self.disconnect(false);
    }
}
