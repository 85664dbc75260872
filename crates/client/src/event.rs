//! An owned, printable create event (decoded from the protocol's borrowed view).

use crate::latency::FILETIME_UNIX_EPOCH;
use crate::rules::{NameParts, Subject};
use portfilter_protocol::{
    EVENT_FLAG_DIRECTORY, EVENT_FLAG_KERNEL_MODE, EVENT_FLAG_NAME_OPENED,
    EVENT_FLAG_NAME_TRUNCATED, EVENT_FLAG_NAME_UNAVAILABLE, EVENT_FLAG_REQUEST, EventView,
};
use serde::Serialize;

/// One file create reported by the driver, owned (names converted to `String`, unpaired
/// surrogates replaced by U+FFFD).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Driver-wide sequence number (a verdict echoes it).
    pub sequence: u64,
    /// When the create happened: 100 ns units since 1601-01-01 UTC.
    pub timestamp: u64,
    /// `timestamp` as RFC 3339 UTC text (`2024-05-01T12:00:00.1234567Z`).
    pub time: String,
    /// Requesting process.
    pub process_id: u32,
    /// Requesting thread.
    pub thread_id: u32,
    /// `DesiredAccess`.
    pub desired_access: u32,
    /// Low 24 bits of the create options.
    pub create_options: u32,
    /// Create disposition (0..=5: supersede, open, create, open-if, overwrite,
    /// overwrite-if).
    pub create_disposition: u8,
    /// `ShareAccess`.
    pub share_access: u16,
    /// `FileAttributes`.
    pub file_attributes: u32,
    /// `EVENT_FLAG_*` bits.
    pub flags: u32,
    /// Whether a verdict is expected (request-reply).
    pub request: bool,
    /// The full NT name (`\Device\HarddiskVolume3\dir\file`).
    pub name: String,
    /// The volume part of `name` (`\Device\HarddiskVolume3`).
    pub volume: String,
}

impl Event {
    /// Converts a decoded view.
    #[must_use]
    pub fn from_view(view: &EventView<'_>) -> Self {
        let f = &view.fields;
        let volume = view.volume_name().to_string_lossy();
        let mut name = volume.clone();
        name.push_str(&view.path_in_volume().to_string_lossy());
        Self {
            sequence: f.sequence,
            timestamp: f.timestamp,
            time: format_filetime(f.timestamp),
            process_id: f.process_id,
            thread_id: f.thread_id,
            desired_access: f.desired_access,
            create_options: f.create_options,
            create_disposition: f.create_disposition,
            share_access: f.share_access,
            file_attributes: f.file_attributes,
            flags: f.flags,
            request: view.is_request(),
            name,
            volume,
        }
    }

    /// The name split for rule matching.
    #[must_use]
    pub fn name_parts(&self) -> NameParts<'_> {
        NameParts::split(&self.name, self.volume.len())
    }

    /// What rules look at.
    #[must_use]
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            process_id: self.process_id,
            name: self.name_parts(),
        }
    }

    /// Short words for the flags that are set (`dir`, `kernel`, `opened-name`,
    /// `truncated`, `no-name`, `request`).
    #[must_use]
    pub fn flag_words(&self) -> Vec<&'static str> {
        const WORDS: [(u32, &str); 6] = [
            (EVENT_FLAG_DIRECTORY, "dir"),
            (EVENT_FLAG_KERNEL_MODE, "kernel"),
            (EVENT_FLAG_NAME_OPENED, "opened-name"),
            (EVENT_FLAG_NAME_TRUNCATED, "truncated"),
            (EVENT_FLAG_NAME_UNAVAILABLE, "no-name"),
            (EVENT_FLAG_REQUEST, "request"),
        ];
        WORDS
            .iter()
            .filter(|(bit, _)| self.flags & bit != 0)
            .map(|(_, word)| *word)
            .collect()
    }

    /// The create disposition's name.
    #[must_use]
    pub fn disposition_name(&self) -> &'static str {
        match self.create_disposition {
            0 => "supersede",
            1 => "open",
            2 => "create",
            3 => "open-if",
            4 => "overwrite",
            5 => "overwrite-if",
            _ => "?",
        }
    }
}

/// Formats a FILETIME (100 ns since 1601-01-01 UTC) as RFC 3339 with 7 fractional digits.
#[must_use]
pub fn format_filetime(filetime: u64) -> String {
    let total_secs = filetime / 10_000_000;
    let fraction = filetime % 10_000_000;
    let days = total_secs / 86_400;
    let secs = total_secs % 86_400;
    // Days since 1601-01-01 → days since 1970-01-01 (may be negative before 1970).
    let unix_days = i64::try_from(days).unwrap_or(i64::MAX)
        - i64::try_from(FILETIME_UNIX_EPOCH / 864_000_000_000).unwrap_or(0);
    let (year, month, day) = civil_from_days(unix_days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:07}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filetime_formats_as_rfc3339() {
        assert_eq!(
            format_filetime(FILETIME_UNIX_EPOCH),
            "1970-01-01T00:00:00.0000000Z"
        );
        assert_eq!(format_filetime(0), "1601-01-01T00:00:00.0000000Z");
        // 2024-02-29T23:59:59.5Z = unix 1709251199.5
        let t = FILETIME_UNIX_EPOCH + 17_092_511_995_000_000;
        assert_eq!(format_filetime(t), "2024-02-29T23:59:59.5000000Z");
    }

    #[test]
    fn filetimes_across_leap_rules_month_and_year_ends_format_exactly() {
        // (FILETIME, date) pairs computed independently (Python's datetime).
        for (filetime, text) in [
            (94_405_823_990_000_000, "1900-02-28T23:59:59"), // 1900: no leap day
            (94_405_824_000_000_000, "1900-03-01T00:00:00"),
            (125_963_012_960_000_000, "2000-02-29T12:34:56"), // 2000: a leap day
            (125_963_424_010_000_000, "2000-03-01T00:00:01"),
            (125_911_583_990_000_000, "1999-12-31T23:59:59"),
            (157_520_197_230_000_000, "2100-03-01T01:02:03"),
            (116_444_735_990_000_000, "1969-12-31T23:59:59"), // before the Unix epoch
            (137_919_572_470_000_000, "2038-01-19T03:14:07"),
            (314_496_000_000_000, "1601-12-31T00:00:00"),
            (133_409_632_890_000_000, "2023-10-05T07:08:09"),
        ] {
            assert_eq!(format_filetime(filetime), format!("{text}.0000000Z"));
            assert_eq!(
                format_filetime(filetime + 1_234_567),
                format!("{text}.1234567Z"),
                "the 100 ns fraction"
            );
        }
    }

    /// An event with the given flags and disposition (the rest irrelevant).
    fn event(flags: u32, create_disposition: u8) -> Event {
        Event {
            sequence: 1,
            timestamp: 0,
            time: String::new(),
            process_id: 4,
            thread_id: 8,
            desired_access: 0,
            create_options: 0,
            create_disposition,
            share_access: 0,
            file_attributes: 0,
            flags,
            request: false,
            name: String::new(),
            volume: String::new(),
        }
    }

    #[test]
    fn each_flag_has_its_word_and_only_set_flags_are_named() {
        let each = [
            (EVENT_FLAG_DIRECTORY, "dir"),
            (EVENT_FLAG_KERNEL_MODE, "kernel"),
            (EVENT_FLAG_NAME_OPENED, "opened-name"),
            (EVENT_FLAG_NAME_TRUNCATED, "truncated"),
            (EVENT_FLAG_NAME_UNAVAILABLE, "no-name"),
            (EVENT_FLAG_REQUEST, "request"),
        ];
        assert!(event(0, 1).flag_words().is_empty());
        for (bit, word) in each {
            assert_eq!(event(bit, 1).flag_words(), vec![word]);
        }
        let all = each.iter().fold(0, |acc, (bit, _)| acc | bit);
        assert_eq!(
            event(all, 1).flag_words(),
            each.iter().map(|(_, w)| *w).collect::<Vec<_>>()
        );
        // Bits without a word (e.g. a newer driver's flags) are not named.
        assert!(event(!all, 1).flag_words().is_empty());
        assert_eq!(
            event(EVENT_FLAG_DIRECTORY | EVENT_FLAG_REQUEST, 1).flag_words(),
            vec!["dir", "request"]
        );
    }

    #[test]
    fn every_create_disposition_has_its_name() {
        let names = [
            "supersede",
            "open",
            "create",
            "open-if",
            "overwrite",
            "overwrite-if",
        ];
        for (d, name) in names.iter().enumerate() {
            assert_eq!(event(0, u8::try_from(d).unwrap()).disposition_name(), *name);
        }
        assert_eq!(event(0, 6).disposition_name(), "?");
        assert_eq!(event(0, u8::MAX).disposition_name(), "?");
    }
}
