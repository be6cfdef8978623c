//! The inner stage: the executor binary re-entered inside bwrap (argv[0] basename
//! `executor-sandbox`, or argv[1] `--run-as-sandbox-inner` for bwraps without
//! `--argv0`). It runs before any user code, one [`Step`] at a time in the order of
//! [`STEPS`]; each step that can fail has its own [`InnerError`] variant, and a failure
//! means the command never runs:
//!
//! 1. `CloseInherited`: every descriptor above stderr not handed over on purpose made
//!    close-on-exec;
//! 2. `NonDumpable`: nothing in the sandbox can read this process or reopen what it
//!    holds;
//! 3. `LateBinds`: the plain writable roots bound here rather than by bwrap
//!    (`late_binds`), with the `CAP_SYS_ADMIN` bwrap left for it;
//! 4. `DropCapabilities`: lock the securebits, empty every capability set, verify from
//!    the kernel (capget, prctl) that nothing is left;
//! 5. `NoNewPrivs`: `PR_SET_NO_NEW_PRIVS`;
//! 6. `SessionKeyring`: a fresh anonymous session keyring (before seccomp forbids
//!    keyctl), so the executor's session keyring is never reachable;
//! 7. `ProcessLimit`: RLIMIT_NPROC (`--sandbox-max-procs`), so a fork bomb fails inside;
//! 8. `Landlock`: rules mirroring the plan (best effort by ABI);
//! 9. `PrepareGuard`: the create guard's filter and socket, when protected names are
//!    missing in a writable root or ancestors of denied paths are pinned;
//! 10. `PrepareCommand`: the command's argv, and this process as the reaper;
//! 11. `Seccomp` (DESIGN.md §4 layer 2), last: the programs of PID 1 and of the
//!     command are built.
//!
//! Then PID 1 forks the command, installs its own filter, reaps, forwards signals and
//! exits with the command's status. The command installs its filter before exec; it
//! sends refused calls (for `sandbox/report`) and, under the create guard, creating
//! calls to this process's event loop (`supervisor`). If the filter cannot be installed
//! in the child or a listener the guard needs cannot reach the parent, the command does
//! not run (fail closed on both sides).
//!
//! Invocation: `<exe> [--run-as-sandbox-inner] <config JSON> -- <argv...>`. The config
//! is one argument (no temp files on the host); the user argv stays separate so that
//! its size limit is the kernel's per-argument one, not shared with the config.

mod bpf;
mod capabilities;
mod command_reaper;
pub mod guard;
mod landlock;
pub mod late_binds;
mod seccomp;
mod supervisor;
mod sys;

use std::ffi::OsString;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::policy::{path_list, SandboxPlan};
use super::{SandboxError, EXIT_SETUP_FAILED};

/// The kernel limits one argv string to 32 pages (MAX_ARG_STRLEN).
const MAX_CONFIG_LEN: usize = 128 * 1024 - 1;

#[derive(Debug, Serialize, Deserialize)]
pub struct InnerConfig {
    /// Landlock read-only roots.
    #[serde(with = "path_list")]
    pub ro: Vec<PathBuf>,
    /// Landlock writable roots.
    #[serde(with = "path_list")]
    pub rw: Vec<PathBuf>,
    /// Network enabled.
    pub net: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arg0: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub debug: bool,
    /// Descriptors (above stderr) handed to the command on purpose; every other one is
    /// made close-on-exec before the command runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_fds: Vec<i32>,
    /// RLIMIT_NPROC for everything in the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_procs: Option<u64>,
    /// Protected paths missing in writable roots, kept from being created by the
    /// create guard.
    #[serde(default, with = "path_list", skip_serializing_if = "Vec::is_empty")]
    pub guard: Vec<PathBuf>,
    /// Directories the create guard refuses to rename (ancestors of denied paths inside
    /// writable roots).
    #[serde(default, with = "path_list", skip_serializing_if = "Vec::is_empty")]
    pub pinned: Vec<PathBuf>,
    /// How to exit when the command cannot be executed.
    #[serde(default, skip_serializing_if = "ExecFailure::is_default")]
    pub exec_failure: ExecFailure,
    /// Writable roots this stage binds itself (see `late_binds`), not bwrap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub late_binds: Vec<late_binds::LateBind>,
    /// The executor's pipe for seccomp refusals (`sandbox::refusals`), kept by PID 1
    /// only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusals_fd: Option<i32>,
}

/// The exit status of the inner stage when the command cannot be executed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExecFailure {
    /// [`EXIT_EXEC_DENIED`](super::EXIT_EXEC_DENIED): the server reports it as
    /// `sandboxDenied`, whatever the reason.
    #[default]
    Denied,
    /// What a shell reports, for `executor sandbox`: 127 when the command is not found
    /// (inside the sandbox), 126 when it is there but cannot be executed.
    Shell,
}

impl ExecFailure {
    fn is_default(&self) -> bool {
        *self == ExecFailure::Denied
    }

    /// The exit status for a failed `execvp` with `err`.
    pub fn status(self, err: &std::io::Error) -> i32 {
        match self {
            ExecFailure::Denied => super::EXIT_EXEC_DENIED,
            ExecFailure::Shell if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => 127,
            ExecFailure::Shell => 126,
        }
    }
}

impl InnerConfig {
    pub fn from_plan(plan: &SandboxPlan, arg0: Option<&str>, keep_fds: &[i32], debug: bool) -> Self {
        InnerConfig {
            ro: plan.readable_roots.clone(),
            rw: plan.writable_roots.clone(),
            net: plan.network,
            arg0: arg0.map(str::to_string),
            debug,
            keep_fds: keep_fds.to_vec(),
            max_procs: None,
            guard: plan.missing_protected.clone(),
            pinned: plan.pinned.clone(),
            exec_failure: ExecFailure::default(),
            late_binds: Vec::new(),
            refusals_fd: None,
        }
    }

    pub fn encode(&self) -> Result<String, SandboxError> {
        let s = serde_json::to_string(self).map_err(|e| SandboxError::Encode(e.to_string()))?;
        if s.len() > MAX_CONFIG_LEN {
            return Err(SandboxError::Encode(format!("{} bytes of path rules exceed the {} byte argument limit", s.len(), MAX_CONFIG_LEN)));
        }
        Ok(s)
    }
}

/// Entry point; `args` are the arguments after argv[0] (and after the hidden flag).
pub fn main(args: Vec<OsString>) -> ! {
    match run(args) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("executor: sandbox setup failed: {e}");
            std::process::exit(EXIT_SETUP_FAILED);
        }
    }
}

enum Never {}

/// The hardening steps, in the order [`run`] takes them (see the module docs for why
/// each sits where it does; `steps_respect_their_dependencies` checks the order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    CloseInherited,
    NonDumpable,
    LateBinds,
    DropCapabilities,
    NoNewPrivs,
    SessionKeyring,
    ProcessLimit,
    Landlock,
    PrepareGuard,
    PrepareCommand,
    Seccomp,
}

pub const STEPS: [Step; 11] = [
    Step::CloseInherited,
    Step::NonDumpable,
    Step::LateBinds,
    Step::DropCapabilities,
    Step::NoNewPrivs,
    Step::SessionKeyring,
    Step::ProcessLimit,
    Step::Landlock,
    Step::PrepareGuard,
    Step::PrepareCommand,
    Step::Seccomp,
];

/// Why the inner stage refused to run the command: one variant per step that can fail.
#[derive(Debug, thiserror::Error)]
pub enum InnerError {
    #[error(transparent)]
    Invocation(#[from] InvocationError),
    #[error("cannot close inherited descriptors: {0}")]
    CloseInherited(#[source] std::io::Error),
    #[error("PR_SET_DUMPABLE failed: {0}")]
    NonDumpable(#[source] std::io::Error),
    #[error(transparent)]
    LateBinds(#[from] late_binds::LateBindError),
    #[error(transparent)]
    DropCapabilities(#[from] capabilities::CapabilityError),
    #[error("PR_SET_NO_NEW_PRIVS failed: {0}")]
    NoNewPrivs(#[source] std::io::Error),
    #[error("cannot limit processes to {limit}: {source}")]
    ProcessLimit { limit: u64, source: std::io::Error },
    #[error("landlock: {0}")]
    Landlock(#[from] ::landlock::RulesetError),
    #[error(transparent)]
    PrepareCommand(#[from] command_reaper::PrepareError),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
}

/// What the steps leave for the command's start and the debug report.
struct Hardened {
    inherited: Vec<i32>,
    keyring: Option<std::io::Error>,
    landlock: String,
    guard: Option<guard::Guard>,
    /// Why the guard is off, for the debug report (`None`: it is on).
    guard_off: Option<String>,
    seccomp: Option<supervisor::Setup>,
    command: Option<command_reaper::Prepared>,
}

fn run(args: Vec<OsString>) -> Result<Never, InnerError> {
    let (config, argv) = parse_invocation(args)?;
    let mut done = Hardened {
        inherited: Vec::new(),
        keyring: None,
        landlock: String::new(),
        guard: None,
        guard_off: None,
        seccomp: None,
        command: None,
    };
    for step in STEPS {
        take(step, &config, &argv, &mut done)?;
    }
    let mut command = done.command.take().ok_or(InnerError::PrepareCommand(command_reaper::PrepareError::NotPrepared))?;
    command.seccomp = done.seccomp.take();
    command.debug = config.debug;
    command.exec_failure = config.exec_failure;
    if config.debug {
        report(&config, &done);
    }
    command_reaper::run(command)
}

fn take(step: Step, config: &InnerConfig, argv: &[OsString], done: &mut Hardened) -> Result<(), InnerError> {
    match step {
        // Whatever bwrap or the executor let through (bwrap's --info-fd, descriptors the
        // executor inherited) must not reach the command.
        Step::CloseInherited => {
            if config.debug {
                done.inherited = open_descriptors_above_stderr(&config.keep_fds);
            }
            crate::fds::mark_cloexec_from(3, &config.keep_fds).map_err(InnerError::CloseInherited)
        }
        // This process keeps those descriptors (and later the create guard's listener)
        // open; non-dumpable, nothing in the sandbox can reopen them through /proc/1/fd,
        // read its memory or take them with pidfd_getfd. The command gets a dumpable mm
        // at exec.
        Step::NonDumpable => sys::prctl(libc::PR_SET_DUMPABLE, 0).map(drop).map_err(InnerError::NonDumpable),
        // While CAP_SYS_ADMIN (given by bwrap only for these binds) is still held.
        Step::LateBinds => late_binds::apply(&config.late_binds).map_err(InnerError::LateBinds),
        Step::DropCapabilities => capabilities::drop_all_and_verify().map_err(InnerError::DropCapabilities),
        Step::NoNewPrivs => sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map(drop).map_err(InnerError::NoNewPrivs),
        // Before seccomp forbids keyctl; a refusal is reported, not fatal (keyctl is
        // denied to the command either way).
        Step::SessionKeyring => {
            done.keyring = sys::join_fresh_session_keyring().err();
            Ok(())
        }
        Step::ProcessLimit => config.max_procs.map_or(Ok(()), limit_processes),
        Step::Landlock => {
            done.landlock = landlock::apply(config).map_err(InnerError::Landlock)?;
            Ok(())
        }
        // Opens /proc and builds its filter while system calls are still unfiltered;
        // a host that cannot run it is reported (doctor says so too).
        Step::PrepareGuard => {
            match guard::prepare(&config.guard, &config.pinned) {
                Ok(Some(g)) => done.guard = Some(g),
                Ok(None) => done.guard_off = Some("off (no protected name missing, no denied path to pin)".into()),
                Err(e) => done.guard_off = Some(format!("unavailable: {e}")),
            }
            Ok(())
        }
        Step::PrepareCommand => {
            done.command = Some(command_reaper::Prepared::new(argv, config.arg0.as_deref()).map_err(InnerError::PrepareCommand)?);
            command_reaper::become_reaper();
            Ok(())
        }
        // Last: nothing after it but the fork of the command, after which PID 1 and the
        // command install their programs (see `supervisor` for why not before).
        Step::Seccomp => {
            let report = supervisor::report_pipe(config.refusals_fd);
            done.seccomp = Some(supervisor::Setup::new(config.net, done.guard.take(), report).map_err(InnerError::Seccomp)?);
            Ok(())
        }
    }
}

/// Why the inner stage's own command line (written by the executor) was not usable.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("missing sandbox configuration")]
    MissingConfig,
    #[error("sandbox configuration is not UTF-8")]
    ConfigNotUtf8,
    #[error("invalid sandbox configuration: {0}")]
    InvalidConfig(#[source] serde_json::Error),
    #[error("expected `--` after the sandbox configuration")]
    MissingSeparator,
    #[error("no command given")]
    NoCommand,
}

fn parse_invocation(args: Vec<OsString>) -> Result<(InnerConfig, Vec<OsString>), InvocationError> {
    let mut it = args.into_iter();
    let config = it.next().ok_or(InvocationError::MissingConfig)?;
    let config = config.into_string().map_err(|_| InvocationError::ConfigNotUtf8)?;
    let config: InnerConfig = serde_json::from_str(&config).map_err(InvocationError::InvalidConfig)?;
    if it.next().as_deref() != Some("--".as_ref()) {
        return Err(InvocationError::MissingSeparator);
    }
    let argv: Vec<OsString> = it.collect();
    if argv.is_empty() {
        return Err(InvocationError::NoCommand);
    }
    Ok((config, argv))
}

fn report(config: &InnerConfig, done: &Hardened) {
    eprintln!(
        "executor-sandbox: capabilities: none; no_new_privs: 1; session keyring: {}; landlock: {}; seccomp: {}; refusals recorded: {}; process limit: {}; writable roots bound here: {}; pid: {}; made close-on-exec: {:?}{}",
        match &done.keyring {
            None => "fresh".to_string(),
            Some(e) => format!("not replaced ({e}), keyctl denied by seccomp"),
        },
        done.landlock,
        if config.net { "filter (network enabled)" } else { "filter (network restricted)" },
        if config.refusals_fd.is_some() { "for the executor" } else { "no" },
        config.max_procs.map(|n| n.to_string()).unwrap_or_else(|| "none".into()),
        config.late_binds.len(),
        std::process::id(),
        done.inherited,
        done.guard_off.as_ref().map(|s| format!("; create guard: {s}")).unwrap_or_default()
    );
}

/// For the debug report: descriptors above stderr this stage received, except those
/// handed over on purpose.
fn open_descriptors_above_stderr(keep: &[i32]) -> Vec<i32> {
    let mut fds = crate::fds::open_from(3).unwrap_or_default();
    fds.retain(|fd| !keep.contains(fd));
    fds
}

/// RLIMIT_NPROC, soft and hard (raising it back needs a capability the sandbox lacks).
/// Since Linux 5.14 the count is kept per user namespace, so this bounds the sandbox's
/// own processes rather than every process of the user on the host; the kernel exempts
/// host root from it.
fn limit_processes(limit: u64) -> Result<(), InnerError> {
    sys::set_rlimit(libc::RLIMIT_NPROC, limit).map_err(|source| InnerError::ProcessLimit { limit, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(step: Step) -> usize {
        STEPS.iter().position(|s| *s == step).unwrap_or(usize::MAX)
    }

    /// The order is the security argument: each pair is (must come first, then).
    #[test]
    fn steps_respect_their_dependencies() {
        let before = [
            // Nothing else runs while inherited descriptors could still leak.
            (Step::CloseInherited, Step::NonDumpable),
            // The process holding descriptors becomes unreadable before anything else.
            (Step::NonDumpable, Step::DropCapabilities),
            // The binds need CAP_SYS_ADMIN, and none of the descriptors they open may
            // outlive them unmarked.
            (Step::CloseInherited, Step::LateBinds),
            (Step::LateBinds, Step::DropCapabilities),
            (Step::DropCapabilities, Step::NoNewPrivs),
            // seccomp denies keyctl, Landlock's and the guard's set-up calls come first.
            (Step::SessionKeyring, Step::Seccomp),
            (Step::Landlock, Step::Seccomp),
            (Step::PrepareGuard, Step::Seccomp),
            (Step::PrepareCommand, Step::Seccomp),
            // Landlock needs no_new_privs without CAP_SYS_ADMIN.
            (Step::NoNewPrivs, Step::Landlock),
        ];
        for (first, then) in before {
            assert!(at(first) < at(then), "{first:?} must come before {then:?}: {STEPS:?}");
        }
        assert_eq!(STEPS.last(), Some(&Step::Seccomp));
        assert_eq!(STEPS.first(), Some(&Step::CloseInherited));
    }
}
