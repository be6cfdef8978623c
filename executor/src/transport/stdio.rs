//! NDJSON over stdin/stdout. A dedicated thread blocks on each of the two: reading whole
//! lines, and writing queued lines with one flush per burst, so output never interleaves.

use std::fs::File;
use std::io::{self, BufRead, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::thread;

use tokio::sync::{mpsc, oneshot};

use super::MAX_MESSAGE_BYTES;
use crate::server::Inbound;

/// Lines queued for the writer before producers wait. Output lines carry up to 256 KiB
/// of data (about 350 KB of base64), so this bounds the queue to roughly 11 MB.
pub const OUTBOUND_QUEUE: usize = 32;

pub struct StdioTransport {
    pub inbound: mpsc::Receiver<Inbound>,
    pub outbound: mpsc::Sender<Vec<u8>>,
    /// Fires when the writer has written everything queued and every sender is gone.
    pub writer_done: oneshot::Receiver<()>,
}

pub fn start() -> io::Result<StdioTransport> {
    let (in_tx, inbound) = mpsc::channel(16);
    let (outbound, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let (done_tx, writer_done) = oneshot::channel();
    thread::Builder::new().name("stdio-reader".into()).spawn(move || read_lines(io::stdin().lock(), &in_tx))?;
    // fd 1 itself rather than std's stdout, which is line-buffered and would scan every
    // line (megabytes for a readFile response) for a newline before writing it.
    let stdout = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    thread::Builder::new().name("stdio-writer".into()).spawn(move || {
        // A failed write means the client is gone; the reader will see EOF as well.
        let _ = write_lines(stdout, out_rx);
        let _ = done_tx.send(());
    })?;
    Ok(StdioTransport { inbound, outbound, writer_done })
}

/// Reads lines until EOF, an error or an oversized line; blank lines are skipped and a
/// trailing `\r` is removed.
pub fn read_lines<R: BufRead>(mut reader: R, tx: &mpsc::Sender<Inbound>) {
    loop {
        match read_line(&mut reader) {
            Ok(Some(line)) => {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if tx.blocking_send(Inbound::Message(line)).is_err() {
                    return;
                }
            }
            Ok(None) | Err(_) => {
                let _ = tx.blocking_send(Inbound::Closed);
                return;
            }
        }
    }
}

/// One line without its terminator; `None` at EOF. An over-long line is an error.
fn read_line<R: BufRead>(reader: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let mut limited = reader.by_ref().take(MAX_MESSAGE_BYTES as u64 + 2);
    let n = limited.read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if n as u64 == MAX_MESSAGE_BYTES as u64 + 2 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "message exceeds the size limit"));
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if line.len() > MAX_MESSAGE_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "message exceeds the size limit"));
    }
    Ok(Some(line))
}

fn write_lines<W: Write>(writer: W, mut rx: mpsc::Receiver<Vec<u8>>) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(256 * 1024, writer);
    while let Some(line) = rx.blocking_recv() {
        write_line(&mut out, &line)?;
        // Write whatever else is already queued, then flush once for the burst.
        while let Ok(line) = rx.try_recv() {
            write_line(&mut out, &line)?;
        }
        out.flush()?;
    }
    out.flush()
}

fn write_line<W: Write>(out: &mut W, line: &[u8]) -> io::Result<()> {
    out.write_all(line)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<Result<Vec<u8>, ()>> {
        let mut reader = io::Cursor::new(input.to_vec());
        let mut out = Vec::new();
        loop {
            match read_line(&mut reader) {
                Ok(Some(l)) => out.push(Ok(l)),
                Ok(None) => return out,
                Err(_) => {
                    out.push(Err(()));
                    return out;
                }
            }
        }
    }

    #[test]
    fn crlf_and_missing_final_newline() {
        assert_eq!(lines(b"a\r\nb\nc"), vec![Ok(b"a".to_vec()), Ok(b"b".to_vec()), Ok(b"c".to_vec())]);
    }

    #[test]
    fn exactly_the_limit_passes_and_one_more_byte_fails() {
        let mut ok = vec![b'x'; MAX_MESSAGE_BYTES];
        ok.extend_from_slice(b"\r\n");
        assert_eq!(lines(&ok).len(), 1);
        assert!(lines(&ok)[0].is_ok());
        let mut too_long = vec![b'x'; MAX_MESSAGE_BYTES + 1];
        too_long.push(b'\n');
        assert_eq!(lines(&too_long), vec![Err(())]);
    }
}
