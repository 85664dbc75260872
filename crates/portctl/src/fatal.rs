//! What portctl does when something panics: it stops, loudly.
//!
//! The workspace builds with `panic = "abort"` in its dev and release profiles
//! (windows-drivers-rs needs it for the driver, and cargo cannot set `panic` per
//! package), so the engine's `catch_unwind` cannot contain a panicking handler in a real
//! `portctl`: the process would abort with Rust's default message, and the driver would
//! quietly fall back to its default verdict (allow, unless configured otherwise). A
//! security service must not vanish like that, and it cannot keep deciding either: a
//! rule handler that panicked once may do it for every create. So every build behaves
//! the same — abort or unwind, whatever thread panicked: one line on stderr saying what
//! panicked, where, and what happens to creates now, then exit code
//! [`PANIC`](crate::exit::PANIC) (8), which a service manager can act on (restart,
//! alert).

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// What stopping means for the running command (set once it has connected).
static CONSEQUENCE: OnceLock<&'static str> = OnceLock::new();

/// Consequence line of a decider (`guard`).
pub const DECIDER_STOPS: &str = "the decider stops: the driver applies its default verdict \
     (config default-verdict) to the creates it was waiting on and to every create until a decider \
     connects again";
/// Consequence line of an observer (`watch`).
pub const OBSERVER_STOPS: &str = "the observer stops: it receives no more events";

/// Says what stopping means for the running command.
pub fn set_consequence(consequence: &'static str) {
    let _ = CONSEQUENCE.set(consequence);
}

/// Installs the hook; call it first thing in `main`.
pub fn install() {
    static STOPPING: AtomicBool = AtomicBool::new(false);
    std::panic::set_hook(Box::new(|info| {
        if STOPPING.swap(true, Ordering::SeqCst) {
            // Another thread is already reporting and exiting (exit is not reentrant).
            loop {
                std::thread::park();
            }
        }
        let thread = std::thread::current();
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let location = info
            .location()
            .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let consequence = CONSEQUENCE.get().copied().unwrap_or("portctl stops");
        let line = format!(
            "portctl: fatal: panic in thread '{}'{location}: {what}; {consequence}; exit code {}",
            thread.name().unwrap_or("unnamed"),
            crate::exit::PANIC
        );
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "{}", line.replace(['\n', '\r'], " "));
        let _ = stderr.flush();
        drop(stderr);
        std::process::exit(i32::from(crate::exit::PANIC));
    }));
}
