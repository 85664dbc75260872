//! The service's work, the same under the service control manager and in a console
//! (`service run --console`, which is how it is tested on Linux): load the rules, run
//! `guard` as a decider session that waits for the driver and reconnects across reloads,
//! report each state, and on a stop answer every create already received before
//! disconnecting.

use super::config::ServiceConfig;
use super::logfile::LogFile;
use super::state::{BadTransition, Exit, StateMachine, Status};
use crate::drive;
use crate::exit::Failure;
use portfilter_client::guard::Guard;
use portfilter_client::output::{Format, Output};
use portfilter_client::session::{ReconnectPolicy, Session, SessionOptions};
use portfilter_client::{ConnectOptions, EngineOptions, Role};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often a running service checks for a stop request.
const POLL: Duration = Duration::from_millis(100);
/// How often a stopping service reports progress.
const STOP_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Opens the configured log file (`None` when the configuration logs to stderr).
///
/// # Errors
/// [`Failure::Runtime`] naming the file.
pub fn open_log(config: &ServiceConfig) -> Result<Option<LogFile>, Failure> {
    config
        .log_file
        .as_deref()
        .map(|path| {
            LogFile::open(path).map_err(|error| {
                Failure::Runtime(format!(
                    "cannot open the log file {}: {error}",
                    path.display()
                ))
            })
        })
        .transpose()
}

/// Sends diagnostics (info and above, or `PORTCTL_LOG`) to `log`, else to stderr.
pub fn init_logging(log: Option<&LogFile>) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTCTL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match log {
        Some(log) => builder.with_ansi(false).with_writer(log.clone()).try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
}

fn sink(log: Option<&LogFile>) -> Box<dyn Write + Send> {
    match log {
        Some(log) => Box::new(log.writer()),
        None => Box::new(std::io::stderr()),
    }
}

fn bad(transition: BadTransition) -> Failure {
    Failure::Runtime(transition.to_string())
}

/// Runs the service until `stop` is set or its session ends by itself, reporting every
/// state to `report`; the last report is "stopped" with the exit the result stands for.
///
/// # Errors
/// The rules file does not load (exit 2), the first connect fails in a way waiting
/// cannot fix (another decider: exit 5), a reconnect fails (version mismatch: exit 6).
pub fn run(
    config: &ServiceConfig,
    log: Option<&LogFile>,
    stop: &AtomicBool,
    report: &mut dyn FnMut(&Status),
) -> Result<(), Failure> {
    let mut machine = StateMachine::default();
    report(&machine.start_pending());
    let result = serve(config, log, stop, &mut machine, report);
    match &result {
        Ok(()) => tracing::info!(service = %config.name, "stopped"),
        Err(failure) => tracing::error!(
            service = %config.name,
            exit = failure.exit_code(),
            "stopped: {failure}"
        ),
    }
    report(&machine.stopped(Exit::of(&result)));
    result
}

fn serve(
    config: &ServiceConfig,
    log: Option<&LogFile>,
    stop: &AtomicBool,
    machine: &mut StateMachine,
    report: &mut dyn FnMut(&Status),
) -> Result<(), Failure> {
    let rules = crate::run::load_rules(Some(&config.rules), &[], &[], &[], None)?;
    tracing::info!(
        service = %config.name,
        rules = %config.rules.display(),
        count = rules.rules.len(),
        default = %rules.default,
        "rules loaded"
    );
    let decisions = if config.log_decisions {
        Output::new(Format::Human, sink(log))
    } else {
        Output::new(Format::Human, Box::new(std::io::sink()))
    };
    let handler = Arc::new(Guard::new(rules, decisions));
    let options = SessionOptions {
        role: Role::Decider,
        connect: ConnectOptions {
            port_name: config.port.clone(),
            ..ConnectOptions::default()
        },
        engine: EngineOptions::default(),
        // Wait for the driver (it may still be loading), reconnect forever.
        reconnect: ReconnectPolicy {
            wait_at_start: true,
            ..ReconnectPolicy::default()
        },
        asynchronous: false,
    };
    let session = Session::start(options, handler.clone())?;
    report(&machine.running().map_err(bad)?);
    tracing::info!(service = %config.name, port = %config.port, "running");
    let outcome = loop {
        if session.wait_timeout(POLL) {
            break session.wait();
        }
        if stop.load(Ordering::SeqCst) {
            tracing::info!(
                "stop requested: answering the creates already received, then disconnecting"
            );
            report(&machine.stop_requested().map_err(bad)?);
            session.stopper().stop();
            while !session.wait_timeout(STOP_CHECKPOINT_EVERY) {
                report(&machine.still_stopping());
            }
            break session.wait();
        }
    };
    let summary = Output::new(Format::Human, sink(log));
    drive::finish(&summary, outcome, handler.latencies().summary())
}

/// `service run --console`: the service's work in this console; Ctrl-C stops it as the
/// service control manager's stop would. States are logged.
///
/// # Errors
/// As [`run`], or the log file cannot be opened.
pub fn run_console(config: &ServiceConfig) -> Result<(), Failure> {
    let log = open_log(config)?;
    init_logging(log.as_ref());
    let stop = crate::run::interrupt_flag();
    run(config, log.as_ref(), stop, &mut log_status)
}

/// Logs a status report (`service state state=running checkpoint=0 exit=success`): the
/// console run's only report, and the service's record of what it told the service
/// control manager.
pub fn log_status(status: &Status) {
    tracing::info!(
        state = %status.phase,
        checkpoint = status.checkpoint,
        exit = %status.exit,
        "service state"
    );
}
