//! `executor doctor` tells the truth about this host: every fact it reports is
//! compared with an independent check made here, and a host where user namespaces are
//! refused (user.max_user_namespaces=0 inside a throwaway user namespace) is reported
//! as such, with the fix, and exit status 1.

mod launcher_common;

use std::path::Path;
use std::process::Command;

use launcher_common::{doctor_json, executor_bin};

fn independent_landlock_abi() -> Option<u64> {
    // SAFETY: NULL attr, size 0, LANDLOCK_CREATE_RULESET_VERSION: only returns the ABI.
    let rc = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<libc::c_void>(), 0usize, 1u32) };
    (rc > 0).then_some(rc as u64)
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

#[test]
fn doctor_json_matches_independent_checks() {
    let (code, r, stderr) = doctor_json(&[], &[]);

    // User namespaces: sysctls as files, and an attempt with util-linux unshare.
    let u = &r["user_namespaces"];
    assert_eq!(u["max_user_namespaces"].as_str().map(String::from), read("/proc/sys/user/max_user_namespaces"));
    assert_eq!(
        u["apparmor_restrict_unprivileged_userns"].as_str().map(String::from),
        read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
    );
    assert_eq!(u["unprivileged_userns_clone"].as_str().map(String::from), read("/proc/sys/kernel/unprivileged_userns_clone"));
    let unshare_ok = Command::new("unshare").args(["-U", "-r", "-m", "-p", "-n", "-f", "true"]).status().expect("unshare").success();
    assert_eq!(u["attempt"]["ok"].as_bool(), Some(unshare_ok), "{u}");

    // Landlock ABI through our own syscall.
    assert_eq!(r["landlock"]["abi"].as_u64(), independent_landlock_abi());

    // Seccomp mode from /proc/self/status of a process like us (the doctor reads its own).
    let status = read("/proc/self/status").unwrap_or_default();
    let mode: Option<u64> = status.lines().find_map(|l| l.strip_prefix("Seccomp:")).and_then(|v| v.trim().parse().ok());
    assert_eq!(r["seccomp"]["current_mode"].as_u64(), mode);
    // The kernel lists the filter actions it supports; doctor asks for SECCOMP_RET_ERRNO.
    let avail = read("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    assert_eq!(r["seccomp"]["filters_available"].as_bool(), Some(avail.split_whitespace().any(|a| a == "errno")));

    // cgroup v2 and memfd_noexec.
    assert_eq!(r["cgroup_v2"]["available"].as_bool(), Some(Path::new("/sys/fs/cgroup/cgroup.controllers").exists()));
    assert_eq!(r["memfd_exec"]["memfd_noexec"].as_str().map(String::from), read("/proc/sys/vm/memfd_noexec"));

    // System bwrap: its version and --argv0 as bwrap itself says.
    let sys = Command::new("/usr/bin/bwrap").arg("--version").output().expect("/usr/bin/bwrap on this host");
    let sys_version = String::from_utf8_lossy(&sys.stdout).trim().trim_start_matches("bubblewrap ").to_string();
    let help = Command::new("/usr/bin/bwrap").arg("--help").output().expect("bwrap --help");
    let help = String::from_utf8_lossy(&help.stdout).into_owned() + &String::from_utf8_lossy(&help.stderr);
    let cands = r["system_bwrap"]["candidates"].as_array().expect("candidates");
    let usr = cands
        .iter()
        .find(|c| c["canonical"] == "/usr/bin/bwrap")
        .unwrap_or_else(|| panic!("/usr/bin/bwrap not among candidates: {cands:?}"));
    assert_eq!(usr["usable"], true, "{usr}");
    assert_eq!(usr["version"].as_str(), Some(sys_version.as_str()));
    assert_eq!(usr["supports_argv0"].as_bool(), Some(help.contains("--argv0")));
    // merged /usr: /bin/bwrap and /usr/bin/bwrap are one file, reported once.
    assert_eq!(cands.iter().filter(|c| c["canonical"] == "/usr/bin/bwrap").count(), 1);

    // Bundled bwrap: present, runs from memfd here, measured == expected.
    let b = &r["bundled_bwrap"];
    assert_eq!(b["version"], "0.12.0");
    assert_eq!(b["usable"], true, "{b}");
    assert_eq!(b["measured_sha256"], b["expected_sha256"]);
    assert_eq!(b["source"]["kind"], "memfd");
    assert_eq!(r["memfd_exec"]["exec_ok"], true);

    // The verdict: the same bwrap run done here independently.
    let independent = Command::new("/usr/bin/bwrap")
        .args([
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-net",
            "--die-with-parent",
            "--new-session",
            "--as-pid-1",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--cap-drop",
            "ALL",
            "--",
            "true",
        ])
        .status()
        .expect("bwrap")
        .success();
    assert_eq!(r["verdict"]["sandbox_enforceable"].as_bool(), Some(independent), "{}", r["verdict"]);
    assert_eq!(r["verdict"]["launcher"]["kind"], "system", "auto picks the trusted, capable /usr/bin/bwrap");
    assert_eq!(r["verdict"]["launcher"]["exec_path"], "/usr/bin/bwrap");
    assert_eq!(code, if independent { 0 } else { 1 }, "stderr: {stderr}");
    let root = geteuid_is_root();
    assert_eq!(r["running_as_root"].as_bool(), Some(root));
}

fn geteuid_is_root() -> bool {
    launcher_common::geteuid() == 0
}

#[test]
fn doctor_human_output_has_verdict_and_exit_status() {
    let out = Command::new(executor_bin()).arg("doctor").output().expect("doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Verdict:"), "{text}");
    assert!(text.contains("user namespaces") && text.contains("landlock") && text.contains("bundled bwrap"), "{text}");
    let (code, r, _) = doctor_json(&[], &[]);
    assert_eq!(out.status.code(), Some(code));
    assert_eq!(code == 0, r["verdict"]["sandbox_enforceable"] == true);
}

/// In a throwaway user namespace whose root sets user.max_user_namespaces=0, nested
/// user namespaces are refused (ENOSPC): doctor must say so, give the sysctl fix and
/// exit 1.
#[test]
fn doctor_reports_refused_user_namespaces_with_fix() {
    let exe = executor_bin();
    let script = format!("echo 0 > /proc/sys/user/max_user_namespaces && exec '{}' doctor \"$@\"", exe.display());
    let run =
        |args: &[&str]| Command::new("unshare").args(["-U", "-r", "sh", "-c", &script, "sh"]).args(args).output().expect("unshare -U -r");
    let out = run(&["--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} / {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(1), "refused userns → no sandbox → exit 1");
    let a = &r["user_namespaces"]["attempt"];
    assert_eq!(a["ok"], false, "{a}");
    assert_eq!(a["failed_step"], "unshare(CLONE_NEWUSER)");
    assert!(a["error"].as_str().unwrap_or("").contains("No space left on device"), "{a}");
    assert!(a["fix"].as_str().unwrap_or("").contains("sysctl -w user.max_user_namespaces=15000"), "{a}");
    assert_eq!(r["user_namespaces"]["max_user_namespaces"], "0");
    assert_eq!(r["verdict"]["sandbox_enforceable"], false);
    let problems = r["verdict"]["problems"].to_string();
    assert!(problems.contains("user.max_user_namespaces=15000"), "{problems}");
    // The bwrap run fails too, and its message is explained.
    assert_eq!(r["smoke_test"]["ok"], false);
    assert!(r["smoke_test"]["fix"].as_str().unwrap_or("").contains("user.max_user_namespaces=15000"), "{}", r["smoke_test"]);
    let layers = r["verdict"]["layers"].as_array().expect("layers");
    assert!(layers.iter().all(|l| l["enforced"] == false), "{layers:?}");

    let human = run(&[]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert_eq!(human.status.code(), Some(1));
    assert!(text.contains("FIX: `sysctl -w user.max_user_namespaces=15000`"), "{text}");
    assert!(text.contains("NO sandbox can be enforced"), "{text}");
}

/// The verdict block of the human report: from `Verdict:` to the end.
fn verdict_block(text: &str) -> &str {
    text.split_once("\nVerdict:").map(|(_, v)| v).unwrap_or_else(|| panic!("no verdict in {text}"))
}

fn assert_lines_once(block: &str) {
    let mut seen = std::collections::HashSet::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        assert!(seen.insert(line), "printed twice: {line:?}\n{block}");
    }
}

/// Where user namespaces are refused, the verdict gives the cause and its fix once, and
/// the layers the host does have (Landlock with its ABI, seccomp) are shown as present.
#[test]
fn refused_host_verdict_names_each_cause_once_and_shows_what_is_present() {
    let exe = executor_bin();
    let script = format!("echo 0 > /proc/sys/user/max_user_namespaces && exec '{}' doctor", exe.display());
    let out = Command::new("unshare").args(["-U", "-r", "sh", "-c", &script]).output().expect("unshare -U -r");
    let text = String::from_utf8_lossy(&out.stdout);
    let verdict = verdict_block(&text);
    assert_lines_once(verdict);
    assert_eq!(verdict.matches("FIX: `sysctl -w user.max_user_namespaces=15000`").count(), 1, "{verdict}");
    let abi = independent_landlock_abi().expect("this host has Landlock");
    assert!(verdict.contains(&format!("[present ] landlock: ABI {abi}")), "{verdict}");
    assert!(verdict.contains("[present ] seccomp"), "{verdict}");
    assert!(verdict.contains("[missing ] namespaces (bwrap)"), "{verdict}");
}

/// An untrusted `--bwrap-path` is a problem of that path: the fix says how to make it
/// trusted (or what to use instead), not to install bubblewrap.
#[test]
fn untrusted_bwrap_path_gets_a_fix_for_the_path() {
    let dir = tempfile::tempdir().expect("tempdir under /tmp");
    let copy = dir.path().join("bwrap");
    std::fs::copy("/usr/bin/bwrap", &copy).expect("copy bwrap");
    let copy = copy.to_str().expect("utf8");
    let (code, r, _) = doctor_json(&["--bwrap-path", copy], &[]);
    assert_eq!(code, 1);
    let problems = r["verdict"]["problems"].as_array().expect("problems");
    let bwrap = problems.iter().find(|p| p["what"].as_str().is_some_and(|w| w.contains("is not trusted"))).expect("the path problem");
    let fix = bwrap["fix"].as_str().expect("fix");
    assert!(fix.starts_with(&format!("make {copy} and every directory above it owned by root")), "{fix}");
    assert!(!fix.contains("install bubblewrap"), "{fix}");

    let human = Command::new(executor_bin()).args(["doctor", "--bwrap-path", copy]).output().expect("doctor");
    let text = String::from_utf8_lossy(&human.stdout);
    let verdict = verdict_block(&text);
    assert_lines_once(verdict);
    assert_eq!(verdict.matches("is not trusted").count(), 1, "the reason once: {verdict}");
}

#[test]
fn healthy_host_verdict_prints_each_line_once() {
    let out = Command::new(executor_bin()).arg("doctor").output().expect("doctor");
    assert_lines_once(verdict_block(&String::from_utf8_lossy(&out.stdout)));
}
