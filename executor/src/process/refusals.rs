//! The executor's end of a sandbox's refusals pipe (`sandbox::refusals`): a task reads
//! the inner stage's records into a tally that `sandbox/report` reads, live while the
//! process runs and complete once it closed.

use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::sandbox::refusals::{Record, Tally, RECORD_LEN};
use crate::sync::lock;

/// How long the close waits for the pipe's last records. Every writer is gone once bwrap
/// exited, so this only bounds a pipe that is somehow still held.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Reads past this many records are dropped (a flood of distinct entries is already
/// folded by the tally; this bounds the work).
const MAX_RECORDS: u64 = 1 << 20;

pub struct Refusals {
    tally: Mutex<Tally>,
    drained: watch::Sender<bool>,
}

impl Refusals {
    pub fn new() -> Self {
        Refusals { tally: Mutex::new(Tally::default()), drained: watch::channel(false).0 }
    }

    /// Reads records from `pipe` until every writer closed it.
    pub async fn read_from(&self, pipe: OwnedFd) {
        if let Ok(mut rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(pipe) {
            let mut buf = [0u8; RECORD_LEN];
            let mut records = 0u64;
            while rx.read_exact(&mut buf).await.is_ok() {
                records += 1;
                if records <= MAX_RECORDS {
                    lock(&self.tally).add(Record::decode(&buf));
                }
            }
        }
        self.drained.send_replace(true);
    }

    /// Waits (bounded) until the pipe is drained, so that a report asked for after the
    /// close is complete.
    pub async fn drained(&self) {
        let mut rx = self.drained.subscribe();
        let _ = tokio::time::timeout(DRAIN_LIMIT, rx.wait_for(|done| *done)).await;
    }

    pub fn tally(&self) -> Tally {
        lock(&self.tally).clone()
    }
}
