//! `portfilter-sim serve`: boot fltsim, load the real driver, serve its ports on a Unix
//! socket until SIGINT/SIGTERM/SIGHUP or `portfilter-sim stop`, then unload the driver
//! and report.
//!
//! Exit status: 0 clean shutdown; 1 could not start (socket, driver load); 3 the
//! driver left pool allocated, or the fltsim verifier recorded violations.

mod buffers;
mod host;
mod identity;
mod listener;
pub(super) mod report;
mod session;

use host::Host;
use identity::AdminPolicy;
use portfilter_sim_wire::location;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

/// Time shutdown waits for session threads to end after their sockets were closed.
const SESSION_JOIN_LIMIT: Duration = Duration::from_secs(40);

/// Options of `serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Socket path (`None`: `PORTFILTER_SIM_SOCKET`, else the per-user default).
    pub socket: Option<PathBuf>,
    /// Extra administrator uids.
    pub admin_uids: Vec<u32>,
    /// Socket mode 0666 instead of 0600.
    pub shared: bool,
    /// Print every injected create.
    pub verbose: bool,
    /// A driver image to host instead of the linked driver.
    pub image: Option<PathBuf>,
    /// Decide real opens below this directory (`--guard`, Linux).
    pub guard: Option<PathBuf>,
    /// `--guard-max-in-flight`.
    pub guard_max_in_flight: usize,
    /// `--guard-workers`.
    pub guard_workers: usize,
}

/// Runs the host; returns the process exit code.
pub fn run(opts: &ServeOptions) -> ExitCode {
    let path = location::resolve(opts.socket.as_deref());
    let listener = match listener::bind(&path, opts.shared) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("portfilter-sim: cannot serve on {}: {e}", path.display());
            return ExitCode::from(1);
        }
    };
    // The fanotify group is made before the driver loads, so a refusal (not root, no
    // fanotify) ends the host before anything else started.
    #[cfg(target_os = "linux")]
    let armed = match opts
        .guard
        .as_deref()
        .map(crate::sim::guard::arm)
        .transpose()
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("portfilter-sim: cannot guard: {e}");
            let _ = std::fs::remove_file(&path);
            return ExitCode::from(1);
        }
    };
    #[cfg(not(target_os = "linux"))]
    if opts.guard.is_some() {
        eprintln!("portfilter-sim: --guard needs Linux (fanotify)");
        let _ = std::fs::remove_file(&path);
        return ExitCode::from(1);
    }
    let (stop_tx, stop_rx) = mpsc::channel::<String>();
    let host = Arc::new(Host::new(
        AdminPolicy {
            host_uid: location::current_uid(),
            extra: opts.admin_uids.clone(),
        },
        opts.verbose,
        stop_tx,
    ));
    {
        let h = host.clone();
        if let Err(e) = ctrlc::set_handler(move || h.request_stop("signal received")) {
            eprintln!("portfilter-sim: cannot install the signal handler: {e}");
        }
    }

    let machine = fltsim::Machine::boot();
    // The trace has a few D: paths; C: is fltsim's default volume.
    fltsim::volumes::add('D', r"\Device\HarddiskVolume4");
    #[cfg(target_os = "linux")]
    if armed.is_some() {
        fltsim::volumes::add(
            crate::sim::guard::GUARD_DRIVE,
            crate::sim::guard::GUARD_VOLUME,
        );
    }
    let loaded = match &opts.image {
        None => fltsim::load_driver(portfilter::DriverEntry).map_err(|status| {
            format!(
                "DriverEntry failed with {}",
                crate::status::describe(status)
            )
        }),
        Some(image) => fltsim::image::load_driver_image(image).map_err(|e| match e {
            fltsim::image::LoadError::DriverEntry(status) => format!(
                "{}: DriverEntry failed with {}",
                image.display(),
                crate::status::describe(status)
            ),
            other => format!("cannot load {}: {other}", image.display()),
        }),
    };
    if let Err(why) = loaded {
        eprintln!("portfilter-sim: {why}");
        let _ = std::fs::remove_file(&path);
        drop(machine.shutdown());
        return ExitCode::from(1);
    }
    let which = match (&opts.image, fltsim::image::loaded_image()) {
        (Some(path), Some(info)) => format!(
            "driver image {} loaded at {:#x} (linked for {:#x})",
            path.display(),
            info.base,
            info.preferred_base
        ),
        _ => "driver loaded".to_owned(),
    };
    host.say(&format!(
        "{which}; ports {:?}; serving on {} (pid {})",
        fltsim::port::server_port_names(),
        path.display(),
        std::process::id()
    ));

    #[cfg(target_os = "linux")]
    let guard = match armed {
        None => None,
        Some(armed) => {
            host.say(&armed.describe());
            let started = crate::sim::guard::Guard::start(
                armed,
                &crate::sim::guard::GuardOptions {
                    max_in_flight: opts.guard_max_in_flight,
                    workers: opts.guard_workers,
                    verbose: opts.verbose,
                },
            );
            match started {
                Ok(g) => {
                    host.say(&format!(
                        "guard live: the host's own open of the guarded directory was answered in {:.2} ms",
                        g.probe_time().as_secs_f64() * 1000.0
                    ));
                    Some(g)
                }
                Err(e) => {
                    host.say(&format!("cannot guard: {e}"));
                    None
                }
            }
        }
    };

    let acceptor = {
        let h = host.clone();
        std::thread::Builder::new()
            .name("acceptor".into())
            .spawn(move || accept_loop(&h, &listener))
    };
    let why = stop_rx
        .recv()
        .unwrap_or_else(|_| "stop channel closed".into());
    host.say(&format!("shutting down: {why}"));
    // The guard stops first: every open it holds is answered before the driver goes.
    #[cfg(target_os = "linux")]
    if let Some(g) = guard {
        host.say(&g.stop());
    }
    host.begin_stop();
    // Wake the acceptor out of accept().
    let _ = UnixStream::connect(&path);
    let sessions = match acceptor {
        Ok(a) => a.join().unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let _ = std::fs::remove_file(&path);

    shutdown(&host, sessions, machine)
}

fn accept_loop(host: &Arc<Host>, listener: &UnixListener) -> Vec<std::thread::JoinHandle<()>> {
    let mut sessions = Vec::new();
    let mut number = 0u64;
    for stream in listener.incoming() {
        if host.stopping() {
            break;
        }
        let Ok(stream) = stream else { continue };
        let cred = match identity::peer_cred(&stream) {
            Ok(c) => c,
            Err(e) => {
                host.say(&format!("rejected a peer without credentials: {e}"));
                continue;
            }
        };
        number += 1;
        if let Ok(s) = stream.try_clone() {
            host.track(number, s);
        }
        let h = host.clone();
        let n = number;
        let spawned = std::thread::Builder::new()
            .name(format!("session-{n}"))
            .spawn(move || {
                session::run(&h, stream, cred, n);
                h.untrack(n);
            });
        match spawned {
            Ok(j) => sessions.push(j),
            Err(e) => host.say(&format!("cannot start a session thread: {e}")),
        }
        sessions.retain(|j| !j.is_finished());
    }
    sessions
}

fn shutdown(
    host: &Host,
    sessions: Vec<std::thread::JoinHandle<()>>,
    machine: fltsim::MachineGuard,
) -> ExitCode {
    let stats = report::driver_stats();
    match fltsim::unload_driver() {
        Ok(()) => host.say("driver unloaded"),
        Err(status) => {
            host.say(&format!(
                "the driver refused to unload ({}); forcing a mandatory unload",
                crate::status::describe(status)
            ));
            let _ = fltsim::unload_driver_mandatory();
        }
    }
    host.close_all_sockets();
    let deadline = std::time::Instant::now() + SESSION_JOIN_LIMIT;
    for j in sessions {
        while !j.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if j.is_finished() {
            let _ = j.join();
        }
    }

    match &stats {
        Ok(s) => print!("{}", report::format_stats(s)),
        Err(e) => println!("driver statistics unavailable: {e}"),
    }
    let leaks = report::pool_leaks();
    let violations = machine.shutdown();
    if leaks.is_empty() {
        println!("pool: no leaks (every allocation of the driver was freed)");
    } else {
        println!("pool: LEAKS after unload:");
        for l in &leaks {
            println!("  {l}");
        }
    }
    if violations.is_empty() {
        println!("verifier: no violations");
    } else {
        println!("verifier: {} violation(s):", violations.len());
        for v in &violations {
            println!("  {v}");
        }
    }
    if leaks.is_empty() && violations.is_empty() {
        host.say("clean shutdown");
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}
