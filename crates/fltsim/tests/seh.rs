//! fltsim's structured exception handling for loaded images, on a purpose-built DLL
//! (`tests/data/seh_probe.c`, compiled here with clang-14 and lld-link like
//! portfilter.sys): a fault four frames below the `__except` with non-volatile registers
//! saved in every frame (the continuation uses a value kept in one), filters that read
//! their parent's locals and decline or accept, `__finally` blocks in the target frame
//! and in an intermediate one, exceptions raised by `ProbeForRead`, and an exception no
//! `__except` takes (the process stops, naming it — checked in a child process).
//!
//! Without the cross tools the tests SKIP loudly, unless `PORTFILTER_REQUIRE_SYS=1`.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

use fltsim::image::{self, Library, exception_counts};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the DLL once per test process; `None` (SKIP) without the tools.
fn dll() -> Option<Vec<u8>> {
    static BUILT: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
    BUILT.get_or_init(build).clone()
}

fn build() -> Option<Vec<u8>> {
    let tools = ["clang-14", "lld-link", "llvm-dlltool"];
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !std::env::var_os("PATH")
                .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
        })
        .collect();
    if !missing.is_empty() {
        assert_ne!(
            std::env::var("PORTFILTER_REQUIRE_SYS").as_deref(),
            Ok("1"),
            "PORTFILTER_REQUIRE_SYS=1 but {missing:?} are missing (scripts/install-deps.sh)"
        );
        eprintln!("\n*** SKIP: {missing:?} not installed ***\n");
        return None;
    }
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("seh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/seh_probe.c");
    let obj = dir.join("seh_probe.obj");
    let def = dir.join("ntoskrnl.def");
    let lib = dir.join("ntoskrnl.lib");
    let out = dir.join("seh_probe.dll");
    std::fs::write(
        &def,
        "LIBRARY ntoskrnl.exe\nEXPORTS\n    ProbeForRead\n    __C_specific_handler\n",
    )
    .unwrap();
    let run = |cmd: &mut Command| {
        let o = cmd.output().expect("tool runs");
        assert!(
            o.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(Command::new("clang-14")
        .args([
            "--target=x86_64-pc-windows-msvc",
            "-fms-extensions",
            "-ffreestanding",
            "-fno-stack-protector",
            // Windows x64 wants unwind data for every function that touches RSP;
            // -ffreestanding turns clang-14's default off.
            "-fasynchronous-unwind-tables",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-c",
        ])
        .arg(&src)
        .arg("-o")
        .arg(&obj));
    run(Command::new("llvm-dlltool")
        .args(["-m", "i386:x86-64", "-d"])
        .arg(&def)
        .arg("-l")
        .arg(&lib));
    run(Command::new("lld-link")
        .args([
            "/DLL",
            "/NOENTRY",
            "/NODEFAULTLIB",
            "/MACHINE:X64",
            "/DYNAMICBASE",
        ])
        .arg(format!("/OUT:{}", out.display()))
        .arg(&obj)
        .arg(&lib));
    let bytes = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    Some(bytes)
}

fn load(machine: &fltsim::MachineGuard) -> Option<Library> {
    let _ = machine;
    let bytes = dll()?;
    Some(image::load_library("seh_probe.dll", &bytes).expect("the DLL loads"))
}

/// An address that faults when read.
fn unmapped() -> usize {
    // SAFETY: a fresh inaccessible page (leaked: tests are short processes).
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    p as usize
}

macro_rules! export {
    ($lib:expr, $name:literal, fn($($arg:ty),*) -> $ret:ty) => {{
        let address = $lib.export($name).expect(concat!($name, " exported"));
        // SAFETY: the export's C signature, Windows x64 convention.
        unsafe { std::mem::transmute::<usize, unsafe extern "win64" fn($($arg),*) -> $ret>(address) }
    }};
}

/// `survive`'s result when `deep` faults: 1000 plus values computed before the __try.
fn survive_expected(x: u64) -> u64 {
    let (k1, k2, k3, k4, k5, k6, k7) = (
        x.wrapping_mul(3),
        x ^ 0xabc,
        x.wrapping_add(99),
        x.wrapping_mul(x),
        x.wrapping_sub(5),
        x << 3,
        !x,
    );
    1000u64
        .wrapping_add(k1)
        .wrapping_add(k2.wrapping_mul(k3))
        .wrapping_add(k4)
        .wrapping_add(k5.wrapping_mul(k6))
        .wrapping_add(k7)
}

#[test]
fn a_fault_four_frames_down_continues_in_the_except_with_non_volatile_registers_restored() {
    let machine = fltsim::Machine::boot();
    let Some(lib) = load(&machine) else { return };
    let survive = export!(lib, "survive", fn(*const u64, u64) -> u64);
    let bad = unmapped() as *const u64;
    let before = exception_counts();
    for x in [1u64, 7, 0x1234_5678_9abc, u64::MAX - 3] {
        // SAFETY: the export's contract (it may fault: that is the point).
        let got = unsafe { survive(bad, x) };
        assert_eq!(got, survive_expected(x), "x = {x:#x}");
    }
    let after = exception_counts();
    assert_eq!(after.faults, before.faults + 4);
    assert_eq!(after.handled, before.handled + 4);
    // Without a fault the same code returns deep's sum (no exception).
    let good = 5u64;
    // SAFETY: a readable value.
    let plain = unsafe { survive(&raw const good, 1) };
    assert_ne!(plain, survive_expected(1));
    assert_eq!(exception_counts(), after);
    drop(lib);
    assert!(machine.shutdown().is_empty());
}

#[test]
fn filters_read_their_parents_locals_and_may_decline() {
    let machine = fltsim::Machine::boot();
    let Some(lib) = load(&machine) else { return };
    let filtered = export!(lib, "filtered", fn(*const u64, u32, *mut i32) -> i32);
    let nested = export!(lib, "nested", fn(*const u64, u32, *mut i32) -> i32);
    let bad = unmapped() as *const u64;
    let mut seen = 0i32;
    // SAFETY: the exports' contracts.
    unsafe {
        assert_eq!(filtered(bad, 0xC000_0005, &raw mut seen), -1);
        assert_eq!(seen, 1, "the filter ran once");
        // The inner filter declines (wrong code): the outer __except takes it.
        assert_eq!(nested(bad, 0x1234_5678, &raw mut seen), -2);
        assert_eq!(seen, 2);
        // The inner filter accepts: the outer one is never asked.
        assert_eq!(nested(bad, 0xC000_0005, &raw mut seen), -1);
        assert_eq!(seen, 3);
        let value = 42u64;
        assert_eq!(filtered(&raw const value, 0, &raw mut seen), 42);
        assert_eq!(seen, 3, "no exception, no filter");
    }
    drop(lib);
    assert!(machine.shutdown().is_empty());
}

#[test]
fn finally_blocks_run_once_in_the_target_frame_and_in_frames_unwound_through() {
    let machine = fltsim::Machine::boot();
    let Some(lib) = load(&machine) else { return };
    let with_finally = export!(lib, "with_finally", fn(*const u64, *mut i32) -> i32);
    let through = export!(lib, "through_finally", fn(*const u64, *mut i32) -> i32);
    let bad = unmapped() as *const u64;
    let value = 9u64;
    let mut count = 0i32;
    // SAFETY: the exports' contracts.
    unsafe {
        assert_eq!(with_finally(bad, &raw mut count), -3);
        assert_eq!(count, 1);
        assert_eq!(with_finally(&raw const value, &raw mut count), 9);
        assert_eq!(count, 2, "the normal exit runs it too");
        assert_eq!(through(bad, &raw mut count), -4);
        assert_eq!(count, 12);
        assert_eq!(through(&raw const value, &raw mut count), 9);
        assert_eq!(count, 22);
    }
    drop(lib);
    assert!(machine.shutdown().is_empty());
}

#[test]
fn probe_for_read_raises_misalignment_and_access_violation_for_kernel_addresses() {
    let mut machine = fltsim::Machine::boot();
    machine.expect_violation(fltsim::rule::USER_COPY_OUT_OF_RANGE);
    let Some(lib) = load(&machine) else { return };
    let probe = export!(lib, "probe", fn(usize, u64, u32) -> u32);
    let kernel = [0u64; 2];
    let before = exception_counts();
    // SAFETY: the export's contract.
    unsafe {
        assert_eq!(
            probe(0x1001, 8, 8),
            0x8000_0002,
            "STATUS_DATATYPE_MISALIGNMENT"
        );
        assert_eq!(
            probe(kernel.as_ptr() as usize, 16, 8),
            0xC000_0005,
            "not a user buffer: STATUS_ACCESS_VIOLATION"
        );
        assert_eq!(probe(0x1001, 0, 8), 0, "length 0 is always accepted");
    }
    let after = exception_counts();
    assert_eq!(after.raised, before.raised + 2);
    assert_eq!(after.handled, before.handled + 2);
    assert_eq!(after.faults, before.faults);
    let violations = machine.take_violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    drop(lib);
    assert!(machine.shutdown().is_empty());
}

/// Child half of the next test: an exception no `__except` takes.
#[test]
fn unhandled_exception_child() {
    if std::env::var_os("FLTSIM_SEH_CHILD").is_none() {
        return;
    }
    let machine = fltsim::Machine::boot();
    let Some(lib) = load(&machine) else { return };
    let unguarded = export!(lib, "unguarded", fn(*const u64) -> u64);
    // SAFETY: faults; nothing in the image handles it.
    let v = unsafe { unguarded(unmapped() as *const u64) };
    println!("returned {v}: not reached");
}

#[test]
fn an_exception_no_except_takes_stops_the_process_naming_it() {
    if dll().is_none() {
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "unhandled_exception_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FLTSIM_SEH_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the child survived: {stderr}");
    assert!(
        stderr.contains("KMODE_EXCEPTION_NOT_HANDLED") && stderr.contains("0xc0000005"),
        "{stderr}"
    );
    assert!(stderr.contains("seh_probe.dll+0x"), "names where: {stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("not reached"));
}
