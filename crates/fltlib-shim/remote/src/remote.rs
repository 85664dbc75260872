//! [`Remote`]: the `PortBackend` whose ports live in a running `portfilter-sim`.

use crate::link::{self, Link};
use crate::usermem;
use fltsim_user::{Connection, GetRequest, PortBackend};
use portfilter_bindings::{
    NTSTATUS, STATUS_ACCESS_DENIED, STATUS_ACCESS_VIOLATION, STATUS_OBJECT_NAME_NOT_FOUND,
    STATUS_PORT_DISCONNECTED, STATUS_SUCCESS,
};
use portfilter_sim_wire::{
    FromHost, MAX_IO_BYTES, MAX_PORT_NAME_UNITS, STATUS_PENDING, ToHost, UserBuf,
};
use std::ffi::c_void;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The backend: every port operation becomes a request to the host.
#[derive(Debug, Clone, Copy, Default)]
pub struct Remote;

impl PortBackend for Remote {
    fn connect(
        &self,
        name: &[u16],
        options: u32,
        context: &[u8],
    ) -> Result<Arc<dyn Connection>, NTSTATUS> {
        if name.len() > MAX_PORT_NAME_UNITS {
            // No port has such a name.
            return Err(STATUS_OBJECT_NAME_NOT_FOUND);
        }
        let link = link::current()?;
        let answer = link.call(ToHost::Connect {
            name: name.to_vec(),
            options,
            context: context.to_vec(),
        });
        match answer {
            Ok(FromHost::Connected { status, conn }) if status == STATUS_SUCCESS => {
                Ok(Arc::new(RemoteConnection {
                    link,
                    conn,
                    closed: AtomicBool::new(false),
                }))
            }
            Ok(FromHost::Connected { status, .. }) => Err(status),
            Ok(FromHost::Refused { .. }) => Err(STATUS_ACCESS_DENIED),
            // The host went away or answered nonsense: as if the port did not exist.
            Ok(_) | Err(_) => Err(STATUS_OBJECT_NAME_NOT_FOUND),
        }
    }

    fn current_process(&self) -> Option<u32> {
        // One process: handles are usable from every thread.
        None
    }

    fn report_violation(&self, rule: &'static str, detail: String) {
        eprintln!("libfltlib: handle rule broken: {rule}: {detail}");
        // The host's verifier records it too (its report lists it; it exits with 3).
        if let Some(link) = link::existing() {
            let _ = link.call(ToHost::Violation {
                rule: rule.to_owned(),
                detail,
            });
        }
    }
}

/// One connection held by the host.
struct RemoteConnection {
    link: Arc<Link>,
    conn: u32,
    closed: AtomicBool,
}

/// Alignment of an address as the host reproduces it (modulo 16).
fn align_of(addr: usize) -> u8 {
    (addr % 16) as u8
}

fn clamp(len: u32) -> usize {
    (len as usize).min(MAX_IO_BYTES)
}

/// Describes the input buffer: null, its bytes, or "faults" (not readable).
fn input_buf(ptr: *const c_void, len: u32) -> UserBuf {
    if ptr.is_null() {
        return UserBuf::Null { len };
    }
    let align = align_of(ptr as usize);
    match usermem::read(ptr, clamp(len)) {
        Some(data) => UserBuf::Bytes { align, data },
        None => UserBuf::Fault { align, len },
    }
}

/// Describes the output buffer: null, its current bytes (it is probed for writing by
/// writing them back unchanged), or "faults".
fn output_buf(ptr: *mut c_void, len: u32) -> UserBuf {
    if ptr.is_null() {
        return UserBuf::Null { len };
    }
    let align = align_of(ptr as usize);
    match usermem::read(ptr, clamp(len)) {
        Some(data) if usermem::write(ptr, &data) => UserBuf::Bytes { align, data },
        _ => UserBuf::Fault { align, len },
    }
}

impl Connection for RemoteConnection {
    fn get_message(&self, request: GetRequest) -> Result<(), (GetRequest, NTSTATUS)> {
        let token = request.id();
        let capacity = request.capacity();
        self.link.park_get(token, request);
        let answer = self.link.call(ToHost::Get {
            conn: self.conn,
            token,
            capacity,
        });
        let status = match answer {
            Ok(FromHost::GetQueued { status }) if status == STATUS_PENDING => return Ok(()),
            Ok(FromHost::GetQueued { status }) => status,
            _ => STATUS_PORT_DISCONNECTED,
        };
        match self.link.unpark_get(token) {
            Some(request) => Err((request, status)),
            // Already completed (the link died and failed it): that completion stands.
            None => Ok(()),
        }
    }

    fn cancel(&self, id: u64) -> bool {
        if !self.link.has_get(id) {
            return false;
        }
        matches!(
            self.link.call(ToHost::Cancel {
                conn: self.conn,
                token: id,
            }),
            Ok(FromHost::Cancelled { found: true })
        )
    }

    fn reply(&self, reply: &[u8]) -> NTSTATUS {
        let data = reply.get(..MAX_IO_BYTES).unwrap_or(reply).to_vec();
        match self.link.call(ToHost::Reply {
            conn: self.conn,
            data,
        }) {
            Ok(FromHost::Status { status }) => status,
            _ => STATUS_PORT_DISCONNECTED,
        }
    }

    unsafe fn send(
        &self,
        input: *const c_void,
        input_len: u32,
        output: *mut c_void,
        output_len: u32,
        returned: &mut u32,
    ) -> NTSTATUS {
        let out_desc = output_buf(output, output_len);
        let writable = matches!(out_desc, UserBuf::Bytes { .. });
        let answer = self.link.call(ToHost::Send {
            conn: self.conn,
            input: input_buf(input, input_len),
            output: out_desc,
        });
        match answer {
            Ok(FromHost::Sent {
                status,
                returned: r,
                output: bytes,
            }) => {
                *returned = r;
                match bytes {
                    Some(bytes) if writable && bytes.len() <= clamp(output_len) => {
                        if usermem::write(output, &bytes) {
                            status
                        } else {
                            // The buffer was writable a moment ago; another thread of the
                            // caller unmapped it.
                            STATUS_ACCESS_VIOLATION
                        }
                    }
                    _ => status,
                }
            }
            _ => STATUS_PORT_DISCONNECTED,
        }
    }

    fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            let _ = self.link.call(ToHost::Close { conn: self.conn });
        }
    }
}
