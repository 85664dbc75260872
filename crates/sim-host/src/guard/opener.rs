//! Who opened: the thread fanotify reports (`FAN_REPORT_TID`), its process (`Tgid` in
//! `/proc/TID/status`) and its open flags (the arguments of the system call it is blocked
//! in, `/proc/TID/syscall`). Each read may fail — the thread exited, or `/proc` refuses
//! (another user's process without `CAP_SYS_PTRACE`) — and then falls back (pid = tid,
//! flags unknown) and is counted by the caller.

use super::mapping::OpenFlags;

/// Whether thread `tid` belongs to this process.
#[must_use]
pub fn is_own_thread(tid: u32) -> bool {
    tid == std::process::id() || std::fs::metadata(format!("/proc/self/task/{tid}")).is_ok()
}

/// The process of thread `tid`, if `/proc` tells.
#[must_use]
pub fn tgid(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    parse_tgid(&status)
}

fn parse_tgid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The open flags of the system call thread `tid` is blocked in, if `/proc` tells.
#[must_use]
pub fn open_flags(tid: u32) -> Option<OpenFlags> {
    let line = std::fs::read_to_string(format!("/proc/{tid}/syscall")).ok()?;
    Some(parse_syscall(&line))
}

/// Parses `/proc/TID/syscall`: `NR arg0 … arg5 sp pc` (hex arguments), `running`, or `-1 sp pc`.
#[must_use]
pub fn parse_syscall(line: &str) -> OpenFlags {
    let mut parts = line.split_whitespace();
    let Some(nr) = parts.next().and_then(|n| n.parse::<libc::c_long>().ok()) else {
        return OpenFlags::Unknown;
    };
    let args: Vec<u64> = parts
        .take(6)
        .filter_map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
        .collect();
    let arg = |i: usize| {
        args.get(i)
            // The flags are an int: the low 32 bits of the register.
            .map(|&v| i32::from_ne_bytes(((v & 0xFFFF_FFFF) as u32).to_ne_bytes()))
    };
    match nr {
        libc::SYS_openat => arg(2).map_or(OpenFlags::Unknown, OpenFlags::Open),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_open => arg(1).map_or(OpenFlags::Unknown, OpenFlags::Open),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_creat => OpenFlags::Open(libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC),
        libc::SYS_execve | libc::SYS_execveat => OpenFlags::Exec,
        _ => OpenFlags::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tgid_is_parsed_from_status() {
        assert_eq!(
            parse_tgid("Name:\tcat\nTgid:\t4242\nPid:\t4243\n"),
            Some(4242)
        );
        assert_eq!(parse_tgid("Name:\tcat\n"), None);
        assert_eq!(tgid(std::process::id()), Some(std::process::id()));
    }

    #[test]
    fn openat_flags_are_the_third_argument() {
        let line = format!(
            "{} 0xffffff9c 0x7ffc6b1a0f50 {:#x} 0x1b6 0x0 0x0 0x7ffc6b1a0e08 0x7f0e1c2f",
            libc::SYS_openat,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC
        );
        assert_eq!(
            parse_syscall(&line),
            OpenFlags::Open(libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)
        );
        assert_eq!(parse_syscall("running"), OpenFlags::Unknown);
        assert_eq!(parse_syscall("-1 0x7ffc 0x7f0e"), OpenFlags::Unknown);
        assert_eq!(
            parse_syscall(&format!(
                "{} 0x0 0x0 0x0 0x0 0x0 0x0 0x0 0x0",
                libc::SYS_execve
            )),
            OpenFlags::Exec
        );
        assert_eq!(parse_syscall(""), OpenFlags::Unknown);
    }

    #[test]
    fn own_threads_are_recognised() {
        assert!(is_own_thread(std::process::id()));
        assert!(!is_own_thread(1), "init is not this test");
    }
}
