//! Sessions own processes; a connection attaches to one. Notifications go to whichever
//! connection is attached. While none is, process notifications are dropped (the output
//! stays readable through `process/read`) and one-shot ones (`fs/missingChanged`) are held
//! for the next attach.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::fs::watch::{Engine, SessionWatches};
use crate::fs::FileHandles;
use crate::limits::SessionLimits;
use crate::process::ProcessTable;
use crate::sync::lock;

/// Lines queued for a connection's writer.
pub type Outbound = mpsc::Sender<Vec<u8>>;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("unknown session id {0}")]
    Unknown(String),
    #[error("session {0} is already attached to another connection")]
    AlreadyAttached(String),
    #[error("session has been resumed by another connection")]
    Evicted,
}


/// Where a session's notifications go: the attached connection, if any.
#[derive(Default)]
pub struct NotificationSink {
    attached: Mutex<Attachment>,
}

/// One-shot notifications kept while detached. Each live watch fires at most once and a
/// session holds a bounded number of them, so this is only a backstop.
const MAX_HELD: usize = 4 * crate::fs::watch::MAX_WATCHES_PER_SESSION;

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
}

impl NotificationSink {
    /// Queues a line for the attached connection, waiting while its queue is full so that a
    /// fast producer is slowed rather than buffered without bound.
    pub async fn send(&self, line: Vec<u8>) {
        let target = lock(&self.attached).connection.as_ref().map(|(_, tx)| tx.clone());
        if let Some(tx) = target {
            // A closed receiver means the connection just went away: the line is dropped,
            // and stays readable through process/read.
            let _ = tx.send(line).await;
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
        if let Err(unsent) = target.send(line).await {
            lock(&self.attached).hold(unsent.0);
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
            if let Err(unsent) = tx.send(line).await {
                let mut attached = lock(&self.attached);
                attached.hold(unsent.0);
                lines.for_each(|rest| attached.hold(rest));
                return;
            }
        }
    }

    fn attach(&self, connection: u64, outbound: Outbound) {
        lock(&self.attached).connection = Some((connection, outbound));
    }

    /// Detaches `connection` if it is the attached one; returns the detach generation.
    fn detach_if(&self, connection: u64) -> Option<u64> {
        let mut attached = lock(&self.attached);
        if attached.connection.as_ref().is_some_and(|(c, _)| *c == connection) {
            attached.connection = None;
            attached.detaches += 1;
            return Some(attached.detaches);
        }
        None
    }

    fn attached_to(&self) -> Option<u64> {
        lock(&self.attached).connection.as_ref().map(|(c, _)| *c)
    }
}

pub struct Session {
    pub id: String,
    pub processes: Arc<ProcessTable>,
    pub files: Arc<FileHandles>,
    pub sink: Arc<NotificationSink>,
    /// `fs/watchMissing` watches; they end with the session.
    pub watches: SessionWatches,
}

impl Session {
    /// Fails with [`SessionError::Evicted`] when another connection has taken the session.
    pub fn check_attached(&self, connection: u64) -> Result<(), SessionError> {
        match self.sink.attached_to() {
            Some(c) if c == connection => Ok(()),
            _ => Err(SessionError::Evicted),
        }
    }
}

/// All sessions of this server, for attach and resume.
#[derive(Default)]
pub struct SessionRegistry {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// The one missing-path watcher shared by every session.
    watcher: Arc<Engine>,
    /// What each session may hold.
    limits: SessionLimits,
}

impl SessionRegistry {
    pub fn new(limits: SessionLimits) -> Self {
        SessionRegistry { limits, ..Self::default() }
    }

    pub fn create(&self, connection: u64, outbound: Outbound) -> Arc<Session> {
        let session = Arc::new(Session {
            id: uuid::Uuid::new_v4().to_string(),
            processes: Arc::new(ProcessTable::new(self.limits.max_processes)),
            files: Arc::new(FileHandles::new(self.limits.max_fs_handles)),
            sink: Arc::default(),
            watches: SessionWatches::new(self.watcher.clone()),
        });
        session.sink.attach(connection, outbound);
        lock(&self.sessions).insert(session.id.clone(), session.clone());
        session
    }

    /// Re-attaches a detached session to `connection`.
    pub fn resume(&self, id: &str, connection: u64, outbound: Outbound) -> Result<Arc<Session>, SessionError> {
        // The registry lock is held while attaching, so an expiry cannot remove the session
        // between the lookup and the attach.
        let sessions = lock(&self.sessions);
        let session = sessions.get(id).cloned().ok_or_else(|| SessionError::Unknown(id.to_owned()))?;
        let mut attached = lock(&session.sink.attached);
        if attached.connection.is_some() {
            return Err(SessionError::AlreadyAttached(id.to_owned()));
        }
        attached.connection = Some((connection, outbound));
        drop(attached);
        drop(sessions);
        Ok(session)
    }

    /// Detaches `connection` from its session. When it was still attached, returns the
    /// detach generation to hand to [`SessionRegistry::expire`] once the TTL has passed.
    pub fn detach(&self, session: &Session, connection: u64) -> Option<u64> {
        session.sink.detach_if(connection)
    }

    /// Removes the session (killing its processes, ending its watches) if it is still detached since the
    /// detach that returned `generation`; true when it was removed.
    pub fn expire(&self, id: &str, generation: u64) -> bool {
        let mut sessions = lock(&self.sessions);
        let Some(session) = sessions.get(id).cloned() else { return false };
        {
            let attached = lock(&session.sink.attached);
            if attached.connection.is_some() || attached.detaches != generation {
                return false;
            }
        }
        sessions.remove(id);
        drop(sessions);
        session.processes.kill_all();
        session.watches.cancel_all();
        true
    }

    /// Forgets a session, kills its processes and ends its watches.
    pub fn remove(&self, id: &str) {
        if let Some(session) = lock(&self.sessions).remove(id) {
            session.processes.kill_all();
            session.watches.cancel_all();
        }
    }

    pub fn all(&self) -> Vec<Arc<Session>> {
        lock(&self.sessions).values().cloned().collect()
    }
}
