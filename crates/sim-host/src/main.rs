//! `portfilter-sim`: the real portfilter driver hosted under fltsim (the user-mode
//! Filter Manager model), serving its communication ports on a Unix socket so that
//! separate client processes — `portctl`, or any C program linked with `libfltlib_shim.so`
//! — talk to it; plus commands that inject file creates into a running host.
//!
//! See docs/sim-host.md.

// `pub(super)`: src/entry.rs, the binary's root, re-exports these as `crate::…`.
pub(super) mod control;
pub(super) mod create_spec;
#[cfg(target_os = "linux")]
mod guard;
mod serve;
pub(super) mod status;
mod workload;

use clap::{Args, Parser, Subcommand};
use portfilter_sim_wire::CreateSpec;
use std::path::PathBuf;
use std::process::ExitCode;

// The one provider of the Windows symbols in this binary (kernel and fltlib, in-process).
use fltsim as _;

#[derive(Parser, Debug)]
#[command(
    name = "portfilter-sim",
    version,
    about = "Run the portfilter driver under fltsim and serve its ports on a Unix socket",
    long_about = "Run the portfilter driver under fltsim (a user-mode model of the Windows Filter \
Manager) and serve its communication ports on a Unix socket. Client processes reach it through \
libfltlib_shim.so (portctl does this on Linux). Other subcommands inject file creates into a running host.\n\n\
Socket: --socket PATH, else $PORTFILTER_SIM_SOCKET, else $XDG_RUNTIME_DIR/portfilter-sim.sock, \
else /tmp/portfilter-sim-$UID/sim.sock (directory created 0700)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct SocketArg {
    /// Socket path (default: $PORTFILTER_SIM_SOCKET, else the per-user default).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Boot fltsim, load the driver and serve its ports until SIGINT/SIGTERM or `stop`.
    ///
    /// Exit status: 0 clean shutdown, 1 could not start, 3 pool leaks or verifier violations.
    Serve {
        #[command(flatten)]
        socket: SocketArg,
        /// Also treat peers with this uid as administrators (repeatable). uid 0 and the
        /// host's own uid always are.
        #[arg(long = "admin-uid", value_name = "UID")]
        admin_uids: Vec<u32>,
        /// Make the socket connectable by every local user (mode 0666 instead of 0600);
        /// their uid decides whether they are administrators.
        #[arg(long)]
        shared: bool,
        /// Print every injected create.
        #[arg(long, short)]
        verbose: bool,
        /// Host this driver image (a cross-built portfilter.sys) instead of the driver
        /// linked into portfilter-sim. Default: $FLTSIM_IMAGE when set.
        #[arg(long, value_name = "PATH")]
        image: Option<PathBuf>,
        /// Decide real opens below this directory with the driver (fanotify permission
        /// events; root). A mount point is guarded as a whole tree, any other directory
        /// for its own entries. Its files are \Device\HarddiskVolume9\… (G:).
        #[arg(long, value_name = "DIR")]
        guard: Option<PathBuf>,
        /// Most guarded opens waiting for the driver at once; more are answered at once
        /// with the driver's default verdict (counted as overload).
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
        guard_max_in_flight: u32,
        /// Threads that run guarded opens through the driver.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
        guard_workers: u32,
    },
    /// Perform one file create in a running host and print its final NTSTATUS.
    ///
    /// Exit status: 0 the create succeeded (allowed), 1 it failed (denied, or another
    /// failure status), 3 the host could not be reached or refused the request.
    Create(CreateArgs),
    /// Play file creates from the embedded sample of a real trace (or --file) into a
    /// running host from several simulated processes, and summarise.
    ///
    /// Exit status: 0 every create was performed, 1 some could not be, 3 host unreachable.
    Workload {
        #[command(flatten)]
        socket: SocketArg,
        /// Number of creates (default: every row of the trace once).
        #[arg(long, short = 'n')]
        count: Option<usize>,
        /// Creates per second across all processes (0: as fast as possible).
        #[arg(long, default_value_t = 500.0)]
        rate: f64,
        /// Concurrent simulated processes (threads), 1–64.
        #[arg(long, short = 'p', default_value_t = 4)]
        processes: usize,
        /// A CSV trace with the columns t_us,pid,tid,image,path,source.
        #[arg(long, value_name = "CSV")]
        file: Option<PathBuf>,
        /// Print every create and its status.
        #[arg(long)]
        print: bool,
    },
    /// Ask a running host to shut down (unload the driver, report, exit).
    Stop {
        #[command(flatten)]
        socket: SocketArg,
    },
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// Path: `C:\dir\file` (C: is \Device\HarddiskVolume3, D: is …Volume4) or an NT path.
    path: String,
    #[command(flatten)]
    socket: SocketArg,
    /// Requestor process id.
    #[arg(long, default_value_t = 1000)]
    pid: u32,
    /// Requestor thread id (default: chosen by the host).
    #[arg(long, default_value_t = 0)]
    tid: u32,
    /// Requestor image name (informational).
    #[arg(long, default_value = "app.exe")]
    image: String,
    /// A kernel-mode requestor.
    #[arg(long)]
    kernel: bool,
    /// Desired access: a mask, or read, write, execute, delete, all (combine with ',').
    #[arg(long, default_value = "read", value_parser = create_spec::parse_access)]
    access: u32,
    /// Share access: a mask, or none, read, write, delete (combine with ',').
    #[arg(long, default_value = "read,write", value_parser = create_spec::parse_share)]
    share: u32,
    /// Disposition: supersede, open, create, open-if, overwrite, overwrite-if (or 0–5).
    #[arg(long, default_value = "open", value_parser = create_spec::parse_disposition)]
    disposition: u32,
    /// Create options mask (default FILE_SYNCHRONOUS_IO_NONALERT).
    #[arg(long, default_value = "0x20", value_parser = create_spec::parse_number)]
    options: u32,
    /// File attributes mask (default FILE_ATTRIBUTE_NORMAL).
    #[arg(long, default_value = "0x80", value_parser = create_spec::parse_number)]
    attributes: u32,
    /// A directory open (FILE_DIRECTORY_FILE).
    #[arg(long)]
    directory: bool,
    /// A paging-file open (SL_OPEN_PAGING_FILE).
    #[arg(long)]
    paging_file: bool,
    /// A volume open (FO_VOLUME_OPEN).
    #[arg(long)]
    volume_open: bool,
}

fn create(args: CreateArgs) -> ExitCode {
    let spec = CreateSpec {
        path: args.path,
        pid: args.pid,
        tid: args.tid,
        image: args.image,
        kernel: args.kernel,
        desired_access: args.access,
        share_access: args.share,
        disposition: args.disposition,
        options: args.options,
        attributes: args.attributes,
        directory: args.directory,
        paging_file: args.paging_file,
        volume_open: args.volume_open,
    };
    let client = match control::connect(args.socket.socket.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("portfilter-sim: {e}");
            return ExitCode::from(3);
        }
    };
    let path = spec.path.clone();
    let result = control::create(&client, spec);
    client.close();
    match result {
        Ok((status, _)) => {
            let verdict = if status >= 0 { "allowed" } else { "failed" };
            println!("{} {verdict}: {path}", status::describe(status));
            if status >= 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("portfilter-sim: {e}");
            ExitCode::from(3)
        }
    }
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            socket,
            admin_uids,
            shared,
            verbose,
            image,
            guard,
            guard_max_in_flight,
            guard_workers,
        } => serve::run(&serve::ServeOptions {
            socket: socket.socket,
            admin_uids,
            shared,
            verbose,
            image: image.or_else(fltsim::image::image_from_env),
            guard,
            guard_max_in_flight: guard_max_in_flight as usize,
            guard_workers: guard_workers as usize,
        }),
        Command::Create(args) => create(args),
        Command::Workload {
            socket,
            count,
            rate,
            processes,
            file,
            print,
        } => workload::run(&workload::WorkloadOptions {
            socket: socket.socket,
            count,
            rate,
            processes,
            file,
            print,
        }),
        Command::Stop { socket } => {
            let client = match control::connect(socket.socket.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("portfilter-sim: {e}");
                    return ExitCode::from(3);
                }
            };
            match control::stop(&client) {
                Ok(()) => {
                    println!("portfilter-sim: stop requested");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("portfilter-sim: {e}");
                    ExitCode::from(3)
                }
            }
        }
    }
}
