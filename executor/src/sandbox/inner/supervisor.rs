//! The command's seccomp filter and PID 1's side of it.
//!
//! PID 1 and the command get different programs. PID 1's fails refused calls with
//! EPERM in the kernel. The command's sends them, and the create guard's creating calls,
//! to PID 1 as user notifications: a refusal is answered with the same EPERM and counted
//! for `sandbox/report` (`sandbox::refusals`), a guard call is carried out by the guard.
//! Allowed calls never leave the kernel either way.
//!
//! A notifying filter is only of use if PID 1 is outside it: the kernel ranks an errno
//! above a notification, so a command that inherited PID 1's EPERM program would never
//! notify. PID 1 therefore forks first; the child installs its own program and passes
//! the listener up before exec, and PID 1 installs its own right after the fork. A
//! child that cannot install its program does not run. If only the recording wanted a
//! listener and the kernel has none (before Linux 5.0), the child installs the same
//! program failing in the kernel, and the report says nothing was recorded.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fs_helper::fd_pass;
use libc::sock_filter;
use nix::sys::socket::{self, MsgFlags};

use super::guard::{self, sys as notif};
use super::seccomp::{self, CommandFilter, SeccompError};
use crate::sandbox::refusals::{self, Record};

/// Everything the fork needs, built while system calls are still unfiltered.
pub struct Setup {
    own: Vec<sock_filter>,
    command: Vec<sock_filter>,
    /// The command's program failing in the kernel, for a kernel without listeners
    /// when only the recording asked for one.
    fallback: Option<Vec<sock_filter>>,
    /// The socketpair the listener goes up on, when the command's program notifies.
    channel: Option<(OwnedFd, OwnedFd)>,
    guard: Option<guard::Guard>,
    report: Option<OwnedFd>,
}

impl Setup {
    /// `report`: the executor's refusals pipe, when it asked for one.
    pub fn new(network: bool, guard: Option<guard::Guard>, report: Option<OwnedFd>) -> Result<Setup, SeccompError> {
        let filter = CommandFilter { guard: guard.is_some(), notify_refusals: report.is_some() };
        let own = seccomp::program(network, CommandFilter::NONE).map_err(SeccompError::Build)?;
        let command = seccomp::program(network, filter).map_err(SeccompError::Build)?;
        let fallback = match (guard.is_some(), report.is_some()) {
            (false, true) => Some(own.clone()),
            _ => None,
        };
        let channel = if filter.notifies() {
            let pair = socket::socketpair(socket::AddressFamily::Unix, socket::SockType::SeqPacket, None, socket::SockFlag::SOCK_CLOEXEC)
                .map_err(|e| SeccompError::Build(format!("socketpair: {e}")))?;
            Some(pair)
        } else {
            None
        };
        Ok(Setup { own, command, fallback, channel, guard, report })
    }

    /// In the forked child, before exec: install the command's program and pass its
    /// listener to the parent, keeping no copy. Only system calls and allocation (the
    /// parent was single-threaded at fork). `Err`: the command must not run.
    pub fn install_in_child(&self) -> Result<(), i32> {
        let Some((_, child_end)) = &self.channel else {
            return seccomp::install(&self.command, false).map(drop);
        };
        let sent = match seccomp::install(&self.command, true) {
            Ok(Some(listener)) => fd_pass::send_fd(child_end.as_fd(), listener.as_fd(), &0i32.to_ne_bytes())
                .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO)),
            Ok(None) => Err(libc::EINVAL),
            Err(errno) => Err(errno),
        };
        match (sent, &self.fallback) {
            (Ok(()), _) => Ok(()),
            (Err(errno), Some(fallback)) => {
                seccomp::install(fallback, false)?;
                let _ = socket::send(child_end.as_raw_fd(), &errno.to_ne_bytes(), MsgFlags::MSG_NOSIGNAL);
                Ok(())
            }
            (Err(errno), None) => {
                let _ = socket::send(child_end.as_raw_fd(), &errno.to_ne_bytes(), MsgFlags::MSG_NOSIGNAL);
                Err(errno)
            }
        }
    }

    /// In PID 1 after the fork: install its own program, then receive the command's
    /// listener. `Ok(None)`: nothing to supervise. `Err`: the caller kills the command.
    pub fn start_in_parent(self) -> Result<Option<Supervisor>, String> {
        let Setup { own, channel, guard, report, fallback, .. } = self;
        seccomp::apply_own(&own).map_err(|e| e.to_string())?;
        let Some((parent_end, child_end)) = channel else { return Ok(None) };
        drop(child_end);
        let listener = match receive_listener(parent_end.as_fd()) {
            Ok(l) => l,
            // The child fell back to a program without notifications: it runs, unrecorded.
            Err(_) if fallback.is_some() => return Ok(None),
            Err(e) => return Err(e),
        };
        let guard = guard.map(guard::Guard::serve).transpose()?;
        let recorder = report.map(Recorder::start);
        let buf = vec![0u64; notif::notif_size().div_ceil(8)];
        Ok(Some(Supervisor { listener: Arc::new(listener), guard, recorder, buf }))
    }
}

fn receive_listener(sock: BorrowedFd<'_>) -> Result<OwnedFd, String> {
    let mut bytes = [0u8; 4];
    let (len, listener) = fd_pass::recv_fd(sock, &mut bytes).map_err(|e| format!("recvmsg: {e}"))?;
    if len == 0 {
        return Err("the command exited before installing its filter".into());
    }
    let errno = i32::from_ne_bytes(bytes);
    listener.ok_or_else(|| format!("seccomp listener: {}", std::io::Error::from_raw_os_error(errno)))
}

/// Answers the command's notifications from PID 1's event loop.
pub struct Supervisor {
    listener: Arc<OwnedFd>,
    guard: Option<guard::Served>,
    recorder: Option<Recorder>,
    buf: Vec<u64>,
}

impl Supervisor {
    /// The descriptor to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    pub fn guard(&self) -> Option<&guard::Served> {
        self.guard.as_ref()
    }

    /// Receives and answers one notification (call when `fd()` is readable).
    pub fn handle_one(&mut self) {
        let n = match notif::recv(self.listener.as_fd(), &mut self.buf) {
            Ok(n) => n,
            Err(_) => return, // interrupted, or the caller died before we got to it
        };
        if let (Some(guard), true) = (&self.guard, guard::filter::routes(n.nr)) {
            guard.handle(&self.listener, n);
            return;
        }
        // Everything else the filter sends is a call its rules refused: the decision
        // was the kernel's, on registers no other thread can change.
        notif::reply(self.listener.as_fd(), n.id, Err(libc::EPERM));
        if let Some(recorder) = &mut self.recorder {
            recorder.count(n.nr, n.args[0]);
            recorder.flush();
        }
    }

    /// Before PID 1 exits: whatever is still pending reaches the executor.
    pub fn finish(&mut self) {
        if let Some(recorder) = &mut self.recorder {
            recorder.finish();
        }
    }
}

/// Counts refusals and writes them to the executor's pipe without ever blocking the
/// event loop: what does not fit now is kept and sent with the next flush.
struct Recorder {
    pipe: Option<OwnedFd>,
    pending: BTreeMap<(u32, u32), u64>,
}

/// How long PID 1's exit waits for a full pipe to drain (the executor reads it all the
/// time; this only bounds an executor that stopped).
const FINAL_FLUSH_LIMIT: Duration = Duration::from_secs(1);

impl Recorder {
    fn start(pipe: OwnedFd) -> Recorder {
        let _ = nix::fcntl::fcntl(pipe.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
        let mut r = Recorder { pipe: Some(pipe), pending: BTreeMap::new() };
        r.write(Record::recording_on());
        r
    }

    fn count(&mut self, nr: i64, first_arg: u64) {
        let family = if refusals::takes_family(nr) { first_arg as u32 } else { refusals::NO_FAMILY };
        let slot = self.pending.entry((nr as u32, family)).or_insert(0);
        *slot = slot.saturating_add(1);
    }

    /// Sends pending counts until the pipe is full.
    fn flush(&mut self) {
        while let Some((&(nr, family), &count)) = self.pending.iter().next() {
            if !self.write(Record { nr, family, count }) {
                return;
            }
            self.pending.remove(&(nr, family));
        }
    }

    /// One record; false when the pipe is full (kept for later) or gone.
    fn write(&mut self, r: Record) -> bool {
        let Some(pipe) = &self.pipe else { return false };
        let bytes = r.encode();
        match nix::unistd::write(pipe, &bytes) {
            Ok(n) if n == bytes.len() => true,
            Err(nix::errno::Errno::EAGAIN) => false,
            // A partial write cannot happen below PIPE_BUF; any other failure means the
            // executor is gone, and nobody is left to tell.
            _ => {
                self.pipe = None;
                self.pending.clear();
                false
            }
        }
    }

    fn finish(&mut self) {
        let deadline = Instant::now() + FINAL_FLUSH_LIMIT;
        self.flush();
        while !self.pending.is_empty() && self.pipe.is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            self.flush();
        }
    }
}

/// The executor's refusals pipe named in the config, if it is one: a descriptor that
/// is not an open pipe is not used (the report then says nothing was recorded).
pub fn report_pipe(fd: Option<i32>) -> Option<OwnedFd> {
    let fd: RawFd = fd?;
    if fd <= 2 {
        return None;
    }
    // SAFETY: F_GETFD only tells whether the number is open; no memory is passed.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the number is open, was handed to this process for this purpose only,
    // and nothing else in the inner stage takes ownership of it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let is_fifo = nix::sys::stat::fstat(owned.as_raw_fd()).map(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO).unwrap_or(false);
    is_fifo.then_some(owned)
}
