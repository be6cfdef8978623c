//! Logs: on stderr only, filtered by EXECUTOR_LOG (else RUST_LOG), a bad filter said out
//! loud, colours only for a terminal, one line at start, malformed input at debug.

use std::io::{Read as _, Write as _};
use std::process::{Command, Output, Stdio};

use executor_tests::executor_bin;

/// A stdio server fed `input`, with the log variables set as given (and cleared
/// otherwise); its output once it has exited.
fn stdio_server(envs: &[(&str, &str)], input: &[u8]) -> Output {
    let mut command = Command::new(executor_bin());
    command.args(["--listen", "stdio"]).env_remove("EXECUTOR_LOG").env_remove("RUST_LOG");
    command.envs(envs.iter().copied()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("start executor");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write stdin");
    drop(stdin);
    child.wait_with_output().expect("executor output")
}

fn stderr_of(envs: &[(&str, &str)]) -> String {
    String::from_utf8_lossy(&stdio_server(envs, b"").stderr).into_owned()
}

const START: &str = "executor starting";

#[test]
fn help_describes_both_variables() {
    let out = Command::new(executor_bin()).arg("--help").output().expect("help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("EXECUTOR_LOG") && help.contains("RUST_LOG"), "{help}");
}

#[test]
fn executor_log_then_rust_log_then_warn() {
    assert!(!stderr_of(&[]).contains(START), "default filter is warn");
    let rust_log = stderr_of(&[("RUST_LOG", "info")]);
    assert!(rust_log.contains(START), "RUST_LOG is read when EXECUTOR_LOG is unset: {rust_log}");
    assert!(!stderr_of(&[("EXECUTOR_LOG", "warn"), ("RUST_LOG", "info")]).contains(START), "EXECUTOR_LOG wins");
    assert!(stderr_of(&[("EXECUTOR_LOG", ""), ("RUST_LOG", "info")]).contains(START), "an empty EXECUTOR_LOG counts as unset");
}

#[test]
fn a_bad_filter_is_a_warning() {
    for name in ["EXECUTOR_LOG", "RUST_LOG"] {
        let out = stdio_server(&[(name, "executor=loud")], b"");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let warning = stderr.lines().find(|l| l.contains("is not a valid log filter")).unwrap_or_else(|| panic!("{name}: {stderr}"));
        assert!(warning.contains(" WARN ") && warning.contains(&format!("{name}=\"executor=loud\"")), "{warning}");
    }
}

#[test]
fn one_start_line_with_version_transport_and_launcher() {
    let stderr = stderr_of(&[("EXECUTOR_LOG", "info")]);
    let starts: Vec<&str> = stderr.lines().filter(|l| l.contains(START)).collect();
    assert_eq!(starts.len(), 1, "{stderr}");
    let line = starts[0];
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.contains(&format!("version={}", env!("CARGO_PKG_VERSION"))), "{line}");
    assert!(line.contains("transport=stdio") && line.contains("launcher=bwrap auto"), "{line}");
}

#[test]
fn malformed_lines_are_logged_at_debug_and_stdout_stays_protocol() {
    let out = stdio_server(&[("EXECUTOR_LOG", "debug")], b"{not json\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().find(|l| l.contains("malformed message")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("DEBUG"), "{line}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for answer in stdout.lines() {
        serde_json::from_str::<serde_json::Value>(answer).unwrap_or_else(|e| panic!("stdout is not protocol: {answer:?}: {e}"));
    }
    assert!(!stderr_of(&[("EXECUTOR_LOG", "info")]).contains("malformed"), "not above debug");
}

#[test]
fn no_colours_into_a_pipe() {
    let stderr = stderr_of(&[("EXECUTOR_LOG", "debug")]);
    assert!(stderr.contains(START), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "ANSI escape in piped stderr: {stderr:?}");
}

#[test]
fn colours_on_a_terminal() {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let mut child = Command::new(executor_bin())
        .args(["--listen", "stdio"])
        .env("EXECUTOR_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(pty.slave))
        .spawn()
        .expect("start executor");
    assert_eq!(child.wait().expect("wait").code(), Some(0));
    // The slave is closed on both sides now: reading the master ends with EIO.
    let mut master = std::fs::File::from(pty.master);
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n @ 1..) = master.read(&mut chunk) {
        seen.extend_from_slice(&chunk[..n]);
    }
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.contains(START) && seen.contains('\u{1b}'), "expected coloured logs on a terminal: {seen:?}");
}
