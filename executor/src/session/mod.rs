//! Sessions own processes; a connection attaches to one. Notifications go to whichever
//! connection is attached, and are dropped (but stay readable) while none is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::fs::FileHandles;
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

/// The attached connection, and how many times the session has been detached: a TTL
/// timer started at a detach expires the session only if no later attach happened.
#[derive(Default)]
struct Attachment {
    connection: Option<(u64, Outbound)>,
    detaches: u64,
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
}

impl SessionRegistry {
    pub fn create(&self, connection: u64, outbound: Outbound) -> Arc<Session> {
        let session = Arc::new(Session {
            id: uuid::Uuid::new_v4().to_string(),
            processes: Arc::default(),
            files: Arc::default(),
            sink: Arc::default(),
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

    /// Removes the session (killing its processes) if it is still detached since the
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
        true
    }

    /// Forgets a session and kills its processes.
    pub fn remove(&self, id: &str) {
        if let Some(session) = lock(&self.sessions).remove(id) {
            session.processes.kill_all();
        }
    }

    pub fn all(&self) -> Vec<Arc<Session>> {
        lock(&self.sessions).values().cloned().collect()
    }
}
