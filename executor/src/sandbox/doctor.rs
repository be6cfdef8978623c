//! `executor doctor`: what this host lets the executor enforce, checked by trying
//! (fork + unshare, landlock_create_ruleset, a real bwrap run), not only by reading
//! sysctls, with a concrete fix for every missing piece.
//!
//! Exit status: 0 when a sandbox can be enforced (a launcher was selected and a bwrap
//! run with the namespaces the executor uses succeeded), 1 otherwise.

use std::io::Read as _;
use std::path::{Path, PathBuf};
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

// ---------------------------------------------------------------------------------
// User namespaces: an actual attempt in a forked child
// ---------------------------------------------------------------------------------

/// Result byte layout sent by the child over the pipe: step (u32) then errno (i32).
const STEP_OK: u32 = 0;
const STEP_USERNS: u32 = 1;
const STEP_UID_MAP: u32 = 2;
const STEP_GID_MAP: u32 = 3;
const STEP_OTHER_NS: u32 = 4;

/// Child side: only raw syscalls (async-signal-safe after fork). All strings were
/// prepared before the fork. Returns (step, errno).
///
/// # Safety
/// Must only be called in a freshly forked child; the pointers must be valid
/// NUL-terminated strings / byte slices.
unsafe fn userns_child_steps(uid_map: &[u8], gid_map: &[u8]) -> (u32, i32) {
    // SAFETY (whole function): plain syscalls on memory owned by this frame or the
    // caller's prepared buffers; errno is thread-local and this child has one thread.
    unsafe {
        let errno = || *libc::__errno_location();
        if libc::unshare(libc::CLONE_NEWUSER) != 0 {
            return (STEP_USERNS, errno());
        }
        let write_file = |path: &std::ffi::CStr, data: &[u8]| -> i32 {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return errno();
            }
            let n = libc::write(fd, data.as_ptr().cast(), data.len());
            let e = if n < 0 { errno() } else { 0 };
            libc::close(fd);
            e
        };
        // Needed before gid_map for an unprivileged user; harmless for root.
        let _ = write_file(c"/proc/self/setgroups", b"deny");
        let e = write_file(c"/proc/self/uid_map", uid_map);
        if e != 0 {
            return (STEP_UID_MAP, e);
        }
        let e = write_file(c"/proc/self/gid_map", gid_map);
        if e != 0 {
            return (STEP_GID_MAP, e);
        }
        // What bwrap does next needs CAP_SYS_ADMIN inside the new namespace, which
        // Ubuntu's AppArmor restriction withholds.
        let flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
        if libc::unshare(flags) != 0 {
            return (STEP_OTHER_NS, errno());
        }
        (STEP_OK, 0)
    }
}

fn fork_userns_probe() -> Result<(u32, i32), String> {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let uid_map = format!("0 {uid} 1\n").into_bytes();
    let gid_map = format!("0 {gid} 1\n").into_bytes();
    let (read_end, write_end) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    let write_fd = std::os::fd::AsRawFd::as_raw_fd(&write_end);
    // SAFETY: the child runs only async-signal-safe syscalls (userns_child_steps,
    // write, _exit) on buffers prepared above, then exits without unwinding.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: we are the freshly forked child (see above).
        unsafe {
            let (step, err) = userns_child_steps(&uid_map, &gid_map);
            let mut msg = [0u8; 8];
            msg[..4].copy_from_slice(&step.to_ne_bytes());
            msg[4..].copy_from_slice(&err.to_ne_bytes());
            libc::write(write_fd, msg.as_ptr().cast(), msg.len());
            libc::_exit(0);
        }
    }
    drop(write_end);
    let mut msg = [0u8; 8];
    let mut file = std::fs::File::from(read_end);
    let read = file.read_exact(&mut msg);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    read.map_err(|e| format!("no answer from the probe child: {e}"))?;
    let step = u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
    let err = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
    Ok((step, err))
}

fn userns_attempt(apparmor_restrict: Option<&str>, unpriv_clone: Option<&str>, is_root: bool) -> UsernsAttempt {
    let (step, errno) = match fork_userns_probe() {
        Ok(r) => r,
        Err(e) => {
            return UsernsAttempt { ok: false, failed_step: Some("fork".into()), error: Some(e), fix: None };
        }
    };
    if step == STEP_OK {
        return UsernsAttempt { ok: true, failed_step: None, error: None, fix: None };
    }
    let err = std::io::Error::from_raw_os_error(errno).to_string();
    let apparmor = apparmor_restrict == Some("1");
    let (name, fix) = match step {
        STEP_USERNS => {
            let fix = if errno == libc::ENOSPC {
                fixes::MAX_USER_NAMESPACES.to_string()
            } else if errno == libc::EPERM && unpriv_clone == Some("0") && !is_root {
                fixes::UNPRIVILEGED_USERNS_CLONE.to_string()
            } else if errno == libc::EPERM {
                fixes::CONTAINER_BLOCKS_USERNS.to_string()
            } else if errno == libc::EINVAL {
                fixes::NO_USER_NAMESPACES.to_string()
            } else {
                "check the kernel's user-namespace settings (user.max_user_namespaces, LSM policies)".to_string()
            };
            ("unshare(CLONE_NEWUSER)", fix)
        }
        STEP_UID_MAP | STEP_GID_MAP | STEP_OTHER_NS => {
            let fix = if apparmor { fixes::APPARMOR_USERNS } else { fixes::POLICY_WITHHOLDS_CAPS }.to_string();
            let name = match step {
                STEP_UID_MAP => "uid_map",
                STEP_GID_MAP => "gid_map",
                _ => "unshare(mount|pid|net|ipc|uts)",
            };
            (name, fix)
        }
        _ => ("unknown", "unexpected probe result".to_string()),
    };
    UsernsAttempt { ok: false, failed_step: Some(name.into()), error: Some(err), fix: Some(fix) }
}

// ---------------------------------------------------------------------------------
// Landlock, seccomp, cgroup, container
// ---------------------------------------------------------------------------------

/// The kernel's Landlock ABI version, if Landlock is enabled.
pub fn landlock_abi() -> Option<u32> {
    landlock().abi
}

fn landlock() -> Landlock {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a NULL attr, size 0 and the VERSION flag, the kernel only returns the
    // ABI version; no memory is read and no descriptor is created.
    let rc = unsafe {
        libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<libc::c_void>(), 0usize, LANDLOCK_CREATE_RULESET_VERSION)
    };
    if rc > 0 {
        return Landlock { abi: u32::try_from(rc).ok(), error: None, fix: None };
    }
    let err = std::io::Error::last_os_error();
    let fix = match err.raw_os_error() {
        Some(libc::EOPNOTSUPP) => "Landlock is built in but disabled: add `landlock` to the kernel's `lsm=` boot parameter (e.g. lsm=landlock,lockdown,yama,integrity,apparmor,bpf)",
        _ => "use a kernel >= 5.13 built with CONFIG_SECURITY_LANDLOCK=y and `landlock` in `lsm=`",
    };
    Landlock { abi: None, error: Some(err.to_string()), fix: Some(fix.into()) }
}

fn seccomp() -> Seccomp {
    let current_mode = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Seccomp:")).and_then(|v| v.trim().parse::<u32>().ok()));
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    let action: u32 = SECCOMP_RET_ERRNO;
    // SAFETY: SECCOMP_GET_ACTION_AVAIL only reads the u32 we pass and changes nothing.
    let rc = unsafe {
        libc::syscall(libc::SYS_seccomp, libc::SECCOMP_GET_ACTION_AVAIL as libc::c_ulong, 0 as libc::c_ulong, &action as *const u32)
    };
    if rc == 0 {
        return Seccomp { current_mode, filters_available: true, error: None, fix: None };
    }
    let err = std::io::Error::last_os_error();
    Seccomp {
        current_mode,
        filters_available: false,
        error: Some(err.to_string()),
        fix: Some(
            "use a kernel built with CONFIG_SECCOMP_FILTER=y; in a container, a seccomp profile that allows the seccomp() syscall".into(),
        ),
    }
}

fn cgroup_v2() -> CgroupV2 {
    match std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers") {
        Ok(s) => CgroupV2 { available: true, controllers: s.split_whitespace().map(String::from).collect() },
        Err(_) => CgroupV2 { available: false, controllers: Vec::new() },
    }
}

fn container() -> Option<String> {
    if Path::new("/.dockerenv").exists() {
        return Some("docker".into());
    }
    if Path::new("/run/.containerenv").exists() {
        return Some("podman".into());
    }
    // systemd-nspawn, LXC and others set `container=` in PID 1's environment.
    let env = std::fs::read("/proc/1/environ").ok()?;
    env.split(|b| *b == 0).find_map(|kv| kv.strip_prefix(b"container=")).map(|v| String::from_utf8_lossy(v).into_owned())
}

// ---------------------------------------------------------------------------------
// Launchers
// ---------------------------------------------------------------------------------

fn system_report(config: &LauncherConfig) -> SystemBwrap {
    let mut candidates = Vec::new();
    let mut selected = None;
    for c in launcher::inspect_system(config) {
        let report = match &c.outcome {
            Ok(l) => {
                if selected.is_none() {
                    selected = Some(l.exec_path.clone());
                }
                SystemCandidateReport {
                    found_at: c.found_at.clone(),
                    canonical: c.canonical.clone(),
                    usable: true,
                    version: l.version.clone(),
                    supports_argv0: Some(l.supports_argv0),
                    supports_perms: Some(l.supports_perms),
                    supports_as_pid_1: Some(l.supports_as_pid_1),
                    rejected_because: None,
                }
            }
            Err(e) => SystemCandidateReport {
                found_at: c.found_at.clone(),
                canonical: c.canonical.clone(),
                usable: false,
                version: None,
                supports_argv0: None,
                supports_perms: None,
                supports_as_pid_1: None,
                rejected_because: Some(e.to_string()),
            },
        };
        candidates.push(report);
    }
    SystemBwrap { candidates, selected }
}

fn bundled_report() -> (BundledBwrap, MemfdExec) {
    let memfd_noexec = read_trimmed("/proc/sys/vm/memfd_noexec");
    let expected = launcher::hex(&bwrap_vendor::BWRAP_SHA256);
    let mut bundled = BundledBwrap {
        included: bwrap_vendor::BUNDLED,
        version: bwrap_vendor::BWRAP_VERSION.to_string(),
        expected_sha256: expected,
        dev_build: bwrap_vendor::is_dev_build(),
        usable: false,
        source: None,
        measured_sha256: None,
        error: None,
        fix: None,
    };
    let mut memfd = MemfdExec { memfd_noexec, exec_ok: None, error: None };
    match launcher::bundled() {
        Ok(l) => {
            bundled.usable = true;
            bundled.source = l.bundled_source().cloned();
            bundled.measured_sha256 = l.measured_digest_hex();
            match l.bundled_source() {
                Some(BundledSource::Memfd) => memfd.exec_ok = Some(true),
                Some(BundledSource::ResourceFile { memfd_error, .. }) => {
                    memfd.exec_ok = Some(false);
                    memfd.error = Some(memfd_error.clone());
                }
                None => {}
            }
        }
        Err(e) => {
            bundled.error = Some(e.to_string());
            bundled.fix = Some(e.fix());
            if bwrap_vendor::BUNDLED {
                memfd.exec_ok = Some(false);
                memfd.error = Some(e.to_string());
            }
        }
    }
    (bundled, memfd)
}

fn selected_summary(l: &Launcher) -> SelectedLauncher {
    SelectedLauncher {
        kind: l.kind(),
        exec_path: l.exec_path.clone(),
        version: l.version.clone(),
        supports_argv0: l.supports_argv0,
        supports_perms: l.supports_perms,
        supports_as_pid_1: l.supports_as_pid_1,
        bundled_source: l.bundled_source().cloned(),
        sha256: l.measured_digest_hex(),
        dev_build: l.is_dev_build(),
    }
}

/// Runs the selected bwrap with the namespaces and mounts the executor uses for a
/// network-restricted command. On a /proc failure, retries with /proc masked (which is
/// what the executor then does) to tell the two apart.
fn smoke_test(l: &Launcher) -> SmokeTest {
    let argv = |proc_args| launcher::trial_args(proc_args).into_iter().map(String::from).collect::<Vec<_>>();
    let full = ["--proc", "/proc"];
    let (ok, stderr) = l.trial_run(full);
    if ok {
        return SmokeTest { argv: argv(full), ok: true, proc_masked: false, stderr: None, explanation: None, fix: None };
    }
    let explanation = explain_bwrap_failure(&stderr);
    let fix = diagnose(&stderr).map(|d| d.fix.to_string());
    if launcher::is_proc_mount_failure(&stderr) {
        let masked = ["--tmpfs", "/proc"];
        if l.trial_run(masked).0 {
            return SmokeTest { argv: argv(masked), ok: true, proc_masked: true, stderr: Some(stderr), explanation, fix };
        }
    }
    SmokeTest { argv: argv(full), ok: false, proc_masked: false, stderr: Some(stderr), explanation, fix }
}

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
        user_namespaces: facts.user_namespaces,
        landlock: facts.landlock,
        seccomp: facts.seccomp,
        smoke_test: facts.smoke,
    }
}

/// What the verdict is drawn from.
struct Facts {
    user_namespaces: UserNamespaces,
    landlock: Landlock,
    seccomp: Seccomp,
    selected: Result<std::sync::Arc<Launcher>, launcher::LauncherError>,
    smoke: Option<SmokeTest>,
    guard_kernel: bool,
}

impl Facts {
    fn enforceable(&self) -> bool {
        self.smoke.as_ref().is_some_and(|s| s.ok)
    }

    fn proc_masked(&self) -> bool {
        self.smoke.as_ref().is_some_and(|s| s.proc_masked)
    }

    fn guard_enforced(&self) -> bool {
        self.enforceable() && self.guard_kernel && !self.proc_masked()
    }

    /// Every missing piece, each with the fix for its own cause, each cause once.
    fn problems(&self, bundled: &BundledBwrap) -> Vec<Problem> {
        let mut problems = Vec::new();
        problems.extend(self.namespace_problems());
        if let Err(e) = &self.selected {
            problems.push(Problem { what: format!("no usable bwrap: {e}"), fix: e.fix() });
        }
        if let (Some(f), None) = (&self.landlock.fix, self.landlock.abi) {
            let what = format!("Landlock unavailable: {}", self.landlock.error.as_deref().unwrap_or(""));
            problems.push(Problem { what, fix: f.clone() });
        }
        if let Some(f) = &self.seccomp.fix {
            let what = format!("seccomp filters unavailable: {}", self.seccomp.error.as_deref().unwrap_or(""));
            problems.push(Problem { what, fix: f.clone() });
        }
        problems.extend(bundled_problems(bundled));
        problems.extend(self.guard_problem());
        problems
    }

    /// User namespaces refused and the bwrap run that failed: one cause when the first
    /// explains the second, so the verdict does not give the same fix twice.
    fn namespace_problems(&self) -> Vec<Problem> {
        let attempt = &self.user_namespaces.attempt;
        let smoke = self.smoke.as_ref().filter(|s| !s.ok || s.proc_masked);
        if attempt.ok {
            return smoke.map(smoke_problem).into_iter().collect();
        }
        let what = format!(
            "user namespaces refused at {}: {}",
            attempt.failed_step.as_deref().unwrap_or("?"),
            attempt.error.as_deref().unwrap_or("?")
        );
        let fix = attempt.fix.clone().unwrap_or_default();
        match smoke {
            Some(s) if !s.ok => {
                vec![Problem { what: format!("{what}; so bwrap fails: {}", s.stderr.as_deref().unwrap_or("")), fix }]
            }
            Some(s) => vec![Problem { what, fix }, smoke_problem(s)],
            None => vec![Problem { what, fix }],
        }
    }

    fn guard_problem(&self) -> Option<Problem> {
        if !self.enforceable() || self.guard_enforced() {
            return None;
        }
        Some(Problem {
            what: "missing protected names (.git, .codex, ...) in writable roots can be created: the create guard cannot run here".into(),
            fix: if self.guard_kernel {
                "let sandboxes mount their own /proc (in a container: run it without masked /proc paths, e.g. `--security-opt systempaths=unconfined`), or create the protected directories before running commands".into()
            } else {
                "upgrade to Linux 5.14 or newer, or create the protected directories before running commands".into()
            },
        })
    }

    fn layers(&self) -> Vec<Layer> {
        let enforceable = self.enforceable();
        let landlock_abi = self.landlock.abi;
        let seccomp = self.seccomp.filters_available;
        vec![
            Layer { name: "namespaces (bwrap)", enforced: enforceable, available: enforceable, detail: self.namespace_detail() },
            Layer {
                name: "no_new_privs + capability drop",
                enforced: enforceable,
                available: true,
                detail: "applied by the inner stage".into(),
            },
            Layer {
                name: "landlock",
                enforced: enforceable && landlock_abi.is_some(),
                available: landlock_abi.is_some(),
                detail: landlock_abi.map(|a| format!("ABI {a}")).unwrap_or_else(|| "unavailable".into()),
            },
            Layer {
                name: "seccomp",
                enforced: enforceable && seccomp,
                available: seccomp,
                detail: if seccomp { "filters available".into() } else { "unavailable".into() },
            },
            Layer {
                name: "create guard (missing protected names)",
                enforced: self.guard_enforced(),
                available: self.guard_kernel && !self.proc_masked(),
                detail: match (self.guard_kernel, self.proc_masked()) {
                    (false, _) => super::inner::guard::KERNEL_NEEDED.into(),
                    (true, true) => "needs the sandbox's own /proc, which this host masks".into(),
                    (true, false) => "seccomp user notification".into(),
                },
            },
        ]
    }

    fn namespace_detail(&self) -> String {
        match (&self.selected, &self.smoke) {
            (Ok(l), Some(s)) if s.ok => format!(
                "{} bwrap {} at {}{}",
                kind_name(l.kind()),
                l.version.as_deref().unwrap_or("?"),
                l.exec_path.display(),
                if s.proc_masked { "; /proc masked" } else { "" }
            ),
            (Ok(_), _) => "bwrap fails on this host".into(),
            (Err(_), _) => "no usable bwrap".into(),
        }
    }
}

fn kind_name(kind: LauncherKind) -> &'static str {
    match kind {
        LauncherKind::System => "system",
        LauncherKind::Bundled => "bundled",
    }
}

/// The test run failed (or needed /proc masked) for a reason of its own.
fn smoke_problem(s: &SmokeTest) -> Problem {
    let stderr = s.stderr.as_deref().unwrap_or("");
    if s.ok {
        return Problem {
            what: "a fresh /proc cannot be mounted; sandboxes get an empty, masked /proc".into(),
            fix: s.fix.clone().unwrap_or_default(),
        };
    }
    Problem {
        what: match diagnose(stderr) {
            Some(d) => format!("bwrap could not create the sandbox: {} ({})", d.cause, d.line),
            None => format!("bwrap could not create the sandbox: {stderr}"),
        },
        fix: s.fix.clone().unwrap_or_else(|| "unknown bwrap failure: see its message".into()),
    }
}

fn bundled_problems(b: &BundledBwrap) -> Vec<Problem> {
    let mut problems = Vec::new();
    if b.dev_build {
        problems.push(Problem {
            what: "development build: the bundled bwrap's digest is not pinned".into(),
            fix: "build the executor without EXECUTOR_NO_BUNDLED_BWRAP (needs libcap-dev and a C compiler)".into(),
        });
    }
    if let (Some(e), Some(fix), true) = (&b.error, &b.fix, bwrap_vendor::BUNDLED) {
        problems.push(Problem { what: format!("bundled bwrap unusable: {e}"), fix: fix.clone() });
    }
    problems
}

fn yes(b: bool) -> &'static str {
    if b {
        "ok  "
    } else {
        "FAIL"
    }
}

pub fn render_human(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "absent".into());
    let _ = writeln!(o, "executor doctor{}", if r.running_as_root { " (running as root)" } else { "" });
    if let Some(c) = &r.container {
        let _ = writeln!(o, "  container: {c}");
    }
    let u = &r.user_namespaces;
    let _ = writeln!(o, "\n[{}] user namespaces", yes(u.attempt.ok));
    let _ = writeln!(o, "      kernel.unprivileged_userns_clone = {}", opt(&u.unprivileged_userns_clone));
    let _ = writeln!(o, "      user.max_user_namespaces = {}", opt(&u.max_user_namespaces));
    let _ = writeln!(o, "      kernel.apparmor_restrict_unprivileged_userns = {}", opt(&u.apparmor_restrict_unprivileged_userns));
    if let (Some(step), Some(err)) = (&u.attempt.failed_step, &u.attempt.error) {
        let _ = writeln!(o, "      attempt failed at {step}: {err}");
    } else {
        let _ = writeln!(o, "      attempt: created user+mount+pid+net+ipc+uts namespaces");
    }
    if let Some(f) = &u.attempt.fix {
        let _ = writeln!(o, "      FIX: {f}");
    }
    let _ = writeln!(
        o,
        "\n[{}] landlock: {}",
        yes(r.landlock.abi.is_some()),
        r.landlock.abi.map(|a| format!("ABI {a}")).unwrap_or_else(|| r.landlock.error.clone().unwrap_or_default())
    );
    if let Some(f) = &r.landlock.fix {
        let _ = writeln!(o, "      FIX: {f}");
    }
    let _ = writeln!(
        o,
        "\n[{}] seccomp filters (current mode {})",
        yes(r.seccomp.filters_available),
        r.seccomp.current_mode.map(|m| m.to_string()).unwrap_or_else(|| "?".into())
    );
    if let Some(f) = &r.seccomp.fix {
        let _ = writeln!(o, "      FIX: {f}");
    }
    let _ = writeln!(o, "\n[{}] system bwrap", yes(r.system_bwrap.selected.is_some()));
    if r.system_bwrap.candidates.is_empty() {
        let _ = writeln!(o, "      none on PATH");
    }
    for c in &r.system_bwrap.candidates {
        let shown = c.canonical.as_ref().unwrap_or(&c.found_at);
        if c.usable {
            let _ = writeln!(
                o,
                "      {} bubblewrap {}: --argv0 {}, --perms {}, --as-pid-1 {}",
                shown.display(),
                c.version.as_deref().unwrap_or("?"),
                c.supports_argv0 == Some(true),
                c.supports_perms == Some(true),
                c.supports_as_pid_1 == Some(true)
            );
        } else {
            let _ = writeln!(o, "      {} rejected: {}", shown.display(), c.rejected_because.as_deref().unwrap_or("?"));
        }
    }
    let b = &r.bundled_bwrap;
    let _ = writeln!(o, "\n[{}] bundled bwrap {}", yes(b.usable), if b.included { b.version.as_str() } else { "(not built in)" });
    let _ =
        writeln!(o, "      expected sha256:{}{}", b.expected_sha256, if b.dev_build { " (development build: not verified)" } else { "" });
    if let Some(m) = &b.measured_sha256 {
        let _ = writeln!(o, "      measured sha256:{m} through the executed descriptor");
    }
    match &b.source {
        Some(BundledSource::Memfd) => {
            let _ = writeln!(o, "      runs from a sealed memfd");
        }
        Some(BundledSource::ResourceFile { path, .. }) => {
            let _ = writeln!(o, "      runs from {}", path.display());
        }
        None => {}
    }
    if let Some(e) = &b.error {
        let _ = writeln!(o, "      error: {e}");
    }
    let m = &r.memfd_exec;
    let status = match m.exec_ok {
        Some(ok) => yes(ok),
        None => "n/a ",
    };
    let _ = writeln!(o, "\n[{status}] memfd exec (vm.memfd_noexec = {})", opt(&m.memfd_noexec));
    if let Some(e) = &m.error {
        let _ = writeln!(o, "      {e}");
        let _ = writeln!(
            o,
            "      FIX: `sysctl -w vm.memfd_noexec=0`, or install the bwrap as {} next to the executor",
            launcher::RESOURCE_RELATIVE_PATH
        );
    }
    let _ = writeln!(
        o,
        "\n[info] cgroup v2: {}",
        if r.cgroup_v2.available {
            format!("yes ({})", r.cgroup_v2.controllers.join(" "))
        } else {
            "no (/sys/fs/cgroup/cgroup.controllers missing)".into()
        }
    );
    if let Some(s) = &r.smoke_test {
        let _ = writeln!(o, "\n[{}] test run: bwrap {}", yes(s.ok), s.argv.join(" "));
        if let Some(e) = &s.stderr {
            let _ = writeln!(o, "      bwrap said: {e}");
        }
        if let Some(d) = s.stderr.as_deref().and_then(diagnose) {
            let _ = writeln!(o, "      cause: {}", d.cause);
            let _ = writeln!(o, "      FIX: {}", d.fix);
        }
    }
    o.push_str(&render_verdict(&r.verdict));
    o
}

/// The verdict block: what runs, each layer, each problem with its fix; a line that
/// would repeat an earlier one is left out.
fn render_verdict(v: &Verdict) -> String {
    let mut lines = vec![format!(
        "\nVerdict: {}",
        if v.sandbox_enforceable { "a sandbox CAN be enforced" } else { "NO sandbox can be enforced on this host" }
    )];
    lines.push(match &v.launcher {
        Some(l) => format!("  launcher: {} bwrap {} ({})", kind_name(l.kind), l.version.as_deref().unwrap_or("?"), l.exec_path.display()),
        None => "  launcher: none (the problem below says why)".to_string(),
    });
    for layer in &v.layers {
        let state = match (layer.enforced, layer.available) {
            (true, _) => "enforced",
            (false, true) => "present ",
            (false, false) => "missing ",
        };
        lines.push(format!("  [{state}] {}: {}", layer.name, layer.detail));
    }
    if v.layers.iter().any(|l| l.available && !l.enforced) {
        lines.push("  (present: this host has it, but it is not applied while no sandbox can run)".into());
    }
    for p in &v.problems {
        lines.push(format!("  problem: {}", p.what));
        lines.push(format!("    FIX: {}", p.fix));
    }
    let mut out = String::new();
    let mut seen = std::collections::HashSet::new();
    for line in lines {
        if seen.insert(line.clone()) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
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
