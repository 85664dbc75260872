//! The protocol between `portfilter-sim` (the driver hosted under fltsim) and its
//! clients over a Unix stream socket: the fltlib shim (`libfltlib_shim.so`) and the host's
//! own control commands (`portfilter-sim create|workload|stop`).
//!
//! * [`frame`]: length-prefixed frames with a size limit and a deadline for a started
//!   frame;
//! * [`message`]: the requests ([`ToHost`]) and answers ([`FromHost`]), postcard-encoded
//!   in an [`Envelope`] carrying the request id;
//! * [`client`]: the client end (hello, multiplexed requests, reader thread);
//! * [`location`]: where the socket lives (explicit path, `PORTFILTER_SIM_SOCKET`, or a
//!   private per-user default).
//!
//! See docs/sim-host.md for the whole picture.

// Linux only: the host and the shim talk over a Unix socket. On Windows this crate
// compiles to nothing, so that a workspace-wide Windows build (cargo-wdk builds every
// member) succeeds.
#![cfg(not(windows))]

pub mod client;
pub mod frame;
pub mod location;
pub mod message;

pub use frame::{FRAME_DEADLINE, Incoming, MAX_FRAME_BYTES, read_frame, write_frame};
pub use message::{
    CreateSpec, DecodeError, Envelope, FromHost, MAX_IO_BYTES, MAX_PATH_BYTES, MAX_PORT_NAME_UNITS,
    Segment, ToHost, UserBuf, WIRE_VERSION, decode, encode,
};

/// `STATUS_PENDING`: [`FromHost::GetQueued`]'s "queued" status.
pub const STATUS_PENDING: i32 = 0x103;
