//! `portfilter-sim serve --guard DIR`: real file opens on Linux decided by the hosted
//! driver. A fanotify group (`FAN_CLASS_CONTENT`) receives a `FAN_OPEN_PERM` event for
//! every open below DIR; each becomes a fltsim create (the opener's real pid and tid, the
//! name on the guard volume, access and disposition from the open flags) that runs through
//! the driver's pre-create — and so through whatever `portctl guard` decides — and the
//! kernel gets `FAN_ALLOW` or `FAN_DENY` from the create's final status.
//!
//! Fail-safe (see docs/sim-host.md, "Guarding real opens"): every event is answered —
//! the host's own opens at once, events over the in-flight limit at once with the driver's
//! default verdict, events the driver has not decided within its reply budget + a margin by
//! a watchdog, the rest at shutdown; when the process dies the kernel allows whatever was
//! pending as it closes the fanotify descriptor.

mod counters;
mod mapping;
mod opener;

use counters::Counters;
use hdrhistogram::Histogram;
use mapping::Unmapped;
pub use mapping::{GUARD_DRIVE, GUARD_VOLUME};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::fanotify::{
    EventFFlags, Fanotify, FanotifyEvent, FanotifyResponse, InitFlags, MarkFlags, MaskFlags,
    Response,
};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Added to the driver's reply budget before the watchdog answers an event itself.
pub const WATCHDOG_MARGIN: Duration = Duration::from_millis(500);
/// How often the watchdog looks (and re-reads the driver's budget: every 10th look).
const WATCHDOG_TICK: Duration = Duration::from_millis(20);
/// The reader's poll timeout (how fast it notices a stop).
const POLL_MS: u16 = 100;

/// Options of the guard.
#[derive(Debug, Clone)]
pub struct GuardOptions {
    /// Most events between reading and answering; more are answered at once with the
    /// driver's default verdict and counted as `overload`.
    pub max_in_flight: usize,
    /// Threads that run creates through the driver.
    pub workers: usize,
    /// Print every decision.
    pub verbose: bool,
}

/// A fanotify group with its mark, before any event is handled.
pub struct Armed {
    fan: Fanotify,
    root: PathBuf,
    whole_mount: bool,
    tid_reported: bool,
}

impl Armed {
    /// What is guarded, for the host's log.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "guarding {} ({}) as {GUARD_VOLUME} ({GUARD_DRIVE}:)",
            self.root.display(),
            if self.whole_mount {
                "a mount point: the whole tree"
            } else {
                "a directory: its entries, not deeper levels"
            }
        )
    }
}

/// Creates the fanotify group and marks `dir`: a mount point as a mount (`FAN_MARK_MOUNT`,
/// the whole tree), any other directory with `FAN_EVENT_ON_CHILD | FAN_ONDIR` (the
/// directory and its entries). Refuses `/`.
///
/// # Errors
/// A message naming the failing step (`fanotify_init` fails with EPERM without
/// `CAP_SYS_ADMIN`, ENOSYS where the kernel lacks fanotify).
pub fn arm(dir: &Path) -> Result<Armed, String> {
    let root = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let meta = std::fs::metadata(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", root.display()));
    }
    let Some(parent) = root.parent() else {
        return Err(
            "refusing to guard / (every open of the system would wait on the driver)".into(),
        );
    };
    let parent_dev = std::fs::metadata(parent)
        .map_err(|e| format!("{}: {e}", parent.display()))?
        .dev();
    let whole_mount = parent_dev != meta.dev();
    let base = InitFlags::FAN_CLASS_CONTENT | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK;
    let event_flags = EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE | EventFFlags::O_CLOEXEC;
    // FAN_REPORT_TID (Linux 5.8) gives the opening thread; older kernels refuse the flag.
    let (fan, tid_reported) = match Fanotify::init(base | InitFlags::FAN_REPORT_TID, event_flags) {
        Ok(f) => (f, true),
        Err(Errno::EINVAL) => (
            Fanotify::init(base, event_flags).map_err(|e| format!("fanotify_init: {e}"))?,
            false,
        ),
        Err(e) => return Err(format!("fanotify_init: {e}")),
    };
    let (flags, mask) = if whole_mount {
        (
            MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_MOUNT,
            MaskFlags::FAN_OPEN_PERM | MaskFlags::FAN_ONDIR,
        )
    } else {
        (
            MarkFlags::FAN_MARK_ADD,
            MaskFlags::FAN_OPEN_PERM | MaskFlags::FAN_EVENT_ON_CHILD | MaskFlags::FAN_ONDIR,
        )
    };
    fan.mark(
        flags,
        mask,
        std::fs::File::open(&root).map_err(|e| e.to_string())?,
        None::<&Path>,
    )
    .map_err(|e| format!("fanotify_mark {}: {e}", root.display()))?;
    Ok(Armed {
        fan,
        root,
        whole_mount,
        tid_reported,
    })
}

/// The running guard's state, for [`configuration_changed`] (one guard per host).
static ACTIVE: Mutex<Option<std::sync::Weak<Shared>>> = Mutex::new(None);

/// A client's `SetConfig` succeeded: the running guard (if any) re-reads the driver's reply
/// budget and default verdict now, rather than at its next periodic look (every 200 ms),
/// so that the opens it answers by itself (over the in-flight limit, unreadable or
/// overlong names, the watchdog) follow the new default verdict from the moment the
/// client's call returned.
pub fn configuration_changed() {
    let shared = ACTIVE.lock().as_ref().and_then(std::sync::Weak::upgrade);
    if let Some(s) = shared
        && let Some(b) = Budget::from_driver()
    {
        *s.budget.lock() = b;
    }
}

#[derive(Debug, Clone, Copy)]
struct Budget {
    reply_timeout: Duration,
    default_allow: bool,
}

impl Budget {
    fn from_driver() -> Option<Self> {
        let c = super::serve::report::driver_config().ok()?;
        Some(Self {
            reply_timeout: Duration::from_millis(u64::from(c.reply_timeout_ms)),
            default_allow: c.default_verdict == portfilter_protocol::Decision::Allow,
        })
    }
}

struct Pending {
    event: FanotifyEvent,
    deadline: Instant,
}

struct Job {
    id: u64,
    request: fltsim::CreateRequest,
}

struct Shared {
    fan: Fanotify,
    root: PathBuf,
    tid_reported: bool,
    max_in_flight: usize,
    verbose: bool,
    stop: AtomicBool,
    pending: Mutex<HashMap<u64, Pending>>,
    budget: Mutex<Budget>,
    counters: Counters,
    /// Time the driver took per decided event, µs.
    latency: Mutex<Histogram<u64>>,
}

/// The running guard.
pub struct Guard {
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    watchdog: Option<JoinHandle<()>>,
    probe: Duration,
}

impl Guard {
    /// Starts the reader, the workers and the watchdog (the driver must be loaded).
    ///
    /// # Errors
    /// A thread could not be started (the group is closed, so nothing waits on it).
    pub fn start(armed: Armed, opts: &GuardOptions) -> Result<Self, String> {
        let budget = Budget::from_driver().unwrap_or(Budget {
            reply_timeout: Duration::from_millis(u64::from(
                portfilter_protocol::config::DEFAULT_REPLY_TIMEOUT_MS,
            )),
            default_allow: true,
        });
        let max_in_flight = opts.max_in_flight.max(1);
        let shared = Arc::new(Shared {
            fan: armed.fan,
            root: armed.root,
            tid_reported: armed.tid_reported,
            max_in_flight,
            verbose: opts.verbose,
            stop: AtomicBool::new(false),
            pending: Mutex::new(HashMap::new()),
            budget: Mutex::new(budget),
            counters: Counters::default(),
            latency: Mutex::new(
                Histogram::new_with_bounds(1, 120_000_000, 3).map_err(|e| e.to_string())?,
            ),
        });
        *ACTIVE.lock() = Some(Arc::downgrade(&shared));
        let (tx, rx) = sync_channel::<Job>(max_in_flight);
        let rx = Arc::new(Mutex::new(rx));
        let mut guard = Self {
            shared: shared.clone(),
            reader: None,
            workers: Vec::new(),
            watchdog: None,
            probe: Duration::ZERO,
        };
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(f)
                .map_err(|e| format!("cannot start a guard thread: {e}"))
        };
        for i in 0..opts.workers.max(1) {
            let (s, r) = (shared.clone(), rx.clone());
            guard.workers.push(spawn(
                format!("guard-worker-{i}"),
                Box::new(move || worker(&s, &r)),
            )?);
        }
        let s = shared.clone();
        guard.watchdog = Some(spawn(
            "guard-watchdog".into(),
            Box::new(move || watchdog(&s)),
        )?);
        let s = shared;
        let root = s.root.clone();
        guard.reader = Some(spawn(
            "guard-reader".into(),
            Box::new(move || reader(&s, &tx)),
        )?);
        // The host's own open of the guarded directory: answered by the reader at once
        // (own thread), so this returns — proof the reader runs and cannot hold the host.
        let probe = Instant::now();
        std::fs::File::open(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        guard.probe = probe.elapsed();
        Ok(guard)
    }

    /// How long the start-up self-open of the guarded directory took.
    #[must_use]
    pub fn probe_time(&self) -> Duration {
        self.probe
    }

    /// Stops reading, answers everything still pending (the default verdict), closes the
    /// group and returns the summary.
    #[must_use]
    pub fn stop(mut self) -> String {
        let s = &self.shared;
        s.stop.store(true, Ordering::Release);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let limit = Instant::now() + s.budget.lock().reply_timeout + WATCHDOG_MARGIN;
        for w in self.workers.drain(..) {
            while !w.is_finished() && Instant::now() < limit {
                std::thread::sleep(Duration::from_millis(5));
            }
            if w.is_finished() {
                let _ = w.join();
            }
        }
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
        let default_allow = s.budget.lock().default_allow;
        let left: Vec<Pending> = s.pending.lock().drain().map(|(_, p)| p).collect();
        for p in left {
            Counters::bump(&s.counters.shutdown);
            s.answer(p.event, default_allow);
        }
        let h = s.latency.lock();
        let ms = |v: u64| format!("{:.2} ms", v as f64 / 1000.0);
        let timing = if h.is_empty() {
            String::new()
        } else {
            format!(
                "\n  driver time per decided open: p50 {} p99 {} max {}",
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max())
            )
        };
        format!(
            "guard {}: {}{timing}",
            s.root.display(),
            s.counters.line(false)
        )
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // A guard dropped without stop(): stop the threads; whatever is pending is
        // allowed by the kernel when the last reference closes the group.
        self.shared.stop.store(true, Ordering::Release);
        let mut active = ACTIVE.lock();
        if active
            .as_ref()
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(&self.shared)))
        {
            *active = None;
        }
    }
}

impl Shared {
    fn answer(&self, event: FanotifyEvent, allow: bool) {
        if let Some(fd) = event.fd() {
            let response = if allow {
                Response::FAN_ALLOW
            } else {
                Response::FAN_DENY
            };
            if self
                .fan
                .write_response(FanotifyResponse::new(fd, response))
                .is_err()
            {
                Counters::bump(&self.counters.answer_errors);
            }
        }
        drop(event);
    }

    fn handle(&self, event: FanotifyEvent, jobs: &SyncSender<Job>, next: &mut u64) {
        let c = &self.counters;
        let Some(fd) = event.fd().map(|f| f.as_raw_fd()) else {
            Counters::bump(&c.queue_overflow);
            return;
        };
        if !event.check_version() {
            // A metadata layout this build does not know: answer without interpreting.
            Counters::bump(&c.events);
            Counters::bump(&c.name_unreadable);
            self.answer(event, true);
            return;
        }
        if !event.mask().contains(MaskFlags::FAN_OPEN_PERM) {
            return;
        }
        Counters::bump(&c.events);
        let reported = u32::try_from(event.pid()).unwrap_or(0);
        if opener::is_own_thread(reported) {
            Counters::bump(&c.own);
            self.answer(event, true);
            return;
        }
        let budget = *self.budget.lock();
        if self.pending.lock().len() >= self.max_in_flight {
            Counters::bump(&c.overload);
            self.answer(event, budget.default_allow);
            return;
        }
        let magic = format!("/proc/self/fd/{fd}");
        let Ok(link) = std::fs::read_link(&magic) else {
            Counters::bump(&c.name_unreadable);
            self.answer(event, budget.default_allow);
            return;
        };
        let name = match mapping::nt_name(&self.root, &link) {
            Ok(n) => n,
            Err(Unmapped::Outside) => {
                Counters::bump(&c.outside);
                self.answer(event, true);
                return;
            }
            Err(Unmapped::Overlong) => {
                Counters::bump(&c.overlong);
                self.answer(event, budget.default_allow);
                return;
            }
        };
        if name.deleted {
            Counters::bump(&c.deleted);
        }
        if name.lossy {
            Counters::bump(&c.non_utf8);
        }
        let directory = std::fs::metadata(&magic).is_ok_and(|m| m.is_dir());
        let (pid, tid) = if self.tid_reported {
            let pid = opener::tgid(reported).unwrap_or_else(|| {
                Counters::bump(&c.proc_unreadable);
                reported
            });
            (pid, reported)
        } else {
            (reported, 0)
        };
        let flags = if tid == 0 {
            None
        } else {
            opener::open_flags(tid)
        };
        let flags = flags.unwrap_or_else(|| {
            Counters::bump(&c.flags_unknown);
            mapping::OpenFlags::Unknown
        });
        let request = mapping::request(&name, sim_pid(pid), tid, flags, directory);
        *next += 1;
        let id = *next;
        self.pending.lock().insert(
            id,
            Pending {
                event,
                deadline: Instant::now() + budget.reply_timeout + WATCHDOG_MARGIN,
            },
        );
        if jobs.try_send(Job { id, request }).is_err() {
            let p = self.pending.lock().remove(&id);
            if let Some(p) = p {
                Counters::bump(&c.overload);
                self.answer(p.event, budget.default_allow);
            }
        }
    }
}

/// fltsim reserves pids 0 and 4 (idle, System), as the socket sessions do.
fn sim_pid(real: u32) -> u32 {
    if real == 0 || real == 4 {
        0x4000_0000 | real
    } else {
        real
    }
}

fn reader(s: &Shared, jobs: &SyncSender<Job>) {
    let mut next = 0u64;
    while !s.stop.load(Ordering::Acquire) {
        let mut fds = [PollFd::new(s.fan.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(POLL_MS)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => {
                Counters::bump(&s.counters.read_errors);
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        }
        match s.fan.read_events() {
            Ok(events) => {
                for e in events {
                    s.handle(e, jobs, &mut next);
                }
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(_) => {
                Counters::bump(&s.counters.read_errors);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn worker(s: &Shared, jobs: &Mutex<Receiver<Job>>) {
    loop {
        let job = jobs.lock().recv();
        let Ok(job) = job else { return };
        if s.stop.load(Ordering::Acquire) {
            let p = s.pending.lock().remove(&job.id);
            if let Some(p) = p {
                Counters::bump(&s.counters.shutdown);
                s.answer(p.event, s.budget.lock().default_allow);
            }
            continue;
        }
        let start = Instant::now();
        let outcome = fltsim::create(&job.request);
        let took = start.elapsed();
        let allow = outcome.status >= 0;
        let p = s.pending.lock().remove(&job.id);
        match p {
            Some(p) => {
                Counters::bump(if allow {
                    &s.counters.allowed
                } else {
                    &s.counters.denied
                });
                s.answer(p.event, allow);
            }
            None => Counters::bump(&s.counters.late),
        }
        let _ = s
            .latency
            .lock()
            .record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1));
        if s.verbose {
            println!(
                "portfilter-sim: guard {} pid {} tid {} {} access {:#x} disposition {} -> {:#010x} ({:.2} ms)",
                if allow { "ALLOW" } else { "DENY " },
                job.request.pid,
                job.request.tid.unwrap_or(0),
                job.request.path,
                job.request.desired_access,
                job.request.disposition,
                outcome.status,
                took.as_secs_f64() * 1000.0
            );
        }
    }
}

fn watchdog(s: &Shared) {
    let mut ticks = 0u32;
    while !s.stop.load(Ordering::Acquire) {
        std::thread::sleep(WATCHDOG_TICK);
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(10)
            && let Some(b) = Budget::from_driver()
        {
            *s.budget.lock() = b;
        }
        let now = Instant::now();
        let expired: Vec<Pending> = {
            let mut p = s.pending.lock();
            let ids: Vec<u64> = p
                .iter()
                .filter(|(_, v)| v.deadline <= now)
                .map(|(k, _)| *k)
                .collect();
            ids.iter().filter_map(|id| p.remove(id)).collect()
        };
        let default_allow = s.budget.lock().default_allow;
        for e in expired {
            Counters::bump(&s.counters.watchdog);
            s.answer(e.event, default_allow);
        }
    }
}
