//! Everything a client decodes from bytes the driver (or anyone holding the port) wrote:
//! the Filter Manager header + payload as `portfilter-client` reads it, each event as the
//! CLI prints and matches it, and the command answers (Hello, stats, configuration,
//! verdict echo). Nothing may panic; whatever decodes must re-encode to the same bytes.
//!
//! The first byte chooses how the rest is read: as raw message bytes, or as the fields
//! and name of an event (or a batch of events) that is encoded the way the driver does
//! and then corrupted at a chosen byte — so the fuzzer reaches the decoders' deep paths
//! without a seed corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portfilter_client::message::{Payload, decode_message};
use portfilter_client::rules::RuleSet;
use portfilter_client::{Config, Event, HelloReply, Stats};
use portfilter_protocol::{BatchWriter, Command, EventFields, Verdict, encode_event};
use std::sync::OnceLock;

/// A rule set with every kind of condition, so matching walks all of its code.
fn rules() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| {
        RuleSet::from_toml(
            r#"
default = "allow"
[[rule]]
name = "downloads"
action = "deny"
path = 'C:\Users\*\Downloads\**'
extension = ["exe", "dll"]
[[rule]]
action = "allow"
pid = [4, 1234]
[[rule]]
action = "deny"
path = '*.evil'
"#,
            "fuzz",
        )
        .expect("the fuzz rule set parses")
    })
}

fn exercise(event: &Event) {
    let _ = rules().decide(&event.subject());
    let _ = event.flag_words();
    let _ = event.disposition_name();
    let _ = portfilter_client::event::format_filetime(event.timestamp);
}

/// Fields and a UTF-16 name from fuzz bytes (missing bytes read as 0).
fn event_from(data: &[u8]) -> (EventFields, Vec<u16>) {
    let at = |i: usize| data.get(i).copied().unwrap_or(0);
    let u32_at = |i: usize| u32::from_le_bytes([at(i), at(i + 1), at(i + 2), at(i + 3)]);
    let name: Vec<u16> = data
        .get(24..)
        .unwrap_or_default()
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c.get(1).copied().unwrap_or(0)]))
        .take(300)
        .collect();
    let fields = EventFields {
        flags: u32_at(0),
        sequence: u64::from(u32_at(4)),
        timestamp: u64::from(u32_at(8)) << 24,
        process_id: u32_at(12),
        thread_id: u32_at(16),
        desired_access: u32_at(20),
        create_options: u32_at(0).rotate_left(7),
        create_disposition: at(5),
        share_access: u16::from(at(6)),
        file_attributes: u32::from(at(7)),
        volume_name_len: u16::from(at(3)) % (u16::try_from(name.len()).unwrap_or(0) + 2),
    };
    (fields, name)
}

/// The driver's encoding of `data` (an event or a batch), with the FILTER_MESSAGE_HEADER
/// in front, then one byte overwritten where `data` says.
fn encoded(mode: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 16 + portfilter_protocol::MAX_BATCH_BYTES];
    let n = if mode % 3 == 1 {
        let (fields, name) = event_from(data);
        match encode_event(&fields, &name, &mut out[16..]) {
            Ok(n) => n,
            Err(_) => return Vec::new(),
        }
    } else {
        let Ok(mut writer) = BatchWriter::new(&mut out[16..], 64, u32::from(mode)) else {
            return Vec::new();
        };
        for part in data.split(|&b| b == 0xFF).take(64) {
            let (fields, name) = event_from(part);
            if writer.push(&fields, &name).is_err() {
                break;
            }
        }
        writer.finish().len()
    };
    out.truncate(16 + n);
    if let [at_lo, at_hi, value, ..] = data {
        let at = usize::from(u16::from_le_bytes([*at_lo, *at_hi]));
        let len = out.len();
        if let Some(b) = out.get_mut(at % len) {
            *b ^= *value;
        }
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let built;
    let data = if mode % 3 == 0 {
        rest
    } else {
        built = encoded(mode, rest);
        &built
    };
    if let Ok(received) = decode_message(data) {
        let _ = received.reply_to();
        match received.payload {
            Payload::Event(view) => exercise(&Event::from_view(&view)),
            Payload::Batch(batch) => {
                let _ = batch.dropped_before();
                for view in batch.events() {
                    exercise(&Event::from_view(&view));
                }
            }
        }
    }
    // Command answers and the verdict a decider sends: decode, and what decodes
    // re-encodes identically.
    if let Ok(hello) = HelloReply::decode(data) {
        let mut out = [0u8; portfilter_protocol::HELLO_REPLY_BYTES];
        let n = hello.encode(&mut out).expect("a decoded Hello re-encodes");
        assert_eq!(&out[..n], &data[..n]);
    }
    if let Ok(stats) = Stats::decode(data) {
        let _ = stats;
    }
    for command in [Command::GetConfig, Command::SetConfig] {
        if let Ok(config) = Config::decode(data, command) {
            let mut out = vec![0u8; portfilter_protocol::CONFIG_MAX_BYTES];
            let n = config
                .encode(command, &mut out)
                .expect("a decoded config re-encodes");
            let again = Config::decode(&out[..n], command).expect("re-encoded config decodes");
            assert_eq!(again, config);
        }
    }
    if let Ok(verdict) = Verdict::decode(data) {
        let _ = verdict;
    }
});
