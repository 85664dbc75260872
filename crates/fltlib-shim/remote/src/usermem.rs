//! Fault-tolerant access to the calling process's own memory.
//!
//! `FilterSendMessage` hands the shim raw caller pointers that may be invalid. Reading
//! or writing them directly would crash the client on a bad pointer, where Windows
//! would hand the driver a buffer whose access fails cleanly. `process_vm_readv` /
//! `process_vm_writev` on our own pid copy through the kernel and report `EFAULT`
//! instead of faulting.

use std::ffi::c_void;

fn self_pid() -> libc::pid_t {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

/// Copies `len` bytes at `addr` (any address) into a new buffer; `None` when any byte
/// of the range is not readable.
#[must_use]
pub fn read(addr: *const c_void, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    if len == 0 {
        return Some(buf);
    }
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: addr.cast_mut(),
        iov_len: len,
    };
    // SAFETY: `local` describes our own buffer of `len` bytes; the remote range is only
    // accessed by the kernel, which fails with EFAULT instead of faulting.
    let n =
        unsafe { libc::process_vm_readv(self_pid(), &raw const local, 1, &raw const remote, 1, 0) };
    (usize::try_from(n).ok() == Some(len)).then_some(buf)
}

/// Copies `data` to `addr` (any address); false when any byte of the range is not
/// writable (a prefix may have been written).
#[must_use]
pub fn write(addr: *mut c_void, data: &[u8]) -> bool {
    if data.is_empty() {
        return true;
    }
    let local = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: addr,
        iov_len: data.len(),
    };
    // SAFETY: `local` describes `data` (only read); the remote range is only accessed by
    // the kernel, which fails with EFAULT instead of faulting.
    let n = unsafe {
        libc::process_vm_writev(self_pid(), &raw const local, 1, &raw const remote, 1, 0)
    };
    usize::try_from(n).ok() == Some(data.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_valid_memory() {
        let mut target = [1u8, 2, 3, 4];
        assert_eq!(read(target.as_ptr().cast(), 4).unwrap(), vec![1, 2, 3, 4]);
        assert!(write(target.as_mut_ptr().cast(), &[9, 8]));
        assert_eq!(target, [9, 8, 3, 4]);
    }

    #[test]
    fn bad_pointers_fail_cleanly() {
        assert!(read(8 as *const c_void, 16).is_none());
        assert!(!write(8 as *mut c_void, &[1, 2]));
        // A zero-length access never touches memory.
        assert_eq!(read(8 as *const c_void, 0).unwrap(), Vec::<u8>::new());
    }
}
