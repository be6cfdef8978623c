//! The inner stage: the executor binary re-entered inside bwrap (argv[0] basename
//! `executor-sandbox`, or argv[1] `--run-as-sandbox-inner` for bwraps without
//! `--argv0`). It runs before any user code, in this order:
//!
//! 1. capabilities: lock the securebits, empty every capability set, verify from
//!    the kernel (capget, prctl) that nothing is left (refuse to run otherwise);
//! 2. `PR_SET_NO_NEW_PRIVS`;
//! 3. a fresh anonymous session keyring (before seccomp forbids keyctl), so the
//!    executor's session keyring is never reachable;
//! 4. Landlock mirroring the plan (best effort by ABI);
//! 5. seccomp (DESIGN.md §4 layer 2);
//! 6. RLIMIT_NPROC (`--sandbox-max-procs`), so a fork bomb fails inside;
//! 7. every descriptor above stderr not handed over on purpose made close-on-exec;
//! 8. fork the command, reap, forward signals, exit with the command's status. When
//!    protected names are missing in a writable root, the command (and everything it
//!    starts) runs under the create guard (`guard`), served by this process's event
//!    loop.
//!
//! Invocation: `<exe> [--run-as-sandbox-inner] <config JSON> -- <argv...>`. The config
//! is one argument (no temp files on the host); the user argv stays separate so that
//! its size limit is the kernel's per-argument one, not shared with the config.

mod bpf;
mod caps;
pub mod guard;
mod landlock;
mod pid1;
mod seccomp;

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
        }
    }

    pub fn encode(&self) -> Result<String, SandboxError> {
        let s = serde_json::to_string(self).map_err(|e| SandboxError::Encode(e.to_string()))?;
        if s.len() > MAX_CONFIG_LEN {
            return Err(SandboxError::Encode(format!(
                "{} bytes of path rules exceed the {} byte argument limit",
                s.len(),
                MAX_CONFIG_LEN
            )));
        }
        Ok(s)
    }
}

/// Entry point; `args` are the arguments after argv[0] (and after the hidden flag).
pub fn main(args: Vec<OsString>) -> ! {
    match run(args) {
        Ok(never) => match never {},
        Err(msg) => {
            eprintln!("executor-sandbox: {msg}");
            std::process::exit(EXIT_SETUP_FAILED);
        }
    }
}

enum Never {}

fn run(args: Vec<OsString>) -> Result<Never, String> {
    let mut it = args.into_iter();
    let config = it.next().ok_or("missing sandbox configuration")?;
    let config = config.into_string().map_err(|_| "sandbox configuration is not UTF-8")?;
    let config: InnerConfig = serde_json::from_str(&config).map_err(|e| format!("invalid sandbox configuration: {e}"))?;
    if it.next().as_deref() != Some("--".as_ref()) {
        return Err("expected `--` after the sandbox configuration".into());
    }
    let argv: Vec<OsString> = it.collect();
    if argv.is_empty() {
        return Err("no command given".into());
    }

    // Whatever bwrap or the executor let through (bwrap's --info-fd, descriptors the
    // executor inherited) must not reach the command.
    let inherited = if config.debug { open_descriptors_above_stderr(&config.keep_fds) } else { Vec::new() };
    crate::fds::mark_cloexec_from(3, &config.keep_fds).map_err(|e| format!("cannot close inherited descriptors: {e}"))?;
    // This process keeps those descriptors (and later the create guard's listener) open;
    // non-dumpable, nothing in the sandbox can reopen them through /proc/1/fd, read its
    // memory or take them with pidfd_getfd. The command gets a dumpable mm at exec.
    // SAFETY: prctl with integer arguments only; no memory is passed.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    caps::drop_all_and_verify()?;
    // SAFETY: prctl with integer arguments only; no memory is passed.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!("PR_SET_NO_NEW_PRIVS failed: {}", std::io::Error::last_os_error()));
    }
    let keyring = caps::join_fresh_session_keyring();
    if let Some(limit) = config.max_procs {
        limit_processes(limit)?;
    }
    let ll = landlock::apply(&config)?;
    let guard = guard::prepare(&config.guard, &config.pinned);
    let mut prep = pid1::Prepared::new(&argv, config.arg0.as_deref())?;
    pid1::become_reaper();
    seccomp::apply(config.net)?;
    let guard_status = match guard {
        Ok(Some(setup)) => {
            prep.guard = Some(setup);
            None
        }
        Ok(None) => Some("off (no protected name missing, no denied path to pin)".to_string()),
        Err(e) => Some(format!("unavailable: {e}")),
    };
    prep.debug = config.debug;
    if config.debug {
        eprintln!(
            "executor-sandbox: capabilities: none; no_new_privs: 1; session keyring: {}; landlock: {}; seccomp: {}; process limit: {}; pid: {}; made close-on-exec: {:?}{}",
            match keyring {
                Ok(()) => "fresh".to_string(),
                Err(e) => format!("not replaced ({e}), keyctl denied by seccomp"),
            },
            ll,
            if config.net { "filter (network enabled)" } else { "filter (network restricted)" },
            config.max_procs.map(|n| n.to_string()).unwrap_or_else(|| "none".into()),
            std::process::id(),
            inherited,
            guard_status.map(|s| format!("; create guard: {s}")).unwrap_or_default()
        );
    }
    pid1::run(prep)
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
fn limit_processes(limit: u64) -> Result<(), String> {
    let rlim = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: setrlimit reads one rlimit struct that lives for the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &rlim) } != 0 {
        return Err(format!(
            "cannot limit processes to {limit}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
