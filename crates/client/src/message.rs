//! Messages received from the driver: the Filter Manager's 16-byte header, then one
//! protocol payload (a create event or a batch of them).

use portfilter_protocol::{BatchView, EventView, MessageKind, decode_event, decode_header};

/// Size of `FILTER_MESSAGE_HEADER`, which precedes every payload.
pub const MESSAGE_HEADER_BYTES: usize = 16;

/// The largest message the driver sends, header included: a batch of
/// [`portfilter_protocol::MAX_BATCH_BYTES`] (a single event is smaller).
pub const MAX_MESSAGE_BYTES: usize = MESSAGE_HEADER_BYTES
    + if portfilter_protocol::MAX_BATCH_BYTES > portfilter_protocol::CREATE_EVENT_MAX_BYTES {
        portfilter_protocol::MAX_BATCH_BYTES
    } else {
        portfilter_protocol::CREATE_EVENT_MAX_BYTES
    };

/// Identifies a request-reply message to answer: the Filter Manager's message id and the
/// event's sequence number (which the verdict echoes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReplyTo {
    /// `FILTER_MESSAGE_HEADER.MessageId`.
    pub message_id: u64,
    /// The event's `sequence`.
    pub sequence: u64,
}

/// What a message carries.
#[derive(Clone, Copy, Debug)]
pub enum Payload<'a> {
    /// One create event (request-reply or notify-only).
    Event(EventView<'a>),
    /// A batch of events (queued notify), with the count of events dropped before it.
    Batch(BatchView<'a>),
}

/// One decoded message, borrowing the receive buffer.
#[derive(Clone, Copy, Debug)]
pub struct Received<'a> {
    /// `FILTER_MESSAGE_HEADER.ReplyLength`: 0 when no reply is expected.
    pub reply_length: u32,
    /// `FILTER_MESSAGE_HEADER.MessageId`: 0 when no reply is expected.
    pub message_id: u64,
    /// The payload.
    pub payload: Payload<'a>,
}

impl Received<'_> {
    /// Where to send the verdict, when this is a request-reply event.
    #[must_use]
    pub fn reply_to(&self) -> Option<ReplyTo> {
        match self.payload {
            Payload::Event(event) if self.message_id != 0 && event.is_request() => Some(ReplyTo {
                message_id: self.message_id,
                sequence: event.fields.sequence,
            }),
            _ => None,
        }
    }
}

/// Decodes `FILTER_MESSAGE_HEADER` + payload. `bytes` may extend past the message (a
/// synchronous `FilterGetMessage` does not report the length).
///
/// # Errors
/// The protocol decoder's error; `TooShort` when not even the header is there; and
/// `UnexpectedKind` for kinds the driver never sends to clients.
pub fn decode_message(bytes: &[u8]) -> Result<Received<'_>, portfilter_protocol::Error> {
    let too_short = portfilter_protocol::Error::TooShort {
        need: MESSAGE_HEADER_BYTES,
        got: bytes.len(),
    };
    let (Some(reply_length), Some(message_id), Some(payload)) = (
        bytes
            .get(0..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes),
        bytes
            .get(8..16)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes),
        bytes.get(MESSAGE_HEADER_BYTES..),
    ) else {
        return Err(too_short);
    };
    let payload = match decode_header(payload)? {
        MessageKind::CreateEvent => Payload::Event(decode_event(payload)?),
        MessageKind::EventBatch => Payload::Batch(BatchView::decode(payload)?),
        other => {
            return Err(portfilter_protocol::Error::UnexpectedKind {
                got: other.as_u16(),
            });
        }
    };
    Ok(Received {
        reply_length,
        message_id,
        payload,
    })
}
