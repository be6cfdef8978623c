//! Kills a server's whole process group when a workload overruns its deadline, so
//! a server that stops answering makes the bench fail with a message instead of
//! hanging on a blocking read.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

extern "C" {
    /// libc `kill(2)`; std already links libc, and this is the only call we need.
    fn kill(pid: i32, sig: i32) -> i32;
}

const SIGKILL: i32 = 9;

/// Sends SIGKILL to process group `pgid`. Errors (group already gone) are ignored.
pub fn kill_group(pgid: u32) {
    let Ok(pgid) = i32::try_from(pgid) else { return };
    if pgid > 1 {
        // SAFETY: kill has no memory-safety preconditions; a negative pid names a group.
        unsafe { kill(-pgid, SIGKILL) };
    }
}

#[derive(Default)]
struct State {
    deadline: Option<Instant>,
    stopped: bool,
    fired: bool,
}

pub struct Watchdog {
    shared: Arc<(Mutex<State>, Condvar)>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Watchdog {
    /// Starts the watchdog thread for process group `pgid`, disarmed.
    pub fn start(pgid: u32) -> Self {
        let shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let theirs = Arc::clone(&shared);
        thread::spawn(move || watch(pgid, &theirs));
        Self { shared }
    }

    /// Kill the group if it is still running `limit` from now.
    pub fn arm(&self, limit: Duration) {
        let (m, cv) = &*self.shared;
        lock(m).deadline = Some(Instant::now() + limit);
        cv.notify_all();
    }

    /// Whether the watchdog has killed the group.
    pub fn fired(&self) -> bool {
        lock(&self.shared.0).fired
    }

    fn stop(&self) {
        let (m, cv) = &*self.shared;
        lock(m).stopped = true;
        cv.notify_all();
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop();
    }
}

fn watch(pgid: u32, shared: &(Mutex<State>, Condvar)) {
    let (m, cv) = shared;
    let mut state = lock(m);
    loop {
        if state.stopped {
            return;
        }
        match state.deadline {
            None => state = cv.wait(state).unwrap_or_else(|p| p.into_inner()),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    kill_group(pgid);
                    state.fired = true;
                    return;
                }
                state = cv.wait_timeout(state, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
            }
        }
    }
}
