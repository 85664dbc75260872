//! `DbgPrint`, captured: every line the driver prints is kept for tests
//! ([`lines`]) and echoed to stderr when `FLTSIM_LOG=1`.
//!
//! `DbgPrint` is variadic in C. Defining a variadic function is unstable in Rust, so
//! fltsim defines it with three fixed pointer-sized arguments after the format. On x86-64
//! (System V and Windows alike) a variadic call passes its first arguments in the same
//! registers as a fixed-argument call, so up to three arguments arrive intact.
//! Supported conversions: `%s` (NUL-terminated 8-bit string) and `%%`. Any other
//! conversion is printed literally and consumes no argument. portfilter only ever calls
//! `DbgPrint("%s", line)`.

use parking_lot::Mutex;
use std::ffi::{CStr, c_char};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Longest format or `%s` argument read (bytes).
const MAX_STRING: usize = 4096;

/// Every line printed since the machine booted (or since [`clear`]).
#[must_use]
pub fn lines() -> Vec<String> {
    LINES.lock().clone()
}

/// Whether any printed line contains `needle`.
#[must_use]
pub fn contains(needle: &str) -> bool {
    LINES.lock().iter().any(|l| l.contains(needle))
}

/// Forgets the captured lines.
pub fn clear() {
    LINES.lock().clear();
}

/// Records text as if printed by the kernel (one entry per line).
pub fn record(text: &str) {
    let echo = std::env::var_os("FLTSIM_LOG").is_some_and(|v| v == "1");
    let mut lines = LINES.lock();
    for line in text.split_terminator('\n') {
        let line = line.trim_end_matches('\r');
        if echo {
            eprintln!("[kd] {line}");
        }
        lines.push(line.to_owned());
    }
}

/// Reads a C string of at most [`MAX_STRING`] bytes.
///
/// # Safety
/// `p` is null or points to readable bytes up to a NUL or [`MAX_STRING`] bytes.
unsafe fn read_c(p: *const u8) -> String {
    if p.is_null() {
        return "(null)".to_owned();
    }
    let mut bytes = Vec::new();
    for i in 0..MAX_STRING {
        // SAFETY: per the function's contract, readable up to the NUL.
        let b = unsafe { p.add(i).read() };
        if b == 0 {
            break;
        }
        bytes.push(b);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Formats `%s`/`%%` with up to three arguments.
///
/// # Safety
/// `fmt` and every `%s` argument are readable C strings (or null).
unsafe fn format(fmt: *const u8, args: [usize; 3]) -> String {
    // SAFETY: caller's contract.
    let f = unsafe { read_c(fmt) };
    let mut out = String::new();
    let mut next = args.iter();
    let mut chars = f.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('%') => {
                chars.next();
                out.push('%');
            }
            Some('s') => {
                chars.next();
                let arg = next.next().copied().unwrap_or(0);
                // SAFETY: caller's contract (a `%s` argument is a C string).
                out.push_str(&unsafe { read_c(arg as *const u8) });
            }
            _ => out.push('%'),
        }
    }
    out
}

/// `DbgPrint` (see the module documentation for the argument convention).
///
/// # Safety
/// `format` is a NUL-terminated string; each `%s` has a matching C-string argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn DbgPrint(format: *const c_char, a1: usize, a2: usize, a3: usize) -> u32 {
    // SAFETY: the caller's contract.
    let text = unsafe { self::format(format.cast(), [a1, a2, a3]) };
    record(&text);
    0
}

/// Formats like `DbgPrint` would, for tests of the formatter.
#[must_use]
pub fn format_for_test(fmt: &CStr, args: &[&CStr]) -> String {
    let mut a = [0usize; 3];
    for (slot, s) in a.iter_mut().zip(args) {
        *slot = s.as_ptr() as usize;
    }
    // SAFETY: all strings are valid CStrs.
    unsafe { format(fmt.as_ptr().cast(), a) }
}

pub(crate) fn reset() {
    clear();
}
