//! fs/* under a restricted profile: served by the fs-helper inside the sandbox, so the
//! kernel enforces the profile exactly as for a process; judged by host state afterwards.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use executor_tests::{b64, executor_bin, unb64, uri, Executor};
use serde_json::{json, Value};

struct Layout {
    _dir: tempfile::TempDir,
    ws: std::path::PathBuf,
    secret: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn layout() -> Layout {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    let (ws, secret, outside) = (root.join("ws"), root.join("secret"), root.join("outside"));
    for d in [&ws, &secret, &outside] {
        std::fs::create_dir(d).expect("mkdir");
    }
    std::fs::write(secret.join("s.txt"), b"s3cret\n").expect("write");
    std::fs::write(outside.join("o.txt"), b"outside\n").expect("write");
    Layout { _dir: dir, ws, secret, outside }
}

fn policy(l: &Layout) -> Value {
    json!({"permissions": {"type": "managed", "file_system": {"type": "restricted", "entries": [
        {"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"},
        {"path": {"type": "path", "path": uri(&l.ws)}, "access": "write"},
        {"path": {"type": "path", "path": uri(&l.secret)}, "access": "none"}]},
        "network": "restricted"}, "windowsSandboxLevel": "disabled", "cwd": uri(&l.ws)})
}

fn with_sandbox(mut params: Value, l: &Layout) -> Value {
    params["sandbox"] = policy(l);
    params
}

fn server() -> Executor {
    let mut command = Command::new(executor_bin());
    command.args(["--listen", "stdio"]).env("EXECUTOR_TEST_SECRET_TOKEN", "hunter2-do-not-leak");
    let mut server = Executor::spawn(command);
    server.handshake();
    server
}

#[test]
fn writes_inside_the_writable_root_only() {
    let l = layout();
    let mut s = server();
    s.call("fs/writeFile", with_sandbox(json!({"path": uri(&l.ws.join("in.txt")), "dataBase64": b64(b"in")}), &l));
    assert_eq!(std::fs::read(l.ws.join("in.txt")).expect("written"), b"in");
    let target = l.outside.join("new.txt");
    let (code, message) = s.call_err("fs/writeFile", with_sandbox(json!({"path": uri(&target), "dataBase64": b64(b"x")}), &l));
    assert_eq!((code, message.as_str()), (-32603, "Read-only file system (os error 30)"));
    assert!(!target.exists());
    // `..` out of the root is resolved before the request and lands outside: refused.
    let dotdot = format!("{}/../outside/dotdot.txt", uri(&l.ws));
    let (code, _) = s.call_err("fs/writeFile", with_sandbox(json!({"path": dotdot, "dataBase64": b64(b"x")}), &l));
    assert_eq!(code, -32603);
    assert!(!l.outside.join("dotdot.txt").exists());
    // A symlink inside the root that points outside does not carry write access out.
    symlink(&l.outside, l.ws.join("link")).expect("symlink");
    let (code, _) = s.call_err("fs/writeFile", with_sandbox(json!({"path": uri(&l.ws.join("link/via-link.txt")), "dataBase64": b64(b"x")}), &l));
    assert_eq!(code, -32603);
    assert!(!l.outside.join("via-link.txt").exists());
    let (code, _) = s.call_err("fs/remove", with_sandbox(json!({"path": uri(&l.outside.join("o.txt"))}), &l));
    assert_eq!(code, -32603);
    assert!(l.outside.join("o.txt").exists(), "remove outside the root was refused");
    let (code, _) = s.call_err("fs/copy", with_sandbox(json!({"sourcePath": uri(&l.ws.join("in.txt")), "destinationPath": uri(&l.outside.join("copy.txt")), "recursive": false}), &l));
    assert_eq!(code, -32603);
    assert!(!l.outside.join("copy.txt").exists());
    let (code, _) = s.call_err("fs/createDirectory", with_sandbox(json!({"path": uri(&l.outside.join("d"))}), &l));
    assert_eq!(code, -32603);
    assert!(!l.outside.join("d").exists());
}

#[test]
fn denied_paths_cannot_be_read_listed_or_copied_out() {
    let l = layout();
    let mut s = server();
    let secret_file = uri(&l.secret.join("s.txt"));
    let (code, message) = s.call_err("fs/readFile", with_sandbox(json!({"path": secret_file}), &l));
    assert_eq!((code, message.as_str()), (-32600, "Permission denied (os error 13)"));
    let listing = s.request("fs/readDirectory", with_sandbox(json!({"path": uri(&l.secret)}), &l));
    let names = listing["result"]["entries"].as_array().map(|e| e.len()).unwrap_or(0);
    assert_eq!(names, 0, "a denied directory shows nothing: {listing}");
    let walk = s.request("fs/walk", with_sandbox(json!({"path": uri(&l.secret), "options": {"maxDepth": 3, "maxDirectories": 10, "maxEntries": 100, "followDirectorySymlinks": false}}), &l));
    assert!(walk["result"]["entries"].as_array().is_none_or(|e| e.is_empty()), "{walk}");
    let copied = l.ws.join("stolen.txt");
    let copy = s.request("fs/copy", with_sandbox(json!({"sourcePath": secret_file, "destinationPath": uri(&copied), "recursive": false}), &l));
    assert!(copy.get("error").is_some(), "{copy}");
    assert!(!copied.exists() || std::fs::read(&copied).expect("read") != b"s3cret\n");
    // Control: the same read without a sandbox is served directly.
    let direct = s.call("fs/readFile", json!({"path": secret_file}));
    assert_eq!(unb64(direct["dataBase64"].as_str().expect("data")), b"s3cret\n");
}

#[test]
fn the_helper_is_not_the_executor_process() {
    let l = layout();
    let mut s = server();
    let environ = s.call("fs/readFile", with_sandbox(json!({"path": "file:///proc/self/environ"}), &l));
    let environ = unb64(environ["dataBase64"].as_str().expect("data"));
    assert!(!String::from_utf8_lossy(&environ).contains("hunter2"), "the executor's environment leaked");
    let pid = s.child.id();
    let (code, _) = s.call_err("fs/readFile", with_sandbox(json!({"path": format!("file:///proc/{pid}/environ")}), &l));
    assert!(code == -32004 || code == -32600, "the executor's /proc entry is not reachable: {code}");
    // Control: without a sandbox the executor reads its own environment.
    let direct = s.call("fs/readFile", json!({"path": "file:///proc/self/environ"}));
    assert!(String::from_utf8_lossy(&unb64(direct["dataBase64"].as_str().expect("data"))).contains("hunter2"));
}

#[test]
fn reads_and_metadata_work_and_the_helper_stays_warm() {
    let l = layout();
    std::fs::write(l.ws.join("r.txt"), b"hello").expect("write");
    let mut s = server();
    for _ in 0..20 {
        let meta = s.call("fs/getMetadata", with_sandbox(json!({"path": uri(&l.ws.join("r.txt"))}), &l));
        assert_eq!(meta["size"], 5);
    }
    let read = s.call("fs/readFile", with_sandbox(json!({"path": uri(&l.outside.join("o.txt"))}), &l));
    assert_eq!(unb64(read["dataBase64"].as_str().expect("data")), b"outside\n");
    let helpers = count_helpers(s.child.id());
    assert_eq!(helpers, 1, "one warm helper serves every request of one policy");
}

/// Sandboxed fs helpers started by the server with `pid` (bwrap children of it).
fn count_helpers(pid: u32) -> usize {
    // Children are listed under the thread that forked them.
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("task list");
    let children: Vec<String> = tasks
        .filter_map(Result::ok)
        .flat_map(|t| {
            let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            list.split_whitespace().map(str::to_owned).collect::<Vec<_>>()
        })
        .collect();
    children
        .iter()
        .filter(|child| {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains("--run-as-fs-helper")
        })
        .count()
}

#[test]
fn a_policy_without_sandbox_needs_is_served_directly_and_bad_policies_are_rejected() {
    let l = layout();
    let mut s = server();
    let disabled = json!({"permissions": {"type": "disabled"}, "windowsSandboxLevel": "disabled"});
    let out = l.outside.join("direct.txt");
    s.call("fs/writeFile", json!({"path": uri(&out), "dataBase64": b64(b"d"), "sandbox": disabled}));
    assert!(out.exists());
    let bogus = json!({"permissions": {"type": "bogus"}, "windowsSandboxLevel": "disabled"});
    let (code, message) = s.call_err("fs/getMetadata", json!({"path": "file:///tmp", "sandbox": bogus}));
    assert_eq!((code, message.as_str()), (-32602, "unknown variant `bogus`, expected one of `managed`, `disabled`, `external`"));
    let dynamic = json!({"permissions": {"type": "managed", "file_system": {"type": "restricted", "entries": [
        {"path": {"type": "special", "value": {"kind": "project_roots"}}, "access": "write"}]}, "network": "restricted"},
        "windowsSandboxLevel": "disabled"});
    let target = l.ws.join("g.txt");
    let response = s.request("fs/writeFile", json!({"path": uri(&target), "dataBase64": "eA==", "sandbox": dynamic}));
    assert!(response.get("error").is_some() || target.exists(), "{response}");
    let (code, _) = s.call_err("fs/open", with_sandbox(json!({"handleId": "h", "path": uri(&l.ws.join("in.txt"))}), &l));
    assert_eq!(code, -32603, "fs/open under a sandbox is refused, not opened with the executor's rights");
    assert!(Path::new(&l.ws).exists());
}
