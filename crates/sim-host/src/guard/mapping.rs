//! What a fanotify permission event becomes in the simulated Filter Manager: the guarded
//! directory is one NTFS volume, `\Device\HarddiskVolume9` (drive `G:`), and an open of
//! `GUARD/a/b.txt` is a create of `\Device\HarddiskVolume9\a\b.txt`; the open flags (as far
//! as they can be recovered, see [`OpenFlags`]) become desired access and disposition.

use crate::create_spec::{
    FILE_GENERIC_EXECUTE, FILE_GENERIC_READ, FILE_GENERIC_WRITE, FILE_SYNCHRONOUS_IO_NONALERT,
};
use fltsim::CreateRequest;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The NT device name of the guarded directory.
pub const GUARD_VOLUME: &str = r"\Device\HarddiskVolume9";
/// The drive letter fltsim gives that volume.
pub const GUARD_DRIVE: char = 'G';
/// Longest NT name (UTF-16 units) a `UNICODE_STRING` can carry.
pub const NT_NAME_MAX: usize = 32_767;
/// Suffix the kernel appends to `/proc/self/fd/N` links of unlinked files.
const DELETED_SUFFIX: &[u8] = b" (deleted)";

/// `FILE_OPEN` … `FILE_OVERWRITE_IF`.
const FILE_OPEN: u32 = 1;
const FILE_CREATE: u32 = 2;
const FILE_OPEN_IF: u32 = 3;
const FILE_OVERWRITE: u32 = 4;
const FILE_OVERWRITE_IF: u32 = 5;

/// How the opener opened the file, from its open syscall's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFlags {
    /// `open`/`openat`/`creat` flags (`O_*`).
    Open(i32),
    /// The open of an `execve`/`execveat` image.
    Exec,
    /// Not recoverable (another syscall, `openat2`, an unreadable `/proc` entry).
    Unknown,
}

/// Why a name could not be mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmapped {
    /// The file is not below the guarded directory (renamed away, another mount).
    Outside,
    /// The NT name would exceed [`NT_NAME_MAX`].
    Overlong,
}

/// A mapped name and what was odd about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtName {
    /// `\Device\HarddiskVolume9\…`.
    pub path: String,
    /// The link ended in ` (deleted)`: the file was unlinked before its name was read.
    pub deleted: bool,
    /// The name was not UTF-8; invalid bytes became U+FFFD.
    pub lossy: bool,
}

/// Maps the target of `/proc/self/fd/N` onto the guard volume.
///
/// # Errors
/// The name is outside `root` or too long for an NT name.
pub fn nt_name(root: &Path, link: &Path) -> Result<NtName, Unmapped> {
    let mut bytes = link.as_os_str().as_bytes();
    let deleted = bytes.ends_with(DELETED_SUFFIX);
    if deleted {
        bytes = &bytes[..bytes.len() - DELETED_SUFFIX.len()];
    }
    let rest = Path::new(OsStr::from_bytes(bytes))
        .strip_prefix(root)
        .map_err(|_| Unmapped::Outside)?;
    let rest = rest.as_os_str().as_bytes();
    let lossy = std::str::from_utf8(rest).is_err();
    let rest = String::from_utf8_lossy(rest);
    let mut path = String::with_capacity(GUARD_VOLUME.len() + 1 + rest.len());
    path.push_str(GUARD_VOLUME);
    path.push('\\');
    for (i, part) in rest.split('/').filter(|p| !p.is_empty()).enumerate() {
        if i > 0 {
            path.push('\\');
        }
        path.push_str(part);
    }
    if path.encode_utf16().count() > NT_NAME_MAX {
        return Err(Unmapped::Overlong);
    }
    Ok(NtName {
        path,
        deleted,
        lossy,
    })
}

/// Desired access and disposition of an open with these flags.
#[must_use]
pub fn access_and_disposition(flags: OpenFlags) -> (u32, u32) {
    match flags {
        OpenFlags::Unknown => (FILE_GENERIC_READ, FILE_OPEN),
        OpenFlags::Exec => (FILE_GENERIC_READ | FILE_GENERIC_EXECUTE, FILE_OPEN),
        OpenFlags::Open(f) => {
            let access = match f & libc::O_ACCMODE {
                libc::O_WRONLY => FILE_GENERIC_WRITE,
                libc::O_RDWR => FILE_GENERIC_READ | FILE_GENERIC_WRITE,
                _ => FILE_GENERIC_READ,
            };
            let access = if f & libc::O_TRUNC != 0 {
                access | FILE_GENERIC_WRITE
            } else {
                access
            };
            let creat = f & libc::O_CREAT != 0;
            let disposition = match (creat, f & libc::O_EXCL != 0, f & libc::O_TRUNC != 0) {
                (true, true, _) => FILE_CREATE,
                (true, false, true) => FILE_OVERWRITE_IF,
                (true, false, false) => FILE_OPEN_IF,
                (false, _, true) => FILE_OVERWRITE,
                (false, _, false) => FILE_OPEN,
            };
            (access, disposition)
        }
    }
}

/// The fltsim create for one permission event.
#[must_use]
pub fn request(
    name: &NtName,
    pid: u32,
    tid: u32,
    flags: OpenFlags,
    directory: bool,
) -> CreateRequest {
    let (access, disposition) = access_and_disposition(flags);
    let mut r = CreateRequest::new(&name.path)
        .pid(pid)
        .access(access)
        .disposition(disposition)
        .options(FILE_SYNCHRONOUS_IO_NONALERT);
    if tid != 0 {
        r = r.tid(u64::from(tid));
    }
    if directory {
        r = r.directory();
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::path::PathBuf;

    fn link(bytes: &[u8]) -> PathBuf {
        PathBuf::from(OsString::from_vec(bytes.to_vec()))
    }
    use std::os::unix::ffi::OsStringExt;

    #[test]
    fn names_map_onto_the_guard_volume() {
        let root = Path::new("/tmp/g");
        let n = nt_name(root, Path::new("/tmp/g/a/b.txt")).unwrap();
        assert_eq!(n.path, r"\Device\HarddiskVolume9\a\b.txt");
        assert!(!n.deleted && !n.lossy);
        assert_eq!(
            nt_name(root, Path::new("/tmp/g")).unwrap().path,
            r"\Device\HarddiskVolume9\"
        );
        assert_eq!(
            nt_name(root, Path::new("/tmp/gx/a")),
            Err(Unmapped::Outside),
            "a sibling with the root as a string prefix is outside"
        );
        assert_eq!(
            nt_name(root, Path::new("/etc/passwd")),
            Err(Unmapped::Outside)
        );
    }

    #[test]
    fn deleted_and_non_utf8_names_are_flagged() {
        let root = Path::new("/tmp/g");
        let n = nt_name(root, &link(b"/tmp/g/x.evil (deleted)")).unwrap();
        assert_eq!(n.path, r"\Device\HarddiskVolume9\x.evil");
        assert!(n.deleted);
        let n = nt_name(root, &link(b"/tmp/g/\xff\xfe.evil")).unwrap();
        assert!(n.lossy);
        assert_eq!(n.path, "\\Device\\HarddiskVolume9\\\u{fffd}\u{fffd}.evil");
    }

    #[test]
    fn overlong_names_are_refused() {
        let root = Path::new("/tmp/g");
        let long = format!("/tmp/g/{}", "a/".repeat(NT_NAME_MAX / 2));
        assert_eq!(nt_name(root, Path::new(&long)), Err(Unmapped::Overlong));
        let fits = format!(
            "/tmp/g/{}",
            "a".repeat(NT_NAME_MAX - GUARD_VOLUME.len() - 1)
        );
        assert!(nt_name(root, Path::new(&fits)).is_ok());
    }

    #[test]
    fn flags_become_access_and_disposition() {
        use libc::{O_CREAT, O_EXCL, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY};
        let ad = |f| access_and_disposition(OpenFlags::Open(f));
        assert_eq!(ad(O_RDONLY), (FILE_GENERIC_READ, FILE_OPEN));
        assert_eq!(
            ad(O_WRONLY | O_CREAT | O_TRUNC),
            (FILE_GENERIC_WRITE, FILE_OVERWRITE_IF)
        );
        assert_eq!(
            ad(O_RDWR | O_CREAT),
            (FILE_GENERIC_READ | FILE_GENERIC_WRITE, FILE_OPEN_IF)
        );
        assert_eq!(ad(O_WRONLY | O_CREAT | O_EXCL).1, FILE_CREATE);
        assert_eq!(
            ad(O_RDONLY | O_TRUNC),
            (FILE_GENERIC_READ | FILE_GENERIC_WRITE, FILE_OVERWRITE)
        );
        assert_eq!(
            access_and_disposition(OpenFlags::Exec).0 & FILE_GENERIC_EXECUTE,
            FILE_GENERIC_EXECUTE
        );
        assert_eq!(
            access_and_disposition(OpenFlags::Unknown),
            (FILE_GENERIC_READ, FILE_OPEN)
        );
    }

    #[test]
    fn requests_carry_the_opener() {
        let n = nt_name(Path::new("/g"), Path::new("/g/d")).unwrap();
        let r = request(&n, 4242, 4243, OpenFlags::Open(libc::O_RDONLY), true);
        assert_eq!(r.pid, 4242);
        assert_eq!(r.tid, Some(4243));
        assert_ne!(r.options & 1, 0, "FILE_DIRECTORY_FILE");
        assert_eq!(r.path, r"\Device\HarddiskVolume9\d");
    }
}
