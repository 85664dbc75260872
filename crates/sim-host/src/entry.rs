//! The `portfilter-sim` binary's root. The program (src/main.rs and its modules) is Linux
//! only: it hosts the driver under fltsim and serves it on a Unix socket. On Windows the
//! binary is a stub that says so, so that a workspace-wide build there (cargo-wdk run from
//! the workspace root builds every member) succeeds; the real driver runs under the real
//! Filter Manager instead.

#[cfg(not(windows))]
#[path = "main.rs"]
mod sim;

// The program's modules name each other as `crate::status` & co.
#[cfg(not(windows))]
use sim::{control, create_spec, status};

#[cfg(not(windows))]
fn main() -> std::process::ExitCode {
    sim::main()
}

#[cfg(windows)]
fn main() -> std::process::ExitCode {
    eprintln!(
        "portfilter-sim hosts the driver under fltsim, the Linux model of the Filter Manager; \
         on Windows, install the driver itself (docs/windows-install.md)"
    );
    std::process::ExitCode::from(2)
}
