//! Starting a child: its own process group (or session, for a PTY), pipes or a terminal,
//! and exactly the environment it was given.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

use super::pty::{self, PtyMaster};

/// What to execute, after any sandbox wrapping has been applied.
#[derive(Debug)]
pub struct SpawnSpec {
    pub program: PathBuf,
    /// argv[0] as the child sees it.
    pub argv0: OsString,
    pub args: Vec<OsString>,
    pub cwd: PathBuf,
    pub env: HashMap<String, String>,
    pub tty: bool,
    pub pipe_stdin: bool,
    /// Descriptors the child inherits at their current numbers (bwrap's `--info-fd`).
    pub inherited: Vec<std::os::fd::OwnedFd>,
    /// The tree's resource limits: its cgroup, joined before exec, and rlimit fallbacks.
    pub limiter: Option<std::sync::Arc<crate::sandbox::cgroup::TreeLimiter>>,
}

pub enum Streams {
    Pipes { stdout: ChildStdout, stderr: ChildStderr, stdin: Option<ChildStdin> },
    Pty(PtyMaster),
}

pub struct Spawned {
    pub child: Child,
    pub streams: Streams,
}

/// Pipes this large cut wake-ups when a child streams output quickly.
const PIPE_SIZE: usize = 1024 * 1024;

pub fn spawn(spec: SpawnSpec) -> io::Result<Spawned> {
    let mut command = Command::new(&spec.program);
    command.arg0(&spec.argv0).args(&spec.args).current_dir(&spec.cwd).env_clear().envs(&spec.env).kill_on_drop(false);
    crate::fds::InheritedFds::new(spec.inherited).install(&mut command);
    crate::limits::restore_for_child(&mut command);
    if let Some(limiter) = &spec.limiter {
        join_limits(&mut command, limiter.join_fds(), limiter.rlimits().to_vec());
    }
    if spec.tty {
        spawn_on_pty(command)
    } else {
        spawn_with_pipes(command, spec.pipe_stdin)
    }
}

/// The child enters the tree's cgroup and sets the fallback rlimits before exec
/// (`TreeLimiter` keeps the `cgroup.procs` descriptors open until after the spawn).
fn join_limits(command: &mut Command, procs: Vec<std::os::fd::RawFd>, rlimits: Vec<crate::sandbox::cgroup::Rlimit>) {
    // SAFETY: the closure runs in the forked child before exec; join_in_child only makes
    // async-signal-safe calls (write, setrlimit) on values copied into the closure.
    unsafe {
        command.pre_exec(move || crate::sandbox::cgroup::join_in_child(&procs, &rlimits));
    }
}

fn spawn_with_pipes(mut command: Command, pipe_stdin: bool) -> io::Result<Spawned> {
    command.process_group(0).stdin(if pipe_stdin { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(io::Error::other("child pipes were not created"));
    };
    crate::fds::enlarge_pipe(&stdout, PIPE_SIZE);
    crate::fds::enlarge_pipe(&stderr, PIPE_SIZE);
    let stdin = child.stdin.take();
    Ok(Spawned { child, streams: Streams::Pipes { stdout, stderr, stdin } })
}

fn spawn_on_pty(mut command: Command) -> io::Result<Spawned> {
    let pair = pty::open()?;
    command.stdin(Stdio::from(pair.slave.try_clone()?)).stdout(Stdio::from(pair.slave.try_clone()?)).stderr(Stdio::from(pair.slave));
    // SAFETY: the closure runs in the forked child before exec and only calls setsid and
    // ioctl, both async-signal-safe; it touches no memory shared with the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    // Dropping the command closes the parent's copies of the slave, so that the master
    // sees end-of-stream once the child and its descendants are gone.
    drop(command);
    Ok(Spawned { child, streams: Streams::Pty(PtyMaster::new(pair.master)?) })
}
