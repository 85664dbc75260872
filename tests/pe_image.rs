//! Checks the cross-built driver image `out/portfilter.sys` (made by `scripts/build-sys.sh`)
//! with goblin's PE parser: the properties Windows and the Filter Manager require of a
//! minifilter image, and the ones a reviewer would check by hand with `llvm-readobj`.
//!
//! When the image is missing the tests print a loud SKIP and pass, so that a plain
//! `cargo test` works on a machine without the cross toolchain. CI (`scripts/test.sh`)
//! builds the image first and sets `PORTFILTER_REQUIRE_SYS=1`: then a missing image, or one
//! older than the driver's sources, fails every test here.

use goblin::pe::PE;
use goblin::pe::certificate_table::{AttributeCertificateRevision, AttributeCertificateType};
use goblin::pe::section_table::{IMAGE_SCN_CNT_CODE, IMAGE_SCN_MEM_EXECUTE, IMAGE_SCN_MEM_WRITE};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// `IMAGE_FILE_MACHINE_AMD64`.
const MACHINE_AMD64: u16 = 0x8664;
/// Optional-header magic of PE32+.
const PE32_PLUS_MAGIC: u16 = 0x20b;
/// `IMAGE_SUBSYSTEM_NATIVE`.
const SUBSYSTEM_NATIVE: u16 = 1;
/// `IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE`.
const DLL_DYNAMIC_BASE: u16 = 0x0040;
/// `IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY` (`/INTEGRITYCHECK`).
const DLL_FORCE_INTEGRITY: u16 = 0x0080;
/// `IMAGE_DLLCHARACTERISTICS_NX_COMPAT`.
const DLL_NX_COMPAT: u16 = 0x0100;
/// Page size: HVCI wants page-aligned sections.
const PAGE: u32 = 0x1000;

/// The only modules a minifilter may import from.
const ALLOWED_MODULES: [&str; 3] = ["ntoskrnl.exe", "fltmgr.sys", "hal.dll"];

/// Filter Manager routines the finished driver must import (issue #2, part 4): the
/// registration and port lifecycle and the pre-create path.
const REQUIRED_FLT_IMPORTS: [&str; 12] = [
    "FltRegisterFilter",
    "FltStartFiltering",
    "FltUnregisterFilter",
    "FltCreateCommunicationPort",
    "FltCloseCommunicationPort",
    "FltCloseClientPort",
    "FltSendMessage",
    "FltBuildDefaultSecurityDescriptor",
    "FltFreeSecurityDescriptor",
    "FltGetFileNameInformation",
    "FltReleaseFileNameInformation",
    "FltGetRequestorProcessId",
];

/// What the SEH helper `src/glue/usercopy.c` brings in.
const REQUIRED_SEH_IMPORTS: [&str; 3] = ["ProbeForRead", "ProbeForWrite", "__C_specific_handler"];

/// Kernel routines the create path and the logging need from ntoskrnl.exe: the checks
/// for creates that must not be held, and `DbgPrintEx` (whose error level shows under the
/// default debug-print filter, unlike `DbgPrint`, which the image must not import).
const REQUIRED_KERNEL_IMPORTS: [&str; 3] =
    ["IoGetTopLevelIrp", "KeAreAllApcsDisabled", "DbgPrintEx"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn out_dir() -> PathBuf {
    std::env::var_os("PORTFILTER_OUT").map_or_else(|| root().join("out"), PathBuf::from)
}

fn required() -> bool {
    std::env::var("PORTFILTER_REQUIRE_SYS").is_ok_and(|v| v == "1")
}

/// Newest modification time of the files the image is built from.
fn newest_source() -> (SystemTime, PathBuf) {
    fn walk(dir: &Path, best: &mut (SystemTime, PathBuf)) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, best);
            } else if let Ok(modified) = entry.metadata().and_then(|m| m.modified())
                && modified > best.0
            {
                *best = (modified, path);
            }
        }
    }
    let root = root();
    let mut best = (SystemTime::UNIX_EPOCH, PathBuf::new());
    for dir in ["src", "crates/bindings/src", "crates/protocol/src"] {
        walk(&root.join(dir), &mut best);
    }
    for file in ["Cargo.toml", "build.rs"] {
        let path = root.join(file);
        if let Ok(modified) = fs::metadata(&path).and_then(|m| m.modified())
            && modified > best.0
        {
            best = (modified, path);
        }
    }
    best
}

/// The image bytes, or `None` (after a loud message) when it is absent and not required.
fn image() -> Option<Vec<u8>> {
    let path = out_dir().join("portfilter.sys");
    let Ok(bytes) = fs::read(&path) else {
        assert!(
            !required(),
            "PORTFILTER_REQUIRE_SYS=1 but {} is missing: run scripts/build-sys.sh",
            path.display()
        );
        eprintln!(
            "\n*** SKIP: {} not found; run scripts/build-sys.sh to check the driver image ***\n",
            path.display()
        );
        return None;
    };
    let built = fs::metadata(&path)
        .and_then(|m| m.modified())
        .expect("image mtime");
    let (newest, source) = newest_source();
    if newest > built {
        let msg = format!(
            "{} is older than {}: rerun scripts/build-sys.sh",
            path.display(),
            source.display()
        );
        assert!(!required(), "{msg}");
        eprintln!("\n*** WARNING: {msg} (checking the stale image anyway) ***\n");
    }
    Some(bytes)
}

fn parse(bytes: &[u8]) -> PE<'_> {
    PE::parse(bytes).expect("out/portfilter.sys parses as a PE image")
}

/// `key=value` lines of `out/build-info.txt`.
fn build_info(key: &str) -> Option<String> {
    let text = fs::read_to_string(out_dir().join("build-info.txt")).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k == key).then(|| v.trim().to_owned())
    })
}

/// The PE checksum as `CheckSumMappedFile` computes it: 16-bit word sum with carries folded
/// back in, skipping the checksum field itself, plus the file length.
fn pe_checksum(bytes: &[u8], checksum_offset: usize) -> u32 {
    let mut sum: u64 = 0;
    for (i, chunk) in bytes.chunks(2).enumerate() {
        let offset = i * 2;
        if offset == checksum_offset || offset == checksum_offset + 2 {
            continue;
        }
        let word = u16::from_le_bytes([chunk[0], chunk.get(1).copied().unwrap_or(0)]);
        sum += u64::from(word);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    let folded = u32::try_from(sum).expect("folded to 16 bits");
    folded.wrapping_add(u32::try_from(bytes.len()).expect("image under 4 GiB"))
}

#[test]
fn is_pe32_plus_amd64_native_driver() {
    let Some(bytes) = image() else { return };
    let pe = parse(&bytes);
    assert!(pe.is_64, "PE32+ expected");
    assert_eq!(
        pe.header.coff_header.machine, MACHINE_AMD64,
        "machine AMD64"
    );
    let optional = pe.header.optional_header.expect("optional header");
    assert_eq!(
        optional.standard_fields.magic, PE32_PLUS_MAGIC,
        "PE32+ magic"
    );
    assert_eq!(
        optional.windows_fields.subsystem, SUBSYSTEM_NATIVE,
        "subsystem must be NATIVE (1) for a kernel driver"
    );
    assert_eq!(
        optional.windows_fields.section_alignment, PAGE,
        "sections must be page aligned (HVCI)"
    );
}

#[test]
fn dll_characteristics_force_integrity_nx_dynamic_base() {
    let Some(bytes) = image() else { return };
    let pe = parse(&bytes);
    let dll = pe
        .header
        .optional_header
        .expect("optional header")
        .windows_fields
        .dll_characteristics;
    assert_ne!(
        dll & DLL_FORCE_INTEGRITY,
        0,
        "/INTEGRITYCHECK not set: {dll:#06x}"
    );
    assert_ne!(dll & DLL_NX_COMPAT, 0, "NX_COMPAT not set: {dll:#06x}");
    assert_ne!(
        dll & DLL_DYNAMIC_BASE,
        0,
        "DYNAMIC_BASE not set: {dll:#06x}"
    );
}

#[test]
fn entry_point_is_driver_entry() {
    let Some(bytes) = image() else { return };
    let pe = parse(&bytes);
    let entry = pe.entry;
    assert_ne!(entry, 0, "no entry point");

    // 1. The export named DriverEntry (the crate's #[no_mangle] pub fn) is the entry.
    let export = pe
        .exports
        .iter()
        .find(|e| e.name == Some("DriverEntry"))
        .expect("DriverEntry is exported");
    assert_eq!(
        export.rva, entry as usize,
        "entry point != DriverEntry export"
    );

    // 2. The linker's map file agrees (an independent source: lld-link /MAP).
    let map = fs::read_to_string(out_dir().join("portfilter.map"))
        .expect("out/portfilter.map (written by scripts/build-sys.sh)");
    let va = map
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() >= 3 && fields[1] == "DriverEntry")
                .then(|| u64::from_str_radix(fields[2], 16).ok())
                .flatten()
        })
        .expect("DriverEntry with its address in the map file");
    assert_eq!(
        va - pe.image_base,
        u64::from(entry),
        "map file's DriverEntry != entry point"
    );

    // 3. It lies in an executable code section.
    let section = pe
        .sections
        .iter()
        .find(|s| entry >= s.virtual_address && entry < s.virtual_address + s.virtual_size.max(1))
        .expect("entry point inside a section");
    assert_ne!(section.characteristics & IMAGE_SCN_MEM_EXECUTE, 0);
    assert_ne!(section.characteristics & IMAGE_SCN_CNT_CODE, 0);
}

#[test]
fn imports_only_kernel_modules_with_the_filter_manager_routines() {
    let Some(bytes) = image() else { return };
    let pe = parse(&bytes);
    assert!(!pe.imports.is_empty(), "no imports at all");
    for library in &pe.libraries {
        assert!(
            ALLOWED_MODULES
                .iter()
                .any(|m| m.eq_ignore_ascii_case(library)),
            "import from {library}: a driver may import only from {ALLOWED_MODULES:?}"
        );
    }
    for import in &pe.imports {
        assert!(
            !import.name.is_empty() && !import.name.starts_with("ORDINAL"),
            "import by ordinal from {}",
            import.dll
        );
    }
    let from = |module: &str| -> BTreeSet<String> {
        pe.imports
            .iter()
            .filter(|i| i.dll.eq_ignore_ascii_case(module))
            .map(|i| i.name.to_string())
            .collect()
    };
    let fltmgr = from("fltmgr.sys");
    let missing: Vec<&str> = REQUIRED_FLT_IMPORTS
        .iter()
        .copied()
        .filter(|f| !fltmgr.contains(*f))
        .collect();
    assert!(
        missing.is_empty(),
        "fltmgr.sys imports lack {missing:?}; the image imports {fltmgr:?}"
    );
    for name in &fltmgr {
        assert!(name.starts_with("Flt"), "{name} imported from fltmgr.sys");
    }
    let ntoskrnl = from("ntoskrnl.exe");
    for name in REQUIRED_SEH_IMPORTS {
        assert!(
            ntoskrnl.contains(name),
            "{name} not imported from ntoskrnl.exe (src/glue/usercopy.c not linked?)"
        );
    }
    for name in REQUIRED_KERNEL_IMPORTS {
        assert!(
            ntoskrnl.contains(name),
            "{name} not imported from ntoskrnl.exe; the image imports {ntoskrnl:?}"
        );
    }
    assert!(
        !ntoskrnl.contains("DbgPrint"),
        "DbgPrint is filtered out by default since Vista: log with DbgPrintEx"
    );
}

#[test]
fn every_import_is_a_declared_binding_or_the_seh_helpers() {
    let Some(bytes) = image() else { return };
    let pe = parse(&bytes);
    // Each routine the driver imports must be one the bindings crate declares (reviewed,
    // with its IRQL rule) or one the C helper needs; nothing slips in behind our back.
    let bindings = fs::read_to_string(root().join("crates/bindings/src/functions.rs"))
        .expect("read crates/bindings/src/functions.rs");
    let declared: BTreeSet<&str> = bindings
        .match_indices("pub fn ")
        .filter_map(|(i, m)| {
            let rest = &bindings[i + m.len()..];
            rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
        })
        .collect();
    assert!(
        declared.contains("FltRegisterFilter"),
        "bindings scan failed: {declared:?}"
    );
    let undeclared: Vec<String> = pe
        .imports
        .iter()
        .map(|i| i.name.to_string())
        .filter(|n| !declared.contains(n.as_str()) && !REQUIRED_SEH_IMPORTS.contains(&n.as_str()))
        .collect();
    assert!(
        undeclared.is_empty(),
        "the image imports {undeclared:?}, which crates/bindings does not declare"
    );
}

#[test]
fn no_writable_and_executable_section_and_no_tls() {
    let Some(bytes) = image() else { return };
    let pe = parse(&bytes);
    assert!(!pe.sections.is_empty());
    for section in &pe.sections {
        let name = String::from_utf8_lossy(&section.name);
        let c = section.characteristics;
        assert!(
            c & IMAGE_SCN_MEM_WRITE == 0 || c & IMAGE_SCN_MEM_EXECUTE == 0,
            "section {name} is writable and executable ({c:#010x})"
        );
    }
    let optional = pe.header.optional_header.expect("optional header");
    let tls = optional.data_directories.get_tls_table();
    assert!(
        tls.is_none_or(|d| d.size == 0 && d.virtual_address == 0),
        "TLS directory present: {tls:?}"
    );
    assert!(pe.tls_data.is_none(), "TLS data present");
}

#[test]
fn checksum_is_valid() {
    let Some(bytes) = image() else { return };
    let pe = parse(&bytes);
    let stored = pe
        .header
        .optional_header
        .expect("optional header")
        .windows_fields
        .check_sum;
    // e_lfanew + "PE\0\0" + COFF header (20) + CheckSum's offset in the optional header (64).
    let pe_offset = pe.header.dos_header.pe_pointer as usize;
    let checksum_offset = pe_offset + 4 + 20 + 64;
    assert_eq!(
        u32::from_le_bytes(
            bytes[checksum_offset..checksum_offset + 4]
                .try_into()
                .unwrap()
        ),
        stored,
        "checksum offset computed wrongly"
    );
    assert_ne!(stored, 0, "drivers need an image checksum");
    assert_eq!(
        stored,
        pe_checksum(&bytes, checksum_offset),
        "image checksum is wrong"
    );
}

#[test]
fn signature_matches_build_info() {
    let Some(bytes) = image() else { return };
    let pe = parse(&bytes);
    let signed = build_info("signed").expect("out/build-info.txt with signed=");
    match signed.as_str() {
        "yes" => {
            assert_eq!(
                pe.certificates.len(),
                1,
                "one Authenticode signature expected"
            );
            let cert = &pe.certificates[0];
            assert_eq!(
                cert.certificate_type,
                AttributeCertificateType::PkcsSignedData
            );
            assert_eq!(cert.revision, AttributeCertificateRevision::Revision2_0);
            // A DER SEQUENCE holding the PKCS#7 signedData content type 1.2.840.113549.1.7.2.
            let signed_data_oid = [
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
            ];
            assert_eq!(cert.certificate.first(), Some(&0x30));
            assert!(
                cert.certificate
                    .windows(signed_data_oid.len())
                    .any(|w| w == signed_data_oid),
                "the certificate entry is not PKCS#7 signedData"
            );
        }
        "no" => assert!(
            pe.certificates.is_empty(),
            "unsigned build carries a signature"
        ),
        other => panic!("build-info.txt: signed={other}"),
    }
}
