//! Owned non-paged pool allocations with portfilter's tag.
//!
//! Every allocation the driver makes goes through [`PoolBox`], so that pool tracking (the
//! real one, or fltsim's leak report) sees all of it under [`crate::POOL_TAG`].

use core::ffi::c_void;
use core::mem::{align_of, size_of};
use core::ptr::NonNull;
use portfilter_bindings::{ExAllocatePool2, ExFreePoolWithTag, POOL_FLAG_NON_PAGED};

/// A `T` in non-paged pool, freed with `ExFreePoolWithTag` on drop.
pub(crate) struct PoolBox<T> {
    ptr: NonNull<T>,
}

// SAFETY: PoolBox owns its T exclusively, like Box.
unsafe impl<T: Send> Send for PoolBox<T> {}
// SAFETY: shared access to PoolBox only hands out &T.
unsafe impl<T: Sync> Sync for PoolBox<T> {}

impl<T> PoolBox<T> {
    const ALIGN_OK: () = assert!(align_of::<T>() <= 16, "pool blocks are 16-byte aligned");

    /// Allocates and moves `value` into pool; `None` when the pool is exhausted.
    pub(crate) fn new(value: T) -> Option<Self> {
        let () = Self::ALIGN_OK;
        // SAFETY: plain pool allocation; a null result is handled below.
        let raw = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, size_of::<T>(), crate::POOL_TAG) };
        let ptr = NonNull::new(raw.cast::<T>())?;
        // SAFETY: `ptr` is a fresh, suitably aligned allocation of size_of::<T>() bytes.
        unsafe { ptr.as_ptr().write(value) };
        Some(Self { ptr })
    }

    /// Gives up ownership; pair with [`PoolBox::from_raw`].
    pub(crate) fn into_raw(self) -> *mut T {
        let raw = self.ptr.as_ptr();
        core::mem::forget(self);
        raw
    }

    /// Takes back ownership of a pointer from [`PoolBox::into_raw`].
    ///
    /// # Safety
    /// `raw` must come from `into_raw` and not have been reclaimed before.
    pub(crate) unsafe fn from_raw(raw: *mut T) -> Option<Self> {
        NonNull::new(raw).map(|ptr| Self { ptr })
    }
}

impl<T> core::ops::Deref for PoolBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the allocation holds an initialised T for as long as self lives.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Drop for PoolBox<T> {
    fn drop(&mut self) {
        // SAFETY: we own the initialised T; it is dropped exactly once here.
        unsafe { core::ptr::drop_in_place(self.ptr.as_ptr()) };
        // SAFETY: the block came from ExAllocatePool2 with the same tag.
        unsafe { ExFreePoolWithTag(self.ptr.as_ptr().cast::<c_void>(), crate::POOL_TAG) };
    }
}

impl<T> core::ops::DerefMut for PoolBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: we own the initialised T exclusively.
        unsafe { self.ptr.as_mut() }
    }
}

/// A zero-filled byte buffer of an exact length in non-paged pool (8-byte aligned: pool
/// blocks are 16-byte aligned). Used for events, batches and command buffers.
pub(crate) struct PoolBytes {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: PoolBytes owns its bytes exclusively.
unsafe impl Send for PoolBytes {}
// SAFETY: shared access only hands out &[u8].
unsafe impl Sync for PoolBytes {}

impl PoolBytes {
    /// Allocates `len` zeroed bytes; `None` when `len` is 0 or the pool is exhausted.
    pub(crate) fn zeroed(len: usize) -> Option<Self> {
        if len == 0 {
            return None;
        }
        // SAFETY: plain pool allocation (zeroed); a null result is handled below.
        let raw = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, len, crate::POOL_TAG) };
        NonNull::new(raw.cast::<u8>()).map(|ptr| Self { ptr, len })
    }

    /// The buffer's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The raw address, for routines that take a kernel buffer pointer.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Gives up ownership; pair with [`PoolBytes::from_raw`].
    pub(crate) fn into_raw(self) -> (*mut u8, usize) {
        let parts = (self.ptr.as_ptr(), self.len);
        core::mem::forget(self);
        parts
    }

    /// Takes back ownership of a buffer from [`PoolBytes::into_raw`].
    ///
    /// # Safety
    /// `(raw, len)` must come from `into_raw` and not have been reclaimed before.
    pub(crate) unsafe fn from_raw(raw: *mut u8, len: usize) -> Option<Self> {
        NonNull::new(raw).map(|ptr| Self { ptr, len })
    }
}

impl core::ops::Deref for PoolBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the allocation holds `len` initialised (zeroed or written) bytes, owned
        // by self, in kernel memory.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl core::ops::DerefMut for PoolBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for Deref, and we own the bytes exclusively.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for PoolBytes {
    fn drop(&mut self) {
        // SAFETY: the block came from ExAllocatePool2 with the same tag.
        unsafe { ExFreePoolWithTag(self.ptr.as_ptr().cast::<c_void>(), crate::POOL_TAG) };
    }
}

/// A fixed-length array of `T` in non-paged pool, zero-initialised.
pub(crate) struct PoolArray<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: PoolArray owns its elements exclusively.
unsafe impl<T: Copy + Send> Send for PoolArray<T> {}
// SAFETY: shared access only hands out &[T].
unsafe impl<T: Copy + Sync> Sync for PoolArray<T> {}

impl<T: Copy> PoolArray<T> {
    /// Allocates `len` zeroed elements; `None` when `len` is 0, the size overflows or the
    /// pool is exhausted.
    ///
    /// # Safety
    /// All-zero bytes must be a valid `T`.
    pub(crate) unsafe fn new_zeroed(len: usize) -> Option<Self> {
        const { assert!(align_of::<T>() <= 16, "pool blocks are 16-byte aligned") };
        let bytes = len.checked_mul(size_of::<T>())?;
        if bytes == 0 {
            return None;
        }
        // SAFETY: plain pool allocation (zeroed); a null result is handled below.
        let raw = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, bytes, crate::POOL_TAG) };
        NonNull::new(raw.cast::<T>()).map(|ptr| Self { ptr, len })
    }
}

impl<T: Copy> core::ops::Deref for PoolArray<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `len` zero-initialised (valid, per `new_zeroed`'s contract) elements.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> core::ops::DerefMut for PoolArray<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as for Deref, owned exclusively.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Drop for PoolArray<T> {
    fn drop(&mut self) {
        // SAFETY: the block came from ExAllocatePool2 with the same tag; T is Copy (no
        // destructors to run).
        unsafe { ExFreePoolWithTag(self.ptr.as_ptr().cast::<c_void>(), crate::POOL_TAG) };
    }
}
