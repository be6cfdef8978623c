//! Per-process event log: output chunks, the exit and the close share one seq counter
//! starting at 1; output is retained up to a byte cap with whole-chunk eviction.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::protocol::types::{ProcessReadResult, ReadChunk, StreamName};

/// Retained output per process (protocol.md §5.4).
pub const RETAINED_OUTPUT_BYTES: usize = 1024 * 1024;

#[derive(Debug)]
struct Chunk {
    seq: u64,
    stream: StreamName,
    raw_len: usize,
    /// Base64, encoded once and shared by the notification and every later read.
    encoded: Arc<str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitRecord {
    pub seq: u64,
    pub code: i32,
    pub sandbox_denied: bool,
}

#[derive(Debug)]
pub struct OutputLog {
    next_seq: u64,
    chunks: VecDeque<Chunk>,
    retained_bytes: usize,
    exit: Option<ExitRecord>,
    closed_seq: Option<u64>,
}

impl Default for OutputLog {
    fn default() -> Self {
        Self { next_seq: 1, chunks: VecDeque::new(), retained_bytes: 0, exit: None, closed_seq: None }
    }
}

impl OutputLog {
    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Appends a chunk and returns its seq; evicts the oldest whole chunks over the cap.
    pub fn push_output(&mut self, stream: StreamName, raw_len: usize, encoded: Arc<str>) -> u64 {
        let seq = self.take_seq();
        self.chunks.push_back(Chunk { seq, stream, raw_len, encoded });
        self.retained_bytes += raw_len;
        while self.retained_bytes > RETAINED_OUTPUT_BYTES && self.chunks.len() > 1 {
            if let Some(old) = self.chunks.pop_front() {
                self.retained_bytes -= old.raw_len;
            }
        }
        seq
    }

    pub fn record_exit(&mut self, code: i32, sandbox_denied: bool) -> ExitRecord {
        let record = ExitRecord { seq: self.take_seq(), code, sandbox_denied };
        self.exit = Some(record);
        record
    }

    pub fn record_close(&mut self) -> u64 {
        let seq = self.take_seq();
        self.closed_seq = Some(seq);
        seq
    }

    /// Nothing has been recorded yet.
    pub fn is_pristine(&self) -> bool {
        self.next_seq == 1
    }

    pub fn exit(&self) -> Option<ExitRecord> {
        self.exit
    }

    pub fn is_closed(&self) -> bool {
        self.closed_seq.is_some()
    }

    /// Whether a read after `after_seq` has something to report now (§5.5 step 4).
    pub fn has_news_after(&self, after_seq: u64) -> bool {
        self.chunks.back().is_some_and(|c| c.seq > after_seq) || self.is_closed() || self.exit.is_some_and(|e| e.seq > after_seq)
    }

    /// The `process/read` answer (§5.5 steps 1–3).
    pub fn read(&self, after_seq: u64, max_bytes: Option<u64>) -> ProcessReadResult {
        let mut chunks = Vec::new();
        let mut total: u64 = 0;
        let mut cut_short = false;
        for chunk in self.chunks.iter().filter(|c| c.seq > after_seq) {
            let len = chunk.raw_len as u64;
            if let Some(max) = max_bytes {
                if !chunks.is_empty() && (total >= max || total + len > max) {
                    cut_short = true;
                    break;
                }
            }
            total += len;
            chunks.push(ReadChunk { seq: chunk.seq, stream: chunk.stream, chunk: chunk.encoded.clone() });
        }
        // Once the process has closed no event can follow, so a read that returned all that
        // is left points past the last event (the close), as the reference does (§5.5: after
        // `echo hello`, chunk 1 + exited 2 + closed 3 → nextSeq 4). While it runs, or when
        // `maxBytes` left chunks behind, the next read must start right after the last chunk.
        let next_seq = match chunks.last() {
            Some(last) if cut_short || !self.is_closed() => last.seq + 1,
            _ => self.next_seq,
        };
        ProcessReadResult {
            chunks,
            next_seq,
            exited: self.exit.is_some(),
            exit_code: self.exit.map(|e| e.code),
            closed: self.is_closed(),
            failure: None,
            sandbox_denied: self.exit.is_some_and(|e| e.sandbox_denied),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(log: &mut OutputLog, len: usize) -> u64 {
        log.push_output(StreamName::Stdout, len, Arc::from("x"))
    }

    #[test]
    fn seq_is_shared_by_output_exit_and_close() {
        let mut log = OutputLog::default();
        assert_eq!(push(&mut log, 1), 1);
        assert_eq!(log.record_exit(0, false).seq, 2);
        assert_eq!(log.record_close(), 3);
        let r = log.read(0, None);
        assert_eq!((r.chunks.len(), r.next_seq), (1, 4), "after the close nextSeq is past the last event");
        let r = log.read(3, None);
        assert_eq!((r.chunks.len(), r.next_seq, r.closed), (0, 4, true));
    }

    #[test]
    fn first_chunk_always_returned_even_with_max_bytes_zero() {
        let mut log = OutputLog::default();
        for _ in 0..3 {
            push(&mut log, 4);
        }
        assert_eq!(log.read(0, Some(0)).chunks.len(), 1);
        assert_eq!(log.read(0, Some(6)).chunks.len(), 1);
        assert_eq!(log.read(0, Some(8)).chunks.len(), 2);
        assert_eq!(log.read(1, Some(100)).chunks.len(), 2);
        assert_eq!(log.read(0, Some(6)).next_seq, 2);
        log.record_exit(0, false);
        assert_eq!(log.read(0, None).next_seq, 4, "running: right after the last chunk");
        log.record_close();
        assert_eq!(log.read(0, Some(6)).next_seq, 2, "cut short by maxBytes: right after the last returned chunk");
        assert_eq!(log.read(0, None).next_seq, 6, "closed, all returned: past the close");
    }

    #[test]
    fn eviction_drops_whole_oldest_chunks() {
        let mut log = OutputLog::default();
        for _ in 0..300 {
            push(&mut log, 8192);
        }
        let r = log.read(0, None);
        let bytes = r.chunks.len() * 8192;
        assert!(bytes <= RETAINED_OUTPUT_BYTES && bytes > RETAINED_OUTPUT_BYTES - 8192);
        assert_eq!(r.chunks.last().map(|c| c.seq), Some(300));
        assert!(r.chunks[0].seq > 1, "oldest chunks were evicted");
    }

    #[test]
    fn news_rules() {
        let mut log = OutputLog::default();
        assert!(!log.has_news_after(0));
        push(&mut log, 1);
        assert!(log.has_news_after(0));
        assert!(!log.has_news_after(1));
        log.record_exit(0, false);
        assert!(log.has_news_after(1));
        assert!(!log.has_news_after(2), "a passed exit alone does not end the wait");
        log.record_close();
        assert!(log.has_news_after(3));
    }
}
