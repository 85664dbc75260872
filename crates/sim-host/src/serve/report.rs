//! The shutdown report: the driver's final statistics (GetStats over an in-process
//! connection, as any client would ask), the pool still allocated after unload, and the
//! verifier's findings.

use fltsim::port::InProcess;
use fltsim_user::PortBackend;
use portfilter_protocol::{
    CONFIG_MAX_BYTES, CONNECT_CONTEXT_BYTES, Command, Config, ConnectContext, Role, STATS_BYTES,
    Stats, encode_request,
};
use std::fmt::Write as _;

/// Reads the driver's counters through a short-lived observer connection of the
/// System process.
///
/// # Errors
/// A message saying which step failed (connect, command, decode).
pub fn driver_stats() -> Result<Stats, String> {
    let bytes = driver_command(Command::GetStats, STATS_BYTES)?;
    Stats::decode(&bytes).map_err(|e| format!("decode: {e:?}"))
}

/// Reads the driver's settings (`GetConfig`) the same way.
///
/// # Errors
/// A message saying which step failed (connect, command, decode).
pub fn driver_config() -> Result<Config, String> {
    let bytes = driver_command(Command::GetConfig, CONFIG_MAX_BYTES)?;
    Config::decode(&bytes, Command::GetConfig).map_err(|e| format!("decode: {e:?}"))
}

/// Sends one header-only command over a short-lived observer connection of the System
/// process; returns the reply's bytes.
fn driver_command(command: Command, out_bytes: usize) -> Result<Vec<u8>, String> {
    let name: Vec<u16> = portfilter::PORT_NAME.encode_utf16().collect();
    let mut context = [0u8; CONNECT_CONTEXT_BYTES];
    ConnectContext::new(Role::Observer)
        .encode(&mut context)
        .map_err(|e| format!("connect context: {e:?}"))?;
    let conn = InProcess
        .connect(&name, 0, &context)
        .map_err(|s| format!("connect failed with {}", crate::status::describe(s)))?;
    // u64 storage: the driver requires 8-byte aligned command buffers.
    let mut input = [0u64; 1];
    let mut output = vec![0u64; out_bytes.div_ceil(8)];
    let result = {
        let in_bytes = u64_bytes_mut(&mut input);
        encode_request(command, in_bytes).map_err(|e| format!("request: {e:?}"))?;
        let mut returned = 0u32;
        // SAFETY: both buffers are live and of the stated sizes.
        let status = unsafe {
            conn.send(
                input.as_ptr().cast(),
                8,
                output.as_mut_ptr().cast(),
                u32::try_from(out_bytes).unwrap_or(0),
                &mut returned,
            )
        };
        if status == 0 {
            let bytes = u64_bytes_mut(&mut output);
            bytes
                .get(..returned as usize)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| "reply length out of range".to_owned())
        } else {
            Err(format!(
                "{command:?} failed with {}",
                crate::status::describe(status)
            ))
        }
    };
    conn.close();
    result
}

fn u64_bytes_mut(words: &mut [u64]) -> &mut [u8] {
    let len = std::mem::size_of_val(words);
    // SAFETY: u8 has no alignment or validity requirements; same allocation and length.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), len) }
}

/// The counters, one per line.
#[must_use]
pub fn format_stats(stats: &Stats) -> String {
    let mut s = String::from("driver statistics:\n");
    for (name, value) in stats.counters() {
        let _ = writeln!(s, "  {name:<20} {value}");
    }
    s
}

/// What the pool still holds, by tag (empty when nothing).
#[must_use]
pub fn pool_leaks() -> Vec<String> {
    fltsim::kernel::pool::outstanding()
        .into_iter()
        .map(|u| {
            format!(
                "tag {} ({:#010x}): {} allocation(s), {} bytes",
                u.tag, u.tag_value, u.count, u.bytes
            )
        })
        .collect()
}
