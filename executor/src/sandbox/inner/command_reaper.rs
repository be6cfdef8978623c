//! Fork the user command, reap every orphan, forward signals, exit with the command's
//! status (128 + signal number when it was killed by a signal).
//!
//! As PID 1 of a PID namespace, signals without a handler are dropped by the kernel
//! unless they are blocked; so the forwarded signals are blocked and taken with
//! `sigwait`. The command runs in its own process group and forwarded signals go to
//! the whole group. When the command exits we exit too, and the kernel kills whatever
//! is left in the namespace.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use std::os::fd::AsFd;

use super::ExecFailure;

const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

/// Everything the child needs, built before fork so the child only makes system calls.
pub struct Prepared {
    file: CString,
    argv: Vec<CString>,
    display: String,
    /// The command's and PID 1's seccomp programs, and what serves the command's.
    pub seccomp: Option<super::supervisor::Setup>,
    /// Report the guard's state on stderr.
    pub debug: bool,
    pub exec_failure: ExecFailure,
}

/// Why the command's argv cannot be handed to `execvp`.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("no command given")]
    NoCommand,
    #[error("command argument contains a NUL byte")]
    NulByte,
    #[error("command was not prepared")]
    NotPrepared,
}

impl Prepared {
    pub fn new(argv: &[OsString], arg0: Option<&str>) -> Result<Self, PrepareError> {
        let cs = |s: &[u8]| CString::new(s).map_err(|_| PrepareError::NulByte);
        let first = argv.first().ok_or(PrepareError::NoCommand)?;
        let file = cs(first.as_bytes())?;
        let mut args = Vec::with_capacity(argv.len());
        args.push(match arg0 {
            Some(a) => cs(a.as_bytes())?,
            None => file.clone(),
        });
        for a in &argv[1..] {
            args.push(cs(a.as_bytes())?);
        }
        Ok(Prepared {
            file,
            argv: args,
            display: first.to_string_lossy().into_owned(),
            seccomp: None,
            debug: false,
            exec_failure: ExecFailure::default(),
        })
    }
}

/// Without `--as-pid-1` bwrap's init is PID 1; become the reaper of our subtree anyway.
pub fn become_reaper() {
    if std::process::id() != 1 {
        // A failure only means orphans are reaped by bwrap's init instead of us.
        let _ = super::sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
    }
}

pub fn run(mut command: Prepared) -> ! {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for s in FORWARDED {
        set.add(*s);
    }
    if let Err(e) = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None) {
        fail(&format!("cannot block signals: {e}"));
    }

    // SAFETY: the inner stage is single-threaded (no runtime is started before it), so
    // the child may run arbitrary code; it only calls async-signal-safe functions
    // anyway until exec.
    let child = match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => exec_child(&command),
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => fail(&format!("cannot fork: {e}")),
    };
    // Both sides set the group, so a signal forwarded right away finds it.
    let _ = nix::unistd::setpgid(child, child);
    let supervisor = match command.seccomp.take().map(super::supervisor::Setup::start_in_parent) {
        None => fail_with(child, "no seccomp program was prepared"),
        Some(Ok(s)) => s,
        // The command may have its filter but nobody to answer it, or none at all; or
        // PID 1 is without its own: either way it must not go on.
        Some(Err(e)) => fail_with(child, &format!("seccomp supervisor could not start: {e}")),
    };
    if let (true, Some(guard)) = (command.debug, supervisor.as_ref().and_then(|s| s.guard())) {
        let (names, pinned) = guard.counts();
        eprintln!("executor-sandbox: create guard: on ({names} missing protected names, {pinned} pinned directories)");
    }
    match supervisor {
        None => loop {
            match set.wait() {
                Ok(sig) => {
                    if let Some(code) = on_signal(sig, child) {
                        std::process::exit(code);
                    }
                }
                Err(e) => fail(&format!("sigwait failed: {e}")),
            }
        },
        Some(supervisor) => serve(&set, child, supervisor),
    }
}

fn fail_with(child: Pid, msg: &str) -> ! {
    let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
    fail(msg)
}

/// The event loop with a supervisor: signals (through a signalfd) and the command's
/// notifications, one thread.
fn serve(set: &SigSet, child: Pid, mut supervisor: super::supervisor::Supervisor) -> ! {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::signalfd::{SfdFlags, SignalFd};

    let sfd = match SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) {
        Ok(fd) => fd,
        Err(e) => fail(&format!("signalfd failed: {e}")),
    };
    let mut listening = true;
    loop {
        let (signals, notified) = {
            let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
            if listening {
                fds.push(PollFd::new(supervisor.fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => fail(&format!("poll failed: {e}")),
            }
            let ready = |f: &PollFd<'_>| f.revents().unwrap_or(PollFlags::empty());
            let guard = fds.get(1).map(ready).unwrap_or(PollFlags::empty());
            // POLLHUP: nothing runs under the filter any more.
            if guard.contains(PollFlags::POLLHUP) && !guard.contains(PollFlags::POLLIN) {
                listening = false;
            }
            (ready(&fds[0]).contains(PollFlags::POLLIN), guard.contains(PollFlags::POLLIN))
        };
        if notified {
            supervisor.handle_one();
        }
        if signals {
            while let Ok(Some(info)) = sfd.read_signal() {
                if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                    if let Some(code) = on_signal(sig, child) {
                        supervisor.finish();
                        std::process::exit(code);
                    }
                }
            }
        }
    }
}

/// Forwards a signal to the command's group, or reaps on SIGCHLD; `Some(status)` to
/// exit with once the command is gone.
fn on_signal(sig: Signal, child: Pid) -> Option<i32> {
    if sig != Signal::SIGCHLD {
        if nix::sys::signal::killpg(child, sig).is_err() {
            let _ = nix::sys::signal::kill(child, sig);
        }
        return None;
    }
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => return Some(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => return Some(128 + sig as i32),
            Ok(WaitStatus::StillAlive) => return None,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None, // ECHILD: nothing left to reap
        }
    }
}

fn exec_child(command: &Prepared) -> ! {
    let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
    // SAFETY: restoring default dispositions in a freshly forked single-threaded child.
    // The Rust runtime ignores SIGPIPE; exec would keep that, so reset it.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // Last, so that nothing before exec goes through the supervisor.
    // Without a program there is no filter to run under: that too stops the command.
    if command.seccomp.as_ref().is_none_or(|seccomp| seccomp.install_in_child().is_err()) {
        // SAFETY: write(2) of a static buffer to stderr, async-signal-safe.
        let msg = b"executor: sandbox setup failed: cannot install the command's seccomp filter; the command does not run\n";
        unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
        // SAFETY: _exit in the forked child, see below.
        unsafe { libc::_exit(crate::sandbox::EXIT_SETUP_FAILED) }
    }
    let mut ptrs: Vec<*const libc::c_char> = command.argv.iter().map(|c| c.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: `file` and every argv entry are NUL-terminated C strings that outlive the
    // call, and the argv array is NULL-terminated.
    unsafe { libc::execvp(command.file.as_ptr(), ptrs.as_ptr()) };
    let err = std::io::Error::last_os_error();
    eprintln!("executor: cannot execute `{}` in the sandbox: {err}", command.display);
    let status = command.exec_failure.status(&err);
    // SAFETY: _exit skips atexit handlers and stdio flushing of the parent's state in
    // the forked child, which is what a failed exec must do.
    unsafe { libc::_exit(status) }
}

fn fail(msg: &str) -> ! {
    eprintln!("executor: sandbox setup failed: {msg}");
    std::process::exit(crate::sandbox::EXIT_SETUP_FAILED);
}
