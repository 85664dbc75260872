//! Glue for the cross build without the WDK (`scripts/build-sys.sh`).

use core::alloc::{GlobalAlloc, Layout};
use portfilter_bindings::{ExAllocatePool2, ExFreePoolWithTag, KeBugCheckEx, POOL_FLAG_NON_PAGED};

/// Bug-check code used when the driver panics: 'PFLT'. A panic in kernel code is a bug;
/// stopping the machine with a recognisable code is the honest outcome.
const PANIC_BUGCHECK: u32 = u32::from_be_bytes(*b"PFLT");

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let line = info.location().map_or(0, |l| l.line() as usize);
    // SAFETY: KeBugCheckEx never returns; the parameters are informational.
    unsafe { KeBugCheckEx(PANIC_BUGCHECK, line, 0, 0, 0) }
}

/// Non-paged pool allocator with the driver's tag (the driver itself allocates through
/// `PoolBox`; this exists so that `alloc` can link).
struct PoolAllocator;

// SAFETY: ExAllocatePool2 returns 16-byte aligned blocks; larger alignments are refused.
unsafe impl GlobalAlloc for PoolAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() > 16 {
            return core::ptr::null_mut();
        }
        // SAFETY: plain pool allocation.
        unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, layout.size(), crate::POOL_TAG) }.cast()
    }
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with the same tag.
        unsafe { ExFreePoolWithTag(ptr.cast(), crate::POOL_TAG) }
    }
}

#[global_allocator]
static GLOBAL_ALLOCATOR: PoolAllocator = PoolAllocator;

/// The compiler emits a reference to `_fltused` when floating-point registers are used;
/// the WDK's libraries define it in the canonical build.
#[unsafe(no_mangle)]
#[used]
static _fltused: i32 = 0;
