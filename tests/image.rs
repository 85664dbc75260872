//! The shipped image `out/portfilter.sys` under fltsim's PE loader: how it is mapped
//! (relocated away from its preferred base, no page writable and executable, every import
//! provided; an import fltsim lacks refuses the load by name), its `DriverEntry` and
//! unload, and the faulting-buffer commands going through the image's own SEH helper
//! (`src/glue/usercopy.c`): a hardware fault inside its `memcpy`, and an exception raised
//! by `ProbeForWrite`, each ending in the helper's `__except`.
//!
//! The whole end-to-end suite also runs against the image with `FLTSIM_IMAGE` set
//! (`scripts/test.sh` does both runs). Like `tests/pe_image.rs`, these tests SKIP loudly
//! without the image unless `PORTFILTER_REQUIRE_SYS=1`.

mod common;

use common::{Buf, Sim, connect, hr};
use fltsim::image::{self, LoadError, exception_counts};
use goblin::pe::PE;
use portfilter_protocol::{Command, HELLO_REPLY_BYTES, Role, encode_request};
use std::ffi::c_void;
use std::path::PathBuf;
use windows_sys::Win32::Storage::InstallableFileSystems::FilterSendMessage;

fn image_path() -> Option<PathBuf> {
    let out = std::env::var_os("PORTFILTER_OUT").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("out"),
        PathBuf::from,
    );
    let path = out.join("portfilter.sys");
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("PORTFILTER_REQUIRE_SYS").map_or(true, |v| v != "1"),
        "PORTFILTER_REQUIRE_SYS=1 but {} is missing: run scripts/build-sys.sh",
        path.display()
    );
    eprintln!(
        "\n*** SKIP: {} not found; run scripts/build-sys.sh to run the image ***\n",
        path.display()
    );
    None
}

#[test]
fn the_image_is_relocated_never_writable_and_executable_and_every_import_is_provided() {
    let Some(path) = image_path() else { return };
    let bytes = std::fs::read(&path).unwrap();
    let info = image::map_only(&bytes).expect("the image maps");
    assert_ne!(
        info.base as u64, info.preferred_base,
        "mapped at its preferred base: relocations untested"
    );
    assert!(info.unwind_functions > 0, "no .pdata decoded");
    assert!(!info.protections.is_empty());
    for p in &info.protections {
        assert!(!(p.write && p.execute), "writable and executable: {p:?}");
    }
    assert!(
        info.protections.iter().any(|p| p.execute && !p.write),
        "no read-execute code section: {:?}",
        info.protections
    );
    let pe = PE::parse(&bytes).unwrap();
    let provided = image::provided_imports();
    for import in &pe.imports {
        assert!(
            provided
                .iter()
                .any(|(m, n)| m.eq_ignore_ascii_case(import.dll) && *n == import.name),
            "{}!{} is imported but not provided",
            import.dll,
            import.name
        );
    }
}

/// Replaces a NUL-terminated import name in the image bytes (same length).
fn rename(bytes: &mut [u8], from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let needle: Vec<u8> = [from.as_bytes(), b"\0"].concat();
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{from} not in the image"));
    bytes[at..at + from.len()].copy_from_slice(to.as_bytes());
}

#[test]
fn an_import_fltsim_does_not_provide_refuses_the_load_by_name() {
    let Some(path) = image_path() else { return };
    let mut bytes = std::fs::read(&path).unwrap();
    rename(&mut bytes, "FltStartFiltering", "FltStartFilterinX");
    rename(&mut bytes, "ZwClose", "ZwCloze");
    let err = image::map_only(&bytes).expect_err("must refuse");
    assert_eq!(
        err,
        LoadError::UnresolvedImports(vec![
            "fltmgr.sys!FltStartFilterinX".into(),
            "ntoskrnl.exe!ZwCloze".into()
        ])
    );
    let machine = fltsim::Machine::boot();
    assert!(matches!(
        image::load_driver_image_bytes("broken.sys", &bytes),
        Err(LoadError::UnresolvedImports(_))
    ));
    assert!(!fltsim::is_loaded(), "nothing ran");
    assert!(machine.shutdown().is_empty());
}

#[test]
fn driver_entry_and_unload_run_in_the_image() {
    let Some(path) = image_path() else { return };
    let machine = fltsim::Machine::boot();
    image::load_driver_image(&path).expect("DriverEntry of the image succeeds");
    let info = image::loaded_image().expect("the image is what is loaded");
    assert!(
        fltsim::port::server_port_names()
            .iter()
            .any(|n| n == portfilter::PORT_NAME),
        "the image created its port"
    );
    // The image's pool is tagged like the rlib's.
    assert!(fltsim::kernel::pool::live_bytes(portfilter::POOL_TAG) > 0);
    assert!(readable(info.base), "the image's headers are mapped");
    let port = connect(2001, Role::Observer);
    assert_eq!(port.hello().role, Role::Observer);
    port.close();
    fltsim::unload_driver().expect("unload");
    assert!(image::loaded_image().is_none(), "the image is unmapped");
    assert_eq!(fltsim::kernel::pool::live_bytes(portfilter::POOL_TAG), 0);
    // Its code is gone: the range is reserved and inaccessible.
    assert!(!readable(info.base), "the unloaded image is still readable");
    assert!(machine.shutdown().is_empty());
}

/// Whether one byte at `address` can be read (without faulting).
fn readable(address: usize) -> bool {
    let mut byte = 0u8;
    let local = libc::iovec {
        iov_base: (&raw mut byte).cast(),
        iov_len: 1,
    };
    let remote = libc::iovec {
        iov_base: address as *mut c_void,
        iov_len: 1,
    };
    // SAFETY: process_vm_readv on our own pid reports a bad address instead of faulting.
    let n = unsafe {
        libc::process_vm_readv(libc::getpid(), &raw const local, 1, &raw const remote, 1, 0)
    };
    n == 1
}

fn hello_with(port: &common::Port, input: *mut c_void, output: *mut c_void) -> i32 {
    send(port, input, 8, output)
}

fn send(port: &common::Port, input: *mut c_void, input_len: u32, output: *mut c_void) -> i32 {
    let _p = fltsim::process::enter(port.pid);
    let mut returned = 0u32;
    // SAFETY: deliberately bad pointers; fltsim and the image's helper must cope.
    unsafe {
        FilterSendMessage(
            port.handle,
            input,
            input_len,
            output,
            HELLO_REPLY_BYTES as u32,
            &mut returned,
        )
    }
}

#[test]
fn faulting_buffers_go_through_the_images_seh_helper() {
    let Some(path) = image_path() else { return };
    let machine = fltsim::Machine::boot();
    image::load_driver_image(&path).expect("DriverEntry of the image succeeds");
    let sim = Sim { machine };
    let port = connect(2001, Role::Observer);
    let mut input = Buf::new(8);
    encode_request(Command::Hello, input.bytes_mut()).unwrap();
    let mut output = Buf::new(HELLO_REPLY_BYTES);

    let before = exception_counts();
    assert_eq!(hello_with(&port, input.ptr(), output.ptr()), hr::S_OK);
    assert_eq!(exception_counts(), before, "a good call raises nothing");

    // Unreadable input: ProbeForRead accepts the (user) range, memcpy faults inside the
    // helper's __try, the __except returns the code.
    let (status, after) = (
        hello_with(&port, 0x1000 as *mut c_void, output.ptr()),
        exception_counts(),
    );
    assert_eq!(status, hr::NOACCESS);
    assert_eq!(after.faults, before.faults + 1, "{after:?}");
    assert_eq!(after.handled, before.handled + 1, "{after:?}");

    // Unwritable output: ProbeForWrite raises STATUS_ACCESS_VIOLATION itself.
    let before = after;
    let status = hello_with(&port, input.ptr(), 0x2000 as *mut c_void);
    let after = exception_counts();
    assert_eq!(status, hr::NOACCESS);
    assert_eq!(after.raised, before.raised + 1, "{after:?}");
    assert_eq!(after.handled, before.handled + 1, "{after:?}");

    // Input whose second half lies on an inaccessible page: the fault comes in the middle
    // of the copy.
    let before = after;
    // SAFETY: two fresh anonymous pages; the second made inaccessible.
    let pages = unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        assert_eq!(
            libc::mprotect(p.cast::<u8>().add(4096).cast(), 4096, libc::PROT_NONE),
            0
        );
        p.cast::<u8>()
    };
    // SAFETY: the last 8 (readable) bytes of the first page; 16 bytes are sent, the
    // driver captures all of them before decoding.
    let straddling = unsafe { pages.add(4096 - 8) };
    // SAFETY: as above.
    unsafe { straddling.copy_from_nonoverlapping(input.bytes().as_ptr(), 8) };
    let status = send(&port, straddling.cast(), 16, output.ptr());
    let after = exception_counts();
    assert_eq!(status, hr::NOACCESS);
    assert_eq!(after.faults, before.faults + 1, "{after:?}");
    assert_eq!(after.handled, before.handled + 1, "{after:?}");
    // SAFETY: our mapping.
    unsafe { libc::munmap(pages.cast(), 8192) };

    // The driver is intact and answers.
    assert_eq!(port.hello().role, Role::Observer);
    port.close();
    sim.unload_and_check_pool();
}
