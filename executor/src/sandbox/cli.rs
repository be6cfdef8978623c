//! `executor sandbox [OPTIONS] -- CMD [ARGS...]`: run one command in the sandbox with
//! inherited stdio and exit with its status. The flags are parsed by clap together with
//! the rest of the command line (`main.rs`); this module runs what they ask for.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;

use super::host_errors::explanation_line;
use super::inner::ExecFailure;
use super::launcher::{Launcher, LauncherArgs, LauncherError};
use super::policy::{builtin_context, FileSystemSandboxContext};

/// Exit status when bwrap could not build the sandbox on this host (the command did not
/// run); the same number the inner stage uses for a sandbox it could not set up.
pub const EXIT_HOST_REFUSED: i32 = super::EXIT_SETUP_FAILED;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
The default policy, workspace-write, makes the working directory (--cwd), /tmp and $TMPDIR \
writable and everything else read-only; --writable adds directories to that set (with \
--policy read-only, they are the only writable ones). The network is off unless --network \
is given.

Exit status: the command's own (128+N when killed by signal N); 127 when the command is not \
found inside the sandbox, 126 when it cannot be executed there; 125 when this host refuses \
to build the sandbox (a line naming the cause and the FIX follows bwrap's message); 2 for \
usage errors.")]
pub struct SandboxArgs {
    /// Built-in policy.
    #[arg(long, value_enum, default_value_t = Policy::WorkspaceWrite)]
    policy: Policy,
    /// Another writable directory, besides those of the policy (repeatable).
    #[arg(long, value_name = "DIR")]
    writable: Vec<PathBuf>,
    /// A path hidden inside the sandbox (repeatable).
    #[arg(long, value_name = "PATH")]
    deny: Vec<PathBuf>,
    /// Leave the network enabled.
    #[arg(long)]
    network: bool,
    /// Working directory of the command and the policy [default: the current directory].
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// A whole FileSystemSandboxContext (JSON, as in `process/start`) instead of the policy flags.
    #[arg(long, value_name = "JSON", conflicts_with_all = ["policy", "writable", "deny", "network"])]
    permissions: Option<String>,
    #[command(flatten)]
    launcher: LauncherArgs,
    /// The command and its arguments (after `--` when the command starts with `-`).
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    command: Vec<String>,
}

/// `--policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Policy {
    /// Read everything, write nothing (but --writable directories).
    ReadOnly,
    /// Read everything, write the cwd, /tmp and $TMPDIR.
    WorkspaceWrite,
}

/// Why the command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SandboxCliError {
    /// The flags contradict each other or name something unusable (exit status 2).
    #[error("{}", .0.with_fix())]
    Usage(#[from] LauncherError),
    #[error("invalid --permissions: {0}")]
    Permissions(serde_json::Error),
    #[error("cannot resolve the working directory {path}: {source}")]
    Cwd { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Sandbox(#[from] super::SandboxError),
    #[error("cannot start {program}: {source}")]
    Spawn { program: PathBuf, source: std::io::Error },
}

impl SandboxCliError {
    /// The exit status for this error: 2 for usage errors, 1 otherwise.
    pub fn exit_status(&self) -> i32 {
        match self {
            SandboxCliError::Usage(_) | SandboxCliError::Permissions(_) => 2,
            SandboxCliError::Sandbox(e) if e.is_client_error() => 2,
            _ => 1,
        }
    }
}

/// Runs the command; its exit status, or what went wrong before it could run.
pub fn run(args: SandboxArgs) -> Result<i32, SandboxCliError> {
    let mut config = args.launcher.config()?;
    super::launcher::check_explicit_path(&config)?;
    // A shell's 127/126 rather than the server's sandboxDenied status: this caller reads
    // the exit status, as a shell user does.
    config.exec_failure = ExecFailure::Shell;
    let cwd = match args.cwd {
        Some(c) => c,
        None => std::env::current_dir().map_err(|source| SandboxCliError::Cwd { path: ".".into(), source })?,
    };
    let cwd = std::fs::canonicalize(&cwd).map_err(|source| SandboxCliError::Cwd { path: cwd, source })?;
    let ctx: FileSystemSandboxContext = match args.permissions {
        Some(json) => serde_json::from_str(&json).map_err(SandboxCliError::Permissions)?,
        None => {
            let workspace_write = args.policy == Policy::WorkspaceWrite;
            builtin_context(workspace_write, &cwd, &args.writable, &args.deny, args.network)
        }
    };
    let prepared = super::prepare(&config, &ctx, Some(&cwd), &cwd, &args.command, None, super::Handover::default())?;
    let spec = prepared.launch;
    // The same limits as the server's sandboxes (issue 17): a flag given here must hold.
    let limiter = match prepared.sandboxed {
        true => super::cgroup::TreeLimiter::new(&config.tree_limits).map_err(super::SandboxError::from)?,
        false => None,
    };
    let mut command = std::process::Command::new(&spec.program);
    command.arg0(&spec.argv0).args(&spec.args).current_dir(&cwd);
    if let Some(limiter) = &limiter {
        let (procs, rlimits) = (limiter.join_fds(), limiter.rlimits().to_vec());
        // SAFETY: the closure runs in the forked child before exec; join_in_child only
        // makes async-signal-safe calls on values copied into the closure.
        unsafe {
            command.pre_exec(move || super::cgroup::join_in_child(&procs, &rlimits));
        }
    }
    let spawned = command.spawn();
    if let Some(limiter) = &limiter {
        limiter.spawned();
    }
    let mut child = spawned.map_err(|source| SandboxCliError::Spawn { program: spec.program.clone(), source })?;
    let (status, wall_fired) = wait_with_wall_limit(&mut child, limiter.as_ref())
        .map_err(|source| SandboxCliError::Spawn { program: spec.program.clone(), source })?;
    if let Some(limiter) = &limiter {
        report_hits(limiter, wall_fired);
        limiter.remove_blocking();
    }
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 1,
    };
    Ok(match prepared.launcher {
        Some(launcher) if code == BWRAP_FAILURE => explain_if_host_refuses(&launcher).unwrap_or(code),
        _ => code,
    })
}

/// Waits for `child`, killing it (bwrap: its sandbox goes with it) and its cgroup at the
/// wall limit; true in the second place when the limit fired.
fn wait_with_wall_limit(
    child: &mut std::process::Child,
    limiter: Option<&super::cgroup::TreeLimiter>,
) -> std::io::Result<(std::process::ExitStatus, bool)> {
    let Some((limiter, wall)) = limiter.and_then(|l| l.wall().map(|w| (l, w))) else {
        return child.wait().map(|s| (s, false));
    };
    let deadline = std::time::Instant::now() + wall;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((status, false));
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            limiter.kill_all();
            return child.wait().map(|s| (s, true));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The limits the tree ran into, as the server reports them: on stderr.
fn report_hits(limiter: &super::cgroup::TreeLimiter, wall_fired: bool) {
    let mut hits = limiter.hits();
    if let (true, Some(seconds)) = (wall_fired, limiter.limits().wall_seconds) {
        hits.push(super::cgroup::Hit::Wall { seconds });
    }
    for hit in hits {
        eprintln!("{}", hit.line());
    }
}

/// bwrap's exit status when it cannot build the sandbox (its `die()`).
const BWRAP_FAILURE: i32 = 1;

/// After a run that ended with bwrap's failure status: was it bwrap, refused by the
/// host? A trial run of the same launcher tells (bwrap's message already went to the
/// inherited stderr, which is the command's too, so it cannot be read back). When the
/// host refuses, the cause and FIX are printed as the server prints them, and the
/// status says the command never ran.
fn explain_if_host_refuses(launcher: &Launcher) -> Option<i32> {
    // /proc masked: a refused /proc is handled by the executor, not a refusal.
    let (ok, stderr) = launcher.trial_run(["--tmpfs", "/proc"]);
    if ok {
        return None;
    }
    match explanation_line(&stderr) {
        Some(line) => eprintln!("{line}"),
        None => eprintln!("executor: bwrap cannot build a sandbox on this host: {stderr} (`executor doctor` checks why)"),
    }
    Some(EXIT_HOST_REFUSED)
}
