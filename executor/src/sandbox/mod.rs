//! The Linux sandbox: permission profile model, bwrap argv, and the inner stage that
//! runs as PID 1 inside bwrap (DESIGN.md §3, §4). Knows nothing of JSON-RPC; errors only
//! say whether the client or the host is at fault.
//!
//! Exit status contract: when the inner stage cannot execute the user command (execvp
//! fails, e.g. because the policy hides it) it prints a message on stderr and exits
//! with [`EXIT_EXEC_DENIED`] (101); the process layer reports `sandboxDenied: true` for
//! that status of a sandboxed process. A failure to set up the sandbox itself exits
//! with [`EXIT_SETUP_FAILED`].

pub mod bwrap_args;
pub mod cgroup;
pub mod cli;
pub mod doctor;
pub mod error;
pub mod floor;
pub mod host_errors;
pub mod inner;
pub mod late_binds;
pub mod launcher;
pub mod mountinfo;
pub mod plan_identity;
pub mod policy;
pub mod refusals;
pub mod trusted_path;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub use error::SandboxError;
pub use launcher::Launcher;
pub use policy::{FileSystemSandboxContext, SandboxPlan};

/// The user command could not be executed inside the sandbox.
pub const EXIT_EXEC_DENIED: i32 = 101;
/// The inner stage could not establish the sandbox; the command did not run.
pub const EXIT_SETUP_FAILED: i32 = 125;

/// Environment variable of the executor that makes the inner stage report the layers it
/// enforced on stderr (stdout and stderr otherwise belong to the user command).
pub const DEBUG_ENV: &str = "EXECUTOR_SANDBOX_DEBUG";

/// What to spawn: `program` with argv `[argv0] + args`. The caller supplies the
/// environment; bwrap passes it through unchanged.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub program: PathBuf,
    pub argv0: OsString,
    pub args: Vec<OsString>,
}

impl LaunchSpec {
    /// `argv` run as it is, without a sandbox. `argv` must not be empty.
    pub fn direct(argv: &[String], arg0: Option<&str>) -> Self {
        let first = argv.first().map(String::as_str).unwrap_or_default();
        LaunchSpec {
            program: PathBuf::from(first),
            argv0: OsString::from(arg0.unwrap_or(first)),
            args: argv.iter().skip(1).map(OsString::from).collect(),
        }
    }
}

impl LaunchSpec {
    /// Makes bwrap write `{"child-pid": N}` (the host pid of the sandbox's PID 1, our
    /// inner stage) to descriptor `fd`, which the caller lets the child inherit. Signals
    /// meant for the command go there: the inner stage forwards them to the command's
    /// process group, whereas bwrap itself would just die and take the sandbox with it.
    /// Only for a sandboxed launch.
    pub fn report_child_pid_on(&mut self, fd: std::os::fd::RawFd) {
        self.args.splice(0..0, [OsString::from("--info-fd"), OsString::from(fd.to_string())]);
    }
}

/// What to spawn for one command under `ctx`, with the launcher chosen by `config`.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub launch: LaunchSpec,
    /// False when the profile asks for no sandbox (`disabled`, or unrestricted filesystem
    /// with network enabled): the command then runs directly.
    pub sandboxed: bool,
    /// The bwrap that runs it, when sandboxed (to diagnose a failed start).
    pub launcher: Option<std::sync::Arc<Launcher>>,
}

/// Resolves the policy once, selects the launcher for it (cached per server), and builds
/// the bwrap command line. `fallback_cwd: None` makes cwd-dependent entries a client error.
/// `handover`: descriptors the caller places in the child (see [`Handover`]).
pub fn prepare(
    config: &launcher::LauncherConfig,
    ctx: &FileSystemSandboxContext,
    fallback_cwd: Option<&Path>,
    command_cwd: &Path,
    argv: &[String],
    arg0: Option<&str>,
    handover: Handover<'_>,
) -> Result<Prepared, SandboxError> {
    if argv.is_empty() {
        return Err(SandboxError::EmptyArgv);
    }
    let plan = policy::resolve(ctx, fallback_cwd)?;
    if plan.direct {
        return Ok(Prepared { launch: LaunchSpec::direct(argv, arg0), sandboxed: false, launcher: None });
    }
    let launcher = launcher::select_for(config, command_cwd, &plan.writable_roots)?;
    let launch = launch_for_plan(&launcher, &plan, command_cwd, argv, arg0, handover, config)?;
    Ok(Prepared { launch, sandboxed: true, launcher: Some(launcher) })
}

/// Descriptors placed in the sandbox: for the command (`keep_fds`), and for the inner
/// stage's seccomp refusal records (`refusals_fd`, see `refusals`; kept from the command).
#[derive(Debug, Clone, Copy, Default)]
pub struct Handover<'a> {
    pub keep_fds: &'a [i32],
    pub refusals_fd: Option<i32>,
}

pub fn launch_for_plan(
    launcher: &Launcher,
    plan: &SandboxPlan,
    command_cwd: &Path,
    argv: &[String],
    arg0: Option<&str>,
    handover: Handover<'_>,
    config: &launcher::LauncherConfig,
) -> Result<LaunchSpec, SandboxError> {
    let exe = std::env::current_exe().map_err(SandboxError::CurrentExe)?;
    let exe = std::fs::canonicalize(&exe).map_err(SandboxError::CurrentExe)?;
    let cwd = std::fs::canonicalize(command_cwd).map_err(|e| SandboxError::io("cannot resolve command cwd", command_cwd, e))?;
    let mut inner = inner::InnerConfig::from_plan(plan, arg0, handover.keep_fds, std::env::var_os(DEBUG_ENV).is_some());
    inner.refusals_fd = handover.refusals_fd;
    inner.max_procs = config.max_procs;
    inner.exec_failure = config.exec_failure;
    inner.late_binds = late_binds::select(plan, &exe);
    let built = bwrap_args::build(launcher, plan, &exe, &cwd, &inner, argv)?;
    Ok(LaunchSpec { program: launcher.exec_path.clone(), argv0: OsString::from("bwrap"), args: built.args })
}

/// Arg0 dispatch for the inner stage: `Some(rest)` when this process is the inner
/// stage (argv[0] basename `executor-sandbox`, or argv[1] `--run-as-sandbox-inner`).
pub fn inner_args(args: &[OsString]) -> Option<Vec<OsString>> {
    let argv0 = args.first()?;
    let base = Path::new(argv0).file_name()?;
    if base == bwrap_args::INNER_ARGV0 {
        return Some(args[1..].to_vec());
    }
    if args.get(1).map(|a| a == bwrap_args::INNER_ARG1).unwrap_or(false) {
        return Some(args[2..].to_vec());
    }
    None
}
