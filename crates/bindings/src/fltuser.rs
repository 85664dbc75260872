//! The message and reply headers of a Filter Manager communication port
//! (`fltuserstructures.h`), shared by the kernel and user sides.

use crate::ntdef::NTSTATUS;
use core::mem::{offset_of, size_of};

/// `FILTER_MESSAGE_HEADER`: what precedes the driver's payload in a `FilterGetMessage`
/// buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FILTER_MESSAGE_HEADER {
    /// Capacity of the kernel reply buffer plus 16, or 0 when no reply is expected.
    pub ReplyLength: u32,
    /// Identifies the message for `FilterReplyMessage`; 0 when no reply is expected.
    pub MessageId: u64,
}
const _: () = assert!(size_of::<FILTER_MESSAGE_HEADER>() == 16);
const _: () = assert!(offset_of!(FILTER_MESSAGE_HEADER, ReplyLength) == 0);
const _: () = assert!(offset_of!(FILTER_MESSAGE_HEADER, MessageId) == 8);

/// `FILTER_REPLY_HEADER`: what precedes the client's payload in `FilterReplyMessage`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FILTER_REPLY_HEADER {
    /// The status `FltSendMessage` returns to the driver.
    pub Status: NTSTATUS,
    /// The `MessageId` of the message being answered.
    pub MessageId: u64,
}
const _: () = assert!(size_of::<FILTER_REPLY_HEADER>() == 16);
const _: () = assert!(offset_of!(FILTER_REPLY_HEADER, Status) == 0);
const _: () = assert!(offset_of!(FILTER_REPLY_HEADER, MessageId) == 8);

/// Size of either header: payload starts at this offset.
pub const FILTER_HEADER_SIZE: usize = 16;

/// `FLT_PORT_CONNECT` access right.
pub const FLT_PORT_CONNECT: u32 = 0x0001;
/// `FLT_PORT_ALL_ACCESS`: what a connect asks for and the default descriptor grants.
pub const FLT_PORT_ALL_ACCESS: u32 = 0x001F_0001;
/// `FLT_PORT_FLAG_SYNC_HANDLE` for `FilterConnectCommunicationPort`.
pub const FLT_PORT_FLAG_SYNC_HANDLE: u32 = 0x0000_0001;
