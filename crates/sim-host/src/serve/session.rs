//! One accepted socket = one simulated client process.
//!
//! A reader loop decodes requests; quick ones (queue a get, cancel, reply) run inline,
//! in order; ones that may block (connect, send, close, create) run on their own thread
//! so one slow call never stalls the others of the same process. Every answer goes
//! through one writer thread. When the socket ends — process exit, `kill -9`, host
//! shutdown — every connection of the session is closed (the disconnect sequence runs)
//! and, with its last socket, the simulated process exits.

use super::buffers::HostBuf;
use super::host::Host;
use super::identity::{self, PeerCred};
use crate::create_spec;
use fltsim::port::InProcess;
use fltsim_user::{Connection, GetRequest, PortBackend};
use parking_lot::Mutex;
use portfilter_bindings::{
    STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_HANDLE, STATUS_OBJECT_NAME_NOT_FOUND,
    STATUS_PORT_DISCONNECTED, STATUS_SUCCESS,
};
use portfilter_sim_wire::{
    Envelope, FRAME_DEADLINE, FromHost, Incoming, MAX_IO_BYTES, MAX_PORT_NAME_UNITS, Segment,
    ToHost, UserBuf, WIRE_VERSION, decode, encode, read_frame, write_frame,
};
use std::collections::HashMap;
use std::io;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// How often an idle reader wakes to check for shutdown.
const POLL: Duration = Duration::from_millis(250);
/// Time a peer gets to send its hello.
const HELLO_DEADLINE: Duration = Duration::from_secs(10);
/// A peer that does not read its answers for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests running on their own thread, per session.
const MAX_IN_FLIGHT: usize = 256;
/// Queued `FilterGetMessage` requests, per session.
const MAX_QUEUED_GETS: usize = 4096;
/// Time the end of a session waits for its running requests.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// The rule recorded for a violation a client reports under a name this host does not
/// know (a client built from another version).
const UNKNOWN_CLIENT_RULE: &str = "handle rule broken by a client (rule unknown to this host)";

/// A frame for the writer, with an optional acknowledgement once it is written.
type Outgoing = (Vec<u8>, Option<mpsc::SyncSender<()>>);

/// A queued remote get.
struct QueuedGet {
    conn: u32,
    host_id: u64,
}

/// State shared by the reader, the request threads and the completion sinks.
pub struct Session {
    pub(crate) number: u64,
    pub(crate) cred: PeerCred,
    pub(crate) pid: u32,
    pub(crate) image: String,
    admin: AtomicBool,
    out: Mutex<Option<mpsc::Sender<Outgoing>>>,
    conns: Mutex<HashMap<u32, Arc<dyn Connection>>>,
    next_conn: AtomicU32,
    gets: Mutex<HashMap<u64, QueuedGet>>,
    in_flight: AtomicUsize,
    drained: parking_lot::Condvar,
    drained_lock: Mutex<()>,
}

impl Session {
    fn send(&self, id: u64, body: &FromHost) {
        let frame = encode(&Envelope { id, body });
        if let Some(tx) = self.out.lock().as_ref() {
            let _ = tx.send((frame, None));
        }
    }

    /// Sends and waits (bounded) until the frame is on the socket.
    fn send_flushed(&self, id: u64, body: &FromHost) {
        let frame = encode(&Envelope { id, body });
        let (ack, written) = mpsc::sync_channel(1);
        let queued = self
            .out
            .lock()
            .as_ref()
            .is_some_and(|tx| tx.send((frame, Some(ack))).is_ok());
        if queued {
            let _ = written.recv_timeout(WRITE_TIMEOUT);
        }
    }

    fn conn(&self, id: u32) -> Option<Arc<dyn Connection>> {
        self.conns.lock().get(&id).cloned()
    }

    fn is_admin(&self) -> bool {
        self.admin.load(Ordering::Acquire)
    }

    /// Acts for the session's simulated process on this thread.
    fn enter(&self) -> Option<fltsim::process::ProcessGuard> {
        fltsim::process::info(self.pid).map(|_| fltsim::process::enter(self.pid))
    }
}

/// Serves one accepted socket until it ends. Runs on its own thread.
pub fn run(host: &Arc<Host>, stream: UnixStream, cred: PeerCred, number: u64) {
    let pid = identity::sim_pid(cred.pid);
    let image = identity::image_of(cred.pid);
    let session = Arc::new(Session {
        number,
        cred,
        pid,
        image,
        admin: AtomicBool::new(false),
        out: Mutex::new(None),
        conns: Mutex::new(HashMap::new()),
        next_conn: AtomicU32::new(1),
        gets: Mutex::new(HashMap::new()),
        in_flight: AtomicUsize::new(0),
        drained: parking_lot::Condvar::new(),
        drained_lock: Mutex::new(()),
    });
    let writer = match start_writer(&stream, &session) {
        Ok(w) => w,
        Err(e) => {
            host.say(&format!("session {number}: cannot set up the socket: {e}"));
            return;
        }
    };
    let mut reader = stream;
    let attached = match hello(host, &session, &mut reader) {
        Ok(()) => true,
        Err(e) => {
            host.say(&format!(
                "session {number} (pid {}): dropped before hello: {e}",
                cred.pid
            ));
            false
        }
    };
    if attached {
        host.say(&format!(
            "client pid {} ({}) uid {} connected as {} (session {number}, simulated pid {pid})",
            cred.pid,
            session.image,
            cred.uid,
            if session.is_admin() {
                "administrator"
            } else {
                "standard user"
            }
        ));
        let end = serve(host, &session, &mut reader);
        let closed = finish(&session);
        host.processes.detach(pid);
        let closed = if closed == 0 {
            "no open connections".to_owned()
        } else {
            format!("closed {closed} connection(s): disconnect sequence ran")
        };
        host.say(&format!(
            "client pid {} ({}) gone ({end}); {closed}",
            cred.pid, session.image
        ));
    }
    let _ = reader.shutdown(std::net::Shutdown::Both);
    *session.out.lock() = None;
    let _ = writer.join();
}

fn start_writer(
    stream: &UnixStream,
    session: &Arc<Session>,
) -> io::Result<std::thread::JoinHandle<()>> {
    stream.set_read_timeout(Some(POLL))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut w = stream.try_clone()?;
    let (tx, rx) = mpsc::channel::<Outgoing>();
    *session.out.lock() = Some(tx);
    std::thread::Builder::new()
        .name(format!("session-{}-writer", session.number))
        .spawn(move || {
            let mut broken = false;
            for (frame, ack) in rx {
                if !broken && write_frame(&mut w, &frame).is_err() {
                    // A peer that stopped reading (or left): end the session.
                    broken = true;
                    let _ = w.shutdown(std::net::Shutdown::Both);
                }
                if let Some(ack) = ack {
                    let _ = ack.send(());
                }
            }
        })
}

fn hello(host: &Host, session: &Session, reader: &mut UnixStream) -> Result<(), String> {
    let start = Instant::now();
    let frame = loop {
        match read_frame(reader, FRAME_DEADLINE) {
            Ok(Incoming::Frame(f)) => break f,
            Ok(Incoming::Idle) if start.elapsed() < HELLO_DEADLINE && !host.stopping() => {}
            Ok(Incoming::Idle) => return Err("no hello in time".into()),
            Ok(Incoming::Closed) => return Err("closed".into()),
            Err(e) => return Err(e.to_string()),
        }
    };
    let env = decode::<ToHost>(&frame).map_err(|e| e.to_string())?;
    let ToHost::Hello {
        version,
        drop_admin,
    } = env.body
    else {
        return Err("first message is not a hello".into());
    };
    let admin = host.policy.is_admin(session.cred.uid) && !drop_admin;
    session.admin.store(admin, Ordering::Release);
    session.send(
        env.id,
        &FromHost::Hello {
            version: WIRE_VERSION,
            host_pid: std::process::id(),
            sim_pid: session.pid,
            admin,
        },
    );
    if version != WIRE_VERSION {
        return Err(format!(
            "wire version {version}, host speaks {WIRE_VERSION}"
        ));
    }
    host.processes.attach(session.pid, &session.image, admin);
    Ok(())
}

/// The request loop; returns why it ended.
fn serve(host: &Arc<Host>, session: &Arc<Session>, reader: &mut UnixStream) -> String {
    loop {
        let frame = match read_frame(reader, FRAME_DEADLINE) {
            Ok(Incoming::Frame(f)) => f,
            Ok(Incoming::Idle) => {
                if host.stopping() {
                    return "host shutting down".into();
                }
                continue;
            }
            Ok(Incoming::Closed) => return "socket closed".into(),
            Err(e) => return format!("socket error: {e}"),
        };
        let Envelope { id, body } = match decode::<ToHost>(&frame) {
            Ok(env) => env,
            Err(e) => {
                session.send(
                    0,
                    &FromHost::Refused {
                        reason: e.to_string(),
                    },
                );
                return format!("protocol error: {e}");
            }
        };
        dispatch(host, session, id, body);
    }
}

fn dispatch(host: &Arc<Host>, session: &Arc<Session>, id: u64, body: ToHost) {
    match body {
        ToHost::Hello { .. } => session.send(
            id,
            &FromHost::Refused {
                reason: "hello already done".into(),
            },
        ),
        ToHost::Get {
            conn,
            token,
            capacity,
        } => queue_get(session, id, conn, token, capacity),
        ToHost::Cancel { conn, token } => {
            let host_id = session
                .gets
                .lock()
                .get(&token)
                .filter(|g| g.conn == conn)
                .map(|g| g.host_id);
            let found = match (host_id, session.conn(conn)) {
                (Some(h), Some(c)) => c.cancel(h),
                _ => false,
            };
            session.send(id, &FromHost::Cancelled { found });
        }
        ToHost::Reply { conn, data } => {
            let status = session.conn(conn).map_or(STATUS_INVALID_HANDLE, |c| {
                let _p = session.enter();
                c.reply(&data)
            });
            session.send(id, &FromHost::Status { status });
        }
        ToHost::Violation { rule, detail } => {
            // The client's fltsim-user layer saw it break a handle rule: record it with the
            // host's verifier (the shutdown report lists it; exit status 3).
            let rule = fltsim_user::rule::ALL
                .iter()
                .find(|known| **known == rule)
                .copied()
                .unwrap_or(UNKNOWN_CLIENT_RULE);
            fltsim::verifier::report(
                rule,
                format!(
                    "client pid {} ({}): {}",
                    session.cred.pid,
                    session.image,
                    detail.chars().take(1024).collect::<String>()
                ),
            );
            session.send(
                id,
                &FromHost::Status {
                    status: STATUS_SUCCESS,
                },
            );
        }
        ToHost::Stop | ToHost::Create(_) if !session.is_admin() => session.send(
            id,
            &FromHost::Refused {
                reason: "control requests need an administrator peer".into(),
            },
        ),
        ToHost::Stop => {
            // Answer before shutdown closes the socket.
            session.send_flushed(
                id,
                &FromHost::Status {
                    status: STATUS_SUCCESS,
                },
            );
            host.request_stop(&format!(
                "stop requested by pid {} ({})",
                session.cred.pid, session.image
            ));
        }
        blocking => spawn_request(host, session, id, blocking),
    }
}

/// Runs a request that may block on its own thread (bounded per session).
fn spawn_request(host: &Arc<Host>, session: &Arc<Session>, id: u64, body: ToHost) {
    if session.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_IN_FLIGHT {
        request_done(session);
        session.send(
            id,
            &FromHost::Refused {
                reason: format!("more than {MAX_IN_FLIGHT} requests in flight"),
            },
        );
        return;
    }
    let s = session.clone();
    let h = host.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("session-{}-req", session.number))
        .spawn(move || {
            let answer = run_request(&h, &s, body);
            s.send(id, &answer);
            request_done(&s);
        });
    if spawned.is_err() {
        request_done(session);
        session.send(
            id,
            &FromHost::Refused {
                reason: "cannot start a thread".into(),
            },
        );
    }
}

fn request_done(session: &Session) {
    if session.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
        let _g = session.drained_lock.lock();
        session.drained.notify_all();
    }
}

fn run_request(host: &Host, session: &Session, body: ToHost) -> FromHost {
    match body {
        ToHost::Connect {
            name,
            options,
            context,
        } => {
            if name.len() > MAX_PORT_NAME_UNITS {
                return FromHost::Connected {
                    status: STATUS_OBJECT_NAME_NOT_FOUND,
                    conn: 0,
                };
            }
            let _p = session.enter();
            match InProcess.connect(&name, options, &context) {
                Ok(c) => {
                    let conn = session.next_conn.fetch_add(1, Ordering::Relaxed);
                    session.conns.lock().insert(conn, c);
                    FromHost::Connected {
                        status: STATUS_SUCCESS,
                        conn,
                    }
                }
                Err(status) => FromHost::Connected { status, conn: 0 },
            }
        }
        ToHost::Send {
            conn,
            input,
            output,
        } => {
            let Some(c) = session.conn(conn) else {
                return FromHost::Sent {
                    status: STATUS_INVALID_HANDLE,
                    returned: 0,
                    output: None,
                };
            };
            let sets_config = is_set_config(&input);
            let input = HostBuf::new(&input);
            let output = HostBuf::new(&output);
            let mut returned = 0u32;
            let status = {
                let _p = session.enter();
                // SAFETY: the buffers are live host buffers, null, or addresses in the
                // reserved fault region; fltsim accesses them only fault-tolerantly.
                unsafe {
                    c.send(
                        input.ptr(),
                        input.len(),
                        output.ptr(),
                        output.len(),
                        &mut returned,
                    )
                }
            };
            if sets_config && status >= 0 {
                crate::sim::guard::configuration_changed();
            }
            FromHost::Sent {
                status,
                returned,
                output: output.into_bytes(),
            }
        }
        ToHost::Close { conn } => {
            let removed = session.conns.lock().remove(&conn);
            let status = match removed {
                Some(c) => {
                    let _p = session.enter();
                    c.close();
                    STATUS_SUCCESS
                }
                None => STATUS_INVALID_HANDLE,
            };
            FromHost::Status { status }
        }
        ToHost::Create(spec) => {
            let request = create_spec::to_request(&spec);
            let start = Instant::now();
            let outcome = fltsim::create(&request);
            let elapsed = start.elapsed();
            if host.verbose {
                host.say(&format!(
                    "create {} pid {} -> {:#010x}",
                    spec.path, spec.pid, outcome.status
                ));
            }
            FromHost::Created {
                status: outcome.status,
                elapsed_ns: u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            }
        }
        other => FromHost::Refused {
            reason: format!("unexpected request {other:?}"),
        },
    }
}

/// `FilterGetMessage`: queue a forwarding request on the connection. Its completion is
/// sent to the client as `GetDone`; an immediate failure only as the answer.
fn queue_get(session: &Arc<Session>, id: u64, conn: u32, token: u64, capacity: u32) {
    let Some(c) = session.conn(conn) else {
        session.send(
            id,
            &FromHost::GetQueued {
                status: STATUS_PORT_DISCONNECTED,
            },
        );
        return;
    };
    if session.gets.lock().len() >= MAX_QUEUED_GETS {
        session.send(
            id,
            &FromHost::GetQueued {
                status: STATUS_INSUFFICIENT_RESOURCES,
            },
        );
        return;
    }
    let capacity = u32::try_from((capacity as usize).min(MAX_IO_BYTES)).unwrap_or(0);
    // Set when the request fails at once: then its sink must stay silent.
    let defused = Arc::new(AtomicBool::new(false));
    let sink_defused = defused.clone();
    let weak = Arc::downgrade(session);
    let request = GetRequest::forwarding(capacity, move |status, segments, information| {
        if sink_defused.load(Ordering::Acquire) {
            return;
        }
        let Some(s) = weak.upgrade() else { return };
        s.gets.lock().remove(&token);
        let segments = segments
            .iter()
            .map(|(offset, data)| Segment {
                offset: u32::try_from(*offset).unwrap_or(u32::MAX),
                data: data.to_vec(),
            })
            .collect();
        s.send(
            0,
            &FromHost::GetDone {
                token,
                status,
                information: information as u64,
                segments,
            },
        );
    });
    session.gets.lock().insert(
        token,
        QueuedGet {
            conn,
            host_id: request.id(),
        },
    );
    match c.get_message(request) {
        Ok(()) => session.send(
            id,
            &FromHost::GetQueued {
                status: portfilter_sim_wire::STATUS_PENDING,
            },
        ),
        Err((request, status)) => {
            defused.store(true, Ordering::Release);
            drop(request);
            session.gets.lock().remove(&token);
            session.send(id, &FromHost::GetQueued { status });
        }
    }
}

/// End of a session: close every connection (as the process's exit would), then wait
/// for its running requests, and close what a connect still running added. Returns how
/// many connections were closed.
fn finish(session: &Session) -> usize {
    let mut closed = close_all(session);
    let deadline = Instant::now() + DRAIN_LIMIT;
    {
        let mut g = session.drained_lock.lock();
        while session.in_flight.load(Ordering::Acquire) > 0 {
            if session.drained.wait_until(&mut g, deadline).timed_out() {
                break;
            }
        }
    }
    closed += close_all(session);
    closed
}

fn close_all(session: &Session) -> usize {
    let conns: Vec<Arc<dyn Connection>> = session.conns.lock().drain().map(|(_, c)| c).collect();
    let n = conns.len();
    let _p = session.enter();
    for c in conns {
        c.close();
    }
    n
}

/// Whether a `FilterSendMessage` input is a `SetConfig` command (the guard then re-reads
/// the driver's budget and default verdict).
fn is_set_config(input: &UserBuf) -> bool {
    match input {
        UserBuf::Bytes { data, .. } => portfilter_protocol::decode_request(data)
            .is_ok_and(|r| r.command == portfilter_protocol::Command::SetConfig),
        _ => false,
    }
}
