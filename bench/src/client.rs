//! A minimal blocking client for a stdio exec-server: spawn the command, write
//! NDJSON requests, read NDJSON lines back.
//!
//! The client reads on the calling thread (no channel hop per line) so that it adds
//! as little as possible to what is measured; a [`Watchdog`] bounds every wait.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::fail;
use crate::watchdog::{kill_group, Watchdog};

/// Bytes of server stderr kept for error messages.
const STDERR_TAIL: usize = 8 * 1024;
/// Read buffer; large so streaming lines (base64 chunks) need few syscalls.
const READ_BUFFER: usize = 1 << 20;
/// The client asks for a pipe this large on the server's stdout (for every server
/// alike), so that what is measured is the server, not a 64 KiB pipe.
const STDOUT_PIPE: i32 = 1 << 20;

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerCommand {
    pub argv: Vec<String>,
    /// Pass server stderr through instead of keeping only its tail for errors.
    pub inherit_stderr: bool,
}

/// A message read from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Response { id: Value, outcome: std::result::Result<Value, Value> },
    Notification { method: String, params: Value },
}

pub struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    line: Vec<u8>,
    next_id: i64,
    watchdog: Watchdog,
    stderr_tail: Arc<Mutex<VecDeque<u8>>>,
    /// Set once `shutdown` has reaped the child, so `drop` does not signal a group
    /// id that may be gone.
    reaped: bool,
    /// When `spawn` was called (just before the fork).
    pub spawned_at: Instant,
}

impl Server {
    /// Starts the server in its own process group so that the whole tree (a
    /// launcher and the real server) can be killed at once.
    pub fn spawn(cmd: &ServerCommand) -> Result<Self> {
        let Some((program, args)) = cmd.argv.split_first() else { fail!("no server command given (put it after `--`)") };
        let stderr = if cmd.inherit_stderr { Stdio::inherit() } else { Stdio::piped() };
        let spawned_at = Instant::now();
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .map_err(|e| Error(format!("cannot start `{program}`: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else { fail!("server pipes were not created") };
        // Above /proc/sys/fs/pipe-max-size an unprivileged client keeps the default.
        let _ = nix::fcntl::fcntl(std::os::fd::AsRawFd::as_raw_fd(&stdout), nix::fcntl::FcntlArg::F_SETPIPE_SZ(STDOUT_PIPE));
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(err) = child.stderr.take() {
            let tail = Arc::clone(&stderr_tail);
            thread::spawn(move || keep_tail(err, &tail));
        }
        Ok(Self {
            watchdog: Watchdog::start(child.id()),
            child,
            stdin: Some(stdin),
            stdout: BufReader::with_capacity(READ_BUFFER, stdout),
            line: Vec::with_capacity(64 * 1024),
            next_id: 1,
            stderr_tail,
            reaped: false,
            spawned_at,
        })
    }

    /// OS pid of the spawned command (the launcher, if it is one).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Give the server `limit` from now to finish the current workload; after that
    /// its process group is killed and reads fail.
    pub fn set_deadline(&self, limit: Duration) {
        self.watchdog.arm(limit);
    }

    /// Writes one message as a line.
    pub fn send(&mut self, message: &Value) -> Result<()> {
        let mut bytes = serde_json::to_vec(message).map_err(|e| Error(e.to_string()))?;
        bytes.push(b'\n');
        let Some(stdin) = self.stdin.as_mut() else { fail!("server stdin already closed") };
        if let Err(e) = stdin.write_all(&bytes).and_then(|()| stdin.flush()) {
            return Err(self.dead(&format!("writing to the server failed: {e}")));
        }
        Ok(())
    }

    /// Sends a request with a fresh integer id and returns that id.
    pub fn request(&mut self, method: &str, params: Value) -> Result<i64> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"id": id, "method": method, "params": params}))?;
        Ok(id)
    }

    /// `initialize` then `initialized`; returns the initialize result.
    pub fn handshake(&mut self) -> Result<Value> {
        let id = self.request("initialize", json!({"clientName": "exec-bench"}))?;
        let result = self.wait_result(id)?;
        self.send(&json!({"method": "initialized", "params": {}}))?;
        Ok(result)
    }

    /// Reads until the response to `id`; notifications in between are dropped.
    /// An error response becomes an `Err`.
    pub fn wait_result(&mut self, id: i64) -> Result<Value> {
        loop {
            if let Message::Response { id: got, outcome } = self.read_message()? {
                if got == json!(id) {
                    return outcome.map_err(|e| Error(format!("server answered request {id} with error {e}")));
                }
            }
        }
    }

    /// Waits until the server has written something not yet read (the first byte of
    /// an answer, when nothing else is expected).
    pub fn wait_readable(&mut self) -> Result<()> {
        match self.stdout.fill_buf() {
            Ok([]) => Err(self.dead("server closed its stdout")),
            Ok(_) => Ok(()),
            Err(e) => Err(self.dead(&format!("reading from the server failed: {e}"))),
        }
    }

    /// Reads and classifies the next message.
    pub fn read_message(&mut self) -> Result<Message> {
        let line = self.read_line()?;
        parse_message(line)
    }

    /// The next non-blank line, without its `\n` / `\r\n`. The slice is valid until
    /// the next read.
    pub fn read_line(&mut self) -> Result<&[u8]> {
        loop {
            self.line.clear();
            let n = self.stdout.read_until(b'\n', &mut self.line);
            match n {
                Ok(0) => return Err(self.dead("server closed its stdout")),
                Ok(_) => {}
                Err(e) => return Err(self.dead(&format!("reading from the server failed: {e}"))),
            }
            let len = trimmed_len(&self.line);
            if self.line[..len].iter().any(|b| !b.is_ascii_whitespace()) {
                return Ok(&self.line[..len]);
            }
        }
    }

    /// Closes stdin (a stdio exec-server exits on EOF), waits briefly, then kills
    /// whatever is left of the process group. Returns how long the exit took.
    pub fn shutdown(mut self) -> Duration {
        let started = Instant::now();
        drop(self.stdin.take());
        while started.elapsed() < Duration::from_secs(3) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            thread::sleep(Duration::from_millis(2));
        }
        let took = started.elapsed();
        // Launchers may leave the real server behind; take the whole group down.
        kill_group(self.child.id());
        let _ = self.child.wait();
        self.reaped = true;
        took
    }

    /// An error describing a server that stopped talking, with its stderr tail.
    fn dead(&mut self, what: &str) -> Error {
        let mut msg = what.to_string();
        if self.watchdog.fired() {
            msg.push_str(" (the bench's deadline passed and it killed the server)");
        }
        if let Ok(Some(status)) = self.child.try_wait() {
            msg.push_str(&format!("; server exited with {status}"));
        }
        let tail = self.stderr_tail.lock().map(|t| t.iter().copied().collect::<Vec<u8>>()).unwrap_or_default();
        if !tail.is_empty() {
            msg.push_str(&format!("; server stderr ends with:\n{}", String::from_utf8_lossy(&tail)));
        }
        Error(msg)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Normally `shutdown` has run; after an error make sure nothing lingers.
        if !self.reaped {
            kill_group(self.child.id());
            let _ = self.child.wait();
        }
    }
}

fn keep_tail(mut from: impl Read, tail: &Mutex<VecDeque<u8>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            return;
        }
        let Ok(mut t) = tail.lock() else { return };
        t.extend(&buf[..n]);
        let excess = t.len().saturating_sub(STDERR_TAIL);
        t.drain(..excess);
    }
}

fn trimmed_len(line: &[u8]) -> usize {
    let mut len = line.len();
    while len > 0 && matches!(line[len - 1], b'\n' | b'\r') {
        len -= 1;
    }
    len
}

/// Classifies one line as a response or a notification.
pub fn parse_message(line: &[u8]) -> Result<Message> {
    let value: Value = serde_json::from_slice(line).map_err(|e| Error(format!("server sent invalid JSON ({e}): {}", preview(line))))?;
    let Value::Object(mut obj) = value else { fail!("server sent a non-object: {}", preview(line)) };
    if let Some(Value::String(method)) = obj.remove("method") {
        let params = obj.remove("params").unwrap_or(Value::Null);
        return Ok(Message::Notification { method, params });
    }
    let Some(id) = obj.remove("id") else { fail!("server message has neither method nor id: {}", preview(line)) };
    let outcome = match (obj.remove("result"), obj.remove("error")) {
        (Some(result), None) => Ok(result),
        (None, Some(error)) => Err(error),
        _ => fail!("server response has not exactly one of result/error: {}", preview(line)),
    };
    Ok(Message::Response { id, outcome })
}

/// The start of a line, for error messages.
pub fn preview(line: &[u8]) -> String {
    let cut = line.len().min(300);
    let mut s = String::from_utf8_lossy(&line[..cut]).into_owned();
    if cut < line.len() {
        s.push_str(&format!("… ({} bytes)", line.len()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_and_notifications_are_told_apart() {
        let ok = parse_message(br#"{"id":3,"result":{"status":"ready"}}"#);
        assert_eq!(ok, Ok(Message::Response { id: json!(3), outcome: Ok(json!({"status":"ready"})) }));
        let err = parse_message(br#"{"error":{"code":-32600,"message":"m"},"id":-1}"#);
        assert!(matches!(err, Ok(Message::Response { outcome: Err(_), .. })));
        let note = parse_message(br#"{"method":"process/closed","params":{"processId":"p","seq":3}}"#);
        assert!(matches!(note, Ok(Message::Notification { ref method, .. }) if method == "process/closed"));
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert!(parse_message(b"not json").is_err());
        assert!(parse_message(b"[1]").is_err());
        assert!(parse_message(br#"{"id":1}"#).is_err());
    }

    #[test]
    fn line_endings_are_trimmed() {
        assert_eq!(trimmed_len(b"{}\r\n"), 2);
        assert_eq!(trimmed_len(b"{}"), 2);
    }

    #[test]
    fn talks_to_a_scripted_server() {
        // `sh` stands in for a server: it answers the handshake then exits on EOF.
        let script = r#"read l; echo '{"id":1,"result":{"sessionId":"s"}}'; cat >/dev/null"#;
        let cmd = ServerCommand { argv: vec!["sh".into(), "-c".into(), script.into()], inherit_stderr: false };
        let mut server = Server::spawn(&cmd).expect("spawn sh");
        server.set_deadline(Duration::from_secs(30));
        let result = server.handshake().expect("handshake");
        assert_eq!(result, json!({"sessionId": "s"}));
        server.shutdown();
    }

    #[test]
    fn a_server_that_exits_gives_an_error_with_its_stderr() {
        let cmd = ServerCommand { argv: vec!["sh".into(), "-c".into(), "echo boom >&2".into()], inherit_stderr: false };
        let mut server = Server::spawn(&cmd).expect("spawn sh");
        server.set_deadline(Duration::from_secs(30));
        let err = server.handshake().expect_err("no answer");
        // The stderr thread may lag behind EOF on stdout; only the cause is certain.
        assert!(err.0.contains("server closed its stdout") || err.0.contains("writing"), "{err}");
    }
}
