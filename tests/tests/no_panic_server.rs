//! No panic on any input, black-box (issue 12, item 5): mutated versions of valid
//! requests for every method, fs methods with and without a sandbox, go to the real
//! binary over stdio, as root and as the unprivileged test user. Every request must be
//! answered (a result or an error with a protocol code), the server's stderr must hold no
//! panic and no crash report (the fs helper's stderr passes through it), and no process
//! output may carry one (a sandboxed command's inner stage writes there).
//!
//! Cases: `PROPTEST_CASES` (256 by default, as in CI); docs/security-model.md records a
//! longer run. Requests that could touch anything outside the scratch tree are not sent
//! (`executor_tests::mutation::stays_in_scratch`).

use executor_tests::RpcClient as _;
use std::cell::RefCell;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use executor_tests::mutation::{mutated_request, stays_in_scratch};
use executor_tests::unprivileged::{chown_tree, setpriv_args, test_user_ids, user_binary};
use executor_tests::{executor_bin, unb64, uri, Executor, TIMEOUT};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

/// Codes of the protocol (protocol.md §1.4).
const CODES: &[i64] = &[-32600, -32601, -32602, -32603, -32004, -32010];

/// What a panic or a crash report looks like, in any process of the executor.
fn shows_a_crash(text: &str) -> bool {
    text.contains("panicked") || text.contains("this is a bug in executor")
}

/// The files the requests of `executor_tests::mutation::requests` name; put back before
/// every case, since a mutated request may remove or replace them.
fn fixture(scratch: &Path, owner: Option<(u32, u32)>) {
    for dir in ["ws/gone/sub", "denied"] {
        let _ = std::fs::create_dir_all(scratch.join(dir));
    }
    for (file, text) in [("f.txt", "file data\n"), ("denied/s", "secret")] {
        if !scratch.join(file).is_file() {
            let _ = std::fs::remove_dir_all(scratch.join(file));
            let _ = std::fs::write(scratch.join(file), text);
        }
    }
    // Inward only: a link out of the scratch tree would let a path below it escape.
    let _ = std::os::unix::fs::symlink("ws", scratch.join("link-ws"));
    if let Some(ids) = owner {
        chown_tree(ids, scratch);
    }
}

fn server(owner: Option<(u32, u32)>, scratch: &Path, audit_log: Option<&Path>) -> Executor {
    let mut command = match owner {
        None => Command::new(executor_bin()),
        Some(ids) => {
            let mut c = Command::new("setpriv");
            c.args(setpriv_args(ids)).arg(user_binary(&executor_bin()));
            c
        }
    };
    command.args(["--listen", "stdio"]).current_dir(scratch).env_clear().env("PATH", "/usr/bin:/bin");
    if let Some(log) = audit_log {
        // The audit hooks see every mutated request too.
        command.arg("--audit-log").arg(log);
    }
    let mut s = Executor::spawn_capturing_stderr(command);
    s.handshake();
    // What the valid requests refer to: a closed process `done`, an open handle `h`.
    let done = s.run("done", json!({"argv": ["echo", "done"], "cwd": uri(scratch), "env": {}, "tty": false}));
    assert_eq!(done.exit_code, Some(0));
    s.call("fs/open", json!({"handleId": "h", "path": uri(&scratch.join("f.txt"))}));
    s
}

/// Sends one request and checks that it is answered with a result or a protocol error.
fn answered(s: &mut Executor, method: &str, params: &Value) -> Result<(), TestCaseError> {
    let id = s.send_request(method, params.clone());
    let is_answer = move |m: &Value| m.get("id") == Some(&json!(id)) && m.get("method").is_none();
    let Some(reply) = s.try_next_matching(&is_answer, TIMEOUT) else {
        return Err(TestCaseError::fail(format!("{method} {params}: no answer within {TIMEOUT:?}")));
    };
    match reply.get("error") {
        None if reply.get("result").is_some() => {}
        None => return Err(TestCaseError::fail(format!("{method}: neither result nor error: {reply}"))),
        Some(error) => {
            let code = error["code"].as_i64().unwrap_or_default();
            if !CODES.contains(&code) || !error["message"].is_string() {
                return Err(TestCaseError::fail(format!("{method} {params}: bad error {reply}")));
            }
        }
    }
    let stderr = s.stderr_text();
    if shows_a_crash(&stderr) {
        return Err(TestCaseError::fail(format!("the server's stderr shows a crash:\n{stderr}")));
    }
    Ok(())
}

/// The requests sent last, for the failure message: a crash report on stderr arrives
/// asynchronously and may belong to one of them rather than to the failing case.
struct Recent(Vec<String>);

impl Recent {
    fn push(&mut self, method: &str, params: &Value) {
        if self.0.len() == 5 {
            self.0.remove(0);
        }
        self.0.push(format!("{method} {params}"));
    }
}

/// Every process output the server sent so far, decoded.
fn process_output(s: &mut Executor) -> String {
    let mut text = String::new();
    let is_output = |m: &Value| m["method"] == "process/output";
    while let Some(event) = s.try_next_matching(&is_output, Duration::ZERO) {
        text.push_str(&String::from_utf8_lossy(&unb64(event["params"]["chunk"].as_str().unwrap_or_default())));
    }
    text
}

fn mutated_requests_are_all_answered(owner: Option<(u32, u32)>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let scratch = std::fs::canonicalize(dir.path()).expect("canonical");
    fixture(&scratch, owner);
    // As root only: the unprivileged server could not write a file in a root-owned dir.
    let audit_dir = tempfile::tempdir().expect("tempdir");
    let audit_log = owner.is_none().then(|| audit_dir.path().join("audit.jsonl"));
    let s = RefCell::new(server(owner, &scratch, audit_log.as_deref()));
    // No shrinking: the server's state moves on with every case, so a smaller input
    // re-sent later says little; the requests sent last say more.
    let mut runner = TestRunner::new(Config { max_shrink_iters: 0, failure_persistence: None, ..Config::default() });
    let sent = RefCell::new(0usize);
    let recent = RefCell::new(Recent(Vec::new()));
    let outcome = runner.run(&mutated_request(&scratch), |(method, params)| {
        if !stays_in_scratch(method, &params, &scratch) {
            return Ok(());
        }
        fixture(&scratch, owner);
        *sent.borrow_mut() += 1;
        recent.borrow_mut().push(method, &params);
        answered(&mut s.borrow_mut(), method, &params)
    });
    let mut s = s.into_inner();
    if let Err(failure) = outcome {
        panic!("{failure}\nthe last requests sent:\n{}", recent.into_inner().0.join("\n"));
    }
    let (sent, cases) = (sent.into_inner(), Config::default().cases as usize);
    eprintln!("no_panic_server: {sent} of {cases} mutated requests sent (the rest could reach outside the scratch tree)");
    assert!(sent > cases / 2, "most mutated requests should be sendable");
    assert_eq!(s.call("environment/status", json!({})), json!({"status": "ready"}), "the server still serves");
    let output = process_output(&mut s);
    assert!(!shows_a_crash(&output), "a process reported a crash:\n{output}");
    let stderr = s.stderr_text();
    assert!(!shows_a_crash(&stderr), "{stderr}");
    if let Some(log) = audit_log {
        // A clean exit (stdin EOF) flushes the audit queue.
        s.close_stdin();
        s.wait_exit();
        let verified = Command::new(executor_bin()).args(["audit", "verify"]).arg(&log).output().expect("executor audit verify");
        assert!(verified.status.success(), "the audit log of the mutated requests: {}", String::from_utf8_lossy(&verified.stderr));
        let lines = std::fs::read_to_string(&log).expect("read audit log").lines().count();
        assert!(lines > 2, "the mutated requests left {lines} audit lines");
    }
}

#[test]
fn mutated_requests_are_all_answered_without_a_panic_as_root() {
    mutated_requests_are_all_answered(None);
}

#[test]
fn mutated_requests_are_all_answered_without_a_panic_unprivileged() {
    mutated_requests_are_all_answered(Some(test_user_ids()));
}
