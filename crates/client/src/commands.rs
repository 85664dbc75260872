//! Commands sent to the driver with `FilterSendMessage`: Hello (ping), statistics,
//! configuration get / set.

use crate::connection::{Connection, is_end_of_stream};
use crate::error::{Error, Result};
use crate::hresult::Hresult;
use crate::sys::{self, AlignedBuffer, OwnedHandle};
use portfilter_protocol::{
    CONFIG_MAX_BYTES, Command, Config, HelloReply, PROTOCOL_VERSION, Stats, encode_request,
};
use std::time::{Duration, Instant};

/// Sends `input` (already encoded) for `command` and returns the output bytes the driver
/// wrote. Input and output buffers are 8-aligned, as the driver requires. The output
/// buffer is always [`Command::max_output_bytes`], so an answer never fails for size:
/// whether `lpBytesReturned` carries the needed size with `STATUS_BUFFER_TOO_SMALL` is
/// disputed (shared/docs/port-semantics.md), and the length is read only on success.
fn call(
    port: &OwnedHandle,
    operation: &'static str,
    command: Command,
    input: &[u8],
) -> Result<Vec<u8>> {
    let mut input_buffer = AlignedBuffer::new(input.len());
    input_buffer.bytes_mut()[..input.len()].copy_from_slice(input);
    let mut output = AlignedBuffer::new(command.max_output_bytes());
    let (hresult, returned) = sys::send(
        port,
        &input_buffer.bytes()[..input.len()],
        output.bytes_mut(),
    );
    if !hresult.is_ok() {
        return Err(match hresult {
            Hresult::REVISION_MISMATCH => Error::VersionMismatch {
                client: PROTOCOL_VERSION,
                driver: "another version".to_owned(),
                hresult: Some(hresult),
            },
            h if is_end_of_stream(h) => Error::Disconnected,
            _ => Error::Call { operation, hresult },
        });
    }
    let len = usize::try_from(returned)
        .unwrap_or(usize::MAX)
        .min(output.len());
    Ok(output.bytes()[..len].to_vec())
}

fn decode_error(operation: &'static str, error: portfilter_protocol::Error) -> Error {
    match error {
        portfilter_protocol::Error::VersionMismatch { got } => Error::VersionMismatch {
            client: PROTOCOL_VERSION,
            driver: got.to_string(),
            hresult: None,
        },
        error => Error::Protocol { operation, error },
    }
}

fn simple_request(command: Command) -> Result<Vec<u8>> {
    let mut input = vec![0u8; portfilter_protocol::COMMAND_REQUEST_BYTES];
    let len = encode_request(command, &mut input).map_err(|error| Error::Protocol {
        operation: "encoding a command",
        error,
    })?;
    input.truncate(len);
    Ok(input)
}

/// The Hello handshake on a raw port handle (used by `Connection::connect`).
pub(crate) fn hello(port: &OwnedHandle) -> Result<HelloReply> {
    const OP: &str = "FilterSendMessage(Hello)";
    let output = call(port, OP, Command::Hello, &simple_request(Command::Hello)?)?;
    HelloReply::decode(&output).map_err(|error| decode_error(OP, error))
}

/// The answer to a ping.
#[derive(Clone, Copy, Debug)]
pub struct Pong {
    /// What the driver said.
    pub hello: HelloReply,
    /// The round trip (user → MessageNotify → user).
    pub round_trip: Duration,
}

impl Connection {
    /// Hello again: checks the driver answers, and how fast.
    ///
    /// # Errors
    /// [`Error::Disconnected`], [`Error::VersionMismatch`], [`Error::Call`],
    /// [`Error::Protocol`]; [`Error::SynchronousHandleBusy`] on a synchronous connection
    /// where another thread is receiving.
    pub fn ping(&self) -> Result<Pong> {
        const OP: &str = "FilterSendMessage(Hello)";
        let _turn = self.turn(OP, false)?;
        let start = Instant::now();
        let hello = hello(self.port())?;
        Ok(Pong {
            hello,
            round_trip: start.elapsed(),
        })
    }

    /// The driver's counters.
    ///
    /// # Errors
    /// As [`ping`](Self::ping).
    pub fn stats(&self) -> Result<Stats> {
        const OP: &str = "FilterSendMessage(GetStats)";
        let _turn = self.turn(OP, false)?;
        let output = call(
            self.port(),
            OP,
            Command::GetStats,
            &simple_request(Command::GetStats)?,
        )?;
        Stats::decode(&output).map_err(|error| decode_error(OP, error))
    }

    /// The driver's configuration.
    ///
    /// # Errors
    /// As [`ping`](Self::ping).
    pub fn config(&self) -> Result<Config> {
        const OP: &str = "FilterSendMessage(GetConfig)";
        let _turn = self.turn(OP, false)?;
        let output = call(
            self.port(),
            OP,
            Command::GetConfig,
            &simple_request(Command::GetConfig)?,
        )?;
        Config::decode(&output, Command::GetConfig).map_err(|error| decode_error(OP, error))
    }

    /// Replaces the driver's configuration; returns the configuration now in force.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `config` does not validate (nothing is sent), or as
    /// [`ping`](Self::ping) (the driver's `STATUS_INVALID_PARAMETER` arrives as
    /// [`Error::Call`] with `0x80070057`).
    pub fn set_config(&self, config: &Config) -> Result<Config> {
        const OP: &str = "FilterSendMessage(SetConfig)";
        let _turn = self.turn(OP, false)?;
        let mut input = vec![0u8; CONFIG_MAX_BYTES];
        let len = config
            .encode(Command::SetConfig, &mut input)
            .map_err(|error| Error::InvalidConfig(error.to_string()))?;
        let output = call(self.port(), OP, Command::SetConfig, &input[..len])?;
        Config::decode(&output, Command::SetConfig).map_err(|error| decode_error(OP, error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_of_another_version_is_a_version_mismatch() {
        let error = decode_error(
            "hello",
            portfilter_protocol::Error::VersionMismatch { got: 9 },
        );
        let Error::VersionMismatch {
            client,
            driver,
            hresult,
        } = &error
        else {
            panic!("{error:?}")
        };
        assert_eq!(
            (*client, driver.as_str(), *hresult),
            (PROTOCOL_VERSION, "9", None)
        );
        assert!(error.to_string().contains("the driver 9"), "{error}");
        let other = decode_error("stats", portfilter_protocol::Error::BadMagic { got: 1 });
        assert!(matches!(
            other,
            Error::Protocol {
                operation: "stats",
                ..
            }
        ));
    }
}
