//! A connection to the driver's communication port: connect with a role, receive events
//! (blocking), reply with verdicts, and send commands.

use crate::error::{Error, Result};
use crate::hresult::Hresult;
use crate::message::{MAX_MESSAGE_BYTES, MESSAGE_HEADER_BYTES, Received, ReplyTo, decode_message};
use crate::sys::{self, AlignedBuffer, OwnedHandle, ReplyBuffer};
use parking_lot::{Condvar, Mutex};
use portfilter_protocol::{ConnectContext, PROTOCOL_VERSION, Role, VERDICT_BYTES};
use std::sync::atomic::{AtomicU64, Ordering};

/// The driver's port name (`portfilter::PORT_NAME`).
pub const DEFAULT_PORT_NAME: &str = "\\PortFilterPort";

/// `FLT_PORT_FLAG_SYNC_HANDLE`.
const FLT_PORT_FLAG_SYNC_HANDLE: u32 = 1;

/// How to connect.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// The port name (default [`DEFAULT_PORT_NAME`]).
    pub port_name: String,
    /// Open a synchronous handle (`FLT_PORT_FLAG_SYNC_HANDLE`).
    ///
    /// The I/O manager serializes every call on such a handle: while one thread waits in
    /// [`Connection::receive`], a reply or a command from another thread would wait for
    /// the next message (and the driver's reply timeout would decide instead). So a
    /// synchronous connection is for one thread that receives, replies and sends
    /// commands in turn: a call from another thread while a receive is waiting is refused
    /// at once with [`Error::SynchronousHandleBusy`]; calls that only overlap short ones
    /// (reply, command) wait their turn. The completion-port engine needs an overlapped
    /// handle. The default, an overlapped handle, serves every API from any number of
    /// threads.
    pub synchronous: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            port_name: DEFAULT_PORT_NAME.to_owned(),
            synchronous: false,
        }
    }
}

/// The client's answer to a request-reply event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Let the create proceed.
    Allow,
    /// Fail the create with `STATUS_ACCESS_DENIED`.
    Deny,
    /// Fail the create with this NTSTATUS (an error-severity code, `0xC…`).
    DenyWith(i32),
}

impl Verdict {
    /// The wire verdict for event `sequence`.
    #[must_use]
    pub fn to_wire(self, sequence: u64) -> portfilter_protocol::Verdict {
        match self {
            Self::Allow => portfilter_protocol::Verdict::allow(sequence),
            Self::Deny => portfilter_protocol::Verdict::deny(sequence),
            Self::DenyWith(status) => portfilter_protocol::Verdict::deny_with(sequence, status),
        }
    }

    /// `true` for the deny verdicts.
    #[must_use]
    pub fn is_deny(self) -> bool {
        !matches!(self, Self::Allow)
    }
}

/// What became of a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// The driver took it.
    Delivered,
    /// The driver had stopped waiting (its reply timeout passed): it already applied its
    /// default verdict. Counted and logged; not an error.
    Late,
}

/// Reply counters of a connection.
#[derive(Debug, Default)]
struct ReplyCounters {
    delivered: AtomicU64,
    late: AtomicU64,
}

/// A call in progress on a synchronous handle.
#[derive(Clone, Copy, Debug)]
struct InCall {
    /// The call (`FilterGetMessage`, `FilterReplyMessage`, `FilterSendMessage(…)`).
    operation: &'static str,
    /// A receive: it may wait for a long time, holding the handle.
    receive: bool,
}

/// Synchronous handles: the call in progress, so that a call that would wait behind a
/// blocked receive is refused instead (see [`ConnectOptions::synchronous`]).
#[derive(Debug, Default)]
struct SyncTurns {
    current: Mutex<Option<InCall>>,
    free: Condvar,
}

/// The turn of one call on a synchronous handle; the next call may start when it drops.
pub(crate) struct Turn<'a>(Option<&'a SyncTurns>);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if let Some(turns) = self.0 {
            *turns.current.lock() = None;
            turns.free.notify_one();
        }
    }
}

/// A connection to the portfilter port.
///
/// The handle is closed when the value is dropped; the driver then applies its default
/// verdict to every request this connection received but did not answer.
///
/// A connection is `Sync`: on the default (overlapped) handle any thread may receive,
/// reply and send commands at any time. A synchronous one is for one thread at a time
/// (see [`ConnectOptions::synchronous`]).
#[derive(Debug)]
pub struct Connection {
    port: OwnedHandle,
    port_name: String,
    role: Role,
    synchronous: bool,
    turns: SyncTurns,
    replies: ReplyCounters,
    hello: portfilter_protocol::HelloReply,
}

impl Connection {
    /// Connects with `role` (the connection context) and performs the protocol Hello.
    ///
    /// # Errors
    /// [`Error::DriverNotLoaded`], [`Error::AccessDenied`], [`Error::ConnectionLimit`],
    /// [`Error::DeciderBusy`], [`Error::VersionMismatch`], or [`Error::Call`] for any
    /// other failure.
    pub fn connect(role: Role, options: &ConnectOptions) -> Result<Self> {
        let mut context = [0u8; portfilter_protocol::CONNECT_CONTEXT_BYTES];
        ConnectContext { role }
            .encode(&mut context)
            .map_err(|error| Error::Protocol {
                operation: "encoding the connection context",
                error,
            })?;
        Self::connect_with_context(role, options, &context)
    }

    /// [`connect`](Self::connect) with connection-context bytes given by the caller
    /// (tests use it to send another protocol version; `role` is what the connection
    /// records locally).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    #[doc(hidden)]
    pub fn connect_with_context(
        role: Role,
        options: &ConnectOptions,
        context: &[u8],
    ) -> Result<Self> {
        let flags = if options.synchronous {
            FLT_PORT_FLAG_SYNC_HANDLE
        } else {
            0
        };
        let port = sys::connect(&options.port_name, flags, context)
            .map_err(|hresult| connect_error(&options.port_name, hresult))?;
        let hello = crate::commands::hello(&port)?;
        Ok(Self {
            port,
            port_name: options.port_name.clone(),
            role,
            synchronous: options.synchronous,
            turns: SyncTurns::default(),
            replies: ReplyCounters::default(),
            hello,
        })
    }

    /// On a synchronous handle, waits for the call in progress to end — or refuses at
    /// once when it is a receive, which holds the handle until the next message. No-op
    /// on an overlapped handle.
    pub(crate) fn turn(&self, operation: &'static str, receive: bool) -> Result<Turn<'_>> {
        if !self.synchronous {
            return Ok(Turn(None));
        }
        let mut current = self.turns.current.lock();
        loop {
            match *current {
                None => {
                    *current = Some(InCall { operation, receive });
                    return Ok(Turn(Some(&self.turns)));
                }
                Some(busy) if busy.receive => {
                    return Err(Error::SynchronousHandleBusy {
                        operation,
                        holder: busy.operation,
                    });
                }
                Some(_) => self.turns.free.wait(&mut current),
            }
        }
    }

    /// The role this connection was opened with.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// The port name.
    #[must_use]
    pub fn port_name(&self) -> &str {
        &self.port_name
    }

    /// Whether the handle is synchronous (`FLT_PORT_FLAG_SYNC_HANDLE`).
    #[must_use]
    pub fn is_synchronous(&self) -> bool {
        self.synchronous
    }

    /// What the driver answered to the Hello made at connect.
    #[must_use]
    pub fn hello_info(&self) -> &portfilter_protocol::HelloReply {
        &self.hello
    }

    pub(crate) fn port(&self) -> &OwnedHandle {
        &self.port
    }

    /// Waits for the next message (blocking `FilterGetMessage`) and decodes it into
    /// `buffer`. Returns `Ok(None)` when the connection ended (driver unloading, port
    /// closed).
    ///
    /// On the default (overlapped) handle the request carries an OVERLAPPED and an event
    /// of its own (kept in `buffer`), so replies and commands other threads make on the
    /// connection meanwhile do not disturb it.
    ///
    /// # Errors
    /// [`Error::Call`] for a failed call, [`Error::Protocol`] for a message that does not
    /// decode (the next call receives the next message), [`Error::SynchronousHandleBusy`]
    /// on a synchronous connection where another thread is receiving.
    pub fn receive<'b>(&self, buffer: &'b mut MessageBuffer) -> Result<Option<Received<'b>>> {
        const OP: &str = "FilterGetMessage";
        let (target, event) = buffer.parts(!self.synchronous)?;
        let turn = self.turn(OP, true)?;
        let got = sys::get_message(&self.port, target, event);
        drop(turn);
        match got {
            Ok(()) => {}
            Err(hresult) if is_end_of_stream(hresult) => return Ok(None),
            Err(hresult) => {
                return Err(Error::Call {
                    operation: "FilterGetMessage",
                    hresult,
                });
            }
        }
        decode_message(buffer.buffer.bytes())
            .map(Some)
            .map_err(|error| Error::Protocol {
                operation: "FilterGetMessage",
                error,
            })
    }

    /// Answers a request-reply event: exactly 16 + [`VERDICT_BYTES`] bytes.
    ///
    /// A reply after the driver's timeout is [`ReplyOutcome::Late`] (counted, logged), not
    /// an error.
    ///
    /// # Errors
    /// [`Error::Disconnected`] when the connection is closed, [`Error::InvalidConfig`] for
    /// a deny status that is not an error code, [`Error::SynchronousHandleBusy`] on a
    /// synchronous connection where another thread is receiving, [`Error::Call`]
    /// otherwise.
    pub fn reply(&self, to: ReplyTo, verdict: Verdict) -> Result<ReplyOutcome> {
        const LEN: usize = MESSAGE_HEADER_BYTES + VERDICT_BYTES;
        let mut buffer = ReplyBuffer::<LEN> { bytes: [0; LEN] };
        // FILTER_REPLY_HEADER: Status (what FltSendMessage returns to the driver) = 0,
        // 4 bytes of padding, MessageId.
        buffer.bytes[8..16].copy_from_slice(&to.message_id.to_le_bytes());
        verdict
            .to_wire(to.sequence)
            .encode(&mut buffer.bytes[MESSAGE_HEADER_BYTES..])
            .map_err(|error| Error::InvalidConfig(format!("verdict {verdict:?}: {error}")))?;
        let turn = self.turn("FilterReplyMessage", false)?;
        let hresult = sys::reply(&self.port, &buffer, LEN);
        drop(turn);
        if hresult.is_ok() {
            self.replies.delivered.fetch_add(1, Ordering::Relaxed);
            Ok(ReplyOutcome::Delivered)
        } else if hresult == Hresult::FLT_NO_WAITER_FOR_REPLY {
            self.replies.late.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                sequence = to.sequence,
                message_id = to.message_id,
                "late reply: the driver timed out waiting and applied its default verdict"
            );
            Ok(ReplyOutcome::Late)
        } else if is_end_of_stream(hresult) {
            Err(Error::Disconnected)
        } else {
            Err(Error::Call {
                operation: "FilterReplyMessage",
                hresult,
            })
        }
    }

    /// Replies the driver took.
    #[must_use]
    pub fn replies_delivered(&self) -> u64 {
        self.replies.delivered.load(Ordering::Relaxed)
    }

    /// Replies that arrived after the driver stopped waiting
    /// (`ERROR_FLT_NO_WAITER_FOR_REPLY`).
    #[must_use]
    pub fn late_replies(&self) -> u64 {
        self.replies.late.load(Ordering::Relaxed)
    }
}

/// A receive buffer large enough for any message the driver sends, with the event its
/// requests wait on (created at the first receive on an overlapped handle). One per
/// receiving thread.
#[derive(Debug)]
pub struct MessageBuffer {
    buffer: AlignedBuffer,
    event: Option<OwnedHandle>,
}

impl MessageBuffer {
    /// A buffer of [`MAX_MESSAGE_BYTES`].
    #[must_use]
    pub fn new() -> Self {
        Self {
            buffer: AlignedBuffer::new(MAX_MESSAGE_BYTES),
            event: None,
        }
    }

    /// The buffer, and — when `with_event` — the event of its requests.
    fn parts(&mut self, with_event: bool) -> Result<(&mut AlignedBuffer, Option<&OwnedHandle>)> {
        if !with_event {
            return Ok((&mut self.buffer, None));
        }
        let event = match self.event.take() {
            Some(event) => event,
            None => sys::create_event().map_err(|hresult| Error::Call {
                operation: "CreateEventW",
                hresult,
            })?,
        };
        Ok((&mut self.buffer, Some(self.event.insert(event))))
    }
}

impl Default for MessageBuffer {
    fn default() -> Self {
        Self::new()
    }
}

/// Codes that mean "this connection is over": closed port, cancelled request.
pub(crate) fn is_end_of_stream(hresult: Hresult) -> bool {
    hresult == Hresult::INVALID_HANDLE || hresult == Hresult::OPERATION_ABORTED
}

/// Maps a failed connect to the error a user can act on.
fn connect_error(port: &str, hresult: Hresult) -> Error {
    match hresult {
        Hresult::FILE_NOT_FOUND => Error::DriverNotLoaded {
            port: port.to_owned(),
            hresult,
        },
        Hresult::ACCESS_DENIED => Error::AccessDenied {
            port: port.to_owned(),
            hresult,
        },
        Hresult::CONNECTION_COUNT_LIMIT => Error::ConnectionLimit {
            port: port.to_owned(),
            hresult,
        },
        Hresult::SHARING_VIOLATION => Error::DeciderBusy {
            port: port.to_owned(),
            hresult,
        },
        Hresult::REVISION_MISMATCH => Error::VersionMismatch {
            client: PROTOCOL_VERSION,
            driver: "another version".to_owned(),
            hresult: Some(hresult),
        },
        _ => Error::Call {
            operation: "FilterConnectCommunicationPort",
            hresult,
        },
    }
}
