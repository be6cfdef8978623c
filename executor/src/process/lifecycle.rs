//! One process from launch to close: signals, stdin writes and `process/read`.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::{mpsc, watch};

use super::pump::split_streams;
use super::refusals::Refusals;
use super::write_ids::WriteIds;
use super::{signal_relay, spawn, ExitRecord, OutputLog, Process, ProcessError, ProcessTable, CLOSED_RETENTION};
use crate::notify::NotificationSink;
use crate::protocol::envelope::json_string;
use crate::protocol::types::{
    LimitHitReport, NotObserved, ProcessReadResult, RefusedSocket, RefusedSyscall, SandboxReportResult, WriteStatus,
};
use crate::sync::lock;

/// How a process was started, beyond its spawn.
pub(super) struct Started {
    pub sandboxed: bool,
    /// bwrap was asked to report the sandbox's PID 1.
    pub init_reported: bool,
    /// The read end of the inner stage's refusals pipe.
    pub refusals: Option<std::os::fd::OwnedFd>,
}

impl Process {
    /// The host pid of the process (bwrap's, when sandboxed).
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    pub(super) fn launch(
        id: &str,
        spawned: spawn::Spawned,
        started: Started,
        sink: Arc<NotificationSink>,
        table: Weak<ProcessTable>,
        limiter: Option<Arc<crate::sandbox::cgroup::TreeLimiter>>,
    ) -> Arc<Process> {
        let pid = Pid::from_raw(spawned.child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0));
        let (stdin_tx, stdin_rx) = mpsc::unbounded_channel();
        let (output, stdin_writer) = split_streams(spawned.streams, stdin_rx);
        let process = Arc::new(Process {
            id: id.to_owned(),
            id_json: json_string(id),
            pid,
            sandboxed: started.sandboxed,
            signal_relay: signal_relay::SignalRelay::new(started.init_reported),
            bwrap_error: Mutex::new(None),
            log: Mutex::new(OutputLog::default()),
            changed: watch::channel(()).0,
            stdin: stdin_writer.is_some().then_some(stdin_tx),
            write_ids: Mutex::new(WriteIds::default()),
            sink,
            limiter,
            hits: Mutex::new(Vec::new()),
            refusals: started.refusals.as_ref().map(|_| Refusals::new()),
        });
        if let Some(pipe) = started.refusals {
            let reader = process.clone();
            tokio::spawn(async move {
                if let Some(r) = &reader.refusals {
                    r.read_from(pipe).await;
                }
            });
        }
        if let Some(writer) = stdin_writer {
            tokio::spawn(writer);
        }
        let pumped = process.clone();
        tokio::spawn(async move {
            pumped.pump(spawned.child, output).await;
            // A report asked for after the close must have every refusal in it.
            if let Some(r) = &pumped.refusals {
                r.drained().await;
            }
            // Released before `process/closed` goes out: a client that starts the next
            // process as soon as it reads the close must not be refused for this one.
            if let Some(table) = table.upgrade() {
                table.closed_one();
            }
            pumped.emit_closed().await;
            // Removing the tree's cgroup holds no descriptor or pid: it need not delay the close.
            pumped.remove_cgroup().await;
            tokio::time::sleep(CLOSED_RETENTION).await;
            if let Some(table) = table.upgrade() {
                table.remove_if_same(&pumped.id, &pumped);
            }
        });
        process
    }

    /// `sandbox/report`: the limits the tree ran into and the calls its seccomp filter
    /// refused (read live while it runs), and plainly what this executor does not observe.
    pub fn sandbox_report(&self) -> SandboxReportResult {
        let exited = self.exit().is_some();
        let hits = match (&self.limiter, exited) {
            (_, true) => lock(&self.hits).clone(),
            (Some(limiter), false) => limiter.hits(),
            (None, false) => Vec::new(),
        };
        let limits = hits.iter().map(|h| LimitHitReport { limit: h.limit(), message: h.line() }).collect();
        let mut observed = if self.limiter.is_some() { vec!["limits"] } else { Vec::new() };
        let mut not_observed = Vec::new();
        if self.limiter.is_none() {
            not_observed.push(NotObserved { what: "limits", why: "this process ran without resource limits" });
        }
        let tally = self.refusals.as_ref().map(Refusals::tally).unwrap_or_default();
        if !self.sandboxed {
            not_observed.push(NotObserved { what: "sandbox refusals", why: "this process ran without a sandbox" });
        } else if tally.recording {
            observed.extend(["seccomp-refused syscalls", "refused network sockets"]);
        } else {
            const NOT_STARTED: &str = "the sandbox did not start recording them (a kernel without seccomp user notification, before Linux 5.0, or a sandbox that failed to start)";
            not_observed.push(NotObserved { what: "seccomp-refused syscalls", why: NOT_STARTED });
            not_observed.push(NotObserved { what: "refused network sockets", why: NOT_STARTED });
        }
        if self.sandboxed {
            not_observed.push(NotObserved {
                what: "writes refused under read-only or protected paths",
                why: "read-only mounts and Landlock refuse them in the kernel, which tells no one but the caller",
            });
        }
        let syscalls = tally.syscalls().into_iter().map(|(name, count)| RefusedSyscall { name, count }).collect();
        let network = tally.network().into_iter().map(|(call, family, count)| RefusedSocket { call, family, count }).collect();
        SandboxReportResult {
            process_id: self.id.clone(),
            sandboxed: self.sandboxed,
            exited,
            limits,
            syscalls,
            network,
            observed,
            not_observed,
        }
    }

    pub fn exit(&self) -> Option<ExitRecord> {
        lock(&self.log).exit()
    }

    /// A sandboxed command gets catchable signals through the sandbox's PID 1, which
    /// forwards them to the command's group; SIGKILL (and anything sent before bwrap
    /// reported its PID 1) goes to bwrap's group, which takes the whole sandbox down.
    pub(super) fn signal_group(&self, signal: Signal) {
        if signal != Signal::SIGKILL && self.signal_relay.signal(signal) {
            return;
        }
        if self.pid.as_raw() > 0 {
            // ESRCH (the group is gone) is the only expected failure and means nothing to do.
            let _ = killpg(self.pid, signal);
        }
    }

    /// Kills the group unless the process is closed; true when it had not exited yet.
    pub(super) fn kill(&self) -> bool {
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

    pub(super) fn write(&self, write_id: &str, data: Vec<u8>) -> Result<WriteStatus, ProcessError> {
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
}
