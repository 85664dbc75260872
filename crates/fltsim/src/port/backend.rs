//! The in-process port backend: the user-mode API (fltsim-user) calls straight into the
//! kernel model on the calling thread, and fltsim exports the user symbols with it.

use super::server;
use crate::process;
use fltsim_user::{Connection, PortBackend};
use portfilter_bindings::NTSTATUS;
use std::sync::Arc;

/// The in-process backend (a unit value: all state is the machine's).
#[derive(Debug, Clone, Copy, Default)]
pub struct InProcess;

impl PortBackend for InProcess {
    fn connect(
        &self,
        name: &[u16],
        options: u32,
        context: &[u8],
    ) -> Result<Arc<dyn Connection>, NTSTATUS> {
        server::connect(name, options, context).map(|c| c as Arc<dyn Connection>)
    }

    fn current_process(&self) -> Option<u32> {
        process::declared()
    }

    fn report_violation(&self, rule: &'static str, detail: String) {
        crate::verifier::report(rule, detail);
    }
}

/// The fltlib and kernel32 user-mode symbols, served in-process.
pub mod exports {
    fltsim_user::export_user_api!(super::InProcess);
}
