//! The seam between the Win32 layer and whatever implements the ports: the in-process
//! kernel model (`fltsim`) or a remote host reached over a socket (`fltlib-shim`).

use crate::request::RequestSlot;
use portfilter_bindings::{NTSTATUS, STATUS_PORT_DISCONNECTED};
use std::ffi::c_void;
use std::sync::Arc;

/// Something that opens communication-port connections by name.
pub trait PortBackend: Sync {
    /// `FilterConnectCommunicationPort`: connect to the server port `name` (UTF-16, no
    /// terminator) with `options` (0 or `FLT_PORT_FLAG_SYNC_HANDLE`) and the connection
    /// context bytes. Returns the kernel status on failure.
    ///
    /// # Errors
    /// The NTSTATUS of the failed connect (converted to an HRESULT by the caller).
    fn connect(
        &self,
        name: &[u16],
        options: u32,
        context: &[u8],
    ) -> Result<Arc<dyn Connection>, NTSTATUS>;

    /// The simulated process the calling thread acts for, if it declared one. New
    /// handles are owned by it; a handle used from another declared process is invalid.
    /// `None` means "no process declared": handles are owned by process 0 and usable
    /// from any thread.
    fn current_process(&self) -> Option<u32>;

    /// A client broke a rule of [`crate::rule`] (`detail` says how). The default prints
    /// it on stderr; fltsim records it with its verifier, the fltlib shim also forwards it
    /// to its host.
    fn report_violation(&self, rule: &'static str, detail: String) {
        eprintln!("fltsim-user: violation: {rule}: {detail}");
    }
}

/// One client connection (the object behind a port handle).
pub trait Connection: Send + Sync {
    /// Queues a `FilterGetMessage` request. The backend completes it exactly once (with
    /// [`GetRequest::complete`]), possibly on another thread, or hands it back with the
    /// status of an immediate failure (then no completion is reported to the client).
    ///
    /// # Errors
    /// `(request, status)` when the request fails at once (e.g. the port is disconnected).
    fn get_message(&self, request: GetRequest) -> Result<(), (GetRequest, NTSTATUS)>;

    /// Cancels the queued request `id` (`CancelIoEx`): if it is still queued, the backend
    /// completes it with `STATUS_CANCELLED` and returns true.
    fn cancel(&self, id: u64) -> bool;

    /// `FilterReplyMessage` with the whole user buffer (header + payload, at least 16
    /// bytes). Returns `STATUS_SUCCESS`, `STATUS_BUFFER_OVERFLOW` (truncated),
    /// `STATUS_FLT_NO_WAITER_FOR_REPLY` or `STATUS_PORT_DISCONNECTED`.
    fn reply(&self, reply: &[u8]) -> NTSTATUS;

    /// `FilterSendMessage`: runs the filter's MessageNotify with the caller's raw buffers.
    /// `returned` receives the bytes the filter reports.
    ///
    /// # Safety
    /// `input`/`output` are the caller's raw pointers with the caller's lengths; they
    /// may be invalid, and the backend must access them only fault-tolerantly.
    unsafe fn send(
        &self,
        input: *const c_void,
        input_len: u32,
        output: *mut c_void,
        output_len: u32,
        returned: &mut u32,
    ) -> NTSTATUS;

    /// The last handle of the connection was closed (or its process exited): run the
    /// disconnect sequence.
    fn close(&self);
}

/// A queued `FilterGetMessage` request as a backend sees it.
///
/// Dropping one without completing it completes it with `STATUS_PORT_DISCONNECTED`, so
/// a client never waits forever on a request a backend lost.
#[derive(Debug)]
pub struct GetRequest {
    slot: Option<Arc<RequestSlot>>,
    forward: Option<Forward>,
}

/// Receives the completion of a [`GetRequest::forwarding`] request: the status, the
/// `(offset, bytes)` segments (already clipped to the capacity) and the information.
pub type ForwardSink = Box<dyn FnOnce(NTSTATUS, &[(usize, &[u8])], usize) + Send>;

/// A request without a client buffer in this process (see [`GetRequest::forwarding`]).
struct Forward {
    id: u64,
    capacity: u32,
    sink: ForwardSink,
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward")
            .field("id", &self.id)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl GetRequest {
    pub(crate) fn new(slot: Arc<RequestSlot>) -> Self {
        Self {
            slot: Some(slot),
            forward: None,
        }
    }

    /// A request whose buffer lives elsewhere — e.g. in a client process that
    /// `portfilter-sim` serves over a socket. Its completion is handed to `sink` (once)
    /// instead of being written to a buffer; dropping it uncompleted hands `sink`
    /// `STATUS_PORT_DISCONNECTED`, as for any request.
    #[must_use]
    pub fn forwarding(
        capacity: u32,
        sink: impl FnOnce(NTSTATUS, &[(usize, &[u8])], usize) + Send + 'static,
    ) -> Self {
        Self {
            slot: None,
            forward: Some(Forward {
                id: crate::request::next_request_id(),
                capacity,
                sink: Box::new(sink),
            }),
        }
    }

    /// Unique id of the request (for [`Connection::cancel`]).
    #[must_use]
    pub fn id(&self) -> u64 {
        match (&self.slot, &self.forward) {
            (Some(s), _) => s.id,
            (None, Some(f)) => f.id,
            (None, None) => 0,
        }
    }

    /// Size of the client's buffer in bytes (header included).
    #[must_use]
    pub fn capacity(&self) -> u32 {
        match (&self.slot, &self.forward) {
            (Some(s), _) => s.capacity,
            (None, Some(f)) => f.capacity,
            (None, None) => 0,
        }
    }

    /// Completes the request: copies `message` (header + payload; at most
    /// [`capacity`](Self::capacity) bytes are copied) into the client's buffer, records
    /// `status` and `information` (bytes transferred, or the needed size for
    /// `STATUS_BUFFER_TOO_SMALL`), and signals the event / completion port / waiter.
    pub fn complete(self, status: NTSTATUS, message: &[u8], information: usize) {
        self.complete_segments(status, &[(0, message)], information);
    }

    /// Like [`complete`](Self::complete), writing only the given `(offset, bytes)`
    /// segments of the client's buffer (clipped to its capacity) and leaving the bytes
    /// between them untouched — e.g. the padding of `FILTER_MESSAGE_HEADER`.
    pub fn complete_segments(
        mut self,
        status: NTSTATUS,
        segments: &[(usize, &[u8])],
        information: usize,
    ) {
        if let Some(slot) = self.slot.take() {
            slot.finish(status, segments, information);
        }
        if let Some(f) = self.forward.take() {
            let capacity = f.capacity as usize;
            let clipped: Vec<(usize, &[u8])> = segments
                .iter()
                .filter(|(offset, _)| *offset < capacity)
                .map(|&(offset, bytes)| (offset, bytes.get(..capacity - offset).unwrap_or(bytes)))
                .collect();
            (f.sink)(status, &clipped, information);
        }
    }

    /// Detaches the request without any completion (the call failed immediately).
    pub(crate) fn discard(mut self) -> Option<Arc<RequestSlot>> {
        self.slot.take()
    }
}

impl Drop for GetRequest {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.finish(STATUS_PORT_DISCONNECTED, &[], 0);
        }
        if let Some(f) = self.forward.take() {
            (f.sink)(STATUS_PORT_DISCONNECTED, &[], 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn forwarding_request_hands_clipped_segments_to_its_sink_once() {
        let (tx, rx) = mpsc::channel();
        let r = GetRequest::forwarding(10, move |status, segments, info| {
            let owned: Vec<(usize, Vec<u8>)> =
                segments.iter().map(|(o, b)| (*o, b.to_vec())).collect();
            tx.send((status, owned, info)).unwrap();
        });
        assert_eq!(r.capacity(), 10);
        assert_ne!(r.id(), 0);
        r.complete_segments(0, &[(0, &[1, 2, 3, 4]), (8, &[5, 6, 7, 8]), (12, &[9])], 13);
        let (status, segments, info) = rx.recv().unwrap();
        assert_eq!((status, info), (0, 13));
        assert_eq!(segments, vec![(0, vec![1, 2, 3, 4]), (8, vec![5, 6])]);
        assert!(rx.try_recv().is_err(), "completed once");
    }

    #[test]
    fn dropped_forwarding_request_reports_port_disconnected() {
        let (tx, rx) = mpsc::channel();
        drop(GetRequest::forwarding(16, move |status, segments, _| {
            tx.send((status, segments.len())).unwrap();
        }));
        assert_eq!(rx.recv().unwrap(), (STATUS_PORT_DISCONNECTED, 0));
    }
}
