//! Processes of a session: the table of them (`table`), each one from launch to close
//! (`lifecycle`), the task that pumps a child's output into its log and to the attached
//! connection (`pump`), the log itself (`output_log`), the sandbox's refusals (`refusals`), write-id deduplication
//! (`write_ids`), spawning (`spawn`, `pty`) and signals through the sandbox's PID 1
//! (`signal_relay`).

mod lifecycle;
mod output_log;
mod pty;
mod pump;
mod refusals;
mod signal_relay;
mod spawn;
mod table;
mod write_ids;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use nix::unistd::Pid;
use tokio::sync::{mpsc, watch};

pub use output_log::{ExitRecord, OutputLog, RETAINED_OUTPUT_BYTES};
pub use signal_relay::info_pipe;
pub use spawn::SpawnSpec;
pub use table::ProcessTable;

use crate::notify::NotificationSink;

/// How long a closed process stays readable (and its id taken). Longer than the detached
/// session TTL, so a client that reconnects can still read what finished meanwhile.
pub const CLOSED_RETENTION: Duration = Duration::from_secs(300);

/// How long a signal waits for bwrap to report the sandbox's PID 1 (it does so as soon
/// as the sandbox exists, so this only matters for a signal sent during the start).
const INIT_REPORT_WAIT: Duration = Duration::from_secs(5);

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
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error(transparent)]
    Limit(#[from] crate::limits::LimitError),
}

pub struct Process {
    id: String,
    /// The id as a JSON string literal, for hand-built output lines.
    id_json: String,
    pid: Pid,
    sandboxed: bool,
    /// The sandbox's PID 1, once bwrap reported it.
    signal_relay: signal_relay::SignalRelay,
    /// The start of stderr when bwrap itself reported an error.
    bwrap_error: Mutex<Option<Vec<u8>>>,
    log: Mutex<OutputLog>,
    changed: watch::Sender<()>,
    stdin: Option<mpsc::UnboundedSender<Vec<u8>>>,
    write_ids: Mutex<write_ids::WriteIds>,
    sink: Arc<NotificationSink>,
    /// The tree's resource limits (sandboxed processes with limits set).
    limiter: Option<Arc<crate::sandbox::cgroup::TreeLimiter>>,
    /// The limits the tree ran into, recorded at its exit (for `sandbox/report`).
    hits: Mutex<Vec<crate::sandbox::cgroup::Hit>>,
    /// What the sandbox's seccomp filter refused, when the inner stage records it.
    refusals: Option<refusals::Refusals>,
}

/// Decodes a `process/write` chunk.
pub fn decode_chunk(chunk: &str) -> Result<Vec<u8>, ProcessError> {
    BASE64.decode(chunk).map_err(|e| ProcessError::InvalidBase64(e.to_string()))
}
