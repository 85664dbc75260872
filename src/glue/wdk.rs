//! Glue for the canonical WDK build: windows-drivers-rs supplies the allocator and the
//! panic handler. (Compiled only on Windows with the WDK; not buildable on Linux.)

extern crate wdk_panic;

#[global_allocator]
static GLOBAL_ALLOCATOR: wdk_alloc::WdkAllocator = wdk_alloc::WdkAllocator;
