//! The `portctl service …` command line (clap derive). Parsed on every platform so that
//! what the service registers can be checked anywhere.

use super::config::{DEFAULT_DRIVER_SERVICE, DEFAULT_NAME};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `portctl service …`.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Register the service: `guard` with a rules file, automatic start after the
    /// driver's service, restarted by Windows after a crash; then start it.
    ///
    /// The rules file is checked first (exit 2 with its line on an error). The service
    /// runs this portctl.exe from where it is now, as LocalSystem: keep portctl.exe and
    /// the rules file in a folder only administrators can write to.
    Install(InstallArgs),
    /// Stop the service if it runs, then remove it.
    Uninstall(NameArg),
    /// Start the service and wait until it runs.
    Start(NameArg),
    /// Stop the service (creates already received are answered first) and wait.
    Stop(NameArg),
    /// Print the service's state, start type, dependencies, command line, last exit.
    Status(NameArg),
    /// What the service control manager starts. With --console, the same in a console
    /// (Ctrl-C stops it), for trying out the service's configuration by hand.
    Run(RunArgs),
}

/// The service to act on.
#[derive(Debug, Args)]
pub struct NameArg {
    /// Service name.
    #[arg(long, default_value = DEFAULT_NAME, value_name = "NAME")]
    pub name: String,
}

/// `service install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Rules file (TOML, as for `guard --rules`); stored as an absolute path.
    #[arg(long, value_name = "FILE")]
    pub rules: PathBuf,
    /// Service name.
    #[arg(long, default_value = DEFAULT_NAME, value_name = "NAME")]
    pub name: String,
    /// The driver's service, which this one depends on (started first, by the service
    /// control manager).
    #[arg(long, default_value = DEFAULT_DRIVER_SERVICE, value_name = "NAME")]
    pub driver_service: String,
    /// Log file (default: %ProgramData%\portfilter\NAME.log).
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Also log every decision (one line per create: can be large).
    #[arg(long)]
    pub log_decisions: bool,
    /// Register only; do not start the service now.
    #[arg(long)]
    pub no_start: bool,
    /// Print what would be registered and change nothing (works on any system).
    #[arg(long)]
    pub dry_run: bool,
}

/// `service run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Rules file (TOML).
    #[arg(long, value_name = "FILE")]
    pub rules: PathBuf,
    /// Service name (as registered).
    #[arg(long, default_value = DEFAULT_NAME, value_name = "NAME")]
    pub name: String,
    /// Log file (service default: %ProgramData%\portfilter\NAME.log; --console
    /// default: standard error).
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Also log every decision.
    #[arg(long)]
    pub log_decisions: bool,
    /// Run in this console instead of under the service control manager; Ctrl-C stops.
    #[arg(long)]
    pub console: bool,
}
