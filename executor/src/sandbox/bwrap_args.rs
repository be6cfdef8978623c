//! Layer 1: the bubblewrap argv for one command (DESIGN.md §4).
//!
//! One bwrap exec per command and no preflight. The order is:
//! session/lifetime flags, namespaces, the filesystem view (base, then the plan's mount
//! operations parents-first, then deferred `--remount-ro` of masks so carve-outs below a
//! mask can still be created), `/dev`, `/proc` with the kernel interfaces re-bound
//! read-only (or an empty read-only tmpfs where the host refuses a new procfs), the
//! executor binary bound read-only (unless the read-only root already shows it and no
//! mount covers it), `--cap-drop ALL --cap-add CAP_SETPCAP`, `--chdir`, and the executor
//! as inner stage.
//!
//! Writable roots the inner stage binds itself (`late_binds`) get no `--bind`; bwrap then
//! also leaves the inner stage `CAP_SYS_ADMIN`, which its binds need and which its next
//! step drops with the rest.
//!
//! Why `CAP_SETPCAP` survives bwrap: locking the securebits needs it. The inner stage
//! locks them, empties the bounding, ambient, inheritable, permitted and effective sets,
//! and refuses to run the command if any capability is left. The command never runs
//! with it.
//!
//! PID 1: with `--as-pid-1` (when the launcher supports it) the inner stage is PID 1 of
//! the new PID namespace and is the reaper; otherwise bwrap's own init is PID 1 and the
//! inner stage makes itself a child subreaper. Either way the inner stage forks the
//! command, reaps, forwards signals and exits with the command's status.
//!
//! Missing protected metadata (e.g. no `.git` in a writable root): bwrap can only mount
//! onto a name that exists. Inside a writable root that name is the host's directory
//! entry, so any mount point bwrap creates there (`--tmpfs R/.git`) is created on the
//! host, which is exactly the litter DESIGN.md §7 rules out (verified on 0.8.0: an
//! empty `R/.git` appears on the host). Such names are therefore not mounted; the plan
//! lists them in `missing_protected`, and the inner stage's create guard
//! (`inner/guard`) refuses every call that would create them.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use super::inner::InnerConfig;
use super::launcher::Launcher;
use super::policy::{Base, MountOp, SandboxPlan};
use super::SandboxError;

/// argv[1] of the hidden re-entry form, for bwraps without `--argv0`.
pub const INNER_ARG1: &str = "--run-as-sandbox-inner";
/// argv[0] basename of the inner stage when bwrap supports `--argv0`.
pub const INNER_ARGV0: &str = "executor-sandbox";

/// Kernel interfaces that stay read-only inside: with a root executor the sandbox's uid
/// 0 is host uid 0, so a writable one is a host-root write.
const PROC_RO_TRY: &[&str] = &["/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"];

pub struct BwrapArgs {
    pub args: Vec<OsString>,
}

pub fn build(
    launcher: &Launcher,
    plan: &SandboxPlan,
    exe: &Path,
    command_cwd: &Path,
    inner: &InnerConfig,
    argv: &[String],
) -> Result<BwrapArgs, SandboxError> {
    let inner_config = inner.encode()?;
    let late: std::collections::HashSet<&Path> = inner.late_binds.iter().map(|b| b.path.as_path()).collect();
    let mut a: Vec<OsString> = Vec::with_capacity(64 + plan.ops.len() * 4 + argv.len());
    let mut push = |s: &str| a.push(OsString::from(s));

    if launcher.supports_as_pid_1 {
        push("--as-pid-1");
    }
    for f in
        ["--new-session", "--die-with-parent", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    {
        push(f);
    }
    if !plan.network {
        push("--unshare-net");
    }

    fn p2(a: &mut Vec<OsString>, flag: &str, x: &OsStr, y: &OsStr) {
        a.push(flag.into());
        a.push(x.to_os_string());
        a.push(y.to_os_string());
    }
    fn p1(a: &mut Vec<OsString>, flag: &str, x: &OsStr) {
        a.push(flag.into());
        a.push(x.to_os_string());
    }

    match plan.base {
        Base::ReadOnlyRoot => p2(&mut a, "--ro-bind", "/".as_ref(), "/".as_ref()),
        Base::WritableRoot => p2(&mut a, "--bind", "/".as_ref(), "/".as_ref()),
        Base::Empty => {}
    }
    let mut remount_later: Vec<&Path> = Vec::new();
    for op in &plan.ops {
        match op {
            MountOp::ReadOnly(p) => p2(&mut a, "--ro-bind", p.as_os_str(), p.as_os_str()),
            // Bound by the inner stage instead (`late_binds`).
            MountOp::Writable(p) if late.contains(p.as_path()) => {}
            MountOp::Writable(p) => p2(&mut a, "--bind", p.as_os_str(), p.as_os_str()),
            MountOp::MaskDir(p) => {
                if launcher.supports_perms {
                    p1(&mut a, "--perms", "000".as_ref());
                }
                p1(&mut a, "--tmpfs", p.as_os_str());
                remount_later.push(p);
            }
            MountOp::MaskFile(p) => p2(&mut a, "--ro-bind", "/dev/null".as_ref(), p.as_os_str()),
            MountOp::Symlink { target, link } => p2(&mut a, "--symlink", target.as_os_str(), link.as_os_str()),
        }
    }
    // Deepest first, after every carve-out below the mask exists.
    for p in remount_later.iter().rev() {
        p1(&mut a, "--remount-ro", p.as_os_str());
    }

    p1(&mut a, "--dev", "/dev".as_ref());
    if launcher.can_mount_proc() {
        p1(&mut a, "--proc", "/proc".as_ref());
        p2(&mut a, "--ro-bind", "/proc/sys".as_ref(), "/proc/sys".as_ref());
        for p in PROC_RO_TRY {
            p2(&mut a, "--ro-bind-try", p.as_ref(), p.as_ref());
        }
    } else {
        // Never the host's /proc: its process list, environments and kernel knobs.
        if launcher.supports_perms {
            p1(&mut a, "--perms", "555".as_ref());
        }
        p1(&mut a, "--tmpfs", "/proc".as_ref());
        p1(&mut a, "--remount-ro", "/proc".as_ref());
    }
    // Under `--ro-bind / /` bwrap already made /sys (a submount) read-only, and a
    // minimal view has no /sys; only a writable root needs it re-bound read-only.
    if plan.base == Base::WritableRoot {
        p2(&mut a, "--ro-bind-try", "/sys".as_ref(), "/sys".as_ref());
    }
    // The inner stage must be readable and must not be replaceable from inside. Under a
    // read-only root that no mount touches it already is; a bind there would only add a
    // mount to every start.
    if !visible_read_only(plan, exe) {
        p2(&mut a, "--ro-bind", exe.as_os_str(), exe.as_os_str());
    }

    for f in ["--cap-drop", "ALL", "--cap-add", "CAP_SETPCAP"] {
        a.push(f.into());
    }
    if !late.is_empty() {
        // For the inner stage's binds; its DropCapabilities step drops it before anything
        // else runs.
        p1(&mut a, "--cap-add", "CAP_SYS_ADMIN".as_ref());
    }
    p1(&mut a, "--chdir", command_cwd.as_os_str());
    if launcher.supports_argv0 {
        p1(&mut a, "--argv0", INNER_ARGV0.as_ref());
    }
    a.push("--".into());
    a.push(exe.as_os_str().to_os_string());
    if !launcher.supports_argv0 {
        a.push(INNER_ARG1.into());
    }
    a.push(inner_config.into());
    a.push("--".into());
    a.extend(argv.iter().map(OsString::from));
    Ok(BwrapArgs { args: a })
}

/// Mount points bwrap replaces after the root bind, whatever the plan.
const REPLACED_MOUNTS: &[&str] = &["/dev", "/proc"];

/// True when `exe` (canonical) is seen read-only through `--ro-bind / /` alone: no mount of
/// the plan, and none bwrap adds, covers it.
fn visible_read_only(plan: &SandboxPlan, exe: &Path) -> bool {
    if plan.base != Base::ReadOnlyRoot || REPLACED_MOUNTS.iter().any(|m| exe.starts_with(m)) {
        return false;
    }
    !plan.ops.iter().any(|op| exe.starts_with(op.path()))
}
