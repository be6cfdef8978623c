//! Running as PID 1 (a container's entrypoint), or as a subreaper with `--reap-orphans`.
//!
//! A PID 1 must reap every orphan that the kernel re-parents to it, or zombies pile up in
//! the container. Doing that inside the server would race with tokio: `tokio::process`
//! reaps its own children with `waitpid(pid)` from its SIGCHLD handling, and a
//! `waitpid(-1)` loop next to it could take the exit status of a child of ours first, so
//! that `process/exited` would report the wrong code. Telling orphans from our children by
//! pid (a table of spawned pids, `waitid(WNOWAIT)` peeking) still leaves windows: between
//! fork and recording the pid, and for children spawned by code that does not record them.
//!
//! So the executor splits itself, as `tini` does: before any thread exists, the process
//! forks. The parent stays PID 1 (or becomes a child subreaper, `PR_SET_CHILD_SUBREAPER`,
//! when `--reap-orphans` is given and it is not PID 1) and does only two things: it reaps
//! every child with `waitpid(-1)` and forwards termination signals to the server. The
//! child is the server; it reaps its own children with tokio exactly as it does elsewhere.
//! Orphans are never the server's children: when their parent dies they are re-parented to
//! PID 1 (or the subreaper), not to the server, so neither side can take the other's
//! statuses. When the server exits, the supervisor exits with the same status; as PID 1 its
//! exit makes the kernel kill whatever is left in the PID namespace.

use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, getppid, ForkResult, Pid};

/// Signals the supervisor passes on to the server.
const FORWARDED: [Signal; 6] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2];

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("cannot become a child subreaper: {0}")]
    Subreaper(nix::Error),
    #[error("cannot block signals for the supervisor: {0}")]
    SignalMask(nix::Error),
    #[error("cannot fork the server process: {0}")]
    Fork(nix::Error),
}

/// Whether the server should run under the reaping supervisor.
pub fn wanted(reap_orphans: bool) -> bool {
    reap_orphans || getpid().as_raw() == 1
}

/// Forks the supervisor when [`wanted`]. Returns in the server process; the supervisor
/// never returns (it exits with the server's status).
///
/// Must be called before any other thread exists (before the async runtime is built).
pub fn supervise(reap_orphans: bool) -> Result<(), InitError> {
    if !wanted(reap_orphans) {
        return Ok(());
    }
    let pid1 = getpid().as_raw() == 1;
    if !pid1 {
        nix::sys::prctl::set_child_subreaper(true).map_err(InitError::Subreaper)?;
    }
    // Blocked before the fork so that no signal arrives between the fork and sigwait; the
    // server restores the old mask. Blocked signals are queued even for PID 1, which
    // otherwise ignores signals it has no handler for.
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for signal in FORWARDED {
        set.add(signal);
    }
    let mut old_mask = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old_mask)).map_err(InitError::SignalMask)?;
    let supervisor = getpid();
    match fork_server() {
        Ok(ForkResult::Child) => {
            // The server: everything as usual, with its own signal handling.
            let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
            if !pid1 {
                // Outside a PID namespace nothing kills the server when the supervisor dies.
                let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
                if getppid() != supervisor {
                    std::process::exit(1);
                }
            }
            Ok(())
        }
        Ok(ForkResult::Parent { child }) => supervise_loop(child, &set),
        Err(e) => {
            let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
            Err(InitError::Fork(e))
        }
    }
}

fn fork_server() -> nix::Result<ForkResult> {
    // SAFETY: called from `supervise`, which runs before the runtime or any other thread
    // is started, so the child is a complete copy of a single-threaded process and may
    // continue running ordinary Rust code.
    unsafe { fork() }
}

/// Reaps every child and forwards signals until the server has exited.
fn supervise_loop(server: Pid, set: &SigSet) -> ! {
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => {
                if let Some(code) = reap_all(server) {
                    std::process::exit(code);
                }
            }
            Ok(signal) => {
                let _ = kill(server, signal);
            }
            Err(e) => {
                tracing::warn!("supervisor: sigwait failed: {e}");
                if let Some(code) = reap_all(server) {
                    std::process::exit(code);
                }
            }
        }
    }
}

/// Reaps every child that has exited; the server's exit status, once it is among them.
fn reap_all(server: Pid) -> Option<i32> {
    let mut server_status = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == server => server_status = Some(code),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == server => server_status = Some(128 + signal as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return server_status,
            Ok(_) => {}
        }
    }
}
