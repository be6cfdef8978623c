//! Hosts that refuse a new procfs inside a user namespace (a container whose /proc has
//! over-mounts, such as Docker's masks of /proc/kcore or /proc/timer_list): sandboxes
//! get an empty, read-only /proc there, never the host's. The host is simulated for
//! real: a private mount namespace with /dev/null bound over /proc/timer_list, which
//! the kernel then refuses to reveal through a fresh procfs ("Can't mount proc").
//!
//! Needs root (to create the mount namespace); fails loudly otherwise.

use executor_tests::RpcClient as _;
use std::process::Command;

use executor_tests::{executor_bin, uri, workspace_write_sandbox, Executor, RunOutput};
use serde_json::json;

/// `sh -c SCRIPT` run in a private mount namespace whose /proc has a locked over-mount.
fn in_masked_host(script: &str, args: &[&str]) -> Command {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root to create a mount namespace (CI runs as root)");
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!("mount --bind /dev/null /proc/timer_list && {script}"))
        .arg("sh")
        .args(args);
    command
}

const PROBE: &str = "ls -A /proc | wc -l; if [ -e /proc/1/environ ] || [ -e /proc/self/status ]; then echo visible; else echo masked; fi";

fn probe(server: &mut Executor, ws: &std::path::Path, id: &str) -> RunOutput {
    let sandbox = workspace_write_sandbox(ws);
    let params = json!({"processId": id, "argv": ["sh", "-c", PROBE], "cwd": uri(ws),
        "env": {"PATH": "/usr/bin:/bin"}, "tty": false, "sandbox": sandbox});
    assert_eq!(server.call("process/start", params)["sandboxType"], "linuxSeccomp");
    RunOutput::from_events(&server.events_until_closed(id))
}

#[test]
fn the_simulated_host_really_refuses_a_new_procfs() {
    let out =
        in_masked_host("bwrap --unshare-user --unshare-pid --ro-bind / / --dev /dev --proc /proc true", &[]).output().expect("run unshare");
    assert!(!out.status.success(), "control: bwrap mounted a procfs although /proc has a locked over-mount");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Can't mount proc"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn sandboxes_get_an_empty_proc_where_the_host_refuses_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = std::fs::canonicalize(dir.path()).expect("canonical");
    let exe = executor_bin();
    for launcher in ["system", "bundled"] {
        // Control: on the normal host the sandbox has its own, populated /proc.
        let mut normal = Executor::ready(&["--bwrap", launcher]);
        let out = probe(&mut normal, &ws, "normal");
        assert_eq!(out.exit_code, Some(0), "--bwrap {launcher}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout_str().ends_with("visible\n"), "--bwrap {launcher}: {}", out.stdout_str());

        let exe = exe.to_string_lossy();
        let mut masked = Executor::spawn(in_masked_host("exec \"$1\" --listen stdio --bwrap \"$2\"", &[&exe, launcher]));
        masked.handshake();
        let out = probe(&mut masked, &ws, "masked");
        assert_eq!(out.exit_code, Some(0), "--bwrap {launcher}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout_str(), "0\nmasked\n", "--bwrap {launcher}: /proc must be empty, not the host's");
    }
}

#[test]
fn doctor_reports_the_masked_proc() {
    let exe = executor_bin();
    let out = in_masked_host("exec \"$1\" doctor --json", &[&exe.to_string_lossy()]).output().expect("run doctor");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("doctor --json: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(report["smoke_test"]["proc_masked"], true, "{report:#}");
    assert_eq!(report["smoke_test"]["ok"], true, "{report:#}");
    // Without a /proc of its own the create guard cannot read callers: reported, with a fix.
    let guard = guard_layer(&report);
    assert_eq!(guard["enforced"], false, "{report:#}");
    assert!(guard["detail"].as_str().unwrap_or("").contains("/proc"), "{guard}");
    let problems = report["verdict"]["problems"].to_string();
    assert!(problems.contains("create guard cannot run here"), "{problems}");
}

/// The same host without the mask: the guard is reported enforced and no problem is listed.
#[test]
fn doctor_reports_the_create_guard_on_a_normal_host() {
    let out = std::process::Command::new(executor_bin()).args(["doctor", "--json"]).output().expect("run doctor");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("doctor --json: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(report["smoke_test"]["proc_masked"], false, "{report:#}");
    assert_eq!(guard_layer(&report)["enforced"], true, "{report:#}");
    assert!(!report["verdict"]["problems"].to_string().contains("create guard"), "{report:#}");
}

fn guard_layer(report: &serde_json::Value) -> serde_json::Value {
    let layers = report["verdict"]["layers"].as_array().cloned().unwrap_or_default();
    layers
        .into_iter()
        .find(|l| l["name"].as_str().is_some_and(|n| n.starts_with("create guard")))
        .unwrap_or_else(|| panic!("no create guard layer in {report:#}"))
}
