//! portfilter's wire protocol, shared by the driver (`no_std`, kernel) and every client.
//!
//! Every message starts with an 8-byte [`header`] (magic `"PF"`, protocol version, kind,
//! reserved). All layouts are little-endian, fixed-offset and free of implicit padding;
//! each size and offset is a `pub const` checked at compile time (and against the C
//! header `include/portfilter_protocol.h` by a test). Encoders write into caller buffers
//! and return the byte count; decoders check every length and field and return an
//! [`Error`] — they never panic, whatever the input. See `docs/protocol.md`.
//!
//! | kind | message | direction | module |
//! |---|---|---|---|
//! | 1 | `CreateEvent` | kernel → user | [`event`] |
//! | 2 | `EventBatch` | kernel → user | [`batch`] |
//! | 3 | Verdict | user → kernel (reply) | [`verdict`] |
//! | 4 | Connect | user → kernel (connection context) | [`connect`] |
//! | 16–19 | Hello, `GetStats`, `GetConfig`, `SetConfig` | user → kernel (commands) | [`command`], [`stats`], [`config`] |
//!
//! A request-reply round trip, driver and client side:
//!
//! ```
//! use portfilter_protocol::{self as pf, EventFields, KernelMessage, Verdict};
//!
//! // Driver: encode the event after the 16 bytes the Filter Manager puts in front.
//! let name: Vec<u16> = r"\Device\HarddiskVolume3\Users\a.txt".encode_utf16().collect();
//! let fields = EventFields {
//!     flags: pf::EVENT_FLAG_REQUEST,
//!     sequence: 41,
//!     volume_name_len: 46,
//!     ..EventFields::default()
//! };
//! let mut buf = pf::AlignedBuffer::<{ pf::DECIDER_GET_MESSAGE_BUFFER_BYTES }>::new();
//! buf.as_mut_slice()[8..16].copy_from_slice(&7u64.to_le_bytes()); // MessageId
//! pf::encode_event(&fields, &name, &mut buf.as_mut_slice()[16..])?;
//!
//! // Client: decode, decide, reply.
//! let (fm, payload) = pf::split_filter_message(buf.as_slice())?;
//! let KernelMessage::Event(event) = pf::decode_kernel_message(payload)? else {
//!     unreachable!()
//! };
//! assert_eq!(event.path_in_volume().to_string(), r"\Users\a.txt");
//! let mut reply = [0u8; pf::VERDICT_REPLY_BYTES];
//! Verdict::deny(event.fields.sequence).encode_reply(fm.message_id, &mut reply)?;
//!
//! // Driver: the kernel reply buffer receives the bytes after FILTER_REPLY_HEADER.
//! let verdict = Verdict::decode(&reply[pf::FILTER_REPLY_HEADER_BYTES..])?;
//! assert_eq!(verdict.sequence, 41);
//! assert_eq!(verdict.completion_status(), pf::status::STATUS_ACCESS_DENIED);
//! # Ok::<(), pf::Error>(())
//! ```
//!
//! Feature `std`: `String` conversion of names ([`Utf16Le::to_string_lossy`]). The
//! driver uses the crate without it; nothing else here allocates. Despite its name the
//! feature needs only `alloc`, never `std`: cargo unifies features across a workspace
//! build, and a `std` pulled into the driver's crate graph would clash with the driver's
//! own panic handler on Windows (`cargo build --workspace` there builds the driver and
//! the client, which turns the feature on, together).
#![no_std]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo
    )
)]

#[cfg(test)]
extern crate std;

#[cfg(feature = "std")]
extern crate alloc;

pub mod batch;
pub mod command;
pub mod config;
pub mod connect;
mod error;
pub mod event;
pub mod filter;
pub mod header;
pub mod message;
pub mod stats;
pub mod status;
pub mod utf16;
pub mod verdict;
mod wire;

pub use batch::{
    BATCH_HEADER_BYTES, BatchEvents, BatchView, BatchWriter, MAX_BATCH_BYTES, MAX_BATCH_EVENTS,
};
pub use command::{
    COMMAND_REQUEST_BYTES, Command, DriverVersion, HELLO_REPLY_BYTES, HelloReply, Request,
    decode_request, encode_request,
};
pub use config::{
    CONFIG_FIXED_BYTES, CONFIG_MAX_BYTES, CONFIG_MIN_BYTES, Config, DELIVERY_NOTIFY,
    DELIVERY_QUEUED, Delivery, SKIP_DIRECTORIES, SKIP_FLAGS_ALL, SKIP_KERNEL_MODE,
};
pub use connect::{
    CONNECT_CONTEXT_BYTES, ConnectContext, ROLE_CONTROL, ROLE_DECIDER, ROLE_OBSERVER, Role,
};
pub use error::Error;
pub use event::{
    CREATE_EVENT_MAX_BYTES, CREATE_EVENT_MIN_BYTES, EVENT_FIXED_BYTES, EVENT_FLAG_DIRECTORY,
    EVENT_FLAG_KERNEL_MODE, EVENT_FLAG_NAME_OPENED, EVENT_FLAG_NAME_TRUNCATED,
    EVENT_FLAG_NAME_UNAVAILABLE, EVENT_FLAG_REQUEST, EVENT_FLAG_UNSAFE_CONTEXT, EVENT_FLAGS_ALL,
    EventFields, EventView, MAX_EVENT_BYTES, MAX_NAME_BYTES, MAX_NAME_UNITS, decode_event,
    decode_record, encode_event, encode_record, record_bytes,
};
pub use filter::{
    Filter, FilterKind, FilterList, MAX_FILTER_BYTES, MAX_FILTER_TOTAL_BYTES, MAX_FILTER_UNITS,
    MAX_FILTERS, extension_of, path_in_volume,
};
pub use header::{
    HEADER_BYTES, MAGIC, MessageKind, PROTOCOL_VERSION, decode_header, encode_header,
};
pub use message::{
    AlignedBuffer, DECIDER_GET_MESSAGE_BUFFER_BYTES, FILTER_MESSAGE_HEADER_BYTES,
    FILTER_REPLY_HEADER_BYTES, FilterMessageHeader, GET_MESSAGE_BUFFER_BYTES, KernelMessage,
    MAX_MESSAGE_BYTES, VERDICT_REPLY_BYTES, decode_kernel_message, split_filter_message,
};
pub use stats::{STATS_BYTES, STATS_COUNTER_NAMES, Stats};
pub use status::{describe_hresult, describe_status, status_for_error};
pub use utf16::Utf16Le;
pub use verdict::{Decision, VERDICT_ALLOW, VERDICT_BYTES, VERDICT_DENY, Verdict};
