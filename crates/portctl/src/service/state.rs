//! The service's states as the service control manager sees them, and the rules for
//! moving between them. Pure: the Windows part only translates [`Status`] into a
//! `SERVICE_STATUS`; the console run logs it.
//!
//! ```text
//!  StartPending ──running()──▶ Running ──stop_requested()──▶ StopPending ──stopped()──▶ Stopped
//!       │                                                        │  still_stopping() (checkpoint + 1)
//!       └───────────────────────stopped() (start failed) ────────┴──────────────────────▶
//! ```

use crate::exit::{self, Failure};
use std::fmt;
use std::time::Duration;

/// How long the service control manager should wait for the next status while starting
/// (loading the rules and starting the session; the driver itself is waited for while
/// running, not while starting).
pub const START_WAIT_HINT: Duration = Duration::from_secs(10);
/// How long it should wait between two checkpoints while stopping. A stop answers every
/// create already received; a checkpoint is reported every second meanwhile.
pub const STOP_WAIT_HINT: Duration = Duration::from_secs(5);

/// A service state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Starting.
    StartPending,
    /// Running: the decider session is up (connected, or waiting for the driver).
    Running,
    /// Stopping: answering what was received, then disconnecting.
    StopPending,
    /// Stopped.
    Stopped,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::StartPending => "start pending",
            Self::Running => "running",
            Self::StopPending => "stop pending",
            Self::Stopped => "stopped",
        })
    }
}

/// How the service ended (`SERVICE_STATUS` exit codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `NO_ERROR`.
    Success,
    /// `ERROR_SERVICE_SPECIFIC_ERROR` with portctl's exit status (see `portctl --help`).
    ServiceSpecific(u32),
}

impl Exit {
    /// The exit a run's result stands for: success, or the failure's exit status.
    #[must_use]
    pub fn of(result: &Result<(), Failure>) -> Self {
        match result {
            Ok(()) => Self::Success,
            Err(failure) => Self::ServiceSpecific(u32::from(failure.exit_code())),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Success => f.write_str("success"),
            Self::ServiceSpecific(code) => {
                write!(f, "service-specific error {code} ({})", meaning(*code))
            }
        }
    }
}

/// What portctl's exit status `code` means.
#[must_use]
pub fn meaning(code: u32) -> &'static str {
    match u8::try_from(code) {
        Ok(exit::RUNTIME) => "runtime error: see the log",
        Ok(exit::USAGE) => "bad configuration: rules file, arguments",
        Ok(exit::NOT_LOADED) => "the driver is not loaded",
        Ok(exit::ACCESS_DENIED) => "access denied by the driver's port",
        Ok(exit::BUSY) => "another decider is connected, or the port is full",
        Ok(exit::VERSION) => {
            "protocol version mismatch: install portctl and the driver from the same release"
        }
        Ok(exit::DRIVER_GONE) => "the driver went away",
        _ => "unknown",
    }
}

/// One status report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// The state.
    pub phase: Phase,
    /// Whether stop and shutdown controls are accepted (only while running).
    pub accepts_stop: bool,
    /// Progress counter of a pending state (0 otherwise).
    pub checkpoint: u32,
    /// How long until the next report of a pending state (zero otherwise).
    pub wait_hint: Duration,
    /// The exit (meaningful when stopped).
    pub exit: Exit,
}

/// A transition the state machine refuses (a bug in the caller, reported, not a panic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadTransition {
    /// The state it was in.
    pub from: Phase,
    /// Where it was asked to go.
    pub to: Phase,
}

impl fmt::Display for BadTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "service state {} cannot go to {}", self.from, self.to)
    }
}

/// A control sent by the service control manager.
#[cfg_attr(not(windows), allow(dead_code))] // used by the Windows control handler
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// `SERVICE_CONTROL_STOP`.
    Stop,
    /// `SERVICE_CONTROL_SHUTDOWN` (the machine is shutting down).
    Shutdown,
    /// `SERVICE_CONTROL_INTERROGATE`.
    Interrogate,
    /// Anything else.
    Other,
}

/// What the control handler does with a control.
#[cfg_attr(not(windows), allow(dead_code))] // used by the Windows control handler
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlAction {
    /// Ask the service to stop; answer `NO_ERROR`.
    RequestStop,
    /// Nothing to do; answer `NO_ERROR`.
    Acknowledge,
    /// Answer `ERROR_CALL_NOT_IMPLEMENTED`.
    NotImplemented,
}

/// The handler's answer to `control`. Stop and shutdown both stop the service cleanly
/// (answering what was received before disconnecting); interrogate is acknowledged.
#[must_use]
#[cfg_attr(not(windows), allow(dead_code))] // used by the Windows control handler
pub fn control_action(control: Control) -> ControlAction {
    match control {
        Control::Stop | Control::Shutdown => ControlAction::RequestStop,
        Control::Interrogate => ControlAction::Acknowledge,
        Control::Other => ControlAction::NotImplemented,
    }
}

/// What `service status` prints about an installed service.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(not(windows), allow(dead_code))] // filled in by the Windows module
pub struct StatusReport {
    /// Service name.
    pub name: String,
    /// Its display name.
    pub display_name: String,
    /// `running`, `stopped`, `start pending`, …
    pub state: String,
    /// Its process, while it runs.
    pub pid: Option<u32>,
    /// `automatic`, `manual`, `disabled`.
    pub start: String,
    /// The services it depends on.
    pub dependencies: Vec<String>,
    /// The registered command line.
    pub command_line: String,
    /// How it last ended, when stopped (`success`, `service-specific error 6 (…)`).
    pub last_exit: Option<String>,
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "service:      {} ({})", self.name, self.display_name)?;
        match self.pid {
            Some(pid) => writeln!(f, "state:        {} (pid {pid})", self.state)?,
            None => writeln!(f, "state:        {}", self.state)?,
        }
        writeln!(f, "start:        {}", self.start)?;
        let dependencies = if self.dependencies.is_empty() {
            "nothing".to_owned()
        } else {
            self.dependencies.join(", ")
        };
        writeln!(f, "depends on:   {dependencies}")?;
        writeln!(f, "command line: {}", self.command_line)?;
        if let Some(exit) = &self.last_exit {
            writeln!(f, "last exit:    {exit}")?;
        }
        Ok(())
    }
}

/// The service's state machine.
#[derive(Debug)]
pub struct StateMachine {
    phase: Phase,
    checkpoint: u32,
}

impl Default for StateMachine {
    fn default() -> Self {
        Self {
            phase: Phase::StartPending,
            checkpoint: 1,
        }
    }
}

impl StateMachine {
    /// The first report: starting.
    #[must_use]
    pub fn start_pending(&self) -> Status {
        self.status()
    }

    /// Started: the session is up.
    ///
    /// # Errors
    /// [`BadTransition`] unless starting.
    pub fn running(&mut self) -> Result<Status, BadTransition> {
        self.go(Phase::StartPending, Phase::Running)
    }

    /// A stop was asked for while running.
    ///
    /// # Errors
    /// [`BadTransition`] unless running.
    pub fn stop_requested(&mut self) -> Result<Status, BadTransition> {
        self.go(Phase::Running, Phase::StopPending)
    }

    /// Still stopping: the next checkpoint.
    #[must_use]
    pub fn still_stopping(&mut self) -> Status {
        if self.phase == Phase::StopPending {
            self.checkpoint = self.checkpoint.saturating_add(1);
        }
        self.status()
    }

    /// Stopped, from any state (a start that failed stops from starting).
    pub fn stopped(&mut self, exit: Exit) -> Status {
        self.phase = Phase::Stopped;
        self.checkpoint = 0;
        Status {
            exit,
            ..self.status()
        }
    }

    fn go(&mut self, from: Phase, to: Phase) -> Result<Status, BadTransition> {
        if self.phase != from {
            return Err(BadTransition {
                from: self.phase,
                to,
            });
        }
        self.phase = to;
        self.checkpoint = u32::from(matches!(to, Phase::StartPending | Phase::StopPending));
        Ok(self.status())
    }

    fn status(&self) -> Status {
        let wait_hint = match self.phase {
            Phase::StartPending => START_WAIT_HINT,
            Phase::StopPending => STOP_WAIT_HINT,
            Phase::Running | Phase::Stopped => Duration::ZERO,
        };
        Status {
            phase: self.phase,
            accepts_stop: self.phase == Phase::Running,
            checkpoint: self.checkpoint,
            wait_hint,
            exit: Exit::Success,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_run_goes_start_running_stopping_stopped() {
        let mut machine = StateMachine::default();
        let start = machine.start_pending();
        assert_eq!(
            (start.phase, start.accepts_stop, start.checkpoint),
            (Phase::StartPending, false, 1)
        );
        assert_eq!(start.wait_hint, START_WAIT_HINT);
        let running = machine.running().unwrap();
        assert_eq!(
            (running.phase, running.accepts_stop, running.checkpoint),
            (Phase::Running, true, 0)
        );
        assert_eq!(running.wait_hint, Duration::ZERO);
        let stopping = machine.stop_requested().unwrap();
        assert_eq!(
            (stopping.phase, stopping.accepts_stop, stopping.checkpoint),
            (Phase::StopPending, false, 1)
        );
        assert_eq!(machine.still_stopping().checkpoint, 2);
        assert_eq!(machine.still_stopping().checkpoint, 3);
        let stopped = machine.stopped(Exit::Success);
        assert_eq!(
            (stopped.phase, stopped.accepts_stop, stopped.checkpoint),
            (Phase::Stopped, false, 0)
        );
        assert_eq!(stopped.exit, Exit::Success);
    }

    #[test]
    fn a_failed_start_stops_with_the_exit_status() {
        let mut machine = StateMachine::default();
        let failure = Err(Failure::Usage("rules.toml:3:1: bad".to_owned()));
        let stopped = machine.stopped(Exit::of(&failure));
        assert_eq!(stopped.phase, Phase::Stopped);
        assert_eq!(stopped.exit, Exit::ServiceSpecific(2));
        assert_eq!(
            stopped.exit.to_string(),
            "service-specific error 2 (bad configuration: rules file, arguments)"
        );
    }

    #[test]
    fn out_of_order_transitions_are_refused_not_panics() {
        let mut machine = StateMachine::default();
        assert_eq!(
            machine.stop_requested(),
            Err(BadTransition {
                from: Phase::StartPending,
                to: Phase::StopPending
            })
        );
        machine.running().unwrap();
        assert!(machine.running().is_err());
        // still_stopping outside a stop changes nothing.
        let status = machine.still_stopping();
        assert_eq!((status.phase, status.checkpoint), (Phase::Running, 0));
    }

    #[test]
    fn stop_and_shutdown_stop_interrogate_is_acknowledged() {
        assert_eq!(control_action(Control::Stop), ControlAction::RequestStop);
        assert_eq!(
            control_action(Control::Shutdown),
            ControlAction::RequestStop
        );
        assert_eq!(
            control_action(Control::Interrogate),
            ControlAction::Acknowledge
        );
        assert_eq!(
            control_action(Control::Other),
            ControlAction::NotImplemented
        );
    }

    #[test]
    fn status_report_lines() {
        let mut report = StatusReport {
            name: "portfilter-guard".to_owned(),
            display_name: "portfilter guard".to_owned(),
            state: "stopped".to_owned(),
            pid: None,
            start: "automatic".to_owned(),
            dependencies: vec!["portfilter".to_owned()],
            command_line: "portctl.exe service run".to_owned(),
            last_exit: Some(Exit::ServiceSpecific(6).to_string()),
        };
        assert_eq!(
            report.to_string(),
            "service:      portfilter-guard (portfilter guard)\n\
             state:        stopped\n\
             start:        automatic\n\
             depends on:   portfilter\n\
             command line: portctl.exe service run\n\
             last exit:    service-specific error 6 (protocol version mismatch: install portctl and the driver from the same release)\n"
        );
        report.state = "running".to_owned();
        report.pid = Some(42);
        report.last_exit = None;
        report.dependencies.clear();
        let text = report.to_string();
        assert!(text.contains("state:        running (pid 42)\n"), "{text}");
        assert!(text.contains("depends on:   nothing\n"), "{text}");
        assert!(!text.contains("last exit"), "{text}");
    }

    #[test]
    fn exit_statuses_have_meanings() {
        assert_eq!(Exit::of(&Ok(())), Exit::Success);
        for code in 1..=7 {
            assert_ne!(meaning(code), "unknown", "{code}");
        }
        assert!(meaning(6).contains("version"));
        assert_eq!(meaning(99), "unknown");
    }
}
