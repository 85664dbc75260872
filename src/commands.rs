//! Commands: `FilterSendMessage` → `MessageNotify`, on the caller's thread.
//!
//! The input and output buffers are raw user-mode addresses. They are only touched through
//! [`UserPtr`] (fault-tolerant copies); the input is captured into a pool buffer first and
//! everything is validated there. Checks, in order, each with its documented status
//! (docs/protocol.md, docs/driver.md):
//!
//! | check | status |
//! |---|---|
//! | input null or empty | `STATUS_INVALID_PARAMETER` |
//! | input or output (when given) not 8-byte aligned | `STATUS_DATATYPE_MISALIGNMENT_ERROR` |
//! | input unreadable | `STATUS_ACCESS_VIOLATION` |
//! | header: bad magic / reserved | `STATUS_INVALID_PARAMETER` |
//! | header: other protocol version | `STATUS_REVISION_MISMATCH` |
//! | header: unknown kind or not a command | `STATUS_NOT_SUPPORTED` |
//! | input size wrong for the command | `STATUS_INFO_LENGTH_MISMATCH` |
//! | output smaller than the answer | `STATUS_BUFFER_TOO_SMALL`, needed size returned |
//! | `SetConfig` field invalid | `STATUS_INVALID_PARAMETER` |
//! | out of pool | `STATUS_INSUFFICIENT_RESOURCES` |
//! | output unwritable | `STATUS_ACCESS_VIOLATION` |
//!
//! `SetConfig` checks that the output is writable (by writing zeros) *before* it applies
//! anything, so a bad output pointer leaves the configuration unchanged (unless the client
//! unmaps the buffer in the instant between that check and the answer).

use crate::config::{Settings, new_config};
use crate::pool::PoolBytes;
use crate::state::DriverState;
use crate::stats::Counter;
use crate::usercopy::UserPtr;
use portfilter_bindings::{
    NTSTATUS, STATUS_BUFFER_TOO_SMALL, STATUS_DATATYPE_MISALIGNMENT_ERROR,
    STATUS_INFO_LENGTH_MISMATCH, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_PARAMETER,
    STATUS_SUCCESS,
};
use portfilter_protocol::{
    CONFIG_MAX_BYTES, Command, Config, DriverVersion, HEADER_BYTES, HELLO_REPLY_BYTES, HelloReply,
    PROTOCOL_VERSION, STATS_BYTES, Stats, decode_header, decode_request, status_for_error,
};

/// Alignment required of command buffers.
pub(crate) const COMMAND_ALIGNMENT: usize = 8;

/// The largest input any command takes.
const MAX_INPUT_BYTES: usize = CONFIG_MAX_BYTES;

/// This driver's version, from the package version.
pub(crate) const DRIVER_VERSION: DriverVersion = DriverVersion {
    major: parse_u8(env!("CARGO_PKG_VERSION_MAJOR")),
    minor: parse_u8(env!("CARGO_PKG_VERSION_MINOR")),
    patch: parse_u8(env!("CARGO_PKG_VERSION_PATCH")) as u16,
};

const fn parse_u8(s: &str) -> u8 {
    let bytes = s.as_bytes();
    let mut value: u32 = 0;
    let mut i = 0;
    while i < bytes.len() {
        assert!(bytes[i].is_ascii_digit(), "version component");
        value = value * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    assert!(value <= 255, "version component too large");
    value as u8
}

/// What a command produced: the status, and the byte count for `*ReturnOutputBufferLength`
/// (bytes written on success, the needed size on `STATUS_BUFFER_TOO_SMALL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The status `MessageNotify` returns.
    pub status: NTSTATUS,
    /// The value for `*ReturnOutputBufferLength`.
    pub returned: u32,
}

impl Answer {
    fn fail(status: NTSTATUS) -> Self {
        Self {
            status,
            returned: 0,
        }
    }
}

/// Handles one command from the connection in slot `slot`.
pub(crate) fn handle(state: &DriverState, slot: usize, input: UserPtr, output: UserPtr) -> Answer {
    if input.is_null() || input.len() == 0 {
        return Answer::fail(STATUS_INVALID_PARAMETER);
    }
    let output_given = !output.is_null() && output.len() > 0;
    if !input.is_aligned(COMMAND_ALIGNMENT)
        || (output_given && !output.is_aligned(COMMAND_ALIGNMENT))
    {
        return Answer::fail(STATUS_DATATYPE_MISALIGNMENT_ERROR);
    }
    let output = if output_given {
        output
    } else {
        UserPtr::new(core::ptr::null_mut(), 0)
    };

    // Capture the input. Longer than any command: only the header is read, so that an
    // unknown kind or version still gets its own status.
    let capture_len = if input.len() > MAX_INPUT_BYTES {
        HEADER_BYTES
    } else {
        input.len()
    };
    let Some(mut captured) = PoolBytes::zeroed(capture_len) else {
        return Answer::fail(STATUS_INSUFFICIENT_RESOURCES);
    };
    if let Err(status) = input.read_into(&mut captured) {
        return Answer::fail(status);
    }
    if input.len() > MAX_INPUT_BYTES {
        return Answer::fail(match decode_header(&captured) {
            Err(e) => status_for_error(&e),
            Ok(_) => STATUS_INFO_LENGTH_MISMATCH,
        });
    }
    let request = match decode_request(&captured) {
        Ok(request) => request,
        Err(e) => return Answer::fail(status_for_error(&e)),
    };
    match request.command {
        Command::Hello => hello(state, slot, output),
        Command::GetStats => get_stats(state, output),
        Command::GetConfig => get_config(state, output),
        Command::SetConfig => set_config(state, request.input, output),
    }
}

/// Checks the output can take `needed` bytes.
fn check_room(output: UserPtr, needed: usize) -> Result<(), Answer> {
    if output.len() < needed {
        Err(Answer {
            status: STATUS_BUFFER_TOO_SMALL,
            returned: u32::try_from(needed).unwrap_or(u32::MAX),
        })
    } else {
        Ok(())
    }
}

/// Writes the answer.
fn reply(output: UserPtr, answer: &[u8]) -> Answer {
    match output.write_from(answer) {
        Ok(()) => Answer {
            status: STATUS_SUCCESS,
            returned: u32::try_from(answer.len()).unwrap_or(u32::MAX),
        },
        Err(status) => Answer::fail(status),
    }
}

fn hello(state: &DriverState, slot: usize, output: UserPtr) -> Answer {
    if let Err(answer) = check_room(output, HELLO_REPLY_BYTES) {
        return answer;
    }
    let Some(info) = state.connections.info(slot) else {
        return Answer::fail(STATUS_INVALID_PARAMETER);
    };
    let answer = HelloReply {
        driver_version: DRIVER_VERSION,
        protocol_version: PROTOCOL_VERSION,
        role: info.role,
        connection_id: info.connection_id,
        observer_delivery: state.config.settings().observer_delivery,
    };
    let mut buf = [0u8; HELLO_REPLY_BYTES];
    match answer.encode(&mut buf) {
        Ok(_) => reply(output, &buf),
        Err(e) => Answer::fail(status_for_error(&e)),
    }
}

/// The counters and gauges now.
pub(crate) fn snapshot(state: &DriverState) -> Stats {
    let s = &state.stats;
    let counts = state.connections.counts();
    Stats {
        events_seen: s.get(Counter::EventsSeen),
        events_reported: s.get(Counter::EventsReported),
        events_skipped: s.get(Counter::EventsSkipped),
        self_excluded: s.get(Counter::SelfExcluded),
        requests_sent: s.get(Counter::RequestsSent),
        replies_allow: s.get(Counter::RepliesAllow),
        replies_deny: s.get(Counter::RepliesDeny),
        reply_timeouts: s.get(Counter::ReplyTimeouts),
        reply_bad: s.get(Counter::ReplyBad),
        default_verdicts: s.get(Counter::DefaultVerdicts),
        notify_sent: s.get(Counter::NotifySent),
        notify_failed: s.get(Counter::NotifyFailed),
        queue_enqueued: s.get(Counter::QueueEnqueued),
        queue_dropped: s.get(Counter::QueueDropped),
        batches_sent: s.get(Counter::BatchesSent),
        queue_depth: state.queue.depth(),
        queue_high_water: state.queue.high_water(),
        connected_clients: u64::from(counts.connected),
        deciders: u64::from(counts.deciders),
        observers: u64::from(counts.observers),
        unsafe_context: s.get(Counter::UnsafeContext),
        reserved: [0; portfilter_protocol::stats::STATS_RESERVED_SLOTS],
    }
}

fn get_stats(state: &DriverState, output: UserPtr) -> Answer {
    if let Err(answer) = check_room(output, STATS_BYTES) {
        return answer;
    }
    let mut buf = [0u8; STATS_BYTES];
    match snapshot(state).encode(&mut buf) {
        Ok(_) => reply(output, &buf),
        Err(e) => Answer::fail(status_for_error(&e)),
    }
}

/// Encodes `config` as the answer to `command` into a fresh pool buffer.
fn encode_config(config: &Config, command: Command) -> Result<(PoolBytes, usize), NTSTATUS> {
    let mut buf = PoolBytes::zeroed(CONFIG_MAX_BYTES).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    let len = config
        .encode(command, &mut buf)
        .map_err(|e| status_for_error(&e))?;
    Ok((buf, len))
}

fn get_config(state: &DriverState, output: UserPtr) -> Answer {
    let encoded = state.config.with(|config| match config {
        Some(config) => encode_config(config, Command::GetConfig),
        None => Err(STATUS_INSUFFICIENT_RESOURCES),
    });
    match encoded {
        Ok((buf, len)) => {
            if let Err(answer) = check_room(output, len) {
                return answer;
            }
            reply(output, buf.get(..len).unwrap_or(&[]))
        }
        Err(status) => Answer::fail(status),
    }
}

fn set_config(state: &DriverState, input: &[u8], output: UserPtr) -> Answer {
    // The applied configuration is encoded canonically, so its answer has exactly the
    // input's size (the decoder accepts only a message that ends after its last filter).
    if let Err(answer) = check_room(output, input.len()) {
        return answer;
    }
    let Some(mut fresh) = new_config() else {
        return Answer::fail(STATUS_INSUFFICIENT_RESOURCES);
    };
    if let Err(e) = fresh.decode_into(input, Command::SetConfig) {
        return Answer::fail(status_for_error(&e));
    }
    if let Err(e) = fresh.validate() {
        return Answer::fail(status_for_error(&e));
    }
    let (buf, len) = match encode_config(&fresh, Command::SetConfig) {
        Ok(encoded) => encoded,
        Err(status) => return Answer::fail(status),
    };
    let answer = buf.get(..len).unwrap_or(&[]);
    if let Err(answer) = check_room(output, len) {
        return answer;
    }
    // Writable? (Zeros first: nothing is applied if the output faults.)
    let Some(zeros) = PoolBytes::zeroed(len) else {
        return Answer::fail(STATUS_INSUFFICIENT_RESOURCES);
    };
    if let Err(status) = output.write_from(&zeros) {
        return Answer::fail(status);
    }
    drop(zeros);

    let settings = Settings::of(&fresh);
    let _serialised = state.config.begin_set();
    match state.queue.set_capacity(settings.queue_capacity as usize) {
        Ok(dropped) => state.stats.add(Counter::QueueDropped, dropped),
        Err(status) => return Answer::fail(status),
    }
    let old = state.config.replace(fresh);
    drop(old);
    crate::log_info!(
        "configuration set: delivery {:?}, reply timeout {} ms, default {:?}",
        settings.observer_delivery,
        settings.reply_timeout_ms,
        settings.default_verdict
    );
    reply(output, answer)
}
