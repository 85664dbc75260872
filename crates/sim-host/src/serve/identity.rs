//! Who a socket peer is: its credentials (`SO_PEERCRED`), whether it is an
//! administrator for the port's security descriptor, and the simulated process it acts
//! as.
//!
//! Mapping (docs/sim-host.md):
//! * the peer's pid is the simulated process id (`PsGetCurrentProcessId` in the
//!   driver's Connect and MessageNotify callbacks), except pids 0 and 4, which fltsim
//!   reserves (idle / System): those become `0x4000_0000 | pid`;
//! * administrator ⇔ uid 0, or the host's own uid, or a uid listed with `--admin-uid`;
//!   everybody else is a standard user, whom the driver's admin-only port refuses with
//!   `E_ACCESSDENIED` (0x80070005). A peer may ask to be treated as a standard user
//!   (`PORTFILTER_SIM_NON_ADMIN=1` in the shim): a test knob that only lowers privilege.

use parking_lot::Mutex;
use std::collections::HashMap;

/// The peer's credentials: shared with the client side (the shim checks who serves).
pub use portfilter_sim_wire::location::{PeerCred, peer_cred};

/// Who counts as an administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPolicy {
    /// The host's own uid.
    pub host_uid: u32,
    /// Extra administrator uids (`--admin-uid`).
    pub extra: Vec<u32>,
}

impl AdminPolicy {
    /// Whether `uid` is an administrator.
    #[must_use]
    pub fn is_admin(&self, uid: u32) -> bool {
        uid == 0 || uid == self.host_uid || self.extra.contains(&uid)
    }
}

/// The simulated pid of a real pid (fltsim reserves 0 and the System pid 4).
#[must_use]
pub fn sim_pid(real: u32) -> u32 {
    if real == 0 || real == fltsim::process::SYSTEM_PID {
        0x4000_0000 | real
    } else {
        real
    }
}

/// The peer's command name (`/proc/PID/comm`), for messages and the simulated
/// process's image name.
#[must_use]
pub fn image_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("pid-{pid}"))
}

/// Simulated processes with the number of sockets acting for each: a process is spawned
/// in fltsim with its first socket and exits (fltsim::process::exit) with its last.
#[derive(Debug, Default)]
pub struct Processes {
    sockets: Mutex<HashMap<u32, usize>>,
}

impl Processes {
    /// A socket starts acting for `pid`.
    pub fn attach(&self, pid: u32, image: &str, admin: bool) {
        let mut s = self.sockets.lock();
        let n = s.entry(pid).or_insert(0);
        // (Re)declare the process: a new socket of a pid may carry new credentials.
        fltsim::process::spawn(pid, image, admin);
        *n += 1;
    }

    /// A socket of `pid` ended; the last one makes the process exit.
    pub fn detach(&self, pid: u32) {
        let mut s = self.sockets.lock();
        if let Some(n) = s.get_mut(&pid) {
            *n -= 1;
            if *n == 0 {
                s.remove(&pid);
                let _ = fltsim::process::exit(pid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_mapping() {
        let p = AdminPolicy {
            host_uid: 1000,
            extra: vec![1500],
        };
        assert!(p.is_admin(0));
        assert!(p.is_admin(1000));
        assert!(p.is_admin(1500));
        assert!(!p.is_admin(1001));
    }

    #[test]
    fn reserved_pids_are_remapped() {
        assert_eq!(sim_pid(4), 0x4000_0004);
        assert_eq!(sim_pid(0), 0x4000_0000);
        assert_eq!(sim_pid(1234), 1234);
    }
}
