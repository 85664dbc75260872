//! Cross-checks the bindings' x64 layouts and constants against Debian's mingw-w64 DDK
//! headers: this test writes the Rust values (`size_of`, `offset_of!`, the constants) as C
//! `_Static_assert`s into `rust_layouts.h` and compiles `tests/layout_mingw.c` with
//! `x86_64-w64-mingw32-gcc -c` (nothing runs). A Rust layout that disagrees with the
//! header fails the compile.
//!
//! Checked (every field the Rust side declares, unless noted): `UNICODE_STRING`,
//! `OBJECT_ATTRIBUTES`, `IO_STATUS_BLOCK`, `LIST_ENTRY`, `KEVENT`, `FILE_OBJECT`,
//! `IO_SECURITY_CONTEXT`, `FLT_PARAMETERS.Create` against `IO_STACK_LOCATION.Parameters.Create`
//! (the five fields both have), the scalar types, the constants and status codes the
//! headers define; from `fltuserstructures.h`: `FILTER_MESSAGE_HEADER`,
//! `FILTER_REPLY_HEADER`, `FLT_FSTYPE_NTFS`.
//! Not checkable (mingw-w64 ships no `fltkernel.h`): `FLT_REGISTRATION`,
//! `FLT_OPERATION_REGISTRATION`, `FLT_CALLBACK_DATA`, `FLT_IO_PARAMETER_BLOCK`,
//! `FLT_PARAMETERS`, `FLT_RELATED_OBJECTS`, `FLT_FILE_NAME_INFORMATION`, the `FLT_*`
//! constants; those rest on the const assertions in the crate.

use core::mem::{offset_of, size_of};
use portfilter_bindings as b;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const COMPILER: &str = "x86_64-w64-mingw32-gcc";
const INSTALL_HINT: &str = "install Debian's gcc-mingw-w64-x86-64 (scripts/install-deps.sh does: \
     apt-get install -y gcc-mingw-w64-x86-64)";

/// The C spelling of the Rust type of a constant.
trait CType: Copy {
    const C: &'static str;
    fn literal(self) -> String;
}
macro_rules! ctype {
    ($($t:ty => $c:literal),*) => {$(
        impl CType for $t {
            const C: &'static str = $c;
            fn literal(self) -> String {
                // Through i128, so that negative values print as such.
                format!("({})({}LL)", $c, i128::from(self))
            }
        }
    )*};
}
ctype!(u8 => "unsigned char", u16 => "unsigned short", u32 => "unsigned int",
       i8 => "signed char", i16 => "short", i32 => "int");
impl CType for u64 {
    const C: &'static str = "unsigned long long";
    fn literal(self) -> String {
        format!("(unsigned long long)({self}ULL)")
    }
}

/// The checks of one translation unit, and for the completeness test, which Rust fields
/// of which struct they cover.
#[derive(Default)]
struct Checks {
    lines: Vec<String>,
    covered: BTreeMap<&'static str, Vec<&'static str>>,
}

impl Checks {
    fn size(&mut self, c_type: &str, rust: usize) {
        self.lines.push(format!("PF_SIZE({c_type}, {rust});"));
    }
    fn offset(
        &mut self,
        c_type: &'static str,
        rust_field: &'static str,
        c_field: &str,
        rust: usize,
    ) {
        self.lines
            .push(format!("PF_OFFSET({c_type}, {c_field}, {rust});"));
        let fields = self.covered.entry(c_type).or_default();
        if !fields.contains(&rust_field) {
            fields.push(rust_field);
        }
    }
    fn constant<T: CType>(&mut self, name: &str, value: T) {
        self.lines
            .push(format!("PF_CONST({name}, {}, {});", T::C, value.literal()));
    }
}

/// `struct!(checks, T { rust_field [=> c_field], ... })`: size plus every listed offset.
macro_rules! layout {
    ($c:expr, $T:ident { $($rf:ident $(=> $cf:ident)?),* $(,)? }) => {{
        $c.size(stringify!($T), size_of::<b::$T>());
        $(
            let c_field = layout!(@c $rf $($cf)?);
            $c.offset(stringify!($T), stringify!($rf), c_field, offset_of!(b::$T, $rf));
        )*
    }};
    (@c $rf:ident) => { stringify!($rf) };
    (@c $rf:ident $cf:ident) => { stringify!($cf) };
}

macro_rules! constants {
    ($c:expr, $($name:ident),* $(,)?) => {
        $( $c.constant(stringify!($name), b::$name); )*
    };
}

/// The kernel translation unit (ddk/ntifs.h).
fn kernel_checks() -> Checks {
    let mut c = Checks::default();
    layout!(
        c,
        UNICODE_STRING {
            Length,
            MaximumLength,
            Buffer
        }
    );
    layout!(
        c,
        OBJECT_ATTRIBUTES {
            Length,
            RootDirectory,
            ObjectName,
            Attributes,
            SecurityDescriptor,
            SecurityQualityOfService,
        }
    );
    // Rust names the Status/Pointer union `u`; in C it is anonymous.
    layout!(c, IO_STATUS_BLOCK { u => Status, Information });
    c.offset(
        "IO_STATUS_BLOCK",
        "u",
        "Pointer",
        offset_of!(b::IO_STATUS_BLOCK, u),
    );
    layout!(c, LIST_ENTRY { Flink, Blink });
    layout!(c, KEVENT { Header });
    layout!(
        c,
        FILE_OBJECT {
            Type,
            Size,
            DeviceObject,
            Vpb,
            FsContext,
            FsContext2,
            SectionObjectPointer,
            PrivateCacheMap,
            FinalStatus,
            RelatedFileObject,
            LockOperation,
            DeletePending,
            ReadAccess,
            WriteAccess,
            DeleteAccess,
            SharedRead,
            SharedWrite,
            SharedDelete,
            Flags,
            FileName,
            CurrentByteOffset,
            Waiters,
            Busy,
            LastLock,
            Lock,
            Event,
            CompletionContext,
            IrpListLock,
            IrpList,
            FileObjectExtension,
        }
    );
    layout!(
        c,
        IO_SECURITY_CONTEXT {
            SecurityQos,
            AccessState,
            DesiredAccess,
            FullCreateOptions
        }
    );

    // FLT_PARAMETERS.Create mirrors IO_STACK_LOCATION.Parameters.Create (same members with
    // POINTER_ALIGNMENT, then EaBuffer and AllocationSize, which the I/O stack location
    // does not have).
    for (rust_field, offset) in [
        (
            "SecurityContext",
            offset_of!(b::FLT_PARAMETERS_CREATE, SecurityContext),
        ),
        ("Options", offset_of!(b::FLT_PARAMETERS_CREATE, Options)),
        (
            "FileAttributes",
            offset_of!(b::FLT_PARAMETERS_CREATE, FileAttributes),
        ),
        (
            "ShareAccess",
            offset_of!(b::FLT_PARAMETERS_CREATE, ShareAccess),
        ),
        ("EaLength", offset_of!(b::FLT_PARAMETERS_CREATE, EaLength)),
    ] {
        c.lines.push(format!(
            "PF_RELATIVE(IO_STACK_LOCATION, Parameters.Create.{rust_field}, Parameters, {offset});"
        ));
        c.covered
            .entry("FLT_PARAMETERS_CREATE")
            .or_default()
            .push(rust_field);
    }
    // The typed part must fit in the union slot FLT_PARAMETERS reserves.
    c.lines.push(format!(
        "_Static_assert(sizeof(((IO_STACK_LOCATION *)0)->Parameters.Create) <= {}, \
         \"IO_STACK_LOCATION Create parameters larger than FLT_PARAMETERS.Create\");",
        size_of::<b::FLT_PARAMETERS_CREATE>()
    ));

    // Scalar types.
    c.size("HANDLE", size_of::<b::HANDLE>());
    c.size("NTSTATUS", size_of::<b::NTSTATUS>());
    c.size("ACCESS_MASK", size_of::<b::ACCESS_MASK>());
    c.size("BOOLEAN", size_of::<b::BOOLEAN>());
    c.size("KPROCESSOR_MODE", size_of::<b::KPROCESSOR_MODE>());
    c.size("LARGE_INTEGER", size_of::<b::LARGE_INTEGER>());
    c.size("EX_PUSH_LOCK", size_of::<b::EX_PUSH_LOCK>());
    c.size("PSECURITY_DESCRIPTOR", size_of::<b::PSECURITY_DESCRIPTOR>());

    constants!(
        c,
        IO_TYPE_FILE,
        FO_VOLUME_OPEN,
        IRP_MJ_CREATE,
        SL_FORCE_ACCESS_CHECK,
        SL_OPEN_PAGING_FILE,
        SL_OPEN_TARGET_DIRECTORY,
        SL_CASE_SENSITIVE,
        FILE_VALID_OPTION_FLAGS,
        FILE_DIRECTORY_FILE,
        FILE_WRITE_THROUGH,
        FILE_NON_DIRECTORY_FILE,
        FILE_DELETE_ON_CLOSE,
        FILE_OPEN_BY_FILE_ID,
        FILE_SUPERSEDE,
        FILE_OPEN,
        FILE_CREATE,
        FILE_OPEN_IF,
        FILE_OVERWRITE,
        FILE_OVERWRITE_IF,
        FILE_ATTRIBUTE_DIRECTORY,
        FILE_ATTRIBUTE_NORMAL,
        FILE_READ_DATA,
        FILE_WRITE_DATA,
        FILE_APPEND_DATA,
        DELETE,
        SYNCHRONIZE,
        GENERIC_READ,
        GENERIC_WRITE,
        FILE_SHARE_READ,
        FILE_SHARE_WRITE,
        FILE_SHARE_DELETE,
        FILE_DEVICE_DISK_FILE_SYSTEM,
        FILE_DEVICE_NETWORK_FILE_SYSTEM,
        TRUE,
        FALSE,
        OBJ_CASE_INSENSITIVE,
        OBJ_KERNEL_HANDLE,
        THREAD_ALL_ACCESS,
        DPFLTR_IHVDRIVER_ID,
        DPFLTR_ERROR_LEVEL,
        DPFLTR_WARNING_LEVEL,
        DPFLTR_TRACE_LEVEL,
        DPFLTR_INFO_LEVEL,
    );
    // Enumerators the bindings name in upper case.
    c.constant("KernelMode", b::KERNEL_MODE);
    c.constant("UserMode", b::USER_MODE);
    c.constant("NotificationEvent", b::NOTIFICATION_EVENT);
    c.constant("SynchronizationEvent", b::SYNCHRONIZATION_EVENT);
    c.constant("Executive", b::EXECUTIVE);
    for (name, value) in status_codes() {
        c.constant(&name, value);
    }
    c
}

/// The user-mode translation unit (fltuserstructures.h through fltuser.h).
fn user_checks() -> Checks {
    let mut c = Checks::default();
    layout!(
        c,
        FILTER_MESSAGE_HEADER {
            ReplyLength,
            MessageId
        }
    );
    layout!(c, FILTER_REPLY_HEADER { Status, MessageId });
    constants!(c, FLT_FSTYPE_NTFS);
    c
}

/// Every `STATUS_*` constant the bindings declare, with its value, read from the crate's
/// source so that a newly added code is checked too. Each must also resolve in Rust (the
/// value comes from the compiled crate, not from the text).
fn status_codes() -> Vec<(String, i32)> {
    let source = fs::read_to_string(crate_dir().join("src/status.rs")).expect("read status.rs");
    let names: Vec<String> = source
        .lines()
        .filter_map(|l| {
            let name = l.trim().split([' ', '=']).next()?;
            (name.starts_with("STATUS_") && l.contains('=')).then(|| name.to_owned())
        })
        .collect();
    let known: BTreeMap<&str, i32> = [
        ("STATUS_SUCCESS", b::STATUS_SUCCESS),
        ("STATUS_TIMEOUT", b::STATUS_TIMEOUT),
        ("STATUS_ACCESS_DENIED", b::STATUS_ACCESS_DENIED),
        (
            "STATUS_INSUFFICIENT_RESOURCES",
            b::STATUS_INSUFFICIENT_RESOURCES,
        ),
        ("STATUS_FLT_DO_NOT_ATTACH", b::STATUS_FLT_DO_NOT_ATTACH),
    ]
    .into_iter()
    .collect();
    assert!(names.len() >= known.len(), "status scan found {names:?}");
    // Values: parse `NAME = 0x..u32;` from the source, and cross-check the parse against
    // the compiled constants for the ones listed above.
    let mut out = Vec::new();
    for line in source.lines() {
        let line = line.trim();
        let Some((name, rest)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if !names.iter().any(|n| n == name) {
            continue;
        }
        let digits: String = rest
            .trim()
            .trim_end_matches(';')
            .trim_end_matches("u32")
            .trim_start_matches("0x")
            .replace('_', "");
        let value = u32::from_str_radix(&digits, 16)
            .unwrap_or_else(|_| panic!("cannot read the value of {name}: {rest}"));
        #[allow(clippy::cast_possible_wrap)]
        let value = value as i32;
        if let Some(&compiled) = known.get(name) {
            assert_eq!(
                value, compiled,
                "source parse of {name} disagrees with the crate"
            );
        }
        out.push((name.to_owned(), value));
    }
    assert_eq!(out.len(), names.len());
    out
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The include directory that holds `ddk/ntifs.h`, asked from the compiler itself.
fn mingw_include_dir() -> PathBuf {
    let output = Command::new(COMPILER)
        .args(["-xc", "-E", "-v", "-"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {COMPILER} ({e}): {INSTALL_HINT}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr
        .lines()
        .skip_while(|l| !l.starts_with("#include <...> search starts here"))
        .skip(1)
        .take_while(|l| !l.starts_with("End of search list"))
        .map(|l| PathBuf::from(l.trim()))
        .find(|dir| dir.join("ddk/ntifs.h").is_file())
        .unwrap_or_else(|| {
            panic!("{COMPILER} has no ddk/ntifs.h on its include path: {INSTALL_HINT}")
        })
}

/// A fresh scratch directory for one compile.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("layout_mingw")
        .join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Compiles layout_mingw.c as `unit` (PF_KERNEL / PF_USER) with `checks`; returns the
/// compiler's exit success and its diagnostics.
fn compile(unit: &str, checks: &Checks, name: &str) -> (bool, String) {
    let dir = scratch(name);
    let mut header =
        String::from("/* Generated by tests/layout_mingw.rs from the Rust bindings. */\n");
    for line in &checks.lines {
        header.push_str(line);
        header.push('\n');
    }
    fs::write(dir.join("rust_layouts.h"), header).expect("write rust_layouts.h");
    let include = mingw_include_dir();
    let output = Command::new(COMPILER)
        .arg("-std=gnu11")
        .arg(format!("-D{unit}"))
        .arg("-I")
        .arg(&dir)
        .arg("-I")
        .arg(include.join("ddk"))
        .args(["-Wall", "-Werror", "-c", "-o"])
        .arg(dir.join("layout_mingw.o"))
        .arg(crate_dir().join("tests/layout_mingw.c"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {COMPILER} ({e}): {INSTALL_HINT}"));
    if output.status.success() {
        // Keep the generated header only when something failed, for the diagnosis.
        let _ = fs::remove_dir_all(&dir);
    }
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn kernel_layouts_match_mingw_ddk_headers() {
    let checks = kernel_checks();
    let (ok, diagnostics) = compile("PF_KERNEL", &checks, "kernel");
    assert!(ok, "layouts differ from ddk/ntifs.h:\n{diagnostics}");
    println!(
        "checked {} assertions against ddk/ntifs.h: {:?}",
        checks.lines.len(),
        checks.covered.keys().collect::<Vec<_>>()
    );
}

#[test]
fn port_message_headers_match_fltuserstructures() {
    let checks = user_checks();
    let (ok, diagnostics) = compile("PF_USER", &checks, "user");
    assert!(
        ok,
        "layouts differ from fltuserstructures.h:\n{diagnostics}"
    );
}

#[test]
fn a_wrong_rust_layout_fails_the_compile() {
    // The mechanism itself: a deliberately wrong size, offset and constant must each be
    // refused by the compiler with our message.
    for (line, expected) in [
        (
            "PF_SIZE(UNICODE_STRING, 24);",
            "size of UNICODE_STRING differs",
        ),
        (
            "PF_OFFSET(FILE_OBJECT, FileName, 96);",
            "offset of FILE_OBJECT.FileName differs",
        ),
        (
            "PF_RELATIVE(IO_STACK_LOCATION, Parameters.Create.FileAttributes, Parameters, 12);",
            "Parameters.Create.FileAttributes relative to Parameters differs",
        ),
        (
            "PF_CONST(FO_VOLUME_OPEN, unsigned int, 0x00200000);",
            "value of FO_VOLUME_OPEN differs",
        ),
    ] {
        let checks = Checks {
            lines: vec![line.to_owned()],
            covered: BTreeMap::new(),
        };
        let (ok, diagnostics) = compile("PF_KERNEL", &checks, "negative");
        assert!(!ok, "{line} compiled, so a wrong layout would go unnoticed");
        assert!(
            diagnostics.contains(expected),
            "{line}: expected {expected:?} in:\n{diagnostics}"
        );
    }
}

/// Field names of `pub struct NAME { pub Field: … }` in the bindings' source.
fn declared_fields(name: &str) -> Vec<String> {
    let src = crate_dir().join("src");
    for entry in fs::read_dir(&src).expect("read src").flatten() {
        let text = fs::read_to_string(entry.path()).expect("read source");
        let Some(start) = text.find(&format!("pub struct {name} {{")) else {
            continue;
        };
        return text[start..]
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with('}'))
            .filter_map(|l| {
                let field = l.trim().strip_prefix("pub ")?;
                let (ident, _) = field.split_once(':')?;
                Some(ident.trim().to_owned())
            })
            .collect();
    }
    panic!("struct {name} not found in crates/bindings/src");
}

#[test]
fn every_declared_field_of_the_checked_structs_is_checked() {
    let mut covered = kernel_checks().covered;
    covered.extend(user_checks().covered);
    for (name, fields) in &covered {
        let mut declared = declared_fields(name);
        let mut checked: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        if *name == "FLT_PARAMETERS_CREATE" {
            // Explicit padding and the two members IO_STACK_LOCATION does not have.
            declared.retain(|f| !f.starts_with("_pad") && f != "EaBuffer" && f != "AllocationSize");
        }
        declared.sort();
        checked.sort();
        assert_eq!(
            declared, checked,
            "{name}: declared fields vs fields cross-checked"
        );
    }
}

#[test]
fn filter_manager_kernel_structs_are_not_in_the_mingw_headers() {
    // If a future mingw-w64 ships fltkernel.h, this fails: add those structs to the check.
    let include = mingw_include_dir();
    let mut found = Vec::new();
    let mut stack = vec![include];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("h"))
            {
                let text = fs::read(&path).unwrap_or_default();
                let text = String::from_utf8_lossy(&text);
                for s in [
                    "_FLT_REGISTRATION {",
                    "_FLT_CALLBACK_DATA {",
                    "_FLT_RELATED_OBJECTS {",
                ] {
                    if text.contains(s) {
                        found.push(format!("{} in {}", s, path.display()));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "mingw now defines Filter Manager kernel structs: {found:?}"
    );
}
