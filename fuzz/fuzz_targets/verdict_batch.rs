//! `VerdictBatch` (kind 20) against the real driver with pended creates outstanding.
//!
//! Each input: a fresh machine; the asynchronous decider connects (`CONNECT_FLAG_ASYNC`)
//! and a thread of it takes the request batches; 1..=8 creates start, each on its own
//! thread, and are pended. Then a script of `FilterSendMessage` calls from the decider:
//! raw bytes (any length, any header), or well-formed batches whose entries name
//! sequences that exist, unknown ones, duplicates, and — after a sleep past the short
//! deadline or an earlier verdict — late ones, with any verdict and status values; output
//! buffers of any size. Then the decider disconnects and the driver unloads.
//!
//! Invariants: no panic; every create returns (success or an error status; a deny is
//! never a success); each pended create is completed exactly once (the driver's
//! counters: `async_pended` = applied + deadline/disconnect defaults + cancelled; fltsim's
//! verifier reports a second completion); applied verdicts never exceed the creates;
//! no driver pool left after unload; no verifier finding.
#![no_main]

use fltsim::{CreateRequest, Machine};
use libfuzzer_sys::fuzz_target;
use portfilter_fuzz::{BufferKind, CLIENT_PID, Script, send};
use portfilter_protocol::{
    CONFIG_MAX_BYTES, CONNECT_CONTEXT_BYTES, Command, Config, ConnectContext,
    GET_MESSAGE_BUFFER_BYTES, KernelMessage, MAX_VERDICT_BATCH_BYTES, Role, STATS_BYTES, Stats,
    VERDICT_BATCH_REPLY_BYTES, VerdictBatchReply, VerdictEntry, decode_kernel_message,
    encode_request, encode_verdict_batch, message::split_filter_message,
};
use std::ffi::c_void;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
use windows_sys::Win32::Storage::InstallableFileSystems::{
    FILTER_MESSAGE_HEADER, FilterConnectCommunicationPort, FilterGetMessage,
};
use windows_sys::Win32::System::IO::{
    CreateIoCompletionPort, GetQueuedCompletionStatus, OVERLAPPED,
};

const STATUS_SUCCESS: i32 = 0;
const APP: u32 = 1000;
const MAX_STEPS: usize = 48;

/// A connection in `role` (asynchronous decider when `asynchronous`) as `pid`, on an
/// overlapped handle (the decider's reader has a get pending while verdicts are sent:
/// a synchronous handle would serialise them).
fn connect(pid: u32, role: Role, asynchronous: bool) -> HANDLE {
    let _p = fltsim::process::enter(pid);
    let mut context = [0u8; CONNECT_CONTEXT_BYTES];
    let ctx = if asynchronous {
        ConnectContext::async_decider()
    } else {
        ConnectContext::new(role)
    };
    ctx.encode(&mut context).expect("a context encodes");
    let name = portfilter_fuzz::port_name();
    let mut handle: HANDLE = std::ptr::null_mut();
    // SAFETY: a NUL-terminated name, a context of CONNECT_CONTEXT_BYTES, an out pointer.
    let hr = unsafe {
        FilterConnectCommunicationPort(
            name.as_ptr(),
            0,
            context.as_ptr().cast::<c_void>(),
            CONNECT_CONTEXT_BYTES as u16,
            std::ptr::null(),
            &mut handle,
        )
    };
    assert_eq!(hr, 0, "connect succeeds");
    handle
}

/// A command with `input` on `handle` as `pid`, into an output of `out_len` bytes.
fn command(handle: HANDLE, pid: u32, input: &[u8], out_len: usize) -> (i32, Vec<u8>) {
    let _p = fltsim::process::enter(pid);
    let mut out = vec![0u64; out_len.div_ceil(8).max(1)];
    let mut inp = vec![0u64; input.len().div_ceil(8).max(1)];
    // SAFETY: `inp` holds at least `input.len()` bytes.
    unsafe { std::ptr::copy_nonoverlapping(input.as_ptr(), inp.as_mut_ptr().cast(), input.len()) };
    let mut returned = 0u32;
    // SAFETY: buffers valid for the sizes given.
    let hr = unsafe {
        windows_sys::Win32::Storage::InstallableFileSystems::FilterSendMessage(
            handle,
            inp.as_ptr().cast(),
            input.len() as u32,
            out.as_mut_ptr().cast(),
            out_len as u32,
            &mut returned,
        )
    };
    // SAFETY: `out` holds at least `returned` (≤ out_len) bytes.
    let bytes = unsafe {
        std::slice::from_raw_parts(out.as_ptr().cast::<u8>(), (returned as usize).min(out_len))
    }
    .to_vec();
    (hr, bytes)
}

fn stats(control: HANDLE) -> Stats {
    let mut request = [0u8; 8];
    encode_request(Command::GetStats, &mut request).expect("request encodes");
    let (hr, out) = command(control, CLIENT_PID + 1, &request, STATS_BYTES);
    assert_eq!((hr, out.len()), (0, STATS_BYTES), "GetStats");
    Stats::decode(&out).expect("stats decode")
}

/// The decider's reader: overlapped gets completed through a completion port, until the
/// connection ends, recording each pended create's sequence.
fn reader(handle: usize, seen: Arc<Mutex<Vec<u64>>>) {
    const E_IO_PENDING: i32 = 0x8007_03E5_u32 as i32;
    let _p = fltsim::process::enter(CLIENT_PID);
    let handle = handle as HANDLE;
    // SAFETY: a new completion port bound to our overlapped handle.
    let iocp = unsafe { CreateIoCompletionPort(handle, std::ptr::null_mut(), 1, 0) };
    assert!(!iocp.is_null(), "a completion port");
    let mut buf = vec![0u64; GET_MESSAGE_BUFFER_BYTES.div_ceil(8)];
    loop {
        // SAFETY: zeroes are a valid OVERLAPPED.
        let mut overlapped: Box<OVERLAPPED> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: the buffer and the OVERLAPPED stay alive until the completion is taken
        // below (also when the handle is closed meanwhile: the get completes with an error).
        let hr = unsafe {
            FilterGetMessage(
                handle,
                buf.as_mut_ptr().cast::<FILTER_MESSAGE_HEADER>(),
                GET_MESSAGE_BUFFER_BYTES as u32,
                &mut *overlapped,
            )
        };
        if hr != 0 && hr != E_IO_PENDING {
            break;
        }
        let (mut bytes, mut key) = (0u32, 0usize);
        let mut done: *mut OVERLAPPED = std::ptr::null_mut();
        // SAFETY: our port; out pointers to locals.
        let ok =
            unsafe { GetQueuedCompletionStatus(iocp, &mut bytes, &mut key, &mut done, 30_000) };
        assert!(!done.is_null(), "the get completes within 30 s");
        if ok == 0 {
            break;
        }
        // SAFETY: the buffer's bytes, written by the completed get.
        let bytes = unsafe {
            std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), GET_MESSAGE_BUFFER_BYTES)
        };
        let Ok((_, payload)) = split_filter_message(bytes) else {
            continue;
        };
        if let Ok(KernelMessage::Batch(batch)) = decode_kernel_message(payload) {
            let mut seen = seen.lock().unwrap();
            seen.extend(batch.events().map(|e| e.fields.sequence));
        }
    }
    // SAFETY: our completion port.
    unsafe { CloseHandle(iocp) };
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script::new(data);
    let machine = Machine::boot();
    fltsim::load_driver(portfilter::DriverEntry).expect("DriverEntry succeeds");
    fltsim::process::spawn(CLIENT_PID, "decider.exe", true);
    fltsim::process::spawn(CLIENT_PID + 1, "control.exe", true);
    fltsim::process::spawn(APP, "app.exe", false);
    let control = connect(CLIENT_PID + 1, Role::Control, false);
    // A short deadline (20..=83 ms) so that a sleep in the script makes verdicts late.
    let mut config = Config::default();
    config.reply_timeout_ms = 20 + u32::from(script.byte() % 64);
    let mut bytes = vec![0u8; CONFIG_MAX_BYTES];
    let n = config
        .encode(Command::SetConfig, &mut bytes)
        .expect("config encodes");
    assert_eq!(
        command(control, CLIENT_PID + 1, &bytes[..n], CONFIG_MAX_BYTES).0,
        0,
        "SetConfig"
    );

    let decider = connect(CLIENT_PID, Role::Decider, true);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let seen = Arc::clone(&seen);
        let handle = decider as usize;
        std::thread::spawn(move || reader(handle, seen))
    };
    let creates: Vec<_> = (0..1 + script.byte() % 8)
        .map(|i| {
            let ext = if i % 3 == 0 { "tmp" } else { "txt" };
            let request = CreateRequest::new(&format!(r"C:\fuzz\v{i}.{ext}")).pid(APP);
            std::thread::spawn(move || fltsim::create(&request).status)
        })
        .collect();
    // Let the requests reach the decider (or their deadline pass).
    let wait_until = Instant::now() + Duration::from_millis(200);
    while seen.lock().unwrap().len() < creates.len() && Instant::now() < wait_until {
        std::thread::sleep(Duration::from_micros(200));
    }

    let mut applied_total = 0u64;
    let mut steps = 0;
    while !script.done() && steps < MAX_STEPS {
        steps += 1;
        let op = script.byte();
        let out_len = match script.byte() % 8 {
            0 => 0,
            1 => VERDICT_BATCH_REPLY_BYTES - 1,
            2 => VERDICT_BATCH_REPLY_BYTES + 8,
            _ => VERDICT_BATCH_REPLY_BYTES,
        };
        match op % 4 {
            // Raw bytes, any header and length.
            0 => {
                let len = usize::from(script.byte()) * 2;
                let input = script.bytes(len);
                let _p = fltsim::process::enter(CLIENT_PID);
                let kind = BufferKind::from_bits(op, 0x40, 0x80);
                let _ = send(decider, &input, kind, out_len, BufferKind::Valid);
            }
            // A well-formed batch: known, unknown and duplicate sequences, any values.
            1 | 2 => {
                let known = seen.lock().unwrap().clone();
                let count = 1 + usize::from(script.byte() % 12);
                let entries: Vec<VerdictEntry> = (0..count)
                    .map(|_| {
                        let pick = script.byte();
                        let sequence = match pick % 4 {
                            0 | 1 if !known.is_empty() => {
                                known[usize::from(pick >> 2) % known.len()]
                            }
                            2 => u64::from(script.u32()),
                            _ => u64::from(pick >> 2),
                        };
                        let values = script.byte();
                        VerdictEntry {
                            sequence,
                            verdict: u32::from(values % 3),
                            status: match (values >> 2) % 4 {
                                0 => 0,
                                1 => 0xC000_0022_u32.cast_signed(),
                                2 => 0x4000_0000,
                                _ => script.u32().cast_signed(),
                            },
                        }
                    })
                    .collect();
                let mut input = vec![0u8; MAX_VERDICT_BATCH_BYTES];
                let n = encode_verdict_batch(&entries, &mut input).expect("1..=12 entries encode");
                let (hr, out) = command(decider, CLIENT_PID, &input[..n], out_len);
                if hr == 0 {
                    let reply =
                        VerdictBatchReply::decode(&out).expect("a success carries the answer");
                    let sum = reply.applied
                        + reply.late
                        + reply.unknown
                        + reply.invalid
                        + reply.duplicate;
                    assert_eq!(
                        sum as usize,
                        entries.len(),
                        "every entry accounted for: {reply:?}"
                    );
                    applied_total += u64::from(reply.applied);
                } else {
                    assert!(
                        out_len < VERDICT_BATCH_REPLY_BYTES,
                        "a well-formed batch failed: {hr:#x}"
                    );
                }
            }
            // Let deadlines pass: later verdicts are late.
            _ => std::thread::sleep(Duration::from_millis(u64::from(script.byte() % 32))),
        }
    }

    // The decider goes: what is still pended gets the default verdict.
    // SAFETY: our handle; the reader's FilterGetMessage ends with an error.
    unsafe { CloseHandle(decider) };
    reader.join().expect("reader thread");
    let deadline = Instant::now() + Duration::from_secs(30);
    let n_creates = creates.len() as u64;
    for create in creates {
        while !create.is_finished() {
            assert!(Instant::now() < deadline, "a create did not complete");
            std::thread::sleep(Duration::from_millis(1));
        }
        let status = create.join().expect("create thread");
        assert!(
            status == STATUS_SUCCESS || status < 0,
            "create ended with {status:#x}"
        );
    }
    let s = stats(control);
    assert_eq!(
        s.verdicts_applied, applied_total,
        "applied as answered: {s:?}"
    );
    assert!(s.async_pended <= n_creates, "{s:?}");
    assert_eq!(
        s.async_pended,
        s.verdicts_applied + s.async_deadline_defaults + s.async_cancelled,
        "each pended create completed exactly once: {s:?}"
    );
    // SAFETY: our handle.
    unsafe { CloseHandle(control) };
    fltsim::unload_driver().expect("unload succeeds");
    assert_eq!(
        fltsim::kernel::pool::live_bytes(portfilter::POOL_TAG),
        0,
        "driver pool left after unload: {:?}",
        fltsim::kernel::pool::outstanding()
    );
    let violations = machine.shutdown();
    assert!(violations.is_empty(), "verifier: {violations:?}");
});
