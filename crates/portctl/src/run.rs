//! What each subcommand does.

use crate::cli::{Cli, Command, ConfigAction, DefaultVerdict, GuardMode, RunArgs};
use crate::drive;
use crate::exit::Failure;
use portfilter_client::async_decider::{AsyncGuard, Batching, VerdictSink};
use portfilter_client::guard::Guard;
use portfilter_client::output::{Format, Output};
use portfilter_client::rules::{Action, FlagRules, RuleSet};
use portfilter_client::session::{Session, SessionHandler, SessionOptions};
use portfilter_client::settings::{ConfigView, apply_setting, stats_json};
use portfilter_client::watch::Watch;
use portfilter_client::{ConnectOptions, Connection, EndReason, Handler, Role, Verdict};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set by the Ctrl-C handler.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Runs the parsed command line.
pub fn run(cli: &Cli) -> Result<(), Failure> {
    let options = ConnectOptions {
        port_name: cli.port.clone(),
        ..ConnectOptions::default()
    };
    match &cli.command {
        Command::Ping => ping(&options),
        Command::Stats { json } => stats(&options, *json),
        Command::Config { action } => config(&options, action),
        Command::Watch { json, run } => watch(&options, format(*json), run),
        Command::Service { action } => crate::service::run(action, &cli.port),
        Command::Guard {
            rules,
            deny_ext,
            deny_path,
            allow_pid,
            default,
            json,
            quiet,
            check,
            mode,
            batch_verdicts,
            batch_delay_ms,
            run,
        } => {
            let rules = load_rules(rules.as_deref(), deny_ext, deny_path, allow_pid, *default)?;
            if *check {
                print_rules(&rules);
                return Ok(());
            }
            match mode {
                GuardMode::Sync => guard(&options, rules, format(*json), *quiet, run),
                GuardMode::Async => {
                    let batching = Batching {
                        max_verdicts: usize::from(*batch_verdicts),
                        max_delay: Duration::from_millis(u64::from(*batch_delay_ms)),
                    };
                    guard_async(&options, rules, format(*json), *quiet, run, batching)
                }
            }
        }
    }
}

fn format(json: bool) -> Format {
    if json { Format::Json } else { Format::Human }
}

/// Commands that only send commands connect in the CONTROL role (no events are sent to
/// them, so they never slow delivery); the connection is closed once the command is
/// answered.
fn control_connection(options: &ConnectOptions) -> Result<Connection, Failure> {
    Ok(Connection::connect(Role::Control, options)?)
}

fn ping(options: &ConnectOptions) -> Result<(), Failure> {
    let connection = control_connection(options)?;
    let pong = connection.ping()?;
    let hello = pong.hello;
    let version = hello.driver_version;
    println!(
        "pong from {}: driver {}.{}.{}, protocol {}, connection {}, observer delivery {:?}, round trip {} µs",
        connection.port_name(),
        version.major,
        version.minor,
        version.patch,
        hello.protocol_version,
        hello.connection_id,
        hello.observer_delivery,
        pong.round_trip.as_micros()
    );
    Ok(())
}

fn stats(options: &ConnectOptions, json: bool) -> Result<(), Failure> {
    let connection = control_connection(options)?;
    let stats = connection.stats()?;
    if json {
        println!("{}", stats_json(&stats));
    } else {
        for (name, value) in stats.counters() {
            println!("{name:<20} {value}");
        }
    }
    Ok(())
}

fn config(options: &ConnectOptions, action: &ConfigAction) -> Result<(), Failure> {
    let connection = control_connection(options)?;
    match action {
        ConfigAction::Get { json } => {
            let view = ConfigView::from(&connection.config()?);
            if *json {
                println!(
                    "{}",
                    serde_json::to_string(&view).map_err(|e| Failure::Runtime(e.to_string()))?
                );
            } else {
                print!("{}", view.to_lines());
            }
        }
        ConfigAction::Set { settings } => {
            let mut config = connection.config()?;
            for setting in settings {
                apply_setting(&mut config, setting).map_err(Failure::Usage)?;
            }
            config
                .validate()
                .map_err(|error| Failure::Usage(format!("invalid configuration: {error}")))?;
            let applied = connection.set_config(&config)?;
            print!("{}", ConfigView::from(&applied).to_lines());
        }
    }
    Ok(())
}

pub(crate) fn load_rules(
    file: Option<&Path>,
    deny_ext: &[String],
    deny_path: &[String],
    allow_pid: &[u32],
    default: Option<DefaultVerdict>,
) -> Result<RuleSet, Failure> {
    let default = default.map(|d| match d {
        DefaultVerdict::Allow => Action::Allow,
        DefaultVerdict::Deny => Action::Deny,
    });
    let mut rules = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| {
                Failure::Usage(format!(
                    "cannot read rules file {}: {error}",
                    path.display()
                ))
            })?;
            RuleSet::from_toml(&text, &path.display().to_string())
                .map_err(|error| Failure::Usage(error.to_string()))?
        }
        None => RuleSet::from_flags(&FlagRules {
            allow_pids: allow_pid.to_vec(),
            deny_paths: deny_path.to_vec(),
            deny_extensions: deny_ext.to_vec(),
            default,
        })
        .map_err(|error| Failure::Usage(error.to_string()))?,
    };
    if let Some(default) = default {
        rules.default = default;
    }
    Ok(rules)
}

fn print_rules(rules: &RuleSet) {
    for (index, rule) in rules.rules.iter().enumerate() {
        println!("rule {} {rule}", index + 1);
    }
    for (drive, volume) in &rules.volumes {
        println!("volume {drive}: = {volume}");
    }
    println!("default {}", rules.default);
}

/// The flag Ctrl-C sets (installing the handler on first use).
pub(crate) fn interrupt_flag() -> &'static AtomicBool {
    install_interrupt_handler();
    &INTERRUPTED
}

/// Installs the Ctrl-C handler (once per process).
fn install_interrupt_handler() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        if let Err(error) = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst)) {
            tracing::warn!(%error, "cannot install the Ctrl-C handler");
        }
    });
}

/// The stop conditions of `watch` / `guard`: Ctrl-C, `--count` events, `--duration`.
fn stop_when(run: &RunArgs) -> impl FnMut(&Session) -> bool + use<> {
    install_interrupt_handler();
    let deadline = run
        .duration
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map(|seconds| Instant::now() + Duration::from_secs_f64(seconds));
    let count = run.count;
    move |session: &Session| {
        INTERRUPTED.load(Ordering::SeqCst)
            || count.is_some_and(|count| session.stats().events >= count)
            || deadline.is_some_and(|deadline| Instant::now() >= deadline)
    }
}

/// Runs `handler` on a reconnecting session of `role` until Ctrl-C, `--count`,
/// `--duration`, or an end the session cannot recover from; prints the summary to
/// `output` and returns what the end means. `asynchronous`: the asynchronous decider.
fn run_session(
    options: &ConnectOptions,
    role: Role,
    asynchronous: bool,
    handler: Arc<dyn SessionHandler>,
    run: &RunArgs,
    output: &Output,
    latencies: &portfilter_client::latency::Latencies,
) -> Result<(), Failure> {
    let handler: Arc<dyn SessionHandler> = match &run.test_panic_on {
        Some(text) => {
            eprintln!(
                "portctl: test hook: the handler panics on an event whose name contains {text:?} \
                 (panic strategy of this build: {})",
                if cfg!(panic = "abort") {
                    "abort"
                } else {
                    "unwind"
                }
            );
            Arc::new(PanicOn {
                inner: handler,
                text: text.clone(),
            })
        }
        None => handler,
    };
    crate::fatal::set_consequence(if role == Role::Decider {
        crate::fatal::DECIDER_STOPS
    } else {
        crate::fatal::OBSERVER_STOPS
    });
    let session = Session::start(
        SessionOptions {
            asynchronous,
            ..drive::session_options(options, role, run)
        },
        handler,
    )?;
    let outcome = drive::drive(session, stop_when(run));
    drive::finish(output, outcome, latencies.summary())
}

/// `--test-panic-on`: a handler that panics on the first event whose name contains
/// `text` (and otherwise is `inner`).
struct PanicOn {
    inner: Arc<dyn SessionHandler>,
    text: String,
}

impl PanicOn {
    fn check(&self, event: &portfilter_client::protocol::EventView<'_>) {
        let name = event.name.to_string();
        assert!(
            !name.contains(&self.text),
            "test hook --test-panic-on: the handler panicked on {name}"
        );
    }
}

impl Handler for PanicOn {
    fn on_event(&self, event: &portfilter_client::protocol::EventView<'_>) -> Verdict {
        self.check(event);
        self.inner.on_event(event)
    }

    fn on_request(
        &self,
        event: &portfilter_client::protocol::EventView<'_>,
        reply: portfilter_client::PendingReply,
    ) {
        self.check(event);
        self.inner.on_request(event, reply);
    }

    fn on_drops(&self, dropped: u32) {
        self.inner.on_drops(dropped);
    }

    fn on_end(&self, reason: EndReason) {
        self.inner.on_end(reason);
    }

    fn on_malformed(&self, error: &portfilter_client::protocol::Error) {
        self.inner.on_malformed(error);
    }
}

impl SessionHandler for PanicOn {
    fn on_link(&self, change: &portfilter_client::session::LinkChange) {
        self.inner.on_link(change);
    }

    fn on_connection(&self, connection: &Arc<Connection>) {
        self.inner.on_connection(connection);
    }
}

fn watch(options: &ConnectOptions, format: Format, run: &RunArgs) -> Result<(), Failure> {
    let handler = Arc::new(Watch::new(Output::stdout(format)));
    run_session(
        options,
        Role::Observer,
        false,
        handler.clone(),
        run,
        handler.output(),
        handler.latencies(),
    )
}

/// `guard --mode async`: the asynchronous decider on a reconnecting session (each
/// connection carries `CONNECT_FLAG_ASYNC`); verdicts go back in batches on the live
/// connection. Ends and exit statuses as `guard`'s.
fn guard_async(
    options: &ConnectOptions,
    rules: RuleSet,
    format: Format,
    quiet: bool,
    run: &RunArgs,
    batching: Batching,
) -> Result<(), Failure> {
    let events = if quiet {
        Output::new(format, Box::new(std::io::sink()))
    } else {
        Output::stdout(format)
    };
    let handler = Arc::new(AsyncGuard::new(
        Guard::new(rules, events),
        VerdictSink::detached(batching),
    ));
    let output = Output::stdout(format);
    let result = run_session(
        options,
        Role::Decider,
        true,
        handler.clone(),
        run,
        &output,
        handler.guard().latencies(),
    );
    let totals = handler.sink().totals();
    output.summary(
        "verdicts",
        &serde_json::json!({
            "messages": totals.messages,
            "verdicts": totals.verdicts,
            "applied": totals.applied,
            "late": totals.late,
            "unknown": totals.unknown,
            "invalid": totals.invalid,
            "duplicate": totals.duplicate,
            "failed_batches": totals.failed_batches,
        }),
        &format!(
            "-- verdicts: {} in {} FilterSendMessage calls: {} applied, {} late, {} unknown, {} invalid",
            totals.verdicts, totals.messages, totals.applied, totals.late, totals.unknown, totals.invalid
        ),
    );
    result
}

fn guard(
    options: &ConnectOptions,
    rules: RuleSet,
    format: Format,
    quiet: bool,
    run: &RunArgs,
) -> Result<(), Failure> {
    let events = if quiet {
        Output::new(format, Box::new(std::io::sink()))
    } else {
        Output::stdout(format)
    };
    let handler = Arc::new(Guard::new(rules, events));
    run_session(
        options,
        Role::Decider,
        false,
        handler.clone(),
        run,
        &Output::stdout(format),
        handler.latencies(),
    )
}
