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
//!
//! Whoever listens there is checked before it is trusted ([`check_server`]): a client
//! only talks to a host run by root or by its own user, so a user who created another
//! user's `/tmp/portfilter-sim-$UID` first cannot receive that user's clients.

use std::fs;
use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::net::UnixStream;
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
    // Created with its final mode (the umask can only remove bits); no chmod by path
    // afterwards. A directory made now goes through the same checks as an existing one.
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
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

/// Credentials of the process at the other end of a connected Unix socket
/// (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// Process id (0 if it does not fit).
    pub pid: u32,
    /// Effective user id.
    pub uid: u32,
}

/// Reads the credentials of the peer of a connected Unix socket (`SO_PEERCRED`): for a
/// client, those the server had when it called `listen`; for a server, those the client
/// had when it called `connect`.
///
/// # Errors
/// The `getsockopt` failure.
pub fn peer_cred(stream: &UnixStream) -> io::Result<PeerCred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = libc::socklen_t::try_from(size_of::<libc::ucred>()).unwrap_or(12);
    // SAFETY: a valid socket fd, and `cred`/`len` describe a writable ucred.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCred {
        pid: u32::try_from(cred.pid).unwrap_or(0),
        uid: cred.uid,
    })
}

/// A socket served by a process that is neither root nor the client's own user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UntrustedServer {
    /// The socket.
    pub socket: PathBuf,
    /// The uid of the process listening on it.
    pub server_uid: u32,
    /// Our uid.
    pub our_uid: u32,
}

impl std::fmt::Display for UntrustedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "refusing portfilter-sim socket {}: it is served by uid {}, which is neither root \
             nor this user (uid {})",
            self.socket.display(),
            self.server_uid,
            self.our_uid
        )
    }
}

impl std::error::Error for UntrustedServer {}

/// Checks who serves `socket` (`stream` is connected to it) before anything is sent:
/// only root or our own user is trusted.
///
/// # Errors
/// `PermissionDenied` carrying an [`UntrustedServer`] for anyone else; the `getsockopt`
/// failure.
pub fn check_server(stream: &UnixStream, socket: &Path) -> io::Result<()> {
    let server_uid = peer_cred(stream)?.uid;
    let our_uid = current_uid();
    if server_uid == 0 || server_uid == our_uid {
        Ok(())
    } else {
        Err(io::Error::new(
            ErrorKind::PermissionDenied,
            UntrustedServer {
                socket: socket.to_path_buf(),
                server_uid,
                our_uid,
            },
        ))
    }
}

/// The [`UntrustedServer`] inside an error of [`check_server`] (or of a connect that
/// called it), if that is what it is.
#[must_use]
pub fn untrusted_server(error: &io::Error) -> Option<&UntrustedServer> {
    error.get_ref()?.downcast_ref::<UntrustedServer>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

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
    fn a_server_of_our_own_user_is_trusted() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let stream = UnixStream::connect(&path).unwrap();
        assert_eq!(peer_cred(&stream).unwrap().uid, current_uid());
        check_server(&stream, &path).unwrap();
    }

    #[test]
    fn peer_credentials_of_a_socket_pair_are_ours() {
        let (a, _b) = UnixStream::pair().unwrap();
        let c = peer_cred(&a).unwrap();
        assert_eq!(c.pid, std::process::id());
        assert_eq!(c.uid, current_uid());
    }

    #[test]
    fn untrusted_server_error_names_the_socket_and_both_uids() {
        let e = io::Error::new(
            ErrorKind::PermissionDenied,
            UntrustedServer {
                socket: PathBuf::from("/tmp/portfilter-sim-0/sim.sock"),
                server_uid: 65534,
                our_uid: 0,
            },
        );
        let found = untrusted_server(&e).unwrap();
        assert_eq!(found.server_uid, 65534);
        let text = e.to_string();
        assert_eq!(text.lines().count(), 1);
        assert!(
            text.contains("/tmp/portfilter-sim-0/sim.sock") && text.contains("uid 65534"),
            "{text}"
        );
        assert!(untrusted_server(&io::Error::from(ErrorKind::NotFound)).is_none());
    }

    #[test]
    fn a_file_in_place_of_the_dir_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("p");
        fs::write(&d, b"x").unwrap();
        assert!(ensure_private_dir(&d, current_uid()).is_err());
    }
}
