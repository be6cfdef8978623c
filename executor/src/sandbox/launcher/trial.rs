//! The trial run: `true` under a bwrap with the base mounts of a sandbox, to learn what
//! this host allows (a fresh `/proc`) before a real command depends on it.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::Launcher;

/// Longest a trial run may take before it counts as failed.
const TRIAL_LIMIT: Duration = Duration::from_secs(10);

/// bwrap's message when the kernel refuses a new procfs ("Can't mount proc on
/// /newroot/proc: Operation not permitted"); matched without the path.
pub fn is_proc_mount_failure(stderr: &str) -> bool {
    stderr.contains("Can't mount proc")
}

/// The bwrap arguments of [`Launcher::trial_run`].
pub fn trial_args(proc_args: [&'static str; 2]) -> Vec<&'static str> {
    let mut args = vec![
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-net",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--as-pid-1",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
    ];
    args.extend(proc_args);
    args.extend(["--cap-drop", "ALL", "--", true_binary()]);
    args
}

/// `true`, from wherever this system keeps it.
pub fn true_binary() -> &'static str {
    if Path::new("/usr/bin/true").exists() {
        "/usr/bin/true"
    } else {
        "/bin/true"
    }
}

impl Launcher {
    /// Runs `true` under this bwrap with the namespaces and base mounts of a
    /// network-restricted command, `/proc` set up by `proc_args`. Returns whether it
    /// succeeded, and bwrap's stderr.
    pub fn trial_run(&self, proc_args: [&'static str; 2]) -> (bool, String) {
        let args = trial_args(proc_args);
        let mut cmd = self.command();
        cmd.args(&args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).env_clear();
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => return (false, format!("cannot start {}: {e}", self.exec_path.display())),
        };
        let deadline = Instant::now() + TRIAL_LIMIT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                _ => {
                    let _ = child.kill();
                    break;
                }
            }
        }
        match child.wait_with_output() {
            Ok(out) => (out.status.success(), String::from_utf8_lossy(&out.stderr).trim().to_string()),
            Err(e) => (false, e.to_string()),
        }
    }

    /// Whether sandboxes can get a fresh `/proc` of their PID namespace. Hosts where the
    /// kernel refuses it (a container whose /proc has locked over-mounts) get a masked,
    /// empty `/proc` instead: never the host's. Learned once per launcher by a trial
    /// run; any other failure counts as mountable so the real run reports it.
    pub fn can_mount_proc(&self) -> bool {
        *self.proc_mountable.get_or_init(|| {
            let (ok, stderr) = self.trial_run(["--proc", "/proc"]);
            let mountable = ok || !is_proc_mount_failure(&stderr);
            if !mountable {
                tracing::warn!("a fresh /proc cannot be mounted in sandboxes on this host ({stderr}); sandboxes get an empty /proc");
            }
            mountable
        })
    }
}
