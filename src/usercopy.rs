//! Fault-tolerant copies between kernel buffers and raw user-mode addresses.
//!
//! The driver never forms a Rust reference or slice over a user-mode buffer (DESIGN.md).
//! A user address is kept as a [`UserPtr`] (an address and a length, nothing more), and the
//! only ways to touch it are [`UserPtr::read_into`] and [`UserPtr::write_from`], which go
//! through `PfCopyFromUser` / `PfCopyToUser` (SEH-guarded copies on Windows; fltsim's
//! checked copies on the host).

use core::ffi::c_void;
use portfilter_bindings::{
    NTSTATUS, PfCopyFromUser, PfCopyToUser, STATUS_ACCESS_VIOLATION, STATUS_SUCCESS,
};

/// A user-mode buffer: an address and a length. Never dereferenced directly.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UserPtr {
    addr: usize,
    len: usize,
}

impl UserPtr {
    /// Wraps a raw user address and its length as the Filter Manager passed them.
    pub(crate) fn new(addr: *mut c_void, len: u32) -> Self {
        Self {
            addr: addr as usize,
            len: len as usize,
        }
    }

    /// The address is null.
    pub(crate) fn is_null(&self) -> bool {
        self.addr == 0
    }

    /// The buffer length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the address is a multiple of `align` (a power of two).
    pub(crate) fn is_aligned(&self, align: usize) -> bool {
        self.addr & (align - 1) == 0
    }

    /// Copies the first `dst.len()` bytes of the user buffer into `dst`.
    ///
    /// # Errors
    /// `STATUS_ACCESS_VIOLATION` when `dst` is longer than the user buffer, the address
    /// is null, or the copy faulted (whatever exception code it reported: the command
    /// contract has one status for a bad pointer).
    pub(crate) fn read_into(&self, dst: &mut [u8]) -> Result<(), NTSTATUS> {
        if dst.len() > self.len || self.is_null() {
            return Err(STATUS_ACCESS_VIOLATION);
        }
        // SAFETY: `dst` is a kernel buffer valid for dst.len() bytes; the user address is
        // only handed to the fault-tolerant copy, which probes it.
        let status = unsafe {
            PfCopyFromUser(
                dst.as_mut_ptr().cast::<c_void>(),
                self.addr as *const c_void,
                dst.len(),
            )
        };
        if status == STATUS_SUCCESS {
            Ok(())
        } else {
            Err(STATUS_ACCESS_VIOLATION)
        }
    }

    /// Copies `src` to the start of the user buffer.
    ///
    /// # Errors
    /// `STATUS_ACCESS_VIOLATION` when `src` is longer than the user buffer, the address
    /// is null, or the copy faulted.
    pub(crate) fn write_from(&self, src: &[u8]) -> Result<(), NTSTATUS> {
        if src.len() > self.len || self.is_null() {
            return Err(STATUS_ACCESS_VIOLATION);
        }
        // SAFETY: `src` is a kernel buffer valid for src.len() bytes; the user address is
        // only handed to the fault-tolerant copy, which probes it.
        let status = unsafe {
            PfCopyToUser(
                self.addr as *mut c_void,
                src.as_ptr().cast::<c_void>(),
                src.len(),
            )
        };
        if status == STATUS_SUCCESS {
            Ok(())
        } else {
            Err(STATUS_ACCESS_VIOLATION)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_null_user_buffer_is_refused_even_for_an_empty_copy() {
        let machine = fltsim::Machine::boot();
        let null = UserPtr::new(core::ptr::null_mut(), 0);
        assert!(null.is_null());
        assert_eq!(null.read_into(&mut []), Err(STATUS_ACCESS_VIOLATION));
        assert_eq!(null.write_from(&[]), Err(STATUS_ACCESS_VIOLATION));
        let null_with_length = UserPtr::new(core::ptr::null_mut(), 16);
        assert_eq!(
            null_with_length.read_into(&mut [0; 8]),
            Err(STATUS_ACCESS_VIOLATION)
        );
        assert_eq!(
            null_with_length.write_from(&[0; 8]),
            Err(STATUS_ACCESS_VIOLATION)
        );
        assert!(machine.shutdown().is_empty());
    }

    #[test]
    fn a_copy_longer_than_the_user_buffer_is_refused_without_touching_it() {
        let machine = fltsim::Machine::boot();
        // A non-null user address of 4 bytes: copying 8 must fail before any access (the
        // fault-tolerant copy is never asked to probe past the buffer).
        let short = UserPtr::new(0x1_0000 as *mut c_void, 4);
        assert!(!short.is_null());
        assert_eq!(short.read_into(&mut [0; 8]), Err(STATUS_ACCESS_VIOLATION));
        assert_eq!(short.write_from(&[0; 8]), Err(STATUS_ACCESS_VIOLATION));
        let violations = machine.shutdown();
        assert!(
            violations.is_empty(),
            "the user address was touched: {violations:?}"
        );
    }
}
