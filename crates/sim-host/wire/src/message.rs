//! The messages exchanged over the socket, and their encoding (postcard, inside a
//! length-prefixed [`frame`](crate::frame)).
//!
//! Every frame carries one [`Envelope`]: a request id chosen by the client and a body.
//! The host answers each request with exactly one [`FromHost`] body carrying the same
//! id. [`FromHost::GetDone`] is the only unsolicited message: it completes a queued
//! `FilterGetMessage` and carries id 0.

use serde::{Deserialize, Serialize};

/// Version of this protocol, checked by [`ToHost::Hello`]. 2: [`ToHost::Violation`].
pub const WIRE_VERSION: u32 = 2;

/// Largest buffer (get capacity, send input or output) the host allocates for a client.
/// Larger lengths are clamped to it; portfilter's messages and commands are a few KiB.
pub const MAX_IO_BYTES: usize = 1 << 20;

/// Longest port name accepted, in UTF-16 units.
pub const MAX_PORT_NAME_UNITS: usize = 1024;

/// Longest create path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 32 * 1024;

/// A message with the request id it answers (or 0 for unsolicited host messages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Request id (client-chosen, echoed by the host).
    pub id: u64,
    /// The message.
    pub body: T,
}

/// A caller buffer of `FilterSendMessage`, as the shim could read it.
///
/// `align` is the caller's address modulo 16: the host places its copy at the same
/// alignment, so the driver's alignment checks see what they would see in-process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserBuf {
    /// The caller passed a null pointer (with this length).
    Null {
        /// The caller's length.
        len: u32,
    },
    /// A readable (input) or writable (output) buffer and its current bytes.
    Bytes {
        /// Caller address modulo 16.
        align: u8,
        /// The buffer's bytes (output: its current content, so bytes the driver does
        /// not write come back unchanged).
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// A non-null buffer the shim could not read (input) or write (output): the host
    /// passes the driver an address that faults the same way.
    Fault {
        /// Caller address modulo 16.
        align: u8,
        /// The caller's length.
        len: u32,
    },
}

/// A simulated file create (`portfilter-sim create` and the workload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSpec {
    /// DOS (`C:\…`) or NT (`\Device\…`) path.
    pub path: String,
    /// Requestor process id.
    pub pid: u32,
    /// Requestor thread id (0: let the host choose).
    pub tid: u32,
    /// Image name of the requestor process (informational).
    pub image: String,
    /// Kernel-mode requestor.
    pub kernel: bool,
    /// `DesiredAccess` mask.
    pub desired_access: u32,
    /// `ShareAccess`.
    pub share_access: u32,
    /// Create disposition (`FILE_OPEN` = 1, …).
    pub disposition: u32,
    /// Create options besides the flags below.
    pub options: u32,
    /// File attributes.
    pub attributes: u32,
    /// `FILE_DIRECTORY_FILE`.
    pub directory: bool,
    /// `SL_OPEN_PAGING_FILE`.
    pub paging_file: bool,
    /// `FO_VOLUME_OPEN`.
    pub volume_open: bool,
}

/// Client → host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToHost {
    /// First message of every connection. `drop_admin`: the client asks to be treated
    /// as a non-administrator even if its credentials would make it one (a test knob; it
    /// can only lower privilege).
    Hello {
        /// [`WIRE_VERSION`] of the client.
        version: u32,
        /// Ask to be a non-administrator.
        drop_admin: bool,
    },
    /// `FilterConnectCommunicationPort`.
    Connect {
        /// Port name, UTF-16 without terminator.
        name: Vec<u16>,
        /// `dwOptions`.
        options: u32,
        /// Connection context bytes.
        #[serde(with = "serde_bytes")]
        context: Vec<u8>,
    },
    /// Queue a `FilterGetMessage` request (answered by [`FromHost::GetQueued`], then
    /// completed by [`FromHost::GetDone`] unless it failed at once).
    Get {
        /// Connection id.
        conn: u32,
        /// Client token naming the request in `Cancel` and `GetDone`.
        token: u64,
        /// Size of the client's buffer (header included).
        capacity: u32,
    },
    /// `CancelIoEx` of one queued request.
    Cancel {
        /// Connection id.
        conn: u32,
        /// Token of the request.
        token: u64,
    },
    /// `FilterReplyMessage` with the whole user buffer (header + payload).
    Reply {
        /// Connection id.
        conn: u32,
        /// The reply buffer.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// `FilterSendMessage`.
    Send {
        /// Connection id.
        conn: u32,
        /// Input buffer.
        input: UserBuf,
        /// Output buffer.
        output: UserBuf,
    },
    /// The last handle of the connection was closed.
    Close {
        /// Connection id.
        conn: u32,
    },
    /// The client's Win32 layer saw it break a handle rule (`fltsim_user::rule`): the
    /// host's verifier records it (answered by [`FromHost::Status`]).
    Violation {
        /// The rule's name.
        rule: String,
        /// What happened.
        detail: String,
    },
    /// Control: perform a file create (administrators only).
    Create(CreateSpec),
    /// Control: shut the host down (administrators only).
    Stop,
}

/// Host → client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromHost {
    /// Answer to [`ToHost::Hello`].
    Hello {
        /// [`WIRE_VERSION`] of the host.
        version: u32,
        /// The host's process id.
        host_pid: u32,
        /// The simulated process id the client acts as.
        sim_pid: u32,
        /// Whether the client is an administrator for the port's security check.
        admin: bool,
    },
    /// Answer to [`ToHost::Connect`]: `status` (NTSTATUS) and, on success, the id.
    Connected {
        /// NTSTATUS of the connect.
        status: i32,
        /// Connection id (valid when `status` is 0).
        conn: u32,
    },
    /// Answer to [`ToHost::Get`]: `STATUS_PENDING` (0x103) when queued, else the
    /// status of the immediate failure (no `GetDone` follows).
    GetQueued {
        /// NTSTATUS.
        status: i32,
    },
    /// Unsolicited: a queued request completed.
    GetDone {
        /// The request's token.
        token: u64,
        /// NTSTATUS of the completion.
        status: i32,
        /// Bytes transferred, or the size needed for `STATUS_BUFFER_TOO_SMALL`.
        information: u64,
        /// `(offset, bytes)` segments written to the client's buffer (bytes between
        /// segments — the header's padding — are left untouched).
        segments: Vec<Segment>,
    },
    /// Answer to [`ToHost::Cancel`].
    Cancelled {
        /// Whether the request was still queued (it then completes with
        /// `STATUS_CANCELLED`).
        found: bool,
    },
    /// Answer with a bare NTSTATUS (`Reply`, `Close`, `Stop`).
    Status {
        /// NTSTATUS.
        status: i32,
    },
    /// Answer to [`ToHost::Send`].
    Sent {
        /// NTSTATUS of MessageNotify (or of the Filter Manager's checks).
        status: i32,
        /// `ReturnOutputBufferLength`.
        returned: u32,
        /// The output buffer after the call (absent for a null or faulting buffer).
        #[serde(with = "serde_bytes")]
        output: Option<Vec<u8>>,
    },
    /// Answer to [`ToHost::Create`].
    Created {
        /// Final NTSTATUS of the create.
        status: i32,
        /// Time the create spent in the Filter Manager and the driver, in nanoseconds.
        elapsed_ns: u64,
    },
    /// The request was refused (malformed, not allowed for this peer, wrong version).
    Refused {
        /// Why.
        reason: String,
    },
}

/// A piece of a completed `FilterGetMessage` buffer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Offset in the client's buffer.
    pub offset: u32,
    /// Bytes written there.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// Why a frame body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed message: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Encodes an envelope into a frame body.
#[must_use]
pub fn encode<T: Serialize>(envelope: &Envelope<T>) -> Vec<u8> {
    // Serialising these plain structs into a Vec cannot fail.
    postcard::to_allocvec(envelope).unwrap_or_default()
}

/// Decodes a frame body. Never panics; trailing bytes are an error.
///
/// # Errors
/// [`DecodeError`] for anything that is not exactly one envelope.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<Envelope<T>, DecodeError> {
    match postcard::take_from_bytes::<Envelope<T>>(body) {
        Ok((envelope, [])) => Ok(envelope),
        Ok((_, rest)) => Err(DecodeError(format!("{} trailing bytes", rest.len()))),
        Err(e) => Err(DecodeError(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip<T>(body: T)
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug + Clone,
    {
        let env = Envelope { id: 77, body };
        let bytes = encode(&env);
        assert_eq!(decode::<T>(&bytes).unwrap(), env);
    }

    #[test]
    fn every_request_round_trips() {
        round_trip(ToHost::Hello {
            version: WIRE_VERSION,
            drop_admin: true,
        });
        round_trip(ToHost::Connect {
            name: "\\PortFilterPort".encode_utf16().collect(),
            options: 1,
            context: vec![1, 2, 3],
        });
        round_trip(ToHost::Get {
            conn: 3,
            token: u64::MAX,
            capacity: 4096,
        });
        round_trip(ToHost::Send {
            conn: 1,
            input: UserBuf::Bytes {
                align: 8,
                data: vec![9; 40],
            },
            output: UserBuf::Fault { align: 3, len: 7 },
        });
        round_trip(ToHost::Create(CreateSpec {
            path: r"C:\x\y.txt".into(),
            pid: 42,
            tid: 43,
            image: "a.exe".into(),
            kernel: false,
            desired_access: 0x8000_0000,
            share_access: 7,
            disposition: 1,
            options: 0,
            attributes: 0x80,
            directory: false,
            paging_file: false,
            volume_open: true,
        }));
        round_trip(ToHost::Violation {
            rule: "a rule".into(),
            detail: "what happened".into(),
        });
        round_trip(ToHost::Stop);
    }

    #[test]
    fn every_answer_round_trips() {
        round_trip(FromHost::GetDone {
            token: 5,
            status: 0,
            information: 100,
            segments: vec![
                Segment {
                    offset: 0,
                    data: vec![1, 2, 3, 4],
                },
                Segment {
                    offset: 8,
                    data: vec![5; 92],
                },
            ],
        });
        round_trip(FromHost::Sent {
            status: -1,
            returned: 12,
            output: Some(vec![0; 12]),
        });
        round_trip(FromHost::Sent {
            status: 0,
            returned: 0,
            output: None,
        });
        round_trip(FromHost::Refused {
            reason: "no".into(),
        });
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode(&Envelope {
            id: 1,
            body: ToHost::Stop,
        });
        bytes.push(0);
        assert!(decode::<ToHost>(&bytes).is_err());
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<ToHost>(&bytes);
            let _ = decode::<FromHost>(&bytes);
        }
    }
}
