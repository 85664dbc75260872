//! The fltlib and kernel32 functions a client calls, written once over a
//! [`PortBackend`]. [`export_user_api!`](crate::export_user_api) wraps each in a
//! `#[no_mangle] extern "system"` symbol with the exact windows-sys signature.
//!
//! Every function validates what a buggy caller could pass (null pointers, zero sizes,
//! unknown or wrong-kind handles, double close) and returns the documented error instead
//! of crashing. What it cannot validate is the Win32 contract itself: buffers and
//! OVERLAPPED structures must stay valid until their request completes.
#![allow(clippy::missing_safety_doc)] // each function's Safety is that of its Win32 twin

use crate::backend::{GetRequest, PortBackend};
use crate::event::UserEvent;
use crate::handles::{self, Object, PortHandle};
use crate::hresult::{
    E_HANDLE_WIN32, E_INVALIDARG_WIN32, E_IO_PENDING, S_OK, hresult_from_ntstatus,
    ntstatus_to_win32, win32,
};
use crate::iocp::{Iocp, Packet, WaitError};
use crate::last_error;
use crate::request::{Notify, RequestSlot};
use crate::wait::deadline_ms;
use portfilter_bindings::{
    FILTER_HEADER_SIZE, FLT_PORT_FLAG_SYNC_HANDLE, NTSTATUS, STATUS_PENDING,
};
use std::ffi::c_void;
use std::sync::Arc;
use windows_sys::Win32::Foundation::{
    HANDLE, INVALID_HANDLE_VALUE, WAIT_FAILED, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::Security::SECURITY_ATTRIBUTES;
use windows_sys::Win32::Storage::InstallableFileSystems::{
    FILTER_MESSAGE_HEADER, FILTER_REPLY_HEADER,
};
use windows_sys::Win32::System::IO::{OVERLAPPED, OVERLAPPED_ENTRY};
use windows_sys::core::{BOOL, HRESULT};

/// `TRUE`.
pub const TRUE: BOOL = 1;
/// `FALSE`.
pub const FALSE: BOOL = 0;
/// Largest connection context FltLib accepts (the context travels in an EA-like block
/// whose size is a WORD). [re]
pub const MAX_CONNECT_CONTEXT: usize = 0xFFE7;
/// Longest port name accepted (an object name is a UNICODE_STRING: 32767 characters).
const MAX_NAME_CHARS: usize = 32_767;

fn fail(error: u32) -> BOOL {
    last_error::set(error);
    FALSE
}

fn port_of(b: &dyn PortBackend, h: HANDLE) -> Option<Arc<PortHandle>> {
    match handles::get(h, b.current_process()) {
        Some(Object::Port(p)) => Some(p),
        _ => None,
    }
}

fn iocp_of(b: &dyn PortBackend, h: HANDLE) -> Option<Arc<Iocp>> {
    match handles::get(h, b.current_process()) {
        Some(Object::Iocp(i)) => Some(i),
        _ => None,
    }
}

fn event_of(b: &dyn PortBackend, h: HANDLE) -> Option<Arc<UserEvent>> {
    match handles::get(h, b.current_process()) {
        Some(Object::Event(e)) => Some(e),
        _ => None,
    }
}

/// `FilterConnectCommunicationPort`.
pub unsafe fn filter_connect_communication_port(
    b: &dyn PortBackend,
    port_name: *const u16,
    options: u32,
    context: *const c_void,
    size_of_context: u16,
    _security_attributes: *const SECURITY_ATTRIBUTES,
    port: *mut HANDLE,
) -> HRESULT {
    if port.is_null() {
        return E_INVALIDARG_WIN32;
    }
    // SAFETY: `port` is non-null and, per the contract, writable.
    unsafe { port.write(INVALID_HANDLE_VALUE) };
    if port_name.is_null()
        || options & !FLT_PORT_FLAG_SYNC_HANDLE != 0
        || context.is_null() != (size_of_context == 0)
        || usize::from(size_of_context) > MAX_CONNECT_CONTEXT
    {
        return E_INVALIDARG_WIN32;
    }
    let mut name = Vec::new();
    loop {
        // SAFETY: the name is a NUL-terminated string (contract); bounded by MAX_NAME_CHARS.
        let c = unsafe { port_name.add(name.len()).read() };
        if c == 0 {
            break;
        }
        if name.len() == MAX_NAME_CHARS {
            return E_INVALIDARG_WIN32;
        }
        name.push(c);
    }
    let ctx = if size_of_context == 0 {
        Vec::new()
    } else {
        // SAFETY: non-null context of `size_of_context` bytes (contract).
        unsafe { std::slice::from_raw_parts(context.cast::<u8>(), usize::from(size_of_context)) }
            .to_vec()
    };
    match b.connect(&name, options, &ctx) {
        Ok(conn) => {
            let h = handles::insert(
                b.current_process(),
                Object::Port(Arc::new(PortHandle::new(
                    conn,
                    options & FLT_PORT_FLAG_SYNC_HANDLE != 0,
                ))),
            );
            // SAFETY: checked non-null above.
            unsafe { port.write(h) };
            S_OK
        }
        Err(status) => hresult_from_ntstatus(status),
    }
}

/// `FilterGetMessage`.
pub unsafe fn filter_get_message(
    b: &dyn PortBackend,
    port: HANDLE,
    message_buffer: *mut FILTER_MESSAGE_HEADER,
    message_buffer_size: u32,
    overlapped: *mut OVERLAPPED,
) -> HRESULT {
    let Some(p) = port_of(b, port) else {
        return E_HANDLE_WIN32;
    };
    if message_buffer.is_null() || message_buffer_size == 0 {
        return E_INVALIDARG_WIN32;
    }
    // A synchronous handle: every I/O call on it waits for the one in progress, and this
    // one holds the handle until it returns (docs/port-semantics.md, "Handle kinds").
    let _serialized = p.serialize();
    // Completions on the handle before this call do not wake it: the I/O manager clears
    // the file object's event when an I/O starts.
    let completions_before = p.completions.count();
    let synchronous = p.sync || overlapped.is_null();
    let mut notify = Notify {
        overlapped: overlapped as usize,
        ..Notify::default()
    };
    if !overlapped.is_null() {
        // SAFETY: a non-null OVERLAPPED the caller owns (contract).
        let h_event = unsafe { (*overlapped).hEvent };
        let skip_port = (h_event as usize) & 1 == 1;
        let event_handle = ((h_event as usize) & !1) as HANDLE;
        if !event_handle.is_null() {
            let Some(ev) = event_of(b, event_handle) else {
                return E_HANDLE_WIN32;
            };
            ev.reset();
            notify.event = Some(ev);
        }
        if !synchronous && !skip_port {
            notify.iocp.clone_from(&p.binding.lock());
        }
        // SAFETY: as above.
        #[allow(clippy::cast_sign_loss)]
        unsafe {
            crate::overlapped::start(overlapped, STATUS_PENDING as usize);
        }
    }
    let slot = RequestSlot::new(message_buffer.cast::<u8>(), message_buffer_size, notify);
    let weak = Arc::downgrade(&p);
    slot.set_on_done(Box::new(move |id| {
        if let Some(p) = weak.upgrade() {
            p.pending.lock().retain(|s| s.id != id);
            p.completions.signal();
        }
    }));
    p.pending.lock().push(slot.clone());
    if let Err((request, status)) = p.conn.get_message(GetRequest::new(slot.clone())) {
        drop(request.discard());
        p.pending.lock().retain(|s| s.id != slot.id);
        p.completions.signal();
        if !overlapped.is_null() {
            // SAFETY: as above.
            #[allow(clippy::cast_sign_loss)]
            unsafe {
                crate::overlapped::complete(overlapped, status as u32 as usize, 0);
            }
        }
        return hresult_from_ntstatus(status);
    }
    if !synchronous {
        return E_IO_PENDING;
    }
    if overlapped.is_null() && !p.sync {
        // No OVERLAPPED on an overlapped handle: kernel32 waits on the file handle, which
        // every I/O completing on the handle signals (a reply, a command, another get).
        // Woken by another thread's I/O, the call returns although its own request is
        // still queued: the caller sees success and an unwritten buffer, and the kernel
        // writes the message into that memory later. [doc][re] The status it returns
        // then is read from an I/O status block nobody wrote yet; the model returns S_OK,
        // the reading that hurts most (the caller decodes whatever the buffer held). [inf]
        let own = slot.clone();
        if !p
            .completions
            .wait(completions_before, move || own.result().is_some())
        {
            b.report_violation(
                crate::rule::NULL_OVERLAPPED_GET_WOKEN_EARLY,
                format!(
                    "handle {:#x}: FilterGetMessage(buffer {:#x}, {} bytes, NULL OVERLAPPED) \
                     returned S_OK before its message arrived; pass an OVERLAPPED with its \
                     own event on handles opened without FLT_PORT_FLAG_SYNC_HANDLE",
                    port as usize, message_buffer as usize, message_buffer_size
                ),
            );
            return S_OK;
        }
    }
    let (status, _) = slot.wait();
    hresult_from_ntstatus(status)
}

/// `FilterReplyMessage`.
pub unsafe fn filter_reply_message(
    b: &dyn PortBackend,
    port: HANDLE,
    reply_buffer: *const FILTER_REPLY_HEADER,
    reply_buffer_size: u32,
) -> HRESULT {
    let Some(p) = port_of(b, port) else {
        return E_HANDLE_WIN32;
    };
    if reply_buffer.is_null() || (reply_buffer_size as usize) < FILTER_HEADER_SIZE {
        return E_INVALIDARG_WIN32;
    }
    // SAFETY: the caller's reply buffer of `reply_buffer_size` bytes (contract); this is
    // user mode reading its own memory.
    let data = unsafe {
        std::slice::from_raw_parts(reply_buffer.cast::<u8>(), reply_buffer_size as usize)
    };
    let status = {
        let _serialized = p.serialize();
        p.conn.reply(data)
    };
    p.completions.signal();
    hresult_from_ntstatus(status)
}

/// `FilterSendMessage`.
pub unsafe fn filter_send_message(
    b: &dyn PortBackend,
    port: HANDLE,
    in_buffer: *const c_void,
    in_buffer_size: u32,
    out_buffer: *mut c_void,
    out_buffer_size: u32,
    bytes_returned: *mut u32,
) -> HRESULT {
    let Some(p) = port_of(b, port) else {
        return E_HANDLE_WIN32;
    };
    if bytes_returned.is_null() {
        return E_INVALIDARG_WIN32;
    }
    // SAFETY: non-null out parameter (contract).
    unsafe { bytes_returned.write(0) };
    let mut returned = 0u32;
    let serialized = p.serialize();
    // SAFETY: raw caller buffers forwarded; the backend only accesses them fault-tolerantly.
    let status = unsafe {
        p.conn.send(
            in_buffer,
            in_buffer_size,
            out_buffer,
            out_buffer_size,
            &mut returned,
        )
    };
    drop(serialized);
    p.completions.signal();
    // SAFETY: as above.
    unsafe { bytes_returned.write(returned) };
    hresult_from_ntstatus(status)
}

/// `CloseHandle`: the last handle of a port connection disconnects it.
pub fn close_handle(b: &dyn PortBackend, object: HANDLE) -> BOOL {
    match handles::remove(object, b.current_process()) {
        Some(o) => {
            handles::close_object(o);
            TRUE
        }
        None => fail(win32::INVALID_HANDLE),
    }
}

/// `CreateIoCompletionPort`.
pub fn create_io_completion_port(
    b: &dyn PortBackend,
    file_handle: HANDLE,
    existing_completion_port: HANDLE,
    completion_key: usize,
    _number_of_concurrent_threads: u32,
) -> HANDLE {
    let null = std::ptr::null_mut();
    if file_handle == INVALID_HANDLE_VALUE {
        if !existing_completion_port.is_null() {
            last_error::set(win32::INVALID_PARAMETER);
            return null;
        }
        return handles::insert(b.current_process(), Object::Iocp(Arc::new(Iocp::default())));
    }
    let port = match handles::get(file_handle, b.current_process()) {
        Some(Object::Port(p)) => p,
        Some(_) => {
            last_error::set(win32::INVALID_PARAMETER);
            return null;
        }
        None => {
            last_error::set(win32::INVALID_HANDLE);
            return null;
        }
    };
    if port.sync {
        // A synchronous handle cannot be associated with a completion port.
        last_error::set(win32::INVALID_PARAMETER);
        return null;
    }
    let (iocp, handle) = if existing_completion_port.is_null() {
        let iocp = Arc::new(Iocp::default());
        let h = handles::insert(b.current_process(), Object::Iocp(iocp.clone()));
        (iocp, h)
    } else {
        let Some(iocp) = iocp_of(b, existing_completion_port) else {
            last_error::set(win32::INVALID_HANDLE);
            return null;
        };
        (iocp, existing_completion_port)
    };
    let mut binding = port.binding.lock();
    if binding.is_some() {
        drop(binding);
        if existing_completion_port.is_null() {
            let _ = handles::remove(handle, b.current_process());
        }
        last_error::set(win32::INVALID_PARAMETER);
        return null;
    }
    *binding = Some((iocp, completion_key));
    handle
}

fn write_packet(
    packet: &Packet,
    bytes: *mut u32,
    key: *mut usize,
    overlapped: *mut *mut OVERLAPPED,
) -> BOOL {
    // SAFETY: the three out pointers were checked non-null by the caller (contract).
    unsafe {
        bytes.write(packet.bytes);
        key.write(packet.key);
        overlapped.write(packet.overlapped as *mut OVERLAPPED);
    }
    if packet.status >= 0 {
        TRUE
    } else {
        fail(ntstatus_to_win32(packet.status))
    }
}

/// `GetQueuedCompletionStatus`.
pub unsafe fn get_queued_completion_status(
    b: &dyn PortBackend,
    completion_port: HANDLE,
    bytes: *mut u32,
    key: *mut usize,
    overlapped: *mut *mut OVERLAPPED,
    milliseconds: u32,
) -> BOOL {
    if bytes.is_null() || key.is_null() || overlapped.is_null() {
        return fail(win32::INVALID_PARAMETER);
    }
    let Some(iocp) = iocp_of(b, completion_port) else {
        return fail(win32::INVALID_HANDLE);
    };
    match iocp.wait(1, deadline_ms(milliseconds)) {
        Ok(packets) => write_packet(&packets[0], bytes, key, overlapped),
        Err(e) => {
            // SAFETY: checked non-null.
            unsafe { overlapped.write(std::ptr::null_mut()) };
            fail(match e {
                WaitError::Timeout => win32::WAIT_TIMEOUT,
                WaitError::Closed => win32::ABANDONED_WAIT_0,
            })
        }
    }
}

/// `GetQueuedCompletionStatusEx`.
pub unsafe fn get_queued_completion_status_ex(
    b: &dyn PortBackend,
    completion_port: HANDLE,
    entries: *mut OVERLAPPED_ENTRY,
    count: u32,
    removed: *mut u32,
    milliseconds: u32,
    _alertable: BOOL,
) -> BOOL {
    if entries.is_null() || count == 0 || removed.is_null() {
        return fail(win32::INVALID_PARAMETER);
    }
    // SAFETY: non-null out parameter.
    unsafe { removed.write(0) };
    let Some(iocp) = iocp_of(b, completion_port) else {
        return fail(win32::INVALID_HANDLE);
    };
    match iocp.wait(count as usize, deadline_ms(milliseconds)) {
        Ok(packets) => {
            for (i, p) in packets.iter().enumerate() {
                #[allow(clippy::cast_sign_loss)]
                let entry = OVERLAPPED_ENTRY {
                    lpCompletionKey: p.key,
                    lpOverlapped: p.overlapped as *mut OVERLAPPED,
                    Internal: p.status as u32 as usize,
                    dwNumberOfBytesTransferred: p.bytes,
                };
                // SAFETY: `i < count`: the caller's array has `count` entries (contract).
                unsafe { entries.add(i).write(entry) };
            }
            #[allow(clippy::cast_possible_truncation)]
            // SAFETY: non-null out parameter.
            unsafe {
                removed.write(packets.len() as u32);
            }
            TRUE
        }
        Err(WaitError::Timeout) => fail(win32::WAIT_TIMEOUT),
        Err(WaitError::Closed) => fail(win32::ABANDONED_WAIT_0),
    }
}

/// `PostQueuedCompletionStatus`.
pub fn post_queued_completion_status(
    b: &dyn PortBackend,
    completion_port: HANDLE,
    bytes: u32,
    key: usize,
    overlapped: *const OVERLAPPED,
) -> BOOL {
    let Some(iocp) = iocp_of(b, completion_port) else {
        return fail(win32::INVALID_HANDLE);
    };
    iocp.post(Packet {
        bytes,
        key,
        overlapped: overlapped as usize,
        status: 0,
    });
    TRUE
}

/// `CancelIoEx`: cancels the handle's pending requests for `overlapped` (all when null).
pub fn cancel_io_ex(b: &dyn PortBackend, file: HANDLE, overlapped: *const OVERLAPPED) -> BOOL {
    let Some(p) = port_of(b, file) else {
        return fail(win32::INVALID_HANDLE);
    };
    let targets: Vec<Arc<RequestSlot>> = p
        .pending
        .lock()
        .iter()
        .filter(|s| overlapped.is_null() || s.overlapped() == overlapped as usize)
        .cloned()
        .collect();
    let cancelled = targets.iter().filter(|s| p.conn.cancel(s.id)).count();
    if cancelled == 0 {
        fail(win32::NOT_FOUND)
    } else {
        TRUE
    }
}

/// `GetOverlappedResult`, as kernelbase does it [re]: while the request is pending it
/// fails with `ERROR_IO_INCOMPLETE` (no wait) or waits on `OVERLAPPED.hEvent` — or, when
/// there is none, on the file handle, which any I/O completing on the handle signals.
/// After the wait it reports what the OVERLAPPED holds, even if that is still
/// `STATUS_PENDING` (a success code: `TRUE`, 0 bytes) because another I/O woke it: the
/// verifier records that. The handle is only needed for that last kind of wait.
pub unsafe fn get_overlapped_result(
    b: &dyn PortBackend,
    file: HANDLE,
    overlapped: *const OVERLAPPED,
    bytes: *mut u32,
    wait: BOOL,
) -> BOOL {
    if overlapped.is_null() || bytes.is_null() {
        return fail(win32::INVALID_PARAMETER);
    }
    // SAFETY: a live OVERLAPPED of the caller (contract).
    let read_internal = || unsafe { crate::overlapped::status(overlapped) };
    #[allow(clippy::cast_sign_loss)]
    let pending = || read_internal() == STATUS_PENDING as usize;
    if pending() {
        if wait == FALSE {
            return fail(win32::IO_INCOMPLETE);
        }
        // SAFETY: as above.
        let h_event = unsafe { (*overlapped).hEvent };
        // The low bit only keeps a completion off the completion port.
        let event_handle = ((h_event as usize) & !1) as HANDLE;
        if event_handle.is_null() {
            let Some(p) = port_of(b, file) else {
                return fail(win32::INVALID_HANDLE);
            };
            if !p.sync {
                let since = p.completions.count();
                if !p.completions.wait(since, || !pending()) {
                    b.report_violation(
                        crate::rule::NULL_EVENT_RESULT_WOKEN_EARLY,
                        format!(
                            "handle {:#x}: GetOverlappedResult(OVERLAPPED {:#x} without hEvent, \
                             bWait = TRUE) returned while its request was still pending",
                            file as usize, overlapped as usize
                        ),
                    );
                }
            }
        } else {
            let Some(event) = event_of(b, event_handle) else {
                return fail(win32::INVALID_HANDLE);
            };
            let _ = event.wait(None);
        }
    }
    #[allow(clippy::cast_possible_truncation)]
    let status = read_internal() as u32 as NTSTATUS;
    // SAFETY: as above.
    let info = unsafe { crate::overlapped::information(overlapped) };
    #[allow(clippy::cast_possible_truncation)]
    // SAFETY: non-null out parameter.
    unsafe {
        bytes.write(info as u32);
    }
    if status >= 0 {
        TRUE
    } else {
        fail(ntstatus_to_win32(status))
    }
}

/// `CreateEventW` (names are ignored: every event is private).
pub fn create_event_w(
    b: &dyn PortBackend,
    _attributes: *const SECURITY_ATTRIBUTES,
    manual_reset: BOOL,
    initial_state: BOOL,
    _name: *const u16,
) -> HANDLE {
    handles::insert(
        b.current_process(),
        Object::Event(Arc::new(UserEvent::new(
            manual_reset != 0,
            initial_state != 0,
        ))),
    )
}

/// `SetEvent`.
pub fn set_event(b: &dyn PortBackend, event: HANDLE) -> BOOL {
    match event_of(b, event) {
        Some(e) => {
            e.set();
            TRUE
        }
        None => fail(win32::INVALID_HANDLE),
    }
}

/// `ResetEvent`.
pub fn reset_event(b: &dyn PortBackend, event: HANDLE) -> BOOL {
    match event_of(b, event) {
        Some(e) => {
            e.reset();
            TRUE
        }
        None => fail(win32::INVALID_HANDLE),
    }
}

/// `WaitForSingleObject` (events only; other handles give `WAIT_FAILED`).
pub fn wait_for_single_object(b: &dyn PortBackend, handle: HANDLE, milliseconds: u32) -> u32 {
    match event_of(b, handle) {
        Some(e) => {
            if e.wait(deadline_ms(milliseconds)) {
                WAIT_OBJECT_0
            } else {
                WAIT_TIMEOUT
            }
        }
        None => {
            last_error::set(win32::INVALID_HANDLE);
            WAIT_FAILED
        }
    }
}
