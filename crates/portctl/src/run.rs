//! What each subcommand does.

use crate::cli::{Cli, Command, ConfigAction, DefaultVerdict, RunArgs};
use crate::exit::Failure;
use portfilter_client::guard::Guard;
use portfilter_client::output::{Format, Output};
use portfilter_client::rules::{Action, FlagRules, RuleSet};
use portfilter_client::settings::{ConfigView, apply_setting, stats_json};
use portfilter_client::watch::Watch;
use portfilter_client::{
    ConnectOptions, Connection, EndReason, Engine, EngineOptions, EngineStats, Handler, Role,
    Verdict,
};
use serde::Serialize;
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
        Command::Guard {
            rules,
            deny_ext,
            deny_path,
            allow_pid,
            default,
            json,
            quiet,
            check,
            run,
        } => {
            let rules = load_rules(rules.as_deref(), deny_ext, deny_path, allow_pid, *default)?;
            if *check {
                print_rules(&rules);
                return Ok(());
            }
            guard(&options, rules, format(*json), *quiet, run)
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

fn load_rules(
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

/// Installs the Ctrl-C handler (once per process).
fn install_interrupt_handler() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        if let Err(error) = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst)) {
            tracing::warn!(%error, "cannot install the Ctrl-C handler");
        }
    });
}

/// Runs `engine` until Ctrl-C, `--count` events, `--duration`, or the driver closes the
/// connection; returns why it ended and its final counters.
fn drive(engine: Engine, run: &RunArgs) -> (EndReason, EngineStats) {
    install_interrupt_handler();
    let deadline = run
        .duration
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map(|seconds| Instant::now() + Duration::from_secs_f64(seconds));
    loop {
        if engine.wait_timeout(Duration::from_millis(50)).is_some() {
            break;
        }
        let stop = INTERRUPTED.load(Ordering::SeqCst)
            || run
                .count
                .is_some_and(|count| engine.stats().events >= count)
            || deadline.is_some_and(|deadline| Instant::now() >= deadline);
        if stop {
            return engine.stop();
        }
    }
    engine.wait()
}

fn engine_options(run: &RunArgs) -> EngineOptions {
    EngineOptions {
        requests: usize::from(run.requests),
        workers: usize::from(run.workers),
    }
}

/// What `watch` and `guard` print at the end.
#[derive(Serialize)]
struct Summary {
    ended: &'static str,
    #[serde(flatten)]
    engine: EngineStats,
    latency: portfilter_client::latency::LatencySummary,
    driver: Option<serde_json::Value>,
}

fn print_summary(
    output: &Output,
    reason: EndReason,
    engine: EngineStats,
    latency: portfilter_client::latency::LatencySummary,
    driver: Option<portfilter_client::Stats>,
) {
    let ended = match reason {
        EndReason::Stopped => "stopped",
        EndReason::Disconnected => "driver closed the connection",
    };
    let mut human = format!(
        "-- {ended}: {} events ({} requests: {} allowed, {} denied, {} late replies), {} batches, {} dropped by the driver, {} malformed\n-- latency from create to here: p50 {} µs, p99 {} µs, max {} µs ({} samples)",
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
    if let Some(stats) = &driver {
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
        engine,
        latency,
        driver: driver.as_ref().map(stats_json),
    };
    output.summary("summary", &summary, &human);
}

/// Starts an engine for `handler` on a new connection of `role`.
fn start(
    options: &ConnectOptions,
    role: Role,
    handler: Arc<dyn Handler>,
    run: &RunArgs,
) -> Result<Engine, Failure> {
    let handler: Arc<dyn Handler> = match &run.test_panic_on {
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
    let connection = Arc::new(Connection::connect(role, options)?);
    crate::fatal::set_consequence(if role == Role::Decider {
        crate::fatal::DECIDER_STOPS
    } else {
        crate::fatal::OBSERVER_STOPS
    });
    Ok(Engine::start(connection, handler, engine_options(run))?)
}

/// `--test-panic-on`: a handler that panics on the first event whose name contains
/// `text` (and otherwise is `inner`).
struct PanicOn {
    inner: Arc<dyn Handler>,
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

fn watch(options: &ConnectOptions, format: Format, run: &RunArgs) -> Result<(), Failure> {
    let handler = Arc::new(Watch::new(Output::stdout(format)));
    let engine = start(options, Role::Observer, handler.clone(), run)?;
    drive_and_summarise(engine, run, handler.output(), handler.latencies());
    Ok(())
}

/// Runs the engine to its end, then prints its summary, the latencies (read after the
/// end) and, when portctl stopped it (the connection is still open), the driver's counters.
fn drive_and_summarise(
    engine: Engine,
    run: &RunArgs,
    output: &Output,
    latencies: &portfilter_client::latency::Latencies,
) {
    let connection = Arc::clone(engine.connection());
    let (reason, stats) = drive(engine, run);
    let driver = (reason == EndReason::Stopped)
        .then(|| connection.stats().ok())
        .flatten();
    print_summary(output, reason, stats, latencies.summary(), driver);
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
    let engine = start(options, Role::Decider, handler.clone(), run)?;
    drive_and_summarise(engine, run, &Output::stdout(format), handler.latencies());
    Ok(())
}
