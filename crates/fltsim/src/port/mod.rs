//! Filter Manager communication ports (docs/port-semantics.md): server ports by name,
//! client connections, message delivery and replies, the disconnect sequence.

mod backend;
mod connection;
mod hold;
mod security;
mod send;
mod server;

pub use backend::InProcess;
pub(crate) use connection::ClientConn;
pub use hold::{SenderHold, hold_senders};
pub(crate) use server::ServerPort;
pub use server::{FltCloseCommunicationPort, FltCreateCommunicationPort};

use parking_lot::Mutex;
use portfilter_bindings::PFLT_FILTER;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Every live port object, by the address handed to the driver.
pub(crate) struct Registry {
    pub servers: BTreeMap<usize, Arc<ServerPort>>,
    /// Upper-cased name → server port address.
    pub names: BTreeMap<String, usize>,
    pub connections: BTreeMap<usize, Arc<ClientConn>>,
}

pub(crate) static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    servers: BTreeMap::new(),
    names: BTreeMap::new(),
    connections: BTreeMap::new(),
});

pub(crate) fn reset() {
    let mut r = REGISTRY.lock();
    r.servers.clear();
    r.names.clear();
    r.connections.clear();
}

/// Number of client connections whose port the filter has not closed yet.
#[must_use]
pub fn open_connections() -> usize {
    REGISTRY.lock().connections.len()
}

/// FilterGetMessage requests queued on all connections (none delivered yet).
#[must_use]
pub fn queued_requests() -> usize {
    let conns: Vec<Arc<ClientConn>> = REGISTRY.lock().connections.values().cloned().collect();
    conns.iter().map(|c| c.counts().0).sum()
}

/// Kernel senders waiting on all connections (for delivery or for a reply).
#[must_use]
pub fn waiting_senders() -> usize {
    let conns: Vec<Arc<ClientConn>> = REGISTRY.lock().connections.values().cloned().collect();
    conns.iter().map(|c| c.counts().1).sum()
}

/// Names of the server ports that accept connects now.
#[must_use]
pub fn server_port_names() -> Vec<String> {
    REGISTRY
        .lock()
        .servers
        .values()
        .map(|s| s.display_name.clone())
        .collect()
}

pub(crate) fn close_server_ports_at_unregister(filter: PFLT_FILTER) {
    server::close_all_of(filter);
}

/// A snapshot of the filter's connections (taken under the registry lock, used after it).
fn connections_of(filter: PFLT_FILTER) -> Vec<Arc<ClientConn>> {
    REGISTRY
        .lock()
        .connections
        .values()
        .filter(|c| c.server.filter == filter as usize)
        .cloned()
        .collect()
}

/// Runs the disconnect sequence on every connection of the filter (unload).
pub(crate) fn disconnect_all(filter: PFLT_FILTER) {
    for c in connections_of(filter) {
        c.disconnect(true);
    }
}

/// Connections the filter never closed: reported and closed by the model.
pub(crate) fn force_close_remaining(filter: PFLT_FILTER) {
    for c in connections_of(filter) {
        if !c.not_closed_reported() {
            crate::verifier::report(
                crate::verifier::rule::CLIENT_PORT_NOT_CLOSED,
                format!(
                    "connection of process {} still open at FltUnregisterFilter",
                    c.pid
                ),
            );
        }
        c.close_by_filter();
    }
}
