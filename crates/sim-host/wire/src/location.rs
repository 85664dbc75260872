//! Where the host's socket lives.
//!
//! In order of precedence: an explicit path (`portfilter-sim serve --socket PATH`), the
//! environment variable [`SOCKET_ENV`] (honoured by the host, its control commands and
//! the shim alike), then a per-user default:
//! * `$XDG_RUNTIME_DIR/portfilter-sim.sock` when `XDG_RUNTIME_DIR` is set (that
//!   directory is private to the user by the XDG specification);
//! * otherwise `/tmp/portfilter-sim-$UID/sim.sock`, in a directory the host creates with
//!   mode 0700 and refuses to use if it is not owned by the user or grants any group or
//!   other permission.

use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Environment variable naming the socket.
pub const SOCKET_ENV: &str = "PORTFILTER_SIM_SOCKET";

/// The effective user id.
#[must_use]
pub fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The private directory of the `/tmp` default for `uid`.
#[must_use]
pub fn tmp_dir(uid: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/portfilter-sim-{uid}"))
}

/// The per-user default location (ignores [`SOCKET_ENV`]).
#[must_use]
pub fn default_path() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("portfilter-sim.sock"),
        _ => tmp_dir(current_uid()).join("sim.sock"),
    }
}

/// The socket to use: `explicit`, else [`SOCKET_ENV`], else [`default_path`].
#[must_use]
pub fn resolve(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    match std::env::var_os(SOCKET_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => default_path(),
    }
}

/// Creates `dir` with mode 0700 if missing; otherwise checks that it is a directory
/// owned by `uid` with no group/other permissions.
///
/// # Errors
/// `PermissionDenied` with an explanation when an existing directory is unsafe; I/O
/// errors of creating it.
pub fn ensure_private_dir(dir: &Path, uid: u32) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            // The umask may have removed bits but never adds any; make it exact.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
            return Ok(());
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            ErrorKind::PermissionDenied,
            format!("{} exists and is not a directory", dir.display()),
        ));
    }
    if meta.uid() != uid {
        return Err(io::Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{} is owned by uid {}, not by us (uid {uid}); refusing to put the socket there",
                dir.display(),
                meta.uid()
            ),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(io::Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{} has mode {:o}: group/other may access it; refusing to put the socket there \
                 (chmod 700 it or remove it)",
                dir.display(),
                meta.mode() & 0o777
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_path_wins() {
        assert_eq!(
            resolve(Some(Path::new("/x/y.sock"))),
            PathBuf::from("/x/y.sock")
        );
    }

    #[test]
    fn private_dir_is_created_0700_and_reused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("p");
        ensure_private_dir(&d, current_uid()).unwrap();
        assert_eq!(fs::metadata(&d).unwrap().mode() & 0o777, 0o700);
        ensure_private_dir(&d, current_uid()).unwrap();
    }

    #[test]
    fn group_or_world_accessible_dir_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("p");
        fs::create_dir(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        let e = ensure_private_dir(&d, current_uid()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    }

    #[test]
    fn dir_of_another_owner_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("p");
        ensure_private_dir(&d, current_uid()).unwrap();
        let e = ensure_private_dir(&d, current_uid().wrapping_add(1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    }

    #[test]
    fn a_file_in_place_of_the_dir_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("p");
        fs::write(&d, b"x").unwrap();
        assert!(ensure_private_dir(&d, current_uid()).is_err());
    }
}
