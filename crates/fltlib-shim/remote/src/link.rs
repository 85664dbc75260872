//! The process's one socket to `portfilter-sim`.
//!
//! Opened lazily by the first `FilterConnectCommunicationPort`, kept for the life of the
//! process (the host treats the socket as the process: when it closes — normal exit,
//! crash, `kill -9` — the host closes every connection the process had). Requests from
//! any number of threads are multiplexed on it (`portfilter_sim_wire::client`); its
//! reader thread completes queued `FilterGetMessage` requests. If the host goes away,
//! every waiter fails and every queued request completes with
//! `STATUS_PORT_DISCONNECTED`; the next connect opens a new socket.

use fltsim_user::GetRequest;
use parking_lot::Mutex;
use portfilter_bindings::{
    NTSTATUS, STATUS_ACCESS_DENIED, STATUS_OBJECT_NAME_NOT_FOUND, STATUS_REVISION_MISMATCH,
};
use portfilter_sim_wire::client::{Client, LinkDown};
use portfilter_sim_wire::{FromHost, ToHost, location};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Environment variable: when `1`, the process asks the host to treat it as a
/// non-administrator (a test knob; it can only lower privilege).
pub const NON_ADMIN_ENV: &str = "PORTFILTER_SIM_NON_ADMIN";

/// Queued requests by token, shared with the reader thread's callbacks.
#[derive(Default)]
struct Parked {
    map: Mutex<HashMap<u64, GetRequest>>,
    dead: AtomicBool,
}

impl Parked {
    fn complete(&self, message: FromHost) {
        if let FromHost::GetDone {
            token,
            status,
            information,
            segments,
        } = message
        {
            let request = self.map.lock().remove(&token);
            if let Some(request) = request {
                let parts: Vec<(usize, &[u8])> = segments
                    .iter()
                    .map(|s| (s.offset as usize, s.data.as_slice()))
                    .collect();
                let information = usize::try_from(information).unwrap_or(usize::MAX);
                request.complete_segments(status, &parts, information);
            }
        }
    }

    /// Completes every parked request with `STATUS_PORT_DISCONNECTED` (by dropping it).
    fn fail_all(&self) {
        self.dead.store(true, Ordering::Release);
        let parked: Vec<GetRequest> = self.map.lock().drain().map(|(_, r)| r).collect();
        drop(parked);
    }
}

/// One socket to the host.
pub struct Link {
    client: Arc<Client>,
    parked: Arc<Parked>,
}

static CURRENT: Mutex<Option<Arc<Link>>> = Mutex::new(None);

/// The live link, if there is one (never opens one).
pub fn existing() -> Option<Arc<Link>> {
    CURRENT
        .lock()
        .as_ref()
        .filter(|l| !l.client.is_dead())
        .cloned()
}

/// The live link, opening one if needed.
///
/// # Errors
/// The NTSTATUS a connect fails with when the host cannot be reached:
/// `STATUS_OBJECT_NAME_NOT_FOUND` (no host: "driver not loaded"),
/// `STATUS_ACCESS_DENIED` (the socket exists but we may not connect to it),
/// `STATUS_REVISION_MISMATCH` (host speaks another wire version).
pub fn current() -> Result<Arc<Link>, NTSTATUS> {
    let mut cur = CURRENT.lock();
    if let Some(l) = cur.as_ref().filter(|l| !l.client.is_dead()) {
        return Ok(l.clone());
    }
    let parked = Arc::new(Parked::default());
    let on_get = parked.clone();
    let on_down = parked.clone();
    let drop_admin = std::env::var(NON_ADMIN_ENV).is_ok_and(|v| v == "1");
    let (client, _info) = Client::connect(
        &location::resolve(None),
        drop_admin,
        Box::new(move |m| on_get.complete(m)),
        Box::new(move || on_down.fail_all()),
    )
    .map_err(|e| {
        if let Some(untrusted) = location::untrusted_server(&e) {
            // The HRESULT alone (access denied) would not say why: one line on stderr.
            eprintln!("libfltlib: {untrusted}");
        }
        match e.kind() {
            ErrorKind::PermissionDenied => STATUS_ACCESS_DENIED,
            ErrorKind::Unsupported => STATUS_REVISION_MISMATCH,
            _ => STATUS_OBJECT_NAME_NOT_FOUND,
        }
    })?;
    let link = Arc::new(Link { client, parked });
    *cur = Some(link.clone());
    Ok(link)
}

impl Link {
    /// Sends a request and waits for its answer.
    ///
    /// # Errors
    /// [`LinkDown`] when the socket is (or goes) away before the answer arrives.
    pub fn call(&self, body: ToHost) -> Result<FromHost, LinkDown> {
        self.client.call(body)
    }

    /// Parks a queued request until the host completes it.
    pub fn park_get(&self, token: u64, request: GetRequest) {
        self.parked.map.lock().insert(token, request);
        // A link that died meanwhile has drained the map already: fail this one too.
        if self.parked.dead.load(Ordering::Acquire) {
            drop(self.parked.map.lock().remove(&token));
        }
    }

    /// Takes a parked request back (it failed at once).
    pub fn unpark_get(&self, token: u64) -> Option<GetRequest> {
        self.parked.map.lock().remove(&token)
    }

    /// Whether a request is parked.
    pub fn has_get(&self, token: u64) -> bool {
        self.parked.map.lock().contains_key(&token)
    }
}
