//! The service's log file: whole lines appended from any thread (diagnostics and the
//! guard's output share it without interleaving), rotated to `NAME.log.old` when it grows
//! past [`ROTATE_AT`] (one old generation is kept).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Size at which the file is rotated.
pub const ROTATE_AT: u64 = 10 * 1024 * 1024;

struct Inner {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    limit: u64,
}

impl Inner {
    fn open(path: &Path) -> io::Result<(File, u64)> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok((file, size))
    }

    /// Closes the file, renames it to `.old` (replacing the previous one), opens a new
    /// one. A failure keeps writing to the current file rather than losing lines.
    fn rotate(&mut self) {
        let old = old_path(&self.path);
        self.file = None;
        let renamed = std::fs::rename(&self.path, &old);
        match Self::open(&self.path) {
            Ok((file, size)) => {
                self.file = Some(file);
                self.size = size;
            }
            Err(error) => eprintln!("portctl: cannot reopen {}: {error}", self.path.display()),
        }
        if let Err(error) = renamed {
            // Keep appending; try again after another limit's worth of lines.
            self.size = 0;
            eprintln!("portctl: cannot rotate {}: {error}", self.path.display());
        }
    }

    fn write_lines(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.size >= self.limit {
            self.rotate();
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("the log file is not open"))?;
        file.write_all(bytes)?;
        file.flush()?;
        self.size = self.size.saturating_add(bytes.len() as u64);
        Ok(())
    }
}

/// `NAME.log` → `NAME.log.old`.
fn old_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".old");
    PathBuf::from(name)
}

/// A shared, append-only log file.
#[derive(Clone)]
pub struct LogFile {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for LogFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFile")
            .field("path", &self.lock().path)
            .finish()
    }
}

impl LogFile {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A writer that panicked mid-write leaves at worst a partial line behind.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens (creating its folder) `path` for appending, rotating at [`ROTATE_AT`].
    ///
    /// # Errors
    /// The folder or file cannot be created or opened.
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::open_with_limit(path, ROTATE_AT)
    }

    fn open_with_limit(path: &Path, limit: u64) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let (file, size) = Inner::open(path)?;
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                path: path.to_path_buf(),
                file: Some(file),
                size,
                limit,
            })),
        })
    }

    /// A writer that appends whole lines (a partial line waits for its end, or for
    /// `flush` / drop).
    #[must_use]
    pub fn writer(&self) -> LineWriter {
        LineWriter {
            log: self.clone(),
            pending: Vec::new(),
        }
    }
}

/// Buffers one writer's output and appends it to the log a line at a time.
pub struct LineWriter {
    log: LogFile,
    pending: Vec<u8>,
}

impl LineWriter {
    fn emit(&mut self, upto: usize) -> io::Result<()> {
        let rest = self.pending.split_off(upto);
        let lines = std::mem::replace(&mut self.pending, rest);
        if lines.is_empty() {
            return Ok(());
        }
        self.log.lock().write_lines(&lines)
    }
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if let Some(last) = self.pending.iter().rposition(|&b| b == b'\n') {
            self.emit(last + 1)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let all = self.pending.len();
        self.emit(all)
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogFile {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.writer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_from_many_writers_do_not_interleave() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("svc.log");
        let log = LogFile::open(&path).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut writer = log.writer();
                    for i in 0..200 {
                        // Written in pieces: only whole lines reach the file.
                        write!(writer, "thread {t} ").unwrap();
                        writeln!(writer, "line {i}").unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 800);
        assert!(
            text.lines()
                .all(|l| l.starts_with("thread ") && l.contains(" line ")),
            "{text}"
        );
    }

    #[test]
    fn a_partial_line_is_written_on_drop_and_reopening_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("svc.log");
        {
            let log = LogFile::open(&path).unwrap();
            let mut writer = log.writer();
            write!(writer, "no newline").unwrap();
        }
        let log = LogFile::open(&path).unwrap();
        writeln!(log.writer(), "\nsecond").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "no newline\nsecond\n"
        );
    }

    #[test]
    fn the_file_is_rotated_past_the_limit_keeping_one_old_generation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("svc.log");
        let log = LogFile::open_with_limit(&path, 100).unwrap();
        let mut writer = log.writer();
        for i in 0..30 {
            writeln!(writer, "line {i:02} of the log").unwrap(); // 19 bytes each
        }
        let current = std::fs::read_to_string(&path).unwrap();
        let old = std::fs::read_to_string(old_path(&path)).unwrap();
        assert!(current.len() <= 100 + 19, "{}", current.len());
        assert!(current.ends_with("line 29 of the log\n"), "{current}");
        // The old generation holds the lines just before the current file's first.
        let first_current: u32 = current[5..7].parse().unwrap();
        assert!(old.ends_with(&format!("line {:02} of the log\n", first_current - 1)));
        assert!(!dir.path().join("svc.log.old.old").exists());
    }
}
