//! fs/* under a restricted profile: served by the fs-helper inside the sandbox, so the
//! kernel enforces the profile exactly as for a process; judged by host state afterwards.

use executor_tests::RpcClient as _;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
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
    let (code, _) =
        s.call_err("fs/writeFile", with_sandbox(json!({"path": uri(&l.ws.join("link/via-link.txt")), "dataBase64": b64(b"x")}), &l));
    assert_eq!(code, -32603);
    assert!(!l.outside.join("via-link.txt").exists());
    let (code, _) = s.call_err("fs/remove", with_sandbox(json!({"path": uri(&l.outside.join("o.txt"))}), &l));
    assert_eq!(code, -32603);
    assert!(l.outside.join("o.txt").exists(), "remove outside the root was refused");
    let (code, _) = s.call_err(
        "fs/copy",
        with_sandbox(
            json!({"sourcePath": uri(&l.ws.join("in.txt")), "destinationPath": uri(&l.outside.join("copy.txt")), "recursive": false}),
            &l,
        ),
    );
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
    let copy =
        s.request("fs/copy", with_sandbox(json!({"sourcePath": secret_file, "destinationPath": uri(&copied), "recursive": false}), &l));
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
    children(pid).into_iter().filter(|&child| is_helper(child)).count()
}

/// Children of `pid`; they are listed under the thread that forked them.
fn children(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("task list");
    tasks
        .filter_map(Result::ok)
        .flat_map(|t| {
            let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            list.split_whitespace().filter_map(|c| c.parse().ok()).collect::<Vec<u32>>()
        })
        .collect()
}

fn is_helper(pid: u32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&cmdline).contains("--run-as-fs-helper")
}

/// Every process below `pid` (bwrap, the inner stage, the helper itself).
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = children(pid);
    let mut i = 0;
    while i < found.len() {
        let more = children(found[i]);
        found.extend(more);
        i += 1;
    }
    found
}

/// Descriptors of `pid` that name `path`.
fn fds_naming(pid: u32, path: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    entries.filter_map(Result::ok).filter(|e| std::fs::read_link(e.path()).is_ok_and(|target| target == path)).count()
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
    let (code, message) = s.call_err("fs/writeFile", json!({"path": uri(&target), "dataBase64": "eA==", "sandbox": dynamic}));
    assert_eq!((code, message.as_str()), (-32602, "file system sandbox context with dynamic permissions requires cwd"));
    assert!(!target.exists());
}

#[test]
fn sandboxed_open_reads_blocks_like_a_direct_handle() {
    let l = layout();
    let file = l.ws.join("r.txt");
    std::fs::write(&file, b"hello world\n").expect("write");
    let mut s = server();
    let opened = s.call("fs/open", with_sandbox(json!({"handleId": "h1", "path": uri(&file)}), &l));
    assert_eq!(opened, json!({"handleId": "h1"}));
    assert_eq!(s.call("fs/readBlock", json!({"handleId": "h1", "offset": 0, "len": 5})), json!({"chunk": b64(b"hello"), "eof": false}));
    assert_eq!(s.call("fs/readBlock", json!({"handleId": "h1", "offset": 6, "len": 100})), json!({"chunk": b64(b"world\n"), "eof": true}));
    // Reading exactly the remaining bytes is not a short read (§17.6).
    assert_eq!(s.call("fs/readBlock", json!({"handleId": "h1", "offset": 6, "len": 6})), json!({"chunk": b64(b"world\n"), "eof": false}));
    assert_eq!(s.call("fs/readBlock", json!({"handleId": "h1", "offset": 100, "len": 4})), json!({"chunk": "", "eof": true}));
    let (code, message) = s.call_err("fs/writeBlock", json!({"handleId": "h1", "offset": 0, "chunk": b64(b"x")}));
    assert_eq!((code, message.as_str()), (-32603, "Bad file descriptor (os error 9)"));
    assert_eq!(std::fs::read(&file).expect("read"), b"hello world\n");
    let (code, message) = s.call_err("fs/open", with_sandbox(json!({"handleId": "h1", "path": uri(&file)}), &l));
    assert_eq!((code, message.as_str()), (-32600, "file handle `h1` already exists"));
    // A direct open cannot reuse a live sandboxed id either: one table per session.
    let (code, _) = s.call_err("fs/open", json!({"handleId": "h1", "path": uri(&file)}));
    assert_eq!(code, -32600);
    assert_eq!(s.call("fs/close", json!({"handleId": "h1"})), json!({}));
    let (code, message) = s.call_err("fs/readBlock", json!({"handleId": "h1", "offset": 0, "len": 5}));
    assert_eq!((code, message.as_str()), (-32004, "unknown file handle `h1`"));
    // Outside the writable root but readable by the policy; and an empty id.
    s.call("fs/open", with_sandbox(json!({"handleId": "", "path": uri(&l.outside.join("o.txt"))}), &l));
    assert_eq!(s.call("fs/readBlock", json!({"handleId": "", "offset": 0, "len": 64})), json!({"chunk": b64(b"outside\n"), "eof": true}));
    let long = "h".repeat(4097);
    let (code, _) = s.call_err("fs/open", with_sandbox(json!({"handleId": long, "path": uri(&file)}), &l));
    assert_eq!(code, -32600);
}

#[test]
fn sandboxed_replace_writes_only_inside_the_writable_root() {
    let l = layout();
    let mut s = server();
    let new = l.ws.join("new.txt");
    s.call("fs/open", with_sandbox(json!({"handleId": "w", "path": uri(&new), "mode": "replace"}), &l));
    s.call("fs/writeBlock", json!({"handleId": "w", "offset": 0, "chunk": b64(b"abc")}));
    s.call("fs/writeBlock", json!({"handleId": "w", "offset": 3, "chunk": b64(b"def")}));
    let (code, message) = s.call_err("fs/readBlock", json!({"handleId": "w", "offset": 0, "len": 3}));
    assert_eq!((code, message.as_str()), (-32603, "Bad file descriptor (os error 9)"), "replace handles are write-only");
    s.call("fs/close", json!({"handleId": "w"}));
    assert_eq!(std::fs::read(&new).expect("written"), b"abcdef");
    // replace truncates an existing file in the root.
    s.call("fs/open", with_sandbox(json!({"handleId": "t", "path": uri(&new), "mode": "replace"}), &l));
    s.call("fs/close", json!({"handleId": "t"}));
    assert_eq!(std::fs::read(&new).expect("truncated"), b"");

    let existing = l.outside.join("o.txt");
    let (code, message) = s.call_err("fs/open", with_sandbox(json!({"handleId": "o", "path": uri(&existing), "mode": "replace"}), &l));
    assert_eq!((code, message.as_str()), (-32603, "Read-only file system (os error 30)"));
    assert_eq!(std::fs::read(&existing).expect("read"), b"outside\n", "the host file was not truncated");
    let created = l.outside.join("created.txt");
    let (code, _) = s.call_err("fs/open", with_sandbox(json!({"handleId": "c", "path": uri(&created), "mode": "replace"}), &l));
    assert_eq!(code, -32603);
    assert!(!created.exists());
    symlink(&l.outside, l.ws.join("link")).expect("symlink");
    let (code, _) =
        s.call_err("fs/open", with_sandbox(json!({"handleId": "s", "path": uri(&l.ws.join("link/o.txt")), "mode": "replace"}), &l));
    assert_eq!(code, -32603);
    assert_eq!(std::fs::read(&existing).expect("read"), b"outside\n");
    // None of the refused ids was registered.
    for id in ["o", "c", "s"] {
        let (code, _) = s.call_err("fs/readBlock", json!({"handleId": id, "offset": 0, "len": 1}));
        assert_eq!(code, -32004, "{id}");
    }
}

#[test]
fn sandboxed_open_refuses_denied_paths_and_special_files() {
    let l = layout();
    let fifo = l.ws.join("fifo");
    mkfifo(&fifo);
    let mut s = server();
    let (code, message) = s.call_err("fs/open", with_sandbox(json!({"handleId": "x", "path": uri(&l.secret.join("s.txt"))}), &l));
    assert_eq!((code, message.as_str()), (-32600, "Permission denied (os error 13)"));
    let (code, message) = s.call_err("fs/open", with_sandbox(json!({"handleId": "x", "path": uri(&fifo)}), &l));
    assert_eq!((code, message), (-32600, format!("path `{}` is not a file", fifo.display())));
    let (code, _) = s.call_err("fs/open", with_sandbox(json!({"handleId": "x", "path": "file:///dev/null"}), &l));
    assert_eq!(code, -32600);
    let (code, _) = s.call_err("fs/open", with_sandbox(json!({"handleId": "x", "path": uri(&l.ws)}), &l));
    assert_eq!(code, -32600);
    // The helper survived all of that and still opens.
    std::fs::write(l.ws.join("ok.txt"), b"ok").expect("write");
    s.call("fs/open", with_sandbox(json!({"handleId": "x", "path": uri(&l.ws.join("ok.txt"))}), &l));
    assert_eq!(s.call("fs/readBlock", json!({"handleId": "x", "offset": 0, "len": 2}))["chunk"], b64(b"ok"));
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success());
}

#[test]
fn one_warm_helper_serves_many_opens_and_keeps_no_descriptor() {
    let l = layout();
    let mut s = server();
    let file: PathBuf = l.ws.join("kept.txt");
    std::fs::write(&file, b"kept").expect("write");
    s.call("fs/open", with_sandbox(json!({"handleId": "first", "path": uri(&file)}), &l));
    let executor = s.child.id();
    let helpers: Vec<u32> = descendants(executor).into_iter().filter(|&p| is_helper(p)).collect();
    assert!(!helpers.is_empty(), "a sandboxed helper is running");
    for i in 0..40 {
        let id = format!("h{i}");
        let mode = if i % 2 == 0 { "read" } else { "replace" };
        let path = if i % 2 == 0 { file.clone() } else { l.ws.join(format!("w{i}.txt")) };
        s.call("fs/open", with_sandbox(json!({"handleId": id, "path": uri(&path), "mode": mode}), &l));
        if mode == "replace" {
            s.call("fs/writeBlock", json!({"handleId": id, "offset": 0, "chunk": b64(id.as_bytes())}));
            assert_eq!(std::fs::read(&path).expect("written"), id.as_bytes());
        }
        s.call("fs/close", json!({"handleId": id}));
    }
    let after: Vec<u32> = descendants(executor).into_iter().filter(|&p| is_helper(p)).collect();
    assert_eq!(helpers, after, "the same warm helper processes served every open");
    // `first` is still open: the executor holds it (the control for this check), and no
    // process of the sandbox does.
    assert_eq!(fds_naming(executor, &file), 1, "the executor holds the handed-over descriptor");
    for pid in descendants(executor) {
        assert_eq!(fds_naming(pid, &file), 0, "process {pid} below the executor kept a copy of the descriptor");
    }
    assert_eq!(s.call("fs/readBlock", json!({"handleId": "first", "offset": 0, "len": 4}))["chunk"], b64(b"kept"));
    s.call("fs/close", json!({"handleId": "first"}));
    assert_eq!(fds_naming(executor, &file), 0, "fs/close closed it");
}
