//! The client's error type: one variant per situation a user can act on.

use crate::hresult::Hresult;

/// What went wrong talking to the driver. Every message is one line that says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The port does not exist: the driver is not loaded.
    #[error("cannot connect to {port}: HRESULT {hresult}")]
    DriverNotLoaded {
        /// The port name tried.
        port: String,
        /// What fltlib returned.
        hresult: Hresult,
    },
    /// The caller may not connect: the port admits Administrators and SYSTEM only.
    #[error("cannot connect to {port}: HRESULT {hresult}")]
    AccessDenied {
        /// The port name tried.
        port: String,
        /// What fltlib returned.
        hresult: Hresult,
    },
    /// The port has its maximum number of clients.
    #[error("cannot connect to {port}: HRESULT {hresult}")]
    ConnectionLimit {
        /// The port name tried.
        port: String,
        /// What fltlib returned.
        hresult: Hresult,
    },
    /// Another client already holds the decider role.
    #[error("cannot connect to {port} as the decider: HRESULT {hresult}")]
    DeciderBusy {
        /// The port name tried.
        port: String,
        /// What fltlib returned.
        hresult: Hresult,
    },
    /// The driver speaks another protocol version.
    #[error(
        "protocol version mismatch: this client speaks version {client}, the driver {driver}{}; install portctl and the driver from the same release",
        .hresult.map(|h| format!(" (HRESULT {h})")).unwrap_or_default()
    )]
    VersionMismatch {
        /// This client's version.
        client: u16,
        /// The driver's version when known, as text (`"2"` or `"another version"`).
        driver: String,
        /// What fltlib returned, if the mismatch came back as an error code.
        hresult: Option<Hresult>,
    },
    /// A fltlib / Win32 call failed for another reason.
    #[error("{operation} failed, HRESULT {hresult}")]
    Call {
        /// The call (`FilterSendMessage(GetStats)`, …).
        operation: &'static str,
        /// What it returned.
        hresult: Hresult,
    },
    /// The driver's answer could not be decoded.
    #[error("malformed answer from the driver to {operation}: {error}")]
    Protocol {
        /// What was being done.
        operation: &'static str,
        /// The decoder's complaint.
        error: portfilter_protocol::Error,
    },
    /// A configuration value was rejected before it was sent.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The connection is closed (driver unloading or port closed).
    #[error("the connection to the driver is closed (the driver unloaded or closed the port)")]
    Disconnected,
    /// An engine option is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A call on a synchronous connection from a thread while another thread waits in
    /// a receive: the I/O manager serializes a synchronous handle, so the call would wait
    /// for the next message. Refused instead (see `ConnectOptions::synchronous`).
    #[error(
        "{operation} refused: another thread waits in {holder} on this synchronous handle, and the I/O manager serializes such a handle (the call would wait for the next message); make every call on a synchronous connection from one thread, or connect without `synchronous`"
    )]
    SynchronousHandleBusy {
        /// The refused call.
        operation: &'static str,
        /// The call holding the handle.
        holder: &'static str,
    },
}

impl Error {
    /// The HRESULT behind the error, when there is one.
    #[must_use]
    pub fn hresult(&self) -> Option<Hresult> {
        match self {
            Self::DriverNotLoaded { hresult, .. }
            | Self::AccessDenied { hresult, .. }
            | Self::ConnectionLimit { hresult, .. }
            | Self::DeciderBusy { hresult, .. }
            | Self::Call { hresult, .. } => Some(*hresult),
            Self::VersionMismatch { hresult, .. } => *hresult,
            Self::Disconnected => Some(Hresult::INVALID_HANDLE),
            Self::Protocol { .. }
            | Self::InvalidConfig(_)
            | Self::InvalidOption(_)
            | Self::SynchronousHandleBusy { .. } => None,
        }
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
