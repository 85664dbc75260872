//! Host-side stand-ins for a remote caller's `FilterSendMessage` buffers.
//!
//! The driver receives raw user pointers in MessageNotify; fltsim hands it addresses
//! that map back to the buffers passed here. So that the driver's checks see what they
//! would see in-process:
//! * a copy sits at the caller's alignment (address modulo 16);
//! * a buffer the shim could not access becomes an address inside a reserved
//!   `PROT_NONE` region, so the fault-tolerant copy fails with `EFAULT` exactly as for
//!   a bad pointer in the client's own process;
//! * a null pointer stays null.

use portfilter_sim_wire::{MAX_IO_BYTES, UserBuf};
use std::ffi::c_void;
use std::sync::OnceLock;

const ALIGN_SPAN: usize = 16;

/// A buffer handed to MessageNotify.
pub struct HostBuf {
    storage: Option<Vec<u8>>,
    offset: usize,
    ptr: *mut c_void,
    len: u32,
}

// SAFETY: `ptr` points into `storage` (owned) or into the process-wide fault region
// (never accessed directly), or is null.
unsafe impl Send for HostBuf {}

fn fault_region() -> usize {
    static REGION: OnceLock<usize> = OnceLock::new();
    *REGION.get_or_init(|| {
        // SAFETY: an anonymous private PROT_NONE reservation; nothing aliases it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MAX_IO_BYTES + 2 * 4096,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            // Without the region, a small non-null address that no mapping covers.
            0x1000
        } else {
            p as usize + 4096
        }
    })
}

impl HostBuf {
    /// Builds the stand-in for `desc`.
    #[must_use]
    pub fn new(desc: &UserBuf) -> Self {
        match desc {
            UserBuf::Null { len } => Self {
                storage: None,
                offset: 0,
                ptr: std::ptr::null_mut(),
                len: *len,
            },
            UserBuf::Fault { align, len } => Self {
                storage: None,
                offset: 0,
                ptr: (fault_region() + usize::from(*align) % ALIGN_SPAN) as *mut c_void,
                len: u32::try_from((*len as usize).min(MAX_IO_BYTES)).unwrap_or(0),
            },
            UserBuf::Bytes { align, data } => {
                let data = data.get(..MAX_IO_BYTES).unwrap_or(data);
                let mut storage = vec![0u8; data.len() + ALIGN_SPAN];
                let base = storage.as_ptr() as usize;
                let want = usize::from(*align) % ALIGN_SPAN;
                let offset = (want + ALIGN_SPAN - base % ALIGN_SPAN) % ALIGN_SPAN;
                if let Some(dst) = storage.get_mut(offset..offset + data.len()) {
                    dst.copy_from_slice(data);
                }
                // The Vec's heap block does not move when the Vec does.
                let ptr = storage.as_mut_ptr().wrapping_add(offset).cast();
                Self {
                    storage: Some(storage),
                    offset,
                    ptr,
                    len: u32::try_from(data.len()).unwrap_or(0),
                }
            }
        }
    }

    /// The pointer to hand to MessageNotify.
    #[must_use]
    pub fn ptr(&self) -> *mut c_void {
        self.ptr
    }

    /// The length to hand to MessageNotify.
    #[must_use]
    pub fn len(&self) -> u32 {
        self.len
    }

    /// The bytes after the call (for a real buffer).
    #[must_use]
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        let len = self.len as usize;
        self.storage
            .and_then(|s| s.get(self.offset..self.offset + len).map(<[u8]>::to_vec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_keep_the_callers_alignment_and_bytes() {
        for align in 0..16u8 {
            let b = HostBuf::new(&UserBuf::Bytes {
                align,
                data: vec![1, 2, 3],
            });
            assert_eq!(b.ptr() as usize % 16, usize::from(align));
            assert_eq!(b.len(), 3);
            assert_eq!(b.into_bytes().unwrap(), vec![1, 2, 3]);
        }
    }

    #[test]
    fn faulting_buffers_are_unreadable_and_null_stays_null() {
        let f = HostBuf::new(&UserBuf::Fault { align: 8, len: 64 });
        assert_eq!(f.ptr() as usize % 16, 8);
        let mut out = [0u8; 8];
        let local = libc::iovec {
            iov_base: out.as_mut_ptr().cast(),
            iov_len: 8,
        };
        let remote = libc::iovec {
            iov_base: f.ptr(),
            iov_len: 8,
        };
        // SAFETY: reading through the kernel; a fault is reported, not taken.
        let n = unsafe {
            libc::process_vm_readv(libc::getpid(), &raw const local, 1, &raw const remote, 1, 0)
        };
        assert_eq!(n, -1);
        assert!(f.into_bytes().is_none());
        let n = HostBuf::new(&UserBuf::Null { len: 5 });
        assert!(n.ptr().is_null());
        assert_eq!(n.len(), 5);
    }
}
