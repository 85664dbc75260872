//! What the guard counted, printed at shutdown.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Event counters of the guard (all monotonic).
        #[derive(Debug, Default)]
        pub struct Counters {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        impl Counters {
            /// `(name, value)` of every counter, in declaration order.
            #[must_use]
            pub fn all(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    /// Permission events read.
    events,
    /// Answered with the driver's verdict: allowed.
    allowed,
    /// Answered with the driver's verdict: denied.
    denied,
    /// Opens by the host's own threads, allowed at once.
    own,
    /// Events over the in-flight limit, answered with the default verdict at once.
    overload,
    /// Events the watchdog answered (the driver took longer than its budget + margin).
    watchdog,
    /// Driver outcomes that arrived after the watchdog had answered.
    late,
    /// Answered at shutdown without asking the driver.
    shutdown,
    /// Names outside the guarded tree (allowed).
    outside,
    /// Names too long for an NT name (default verdict).
    overlong,
    /// Files unlinked before their name was read (decided on the old name).
    deleted,
    /// Names that were not UTF-8 (decided with U+FFFD for the bad bytes).
    non_utf8,
    /// Event descriptors whose name could not be read at all (default verdict).
    name_unreadable,
    /// Openers whose `/proc/TID/status` was unreadable (pid = tid).
    proc_unreadable,
    /// Opens whose flags could not be recovered (read, `FILE_OPEN`).
    flags_unknown,
    /// Kernel queue overflow notices.
    queue_overflow,
    /// Responses the kernel refused.
    answer_errors,
    /// Failed reads of the fanotify descriptor.
    read_errors,
}

impl Counters {
    /// Adds one.
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The non-zero counters on one line, or every counter when `all`.
    #[must_use]
    pub fn line(&self, all: bool) -> String {
        let mut s = String::new();
        for (name, v) in self.all() {
            if all || v != 0 {
                let _ = write!(s, "{}{name}={v}", if s.is_empty() { "" } else { " " });
            }
        }
        s
    }
}
