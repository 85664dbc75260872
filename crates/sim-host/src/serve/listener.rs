//! Binding the socket safely (see `portfilter_sim_wire::location`).

use portfilter_sim_wire::location;
use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// Binds `path`: creates/checks the private `/tmp` directory when `path` is in it,
/// replaces a stale socket left by a host that died, refuses to run twice, and leaves
/// the socket with mode 0600 (0666 with `shared`: other users may connect, and their
/// uid decides whether they are administrators).
///
/// # Errors
/// `AddrInUse` when a host already serves `path`; `AlreadyExists` when `path` is not a
/// socket; `PermissionDenied` for an unsafe private directory; I/O errors.
pub fn bind(path: &Path, shared: bool) -> io::Result<UnixListener> {
    let uid = location::current_uid();
    let tmp = location::tmp_dir(uid);
    if path.parent() == Some(tmp.as_path()) {
        location::ensure_private_dir(&tmp, uid)?;
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    ErrorKind::AddrInUse,
                    format!("another portfilter-sim serves {}", path.display()),
                ));
            }
            Err(_) => fs::remove_file(path)?,
        },
        Ok(_) => {
            return Err(io::Error::new(
                ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // No window in which the socket is accessible to others: bind under a strict umask.
    // SAFETY: umask has no preconditions; it is restored right after the bind.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = bound?;
    let mode = if shared { 0o666 } else { 0o600 };
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn socket_is_private_and_a_second_host_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("s.sock");
        let l = bind(&p, false).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert_eq!(bind(&p, false).unwrap_err().kind(), ErrorKind::AddrInUse);
        drop(l);
        // The file stays behind, nobody listens: a stale socket is replaced.
        let _l = bind(&p, true).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o666);
    }

    #[test]
    fn a_regular_file_is_not_replaced() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("s.sock");
        fs::write(&p, b"x").unwrap();
        assert_eq!(
            bind(&p, false).unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        assert_eq!(fs::read(&p).unwrap(), b"x");
    }
}
