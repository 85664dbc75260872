//! The command line (clap derive).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Exit codes:
  0  success (also after Ctrl-C, --count or --duration)
  1  runtime error (a call failed; the message names the HRESULT)
  2  usage error: bad arguments, rules file or setting
  3  the driver is not loaded (port not found, 0x80070002)
  4  access denied: run elevated (0x80070005)
  5  port busy: connection limit (0x800704D6) or another decider (0x80070020)
  6  protocol version mismatch between portctl and the driver (also after a reload)
  7  watch/guard: the driver went away and portctl stopped (--no-reconnect, or it did
     not come back within --reconnect-limit); by default they reconnect
  8  portctl stopped on an internal error (a panic, e.g. in a rule handler); one line
     `portctl: fatal: …` says what and where. A guard that stops leaves creates to the
     driver's default verdict (config default-verdict) until a decider connects again

Errors are printed on stderr as one line: `portctl: error: … HRESULT 0x80070002 (meaning)`.
On Linux, portctl reaches the driver hosted by `portfilter-sim` (socket path in
PORTFILTER_SIM_SOCKET). Set PORTCTL_LOG=debug for diagnostics.";

/// Control the portfilter minifilter: watch file creates, decide them with rules, read
/// counters, change the configuration.
#[derive(Debug, Parser)]
#[command(name = "portctl", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    /// Communication port name.
    #[arg(long, global = true, default_value = portfilter_client::DEFAULT_PORT_NAME, value_name = "NAME")]
    pub port: String,

    /// More diagnostics on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that the driver answers; print its version, protocol and delivery mode.
    Ping,
    /// Print the driver's counters.
    Stats {
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Read or change the driver's configuration.
    Config {
        /// get or set.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Print every file create as it happens (observer connection).
    ///
    /// Handles both observer delivery modes: one message per create (notify) and
    /// batches (queued), where "dropped" lines report events the driver lost because
    /// its queue was full. Stops on Ctrl-C, --count or --duration. Reconnects when the
    /// driver is unloaded and loaded again (see --no-reconnect).
    Watch {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Allow or deny file creates with rules (decider connection), printing each decision.
    ///
    /// Rules come from a TOML file (--rules) or from flags; the first matching rule wins,
    /// else --default (allow). Only one guard can run at a time. On Ctrl-C every create
    /// portctl has received is answered before it exits; creates the driver has not
    /// handed over yet get the driver's default verdict (config `default-verdict`).
    /// Reconnects when the driver is unloaded and loaded again (see --no-reconnect).
    Guard {
        /// Rules file (TOML; see docs/portctl.md).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["deny_ext", "deny_path", "allow_pid"])]
        rules: Option<PathBuf>,
        /// Deny files with this extension (repeatable; `tmp` or `.tmp`).
        #[arg(long, value_name = "EXT")]
        deny_ext: Vec<String>,
        /// Deny paths matching this glob (repeatable; `C:\dir\*.exe`, `\dir\**`, `*.tmp`).
        #[arg(long, value_name = "GLOB")]
        deny_path: Vec<String>,
        /// Always allow this process id (repeatable; checked before the deny flags).
        #[arg(long, value_name = "PID")]
        allow_pid: Vec<u32>,
        /// Verdict when no rule matches (overrides the rules file's `default`).
        #[arg(long, value_enum)]
        default: Option<DefaultVerdict>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Print only the final summary, not each decision.
        #[arg(long, short)]
        quiet: bool,
        /// Parse and print the rules, then exit without connecting.
        #[arg(long)]
        check: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Run `guard` as a Windows service: install, uninstall, start, stop, status.
    ///
    /// The service decides creates with a rules file, starts automatically after the
    /// driver's service, is restarted by Windows when it crashes, and logs to a file
    /// (default %ProgramData%\portfilter\NAME.log). Windows only (elsewhere: exit 2).
    Service {
        /// What to do with the service.
        #[command(subcommand)]
        action: crate::service::args::ServiceCommand,
    },
}

/// How long `watch` / `guard` run and with how many requests and workers.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Stop after this many events.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub duration: Option<f64>,
    /// Overlapped FilterGetMessage requests kept queued.
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub requests: u16,
    /// Worker threads on the completion port.
    #[arg(long, default_value_t = 2, value_name = "M", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    /// Stop when the driver goes away (exit status 7) instead of reconnecting.
    #[arg(long, conflicts_with = "reconnect_limit")]
    pub no_reconnect: bool,
    /// Give up when the driver stays away this many seconds (exit status 7). Default:
    /// keep trying (at most 1 s apart) until Ctrl-C.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub reconnect_limit: Option<f64>,
    /// If the driver is not loaded at start, wait for it (default: exit status 3).
    #[arg(long)]
    pub wait_for_driver: bool,
    /// Test hook (hidden; docs/portctl.md): the event handler panics on the first event
    /// whose name contains TEXT, to check how a real build stops (exit code 8).
    #[arg(long, value_name = "TEXT", hide = true)]
    pub test_panic_on: Option<String>,
}

/// `--default`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DefaultVerdict {
    /// Allow creates no rule matches.
    Allow,
    /// Deny creates no rule matches.
    Deny,
}

/// `config get` / `config set`.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the configuration as `key=value` lines (the syntax `set` accepts).
    Get {
        /// One JSON object instead.
        #[arg(long)]
        json: bool,
    },
    /// Change settings: the current configuration with these changes applied.
    #[command(after_help = portfilter_client::settings::SETTINGS_HELP)]
    Set {
        /// KEY=VALUE settings (or `clear-filters`), applied in order.
        #[arg(required = true, value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
}

/// Longest `--duration` accepted (about 31 years): larger values would overflow the
/// deadline computation (`Duration::from_secs_f64`, `Instant + Duration` panic).
const MAX_DURATION_SECONDS: f64 = 1e9;

/// `--duration`: a finite number of seconds in `0..=MAX_DURATION_SECONDS`.
fn parse_seconds(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|error| format!("`{text}` is not a number of seconds: {error}"))?;
    if seconds.is_finite() && (0.0..=MAX_DURATION_SECONDS).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(format!(
            "`{text}`: give a number of seconds from 0 to {MAX_DURATION_SECONDS}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duration_of(value: &str) -> Result<Option<f64>, clap::Error> {
        let cli = Cli::try_parse_from(["portctl", "watch", &format!("--duration={value}")])?;
        match cli.command {
            Command::Watch { run, .. } => Ok(run.duration),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn duration_is_a_bounded_number_of_seconds() {
        assert_eq!(duration_of("1.5").unwrap(), Some(1.5));
        assert_eq!(duration_of("0").unwrap(), Some(0.0));
        // These used to parse and then panic (or be silently ignored) when the run's
        // deadline was computed.
        for bad in ["1e300", "1e19", "inf", "NaN", "-1", "ten"] {
            let error = duration_of(bad).expect_err(bad);
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{bad}"
            );
        }
    }
}
