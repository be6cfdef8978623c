//! Operator floor: `--require-sandbox` and `--default-sandbox`, and sandboxed
//! `process/start` over the protocol (sandboxType, sandboxDenied, host state).

use executor_tests::RpcClient as _;
use executor_tests::{sh, uri, workspace_write_sandbox, Executor};
use serde_json::json;

#[test]
fn require_sandbox_refuses_requests_without_one() {
    let mut s = Executor::ready(&["--require-sandbox"]);
    let mut params = sh("true");
    params["processId"] = json!("p");
    let (code, message) = s.call_err("process/start", params);
    assert_eq!(code, -32602, "{message}");
    assert!(message.contains("--require-sandbox"), "{message}");
    let (code, _) = s.call_err("fs/readFile", json!({"path": "file:///etc/hostname"}));
    assert_eq!(code, -32602);
}

#[test]
fn default_sandbox_applies_to_requests_without_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cwd = std::fs::canonicalize(dir.path()).expect("canonical");
    let outside = tempfile::tempdir_in(outside_of_temp_dirs()).expect("tempdir");
    let target = outside.path().join("escaped");
    let mut s = Executor::ready(&["--default-sandbox", "workspace-write"]);
    let script = format!("touch inside; touch {}; echo done", target.display());
    let params = json!({"processId": "p", "argv": ["sh", "-c", script], "cwd": uri(&cwd), "env": {"PATH": "/usr/bin:/bin"}, "tty": false});
    assert_eq!(s.call("process/start", params)["sandboxType"], "linuxSeccomp");
    let events = s.events_until_closed("p");
    let out = executor_tests::RunOutput::from_events(&events);
    assert_eq!(out.stdout, b"done\n");
    assert!(cwd.join("inside").exists(), "the cwd is writable");
    assert!(!target.exists(), "writes outside the workspace are refused");
}

/// A place for scratch files that workspace-write does not make writable (it adds /tmp and
/// $TMPDIR, and this checkout may itself live under /tmp).
fn outside_of_temp_dirs() -> &'static str {
    let tmpdir = std::env::var("TMPDIR").unwrap_or_default();
    ["/var/tmp", "/var/lib", "/root"]
        .into_iter()
        .find(|c| std::path::Path::new(c).is_dir() && !tmpdir.starts_with(c))
        .expect("a scratch directory outside /tmp and $TMPDIR")
}

#[test]
fn sandboxed_start_reports_linux_seccomp_and_denials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = std::fs::canonicalize(dir.path()).expect("canonical");
    let mut s = Executor::ready(&[]);
    let sandbox = workspace_write_sandbox(&ws);
    let params = json!({"processId": "s1", "argv": ["sh", "-c", "grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status; id -u"],
        "cwd": uri(&ws), "env": {"PATH": "/usr/bin:/bin"}, "tty": false, "sandbox": sandbox});
    assert_eq!(s.call("process/start", params)["sandboxType"], "linuxSeccomp");
    let out = executor_tests::RunOutput::from_events(&s.events_until_closed("s1"));
    let text = out.stdout_str();
    assert!(text.contains("Seccomp:\t2") && text.contains("NoNewPrivs:\t1") && text.contains("CapEff:\t0000000000000000"), "{text}");
    assert_eq!((out.exit_code, out.sandbox_denied), (Some(0), Some(false)));
    // A profile that hides the program: the command cannot run, which is a sandbox denial.
    let empty = json!({"permissions": {"type": "managed", "file_system": {"type": "restricted", "entries": [
        {"path": {"type": "path", "path": uri(&ws)}, "access": "write"}]}, "network": "restricted"},
        "windowsSandboxLevel": "disabled"});
    let params = json!({"processId": "s2", "argv": ["/usr/bin/true"], "cwd": uri(&ws), "env": {}, "tty": false, "sandbox": empty});
    s.call("process/start", params);
    let out = executor_tests::RunOutput::from_events(&s.events_until_closed("s2"));
    assert_eq!(out.sandbox_denied, Some(true), "exit {:?}, stderr {}", out.exit_code, String::from_utf8_lossy(&out.stderr));
}

/// `process/signal interrupt` reaches the command inside the sandbox (through the
/// sandbox's PID 1, which forwards it), so the command can run its handler; sent to
/// bwrap it would kill the sandbox instead (exit 130, no handler output).
#[test]
fn interrupt_reaches_the_sandboxed_command() {
    for launcher in ["system", "bundled"] {
        interrupt_reaches_the_sandboxed_command_with(launcher);
    }
}

fn interrupt_reaches_the_sandboxed_command_with(launcher: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = std::fs::canonicalize(dir.path()).expect("canonical");
    let mut s = Executor::ready(&["--bwrap", launcher]);
    let sandbox = workspace_write_sandbox(&ws);
    let script = "trap 'echo got-int; exit 4' INT; echo ready; while :; do sleep 0.05; done";
    let params = json!({"processId": "int", "argv": ["sh", "-c", script], "cwd": uri(&ws),
        "env": {"PATH": "/usr/bin:/bin"}, "tty": false, "sandbox": sandbox});
    assert_eq!(s.call("process/start", params)["sandboxType"], "linuxSeccomp");
    s.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == "int");
    assert_eq!(s.call("process/signal", json!({"processId": "int", "signal": "interrupt"})), json!({}));
    let out = executor_tests::RunOutput::from_events(&s.events_until_closed("int"));
    assert_eq!(out.stdout_str(), "got-int\n", "--bwrap {launcher}: stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.exit_code, Some(4), "--bwrap {launcher}");
}
