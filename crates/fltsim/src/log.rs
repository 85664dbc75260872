//! `DbgPrintEx` (and `DbgPrint`), captured: every line the driver prints is kept for
//! tests with its component and level ([`entries`], [`lines`]) and echoed to stderr when
//! `FLTSIM_LOG=1`.
//!
//! Filtering as on Windows Vista and later [doc: "Reading and filtering debugging
//! messages"]: a message reaches an attached kernel debugger only if its importance
//! bitfield (`1 << Level` for levels 0..=31, else `Level` itself) ANDed with the
//! component's filter mask is non-zero; every mask is ORed with the system-wide WIN2000
//! mask, 0x1 by default, and no component mask is set by default — so by default only
//! `DPFLTR_ERROR_LEVEL` messages show. `DbgPrint` counts as component `DEFAULT`, level
//! `DPFLTR_INFO_LEVEL`, and therefore does not show by default. [`Entry::shown_by_default`]
//! applies that rule.
//!
//! `DbgPrint`/`DbgPrintEx` are variadic in C. Defining a variadic function is unstable in
//! Rust, so fltsim defines them with three fixed pointer-sized arguments after the format.
//! On x86-64 (System V and Windows alike) a variadic call passes its first arguments in
//! the same registers as a fixed-argument call (`DbgPrintEx` has three fixed parameters
//! before them, so its first variadic argument is the fourth register argument), so up to
//! three (`DbgPrint`) or one (`DbgPrintEx`) arguments arrive intact. Supported conversions:
//! `%s` (NUL-terminated 8-bit string) and `%%`. Any other conversion is printed literally
//! and consumes no argument. portfilter only ever calls `DbgPrintEx(77, level, "%s", line)`.

use parking_lot::Mutex;
use std::ffi::{CStr, c_char};

/// `DPFLTR_DEFAULT_ID`: the component of `DbgPrint` messages.
pub const DPFLTR_DEFAULT_ID: u32 = 101;
/// `DPFLTR_INFO_LEVEL`: the level of `DbgPrint` messages.
pub const DPFLTR_INFO_LEVEL: u32 = 3;
/// The WIN2000 system-wide mask's default: every component's effective mask.
const DEFAULT_WIN2000_MASK: u32 = 0x1;

/// One printed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `ComponentId` (`DPFLTR_*_ID`).
    pub component: u32,
    /// `Level` (`DPFLTR_*_LEVEL`, or an importance bitfield ≥ 32).
    pub level: u32,
    /// The formatted text, without the line break.
    pub text: String,
}

impl Entry {
    /// The importance bitfield of the level.
    #[must_use]
    pub const fn importance(&self) -> u32 {
        if self.level < 32 {
            1 << self.level
        } else {
            self.level
        }
    }

    /// Whether Windows (Vista and later) sends it to an attached kernel debugger with the
    /// default filter masks (no `Debug Print Filter` registry values): only
    /// `DPFLTR_ERROR_LEVEL` messages.
    #[must_use]
    pub const fn shown_by_default(&self) -> bool {
        self.importance() & DEFAULT_WIN2000_MASK != 0
    }
}

static LINES: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// Lines kept at most: a machine that runs for long (`portfilter-sim serve`, a fuzzing
/// process that reuses one machine for millions of inputs) would otherwise grow without
/// bound, one entry per configuration change or connection. When full, the older half is
/// forgotten ([`dropped`] counts them), as a debugger's buffer wraps.
pub const MAX_LINES: usize = 100_000;

static DROPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many of the oldest lines were forgotten to keep at most [`MAX_LINES`] (since the
/// process started).
#[must_use]
pub fn dropped() -> u64 {
    DROPPED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Longest format or `%s` argument read (bytes).
const MAX_STRING: usize = 4096;

/// The text of every line printed since the machine booted (or since [`clear`]).
#[must_use]
pub fn lines() -> Vec<String> {
    LINES.lock().iter().map(|e| e.text.clone()).collect()
}

/// Every line printed since the machine booted (or since [`clear`]), with its component
/// and level.
#[must_use]
pub fn entries() -> Vec<Entry> {
    LINES.lock().clone()
}

/// Whether any printed line contains `needle`.
#[must_use]
pub fn contains(needle: &str) -> bool {
    LINES.lock().iter().any(|l| l.text.contains(needle))
}

/// Forgets the captured lines.
pub fn clear() {
    LINES.lock().clear();
}

/// Records text as if printed by the kernel with `DbgPrint` (one entry per line).
pub fn record(text: &str) {
    record_as(DPFLTR_DEFAULT_ID, DPFLTR_INFO_LEVEL, text);
}

/// Records text as if printed with `DbgPrintEx(component, level, …)`.
pub fn record_as(component: u32, level: u32, text: &str) {
    let echo = std::env::var_os("FLTSIM_LOG").is_some_and(|v| v == "1");
    let mut lines = LINES.lock();
    for line in text.split_terminator('\n') {
        let line = line.trim_end_matches('\r');
        if echo {
            eprintln!("[kd {component}/{level}] {line}");
        }
        if lines.len() >= MAX_LINES {
            let old = MAX_LINES / 2;
            lines.drain(..old);
            DROPPED.fetch_add(old as u64, std::sync::atomic::Ordering::Relaxed);
        }
        lines.push(Entry {
            component,
            level,
            text: line.to_owned(),
        });
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
    record_as(DPFLTR_DEFAULT_ID, DPFLTR_INFO_LEVEL, &text);
    0
}

/// `DbgPrintEx` (see the module documentation for the argument convention).
///
/// # Safety
/// `format` is a NUL-terminated string; each `%s` has a matching C-string argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn DbgPrintEx(
    component_id: u32,
    level: u32,
    format: *const c_char,
    a1: usize,
) -> u32 {
    // SAFETY: the caller's contract.
    let text = unsafe { self::format(format.cast(), [a1, 0, 0]) };
    record_as(component_id, level, &text);
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
