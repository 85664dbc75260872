//! The machine: one per process (the kernel and fltlib symbols are process-global).
//! [`Machine::boot`] takes a process-wide lock, so tests in one process run one machine
//! at a time (`cargo test` as well as nextest), and resets every piece of state.

use crate::readings::{self, Readings};
use crate::verifier::{self, Violation};
use crate::{
    create, driver, faults, filter, kernel, log, names, pended, port, process, usercopy, volumes,
};
use parking_lot::{Mutex, MutexGuard};

static MACHINE_LOCK: Mutex<()> = Mutex::new(());

/// The simulated machine.
#[derive(Debug)]
pub struct Machine;

impl Machine {
    /// Boots a fresh machine: waits for any other machine in this process to shut down,
    /// then resets every piece of state (pool, events, locks, threads, log, verifier,
    /// processes, volumes, ports, handles) and applies [`Readings::from_env`] (the
    /// harshest readings unless `FLTSIM_READINGS` says otherwise).
    pub fn boot() -> MachineGuard {
        let lock = MACHINE_LOCK.lock();
        reset_all();
        MachineGuard {
            _lock: lock,
            expected: Vec::new(),
            shut_down: false,
        }
    }

    /// Boots like [`Machine::boot`], then applies `readings` (instead of the harshest
    /// ones, or those of `FLTSIM_READINGS`) for this machine's life.
    pub fn boot_with(readings: Readings) -> MachineGuard {
        let machine = Self::boot();
        readings::set(readings);
        machine
    }
}

fn reset_all() {
    let _ = fltsim_user::handles::close_all();
    port::reset();
    filter::set(None);
    driver::reset();
    crate::image::reset();
    create::reset();
    pended::reset();
    names::reset();
    kernel::reset();
    usercopy::reset();
    volumes::reset();
    process::reset();
    log::reset();
    faults::reset();
    verifier::reset();
    readings::reset();
}

/// A running machine. On drop it unloads a still-loaded driver (a mandatory unload),
/// closes every user handle, and — unless the thread is already panicking — panics if
/// the verifier recorded a violation the test did not expect (including pool leaks).
#[derive(Debug)]
#[must_use = "the machine shuts down when the guard drops"]
pub struct MachineGuard {
    _lock: MutexGuard<'static, ()>,
    expected: Vec<&'static str>,
    shut_down: bool,
}

impl MachineGuard {
    /// Violations of `rule` (one of [`verifier::rule`]) do not fail this machine.
    pub fn expect_violation(&mut self, rule: &'static str) {
        self.expected.push(rule);
    }

    /// Takes (and clears) the violations recorded so far.
    #[must_use]
    pub fn take_violations(&self) -> Vec<Violation> {
        verifier::take()
    }

    /// The violations recorded so far (not cleared).
    #[must_use]
    pub fn violations(&self) -> Vec<Violation> {
        verifier::peek()
    }

    /// Shuts down now, returning the unexpected violations instead of panicking.
    #[must_use]
    pub fn shutdown(mut self) -> Vec<Violation> {
        self.teardown()
    }

    fn teardown(&mut self) -> Vec<Violation> {
        if std::mem::replace(&mut self.shut_down, true) {
            return Vec::new();
        }
        if driver::is_loaded() {
            let _ = driver::unload_driver_mandatory();
        }
        let _ = fltsim_user::handles::close_all();
        verifier::take()
            .into_iter()
            .filter(|v| !self.expected.contains(&v.rule))
            .collect()
    }
}

impl Drop for MachineGuard {
    fn drop(&mut self) {
        let unexpected = self.teardown();
        if !unexpected.is_empty() && !std::thread::panicking() {
            let list = unexpected
                .iter()
                .map(|v| format!("  - {v}"))
                .collect::<Vec<_>>()
                .join("\n");
            panic!("fltsim: verifier violations:\n{list}");
        }
    }
}
