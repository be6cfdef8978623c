//! The processes of one session by client-chosen id: reserving an id, starting, looking
//! up, and the bound on live processes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use nix::sys::signal::Signal;

use super::{spawn, Process, ProcessError, SpawnSpec, INIT_REPORT_WAIT};
use crate::limits::LimitError;
use crate::notify::NotificationSink;
use crate::protocol::types::WriteStatus;
use crate::sync::lock;

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
        refusals: Option<std::os::fd::OwnedFd>,
        sink: Arc<NotificationSink>,
    ) -> Result<(), ProcessError> {
        self.reserve(id)?;
        let limiter = spec.limiter.clone();
        let spawned = spawn::spawn(spec);
        if let Some(limiter) = &limiter {
            limiter.spawned();
        }
        match spawned {
            Ok(spawned) => {
                let started = super::lifecycle::Started { sandboxed, init_reported: init_report.is_some(), refusals };
                let process = Process::launch(id, spawned, started, sink, Arc::downgrade(self), limiter);
                if let Some(report) = init_report {
                    let learner = process.clone();
                    tokio::spawn(async move { learner.signal_relay.learn(report).await });
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
    pub(super) fn closed_one(&self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn get(&self, id: &str) -> Result<Arc<Process>, ProcessError> {
        match lock(&self.slots).get(id) {
            Some(Slot::Ready(p)) => Ok(p.clone()),
            Some(Slot::Starting) => Err(ProcessError::Starting(id.to_owned())),
            None => Err(ProcessError::UnknownProcess(id.to_owned())),
        }
    }

    pub(super) fn remove_if_same(&self, id: &str, process: &Arc<Process>) {
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
            process.signal_relay.settled(INIT_REPORT_WAIT).await;
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

    pub(super) fn ready(&self) -> Vec<Arc<Process>> {
        lock(&self.slots)
            .values()
            .filter_map(|slot| match slot {
                Slot::Ready(p) => Some(p.clone()),
                Slot::Starting => None,
            })
            .collect()
    }
}
