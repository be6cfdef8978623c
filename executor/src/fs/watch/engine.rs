//! The server's one watcher: a single inotify instance (the per-user instance limit is
//! small, 128 by default) and one thread that waits on it, started with the first watch and
//! gone with the last. Filesystem checks happen on that thread, never on the async runtime.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{InitFlags, Inotify, InotifyEvent};
use tokio::runtime::Handle;

use super::state::{exists, Fired, Key, Watches};
use super::{WatchError, MAX_WATCHES_PER_SESSION};
use crate::notify::NotificationSink;
use crate::protocol::envelope::notification_line;
use crate::protocol::types::{methods, MissingChangedNotification};
use crate::sync::lock;

/// How often watches that inotify does not cover are re-checked.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Reads of the inotify queue per wake-up, so that an event flood cannot keep the thread
/// from re-checking (the rest is read on the next round).
const MAX_READS_PER_ROUND: usize = 64;

pub struct Engine {
    state: Mutex<State>,
    next_owner: AtomicU64,
    /// False only in tests of the polling fallback.
    use_inotify: bool,
}

#[derive(Default)]
struct State {
    watches: Watches,
    /// Write end of the running thread's wake-up pipe; `None` while no thread runs.
    wake: Option<OwnedFd>,
    /// Where notifications are sent from.
    runtime: Option<Handle>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new(true)
    }
}

impl Engine {
    pub fn new(use_inotify: bool) -> Self {
        Self { state: Mutex::default(), next_owner: AtomicU64::new(1), use_inotify }
    }

    /// A fresh owner id for a session's watches.
    pub fn new_owner(&self) -> u64 {
        self.next_owner.fetch_add(1, Ordering::Relaxed)
    }

    /// Starts (or replaces, or with no missing path ends) the watch `key`; true when it
    /// watches at least one path. Blocks on filesystem checks: call off the runtime.
    pub fn watch(
        self: &Arc<Self>,
        key: Key,
        paths: Vec<PathBuf>,
        sink: Arc<NotificationSink>,
        runtime: Handle,
    ) -> Result<bool, WatchError> {
        let missing: Vec<PathBuf> = paths.into_iter().filter(|p| !exists(p)).collect();
        let mut state = lock(&self.state);
        state.watches.remove(key);
        if missing.is_empty() {
            return Ok(false);
        }
        if state.watches.count(key.owner) >= MAX_WATCHES_PER_SESSION {
            return Err(WatchError::TooManyWatches);
        }
        self.ensure_thread(&mut state)?;
        state.runtime = Some(runtime);
        let fired = state.watches.insert(key, missing, sink);
        // The thread recomputes its timeout (a polling watch needs the tick).
        wake(&state);
        deliver(&state, fired);
        Ok(true)
    }

    /// Ends every watch of `owner`.
    pub fn cancel_owner(&self, owner: u64) {
        let mut state = lock(&self.state);
        state.watches.remove_owner(owner);
        // Lets the thread exit if that was the last watch.
        wake(&state);
    }

    fn ensure_thread(self: &Arc<Self>, state: &mut State) -> Result<(), WatchError> {
        if state.wake.is_some() {
            return Ok(());
        }
        let inotify = self.use_inotify.then(open_inotify).flatten();
        let (wake_rx, wake_tx) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).map_err(|e| WatchError::Thread(e.to_string()))?;
        let engine = self.clone();
        let thread_inotify = inotify.clone();
        std::thread::Builder::new()
            .name("fs-watch".to_owned())
            .spawn(move || engine.run(thread_inotify, wake_rx))
            .map_err(|e| WatchError::Thread(e.to_string()))?;
        state.watches.set_inotify(inotify);
        state.wake = Some(wake_tx);
        Ok(())
    }

    /// The thread: waits for inotify events, a wake-up or the poll tick, then re-checks the
    /// watches concerned. Returns once no watch is left.
    fn run(self: Arc<Self>, mut inotify: Option<Arc<Inotify>>, wake_rx: OwnedFd) {
        let mut next_tick = Instant::now() + POLL_INTERVAL;
        while let Some(timeout) = self.next_timeout(next_tick) {
            wait(inotify.as_deref(), &wake_rx, timeout);
            drain(&wake_rx);
            let events = match inotify.as_deref().map(read_events).transpose() {
                Ok(events) => events.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(error = %e, "reading inotify events failed; missing-path watches fall back to polling");
                    inotify = None;
                    lock(&self.state).watches.drop_inotify();
                    Vec::new()
                }
            };
            let tick = Instant::now() >= next_tick;
            if tick {
                next_tick = Instant::now() + POLL_INTERVAL;
            }
            let mut state = lock(&self.state);
            let mut keys = state.watches.affected(&events);
            if tick {
                keys.extend(state.watches.polling_keys());
            }
            let fired = state.watches.refresh_all(keys);
            deliver(&state, fired);
        }
    }

    /// How long the thread may wait (`Some(None)`: until an event); `None` when no watch is
    /// left, after which the thread exits and a new watch starts a new one.
    fn next_timeout(&self, next_tick: Instant) -> Option<Option<Duration>> {
        let mut state = lock(&self.state);
        if state.watches.is_empty() {
            state.wake = None;
            state.watches.set_inotify(None);
            return None;
        }
        if state.watches.polling_keys().is_empty() {
            return Some(None);
        }
        Some(Some(next_tick.saturating_duration_since(Instant::now())))
    }
}

fn open_inotify() -> Option<Arc<Inotify>> {
    match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
        Ok(inotify) => Some(Arc::new(inotify)),
        Err(e) => {
            tracing::warn!(error = %e, "inotify is unavailable; fs/watchMissing polls every {POLL_INTERVAL:?}");
            None
        }
    }
}

fn wake(state: &State) {
    if let Some(fd) = &state.wake {
        // A full pipe already holds a pending wake-up.
        let _ = nix::unistd::write(fd, &[1]);
    }
}

fn drain(fd: &OwnedFd) {
    let mut buf = [0u8; 64];
    while matches!(nix::unistd::read(fd.as_raw_fd(), &mut buf), Ok(n) if n > 0) {}
}

fn wait(inotify: Option<&Inotify>, wake_rx: &OwnedFd, timeout: Option<Duration>) {
    let mut fds = vec![PollFd::new(wake_rx.as_fd(), PollFlags::POLLIN)];
    if let Some(inotify) = inotify {
        fds.push(PollFd::new(inotify.as_fd(), PollFlags::POLLIN));
    }
    // Rounded up so that a tick less than a millisecond away does not spin.
    let timeout = match timeout {
        None => PollTimeout::NONE,
        Some(t) => PollTimeout::try_from(t + Duration::from_millis(1)).unwrap_or(PollTimeout::MAX),
    };
    match nix::poll::poll(&mut fds, timeout) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(e) => {
            // Not expected with valid descriptors; pausing keeps a persistent failure from
            // turning into a busy loop.
            tracing::warn!(error = %e, "poll on the fs-watch descriptors failed");
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// Everything queued on the (non-blocking) instance, up to [`MAX_READS_PER_ROUND`] reads.
fn read_events(inotify: &Inotify) -> Result<Vec<InotifyEvent>, Errno> {
    let mut events = Vec::new();
    for _ in 0..MAX_READS_PER_ROUND {
        match inotify.read_events() {
            Ok(batch) if batch.is_empty() => break,
            Ok(batch) => events.extend(batch),
            Err(Errno::EAGAIN) => break,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(events)
}

/// Sends `fs/missingChanged` for each fired watch, without waiting on any connection.
fn deliver(state: &State, fired: impl IntoIterator<Item = Fired>) {
    let Some(runtime) = &state.runtime else { return };
    for Fired { sink, watch_id } in fired {
        let line = notification_line(methods::MISSING_CHANGED, &MissingChangedNotification { watch_id });
        runtime.spawn(async move { sink.send_or_hold(line).await });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without inotify a watch is found by the poll tick.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn polling_fallback_fires() {
        let engine = Arc::new(Engine::new(false));
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let sink = Arc::new(NotificationSink::default());
        sink.attach(1, tx);
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("later/file");
        let key = Key { owner: engine.new_owner(), watch_id: 7 };
        let (engine2, paths) = (engine.clone(), vec![target.clone()]);
        let handle = Handle::current();
        let watching = tokio::task::spawn_blocking(move || engine2.watch(key, paths, sink, handle)).await.expect("join").expect("watch");
        assert!(watching);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::write(&target, b"x").expect("write");
        // A hang guard only: the tick is one second.
        let line = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("in time")
            .expect("notification")
            .into_line()
            .expect("a whole line");
        let message: serde_json::Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(message, serde_json::json!({"method": "fs/missingChanged", "params": {"watchId": 7}}));
    }
}
