//! Test harness: spawns the real executor binary and speaks the protocol to it over stdio.
//! Timeouts here only stop a hung test; no test asserts on how fast something happened.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};

pub mod client;
pub mod deploy;
pub mod http;
pub mod mutation;
pub mod pki;
pub mod unprivileged;
pub mod ws;
pub mod ws_load;

pub use client::{ClientState, RpcClient};

/// Long enough for a loaded 2-core CI machine; only reached when something is broken.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The executor binary under test: `$EXECUTOR_BIN`, or the one cargo built into the same
/// profile directory as the running test (`target/<host-tuple>/<profile>/`; integration
/// tests run from its `deps/`).
pub fn executor_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("EXECUTOR_BIN") {
        return PathBuf::from(path);
    }
    let me = std::env::current_exe().unwrap_or_else(|e| panic!("cannot locate the running test binary: {e}"));
    let mut searched = Vec::new();
    for dir in me.ancestors().skip(1).take(2) {
        let candidate = dir.join("executor");
        if candidate.is_file() {
            return candidate;
        }
        searched.push(dir.display().to_string());
    }
    panic!("executor binary not found in {}: run `cargo build -p executor` first (or set EXECUTOR_BIN)", searched.join(" or "));
}

pub fn b64(data: &[u8]) -> String {
    BASE64.encode(data)
}

pub fn unb64(data: &str) -> Vec<u8> {
    BASE64.decode(data).unwrap_or_else(|e| panic!("server sent invalid base64 {data:?}: {e}"))
}

/// A `file:` URI for a local path.
pub fn uri(path: &std::path::Path) -> String {
    format!("file://{}", path.display())
}

/// A running executor speaking NDJSON on its stdin/stdout.
pub struct Executor {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    state: ClientState,
    /// What the server wrote on stderr, when started by [`Executor::spawn_capturing_stderr`].
    stderr: Option<Arc<Mutex<Vec<u8>>>>,
}

impl Executor {
    /// `executor --listen stdio` with extra arguments.
    pub fn start(args: &[&str]) -> Self {
        let mut command = Command::new(executor_bin());
        command.args(["--listen", "stdio"]).args(args);
        Self::spawn(command)
    }

    pub fn spawn(mut command: Command) -> Self {
        command.stderr(Stdio::inherit());
        Self::spawn_with_stderr(command)
    }

    /// Like [`Executor::spawn`], keeping a copy of the server's stderr for
    /// [`Executor::stderr_text`] (it is still passed on to the test's stderr).
    pub fn spawn_capturing_stderr(mut command: Command) -> Self {
        command.stderr(Stdio::piped());
        let mut server = Self::spawn_with_stderr(command);
        let mut pipe = server.child.stderr.take().expect("stderr is piped");
        let captured = Arc::new(Mutex::new(Vec::new()));
        let sink = captured.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                let _ = std::io::stderr().write_all(&buf[..n]);
                sink.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(&buf[..n]);
            }
        });
        server.stderr = Some(captured);
        server
    }

    /// The server's stderr so far (see [`Executor::spawn_capturing_stderr`]).
    pub fn stderr_text(&self) -> String {
        let captured = self.stderr.as_ref().expect("started with spawn_capturing_stderr");
        String::from_utf8_lossy(&captured.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    fn spawn_with_stderr(mut command: Command) -> Self {
        command.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start executor: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, stdin, lines, state: ClientState::starting_ids_at(1000), stderr: None }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts a server and completes the handshake.
    pub fn ready(args: &[&str]) -> Self {
        let mut server = Self::start(args);
        server.handshake();
        server
    }

    pub fn handshake(&mut self) -> Value {
        let result = self.request("initialize", json!({"clientName": "tests"}));
        assert!(result.get("result").is_some(), "initialize failed: {result}");
        self.notify("initialized", json!({}));
        result
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        // The server may have closed the connection already; tests observe that elsewhere.
        let _ = stdin.write_all(bytes).and_then(|()| stdin.flush());
    }

    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Waits for the server to exit (after stdin EOF or a protocol violation).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "executor did not exit within {TIMEOUT:?}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// True when stdout reached EOF (the server closed the connection) within the timeout.
    pub fn stdout_closed(&mut self) -> bool {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.state.pending.push(serde_json::from_str(&line).unwrap_or(Value::Null)),
                Err(RecvTimeoutError::Disconnected) => return true,
                Err(RecvTimeoutError::Timeout) => return false,
            }
        }
    }
}

impl RpcClient for Executor {
    fn send(&mut self, message: &Value) {
        let mut line = serde_json::to_vec(message).expect("serialisable");
        line.push(b'\n');
        self.send_raw(&line);
    }

    fn recv_until(&mut self, deadline: Instant) -> Option<Value> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("server sent a non-JSON line {line:?}: {e}"))),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    fn state(&mut self) -> &mut ClientState {
        &mut self.state
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn error_of(response: &Value) -> Option<(i64, String)> {
    let error = response.get("error")?;
    Some((error["code"].as_i64()?, error["message"].as_str()?.to_owned()))
}

/// What a finished process produced, from its notifications.
#[derive(Debug, Default)]
pub struct RunOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub pty: Vec<u8>,
    pub exit_code: Option<i64>,
    pub sandbox_denied: Option<bool>,
    pub seqs: Vec<u64>,
}

impl RunOutput {
    pub fn from_events(events: &[Value]) -> Self {
        let mut out = RunOutput::default();
        for event in events {
            let params = &event["params"];
            out.seqs.push(params["seq"].as_u64().expect("every event has a seq"));
            match event["method"].as_str() {
                Some("process/output") => {
                    let data = unb64(params["chunk"].as_str().expect("chunk"));
                    match params["stream"].as_str() {
                        Some("stdout") => out.stdout.extend(data),
                        Some("stderr") => out.stderr.extend(data),
                        Some("pty") => out.pty.extend(data),
                        other => panic!("unknown stream {other:?}"),
                    }
                }
                Some("process/exited") => {
                    out.exit_code = params["exitCode"].as_i64();
                    out.sandbox_denied = params["sandboxDenied"].as_bool();
                }
                _ => {}
            }
        }
        out
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// A `FileSystemSandboxContext` like Codex's workspace-write: the root readable, `ws`
/// writable, network restricted.
pub fn workspace_write_sandbox(ws: &std::path::Path) -> Value {
    json!({"permissions": {"type": "managed", "file_system": {"type": "restricted", "entries": [
        {"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"},
        {"path": {"type": "path", "path": uri(ws)}, "access": "write"}]}, "network": "restricted"},
        "windowsSandboxLevel": "disabled"})
}

/// `process/start` params for `sh -c SCRIPT` in `/tmp` with a plain PATH.
pub fn sh(script: &str) -> Value {
    json!({"argv": ["sh", "-c", script], "cwd": "file:///tmp", "env": {"PATH": "/usr/bin:/bin"}, "tty": false})
}

/// `VmRSS` and `VmHWM` (peak) of `pid`, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name}"));
        line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("kB value")
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Whether a pid still names a live (non-zombie) process.
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Polls until `pid` is gone; false if it is still alive at the timeout.
pub fn wait_pid_gone(pid: i32) -> bool {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if !pid_alive(pid) {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}
