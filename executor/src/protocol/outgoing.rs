//! What a connection's writer sends: whole lines, and lines written while they are
//! produced (a large `fs/readFile` answer), so that the first bytes leave before the
//! last are read and the server never holds the whole line.
//!
//! A streamed line is still one message: the writer sends nothing else between its
//! pieces. Its producer ends it with [`LineWriter::finish`]; a producer that stops
//! without finishing (the file failed mid-read) leaves a line that cannot be completed,
//! and the writer then ends the connection instead of sending anything more on it,
//! because the client could not tell a cut-short answer from a whole one otherwise.

use tokio::sync::mpsc;

/// Pieces of a streamed line queued ahead of the writer: bounded, so that a slow client
/// slows the producer instead of the line piling up in memory. One is enough to keep the
/// writer busy, and more only made the producer compete with the writer for the CPU
/// before the first piece was out (first byte of a 64 MiB readFile 0.9-1.2 ms with one,
/// 1.5-2.1 ms with four, same throughput; docs/benchmarks.md).
pub const STREAM_PIECES: usize = 1;

/// One item of a connection's outbound queue.
#[derive(Debug)]
pub enum Outgoing {
    /// A complete line, without its newline.
    Line(Vec<u8>),
    /// A line sent in pieces as they are produced.
    Streamed(StreamedLine),
}

impl From<Vec<u8>> for Outgoing {
    fn from(line: Vec<u8>) -> Self {
        Outgoing::Line(line)
    }
}

impl Outgoing {
    /// The complete line; `None` for a streamed one.
    pub fn into_line(self) -> Option<Vec<u8>> {
        match self {
            Outgoing::Line(line) => Some(line),
            Outgoing::Streamed(_) => None,
        }
    }
}

enum Piece {
    Bytes(Vec<u8>),
    End,
}

/// The writer's end of a streamed line.
pub struct StreamedLine {
    pieces: mpsc::Receiver<Piece>,
}

impl std::fmt::Debug for StreamedLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamedLine")
    }
}

/// The next thing a writer does with a streamed line.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Write these bytes (part of the line).
    Write(Vec<u8>),
    /// The line is complete: write its newline.
    Finished,
    /// The producer stopped without finishing the line: end the connection.
    CutShort,
}

impl StreamedLine {
    /// A streamed line and the producer's end of it.
    pub fn channel() -> (StreamedLine, LineWriter) {
        let (tx, pieces) = mpsc::channel(STREAM_PIECES);
        (StreamedLine { pieces }, LineWriter { tx })
    }

    /// For a writer on a plain thread.
    pub fn blocking_next(&mut self) -> Next {
        Self::next_of(self.pieces.blocking_recv())
    }

    /// For a writer on the runtime.
    pub async fn next(&mut self) -> Next {
        Self::next_of(self.pieces.recv().await)
    }

    fn next_of(piece: Option<Piece>) -> Next {
        match piece {
            Some(Piece::Bytes(bytes)) => Next::Write(bytes),
            Some(Piece::End) => Next::Finished,
            None => Next::CutShort,
        }
    }
}

/// The producer's end of a streamed line. Dropping it without [`LineWriter::finish`]
/// cuts the line short.
pub struct LineWriter {
    tx: mpsc::Sender<Piece>,
}

/// The writer is gone (the connection closed): nothing more of the line is wanted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the connection closed while its answer was being written")]
pub struct WriterGone;

impl LineWriter {
    /// Queues the next piece, waiting while [`STREAM_PIECES`] are queued. For a
    /// producer on a blocking thread, never on the runtime.
    pub fn blocking_write(&self, bytes: Vec<u8>) -> Result<(), WriterGone> {
        self.tx.blocking_send(Piece::Bytes(bytes)).map_err(|_| WriterGone)
    }

    /// Queues a piece without waiting; only for the first [`STREAM_PIECES`] pieces.
    pub fn write_now(&self, bytes: Vec<u8>) -> Result<(), WriterGone> {
        self.tx.try_send(Piece::Bytes(bytes)).map_err(|_| WriterGone)
    }

    /// Marks the line complete.
    pub fn blocking_finish(self) -> Result<(), WriterGone> {
        self.tx.blocking_send(Piece::End).map_err(|_| WriterGone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_arrive_in_order_and_the_end_is_explicit() {
        let (mut line, writer) = StreamedLine::channel();
        let producer = std::thread::spawn(move || {
            writer.write_now(b"{\"a\":".to_vec())?;
            for i in 0..20u8 {
                writer.blocking_write(vec![b'0' + i % 10])?;
            }
            writer.blocking_write(b"}".to_vec())?;
            writer.blocking_finish()
        });
        let mut got = Vec::new();
        loop {
            match line.blocking_next() {
                Next::Write(bytes) => got.extend(bytes),
                Next::Finished => break,
                Next::CutShort => panic!("cut short"),
            }
        }
        assert_eq!(producer.join().ok(), Some(Ok(())));
        assert_eq!(got, b"{\"a\":01234567890123456789}".to_vec());
    }

    #[test]
    fn a_producer_that_stops_early_cuts_the_line_short() {
        let (mut line, writer) = StreamedLine::channel();
        assert_eq!(writer.write_now(b"{\"a\":".to_vec()), Ok(()));
        drop(writer);
        assert_eq!(line.blocking_next(), Next::Write(b"{\"a\":".to_vec()));
        assert_eq!(line.blocking_next(), Next::CutShort);
    }

    #[test]
    fn a_gone_writer_stops_the_producer() {
        let (line, writer) = StreamedLine::channel();
        drop(line);
        assert_eq!(writer.blocking_write(vec![1]), Err(WriterGone));
    }
}
