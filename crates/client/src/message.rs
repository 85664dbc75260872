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

#[cfg(test)]
mod tests {
    use super::*;
    use portfilter_protocol::{BatchWriter, EVENT_FLAG_REQUEST, EventFields, encode_event};

    fn fields(sequence: u64, flags: u32) -> EventFields {
        EventFields {
            flags,
            sequence,
            process_id: 7,
            volume_name_len: 4,
            ..EventFields::default()
        }
    }

    fn with_header(reply_length: u32, message_id: u64, payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; MESSAGE_HEADER_BYTES];
        bytes[0..4].copy_from_slice(&reply_length.to_le_bytes());
        bytes[4..8].fill(0xEE); // padding the kernel does not write
        bytes[8..16].copy_from_slice(&message_id.to_le_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    fn name() -> Vec<u16> {
        r"\V\a.txt".encode_utf16().collect()
    }

    #[test]
    fn request_events_carry_where_to_reply() {
        let mut payload = vec![0u8; 256];
        let len = encode_event(&fields(41, EVENT_FLAG_REQUEST), &name(), &mut payload).unwrap();
        // Trailing bytes (a synchronous receive does not report the length) are ignored.
        let bytes = with_header(40, 9, &payload);
        let received = decode_message(&bytes).unwrap();
        assert_eq!(received.reply_length, 40);
        assert_eq!(
            received.reply_to(),
            Some(ReplyTo {
                message_id: 9,
                sequence: 41
            })
        );
        let Payload::Event(event) = received.payload else {
            panic!("an event")
        };
        assert_eq!(event.name.to_string_lossy(), r"\V\a.txt");
        assert!(len < payload.len());
    }

    #[test]
    fn notifications_and_batches_have_no_reply() {
        let mut payload = vec![0u8; 256];
        encode_event(&fields(1, 0), &name(), &mut payload).unwrap();
        assert_eq!(
            decode_message(&with_header(0, 0, &payload))
                .unwrap()
                .reply_to(),
            None
        );
        // A request flag without a message id cannot be answered either.
        encode_event(&fields(1, EVENT_FLAG_REQUEST), &name(), &mut payload).unwrap();
        assert_eq!(
            decode_message(&with_header(0, 0, &payload))
                .unwrap()
                .reply_to(),
            None
        );

        let mut batch = vec![0u8; portfilter_protocol::MAX_BATCH_BYTES];
        let mut writer = BatchWriter::new(&mut batch, 8, 3).unwrap();
        writer.push(&fields(5, 0), &name()).unwrap();
        writer.push(&fields(6, 0), &name()).unwrap();
        let used = writer.finish().len();
        let bytes = with_header(0, 0, &batch[..used]);
        let received = decode_message(&bytes).unwrap();
        assert_eq!(received.reply_to(), None);
        let Payload::Batch(view) = received.payload else {
            panic!("a batch")
        };
        assert_eq!(view.dropped_before(), 3);
        let sequences: Vec<u64> = view.events().map(|e| e.fields.sequence).collect();
        assert_eq!(sequences, [5, 6]);
    }

    #[test]
    fn the_receive_bound_is_the_header_plus_the_largest_payload() {
        // Every payload the driver may send (a full batch, the largest single event)
        // fits after the header, and the bound reserves nothing beyond the larger one.
        let largest =
            portfilter_protocol::MAX_BATCH_BYTES.max(portfilter_protocol::CREATE_EVENT_MAX_BYTES);
        assert_eq!(MAX_MESSAGE_BYTES, MESSAGE_HEADER_BYTES + largest);
    }

    #[test]
    fn short_or_foreign_messages_are_errors_not_panics() {
        assert!(matches!(
            decode_message(&[0u8; 15]),
            Err(portfilter_protocol::Error::TooShort { .. })
        ));
        // A verdict is never sent to clients.
        let mut verdict = [0u8; portfilter_protocol::VERDICT_BYTES];
        portfilter_protocol::Verdict::allow(1)
            .encode(&mut verdict)
            .unwrap();
        assert!(matches!(
            decode_message(&with_header(0, 0, &verdict)),
            Err(portfilter_protocol::Error::UnexpectedKind { got: 3 })
        ));
        for len in 0..64 {
            let _ = decode_message(&vec![0xA5; len]);
        }
    }
}
