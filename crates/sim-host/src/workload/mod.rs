//! `portfilter-sim workload`: plays file creates of the real trace into a running host
//! from several simulated processes at once, paced, and summarises what happened.
//!
//! Rows are dealt round-robin to K threads (`--processes`); every create keeps the
//! trace's pid and image, so the driver and a deciding client see the processes of the
//! trace. Create `i` is due at `start + i / rate` (no pacing with `--rate 0`). With
//! `--count` above the trace's length the rows repeat. Latency is the time the host
//! spent in the create path (the driver's pre-create, waiting for a verdict included),
//! measured in the host, so socket hops do not blur it.

pub mod summary;
pub mod trace;

use crate::control;
use crate::create_spec::{FILE_ATTRIBUTE_NORMAL, FILE_GENERIC_READ, FILE_SYNCHRONOUS_IO_NONALERT};
use portfilter_sim_wire::CreateSpec;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use summary::Summary;
use trace::Row;

/// Options of `workload`.
#[derive(Debug, Clone)]
pub struct WorkloadOptions {
    /// Socket of the host.
    pub socket: Option<PathBuf>,
    /// Creates to perform (`None`: every row once).
    pub count: Option<usize>,
    /// Creates per second (0: as fast as possible).
    pub rate: f64,
    /// Concurrent simulated processes (threads).
    pub processes: usize,
    /// CSV trace instead of the embedded sample.
    pub file: Option<PathBuf>,
    /// Print every create.
    pub print: bool,
}

/// The create of a trace row.
#[must_use]
pub fn spec_of(row: &Row) -> CreateSpec {
    CreateSpec {
        path: row.path.clone(),
        pid: row.pid,
        tid: 0,
        image: trace::short_image(&row.image).to_owned(),
        kernel: false,
        desired_access: FILE_GENERIC_READ,
        share_access: 3,
        disposition: 1,
        options: FILE_SYNCHRONOUS_IO_NONALERT,
        attributes: FILE_ATTRIBUTE_NORMAL,
        directory: false,
        paging_file: false,
        volume_open: false,
    }
}

/// Runs the workload; exit code 0 when every create was performed (whatever its
/// status), 1 when some could not be (link lost, refused), 3 when the host is
/// unreachable or the trace unreadable.
#[must_use]
pub fn run(opts: &WorkloadOptions) -> ExitCode {
    let rows = match trace::load(opts.file.as_deref()) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            eprintln!("portfilter-sim: {e}");
            return ExitCode::from(3);
        }
    };
    let client = match control::connect(opts.socket.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("portfilter-sim: {e}");
            return ExitCode::from(3);
        }
    };
    let count = opts.count.unwrap_or(rows.len());
    let threads = opts.processes.clamp(1, 64);
    let interval = (opts.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / opts.rate));
    println!(
        "workload: {count} creates from the {} trace, {threads} concurrent processes, {}",
        if opts.file.is_some() {
            "given"
        } else {
            "embedded"
        },
        interval.map_or_else(
            || "unpaced".to_owned(),
            |_| format!("{} creates/s", opts.rate)
        )
    );
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|k| {
            let rows = rows.clone();
            let client = client.clone();
            let print = opts.print;
            std::thread::spawn(move || {
                let mut s = Summary::new();
                let mut i = k;
                while i < count {
                    if let Some(step) = interval {
                        let due = start + step.saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                    }
                    let row = &rows[i % rows.len()];
                    match control::create(&client, spec_of(row)) {
                        Ok((status, ns)) => {
                            s.record(status, ns);
                            if print {
                                let mut out = std::io::stdout().lock();
                                let _ = writeln!(
                                    out,
                                    "{:>6} {:<20} {} -> {}",
                                    row.pid,
                                    trace::short_image(&row.image),
                                    row.path,
                                    crate::status::describe(status)
                                );
                            }
                        }
                        Err(e) => {
                            s.errors += 1;
                            if s.errors == 1 {
                                eprintln!("portfilter-sim: create failed: {e}");
                            }
                        }
                    }
                    i += threads;
                }
                s
            })
        })
        .collect();
    let mut total = Summary::new();
    for h in handles {
        if let Ok(s) = h.join() {
            total.merge(&s);
        } else {
            total.errors += 1;
        }
    }
    print!("{}", total.render(start.elapsed()));
    client.close();
    if total.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
