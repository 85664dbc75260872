//! Test support (host builds only): checks inside a `std::thread::scope` whose other
//! threads may be blocked for ever by the failure being reported (a swap waiting for
//! readers that never leave, a closer waiting for a port that never closes). A plain
//! `assert!` would unwind into the scope, which joins those threads and hangs the test;
//! these report the failure and abort the test process instead, so that it fails at once.

/// Like `assert!`, but aborts the process (after printing the message) instead of
/// unwinding.
macro_rules! check_or_abort {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            std::eprintln!(
                "{}:{}: check failed: {}: {}",
                file!(),
                line!(),
                stringify!($cond),
                std::format!($($msg)+)
            );
            std::process::abort();
        }
    };
}
pub(crate) use check_or_abort;
