//! `executor doctor`: what this host lets the executor enforce, checked by trying
//! (fork + unshare, landlock_create_ruleset, a real bwrap run), not only by reading
//! sysctls, with a concrete fix for every missing piece.
//!
//! The report's shape and `collect` are here; the probes are in `probes`, the verdict
//! (layers and problems) in `verdict`, the text for a person in `render`.
//!
//! Exit status: 0 when a sandbox can be enforced (a launcher was selected and a bwrap
//! run with the namespaces the executor uses succeeded), 1 otherwise.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};

use serde::Serialize;

use super::host_errors::fixes;
use super::host_errors::{diagnose, explain_bwrap_failure};
use super::launcher::{self, BundledSource, Launcher, LauncherConfig, LauncherKind};

#[derive(Debug, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub running_as_root: bool,
    pub container: Option<String>,
    pub user_namespaces: UserNamespaces,
    pub landlock: Landlock,
    pub seccomp: Seccomp,
    pub system_bwrap: SystemBwrap,
    pub bundled_bwrap: BundledBwrap,
    pub memfd_exec: MemfdExec,
    pub cgroup_v2: CgroupV2,
    /// How the `--sandbox-*` limits are enforced here (issue 17).
    pub limits: super::cgroup::LimitsReport,
    pub smoke_test: Option<SmokeTest>,
}

#[derive(Debug, Serialize)]
pub struct Verdict {
    /// A sandbox (namespaces via bwrap) can be enforced on this host.
    pub sandbox_enforceable: bool,
    pub launcher: Option<SelectedLauncher>,
    pub launcher_error: Option<String>,
    /// What a sandboxed command actually gets here.
    pub layers: Vec<Layer>,
    /// Every missing piece with its fix.
    pub problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
pub struct SelectedLauncher {
    pub kind: LauncherKind,
    pub exec_path: PathBuf,
    pub version: Option<String>,
    pub supports_argv0: bool,
    pub supports_perms: bool,
    pub supports_as_pid_1: bool,
    pub bundled_source: Option<BundledSource>,
    pub sha256: Option<String>,
    pub dev_build: bool,
}

#[derive(Debug, Serialize)]
pub struct Layer {
    pub name: &'static str,
    pub enforced: bool,
    /// The host has it, whether or not a sandbox runs to apply it.
    pub available: bool,
    pub detail: String,
}

#[derive(Debug, Serialize, Clone)]
pub struct Problem {
    pub what: String,
    pub fix: String,
}

#[derive(Debug, Serialize)]
pub struct UserNamespaces {
    /// Debian-style `kernel.unprivileged_userns_clone` (absent on most kernels).
    pub unprivileged_userns_clone: Option<String>,
    pub max_user_namespaces: Option<String>,
    /// Ubuntu's `kernel.apparmor_restrict_unprivileged_userns`.
    pub apparmor_restrict_unprivileged_userns: Option<String>,
    pub attempt: UsernsAttempt,
}

#[derive(Debug, Serialize, Clone)]
pub struct UsernsAttempt {
    /// A forked child created a user namespace, mapped itself and created
    /// mount/pid/net/ipc/uts namespaces inside it.
    pub ok: bool,
    /// The step that failed: `unshare(CLONE_NEWUSER)`, `uid_map`, `gid_map`,
    /// `unshare(mount|pid|net|ipc|uts)`, `fork`.
    pub failed_step: Option<String>,
    pub error: Option<String>,
    pub fix: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Landlock {
    pub abi: Option<u32>,
    pub error: Option<String>,
    pub fix: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Seccomp {
    /// `Seccomp:` of /proc/self/status: 0 none, 1 strict, 2 filter (already filtered by
    /// a parent such as a container runtime: our filter stacks on top).
    pub current_mode: Option<u32>,
    pub filters_available: bool,
    pub error: Option<String>,
    pub fix: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SystemBwrap {
    pub candidates: Vec<SystemCandidateReport>,
    pub selected: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct SystemCandidateReport {
    pub found_at: PathBuf,
    pub canonical: Option<PathBuf>,
    pub usable: bool,
    pub version: Option<String>,
    pub supports_argv0: Option<bool>,
    pub supports_perms: Option<bool>,
    pub supports_as_pid_1: Option<bool>,
    pub rejected_because: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BundledBwrap {
    pub included: bool,
    pub version: String,
    /// Digest compiled into this binary (all zero: development build).
    pub expected_sha256: String,
    pub dev_build: bool,
    pub usable: bool,
    pub source: Option<BundledSource>,
    /// Digest measured through the descriptor that is executed.
    pub measured_sha256: Option<String>,
    pub error: Option<String>,
    /// What to do about `error`.
    pub fix: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MemfdExec {
    /// `vm.memfd_noexec` (Linux 6.3+): 0 allows exec, 1 defaults to non-exec, 2 refuses.
    pub memfd_noexec: Option<String>,
    /// The bundled bwrap ran (`--version`) from a sealed memfd.
    pub exec_ok: Option<bool>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CgroupV2 {
    pub available: bool,
    pub controllers: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct SmokeTest {
    pub argv: Vec<String>,
    pub ok: bool,
    /// The run only worked with /proc masked by a tmpfs (a fresh procfs was refused).
    pub proc_masked: bool,
    pub stderr: Option<String>,
    /// `explain_bwrap_failure` of the stderr (cause, bwrap's line, FIX).
    pub explanation: Option<String>,
    /// The fix alone, when the failure is a known host problem.
    pub fix: Option<String>,
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

mod probes;
mod render;
mod verdict;

pub use probes::landlock_abi;
use probes::{bundled_report, cgroup_v2, container, landlock, seccomp, selected_summary, smoke_test, system_report, userns_attempt};
pub use render::render_human;
use verdict::Facts;

// ---------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------

pub fn collect(config: &LauncherConfig) -> Report {
    // SAFETY: geteuid cannot fail.
    let is_root = unsafe { libc::geteuid() } == 0;
    let unpriv_clone = read_trimmed("/proc/sys/kernel/unprivileged_userns_clone");
    let max_userns = read_trimmed("/proc/sys/user/max_user_namespaces");
    let apparmor = read_trimmed("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
    let attempt = userns_attempt(apparmor.as_deref(), unpriv_clone.as_deref(), is_root);
    let user_namespaces = UserNamespaces {
        unprivileged_userns_clone: unpriv_clone,
        max_user_namespaces: max_userns,
        apparmor_restrict_unprivileged_userns: apparmor,
        attempt,
    };
    let selected = launcher::select(config);
    let facts = Facts {
        landlock: landlock(),
        seccomp: seccomp(),
        smoke: selected.as_ref().ok().map(|l| smoke_test(l)),
        guard_kernel: super::inner::guard::kernel_supported(),
        user_namespaces,
        selected,
    };
    let (bundled_bwrap, memfd_exec) = bundled_report();
    Report {
        verdict: Verdict {
            sandbox_enforceable: facts.enforceable(),
            launcher: facts.selected.as_ref().ok().map(|l| selected_summary(l)),
            launcher_error: facts.selected.as_ref().err().map(|e| e.to_string()),
            layers: facts.layers(),
            problems: facts.problems(&bundled_bwrap),
        },
        running_as_root: is_root,
        container: container(),
        system_bwrap: system_report(config),
        bundled_bwrap,
        memfd_exec,
        cgroup_v2: cgroup_v2(),
        limits: super::cgroup::report(&config.tree_limits, config.limit_unsandboxed, true),
        user_namespaces: facts.user_namespaces,
        landlock: facts.landlock,
        seccomp: facts.seccomp,
        smoke_test: facts.smoke,
    }
}

/// `executor doctor [--json]` with the default launcher configuration.
pub fn run(json: bool) -> ExitCode {
    run_with(json, &LauncherConfig::default())
}

pub fn run_with(json: bool, config: &LauncherConfig) -> ExitCode {
    let report = collect(config);
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("executor doctor: cannot encode the report: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", render_human(&report));
    }
    if report.verdict.sandbox_enforceable {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Hidden `executor doctor --exec-bundled-bwrap-version`: runs the bundled bwrap the
/// way the server does (sealed memfd or verified resource file) and prints its
/// `--version`, source and digest. Used by tests; exits 1 with the error otherwise.
pub fn exec_bundled_bwrap_version() -> ExitCode {
    let l = match launcher::bundled() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("executor: {e}");
            return ExitCode::from(1);
        }
    };
    let out = match l.command().arg("--version").stdin(Stdio::null()).output() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("executor: running {}: {e}", l.exec_path.display());
            return ExitCode::from(1);
        }
    };
    print!("{}", String::from_utf8_lossy(&out.stdout));
    let source = match l.bundled_source() {
        Some(BundledSource::Memfd) => "memfd".to_string(),
        Some(BundledSource::ResourceFile { path, .. }) => format!("resource {}", path.display()),
        None => "?".into(),
    };
    println!("source: {source}");
    println!("exec_path: {}", l.exec_path.display());
    println!("sha256: {}", l.measured_digest_hex().unwrap_or_default());
    println!("dev_build: {}", l.is_dev_build());
    if out.status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
