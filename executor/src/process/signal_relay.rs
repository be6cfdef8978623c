//! The sandbox's PID 1 (the inner stage), seen from the host.
//!
//! A sandboxed process is bwrap, and bwrap does not forward signals: an interrupt sent
//! to its process group kills bwrap, and `--die-with-parent` then SIGKILLs the sandbox,
//! so the command never sees its SIGINT. The inner stage does forward signals to the
//! command's process group, so signals other than SIGKILL are sent to it instead. bwrap
//! reports its host pid on `--info-fd`; we hold it as a pidfd, so a recycled pid can
//! never receive the signal.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

/// bwrap's info document is a few dozen bytes; anything longer is not it.
const MAX_INFO: usize = 4096;

pub struct SignalRelay {
    pidfd: OnceLock<OwnedFd>,
    /// True once there is nothing more to learn (reported, or bwrap gave up).
    settled: watch::Sender<bool>,
}

/// The pipe bwrap reports on: (read end for us, write end for bwrap), both close-on-exec
/// until the write end is handed to bwrap.
pub fn info_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

impl SignalRelay {
    /// `expect_report`: bwrap was asked to report its PID 1, and `learn` will run.
    pub fn new(expect_report: bool) -> Self {
        SignalRelay { pidfd: OnceLock::new(), settled: watch::channel(!expect_report).0 }
    }

    /// Waits, at most `limit`, until bwrap's report was read or will never come: a signal
    /// sent right after a start must not fall back to killing bwrap only because the
    /// report was still in the pipe.
    pub async fn settled(&self, limit: Duration) {
        let mut rx = self.settled.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|done| *done)).await;
    }

    /// Reads bwrap's report from `info` and remembers the inner stage. Gives up quietly
    /// when bwrap exits without reporting (it failed to set up; that is reported on its
    /// stderr) — signals then go to bwrap's process group as for any process.
    pub async fn learn(&self, info: OwnedFd) {
        self.read_report(info).await;
        self.settled.send_replace(true);
    }

    async fn read_report(&self, info: OwnedFd) {
        let Ok(mut pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(info) else { return };
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 256];
        while buf.len() < MAX_INFO {
            match pipe.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if let Some(pid) = parse_child_pid(&buf) {
                match pidfd_open(pid) {
                    Ok(fd) => {
                        let _ = self.pidfd.set(fd);
                    }
                    Err(e) => tracing::debug!("cannot hold the sandbox init {pid}: {e}"),
                }
                return;
            }
        }
    }

    /// Sends `signal` to the inner stage; false when it is not known (yet) or gone.
    pub fn signal(&self, signal: Signal) -> bool {
        let Some(pidfd) = self.pidfd.get() else { return false };
        // SAFETY: pidfd_send_signal with a pidfd we own, a valid signal number, and no
        // siginfo (NULL), as the kernel documents for a plain kill.
        let r = unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), signal as libc::c_int, std::ptr::null::<libc::siginfo_t>(), 0)
        };
        r == 0
    }
}

/// The `child-pid` of a complete bwrap info document (`{"child-pid": N, ...}`).
fn parse_child_pid(buf: &[u8]) -> Option<i32> {
    let doc: serde_json::Value = serde_json::from_slice(buf).ok()?;
    let pid = doc.get("child-pid")?.as_i64()?;
    i32::try_from(pid).ok().filter(|p| *p > 0)
}

fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("descriptor out of range"))?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_info_document_of_old_and_new_bwraps() {
        assert_eq!(parse_child_pid(b"{\n    \"child-pid\": 4242\n}\n"), Some(4242));
        assert_eq!(
            parse_child_pid(b"{\n    \"child-pid\": 17,\n    \"cgroup-namespace\": 4026531835,\n    \"ipc-namespace\": 1\n}\n"),
            Some(17)
        );
    }

    #[test]
    fn waits_for_a_complete_document() {
        assert_eq!(parse_child_pid(b"{\n    \"child-pid\": 42"), None);
        assert_eq!(parse_child_pid(b"{\"child-pid\": -1}"), None);
        assert_eq!(parse_child_pid(b"garbage"), None);
    }
}
