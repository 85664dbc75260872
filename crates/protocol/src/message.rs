//! Kernel → user dispatch, the Filter Manager's framing sizes, and an 8-aligned buffer.
//!
//! `FilterGetMessage` fills the user buffer with the Filter Manager's 16-byte
//! `FILTER_MESSAGE_HEADER` followed by the driver's payload (a `CreateEvent` or an
//! `EventBatch`); a reply is `FILTER_REPLY_HEADER` (16 bytes) followed by a `Verdict`.

use crate::Error;
use crate::batch::{BatchView, MAX_BATCH_BYTES};
use crate::event::{CREATE_EVENT_MAX_BYTES, EventView, decode_event};
use crate::header::{MessageKind, decode_header};
use crate::verdict::VERDICT_BYTES;

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
