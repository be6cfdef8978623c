//! The audit trail (`--audit-log FILE`): one JSON line per decision — connections
//! accepted or refused, sessions started, resumed and expired, processes started and
//! exited, fs writes and removes — hash-chained so that an edited, removed or reordered
//! line is detected by `executor audit verify FILE`.
//!
//! Each line is a JSON object with `seq` (1, 2, ...), `tsMs` (Unix milliseconds), `prev`
//! (hex SHA-256 of the previous line's bytes, without its newline; 64 zeros for the
//! first line of a file) and `event`, plus the event's fields. Reopening an existing log
//! continues its chain.
//!
//! Never blocking request handling: events go through a bounded queue to one writer
//! thread; when the queue is full the event is dropped and counted, and the writer
//! records an `audit.dropped` line with the count before the next line it writes.
//! fsync policy: the writer writes what is queued (up to [`BATCH`] lines) with one
//! `write` and then `fdatasync`s before it waits again, so a crash loses at most the
//! batch in flight; an event is on disk well before the request after it is answered on
//! a lightly loaded server, not necessarily before its own answer.
//!
//! The sink is process-wide (one log per executor) so that the handlers that report to
//! it need only a one-line call and no plumbing through the server state.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Events queued before new ones are dropped (and counted).
pub const QUEUE: usize = 8192;
/// Lines written (and fsync'd) together at most.
pub const BATCH: usize = 512;
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

static SINK: OnceLock<Sink> = OnceLock::new();

struct Sink {
    tx: SyncSender<Command>,
    dropped: AtomicU64,
}

enum Command {
    Event(Map<String, Value>),
    /// Answered once everything queued before it is on disk.
    Flush(mpsc::Sender<()>),
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open the audit log `{path}`: {error}")]
    Open { path: PathBuf, error: std::io::Error },
    #[error("the audit log `{path}` ends with a line that is not a chained audit record (line {line}); check it with `executor audit verify` and move it aside")]
    BadTail { path: PathBuf, line: usize },
    #[error("an audit log is already open")]
    AlreadyOpen,
    #[error("cannot start the audit log writer: {0}")]
    Thread(std::io::Error),
}

/// Whether `--audit-log` is on (handlers skip building events when it is not).
pub fn enabled() -> bool {
    SINK.get().is_some()
}

/// Opens (or continues) the log at `path` and starts its writer.
pub fn open(path: &Path) -> Result<(), AuditError> {
    let open_error = |error| AuditError::Open { path: path.to_owned(), error };
    let (seq, prev) = tail_of(path)?;
    let file = OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(open_error)?;
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    SINK.set(Sink { tx, dropped: AtomicU64::new(0) }).map_err(|_| AuditError::AlreadyOpen)?;
    std::thread::Builder::new().name("audit-log".into()).spawn(move || writer(file, rx, seq, prev)).map_err(AuditError::Thread)?;
    Ok(())
}

/// Records `event` with `fields` (an object); never blocks.
pub fn record(event: &str, fields: Value) {
    let Some(sink) = SINK.get() else { return };
    let mut map = match fields {
        Value::Object(map) => map,
        other => Map::from_iter([("value".to_owned(), other)]),
    };
    map.insert("event".into(), Value::String(event.to_owned()));
    match sink.tx.try_send(Command::Event(map)) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            if sink.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!("audit log queue full: events are being dropped (each gap is recorded in the log)");
            }
        }
        Err(TrySendError::Disconnected(_)) => {}
    }
}

/// Waits (bounded) until every event recorded so far is on disk; for shutdown.
pub fn flush(timeout: std::time::Duration) {
    let Some(sink) = SINK.get() else { return };
    let (done, wait) = mpsc::channel();
    // At shutdown a blocking send is fine: nothing else is being answered.
    if sink.tx.send(Command::Flush(done)).is_ok() {
        let _ = wait.recv_timeout(timeout);
    }
}

/// `seq` and hash of the last line of an existing log (0 and the genesis hash for none).
fn tail_of(path: &Path) -> Result<(u64, String), AuditError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, GENESIS.to_owned())),
        Err(error) => return Err(AuditError::Open { path: path.to_owned(), error }),
    };
    let mut last: Option<(usize, Vec<u8>)> = None;
    let mut reader = BufReader::new(file);
    let mut number = 0;
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {
                number += 1;
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                last = Some((number, line));
            }
            Err(error) => return Err(AuditError::Open { path: path.to_owned(), error }),
        }
    }
    let Some((number, line)) = last else { return Ok((0, GENESIS.to_owned())) };
    let seq = serde_json::from_slice::<Value>(&line).ok().and_then(|v| v.get("seq").and_then(Value::as_u64));
    match seq {
        Some(seq) => Ok((seq, hex(&Sha256::digest(&line)))),
        None => Err(AuditError::BadTail { path: path.to_owned(), line: number }),
    }
}

fn writer(mut file: File, rx: Receiver<Command>, mut seq: u64, mut prev: String) {
    let mut buf = Vec::new();
    let mut flushes = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        buf.clear();
        let dropped = SINK.get().map_or(0, |s| s.dropped.swap(0, Ordering::Relaxed));
        if dropped > 0 {
            append_line(
                &mut buf,
                &mut seq,
                &mut prev,
                Map::from_iter([("event".to_owned(), json!("audit.dropped")), ("count".to_owned(), json!(dropped))]),
            );
        }
        for command in batch {
            match command {
                Command::Event(map) => append_line(&mut buf, &mut seq, &mut prev, map),
                Command::Flush(done) => flushes.push(done),
            }
        }
        if !buf.is_empty() {
            if let Err(e) = file.write_all(&buf).and_then(|()| file.sync_data()) {
                tracing::error!("cannot write the audit log: {e}");
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

fn append_line(buf: &mut Vec<u8>, seq: &mut u64, prev: &mut String, mut map: Map<String, Value>) {
    *seq += 1;
    map.insert("seq".into(), json!(*seq));
    map.insert("tsMs".into(), json!(now_ms()));
    map.insert("prev".into(), json!(prev.as_str()));
    // A map of JSON values always serializes.
    let line = serde_json::to_vec(&Value::Object(map)).unwrap_or_default();
    *prev = hex(&Sha256::digest(&line));
    buf.extend_from_slice(&line);
    buf.push(b'\n');
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why `verify` rejected a log; the line number is 1-based.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("cannot read `{0}`: {1}")]
    Read(PathBuf, String),
    #[error("line {0}: not a JSON audit record")]
    NotARecord(usize),
    #[error("line {line}: seq {found}, expected {expected} (a line was removed, inserted or reordered before it)")]
    Seq { line: usize, found: u64, expected: u64 },
    #[error("line {0}: prev is not the SHA-256 of the line before it (that line was edited, or lines were removed or reordered)")]
    Chain(usize),
}

/// What a log that verified holds.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub lines: usize,
    /// Hash of the last line: keep it elsewhere to detect a later truncation or an edit
    /// of the last line, which the chain alone cannot show.
    pub head: String,
}

/// Checks the chain of the log at `path`.
pub fn verify(path: &Path) -> Result<Verified, VerifyError> {
    let text = std::fs::read(path).map_err(|e| VerifyError::Read(path.to_owned(), e.to_string()))?;
    // The newline that ends the last line ends no further line.
    let text = text.strip_suffix(b"\n").unwrap_or(&text);
    let mut prev = GENESIS.to_owned();
    let mut expected_seq: Option<u64> = None;
    let mut lines = 0;
    for (index, line) in text.split(|b| *b == b'\n').enumerate().filter(|_| !text.is_empty()) {
        let number = index + 1;
        let record: Value = serde_json::from_slice(line).map_err(|_| VerifyError::NotARecord(number))?;
        let (Some(seq), Some(claimed)) = (record.get("seq").and_then(Value::as_u64), record.get("prev").and_then(Value::as_str)) else {
            return Err(VerifyError::NotARecord(number));
        };
        // Every file starts at seq 1 (a restarted executor continues the file's chain), so
        // a removed first line shows too.
        let expected = expected_seq.unwrap_or(1);
        if seq != expected {
            return Err(VerifyError::Seq { line: number, found: seq, expected });
        }
        if claimed != prev {
            return Err(VerifyError::Chain(number));
        }
        prev = hex(&Sha256::digest(line));
        expected_seq = Some(seq + 1);
        lines += 1;
    }
    Ok(Verified { lines, head: prev })
}

/// The size of what `data` decodes to, from its length alone (a client's `dataBase64` may
/// be anything; the handler reports invalid base64 itself).
pub fn base64_decoded_len(data: &str) -> usize {
    let padding = data.bytes().rev().take_while(|b| *b == b'=').count().min(2);
    (data.len() / 4 * 3).saturating_sub(padding)
}

/// Whether an environment variable's value must not be written to the log.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["SECRET", "TOKEN", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL", "AUTH", "COOKIE", "SESSION", "PRIVATE"]
        .iter()
        .any(|word| upper.contains(word))
}

/// The environment for a `process.started` line: names with values, secret-looking values
/// replaced by `[redacted]`.
pub fn redacted_env<'a>(env: impl IntoIterator<Item = (&'a String, &'a String)>) -> Value {
    let map: Map<String, Value> = env
        .into_iter()
        .map(|(name, value)| {
            let value = if looks_secret(name) { "[redacted]".to_owned() } else { value.clone() };
            (name.clone(), Value::String(value))
        })
        .collect();
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<u8> {
        let (mut buf, mut seq, mut prev) = (Vec::new(), 0, GENESIS.to_owned());
        for i in 0..n {
            append_line(&mut buf, &mut seq, &mut prev, Map::from_iter([("event".to_owned(), json!(format!("e{i}")))]));
        }
        buf
    }

    fn verify_bytes(bytes: &[u8]) -> Result<Verified, VerifyError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        std::fs::write(&path, bytes).expect("write");
        verify(&path)
    }

    #[test]
    fn intact_chain_verifies_and_tampering_is_found() {
        let log = chain(5);
        assert_eq!(verify_bytes(&log).map(|v| v.lines), Ok(5));
        let lines: Vec<&[u8]> = log.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        let join = |ls: &[&[u8]]| ls.iter().flat_map(|l| [*l, b"\n"].concat()).collect::<Vec<u8>>();
        // Edit line 2: line 3's prev no longer matches.
        let edited = String::from_utf8_lossy(lines[1]).replace("e1", "eX");
        assert_eq!(verify_bytes(&join(&[lines[0], edited.as_bytes(), lines[2], lines[3], lines[4]])), Err(VerifyError::Chain(3)));
        // Remove line 3.
        assert!(matches!(verify_bytes(&join(&[lines[0], lines[1], lines[3], lines[4]])), Err(VerifyError::Seq { line: 3, .. })));
        // Swap lines 2 and 3.
        assert!(verify_bytes(&join(&[lines[0], lines[2], lines[1], lines[3], lines[4]])).is_err());
        // Remove the first line.
        assert!(matches!(verify_bytes(&join(&lines[1..])), Err(VerifyError::Seq { line: 1, found: 2, expected: 1 })));
        // Remove the last line: the chain alone cannot tell, the head hash does.
        let whole = verify_bytes(&log).expect("intact");
        let short = verify_bytes(&join(&lines[..4])).expect("a shorter chain is still a chain");
        assert_ne!(whole.head, short.head);
        assert_eq!(verify_bytes(b"not json\n"), Err(VerifyError::NotARecord(1)));
    }

    #[test]
    fn decoded_sizes() {
        assert_eq!(base64_decoded_len(""), 0);
        assert_eq!(base64_decoded_len("=="), 0, "no underflow on nonsense");
        assert_eq!(base64_decoded_len("dHdlbHZlIGJ5dGVz"), 12);
        assert_eq!(base64_decoded_len("YQ=="), 1);
        assert_eq!(base64_decoded_len("YWI="), 2);
    }

    #[test]
    fn secret_looking_names() {
        for name in ["API_TOKEN", "aws_secret_access_key", "GITHUB_AUTH", "DB_PASSWORD", "ssh_private"] {
            assert!(looks_secret(name), "{name}");
        }
        for name in ["PATH", "HOME", "LANG", "TERM"] {
            assert!(!looks_secret(name), "{name}");
        }
    }
}
