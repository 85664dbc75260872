//! Length-prefixed frames: a little-endian `u32` body length, then the body.
//!
//! A reader never allocates more than [`MAX_FRAME_BYTES`] for a frame and, once the
//! first byte of a frame arrived, gives the rest a bounded time (a peer that sends half
//! a frame and stalls is dropped, not waited for).

use crate::message::MAX_IO_BYTES;
use std::io::{self, ErrorKind, Read, Write};
use std::time::{Duration, Instant};

/// Largest frame body accepted: the largest buffer plus room for the other fields.
pub const MAX_FRAME_BYTES: usize = MAX_IO_BYTES + 64 * 1024;

/// Time a peer gets to finish a frame it started.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(5);

/// What one [`read_frame`] call found.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A whole frame body.
    Frame(Vec<u8>),
    /// No byte of a new frame arrived within the stream's read timeout.
    Idle,
    /// The peer closed the connection between frames.
    Closed,
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Fills `buf`, tolerating read timeouts until `deadline`.
fn fill(
    stream: &mut impl Read,
    buf: &mut [u8],
    mut got: usize,
    deadline: Instant,
) -> io::Result<()> {
    while got < buf.len() {
        match stream.read(buf.get_mut(got..).unwrap_or_default()) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        ErrorKind::TimedOut,
                        "peer stalled in the middle of a frame",
                    ));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads one frame.
///
/// With a read timeout set on the stream, returns [`Incoming::Idle`] when no byte of a
/// new frame arrived in time (the caller may check for shutdown and call again);
/// without one it blocks until a frame starts.
///
/// # Errors
/// I/O errors; `InvalidData` for a frame above [`MAX_FRAME_BYTES`]; `TimedOut` when a
/// started frame is not complete within `deadline`; `UnexpectedEof` for a frame cut
/// short by the peer.
pub fn read_frame(stream: &mut impl Read, deadline: Duration) -> io::Result<Incoming> {
    let mut len = [0u8; 4];
    let first = loop {
        match stream.read(&mut len) {
            Ok(0) => return Ok(Incoming::Closed),
            Ok(n) => break n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Ok(Incoming::Idle),
            Err(e) => return Err(e),
        }
    };
    let end = Instant::now() + deadline;
    fill(stream, &mut len, first, end)?;
    let size = u32::from_le_bytes(len) as usize;
    if size > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            ErrorKind::InvalidData,
            format!("frame of {size} bytes exceeds the limit of {MAX_FRAME_BYTES}"),
        ));
    }
    let mut body = vec![0u8; size];
    fill(stream, &mut body, 0, end)?;
    Ok(Incoming::Frame(body))
}

/// Writes one frame (length prefix and body in a single write).
///
/// # Errors
/// I/O errors; `InvalidInput` for a body above [`MAX_FRAME_BYTES`].
pub fn write_frame(stream: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&n| n as usize <= MAX_FRAME_BYTES)
        .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "frame too large"))?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    stream.write_all(&out)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::os::unix::net::UnixStream;

    #[test]
    fn frames_round_trip_back_to_back() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").unwrap();
        write_frame(&mut buf, b"").unwrap();
        let mut r = Cursor::new(buf);
        assert_eq!(
            read_frame(&mut r, FRAME_DEADLINE).unwrap(),
            Incoming::Frame(b"hello".to_vec())
        );
        assert_eq!(
            read_frame(&mut r, FRAME_DEADLINE).unwrap(),
            Incoming::Frame(Vec::new())
        );
        assert_eq!(
            read_frame(&mut r, FRAME_DEADLINE).unwrap(),
            Incoming::Closed
        );
    }

    #[test]
    fn oversized_length_is_rejected_without_allocating_it() {
        let mut r = Cursor::new(u32::MAX.to_le_bytes().to_vec());
        let e = read_frame(&mut r, FRAME_DEADLINE).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData);
    }

    #[test]
    fn truncated_frame_is_an_error() {
        let mut r = Cursor::new(vec![10, 0, 0, 0, 1, 2]);
        let e = read_frame(&mut r, FRAME_DEADLINE).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
    }

    #[test]
    fn idle_stream_reports_idle_and_half_frame_times_out() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        b.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        assert_eq!(
            read_frame(&mut b, Duration::from_millis(100)).unwrap(),
            Incoming::Idle
        );
        a.write_all(&[8, 0, 0, 0, 1]).unwrap();
        let e = read_frame(&mut b, Duration::from_millis(100)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
    }
}
