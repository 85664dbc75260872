//! Kernel → user dispatch, the Filter Manager's framing sizes, and an 8-aligned buffer.
//!
//! `FilterGetMessage` fills the user buffer with the Filter Manager's 16-byte
//! `FILTER_MESSAGE_HEADER` followed by the driver's payload (a `CreateEvent` or an
//! `EventBatch`); a reply is `FILTER_REPLY_HEADER` (16 bytes) followed by a `Verdict`.

use crate::Error;
use crate::batch::{BatchView, MAX_BATCH_BYTES};
use crate::event::{CREATE_EVENT_MAX_BYTES, EventView, decode_event};
use crate::header::{MessageKind, decode_header};
use crate::verdict::{VERDICT_BYTES, Verdict};
use crate::wire::{get_u32, get_u64, need, need_out, put_u32, put_u64};

/// Size of the Filter Manager's `FILTER_MESSAGE_HEADER` (`ReplyLength` u32 @0, padding,
/// `MessageId` u64 @8) in front of every payload `FilterGetMessage` returns.
pub const FILTER_MESSAGE_HEADER_BYTES: usize = 16;
/// Size of the Filter Manager's `FILTER_REPLY_HEADER` (Status i32 @0, padding, `MessageId`
/// u64 @8) in front of every reply payload.
pub const FILTER_REPLY_HEADER_BYTES: usize = 16;
/// Largest kernel → user payload (a full batch).
pub const MAX_MESSAGE_BYTES: usize = if MAX_BATCH_BYTES > CREATE_EVENT_MAX_BYTES {
    MAX_BATCH_BYTES
} else {
    CREATE_EVENT_MAX_BYTES
};
/// A `FilterGetMessage` buffer this large takes any message (header + largest payload).
pub const GET_MESSAGE_BUFFER_BYTES: usize = FILTER_MESSAGE_HEADER_BYTES + MAX_MESSAGE_BYTES;
/// A `FilterGetMessage` buffer for a decider, which only receives `CreateEvent`s.
pub const DECIDER_GET_MESSAGE_BUFFER_BYTES: usize =
    FILTER_MESSAGE_HEADER_BYTES + CREATE_EVENT_MAX_BYTES;
/// Bytes a decider passes to `FilterReplyMessage`: reply header + verdict (exactly).
pub const VERDICT_REPLY_BYTES: usize = FILTER_REPLY_HEADER_BYTES + VERDICT_BYTES;

/// The Filter Manager's `FILTER_MESSAGE_HEADER` at the start of a `FilterGetMessage`
/// buffer (written by the Filter Manager, not by the driver).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FilterMessageHeader {
    /// Reply capacity the sender asked for plus 16; 0 when no reply is expected.
    pub reply_length: u32,
    /// Id to echo in the reply's `FILTER_REPLY_HEADER`; 0 when no reply is expected.
    pub message_id: u64,
}

/// Splits a `FilterGetMessage` buffer into the Filter Manager's header and the driver's
/// payload (the rest of the buffer; decoders ignore bytes after the message).
///
/// # Errors
/// [`Error::TooShort`] when the buffer is shorter than 16 bytes.
pub fn split_filter_message(buf: &[u8]) -> Result<(FilterMessageHeader, &[u8]), Error> {
    need(buf, FILTER_MESSAGE_HEADER_BYTES)?;
    let header = FilterMessageHeader {
        reply_length: get_u32(buf, 0)?,
        message_id: get_u64(buf, 8)?,
    };
    Ok((
        header,
        buf.get(FILTER_MESSAGE_HEADER_BYTES..).unwrap_or_default(),
    ))
}

impl Verdict {
    /// Encodes the whole `FilterReplyMessage` buffer: a `FILTER_REPLY_HEADER` (status 0,
    /// `message_id`, padding zeroed) followed by the verdict; returns
    /// [`VERDICT_REPLY_BYTES`], the exact size to pass.
    ///
    /// # Errors
    /// As [`Verdict::encode`].
    pub fn encode_reply(&self, message_id: u64, out: &mut [u8]) -> Result<usize, Error> {
        need_out(out, VERDICT_REPLY_BYTES)?;
        let (head, body) = out.split_at_mut(FILTER_REPLY_HEADER_BYTES);
        self.encode(body)?;
        put_u32(head, 0, 0)?;
        put_u32(head, 4, 0)?;
        put_u64(head, 8, message_id)?;
        Ok(VERDICT_REPLY_BYTES)
    }
}

/// A decoded kernel → user payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelMessage<'a> {
    /// One event (request-reply or notify).
    Event(EventView<'a>),
    /// A batch of events (queued delivery).
    Batch(BatchView<'a>),
}

/// Decodes the payload after the `FILTER_MESSAGE_HEADER` (trailing bytes ignored).
///
/// # Errors
/// Header errors; [`Error::UnexpectedKind`] for a kind the driver never sends to user
/// mode; the errors of [`decode_event`] and [`BatchView::decode`].
pub fn decode_kernel_message(payload: &[u8]) -> Result<KernelMessage<'_>, Error> {
    match decode_header(payload)? {
        MessageKind::CreateEvent => decode_event(payload).map(KernelMessage::Event),
        MessageKind::EventBatch => BatchView::decode(payload).map(KernelMessage::Batch),
        other => Err(Error::UnexpectedKind {
            got: other.as_u16(),
        }),
    }
}

/// A byte buffer aligned to 8, as the driver requires of command buffers (an unaligned
/// one fails with `STATUS_DATATYPE_MISALIGNMENT_ERROR`). Box it for large `N`.
#[derive(Clone, PartialEq, Eq)]
#[repr(C, align(8))]
pub struct AlignedBuffer<const N: usize> {
    bytes: [u8; N],
}

impl<const N: usize> AlignedBuffer<N> {
    /// A zeroed buffer.
    #[must_use]
    pub const fn new() -> Self {
        Self { bytes: [0; N] }
    }

    /// The bytes.
    #[must_use]
    pub const fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes, mutable.
    pub const fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

impl<const N: usize> Default for AlignedBuffer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> core::fmt::Debug for AlignedBuffer<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AlignedBuffer<{N}>")
    }
}

const _: () = assert!(align_of::<AlignedBuffer<1>>() == 8);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventFields, encode_event};

    #[test]
    fn get_message_buffer_splits_and_dispatches() {
        let mut buf = AlignedBuffer::<128>::new();
        let bytes = buf.as_mut_slice();
        bytes[0..4].copy_from_slice(&40u32.to_le_bytes());
        bytes[8..16].copy_from_slice(&9u64.to_le_bytes());
        let fields = EventFields {
            flags: crate::EVENT_FLAG_REQUEST,
            sequence: 5,
            ..EventFields::default()
        };
        encode_event(&fields, &[92, 120], &mut bytes[16..]).unwrap();
        let (header, payload) = split_filter_message(buf.as_slice()).unwrap();
        assert_eq!(
            header,
            FilterMessageHeader {
                reply_length: 40,
                message_id: 9
            }
        );
        match decode_kernel_message(payload).unwrap() {
            KernelMessage::Event(ev) => assert_eq!(ev.fields.sequence, 5),
            KernelMessage::Batch(_) => panic!("not a batch"),
        }
        assert!(split_filter_message(&buf.as_slice()[..15]).is_err());
        let mut verdict = [0u8; 24];
        Verdict::allow(1).encode(&mut verdict).unwrap();
        assert_eq!(
            decode_kernel_message(&verdict),
            Err(Error::UnexpectedKind { got: 3 })
        );
    }

    #[test]
    fn verdict_reply_has_the_reply_header() {
        let mut out = [0xFFu8; 48];
        assert_eq!(
            Verdict::deny(77).encode_reply(0x1234, &mut out),
            Ok(VERDICT_REPLY_BYTES)
        );
        assert_eq!(&out[..8], &[0u8; 8]);
        assert_eq!(u64::from_le_bytes(out[8..16].try_into().unwrap()), 0x1234);
        assert_eq!(Verdict::decode(&out[16..40]), Ok(Verdict::deny(77)));
        assert!(Verdict::deny(1).encode_reply(1, &mut out[..39]).is_err());
    }

    #[test]
    fn a_decider_buffer_holds_exactly_the_largest_event() {
        // A decider receives only `CreateEvent`s: its buffer is the Filter Manager's
        // header plus the largest event, no more.
        let mut buf =
            std::boxed::Box::new(AlignedBuffer::<DECIDER_GET_MESSAGE_BUFFER_BYTES>::new());
        let fields = EventFields {
            flags: crate::EVENT_FLAG_REQUEST,
            sequence: 11,
            ..EventFields::default()
        };
        let name = std::vec![u16::from(b'x'); crate::MAX_NAME_UNITS];
        let bytes = buf.as_mut_slice();
        let len = encode_event(&fields, &name, &mut bytes[FILTER_MESSAGE_HEADER_BYTES..]).unwrap();
        assert_eq!(len, CREATE_EVENT_MAX_BYTES);
        assert_eq!(
            FILTER_MESSAGE_HEADER_BYTES + len,
            DECIDER_GET_MESSAGE_BUFFER_BYTES,
            "the largest event fills the decider buffer"
        );
        let (_, payload) = split_filter_message(buf.as_slice()).unwrap();
        match decode_kernel_message(payload).unwrap() {
            KernelMessage::Event(ev) => assert_eq!(ev.fields.sequence, 11),
            KernelMessage::Batch(_) => panic!("not a batch"),
        }
    }

    #[test]
    fn an_aligned_buffer_debugs_as_its_size_not_its_bytes() {
        let text = std::format!("{:?}", AlignedBuffer::<24>::new());
        assert_eq!(text, "AlignedBuffer<24>");
    }
}
