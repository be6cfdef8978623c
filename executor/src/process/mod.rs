//! Processes of a session: the table, each process's log and stdin, and the task that
//! pumps a child's output into the log and to the attached connection.

mod output_log;
mod pty;
mod sandbox_init;
mod spawn;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

pub use output_log::{ExitRecord, OutputLog, RETAINED_OUTPUT_BYTES};
pub use sandbox_init::info_pipe;
pub use spawn::SpawnSpec;

use crate::limits::LimitError;
use crate::notify::NotificationSink;
use crate::protocol::envelope::{json_string, notification_line, output_notification_line};
use crate::protocol::types::{methods, ClosedNotification, ExitedNotification, ProcessReadResult, StreamName, WriteStatus};
use crate::sync::lock;
use spawn::Streams;

/// How long a closed process stays readable (and its id taken). Longer than the detached
/// session TTL, so a client that reconnects can still read what finished meanwhile.
pub const CLOSED_RETENTION: Duration = Duration::from_secs(300);

/// How long a signal waits for bwrap to report the sandbox's PID 1 (it does so as soon
/// as the sandbox exists, so this only matters for a signal sent during the start).
const INIT_REPORT_WAIT: Duration = Duration::from_secs(5);

const READ_BUFFER: usize = 256 * 1024;

/// How many recent write ids are remembered per process for deduplication.
const WRITE_ID_WINDOW: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("process {0} already exists")]
    AlreadyExists(String),
    #[error("unknown process id {0}")]
    UnknownProcess(String),
    #[error("process id {0} is starting")]
    Starting(String),
    #[error("argv must not be empty")]
    EmptyArgv,
    #[error("writeId must not be empty")]
    EmptyWriteId,
    #[error("chunk is not valid base64: {0}")]
    InvalidBase64(String),
    #[error("{0}")]
    Spawn(std::io::Error),
    #[error("failed to write to process stdin")]
    StdinClosed,
    #[error("failed to set up a terminal: {0}")]
    Pty(std::io::Error),
    #[error("{message}")]
    Sandbox { message: String, client: bool },
    #[error(transparent)]
    Limit(#[from] crate::limits::LimitError),
}

enum Slot {
    Starting,
    Ready(Arc<Process>),
}

/// The processes of one session, by client-chosen id.
pub struct ProcessTable {
    slots: Mutex<HashMap<String, Slot>>,
    /// Processes starting or not closed yet (the ones holding descriptors and pids); at
    /// most `max_live`. Checked and raised under the `slots` lock, so concurrent starts
    /// cannot overshoot.
    live: AtomicUsize,
    max_live: usize,
}

pub struct Process {
    id: String,
    /// The id as a JSON string literal, for hand-built output lines.
    id_json: String,
    pid: Pid,
    sandboxed: bool,
    /// The sandbox's PID 1, once bwrap reported it.
    sandbox_init: sandbox_init::SandboxInit,
    /// The start of stderr when bwrap itself reported an error.
    bwrap_error: Mutex<Option<Vec<u8>>>,
    log: Mutex<OutputLog>,
    changed: watch::Sender<()>,
    stdin: Option<mpsc::UnboundedSender<Vec<u8>>>,
    write_ids: Mutex<WriteIds>,
    sink: Arc<NotificationSink>,
}

#[derive(Default)]
struct WriteIds {
    seen: HashSet<String>,
    order: VecDeque<String>,
}

impl WriteIds {
    /// Records `id`; false when it was already used.
    fn insert(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() == WRITE_ID_WINDOW {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        true
    }
}

impl ProcessTable {
    /// A table that refuses a start while `max_live` processes have not closed.
    pub fn new(max_live: usize) -> Self {
        ProcessTable { slots: Mutex::default(), live: AtomicUsize::new(0), max_live }
    }

    /// Spawns `spec` under `id`. The id is reserved first, so a concurrent start with the
    /// same id fails; a failed spawn frees it again.
    /// `init_report` is the read end of bwrap's `--info-fd` for a sandboxed process.
    pub fn start(
        self: &Arc<Self>,
        id: &str,
        spec: SpawnSpec,
        sandboxed: bool,
        init_report: Option<std::os::fd::OwnedFd>,
        sink: Arc<NotificationSink>,
    ) -> Result<(), ProcessError> {
        self.reserve(id)?;
        match spawn::spawn(spec) {
            Ok(spawned) => {
                let process = Process::launch(id, spawned, sandboxed, init_report.is_some(), sink, Arc::downgrade(self));
                if let Some(report) = init_report {
                    let learner = process.clone();
                    tokio::spawn(async move { learner.sandbox_init.learn(report).await });
                }
                lock(&self.slots).insert(id.to_owned(), Slot::Ready(process));
                Ok(())
            }
            Err(e) => {
                lock(&self.slots).remove(id);
                self.closed_one();
                Err(ProcessError::Spawn(e))
            }
        }
    }

    fn reserve(&self, id: &str) -> Result<(), ProcessError> {
        let mut slots = lock(&self.slots);
        if slots.contains_key(id) {
            return Err(ProcessError::AlreadyExists(id.to_owned()));
        }
        if self.live.load(Ordering::Relaxed) >= self.max_live {
            return Err(LimitError::Processes { cap: self.max_live }.into());
        }
        self.live.fetch_add(1, Ordering::Relaxed);
        slots.insert(id.to_owned(), Slot::Starting);
        Ok(())
    }

    /// A process of the table closed (or failed to start): it no longer counts.
    fn closed_one(&self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn get(&self, id: &str) -> Result<Arc<Process>, ProcessError> {
        match lock(&self.slots).get(id) {
            Some(Slot::Ready(p)) => Ok(p.clone()),
            Some(Slot::Starting) => Err(ProcessError::Starting(id.to_owned())),
            None => Err(ProcessError::UnknownProcess(id.to_owned())),
        }
    }

    fn remove_if_same(&self, id: &str, process: &Arc<Process>) {
        let mut slots = lock(&self.slots);
        if matches!(slots.get(id), Some(Slot::Ready(p)) if Arc::ptr_eq(p, process)) {
            slots.remove(id);
        }
    }

    pub fn write(&self, id: &str, write_id: &str, data: Vec<u8>) -> Result<WriteStatus, ProcessError> {
        match self.get(id) {
            Ok(process) => process.write(write_id, data),
            Err(ProcessError::Starting(_)) => Ok(WriteStatus::Starting),
            Err(_) => Ok(WriteStatus::UnknownProcess),
        }
    }

    /// Sends SIGINT to the process group of a running process; unknown ids are ignored.
    pub async fn interrupt(&self, id: &str) {
        if let Ok(process) = self.get(id) {
            process.sandbox_init.settled(INIT_REPORT_WAIT).await;
            if process.exit().is_none() {
                process.signal_group(Signal::SIGINT);
            }
        }
    }

    /// SIGKILL of the whole group; true when the process was still running.
    pub fn terminate(&self, id: &str) -> bool {
        let Ok(process) = self.get(id) else { return false };
        process.kill()
    }

    /// Kills every process group of the table (stdin EOF, session expiry, shutdown).
    pub fn kill_all(&self) {
        for process in self.ready() {
            process.kill();
        }
    }

    /// Sends `signal` to the group of every process that is not closed yet (shutdown).
    pub fn signal_all(&self, signal: Signal) {
        for process in self.ready() {
            if !lock(&process.log).is_closed() {
                process.signal_group(signal);
            }
        }
    }

    /// Whether every process has exited and its output streams have ended.
    pub fn all_closed(&self) -> bool {
        self.ready().iter().all(|p| lock(&p.log).is_closed())
    }

    fn ready(&self) -> Vec<Arc<Process>> {
        lock(&self.slots)
            .values()
            .filter_map(|slot| match slot {
                Slot::Ready(p) => Some(p.clone()),
                Slot::Starting => None,
            })
            .collect()
    }
}

impl Process {
    /// The host pid of the process (bwrap's, when sandboxed).
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    fn launch(
        id: &str,
        spawned: spawn::Spawned,
        sandboxed: bool,
        init_reported: bool,
        sink: Arc<NotificationSink>,
        table: Weak<ProcessTable>,
    ) -> Arc<Process> {
        let pid = Pid::from_raw(spawned.child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0));
        let (stdin_tx, stdin_rx) = mpsc::unbounded_channel();
        let (output, stdin_writer) = split_streams(spawned.streams, stdin_rx);
        let process = Arc::new(Process {
            id: id.to_owned(),
            id_json: json_string(id),
            pid,
            sandboxed,
            sandbox_init: sandbox_init::SandboxInit::new(init_reported),
            bwrap_error: Mutex::new(None),
            log: Mutex::new(OutputLog::default()),
            changed: watch::channel(()).0,
            stdin: stdin_writer.is_some().then_some(stdin_tx),
            write_ids: Mutex::new(WriteIds::default()),
            sink,
        });
        if let Some(writer) = stdin_writer {
            tokio::spawn(writer);
        }
        let pumped = process.clone();
        tokio::spawn(async move {
            pumped.pump(spawned.child, output).await;
            if let Some(table) = table.upgrade() {
                table.closed_one();
            }
            tokio::time::sleep(CLOSED_RETENTION).await;
            if let Some(table) = table.upgrade() {
                table.remove_if_same(&pumped.id, &pumped);
            }
        });
        process
    }

    pub fn exit(&self) -> Option<ExitRecord> {
        lock(&self.log).exit()
    }

    /// A sandboxed command gets catchable signals through the sandbox's PID 1, which
    /// forwards them to the command's group; SIGKILL (and anything sent before bwrap
    /// reported its PID 1) goes to bwrap's group, which takes the whole sandbox down.
    fn signal_group(&self, signal: Signal) {
        if signal != Signal::SIGKILL && self.sandbox_init.signal(signal) {
            return;
        }
        if self.pid.as_raw() > 0 {
            // ESRCH (the group is gone) is the only expected failure and means nothing to do.
            let _ = killpg(self.pid, signal);
        }
    }

    /// Kills the group unless the process is closed; true when it had not exited yet.
    fn kill(&self) -> bool {
        let (running, closed) = {
            let log = lock(&self.log);
            (log.exit().is_none(), log.is_closed())
        };
        // Once closed, every holder of the output streams is gone and the pgid may be reused.
        if !closed {
            self.signal_group(Signal::SIGKILL);
        }
        running
    }

    fn write(&self, write_id: &str, data: Vec<u8>) -> Result<WriteStatus, ProcessError> {
        let Some(stdin) = &self.stdin else { return Ok(WriteStatus::StdinClosed) };
        if self.exit().is_some() {
            return Err(ProcessError::StdinClosed);
        }
        if !lock(&self.write_ids).insert(write_id) {
            return Ok(WriteStatus::Accepted);
        }
        stdin.send(data).map_err(|_| ProcessError::StdinClosed)?;
        Ok(WriteStatus::Accepted)
    }

    /// The `process/read` answer, waiting up to `wait` for news after `after_seq`.
    pub async fn read(&self, after_seq: u64, max_bytes: Option<u64>, wait: Duration) -> ProcessReadResult {
        let mut changed = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            {
                let log = lock(&self.log);
                if log.has_news_after(after_seq) || tokio::time::Instant::now() >= deadline {
                    return log.read(after_seq, max_bytes);
                }
            }
            if tokio::time::timeout_at(deadline, changed.changed()).await.is_err() {
                return lock(&self.log).read(after_seq, max_bytes);
            }
        }
    }

    async fn pump(&self, mut child: tokio::process::Child, output: Output) {
        let mut exited = false;
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
                            self.emit_exit(exit_code(status)).await;
                        }
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
                            self.emit_exit(exit_code(status)).await;
                        }
                    }
                }
            }
        }
        self.emit_closed().await;
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

    async fn emit_exit(&self, code: i32) {
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

    async fn emit_closed(&self) {
        let seq = lock(&self.log).record_close();
        self.changed.send_replace(());
        self.sink.send(notification_line(methods::CLOSED, &ClosedNotification { process_id: &self.id, seq })).await;
    }
}

enum Output {
    Pipes { stdout: tokio::process::ChildStdout, stderr: tokio::process::ChildStderr },
    Pty(Arc<pty::PtyMaster>),
}

type StdinWriter = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Splits the child's streams into what the pump reads and the task that feeds stdin.
fn split_streams(streams: Streams, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) -> (Output, Option<StdinWriter>) {
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
fn exit_code(status: std::io::Result<std::process::ExitStatus>) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    match status {
        Ok(s) => s.code().or_else(|| s.signal().map(|sig| 128 + sig)).unwrap_or(-1),
        Err(_) => -1,
    }
}

/// Decodes a `process/write` chunk.
pub fn decode_chunk(chunk: &str) -> Result<Vec<u8>, ProcessError> {
    BASE64.decode(chunk).map_err(|e| ProcessError::InvalidBase64(e.to_string()))
}
