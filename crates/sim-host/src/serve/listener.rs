//! Binding the socket safely (see `portfilter_sim_wire::location`).

use portfilter_sim_wire::location;
use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// Binds `path`: creates/checks the private `/tmp` directory when `path` is in it,
/// replaces a stale socket left by a host that died, refuses to run twice, and creates
/// the socket with mode 0600 (0666 with `shared`: other users may connect, and their
/// uid decides whether they are administrators).
///
/// The mode comes from the umask in force during `bind` — the socket never exists with
/// another mode, and nothing changes it afterwards by path (a `chmod` after `bind` would
/// follow whatever sits at `path` by then, e.g. a symlink someone swapped in).
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
    // bind(2) creates the socket with mode 0777 & !umask: set the umask that leaves
    // exactly the final mode, and restore it at once (the umask is per process: bind runs
    // before the host starts any thread that creates files).
    let umask: libc::mode_t = if shared { 0o111 } else { 0o177 };
    // SAFETY: umask has no preconditions; it is restored right after the bind.
    let old = unsafe { libc::umask(umask) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    bound
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// Runs `f` on a thread of its own on which every chmod(2) variant fails with EPERM
    /// (a seccomp filter installed on that thread only).
    fn without_chmod<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                forbid_chmod_on_this_thread();
                f()
            })
            .join()
            .expect("the thread without chmod panicked")
        })
    }

    fn forbid_chmod_on_this_thread() {
        #[cfg(target_arch = "x86_64")]
        let legacy = [libc::SYS_chmod];
        #[cfg(not(target_arch = "x86_64"))]
        let legacy: [libc::c_long; 0] = [];
        // fchmodat2 has the same number on every architecture.
        let numbers: Vec<u32> = [libc::SYS_fchmod, libc::SYS_fchmodat, 452]
            .into_iter()
            .chain(legacy)
            .map(|n| u32::try_from(n).unwrap())
            .collect();
        let n = u8::try_from(numbers.len()).unwrap();
        let stmt = |code: u16, k: u32| libc::sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        };
        // ld [nr]; for each number: jeq → deny; ret allow; deny: ret errno(EPERM).
        let mut program = vec![stmt(0x20, 0)];
        for (i, number) in (0u8..).zip(&numbers) {
            program.push(libc::sock_filter {
                code: 0x15,
                jt: n - i,
                jf: 0,
                k: *number,
            });
        }
        program.push(stmt(0x06, 0x7fff_0000));
        program.push(stmt(
            0x06,
            0x0005_0000 | u32::try_from(libc::EPERM).unwrap(),
        ));
        let fprog = libc::sock_fprog {
            len: u16::try_from(program.len()).unwrap(),
            filter: program.as_mut_ptr(),
        };
        // SAFETY: prctl with documented arguments; `fprog` points to a valid program that
        // the kernel copies during the call.
        unsafe {
            assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
            assert_eq!(
                libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &raw const fprog
                ),
                0,
                "cannot install a seccomp filter: {}",
                io::Error::last_os_error()
            );
        }
    }

    /// Issue 10, item 4: the socket is created with its final mode; nothing changes it
    /// by path after `bind` (which would follow a symlink swapped in at that path).
    #[test]
    fn socket_gets_its_final_mode_at_creation_without_any_chmod() {
        let t = tempfile::tempdir().unwrap();
        let probe = t.path().join("probe");
        fs::write(&probe, b"x").unwrap();
        let private = t.path().join("private.sock");
        let shared = t.path().join("shared.sock");
        let (chmod, private_l, shared_l) = without_chmod(|| {
            (
                fs::set_permissions(&probe, fs::Permissions::from_mode(0o600)),
                bind(&private, false),
                bind(&shared, true),
            )
        });
        assert_eq!(
            chmod.expect_err("chmod is forbidden on that thread").kind(),
            ErrorKind::PermissionDenied
        );
        let _private_l = private_l.expect("bind without chmod");
        let _shared_l = shared_l.expect("bind --shared without chmod");
        assert_eq!(fs::metadata(&private).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&shared).unwrap().mode() & 0o777, 0o666);
    }

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
