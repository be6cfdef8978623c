//! Sessions own processes; a connection attaches to one. Notifications go to whichever
//! connection is attached. While none is, process notifications are dropped (the output
//! stays readable through `process/read`) and one-shot ones (`fs/missingChanged`) are held
//! for the next attach.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::fs::watch::{Engine, SessionWatches};
use crate::fs::FileHandles;
use crate::limits::SessionLimits;
pub use crate::notify::{NotificationSink, Outbound};
use crate::process::ProcessTable;
use crate::sync::lock;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("unknown session id {0}")]
    Unknown(String),
    #[error("session {0} is already attached to another connection")]
    AlreadyAttached(String),
    #[error("session has been resumed by another connection")]
    Evicted,
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
        if !session.sink.attach_if_detached(connection, outbound) {
            return Err(SessionError::AlreadyAttached(id.to_owned()));
        }
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
        if !session.sink.detached_since(generation) {
            return false;
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
