//! `portctl`: watch, guard and configure the portfilter minifilter.
//!
//! A thin front end: the connection, engines, rules and output live in
//! `portfilter-client`. On Linux the fltlib functions come from `fltlib-shim`, which
//! talks to `portfilter-sim` over a Unix socket.

// Links the provider of the fltlib / kernel32 symbols on non-Windows targets.
#[cfg(not(windows))]
use fltlib_shim as _;

mod cli;
mod drive;
mod exit;
mod fatal;
mod run;
mod service;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    fatal::install();
    let cli = cli::Cli::parse();
    if !service::logs_for_itself(&cli.command) {
        init_logging(cli.verbose);
    }
    match run::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("portctl: error: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTCTL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .compact()
        .try_init();
}
