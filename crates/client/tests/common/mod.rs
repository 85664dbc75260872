//! Shared set-up for the client's end-to-end tests: the real driver under fltsim, a
//! client process, configuration helpers, creates, a captured output.
#![allow(dead_code)] // each test binary uses a subset

pub mod stand_in;

use fltsim::{CreateRequest, MachineGuard};
use parking_lot::Mutex;
use portfilter_client::protocol::{Config, Delivery};
use portfilter_client::{ConnectOptions, Connection, Role};
use std::io::Write;
use std::sync::Arc;

/// The simulated process the test's client runs as (an administrator).
pub const CLIENT_PID: u32 = 2000;
/// The process the simulated creates come from.
pub const APP_PID: u32 = 1000;
/// `STATUS_ACCESS_DENIED`.
pub const STATUS_ACCESS_DENIED: i32 = 0xC000_0022_u32.cast_signed();
/// `STATUS_SUCCESS`.
pub const STATUS_SUCCESS: i32 = 0;

/// A booted machine with the real driver loaded and the calling thread acting for the
/// client process. Drop order: the process guard, then the machine (which fails the test
/// on pool leaks or verifier violations).
pub struct Sim {
    process: Option<fltsim::process::ProcessGuard>,
    pub machine: Option<MachineGuard>,
}

impl Sim {
    pub fn boot() -> Self {
        let machine = fltsim::Machine::boot();
        fltsim::image::load_driver_from_env(portfilter::DriverEntry).expect("DriverEntry");
        fltsim::process::spawn(CLIENT_PID, "portctl.exe", true);
        let process = fltsim::process::enter(CLIENT_PID);
        Self {
            process: Some(process),
            machine: Some(machine),
        }
    }

    /// A machine with no driver loaded.
    pub fn boot_without_driver() -> Self {
        let machine = fltsim::Machine::boot();
        fltsim::process::spawn(CLIENT_PID, "portctl.exe", true);
        let process = fltsim::process::enter(CLIENT_PID);
        Self {
            process: Some(process),
            machine: Some(machine),
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.process.take();
        if let Some(machine) = self.machine.take() {
            if fltsim::is_loaded() {
                let _ = fltsim::unload_driver();
            }
            drop(machine);
        }
    }
}

pub fn connect(role: Role) -> Connection {
    Connection::connect(role, &ConnectOptions::default()).expect("connect")
}

/// Changes the driver's configuration through a short control connection.
pub fn configure(edit: impl FnOnce(&mut Config)) -> Config {
    let control = connect(Role::Observer);
    let mut config = control.config().expect("GetConfig");
    edit(&mut config);
    control.set_config(&config).expect("SetConfig")
}

/// Plain notify delivery (one message per create), with a generous budget.
pub fn notify_mode(config: &mut Config) {
    config.observer_delivery = Delivery::Notify;
    config.notify_timeout_ms = 2_000;
}

/// A user-mode open of `path` by `pid`; returns the status the caller sees.
pub fn create_as(pid: u32, path: &str) -> i32 {
    fltsim::create(&CreateRequest::new(path).pid(pid)).status
}

/// A user-mode open of `path` by [`APP_PID`].
pub fn create(path: &str) -> i32 {
    create_as(APP_PID, path)
}

/// A `Write` that keeps what was written, shareable with the test.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }

    pub fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_owned).collect()
    }

    pub fn boxed(&self) -> Box<dyn Write + Send> {
        Box::new(self.clone())
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
