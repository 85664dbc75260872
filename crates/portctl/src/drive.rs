//! Running `watch` / `guard` (and the service's guard) on a reconnecting session until
//! asked to stop, the summary printed at the end, and the exit status the end means.

use crate::cli::RunArgs;
use crate::exit::Failure;
use portfilter_client::latency::LatencySummary;
use portfilter_client::output::Output;
use portfilter_client::session::{
    ReconnectPolicy, Session, SessionEnd, SessionOptions, SessionOutcome,
};
use portfilter_client::settings::stats_json;
use portfilter_client::{ConnectOptions, EngineOptions, EngineStats, Role};
use serde::Serialize;
use std::time::Duration;

/// How often the stop conditions are checked.
const POLL: Duration = Duration::from_millis(50);

/// The reconnect policy of `watch` / `guard`, from their flags: reconnect unless
/// `--no-reconnect`, give up after `--reconnect-limit`, wait at start with
/// `--wait-for-driver`; delays as [`ReconnectPolicy::default`].
pub fn reconnect_policy(run: &RunArgs) -> ReconnectPolicy {
    ReconnectPolicy {
        reconnect: !run.no_reconnect,
        wait_at_start: run.wait_for_driver,
        give_up_after: run.reconnect_limit.map(Duration::from_secs_f64),
        ..ReconnectPolicy::default()
    }
}

/// The session of `watch` (observer) or `guard` (decider).
pub fn session_options(connect: &ConnectOptions, role: Role, run: &RunArgs) -> SessionOptions {
    SessionOptions {
        role,
        connect: connect.clone(),
        engine: EngineOptions {
            requests: usize::from(run.requests),
            workers: usize::from(run.workers),
        },
        reconnect: reconnect_policy(run),
        asynchronous: false,
    }
}

/// Runs `session` until it ends by itself or `should_stop` says so (then it is stopped:
/// messages already received are handled and answered first).
pub fn drive(session: Session, mut should_stop: impl FnMut(&Session) -> bool) -> SessionOutcome {
    loop {
        if session.wait_timeout(POLL) {
            return session.wait();
        }
        if should_stop(&session) {
            return session.stop();
        }
    }
}

/// What the end of a session means for portctl's exit status: a stop asked for is
/// success; a driver that went away (`--no-reconnect`) or did not come back in time is
/// [`Failure::DriverGone`] (exit 7) — a decider that lost its driver did not succeed;
/// a failed reconnect keeps its error's exit status (6 for a version mismatch).
pub fn outcome_result(end: SessionEnd) -> Result<(), Failure> {
    match end {
        SessionEnd::Stopped => Ok(()),
        SessionEnd::Disconnected => Err(Failure::DriverGone(
            "the driver closed the connection (driver unloaded or port closed) and --no-reconnect was given".to_owned(),
        )),
        SessionEnd::GaveUp {
            waited,
            last_error,
            ever_connected: true,
        } => Err(Failure::DriverGone(format!(
            "the driver did not come back within {:.1} s (--reconnect-limit); last attempt: {last_error}",
            waited.as_secs_f64()
        ))),
        SessionEnd::GaveUp { last_error, .. } => Err(Failure::Client(last_error)),
        SessionEnd::Failed(error) => Err(Failure::Reconnect(error)),
        // A later kind of end: not a success.
        _ => Err(Failure::Runtime("the session ended unexpectedly".to_owned())),
    }
}

/// Prints the summary of `outcome`, then turns its end into portctl's result.
pub fn finish(
    output: &Output,
    outcome: SessionOutcome,
    latency: LatencySummary,
) -> Result<(), Failure> {
    print_summary(output, &outcome, latency);
    outcome_result(outcome.end)
}

/// What `watch` and `guard` print at the end.
#[derive(Serialize)]
struct Summary {
    ended: &'static str,
    connections: u32,
    #[serde(flatten)]
    engine: EngineStats,
    latency: LatencySummary,
    driver: Option<serde_json::Value>,
}

fn ended(end: &SessionEnd) -> &'static str {
    match end {
        SessionEnd::Stopped => "stopped",
        SessionEnd::Disconnected => "driver closed the connection",
        SessionEnd::GaveUp { .. } => "gave up waiting for the driver",
        _ => "failed to reconnect",
    }
}

fn print_summary(output: &Output, outcome: &SessionOutcome, latency: LatencySummary) {
    let ended = ended(&outcome.end);
    let engine = outcome.stats;
    let connections = match outcome.connections {
        1 => "1 connection".to_owned(),
        n => format!("{n} connections"),
    };
    let mut human = format!(
        "-- {ended}: {} events ({} requests: {} allowed, {} denied, {} late replies), {} batches, {} dropped by the driver, {} malformed, {connections}\n-- latency from create to here: p50 {} µs, p99 {} µs, max {} µs ({} samples)",
        engine.events,
        engine.requests,
        engine.allowed,
        engine.denied,
        engine.late_replies,
        engine.batches,
        engine.dropped,
        engine.malformed,
        latency.p50_us,
        latency.p99_us,
        latency.max_us,
        latency.count,
    );
    if let Some(stats) = &outcome.driver_stats {
        human.push_str(&format!(
            "\n-- driver: {} creates seen, {} reported, {} requests sent, {} allowed, {} denied, {} timeouts, {} default verdicts, {} queue drops",
            stats.events_seen,
            stats.events_reported,
            stats.requests_sent,
            stats.replies_allow,
            stats.replies_deny,
            stats.reply_timeouts,
            stats.default_verdicts,
            stats.queue_dropped
        ));
    }
    let summary = Summary {
        ended,
        connections: outcome.connections,
        engine,
        latency,
        driver: outcome.driver_stats.as_ref().map(stats_json),
    };
    output.summary("summary", &summary, &human);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit;
    use clap::Parser;
    use portfilter_client::{Error, Hresult};

    fn run_args(args: &[&str]) -> RunArgs {
        let cli = crate::cli::Cli::try_parse_from(["portctl", "watch"].iter().chain(args).copied())
            .expect("parses");
        match cli.command {
            crate::cli::Command::Watch { run, .. } => run,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn watch_and_guard_reconnect_by_default_without_a_limit() {
        let policy = reconnect_policy(&run_args(&[]));
        assert!(policy.reconnect && !policy.wait_at_start);
        assert_eq!(policy.give_up_after, None);
        let policy = reconnect_policy(&run_args(&["--no-reconnect", "--wait-for-driver"]));
        assert!(!policy.reconnect && policy.wait_at_start);
        let policy = reconnect_policy(&run_args(&["--reconnect-limit", "2.5"]));
        assert_eq!(policy.give_up_after, Some(Duration::from_millis(2500)));
        // A limit makes no sense without reconnecting.
        assert!(
            crate::cli::Cli::try_parse_from([
                "portctl",
                "watch",
                "--no-reconnect",
                "--reconnect-limit",
                "1"
            ])
            .is_err()
        );
    }

    #[test]
    fn each_end_has_its_exit_status() {
        let code = |end| outcome_result(end).map_or_else(|f| f.exit_code(), |()| 0);
        assert_eq!(code(SessionEnd::Stopped), 0);
        assert_eq!(code(SessionEnd::Disconnected), exit::DRIVER_GONE);
        let not_loaded = || Error::DriverNotLoaded {
            port: "\\PortFilterPort".to_owned(),
            hresult: Hresult::FILE_NOT_FOUND,
        };
        assert_eq!(
            code(SessionEnd::GaveUp {
                waited: Duration::from_secs(3),
                last_error: not_loaded(),
                ever_connected: true,
            }),
            exit::DRIVER_GONE
        );
        // Waiting at start for a driver that never came: "not loaded", as without waiting.
        assert_eq!(
            code(SessionEnd::GaveUp {
                waited: Duration::from_secs(3),
                last_error: not_loaded(),
                ever_connected: false,
            }),
            exit::NOT_LOADED
        );
        let mismatch = outcome_result(SessionEnd::Failed(Error::VersionMismatch {
            client: 1,
            driver: "2".to_owned(),
            hresult: None,
        }))
        .unwrap_err();
        assert_eq!(mismatch.exit_code(), exit::VERSION);
        let text = mismatch.to_string();
        assert!(
            text.starts_with("cannot reconnect to the driver: protocol version mismatch"),
            "{text}"
        );
    }
}
