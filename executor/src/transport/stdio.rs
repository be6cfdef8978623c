//! NDJSON over stdin/stdout. A dedicated thread blocks on each of the two: reading whole
//! lines, and writing queued lines with one flush per burst, so output never interleaves.

use std::fs::File;
use std::io::{self, BufRead, BufWriter, Write};
use std::os::fd::AsFd;
use std::thread;

use tokio::sync::{mpsc, oneshot};

use super::MAX_MESSAGE_BYTES;
use crate::connection::Inbound;
use crate::protocol::outgoing::{Next, Outgoing, StreamedLine};

/// Lines queued for the writer before producers wait. Output lines carry up to 256 KiB
/// of data (about 350 KB of base64), so this bounds the queue to roughly 11 MB.
pub const OUTBOUND_QUEUE: usize = 32;

pub struct StdioTransport {
    pub inbound: mpsc::Receiver<Inbound>,
    pub outbound: mpsc::Sender<Outgoing>,
    /// Fires when the writer has written everything queued and every sender is gone.
    pub writer_done: oneshot::Receiver<()>,
}

pub fn start() -> io::Result<StdioTransport> {
    let (in_tx, inbound) = mpsc::channel(16);
    let (outbound, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let (done_tx, writer_done) = oneshot::channel();
    let closing = in_tx.clone();
    thread::Builder::new().name("stdio-reader".into()).spawn(move || read_lines(io::stdin().lock(), &in_tx))?;
    // fd 1 itself rather than std's stdout, which is line-buffered and would scan every
    // line (megabytes for a readFile response) for a newline before writing it.
    let stdout = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    thread::Builder::new().name("stdio-writer".into()).spawn(move || {
        // A failed write means the client is gone; the reader will see EOF as well. An
        // answer cut short ends the connection from here, since stdin may stay open.
        match write_lines(stdout, out_rx) {
            Ok(()) => {}
            Err(WriteFailure::Io(e)) => tracing::debug!("stdout closed: {e}"),
            Err(WriteFailure::CutShort) => {
                tracing::error!("an answer failed while it was being written; closing the connection (its request did not complete)");
                let _ = closing.blocking_send(Inbound::Closed);
            }
        }
        let _ = done_tx.send(());
    })?;
    Ok(StdioTransport { inbound, outbound, writer_done })
}

/// Reads lines until EOF or a read error; blank lines are skipped and a trailing `\r`
/// is removed. A line over [`MAX_MESSAGE_BYTES`] is passed on as [`Inbound::TooLarge`]
/// and reading goes on after its newline.
pub fn read_lines<R: BufRead>(mut reader: R, tx: &mpsc::Sender<Inbound>) {
    loop {
        let inbound = match read_line(&mut reader) {
            Ok(Line::Complete(line)) if line.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(Line::Complete(line)) => Inbound::Message(line),
            Ok(Line::TooLarge { prefix }) => Inbound::TooLarge { limit: MAX_MESSAGE_BYTES, prefix, then_closed: false },
            Ok(Line::Eof) | Err(_) => {
                let _ = tx.blocking_send(Inbound::Closed);
                return;
            }
        };
        if tx.blocking_send(inbound).is_err() {
            return;
        }
    }
}

/// Bytes kept of an oversized line, enough for the id that clients put first.
const KEPT_PREFIX_BYTES: usize = 16 * 1024;

#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A line without its terminator.
    Complete(Vec<u8>),
    /// A line over the limit, read up to and including its newline (or EOF) but kept
    /// only for its first [`KEPT_PREFIX_BYTES`].
    TooLarge {
        prefix: Vec<u8>,
    },
    Eof,
}

/// The next line. At most the limit (plus a `\r`) is buffered: the rest of a longer
/// line is consumed and dropped as it arrives, so a line of any length costs no more
/// memory than the longest accepted one.
fn read_line<R: BufRead>(reader: &mut R) -> io::Result<Line> {
    let mut line = Vec::new();
    loop {
        let available = fill(reader)?;
        if available.is_empty() {
            return Ok(if line.is_empty() { Line::Eof } else { finish(line) });
        }
        let newline = memchr::memchr(b'\n', available);
        let take = newline.unwrap_or(available.len());
        // The limit, plus one byte for a `\r` that is not part of the message.
        if line.len() + take > MAX_MESSAGE_BYTES + 1 {
            let mut prefix = kept_prefix(&line);
            let missing = KEPT_PREFIX_BYTES.saturating_sub(prefix.len()).min(take);
            prefix.extend_from_slice(&available[..missing]);
            drop(line);
            return skip_rest_of_line(reader, prefix);
        }
        line.extend_from_slice(&available[..take]);
        match newline {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(finish(line));
            }
            None => reader.consume(take),
        }
    }
}

/// The buffered input, read anew when empty (empty at EOF); a read interrupted by a
/// signal is retried.
fn fill<R: BufRead>(reader: &mut R) -> io::Result<&[u8]> {
    loop {
        match reader.fill_buf() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            // Returned by a second call, which finds the data buffered by this one: the
            // borrow checker does not let a loop return the first call's slice.
            Ok(_) => return reader.fill_buf(),
        }
    }
}

/// Strips a trailing `\r` and checks the length of what is left.
fn finish(mut line: Vec<u8>) -> Line {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if line.len() > MAX_MESSAGE_BYTES {
        return Line::TooLarge { prefix: kept_prefix(&line) };
    }
    Line::Complete(line)
}

/// A copy of the start of `line`, so that the large buffer itself can be freed.
fn kept_prefix(line: &[u8]) -> Vec<u8> {
    line[..line.len().min(KEPT_PREFIX_BYTES)].to_vec()
}

/// Consumes input up to and including the next newline (or to EOF).
fn skip_rest_of_line<R: BufRead>(reader: &mut R, prefix: Vec<u8>) -> io::Result<Line> {
    loop {
        let available = fill(reader)?;
        if available.is_empty() {
            return Ok(Line::TooLarge { prefix });
        }
        match memchr::memchr(b'\n', available) {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(Line::TooLarge { prefix });
            }
            None => {
                let n = available.len();
                reader.consume(n);
            }
        }
    }
}

/// Why the writer stopped before its queue ended.
#[derive(Debug)]
enum WriteFailure {
    /// stdout failed: the client is gone.
    Io(io::Error),
    /// A streamed line's producer stopped before finishing it.
    CutShort,
}

impl From<io::Error> for WriteFailure {
    fn from(e: io::Error) -> Self {
        WriteFailure::Io(e)
    }
}

fn write_lines<W: Write>(writer: W, mut rx: mpsc::Receiver<Outgoing>) -> Result<(), WriteFailure> {
    let mut out = BufWriter::with_capacity(256 * 1024, writer);
    while let Some(item) = rx.blocking_recv() {
        write_item(&mut out, item)?;
        // Write whatever else is already queued, then flush once for the burst.
        while let Ok(item) = rx.try_recv() {
            write_item(&mut out, item)?;
        }
        out.flush()?;
    }
    Ok(out.flush()?)
}

fn write_item<W: Write>(out: &mut BufWriter<W>, item: Outgoing) -> Result<(), WriteFailure> {
    match item {
        Outgoing::Line(line) => {
            out.write_all(&line)?;
            Ok(out.write_all(b"\n")?)
        }
        Outgoing::Streamed(line) => write_streamed(out, line),
    }
}

/// Writes the pieces as they come, flushing each one so that the client reads the start
/// of the answer while the rest is produced. Nothing else is written in between.
fn write_streamed<W: Write>(out: &mut BufWriter<W>, mut line: StreamedLine) -> Result<(), WriteFailure> {
    loop {
        match line.blocking_next() {
            Next::Write(piece) => {
                out.write_all(&piece)?;
                out.flush()?;
            }
            Next::Finished => return Ok(out.write_all(b"\n")?),
            Next::CutShort => {
                // The client sees the line end unfinished (no newline), then EOF.
                let _ = out.flush();
                return Err(WriteFailure::CutShort);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<Line> {
        // A small buffer, so that lines span many fill_buf calls.
        let mut reader = io::BufReader::with_capacity(7, io::Cursor::new(input.to_vec()));
        let mut out = Vec::new();
        loop {
            match read_line(&mut reader) {
                Ok(Line::Eof) => return out,
                Ok(line) => out.push(line),
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    fn complete(text: &[u8]) -> Line {
        Line::Complete(text.to_vec())
    }

    #[test]
    fn crlf_and_missing_final_newline() {
        assert_eq!(lines(b"a\r\nb\nc"), vec![complete(b"a"), complete(b"b"), complete(b"c")]);
    }

    #[test]
    fn exactly_the_limit_passes_and_one_more_byte_is_too_large() {
        let mut ok = vec![b'x'; MAX_MESSAGE_BYTES];
        ok.extend_from_slice(b"\r\n");
        assert!(matches!(&lines(&ok)[..], [Line::Complete(l)] if l.len() == MAX_MESSAGE_BYTES));
        let mut too_long = vec![b'x'; MAX_MESSAGE_BYTES + 1];
        too_long.push(b'\n');
        assert!(matches!(&lines(&too_long)[..], [Line::TooLarge { .. }]));
        // Without a newline at all, and with a `\r` that does not end the line.
        let mut cr_inside = vec![b'x'; MAX_MESSAGE_BYTES];
        cr_inside.extend_from_slice(b"\ry\n");
        assert!(matches!(&lines(&too_long[..MAX_MESSAGE_BYTES + 1])[..], [Line::TooLarge { .. }]));
        assert!(matches!(&lines(&cr_inside)[..], [Line::TooLarge { .. }]));
    }

    #[test]
    fn reading_goes_on_after_an_oversized_line_which_keeps_only_its_start() {
        let mut input = br#"{"id":9,"method":"fs/writeFile","params":{"dataBase64":""#.to_vec();
        let head = input.clone();
        input.resize(MAX_MESSAGE_BYTES + 4096, b'A');
        input.extend_from_slice(b"\"}}\nnext\n");
        let read = lines(&input);
        let [Line::TooLarge { prefix }, next] = &read[..] else { panic!("{:?}", read.len()) };
        assert_eq!(prefix.len(), KEPT_PREFIX_BYTES);
        assert!(prefix.starts_with(&head));
        assert_eq!(next, &complete(b"next"));
    }
}
