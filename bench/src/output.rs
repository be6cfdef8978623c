//! Counting the bytes carried by `process/output` notifications.
//!
//! A streaming workload receives hundreds of MiB of base64 in these lines, so the
//! common case is handled without building a JSON tree: find the `"chunk":"` key,
//! take the string up to the next quote, and look for the other fields only in the
//! short remainder of the line. In compact JSON a key pattern such as `"chunk":"`
//! cannot occur inside a string value (the quotes would be escaped), so this is
//! exact for any compact encoder. Anything unusual (spaces after colons, escapes
//! inside the value) falls back to a full parse. Every chunk is base64-decoded:
//! the count is of decoded bytes, and a chunk that does not decode is an error.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

use crate::client::preview;
use crate::error::{Error, Result};
use crate::fail;

/// The fields of one `process/output` notification, borrowed from the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFields<'a> {
    pub process_id: &'a [u8],
    pub stream: &'a [u8],
    pub chunk_base64: &'a [u8],
}

extern "C" {
    /// libc `memchr(3)` (vectorised in glibc); std links libc already.
    fn memchr(s: *const std::ffi::c_void, c: i32, n: usize) -> *const std::ffi::c_void;
}

/// Index of the first `byte` in `hay`. The chunk strings are long (tens of KiB), so
/// this is the hot loop of the streaming workload.
pub(crate) fn find_byte(hay: &[u8], byte: u8) -> Option<usize> {
    // SAFETY: the pointer and length describe the live slice `hay`; memchr reads
    // at most `hay.len()` bytes and returns null or a pointer into that range.
    let found = unsafe { memchr(hay.as_ptr().cast(), i32::from(byte), hay.len()) };
    (!found.is_null()).then(|| found as usize - hay.as_ptr() as usize)
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The string value after `key` (given as `"name":"`), if it has no escapes.
fn string_after<'a>(part: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let start = find(part, key)? + key.len();
    let len = part[start..].iter().position(|&b| b == b'"')?;
    let value = &part[start..start + len];
    (!value.contains(&b'\\')).then_some(value)
}

/// Extracts the fields from a compact `process/output` line; `None` if the line is
/// not one or is not in the compact form this expects.
pub fn fast_fields(line: &[u8]) -> Option<OutputFields<'_>> {
    const CHUNK: &[u8] = b"\"chunk\":\"";
    let key = find(line, CHUNK)?;
    let start = key + CHUNK.len();
    let len = find_byte(&line[start..], b'"')?;
    let chunk_base64 = &line[start..start + len];
    if find_byte(chunk_base64, b'\\').is_some() {
        return None;
    }
    let (before, after) = (&line[..key], &line[start + len + 1..]);
    let field = |k: &[u8]| string_after(before, k).or_else(|| string_after(after, k));
    if field(b"\"method\":\"")? != b"process/output" {
        return None;
    }
    Some(OutputFields { process_id: field(b"\"processId\":\"")?, stream: field(b"\"stream\":\"")?, chunk_base64 })
}

/// Totals of the output of one process.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OutputTotals {
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub other_bytes: u64,
    pub chunks: u64,
    pub max_chunk: u64,
    /// Chunks holding a byte other than zero (the streaming workload reads
    /// `/dev/zero`, so any such chunk means corrupted output).
    pub nonzero_chunks: u64,
}

/// Decodes and counts the output of one process.
pub struct OutputCounter {
    process_id: String,
    decoded: Vec<u8>,
    pub totals: OutputTotals,
}

impl OutputCounter {
    pub fn new(process_id: &str) -> Self {
        Self { process_id: process_id.to_string(), decoded: Vec::new(), totals: OutputTotals::default() }
    }

    /// Counts `line` if it is a compact output notification of our process and
    /// returns true; returns false for every other line (the caller parses those).
    pub fn try_fast(&mut self, line: &[u8]) -> Result<bool> {
        let Some(fields) = fast_fields(line) else { return Ok(false) };
        if fields.process_id != self.process_id.as_bytes() {
            return Ok(true); // someone else's output: not ours to count
        }
        self.add(fields.stream, fields.chunk_base64)?;
        Ok(true)
    }

    /// Counts the params of a fully parsed `process/output` notification.
    pub fn add_params(&mut self, params: &Value) -> Result<()> {
        if params.get("processId").and_then(Value::as_str) != Some(self.process_id.as_str()) {
            return Ok(());
        }
        let (Some(stream), Some(chunk)) = (params.get("stream").and_then(Value::as_str), params.get("chunk").and_then(Value::as_str))
        else {
            fail!("process/output without string stream/chunk: {params}")
        };
        self.add(stream.as_bytes(), chunk.as_bytes())
    }

    fn add(&mut self, stream: &[u8], chunk_base64: &[u8]) -> Result<()> {
        let need = chunk_base64.len().div_ceil(4) * 3;
        if self.decoded.len() < need {
            self.decoded.resize(need, 0);
        }
        let n = STANDARD
            .decode_slice(chunk_base64, &mut self.decoded)
            .map_err(|e| Error(format!("chunk is not valid base64 ({e}): {}", preview(chunk_base64))))?;
        let bytes = n as u64;
        let t = &mut self.totals;
        match stream {
            b"stdout" | b"pty" => t.stdout_bytes += bytes,
            b"stderr" => t.stderr_bytes += bytes,
            _ => t.other_bytes += bytes,
        }
        t.chunks += 1;
        t.max_chunk = t.max_chunk.max(bytes);
        // An OR over the bytes vectorises well; counting them does not.
        if self.decoded[..n].iter().fold(0u8, |acc, &b| acc | b) != 0 {
            t.nonzero_chunks += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &[u8] = br#"{"method":"process/output","params":{"processId":"s1","seq":1,"stream":"stdout","chunk":"aGVsbG8K"}}"#;

    #[test]
    fn compact_line_is_read_without_parsing() {
        let f = fast_fields(LINE).expect("fast path");
        assert_eq!((f.process_id, f.stream, f.chunk_base64), (&b"s1"[..], &b"stdout"[..], &b"aGVsbG8K"[..]));
    }

    #[test]
    fn member_order_does_not_matter() {
        let line = br#"{"params":{"chunk":"AAA=","stream":"stderr","seq":2,"processId":"x"},"method":"process/output"}"#;
        let f = fast_fields(line).expect("fast path");
        assert_eq!((f.process_id, f.stream, f.chunk_base64), (&b"x"[..], &b"stderr"[..], &b"AAA="[..]));
    }

    #[test]
    fn unusual_forms_fall_back() {
        assert!(fast_fields(br#"{"method": "process/output","params":{"processId":"a","stream":"stdout","chunk": "AA=="}}"#).is_none());
        assert!(fast_fields(br#"{"method":"process/output","params":{"processId":"a","stream":"stdout","chunk":"AA\/A"}}"#).is_none());
        assert!(fast_fields(br#"{"method":"process/exited","params":{"processId":"a","chunk":"AA=="}}"#).is_none());
    }

    #[test]
    fn decoded_bytes_are_counted_per_stream() {
        let mut c = OutputCounter::new("s1");
        assert_eq!(c.try_fast(LINE), Ok(true));
        let params = serde_json::json!({"processId":"s1","stream":"stderr","chunk":"AAAA"});
        c.add_params(&params).expect("valid");
        let other = serde_json::json!({"processId":"s2","stream":"stdout","chunk":"AAAA"});
        c.add_params(&other).expect("ignored");
        let t = &c.totals;
        assert_eq!((t.stdout_bytes, t.stderr_bytes, t.chunks, t.max_chunk, t.nonzero_chunks), (6, 3, 2, 6, 1));
    }

    #[test]
    fn bad_base64_is_an_error() {
        let mut c = OutputCounter::new("a");
        let line = br#"{"method":"process/output","params":{"processId":"a","stream":"stdout","chunk":"!!!!"}}"#;
        assert!(c.try_fast(line).is_err());
    }
}
