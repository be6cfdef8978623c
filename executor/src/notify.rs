//! Where a session's notifications go: a leaf that process, fs and session all use to
//! reach the attached connection, if any.

use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::protocol::outgoing::Outgoing;
use crate::sync::lock;

/// Lines queued for a connection's writer.
pub type Outbound = mpsc::Sender<Outgoing>;

/// Where a session's notifications go: the attached connection, if any.
#[derive(Default)]
pub struct NotificationSink {
    attached: Mutex<Attachment>,
}

/// One-shot notifications kept while detached. Each live watch fires at most once and a
/// session holds a bounded number of watches (`fs::watch::MAX_WATCHES_PER_SESSION`,
/// checked against this in its tests), so this is only a backstop.
pub const MAX_HELD: usize = 256;

/// The attached connection, and how many times the session has been detached: a TTL
/// timer started at a detach expires the session only if no later attach happened.
#[derive(Default)]
struct Attachment {
    connection: Option<(u64, Outbound)>,
    detaches: u64,
    /// One-shot notifications that found no connection, oldest first.
    held: Vec<Vec<u8>>,
}

impl Attachment {
    fn hold(&mut self, line: Vec<u8>) {
        if self.held.len() < MAX_HELD {
            self.held.push(line);
        } else {
            tracing::warn!("too many notifications held for a detached session; dropping one");
        }
    }

    /// A line that came back from a connection that went away while it was queued.
    fn hold_again(&mut self, unsent: Outgoing) {
        // Only whole lines are sent through a sink.
        if let Some(line) = unsent.into_line() {
            self.hold(line);
        }
    }
}

impl NotificationSink {
    /// Queues a line for the attached connection, waiting while its queue is full so that a
    /// fast producer is slowed rather than buffered without bound.
    pub async fn send(&self, line: Vec<u8>) {
        let target = lock(&self.attached).connection.as_ref().map(|(_, tx)| tx.clone());
        if let Some(tx) = target {
            // A closed receiver means the connection just went away: the line is dropped,
            // and stays readable through process/read.
            let _ = tx.send(line.into()).await;
        }
    }

    /// Like [`NotificationSink::send`] for a notification the client cannot recover any other
    /// way: with no connection attached (or one that just went away) the line is held
    /// until [`NotificationSink::flush_held`] runs after the next attach.
    pub async fn send_or_hold(&self, line: Vec<u8>) {
        let target = {
            let mut attached = lock(&self.attached);
            match &attached.connection {
                Some((_, tx)) => tx.clone(),
                None => return attached.hold(line),
            }
        };
        if let Err(unsent) = target.send(line.into()).await {
            lock(&self.attached).hold_again(unsent.0);
        }
    }

    /// Sends the held lines to the attached connection.
    pub async fn flush_held(&self) {
        let (lines, tx) = {
            let mut attached = lock(&self.attached);
            let Some((_, tx)) = attached.connection.clone() else { return };
            (std::mem::take(&mut attached.held), tx)
        };
        let mut lines = lines.into_iter();
        while let Some(line) = lines.next() {
            if let Err(unsent) = tx.send(line.into()).await {
                let mut attached = lock(&self.attached);
                attached.hold_again(unsent.0);
                lines.for_each(|rest| attached.hold(rest));
                return;
            }
        }
    }

    pub(crate) fn attach(&self, connection: u64, outbound: Outbound) {
        lock(&self.attached).connection = Some((connection, outbound));
    }

    /// Detaches `connection` if it is the attached one; returns the detach generation.
    pub(crate) fn detach_if(&self, connection: u64) -> Option<u64> {
        let mut attached = lock(&self.attached);
        if attached.connection.as_ref().is_some_and(|(c, _)| *c == connection) {
            attached.connection = None;
            attached.detaches += 1;
            return Some(attached.detaches);
        }
        None
    }

    /// Attaches `connection` unless one is attached already; false then.
    pub(crate) fn attach_if_detached(&self, connection: u64, outbound: Outbound) -> bool {
        let mut attached = lock(&self.attached);
        if attached.connection.is_some() {
            return false;
        }
        attached.connection = Some((connection, outbound));
        true
    }

    /// Whether no connection attached since the detach that returned `generation`.
    pub(crate) fn detached_since(&self, generation: u64) -> bool {
        let attached = lock(&self.attached);
        attached.connection.is_none() && attached.detaches == generation
    }

    pub(crate) fn attached_to(&self) -> Option<u64> {
        lock(&self.attached).connection.as_ref().map(|(c, _)| *c)
    }
}
