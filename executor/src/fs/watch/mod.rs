//! `fs/watchMissing` (protocol.md §7.4): tell the client, once, when one of the paths it
//! named appears.
//!
//! Semantics chosen where the reference leaves them open:
//! * Only the paths that are missing when the request arrives are watched; `watching` is
//!   true iff at least one is. An empty list, or only existing paths, gives `false`.
//! * A watch fires at most once (one `fs/missingChanged {watchId}`) and then ends; the
//!   client re-sends `fs/watchMissing` to keep watching.
//! * A request with the `watchId` of a live watch of the same session replaces it (an empty
//!   list therefore cancels it): there is no unwatch method.
//! * Watches belong to the session: they survive a detach, a notification for a watch that
//!   fires while detached is delivered after the resume (once the client sends
//!   `initialized`), and they end when the session expires or ends.
//! * "Appears" means anything at the path, as `lstat` sees it (a dangling symlink counts).
//! * Checks run with the executor's own rights, like fs requests with `sandbox: null`.
//!   `--require-sandbox` without a default refuses the request (and the capability is
//!   reported false); the `--default-sandbox` profiles read everything, so they hide no
//!   path's existence and the request is served.

mod engine;
mod state;

use std::path::PathBuf;
use std::sync::Arc;

pub use engine::{Engine, POLL_INTERVAL};

use crate::notify::NotificationSink;

/// Live watches one session may hold.
pub const MAX_WATCHES_PER_SESSION: usize = 64;
/// Paths one `fs/watchMissing` request may name.
pub const MAX_PATHS_PER_WATCH: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("fs/watchMissing: a session may hold at most {MAX_WATCHES_PER_SESSION} live watches")]
    TooManyWatches,
    #[error("fs/watchMissing: at most {MAX_PATHS_PER_WATCH} paths per watch, got {0}")]
    TooManyPaths(usize),
    #[error("fs/watchMissing: cannot start the watcher thread: {0}")]
    Thread(String),
}

/// The watches of one session; they end when it is dropped.
pub struct SessionWatches {
    engine: Arc<Engine>,
    owner: u64,
}

impl SessionWatches {
    pub fn new(engine: Arc<Engine>) -> Self {
        let owner = engine.new_owner();
        Self { engine, owner }
    }

    /// Blocks on filesystem checks: call off the runtime.
    pub fn watch(
        &self,
        watch_id: u64,
        paths: Vec<PathBuf>,
        sink: Arc<NotificationSink>,
        runtime: tokio::runtime::Handle,
    ) -> Result<bool, WatchError> {
        let key = state::Key { owner: self.owner, watch_id };
        self.engine.watch(key, paths, sink, runtime)
    }

    pub fn cancel_all(&self) {
        self.engine.cancel_owner(self.owner);
    }
}

impl Drop for SessionWatches {
    fn drop(&mut self) {
        self.cancel_all();
    }
}

// A detached session holds every watch's one-shot notification (notify::MAX_HELD);
// checked when the crate compiles, so a change to either limit cannot break it.
const _: () = assert!(4 * MAX_WATCHES_PER_SESSION <= crate::notify::MAX_HELD);
