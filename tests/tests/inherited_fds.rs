//! Descriptors the executor inherits (from sshd, a CI runner, a shell with `7<secret`)
//! never reach the commands it runs: not directly, not inside the sandbox, and not
//! through `executor sandbox`, whose inner stage closes them by itself.
//!
//! Each case starts the executor with a file open at descriptor 7 without
//! close-on-exec, checks the executor really holds it (the control), then asks a
//! command whether it can see descriptor 7.

use executor_tests::RpcClient as _;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use executor_tests::{executor_bin, uri, workspace_write_sandbox, Executor, RunOutput};
use serde_json::{json, Value};

const FD: i32 = 7;
const PROBE: &str = "if [ -e /proc/self/fd/7 ]; then echo leaked; readlink /proc/self/fd/7; else echo closed; fi";

/// `command` with `secret` open at descriptor 7 in the started process.
fn with_fd7(command: &mut Command, secret: &Path) -> std::fs::File {
    let file = std::fs::File::open(secret).expect("open secret");
    let raw = file.as_raw_fd();
    // SAFETY: dup2 in the forked child only; `raw` stays open in the parent until the
    // returned File is dropped, after spawn.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(raw, FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    file
}

fn secret_file(dir: &Path) -> std::path::PathBuf {
    let secret = dir.join("inherited-secret");
    std::fs::write(&secret, "s3cret").expect("write secret");
    secret
}

fn server_with_fd7(secret: &Path) -> Executor {
    let mut command = Command::new(executor_bin());
    command.args(["--listen", "stdio"]);
    let file = with_fd7(&mut command, secret);
    let mut server = Executor::spawn(command);
    drop(file);
    let held = std::fs::read_link(format!("/proc/{}/fd/{FD}", server.pid())).expect("the executor holds descriptor 7");
    assert_eq!(held, secret, "control: the executor inherited the secret at descriptor 7");
    server.handshake();
    server
}

fn probe_params(ws: &Path, sandbox: Option<Value>) -> Value {
    let mut params = json!({"argv": ["sh", "-c", PROBE], "cwd": uri(ws), "env": {"PATH": "/usr/bin:/bin"}, "tty": false});
    if let Some(sandbox) = sandbox {
        params["sandbox"] = sandbox;
    }
    params
}

fn workspace_write(ws: &Path) -> Value {
    let mut sandbox = workspace_write_sandbox(ws);
    sandbox["cwd"] = json!(uri(ws));
    sandbox
}

fn assert_closed(out: &RunOutput, what: &str) {
    assert_eq!(out.exit_code, Some(0), "{what}: stderr {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout_str(), "closed\n", "{what}: the command saw the executor's inherited descriptor");
}

#[test]
fn direct_processes_do_not_inherit_the_executors_descriptors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = server_with_fd7(&secret_file(dir.path()));
    let out = s.run("direct", probe_params(dir.path(), None));
    assert_closed(&out, "direct process");
}

#[test]
fn sandboxed_processes_do_not_inherit_the_executors_descriptors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = std::fs::canonicalize(dir.path()).expect("canonical");
    let mut s = server_with_fd7(&secret_file(&ws));
    let out = s.run("sandboxed", probe_params(&ws, Some(workspace_write(&ws))));
    assert_closed(&out, "sandboxed process");
}

#[test]
fn the_inner_stage_closes_descriptors_by_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = std::fs::canonicalize(dir.path()).expect("canonical");
    let secret = secret_file(&ws);
    let run = |cmd: &[&str]| {
        let mut command = Command::new(executor_bin());
        command.env("EXECUTOR_SANDBOX_DEBUG", "1").arg("sandbox").arg("--").args(cmd).current_dir(&ws).stdin(Stdio::null());
        let file = with_fd7(&mut command, &secret);
        let out = command.output().expect("run executor sandbox");
        drop(file);
        out
    };
    // Control: `executor sandbox` itself does not close descriptor 7 (it is not the
    // server), so bwrap and the inner stage receive it: the inner stage's debug report
    // lists it among those it made close-on-exec. The command must not have it.
    let out = run(&["sh", "-c", PROBE]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "closed\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = stderr.lines().find(|l| l.contains("made close-on-exec: ")).unwrap_or_default();
    let listed = report.split("made close-on-exec: [").nth(1).and_then(|r| r.split(']').next()).unwrap_or_default();
    assert!(
        listed.split(", ").any(|fd| fd == "7"),
        "control: descriptor 7 reached the inner stage, so the command's `closed` is the inner stage's doing: {stderr}"
    );
    // The inner stage still holds it, but is not dumpable: the command cannot reopen it
    // through /proc/1/fd.
    let inner = run(&["sh", "-c", "cat /proc/1/fd/7 2>/dev/null || echo unreachable"]);
    assert_eq!(String::from_utf8_lossy(&inner.stdout).trim(), "unreachable");
}
