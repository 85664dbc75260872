//! Failures and their exit codes (documented in `--help` and docs/portctl.md).

use portfilter_client::Error;
use std::fmt;

/// Exit code: a call failed at run time.
pub const RUNTIME: u8 = 1;
/// Exit code: bad arguments, rules file or setting.
pub const USAGE: u8 = 2;
/// Exit code: the driver is not loaded.
pub const NOT_LOADED: u8 = 3;
/// Exit code: access denied.
pub const ACCESS_DENIED: u8 = 4;
/// Exit code: connection limit or another decider.
pub const BUSY: u8 = 5;
/// Exit code: protocol version mismatch.
pub const VERSION: u8 = 6;
/// Exit code: the driver went away and portctl stopped (`--no-reconnect`, or the driver
/// did not come back within `--reconnect-limit`).
pub const DRIVER_GONE: u8 = 7;
/// Exit code: portctl stopped on an internal error (a panic, e.g. in a rule handler);
/// see `fatal`.
pub const PANIC: u8 = 8;

/// Why portctl failed.
#[derive(Debug)]
pub enum Failure {
    /// From the client library.
    Client(Error),
    /// A usage problem found by portctl itself (rules file, setting).
    Usage(String),
    /// Anything else at run time.
    Runtime(String),
    /// The driver went away and portctl stopped (exit [`DRIVER_GONE`]).
    DriverGone(String),
    /// Not allowed (exit [`ACCESS_DENIED`]), e.g. by the service control manager.
    Denied(String),
    /// Reconnecting after the driver went away failed in a way retrying cannot fix (a
    /// version mismatch after a reload, access denied): the error's own exit code.
    Reconnect(Error),
}

impl Failure {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Client(error) | Self::Reconnect(error) => match error {
                Error::DriverNotLoaded { .. } => NOT_LOADED,
                Error::AccessDenied { .. } => ACCESS_DENIED,
                Error::ConnectionLimit { .. } | Error::DeciderBusy { .. } => BUSY,
                Error::VersionMismatch { .. } => VERSION,
                Error::InvalidConfig(_) | Error::InvalidOption(_) => USAGE,
                _ => RUNTIME,
            },
            Self::Usage(_) => USAGE,
            Self::Runtime(_) => RUNTIME,
            Self::DriverGone(_) => DRIVER_GONE,
            Self::Denied(_) => ACCESS_DENIED,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Client(error) => write!(f, "{error}"),
            Self::Reconnect(error) => write!(f, "cannot reconnect to the driver: {error}"),
            Self::Usage(message)
            | Self::Runtime(message)
            | Self::DriverGone(message)
            | Self::Denied(message) => f.write_str(message),
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self::Client(error)
    }
}
