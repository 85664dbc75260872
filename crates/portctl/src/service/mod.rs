//! `portctl service`: `guard` as a Windows service.
//!
//! * [`args`]: the command line; [`config`]: what is registered (automatic start, a
//!   dependency on the driver's service, recovery actions, the command line), built and
//!   checked from the arguments; [`command_line`]: that command line as text;
//!   [`state`]: the service states and transitions; [`runner`]: the service's work
//!   (rules, a reconnecting decider session, a clean stop), also runnable in a console;
//!   [`logfile`]: its log file; [`scm_error`]: what a failed service-manager call means.
//!   All of these are platform-independent and tested on Linux.
//! * `windows` (Windows only): the Service Control Manager calls through the
//!   `windows-service` crate — install, uninstall, start, stop, status, and the
//!   dispatcher that runs [`runner`] as the service. Type-checked for
//!   `x86_64-pc-windows-msvc` in CI; **not run by this project** (no Windows here).
//!   Elsewhere those commands fail with a usage error (exit 2).

pub mod args;
mod command_line;
mod config;
mod logfile;
mod runner;
// Used by the Windows module; compiled and tested everywhere.
#[cfg_attr(not(windows), allow(dead_code))]
mod scm_error;
mod state;
#[cfg(windows)]
mod windows;

use crate::exit::Failure;
use args::ServiceCommand;
use config::{Environment, Registration, ServiceConfig};

#[cfg(windows)]
use windows as platform;

/// Runs `portctl service …` (`port`: the global `--port`).
///
/// # Errors
/// Bad arguments or rules file (exit 2), not on Windows (exit 2), service-manager
/// failures (exit 4 for access denied, else 1), or the service run's own failure.
pub fn run(action: &ServiceCommand, port: &str) -> Result<(), Failure> {
    let env = Environment::current();
    match action {
        ServiceCommand::Install(args) => {
            let registration = Registration::for_install(args, port, &env)?;
            // Refuse a rules file the service would fail on, before registering anything.
            crate::run::load_rules(Some(&registration.config.rules), &[], &[], &[], None)?;
            let program = std::env::current_exe().map_err(|error| {
                Failure::Runtime(format!("cannot find portctl's own path: {error}"))
            })?;
            for warning in registration.location_warnings(&program) {
                eprintln!("portctl: warning: {warning}");
            }
            let program = program.to_str().ok_or_else(|| {
                Failure::Usage(format!("{} is not valid Unicode", program.display()))
            })?;
            print!("{}", registration.describe(program)?);
            if args.dry_run {
                return Ok(());
            }
            platform::install(&registration, program)
        }
        ServiceCommand::Uninstall(name) => platform::uninstall(&name.name),
        ServiceCommand::Start(name) => platform::start(&name.name),
        ServiceCommand::Stop(name) => platform::stop(&name.name),
        ServiceCommand::Status(name) => platform::status(&name.name),
        ServiceCommand::Run(args) => {
            let config = ServiceConfig::for_run(args, port, &env)?;
            if args.console {
                runner::run_console(&config)
            } else {
                platform::dispatch(config)
            }
        }
    }
}

/// Whether `command` is `service run`, which sets up its own logging.
pub fn logs_for_itself(command: &crate::cli::Command) -> bool {
    matches!(
        command,
        crate::cli::Command::Service {
            action: ServiceCommand::Run(_)
        }
    )
}

/// The service commands where there is no service control manager.
#[cfg(not(windows))]
mod platform {
    use super::{Registration, ServiceConfig};
    use crate::exit::Failure;

    fn unsupported() -> Failure {
        Failure::Usage(
            "`portctl service` manages a Windows service; here, run `portctl guard --rules FILE` under your service manager (e.g. a systemd unit), or `portctl service run --console`".to_owned(),
        )
    }

    pub fn install(registration: &Registration, program: &str) -> Result<(), Failure> {
        let _ = (registration, program);
        Err(unsupported())
    }

    pub fn uninstall(name: &str) -> Result<(), Failure> {
        let _ = name;
        Err(unsupported())
    }

    pub fn start(name: &str) -> Result<(), Failure> {
        let _ = name;
        Err(unsupported())
    }

    pub fn stop(name: &str) -> Result<(), Failure> {
        let _ = name;
        Err(unsupported())
    }

    pub fn status(name: &str) -> Result<(), Failure> {
        let _ = name;
        Err(unsupported())
    }

    pub fn dispatch(config: ServiceConfig) -> Result<(), Failure> {
        let _ = config;
        Err(unsupported())
    }
}
