//! `Config`: the driver's configuration, read with `GetConfig` (kind 18) and replaced
//! with `SetConfig` (kind 19). The same message layout is the `SetConfig` input and the
//! answer of both commands (whose header kind echoes the command).
//!
//! | offset | field | type |
//! |---|---|---|
//! | 0 | header (kind 18 or 19) | 8 bytes |
//! | 8 | `observer_delivery` ([`DELIVERY_NOTIFY`] = 1, [`DELIVERY_QUEUED`] = 2) | u32 |
//! | 12 | `reply_timeout_ms` (1..=60000) | u32 |
//! | 16 | `notify_timeout_ms` (0..=5000) | u32 |
//! | 20 | `default_verdict` (0 allow, 1 deny) | u32 |
//! | 24 | `skip_flags` ([`SKIP_DIRECTORIES`], [`SKIP_KERNEL_MODE`]) | u32 |
//! | 28 | `queue_capacity` (1..=16384) | u32 |
//! | 32 | `batch_max_events` (1..=1024) | u32 |
//! | 36 | `filter_count` (0..=16) | u32 |
//! | 40 | `filter_count` filter entries | … |
//!
//! Filter entry: kind u16 @0 (1..=4, [`crate::FilterKind`]), len u16 @2 (bytes of UTF-16,
//! even, 2..=512), UTF-16LE pattern @4, zero padding so the entry's size is a multiple
//! of 8. The message ends exactly after the last entry.

use crate::Error;
use crate::batch::MAX_BATCH_EVENTS;
use crate::command::Command;
use crate::event::{EVENT_FLAG_DIRECTORY, EVENT_FLAG_KERNEL_MODE};
use crate::filter::{
    FilterKind, FilterList, MAX_FILTER_BYTES, MAX_FILTER_TOTAL_BYTES, MAX_FILTERS,
    validate_pattern_units,
};
use crate::header::{HEADER_BYTES, encode_header, expect_header};
use crate::utf16::Utf16Le;
use crate::verdict::Decision;
use crate::wire::{
    all_zero, fields_tile, get_u16, get_u32, need, need_out, put_u16, put_u32, put_units,
    round_up8, slice, zero,
};

/// Size of the fixed part (header + eight u32 fields).
pub const CONFIG_FIXED_BYTES: usize = 40;
/// Size of a filter entry's own header (kind + len).
pub const FILTER_ENTRY_HEADER_BYTES: usize = 4;
/// Smallest `Config` message (no filters).
pub const CONFIG_MIN_BYTES: usize = CONFIG_FIXED_BYTES;
/// Largest `Config` message: each entry is at most its pattern + 10 bytes (4 header,
/// ≤ 6 padding), and patterns total at most [`MAX_FILTER_TOTAL_BYTES`]. Clients pass an
/// output buffer this large to `GetConfig`/`SetConfig`.
pub const CONFIG_MAX_BYTES: usize =
    CONFIG_FIXED_BYTES + MAX_FILTER_TOTAL_BYTES + MAX_FILTERS * (FILTER_ENTRY_HEADER_BYTES + 6);

/// Wire value of [`Delivery::Notify`].
pub const DELIVERY_NOTIFY: u32 = 1;
/// Wire value of [`Delivery::Queued`].
pub const DELIVERY_QUEUED: u32 = 2;

/// Do not report creates of directories.
pub const SKIP_DIRECTORIES: u32 = 0x1;
/// Do not report creates whose requestor mode is kernel.
pub const SKIP_KERNEL_MODE: u32 = 0x2;
/// Every defined skip flag.
pub const SKIP_FLAGS_ALL: u32 = SKIP_DIRECTORIES | SKIP_KERNEL_MODE;

/// Smallest `reply_timeout_ms`.
pub const REPLY_TIMEOUT_MS_MIN: u32 = 1;
/// Largest `reply_timeout_ms` (a create never waits longer than a minute).
pub const REPLY_TIMEOUT_MS_MAX: u32 = 60_000;
/// Largest `notify_timeout_ms` (0 = deliver only if a client is already waiting; not free:
/// without a waiting client the send lasts until the next Windows clock tick, up to
/// 15.6 ms at the default timer resolution).
pub const NOTIFY_TIMEOUT_MS_MAX: u32 = 5_000;
/// Smallest `queue_capacity`.
pub const QUEUE_CAPACITY_MIN: u32 = 1;
/// Largest `queue_capacity` (16384 × [`crate::MAX_EVENT_BYTES`] bounds the queue's
/// worst-case memory at 64 MiB).
pub const QUEUE_CAPACITY_MAX: u32 = 16_384;
/// Smallest `batch_max_events`.
pub const BATCH_MAX_EVENTS_MIN: u32 = 1;
/// Largest `batch_max_events`.
#[allow(clippy::cast_possible_truncation)] // 1024: const-asserted to fit in batch.rs
pub const BATCH_MAX_EVENTS_MAX: u32 = MAX_BATCH_EVENTS as u32;

/// Default `reply_timeout_ms`: one second is ample for a user-mode decision under load,
/// and a hung decider delays each create by at most that before the default verdict.
pub const DEFAULT_REPLY_TIMEOUT_MS: u32 = 1_000;
/// Default `notify_timeout_ms`: a notify-mode send waits at most 100 ms for a client to
/// take it, so a slow observer slows creates only a little before events are counted as
/// failed.
pub const DEFAULT_NOTIFY_TIMEOUT_MS: u32 = 100;
/// Default `queue_capacity`: absorbs bursts of a thousand creates (the bundled trace has
/// bursts of thousands per minute from one process) while bounding non-paged memory to
/// about 4 MiB worst case (typical events are ~250 bytes).
pub const DEFAULT_QUEUE_CAPACITY: u32 = 1_024;
/// Default `batch_max_events`: 256 typical events fill about a quarter of a 64 KiB
/// batch, so one send moves many events while keeping latency per batch low.
pub const DEFAULT_BATCH_MAX_EVENTS: u32 = 256;
/// Default `skip_flags`: kernel-mode creates are skipped (memory manager, file systems,
/// drivers: holding them for a user-mode answer risks deadlocks and they are rarely what
/// a client wants); directories are reported.
pub const DEFAULT_SKIP_FLAGS: u32 = SKIP_KERNEL_MODE;

/// Byte offsets of the config fields.
pub mod offset {
    /// `observer_delivery: u32`.
    pub const OBSERVER_DELIVERY: usize = 8;
    /// `reply_timeout_ms: u32`.
    pub const REPLY_TIMEOUT_MS: usize = 12;
    /// `notify_timeout_ms: u32`.
    pub const NOTIFY_TIMEOUT_MS: usize = 16;
    /// `default_verdict: u32`.
    pub const DEFAULT_VERDICT: usize = 20;
    /// `skip_flags: u32`.
    pub const SKIP_FLAGS: usize = 24;
    /// `queue_capacity: u32`.
    pub const QUEUE_CAPACITY: usize = 28;
    /// `batch_max_events: u32`.
    pub const BATCH_MAX_EVENTS: usize = 32;
    /// `filter_count: u32`.
    pub const FILTER_COUNT: usize = 36;
    /// First filter entry.
    pub const FILTERS: usize = 40;
}

/// Byte offsets inside a filter entry.
pub mod filter_offset {
    /// `kind: u16` (first, by the tiling below: read and written at the entry's position).
    pub const KIND: usize = 0;
    /// `len: u16` (bytes of pattern).
    pub const LEN: usize = 2;
    /// Pattern start.
    pub const DATA: usize = 4;
}

const _: () = assert!(fields_tile(
    &[
        (0, HEADER_BYTES),
        (offset::OBSERVER_DELIVERY, 4),
        (offset::REPLY_TIMEOUT_MS, 4),
        (offset::NOTIFY_TIMEOUT_MS, 4),
        (offset::DEFAULT_VERDICT, 4),
        (offset::SKIP_FLAGS, 4),
        (offset::QUEUE_CAPACITY, 4),
        (offset::BATCH_MAX_EVENTS, 4),
        (offset::FILTER_COUNT, 4),
    ],
    CONFIG_FIXED_BYTES
));
const _: () = assert!(fields_tile(
    &[(filter_offset::KIND, 2), (filter_offset::LEN, 2)],
    FILTER_ENTRY_HEADER_BYTES
));
const _: () = assert!(filter_offset::DATA == FILTER_ENTRY_HEADER_BYTES);
const _: () = assert!(offset::FILTERS == CONFIG_FIXED_BYTES);
const _: () = assert!(MAX_FILTER_BYTES <= u16::MAX as usize);
// Entry size bound used by CONFIG_MAX_BYTES: round_up8(4 + len) ≤ len + 10 for even len.
const _: () = assert!(round_up8(FILTER_ENTRY_HEADER_BYTES + 6) == 6 + 10);

/// Size of a filter entry with a pattern of `pattern_bytes` bytes.
#[must_use]
pub const fn filter_entry_bytes(pattern_bytes: usize) -> usize {
    round_up8(FILTER_ENTRY_HEADER_BYTES.saturating_add(pattern_bytes))
}

/// How observers receive events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Delivery {
    /// One `FltSendMessage` per event without reply, on the creating thread, waiting up to
    /// `notify_timeout_ms` for a client to take it.
    Notify = DELIVERY_NOTIFY,
    /// Events go into a bounded queue (drops counted); a worker thread sends
    /// [`crate::batch`] messages. Never blocks the creating thread.
    Queued = DELIVERY_QUEUED,
}

impl Delivery {
    /// The mode with wire value `value`, if any.
    #[must_use]
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            DELIVERY_NOTIFY => Some(Self::Notify),
            DELIVERY_QUEUED => Some(Self::Queued),
            _ => None,
        }
    }

    /// The wire value.
    #[must_use]
    pub const fn as_u32(self) -> u32 {
        self as u32
    }
}

/// The driver's configuration. About 2.1 KiB (the filters' inline storage): the driver
/// keeps it in pool or static memory and uses the in-place [`reset`](Self::reset) and
/// [`decode_into`](Self::decode_into) rather than moving it through a kernel stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How observers receive events. Default [`Delivery::Queued`]: observers never slow
    /// down creates; overload shows as counted drops instead.
    pub observer_delivery: Delivery,
    /// Request-reply budget per event, ms ([`REPLY_TIMEOUT_MS_MIN`]..=
    /// [`REPLY_TIMEOUT_MS_MAX`]). Default [`DEFAULT_REPLY_TIMEOUT_MS`].
    pub reply_timeout_ms: u32,
    /// Notify-mode delivery budget per event, ms (0..=[`NOTIFY_TIMEOUT_MS_MAX`]). Default
    /// [`DEFAULT_NOTIFY_TIMEOUT_MS`].
    pub notify_timeout_ms: u32,
    /// Used when no decider is connected, it times out, disconnects, sends a bad reply or
    /// the send fails. Default [`Decision::Allow`]: fail open, so a stopped service can
    /// never keep the machine (or itself) from opening files.
    pub default_verdict: Decision,
    /// `SKIP_*` bits. Default [`DEFAULT_SKIP_FLAGS`].
    pub skip_flags: u32,
    /// Queued mode: most events waiting ([`QUEUE_CAPACITY_MIN`]..=[`QUEUE_CAPACITY_MAX`]).
    /// Default [`DEFAULT_QUEUE_CAPACITY`].
    pub queue_capacity: u32,
    /// Queued mode: most events per batch ([`BATCH_MAX_EVENTS_MIN`]..=
    /// [`BATCH_MAX_EVENTS_MAX`]). Default [`DEFAULT_BATCH_MAX_EVENTS`].
    pub batch_max_events: u32,
    /// Path filters. Default: none (report every create).
    pub filters: FilterList,
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

fn in_range(value: u32, min: u32, max: u32, field: &'static str) -> Result<(), Error> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Error::FieldOutOfRange { field })
    }
}

/// The range checks of [`Config::validate`], on plain numbers (no 2 KiB temporary).
fn check_numbers(
    reply_timeout_ms: u32,
    notify_timeout_ms: u32,
    skip_flags: u32,
    queue_capacity: u32,
    batch_max_events: u32,
) -> Result<(), Error> {
    in_range(
        reply_timeout_ms,
        REPLY_TIMEOUT_MS_MIN,
        REPLY_TIMEOUT_MS_MAX,
        "reply_timeout_ms",
    )?;
    in_range(
        notify_timeout_ms,
        0,
        NOTIFY_TIMEOUT_MS_MAX,
        "notify_timeout_ms",
    )?;
    if skip_flags & !SKIP_FLAGS_ALL != 0 {
        return Err(Error::FieldOutOfRange {
            field: "skip_flags",
        });
    }
    in_range(
        queue_capacity,
        QUEUE_CAPACITY_MIN,
        QUEUE_CAPACITY_MAX,
        "queue_capacity",
    )?;
    in_range(
        batch_max_events,
        BATCH_MAX_EVENTS_MIN,
        BATCH_MAX_EVENTS_MAX,
        "batch_max_events",
    )
}

/// The fixed fields as read from the wire, before they are stored.
struct Fixed {
    observer_delivery: Delivery,
    reply_timeout_ms: u32,
    notify_timeout_ms: u32,
    default_verdict: Decision,
    skip_flags: u32,
    queue_capacity: u32,
    batch_max_events: u32,
    filter_count: usize,
}

impl Config {
    /// The default configuration (see each field).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            observer_delivery: Delivery::Queued,
            reply_timeout_ms: DEFAULT_REPLY_TIMEOUT_MS,
            notify_timeout_ms: DEFAULT_NOTIFY_TIMEOUT_MS,
            default_verdict: Decision::Allow,
            skip_flags: DEFAULT_SKIP_FLAGS,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            batch_max_events: DEFAULT_BATCH_MAX_EVENTS,
            filters: FilterList::new(),
        }
    }

    /// Resets `self` to the defaults in place.
    pub fn reset(&mut self) {
        self.observer_delivery = Delivery::Queued;
        self.reply_timeout_ms = DEFAULT_REPLY_TIMEOUT_MS;
        self.notify_timeout_ms = DEFAULT_NOTIFY_TIMEOUT_MS;
        self.default_verdict = Decision::Allow;
        self.skip_flags = DEFAULT_SKIP_FLAGS;
        self.queue_capacity = DEFAULT_QUEUE_CAPACITY;
        self.batch_max_events = DEFAULT_BATCH_MAX_EVENTS;
        self.filters.clear();
    }

    /// Checks every numeric field against its range (the enums and the filters are valid
    /// by construction).
    ///
    /// # Errors
    /// [`Error::FieldOutOfRange`] naming the first bad field: `reply_timeout_ms`,
    /// `notify_timeout_ms`, `skip_flags`, `queue_capacity` or `batch_max_events`.
    pub fn validate(&self) -> Result<(), Error> {
        check_numbers(
            self.reply_timeout_ms,
            self.notify_timeout_ms,
            self.skip_flags,
            self.queue_capacity,
            self.batch_max_events,
        )
    }

    /// True when `skip_flags` says an event with these `EVENT_FLAG_*` bits is not
    /// reported at all.
    #[must_use]
    pub const fn is_skipped(&self, event_flags: u32) -> bool {
        (self.skip_flags & SKIP_DIRECTORIES != 0 && event_flags & EVENT_FLAG_DIRECTORY != 0)
            || (self.skip_flags & SKIP_KERNEL_MODE != 0
                && event_flags & EVENT_FLAG_KERNEL_MODE != 0)
    }

    /// Size of this configuration's message.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        self.filters
            .iter()
            .map(|f| filter_entry_bytes(f.pattern.len().saturating_mul(2)))
            .fold(CONFIG_FIXED_BYTES, usize::saturating_add)
    }

    /// Encodes the message with the header kind of `command` (`GetConfig` or
    /// `SetConfig`); returns its size ([`encoded_len`](Self::encoded_len)).
    ///
    /// # Errors
    /// [`Error::UnexpectedKind`] for another command; the [`validate`](Self::validate)
    /// errors; [`Error::OutputTooSmall`] with the needed size.
    pub fn encode(&self, command: Command, out: &mut [u8]) -> Result<usize, Error> {
        check_command(command)?;
        self.validate()?;
        let total = self.encoded_len();
        need_out(out, total)?;
        encode_header(command.kind(), out)?;
        put_u32(
            out,
            offset::OBSERVER_DELIVERY,
            self.observer_delivery.as_u32(),
        )?;
        put_u32(out, offset::REPLY_TIMEOUT_MS, self.reply_timeout_ms)?;
        put_u32(out, offset::NOTIFY_TIMEOUT_MS, self.notify_timeout_ms)?;
        put_u32(out, offset::DEFAULT_VERDICT, self.default_verdict.as_u32())?;
        put_u32(out, offset::SKIP_FLAGS, self.skip_flags)?;
        put_u32(out, offset::QUEUE_CAPACITY, self.queue_capacity)?;
        put_u32(out, offset::BATCH_MAX_EVENTS, self.batch_max_events)?;
        let count = u32::try_from(self.filters.len()).map_err(|_| Error::TooManyFilters)?;
        put_u32(out, offset::FILTER_COUNT, count)?;
        let mut pos = offset::FILTERS;
        for filter in &self.filters {
            let bytes = filter.pattern.len().saturating_mul(2);
            let len = u16::try_from(bytes).map_err(|_| Error::NameTooLong { len: bytes })?;
            let entry = filter_entry_bytes(bytes);
            put_u16(out, pos, filter.kind.as_u16())?; // filter_offset::KIND is 0 (read_entry)
            put_u16(out, pos + filter_offset::LEN, len)?;
            put_units(out, pos + filter_offset::DATA, filter.pattern)?;
            let data_end = pos + filter_offset::DATA + bytes;
            zero(out, data_end, pos + entry - data_end)?;
            pos += entry;
        }
        Ok(pos)
    }

    /// Decodes a message of `command`'s kind that must end exactly after its last filter.
    ///
    /// # Errors
    /// As [`decode_into`](Self::decode_into).
    pub fn decode(buf: &[u8], command: Command) -> Result<Self, Error> {
        // Decoded in place inside the result: an unoptimised build (the driver's dev
        // profile) would otherwise keep a second 2.1 KiB copy (`Ok(config)`) in this frame,
        // and a frame over 4 KiB needs a `__chkstk` stack probe that no kernel module
        // exports (scripts/build-sys.sh --dev links without one).
        let mut decoded = Ok(const { Self::new() });
        if let Ok(config) = &mut decoded
            && let Err(error) = config.decode_into(buf, command)
        {
            return Err(error);
        }
        decoded
    }

    /// Decodes into `self` in place; `self` is unchanged on error (everything is checked
    /// before anything is stored).
    ///
    /// # Errors
    /// [`Error::UnexpectedKind`] (wrong header kind, or `command` is not a config
    /// command); header errors; [`Error::TooShort`]; [`Error::BadLength`] (`config`) when
    /// bytes follow the last entry; [`Error::FieldOutOfRange`] naming the field
    /// (`observer_delivery`, `reply_timeout_ms`, `notify_timeout_ms`, `default_verdict`,
    /// `skip_flags`, `queue_capacity`, `batch_max_events`, `filter_count`, `filter.kind`,
    /// `filter.len`, `filter.pattern`); [`Error::OddNameLength`] / [`Error::NameTooLong`]
    /// for a pattern length; [`Error::FilterSpaceExhausted`];
    /// [`Error::BadReserved`] (`filter.padding`).
    pub fn decode_into(&mut self, buf: &[u8], command: Command) -> Result<(), Error> {
        let fixed = check_message(buf, command)?;
        self.observer_delivery = fixed.observer_delivery;
        self.reply_timeout_ms = fixed.reply_timeout_ms;
        self.notify_timeout_ms = fixed.notify_timeout_ms;
        self.default_verdict = fixed.default_verdict;
        self.skip_flags = fixed.skip_flags;
        self.queue_capacity = fixed.queue_capacity;
        self.batch_max_events = fixed.batch_max_events;
        self.filters.clear();
        let mut pos = offset::FILTERS;
        for _ in 0..fixed.filter_count {
            let (kind, pattern, entry) = read_entry(buf, pos)?;
            // Checked by check_message; a failure here would be a bug: fall back to the
            // defaults rather than keep a half-written configuration.
            if let Err(e) = self.filters.push_le_bytes(kind, pattern) {
                self.reset();
                return Err(e);
            }
            pos += entry;
        }
        Ok(())
    }

    /// The filter decision for an event ([`FilterList::should_report`]).
    #[must_use]
    pub fn should_report(&self, path_in_volume: &[u16], extension: &[u16]) -> bool {
        self.filters.should_report(path_in_volume, extension)
    }

    /// The filter decision with the extension computed only when an extension filter
    /// needs it ([`FilterList::should_report_lazy`]).
    #[must_use]
    pub fn should_report_lazy<'e>(
        &self,
        path_in_volume: &[u16],
        extension: impl FnOnce() -> &'e [u16],
    ) -> bool {
        self.filters.should_report_lazy(path_in_volume, extension)
    }
}

const fn check_command(command: Command) -> Result<(), Error> {
    match command {
        Command::GetConfig | Command::SetConfig => Ok(()),
        Command::Hello | Command::GetStats => Err(Error::UnexpectedKind {
            got: command.kind().as_u16(),
        }),
    }
}

/// Reads the filter entry at `pos`: kind, pattern bytes, entry size. Checks the entry's
/// own shape (kind, length parity and bound, presence, padding), not the pattern text.
fn read_entry(buf: &[u8], pos: usize) -> Result<(FilterKind, &[u8], usize), Error> {
    need(buf, pos.saturating_add(FILTER_ENTRY_HEADER_BYTES))?;
    // The kind is the entry's first field (`filter_offset::KIND` is 0): read at `pos`,
    // not at `pos + 0`, which mutation testing could not tell from `pos - 0`.
    let kind = FilterKind::from_u16(get_u16(buf, pos)?).ok_or(Error::FieldOutOfRange {
        field: "filter.kind",
    })?;
    let len = usize::from(get_u16(buf, pos + filter_offset::LEN)?);
    if !len.is_multiple_of(2) {
        return Err(Error::OddNameLength { len });
    }
    if len > MAX_FILTER_BYTES {
        return Err(Error::NameTooLong { len });
    }
    let entry = filter_entry_bytes(len);
    need(buf, pos.saturating_add(entry))?;
    let data_end = pos + filter_offset::DATA + len;
    if !all_zero(buf, data_end, pos + entry - data_end) {
        return Err(Error::BadReserved {
            field: "filter.padding",
        });
    }
    Ok((kind, slice(buf, pos + filter_offset::DATA, len)?, entry))
}

/// Validates a whole config message without storing anything.
fn check_message(buf: &[u8], command: Command) -> Result<Fixed, Error> {
    check_command(command)?;
    need(buf, CONFIG_FIXED_BYTES)?;
    expect_header(buf, command.kind())?;
    let fixed = Fixed {
        observer_delivery: Delivery::from_u32(get_u32(buf, offset::OBSERVER_DELIVERY)?).ok_or(
            Error::FieldOutOfRange {
                field: "observer_delivery",
            },
        )?,
        reply_timeout_ms: get_u32(buf, offset::REPLY_TIMEOUT_MS)?,
        notify_timeout_ms: get_u32(buf, offset::NOTIFY_TIMEOUT_MS)?,
        default_verdict: Decision::from_u32(get_u32(buf, offset::DEFAULT_VERDICT)?).ok_or(
            Error::FieldOutOfRange {
                field: "default_verdict",
            },
        )?,
        skip_flags: get_u32(buf, offset::SKIP_FLAGS)?,
        queue_capacity: get_u32(buf, offset::QUEUE_CAPACITY)?,
        batch_max_events: get_u32(buf, offset::BATCH_MAX_EVENTS)?,
        filter_count: get_u32(buf, offset::FILTER_COUNT)? as usize,
    };
    check_numbers(
        fixed.reply_timeout_ms,
        fixed.notify_timeout_ms,
        fixed.skip_flags,
        fixed.queue_capacity,
        fixed.batch_max_events,
    )?;
    if fixed.filter_count > MAX_FILTERS {
        return Err(Error::FieldOutOfRange {
            field: "filter_count",
        });
    }
    let mut pos = offset::FILTERS;
    let mut total = 0usize;
    for _ in 0..fixed.filter_count {
        let (kind, pattern, entry) = read_entry(buf, pos)?;
        let text = Utf16Le::new(pattern)?;
        validate_pattern_units(kind, text.len_units(), &text.units())?;
        total = total.saturating_add(pattern.len());
        if total > MAX_FILTER_TOTAL_BYTES {
            return Err(Error::FilterSpaceExhausted);
        }
        pos += entry;
    }
    if buf.len() != pos {
        return Err(Error::BadLength { field: "config" });
    }
    Ok(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{STATUS_INFO_LENGTH_MISMATCH, STATUS_INVALID_PARAMETER, status_for_error};
    use std::vec;

    fn sample() -> Config {
        let mut c = Config {
            observer_delivery: Delivery::Notify,
            reply_timeout_ms: 250,
            notify_timeout_ms: 0,
            default_verdict: Decision::Deny,
            skip_flags: SKIP_FLAGS_ALL,
            queue_capacity: 16,
            batch_max_events: 4,
            filters: FilterList::new(),
        };
        c.filters
            .push_str(FilterKind::IncludePrefix, r"\Users\")
            .unwrap(); // 7 units
        c.filters
            .push_str(FilterKind::ExcludeExtension, "tmp")
            .unwrap(); // 3 units
        c
    }

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let c = Config::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.observer_delivery, Delivery::Queued);
        assert_eq!(c.default_verdict, Decision::Allow);
        assert!(c.filters.is_empty());
        assert!(c.is_skipped(EVENT_FLAG_KERNEL_MODE));
        assert!(!c.is_skipped(EVENT_FLAG_DIRECTORY));
        let mut other = sample();
        other.reset();
        assert_eq!(other, c);
    }

    #[test]
    fn skip_flags_skip_exactly_the_events_they_name() {
        use crate::event::{EVENT_FLAG_NAME_OPENED, EVENT_FLAG_REQUEST};
        const DIR: u32 = EVENT_FLAG_DIRECTORY;
        const KERNEL: u32 = EVENT_FLAG_KERNEL_MODE;
        // Other event flags never make an event skipped.
        const OTHER: u32 = EVENT_FLAG_REQUEST | EVENT_FLAG_NAME_OPENED;
        // (skip_flags, event flags, skipped?)
        let cases = [
            (0, 0, false),
            (0, DIR, false),
            (0, KERNEL, false),
            (0, DIR | KERNEL | OTHER, false),
            (SKIP_DIRECTORIES, 0, false),
            (SKIP_DIRECTORIES, OTHER, false),
            (SKIP_DIRECTORIES, KERNEL, false),
            (SKIP_DIRECTORIES, DIR, true),
            (SKIP_DIRECTORIES, DIR | OTHER, true),
            (SKIP_KERNEL_MODE, 0, false),
            (SKIP_KERNEL_MODE, OTHER, false),
            (SKIP_KERNEL_MODE, DIR, false),
            (SKIP_KERNEL_MODE, KERNEL, true),
            (SKIP_KERNEL_MODE, KERNEL | OTHER, true),
            (SKIP_FLAGS_ALL, 0, false),
            (SKIP_FLAGS_ALL, OTHER, false),
            (SKIP_FLAGS_ALL, DIR, true),
            (SKIP_FLAGS_ALL, KERNEL, true),
            (SKIP_FLAGS_ALL, DIR | KERNEL, true),
        ];
        for (skip_flags, event_flags, skipped) in cases {
            let c = Config {
                skip_flags,
                ..Config::default()
            };
            assert_eq!(
                c.is_skipped(event_flags),
                skipped,
                "skip_flags {skip_flags:#x}, event flags {event_flags:#x}"
            );
        }
    }

    #[test]
    fn should_report_applies_the_configured_filters() {
        let u = |s: &str| s.encode_utf16().collect::<std::vec::Vec<u16>>();
        // sample(): include prefix `\Users\`, exclude extension `tmp`.
        let c = sample();
        let cases = [
            (r"\Users\bob\a.txt", "txt", true),
            (r"\Windows\a.txt", "txt", false), // under no include prefix
            (r"\Users\bob\a.tmp", "tmp", false), // excluded extension
        ];
        for (path, ext, report) in cases {
            let (path_units, ext_units) = (u(path), u(ext));
            assert_eq!(c.should_report(&path_units, &ext_units), report, "{path}");
            assert_eq!(
                c.should_report_lazy(&path_units, || &ext_units),
                report,
                "{path} (lazy)"
            );
        }
        // Without filters everything is reported.
        let all = Config::default();
        assert!(all.should_report(&u(r"\Windows\a.tmp"), &u("tmp")));
        assert!(all.should_report_lazy(&u(r"\Windows\a.tmp"), || &[]));
    }

    #[test]
    fn config_round_trips_with_both_kinds() {
        let c = sample();
        // 40 + round8(4 + 14) + round8(4 + 6) = 40 + 24 + 16
        assert_eq!(c.encoded_len(), 80);
        for command in [Command::GetConfig, Command::SetConfig] {
            let mut buf = vec![0xAAu8; CONFIG_MAX_BYTES];
            let len = c.encode(command, &mut buf).unwrap();
            assert_eq!(len, 80);
            assert_eq!(Config::decode(&buf[..len], command), Ok(c.clone()));
            let mut into = Config::default();
            into.decode_into(&buf[..len], command).unwrap();
            assert_eq!(into, c);
        }
        let mut buf = [0u8; 80];
        assert_eq!(
            c.encode(Command::Hello, &mut buf),
            Err(Error::UnexpectedKind { got: 16 })
        );
        assert_eq!(
            c.encode(Command::SetConfig, &mut buf[..79]),
            Err(Error::OutputTooSmall { need: 80, got: 79 })
        );
        c.encode(Command::SetConfig, &mut buf).unwrap();
        assert_eq!(
            Config::decode(&buf, Command::GetConfig),
            Err(Error::UnexpectedKind { got: 19 })
        );
    }

    #[test]
    fn validate_names_each_field() {
        type Case = (fn(&mut Config), &'static str);
        let cases: [Case; 8] = [
            (|c| c.reply_timeout_ms = 0, "reply_timeout_ms"),
            (|c| c.reply_timeout_ms = 60_001, "reply_timeout_ms"),
            (|c| c.notify_timeout_ms = 5_001, "notify_timeout_ms"),
            (|c| c.skip_flags = 4, "skip_flags"),
            (|c| c.queue_capacity = 0, "queue_capacity"),
            (|c| c.queue_capacity = 16_385, "queue_capacity"),
            (|c| c.batch_max_events = 0, "batch_max_events"),
            (|c| c.batch_max_events = 1_025, "batch_max_events"),
        ];
        for (mutate, field) in cases {
            let mut c = sample();
            mutate(&mut c);
            assert_eq!(c.validate(), Err(Error::FieldOutOfRange { field }));
            let mut buf = [0u8; 128];
            assert_eq!(
                c.encode(Command::SetConfig, &mut buf),
                Err(Error::FieldOutOfRange { field })
            );
        }
    }

    #[test]
    fn decoder_rejects_each_bad_field_and_leaves_target_unchanged() {
        let mut good = [0u8; 80];
        sample().encode(Command::SetConfig, &mut good).unwrap();
        fn put(b: &mut [u8], at: usize, v: u32) {
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        type Case = (fn(&mut [u8; 80]), Error);
        let field = |field| Error::FieldOutOfRange { field };
        let cases: [Case; 15] = [
            (
                |b| put(b, offset::OBSERVER_DELIVERY, 3),
                field("observer_delivery"),
            ),
            (
                |b| put(b, offset::REPLY_TIMEOUT_MS, 0),
                field("reply_timeout_ms"),
            ),
            (
                |b| put(b, offset::NOTIFY_TIMEOUT_MS, 9_999),
                field("notify_timeout_ms"),
            ),
            (
                |b| put(b, offset::DEFAULT_VERDICT, 2),
                field("default_verdict"),
            ),
            (|b| put(b, offset::SKIP_FLAGS, 8), field("skip_flags")),
            (
                |b| put(b, offset::QUEUE_CAPACITY, 0),
                field("queue_capacity"),
            ),
            (
                |b| put(b, offset::BATCH_MAX_EVENTS, 2_000),
                field("batch_max_events"),
            ),
            (|b| put(b, offset::FILTER_COUNT, 17), field("filter_count")),
            (
                |b| put(b, offset::FILTER_COUNT, 1),
                Error::BadLength { field: "config" },
            ),
            (
                |b| put(b, offset::FILTER_COUNT, 3),
                Error::TooShort { need: 84, got: 80 },
            ),
            (|b| b[40] = 9, field("filter.kind")),
            (|b| b[42] = 15, Error::OddNameLength { len: 15 }),
            (|b| b[44] = b'U', field("filter.pattern")), // prefix must start with '\'
            (
                |b| b[63] = 1,
                Error::BadReserved {
                    field: "filter.padding",
                },
            ),
            (|b| b[2] = 7, Error::VersionMismatch { got: 7 }),
        ];
        for (patch, expected) in cases {
            let mut buf = good;
            patch(&mut buf);
            let mut target = Config::default();
            assert_eq!(target.decode_into(&buf, Command::SetConfig), Err(expected));
            assert_eq!(target, Config::default(), "unchanged after {expected:?}");
        }
        assert_eq!(
            status_for_error(&Config::decode(&good[..39], Command::SetConfig).unwrap_err()),
            STATUS_INFO_LENGTH_MISMATCH
        );
        let mut bad = good;
        bad[40] = 9;
        assert_eq!(
            status_for_error(&Config::decode(&bad, Command::SetConfig).unwrap_err()),
            STATUS_INVALID_PARAMETER
        );
    }

    #[test]
    fn largest_config_fits_the_bound() {
        // Patterns with len ≡ 6 (mod 8) bytes get the most padding: 15 of 126 bytes and
        // one of 158 bytes use all 2048 pattern bytes.
        let mut c = Config::default();
        let pattern = |units: usize| -> std::vec::Vec<u16> {
            core::iter::once(u16::from(b'\\'))
                .chain(core::iter::repeat_n(u16::from(b'p'), units - 1))
                .collect()
        };
        for _ in 0..15 {
            c.filters
                .push(FilterKind::ExcludePrefix, &pattern(63))
                .unwrap();
        }
        c.filters
            .push(FilterKind::ExcludePrefix, &pattern(79))
            .unwrap();
        assert_eq!(c.filters.total_units(), MAX_FILTER_TOTAL_BYTES / 2);
        assert_eq!(c.encoded_len(), CONFIG_MAX_BYTES);
        let mut buf = vec![0u8; CONFIG_MAX_BYTES];
        assert_eq!(c.encode(Command::GetConfig, &mut buf), Ok(CONFIG_MAX_BYTES));
        assert_eq!(Config::decode(&buf, Command::GetConfig), Ok(c));
    }

    #[test]
    fn decoder_bounds_total_filter_bytes() {
        // 5 entries of 512 bytes: each is valid alone, together they exceed 2048 bytes.
        let mut buf = vec![0u8; CONFIG_FIXED_BYTES + 5 * filter_entry_bytes(512)];
        Config::default()
            .encode(Command::SetConfig, &mut buf)
            .unwrap();
        buf[offset::FILTER_COUNT] = 5;
        for i in 0..5 {
            let at = CONFIG_FIXED_BYTES + i * filter_entry_bytes(512);
            buf[at] = 2;
            buf[at + 2..at + 4].copy_from_slice(&512u16.to_le_bytes());
            for unit in buf[at + 4..at + 4 + 512].chunks_exact_mut(2) {
                unit.copy_from_slice(&u16::from(b'\\').to_le_bytes());
            }
        }
        assert_eq!(
            Config::decode(&buf, Command::SetConfig),
            Err(Error::FilterSpaceExhausted)
        );
        buf[offset::FILTER_COUNT] = 4;
        let shorter = CONFIG_FIXED_BYTES + 4 * filter_entry_bytes(512);
        assert_eq!(
            Config::decode(&buf[..shorter], Command::SetConfig)
                .unwrap()
                .filters
                .len(),
            4
        );
    }
}
