//! Thin wrappers over the Win32 functions the client calls (windows-sys declarations).
//!
//! On Windows they resolve to `FltLib.dll` and `kernel32.dll`; elsewhere they are plain
//! external symbols that exactly one provider in the final binary defines: `fltsim`
//! (in-process, tests) or `fltlib-shim` (socket to `portfilter-sim`). Each wrapper makes
//! one Win32 call and turns its result into a `Result` with an [`Hresult`].

use crate::hresult::Hresult;
use std::ffi::c_void;
use std::ptr::{null, null_mut};
use windows_sys::Win32::Foundation::WAIT_OBJECT_0;
use windows_sys::Win32::Foundation::{CloseHandle, GetLastError, HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::Storage::InstallableFileSystems::{
    FILTER_MESSAGE_HEADER, FILTER_REPLY_HEADER, FilterConnectCommunicationPort, FilterGetMessage,
    FilterReplyMessage, FilterSendMessage,
};
use windows_sys::Win32::System::IO::{
    CancelIoEx, CreateIoCompletionPort, GetOverlappedResult, GetQueuedCompletionStatus, OVERLAPPED,
    PostQueuedCompletionStatus,
};
use windows_sys::Win32::System::Threading::{CreateEventW, INFINITE, WaitForSingleObject};

/// `WAIT_TIMEOUT`: what `GetLastError` says after a timed-out completion wait.
const WAIT_TIMEOUT: u32 = 258;
/// `ERROR_NOT_FOUND`: `CancelIoEx` found nothing to cancel.
const ERROR_NOT_FOUND: u32 = 1168;

/// The calling thread's last Win32 error as an HRESULT.
fn last_error() -> Hresult {
    // SAFETY: GetLastError has no preconditions.
    Hresult::from_win32(unsafe { GetLastError() })
}

/// A kernel handle closed on drop.
#[derive(Debug)]
pub(crate) struct OwnedHandle(HANDLE);

// SAFETY: a handle is a process-wide value; every function called with it here may be
// called from any thread.
unsafe impl Send for OwnedHandle {}
// SAFETY: as above; the functions used through `&OwnedHandle` are thread-safe in Win32.
unsafe impl Sync for OwnedHandle {}

impl OwnedHandle {
    pub(crate) fn raw(&self) -> HANDLE {
        self.0
    }
}

impl Drop for OwnedHandle {
    fn drop(&mut self) {
        // SAFETY: the handle is owned by this value and closed once.
        if unsafe { CloseHandle(self.0) } == 0 {
            tracing::warn!(error = %last_error(), "CloseHandle failed");
        }
    }
}

/// `FilterConnectCommunicationPort(name, options, context)`.
pub(crate) fn connect(name: &str, options: u32, context: &[u8]) -> Result<OwnedHandle, Hresult> {
    let wide: Vec<u16> = name.encode_utf16().chain(std::iter::once(0)).collect();
    let size = u16::try_from(context.len()).map_err(|_| Hresult::INVALID_ARG)?;
    let context_ptr = if context.is_empty() {
        null()
    } else {
        context.as_ptr().cast::<c_void>()
    };
    let mut port: HANDLE = INVALID_HANDLE_VALUE;
    // SAFETY: `wide` is NUL-terminated, `context` is valid for `size` bytes, `port` is a
    // valid out pointer; all outlive the call.
    let hr = Hresult(unsafe {
        FilterConnectCommunicationPort(
            wide.as_ptr(),
            options,
            context_ptr,
            size,
            null(),
            &raw mut port,
        )
    });
    if hr.is_ok() && port != INVALID_HANDLE_VALUE && !port.is_null() {
        Ok(OwnedHandle(port))
    } else if hr.is_ok() {
        Err(Hresult::INVALID_HANDLE)
    } else {
        Err(hr)
    }
}

/// A message buffer aligned for `FILTER_MESSAGE_HEADER` (8 bytes).
pub(crate) struct AlignedBuffer {
    words: Box<[u64]>,
}

impl AlignedBuffer {
    /// A zeroed buffer of at least `bytes` bytes (rounded up to 8).
    pub(crate) fn new(bytes: usize) -> Self {
        Self {
            words: vec![0u64; bytes.div_ceil(8)].into_boxed_slice(),
        }
    }

    /// Capacity in bytes.
    pub(crate) fn len(&self) -> usize {
        self.words.len() * 8
    }

    /// The bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: the u64 slice is valid for `len()` bytes, u8 has no alignment or validity
        // requirement, and the borrow of `self` keeps it alive and unaliased mutably.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len()) }
    }

    /// The bytes, writable.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as `bytes`, with the unique borrow of `self`.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.len()) }
    }

    /// Pointer for the kernel to write a message into.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.words.as_mut_ptr().cast::<u8>()
    }
}

impl std::fmt::Debug for AlignedBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuffer({} bytes)", self.len())
    }
}

/// Buffer size as the `u32` Win32 wants (saturating: a buffer is never near 4 GiB here).
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// A manual-reset event, not signalled (`CreateEventW`).
pub(crate) fn create_event() -> Result<OwnedHandle, Hresult> {
    // SAFETY: no security attributes, no name; the handle is owned by the result.
    let event = unsafe { CreateEventW(null(), 1, 0, null()) };
    if event.is_null() {
        Err(last_error())
    } else {
        Ok(OwnedHandle(event))
    }
}

/// `FilterGetMessage` into `buffer`, blocking until the message arrives or the request
/// fails.
///
/// On a synchronous handle (`FLT_PORT_FLAG_SYNC_HANDLE`, `event` is `None`) the call
/// passes no OVERLAPPED: the I/O manager completes it before it returns.
///
/// On an overlapped handle a NULL OVERLAPPED would make kernel32 wait on the file handle,
/// which any other I/O completing on the handle signals — a reply or a command from
/// another thread would end the wait before the message arrived, and the kernel would
/// write it into `buffer` later (docs/port-semantics.md, "Handle kinds"). So the request
/// gets an OVERLAPPED of its own, on this stack frame, with `event` (reset by the I/O
/// manager when the request starts; its low bit set so that a completion port bound to
/// the handle gets no packet for it), and the call waits on that event until this
/// request — and only it — completed.
pub(crate) fn get_message(
    port: &OwnedHandle,
    buffer: &mut AlignedBuffer,
    event: Option<&OwnedHandle>,
) -> Result<(), Hresult> {
    let size = len_u32(buffer.len());
    let target = buffer.as_mut_ptr().cast::<FILTER_MESSAGE_HEADER>();
    let Some(event) = event else {
        // SAFETY: the buffer is 8-aligned, writable for `size` bytes and borrowed mutably
        // for the whole call, which a synchronous handle completes before returning.
        let hr = Hresult(unsafe { FilterGetMessage(port.raw(), target, size, null_mut()) });
        return if hr.is_ok() { Ok(()) } else { Err(hr) };
    };
    // SAFETY: OVERLAPPED is plain data; all-zero is its documented initial state.
    let mut overlapped: OVERLAPPED = unsafe { std::mem::zeroed() };
    overlapped.hEvent = (event.raw() as usize | 1) as HANDLE;
    // SAFETY: buffer (8-aligned, `size` bytes) and OVERLAPPED stay valid and unmoved until
    // the request completes: every path below waits for that before returning.
    let hr = Hresult(unsafe { FilterGetMessage(port.raw(), target, size, &raw mut overlapped) });
    if !hr.is_ok() && hr != Hresult::IO_PENDING {
        // Failed at once: no completion will come.
        return Err(hr);
    }
    // SAFETY: a live event handle.
    if unsafe { WaitForSingleObject(event.raw(), INFINITE) } != WAIT_OBJECT_0 {
        // Cannot wait on the event (not with a live event of ours): the request must still
        // not outlive this frame. Cancel it and poll its OVERLAPPED until it completed
        // (HasOverlappedIoCompleted).
        tracing::error!(error = %last_error(), "WaitForSingleObject on the receive event failed");
        // SAFETY: our request's OVERLAPPED, on this frame.
        unsafe { CancelIoEx(port.raw(), &raw const overlapped) };
        // SAFETY: reads our OVERLAPPED, which the kernel writes when the request completes.
        while unsafe { std::ptr::addr_of!(overlapped.Internal).read_volatile() } == STATUS_PENDING {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    let mut bytes = 0u32;
    // SAFETY: our request's OVERLAPPED, completed: without `bWait` this only reads it.
    if unsafe { GetOverlappedResult(port.raw(), &raw const overlapped, &raw mut bytes, 0) } != 0 {
        Ok(())
    } else {
        Err(last_error())
    }
}

/// `STATUS_PENDING` as `OVERLAPPED.Internal` holds it while a request is in progress.
const STATUS_PENDING: usize = 0x103;

/// Overlapped `FilterGetMessage`. Returns the call's HRESULT: `S_OK` or `IO_PENDING` mean
/// the request is queued and completes through the completion port; anything else means
/// it failed at once and no completion will come.
///
/// # Safety
/// `buffer` must be 8-aligned and writable for `size` bytes, and `overlapped` valid,
/// zeroed (or reset) and unmoved, both until the request's completion is dequeued.
pub(crate) unsafe fn get_message_overlapped(
    port: &OwnedHandle,
    buffer: *mut u8,
    size: usize,
    overlapped: *mut OVERLAPPED,
) -> Hresult {
    // SAFETY: forwarded from the caller's contract.
    Hresult(unsafe {
        FilterGetMessage(
            port.raw(),
            buffer.cast::<FILTER_MESSAGE_HEADER>(),
            len_u32(size),
            overlapped,
        )
    })
}

/// A reply buffer: `FILTER_REPLY_HEADER` followed by the payload, 8-aligned.
#[repr(C, align(8))]
pub(crate) struct ReplyBuffer<const N: usize> {
    pub(crate) bytes: [u8; N],
}

/// `FilterReplyMessage` with exactly `len` bytes of `reply` (16-byte header + payload).
pub(crate) fn reply<const N: usize>(
    port: &OwnedHandle,
    reply: &ReplyBuffer<N>,
    len: usize,
) -> Hresult {
    let len = len.min(N);
    // SAFETY: `reply` is 8-aligned, starts with a FILTER_REPLY_HEADER layout and is valid
    // for `len` bytes during the call.
    Hresult(unsafe {
        FilterReplyMessage(
            port.raw(),
            std::ptr::from_ref(reply).cast::<FILTER_REPLY_HEADER>(),
            len_u32(len),
        )
    })
}

/// `FilterSendMessage(input, output)`: returns the HRESULT and `lpBytesReturned`. The
/// count is meaningful only on success: whether a needed size arrives with
/// `ERROR_INSUFFICIENT_BUFFER` is disputed, so callers size the output with
/// `Command::max_output_bytes()` instead of relying on it.
pub(crate) fn send(port: &OwnedHandle, input: &[u8], output: &mut [u8]) -> (Hresult, u32) {
    let mut returned = 0u32;
    // SAFETY: both buffers are valid for their lengths during the call; `returned` is a
    // valid out pointer.
    let hr = Hresult(unsafe {
        FilterSendMessage(
            port.raw(),
            input.as_ptr().cast::<c_void>(),
            len_u32(input.len()),
            output.as_mut_ptr().cast::<c_void>(),
            len_u32(output.len()),
            &raw mut returned,
        )
    });
    (hr, returned)
}

/// A new I/O completion port with `port` bound to it under `key`.
pub(crate) fn create_iocp_for(
    port: &OwnedHandle,
    key: usize,
    threads: u32,
) -> Result<OwnedHandle, Hresult> {
    // SAFETY: `port` is a live handle; a null existing port asks for a new one.
    let iocp = unsafe { CreateIoCompletionPort(port.raw(), null_mut(), key, threads) };
    if iocp.is_null() {
        Err(last_error())
    } else {
        Ok(OwnedHandle(iocp))
    }
}

/// One dequeued completion packet.
#[derive(Debug)]
pub(crate) struct Completion {
    /// Bytes transferred.
    pub(crate) bytes: u32,
    /// The completion key.
    pub(crate) key: usize,
    /// The request's OVERLAPPED (null for posted wake-ups).
    pub(crate) overlapped: *mut OVERLAPPED,
    /// The I/O's failure, if it failed.
    pub(crate) error: Option<Hresult>,
}

/// `GetQueuedCompletionStatus` with a timeout; `Ok(None)` when it timed out.
pub(crate) fn dequeue(iocp: &OwnedHandle, timeout_ms: u32) -> Result<Option<Completion>, Hresult> {
    let mut bytes = 0u32;
    let mut key = 0usize;
    let mut overlapped: *mut OVERLAPPED = null_mut();
    // SAFETY: all out pointers are valid locals.
    let ok = unsafe {
        GetQueuedCompletionStatus(
            iocp.raw(),
            &raw mut bytes,
            &raw mut key,
            &raw mut overlapped,
            timeout_ms,
        )
    };
    if ok != 0 {
        return Ok(Some(Completion {
            bytes,
            key,
            overlapped,
            error: None,
        }));
    }
    let error = last_error();
    if !overlapped.is_null() {
        // A failed I/O was dequeued.
        return Ok(Some(Completion {
            bytes,
            key,
            overlapped,
            error: Some(error),
        }));
    }
    if error == Hresult::from_win32(WAIT_TIMEOUT) {
        Ok(None)
    } else {
        Err(error)
    }
}

/// `PostQueuedCompletionStatus(iocp, 0, key, NULL)`: a wake-up packet.
pub(crate) fn post(iocp: &OwnedHandle, key: usize) -> Result<(), Hresult> {
    // SAFETY: a live completion port; a null OVERLAPPED is allowed.
    if unsafe { PostQueuedCompletionStatus(iocp.raw(), 0, key, null()) } == 0 {
        Err(last_error())
    } else {
        Ok(())
    }
}

/// `CancelIoEx(port, NULL)`: cancels every pending request on the handle. `Ok(false)` when
/// there was nothing to cancel.
pub(crate) fn cancel_all(port: &OwnedHandle) -> Result<bool, Hresult> {
    // SAFETY: a live handle; a null OVERLAPPED means "all requests".
    if unsafe { CancelIoEx(port.raw(), null()) } != 0 {
        return Ok(true);
    }
    let error = last_error();
    if error == Hresult::from_win32(ERROR_NOT_FOUND) {
        Ok(false)
    } else {
        Err(error)
    }
}
