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
