//! The task that pumps a child's output into its log and to the attached connection,
//! then records the exit and the close.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::spawn::Streams;
use super::{pty, Process};
use crate::protocol::envelope::{notification_line, output_notification_line};
use crate::protocol::types::{methods, ClosedNotification, ExitedNotification, StreamName};
use crate::sync::lock;

const READ_BUFFER: usize = 256 * 1024;

impl Process {
    /// Until the output is drained and the exit recorded; `process/closed` is left to the
    /// caller (see [`Process::emit_closed`]).
    pub(super) async fn pump(&self, mut child: tokio::process::Child, output: Output) {
        let mut exited = false;
        let mut wall = WallTimer::new(self.limiter.as_ref().and_then(|l| l.wall()));
        match output {
            Output::Pipes { mut stdout, mut stderr } => {
                let (mut out_open, mut err_open) = (true, true);
                let mut out_buf = vec![0u8; READ_BUFFER];
                let mut err_buf = vec![0u8; READ_BUFFER];
                while out_open || err_open || !exited {
                    tokio::select! {
                        biased;
                        n = read_some(&mut stdout, &mut out_buf), if out_open => match n {
                            0 => out_open = false,
                            n => self.emit_output(StreamName::Stdout, &out_buf[..n]).await,
                        },
                        n = read_some(&mut stderr, &mut err_buf), if err_open => match n {
                            0 => err_open = false,
                            n => self.emit_output(StreamName::Stderr, &err_buf[..n]).await,
                        },
                        status = child.wait(), if !exited => {
                            exited = true;
                            self.emit_exit(exit_code(status), wall.fired, StreamName::Stderr).await;
                        }
                        () = wall.elapsed(), if wall.pending && !exited => self.kill_at_wall_limit(&mut wall),
                    }
                }
            }
            Output::Pty(master) => {
                let mut open = true;
                let mut buf = vec![0u8; READ_BUFFER];
                while open || !exited {
                    tokio::select! {
                        biased;
                        n = master.read(&mut buf), if open => match n {
                            Ok(0) | Err(_) => open = false,
                            Ok(n) => self.emit_output(StreamName::Pty, &buf[..n]).await,
                        },
                        status = child.wait(), if !exited => {
                            exited = true;
                            self.emit_exit(exit_code(status), wall.fired, StreamName::Pty).await;
                        }
                        () = wall.elapsed(), if wall.pending && !exited => self.kill_at_wall_limit(&mut wall),
                    }
                }
            }
        }
    }

    /// The wall-clock limit passed: SIGKILL to bwrap's group (which takes the sandbox's
    /// PID namespace down) and to whatever is left in the tree's cgroup.
    fn kill_at_wall_limit(&self, wall: &mut WallTimer) {
        wall.pending = false;
        wall.fired = true;
        if self.pid.as_raw() > 0 {
            let _ = nix::sys::signal::killpg(self.pid, nix::sys::signal::Signal::SIGKILL);
        }
        if let Some(limiter) = &self.limiter {
            limiter.kill_all();
        }
    }

    /// After the close: kills what is left of the tree and removes its cgroup. A cgroup
    /// is busy for a moment while its last processes exit, hence the retries.
    pub(super) async fn remove_cgroup(&self) {
        let Some(limiter) = &self.limiter else { return };
        for _ in 0..250 {
            if limiter.try_remove() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tracing::warn!(process = %self.id, cgroups = ?limiter.paths(), "the sandbox's cgroup is still busy; it was not removed");
    }

    /// The limits the tree ran into, as one last chunk before `process/exited`: on
    /// stderr, or on the terminal for a PTY process (which has no separate stderr).
    async fn report_limits(&self, wall_fired: bool, stream: StreamName) {
        let Some(limiter) = &self.limiter else { return };
        let mut hits = limiter.hits();
        if let (true, Some(seconds)) = (wall_fired, limiter.limits().wall_seconds) {
            hits.push(crate::sandbox::cgroup::Hit::Wall { seconds });
        }
        *lock(&self.hits) = hits.clone();
        if hits.is_empty() {
            return;
        }
        let mut text = String::new();
        for hit in &hits {
            text.push_str(&hit.line());
            text.push('\n');
        }
        tracing::info!(process = %self.id, "limit reached: {}", text.trim_end());
        self.emit_chunk(stream, text.as_bytes()).await;
    }

    async fn emit_output(&self, stream: StreamName, data: &[u8]) {
        if self.sandboxed && stream == StreamName::Stderr {
            self.capture_bwrap_error(data);
        }
        self.emit_chunk(stream, data).await;
    }

    /// Keeps the start of stderr when it is bwrap's own error (it begins with `bwrap: `,
    /// possibly written as a separate chunk), to explain it when the process exits.
    fn capture_bwrap_error(&self, data: &[u8]) {
        const KEEP: usize = 4096;
        let mut captured = lock(&self.bwrap_error);
        match captured.as_mut() {
            None if lock(&self.log).is_pristine() && data.starts_with(b"bwrap: ") => *captured = Some(data.to_vec()),
            Some(text) if text.len() < KEEP => text.extend_from_slice(&data[..data.len().min(KEEP - text.len())]),
            _ => {}
        }
    }

    /// True (and the cause with its fix printed on stderr) when bwrap failed to build the
    /// sandbox; such an exit counts as a sandbox denial.
    async fn explain_bwrap_error(&self, code: i32) -> bool {
        let Some(text) = lock(&self.bwrap_error).take() else { return false };
        if code == 0 {
            return false;
        }
        let text = String::from_utf8_lossy(&text);
        if let Some(mut line) = crate::sandbox::host_errors::explanation_line(&text) {
            line.push('\n');
            self.emit_chunk(StreamName::Stderr, line.as_bytes()).await;
        }
        true
    }

    async fn emit_chunk(&self, stream: StreamName, data: &[u8]) {
        let encoded: Arc<str> = BASE64.encode(data).into();
        let seq = lock(&self.log).push_output(stream, data.len(), encoded.clone());
        self.changed.send_replace(());
        self.sink.send(output_notification_line(&self.id_json, seq, stream.as_str(), &encoded)).await;
    }

    async fn emit_exit(&self, code: i32, wall_fired: bool, limit_stream: StreamName) {
        self.report_limits(wall_fired, limit_stream).await;
        let bwrap_failed = self.explain_bwrap_error(code).await;
        let sandbox_denied =
            self.sandboxed && (bwrap_failed || code == crate::sandbox::EXIT_EXEC_DENIED || code == crate::sandbox::EXIT_SETUP_FAILED);
        if crate::audit::enabled() {
            let fields =
                serde_json::json!({"processId": self.id, "pid": self.pid.as_raw(), "exitCode": code, "sandboxDenied": sandbox_denied});
            crate::audit::record("process.exited", fields);
        }
        let record = lock(&self.log).record_exit(code, sandbox_denied);
        self.changed.send_replace(());
        let params = ExitedNotification { process_id: &self.id, seq: record.seq, exit_code: code, sandbox_denied };
        self.sink.send(notification_line(methods::EXITED, &params)).await;
    }

    /// The last event of a process; sent by its task once the table no longer counts it.
    pub(super) async fn emit_closed(&self) {
        let seq = lock(&self.log).record_close();
        self.changed.send_replace(());
        self.sink.send(notification_line(methods::CLOSED, &ClosedNotification { process_id: &self.id, seq })).await;
    }
}

/// The wall-clock limit of a tree, if it has one.
struct WallTimer {
    deadline: Option<tokio::time::Instant>,
    pending: bool,
    fired: bool,
}

impl WallTimer {
    fn new(limit: Option<std::time::Duration>) -> Self {
        WallTimer { deadline: limit.map(|d| tokio::time::Instant::now() + d), pending: limit.is_some(), fired: false }
    }

    async fn elapsed(&self) {
        match self.deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    }
}

pub(super) enum Output {
    Pipes { stdout: tokio::process::ChildStdout, stderr: tokio::process::ChildStderr },
    Pty(Arc<pty::PtyMaster>),
}

pub(super) type StdinWriter = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Splits the child's streams into what the pump reads and the task that feeds stdin.
pub(super) fn split_streams(streams: Streams, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) -> (Output, Option<StdinWriter>) {
    match streams {
        Streams::Pipes { stdout, stderr, stdin } => {
            let writer = stdin.map(|mut stdin| -> StdinWriter {
                Box::pin(async move {
                    while let Some(data) = rx.recv().await {
                        if stdin.write_all(&data).await.is_err() {
                            break;
                        }
                    }
                })
            });
            (Output::Pipes { stdout, stderr }, writer)
        }
        Streams::Pty(master) => {
            let master = Arc::new(master);
            let writer_master = master.clone();
            let writer: StdinWriter = Box::pin(async move {
                while let Some(data) = rx.recv().await {
                    if writer_master.write_all(&data).await.is_err() {
                        break;
                    }
                }
            });
            (Output::Pty(master), Some(writer))
        }
    }
}

/// Reads into `buf`; errors end the stream like EOF does.
async fn read_some<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> usize {
    reader.read(buf).await.unwrap_or(0)
}

/// The protocol's exit code: the status, or 128 + signal for a signal death, or -1.
pub(super) fn exit_code(status: std::io::Result<std::process::ExitStatus>) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    match status {
        Ok(s) => s.code().or_else(|| s.signal().map(|sig| 128 + sig)).unwrap_or(-1),
        Err(_) => -1,
    }
}
