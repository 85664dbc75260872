//! The control commands' end of the socket (`create`, `workload`, `stop`).

use portfilter_sim_wire::client::Client;
use portfilter_sim_wire::{CreateSpec, FromHost, ToHost, location};
use std::path::Path;
use std::sync::Arc;

/// Connects to the host serving `socket` (or the default location).
///
/// # Errors
/// A one-line message saying what to do.
pub fn connect(socket: Option<&Path>) -> Result<Arc<Client>, String> {
    let path = location::resolve(socket);
    match Client::connect(&path, false, Box::new(|_| {}), Box::new(|| {})) {
        Ok((client, info)) if info.admin => Ok(client),
        Ok(_) => Err(format!(
            "portfilter-sim at {} treats this user as a standard user; control commands need an \
             administrator (start the host as this user, or with --admin-uid)",
            path.display()
        )),
        Err(e) => Err(format!(
            "cannot reach portfilter-sim at {}: {e} (start it with `portfilter-sim serve`, or set \
             PORTFILTER_SIM_SOCKET / --socket to where it listens)",
            path.display()
        )),
    }
}

/// Performs a create; returns (status, nanoseconds spent in the host's create path).
///
/// # Errors
/// The link went down or the host refused.
pub fn create(client: &Client, spec: CreateSpec) -> Result<(i32, u64), String> {
    match client.call(ToHost::Create(spec)) {
        Ok(FromHost::Created { status, elapsed_ns }) => Ok((status, elapsed_ns)),
        Ok(FromHost::Refused { reason }) => Err(format!("portfilter-sim refused: {reason}")),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Asks the host to shut down.
///
/// # Errors
/// The link went down or the host refused.
pub fn stop(client: &Client) -> Result<(), String> {
    match client.call(ToHost::Stop) {
        Ok(FromHost::Status { .. }) => Ok(()),
        Ok(FromHost::Refused { reason }) => Err(format!("portfilter-sim refused: {reason}")),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}
