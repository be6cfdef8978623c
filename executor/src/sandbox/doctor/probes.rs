//! The probes: what the host allows, found by trying (a forked user-namespace attempt,
//! Landlock and seccomp syscalls, the launchers and a real bwrap run).

use std::io::Read as _;
use std::path::Path;

use super::{
    diagnose, explain_bwrap_failure, fixes, launcher, read_trimmed, BundledBwrap, BundledSource, CgroupV2, Landlock, Launcher,
    LauncherConfig, MemfdExec, Seccomp, SelectedLauncher, SmokeTest, SystemBwrap, SystemCandidateReport, UsernsAttempt,
};

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

pub(super) fn userns_attempt(apparmor_restrict: Option<&str>, unpriv_clone: Option<&str>, is_root: bool) -> UsernsAttempt {
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

pub(super) fn landlock() -> Landlock {
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

pub(super) fn seccomp() -> Seccomp {
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

pub(super) fn cgroup_v2() -> CgroupV2 {
    match std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers") {
        Ok(s) => CgroupV2 { available: true, controllers: s.split_whitespace().map(String::from).collect() },
        Err(_) => CgroupV2 { available: false, controllers: Vec::new() },
    }
}

pub(super) fn container() -> Option<String> {
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

pub(super) fn system_report(config: &LauncherConfig) -> SystemBwrap {
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

pub(super) fn bundled_report() -> (BundledBwrap, MemfdExec) {
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

pub(super) fn selected_summary(l: &Launcher) -> SelectedLauncher {
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
pub(super) fn smoke_test(l: &Launcher) -> SmokeTest {
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
