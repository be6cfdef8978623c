//! `fs/watchMissing` and `fs/missingChanged` (protocol.md §7.4, §17.6), over stdio and, for
//! detach/resume and session expiry, over websocket. Where a test shows that something did
//! *not* fire, a control watch that does fire later is the sync point, never a sleep.

use executor_tests::RpcClient as _;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use executor_tests::ws::{WsClient, WsServer};
use executor_tests::{uri, Executor, TIMEOUT};
use serde_json::{json, Value};

fn changed(watch_id: u64) -> impl Fn(&Value) -> bool {
    move |m: &Value| m["method"] == "fs/missingChanged" && m["params"]["watchId"] == json!(watch_id)
}

fn watch(s: &mut Executor, watch_id: u64, missing: &[&Path]) -> Value {
    let missing: Vec<String> = missing.iter().map(|p| uri(p)).collect();
    s.call("fs/watchMissing", json!({"watchId": watch_id, "missing": missing}))
}

/// Whether a `fs/missingChanged` for `watch_id` has already arrived (no waiting).
fn has_fired(s: &mut Executor, watch_id: u64) -> bool {
    s.try_next_matching(&changed(watch_id), Duration::ZERO).is_some()
}

/// Creates `path` and waits for the control watch `watch_id` on it to fire: every event
/// that happened before it has been handled by then.
fn fire_control(s: &mut Executor, watch_id: u64, path: &Path) {
    assert_eq!(watch(s, watch_id, &[path]), json!({"watching": true}));
    std::fs::write(path, b"control").expect("write control");
    let event = s.next_matching(changed(watch_id));
    assert_eq!(event, json!({"method": "fs/missingChanged", "params": {"watchId": watch_id}}));
}

/// Threads of `pid` named `fs-watch`.
fn watch_threads(pid: u32) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks.filter_map(Result::ok).filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "fs-watch")).count()
}

/// Open inotify instances of `pid`.
fn inotify_fds(pid: u32) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    fds.filter_map(Result::ok).filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == "anon_inode:inotify")).count()
}

/// Waits (hang guard only) until the server holds `threads` watcher threads and `fds`
/// inotify instances. A new thread names itself once it runs, hence the wait even for 1.
fn wait_watcher(pid: u32, threads: usize, fds: usize) {
    let deadline = Instant::now() + TIMEOUT;
    while (watch_threads(pid), inotify_fds(pid)) != (threads, fds) {
        assert!(
            Instant::now() < deadline,
            "expected {threads} fs-watch threads and {fds} inotify fds, have {} and {} after {TIMEOUT:?}",
            watch_threads(pid),
            inotify_fds(pid)
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn empty_lists_and_existing_paths_are_not_watched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("present.txt");
    std::fs::write(&file, b"x").expect("write");
    let mut s = Executor::ready(&[]);
    assert_eq!(s.call("fs/watchMissing", json!({"watchId": 1, "missing": []})), json!({"watching": false}));
    assert_eq!(watch(&mut s, 2, &[&file]), json!({"watching": false}));
    assert_eq!(watch(&mut s, 3, &[dir.path(), &file]), json!({"watching": false}));
    // Nothing was watched, so no watcher was started (its inotify instance is opened before
    // its thread starts, so a started one would show here).
    assert_eq!((watch_threads(s.child.id()), inotify_fds(s.child.id())), (0, 0));
}

#[test]
fn a_missing_file_fires_once_when_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let present = dir.path().join("present.txt");
    std::fs::write(&present, b"x").expect("write");
    let target = dir.path().join("new.txt");
    let mut s = Executor::ready(&[]);
    // Only the missing path of a mixed list is watched.
    assert_eq!(watch(&mut s, 5, &[&present, &target]), json!({"watching": true}));
    wait_watcher(s.child.id(), 1, 1);
    std::fs::write(&target, b"hello").expect("write");
    let event = s.next_matching(changed(5));
    assert_eq!(event, json!({"method": "fs/missingChanged", "params": {"watchId": 5}}));

    // The watch ended when it fired: removing and re-creating the file says nothing more.
    std::fs::remove_file(&target).expect("remove");
    std::fs::write(&target, b"again").expect("write");
    fire_control(&mut s, 6, &dir.path().join("control"));
    assert!(!has_fired(&mut s, 5), "a watch fires at most once");
    // With no watch left, the watcher thread and its inotify instance are gone.
    wait_watcher(s.child.id(), 0, 0);
}

#[test]
fn a_nested_path_fires_when_created_with_mkdir_p() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nested = dir.path().join("a/b/c/d");
    let mut s = Executor::ready(&[]);
    assert_eq!(watch(&mut s, 40, &[&nested]), json!({"watching": true}));
    let status = Command::new("mkdir").arg("-p").arg(&nested).status().expect("mkdir");
    assert!(status.success());
    s.next_matching(changed(40));

    // Parents created one at a time, each a separate event that re-arms the watch deeper.
    let file = dir.path().join("x/y/file.txt");
    assert_eq!(watch(&mut s, 41, &[&file]), json!({"watching": true}));
    std::fs::create_dir(dir.path().join("x")).expect("mkdir x");
    std::fs::create_dir(dir.path().join("x/y")).expect("mkdir y");
    fire_control(&mut s, 42, &dir.path().join("control"));
    assert!(!has_fired(&mut s, 41), "parents alone are not the path");
    std::fs::write(&file, b"").expect("write");
    s.next_matching(changed(41));
}

#[test]
fn a_path_that_is_never_created_does_not_fire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let never = dir.path().join("sub/never.txt");
    let mut s = Executor::ready(&[]);
    assert_eq!(watch(&mut s, 7, &[&never]), json!({"watching": true}));
    // Activity around the path: a sibling in the watched directory, the parent itself, a
    // sibling next to the path.
    std::fs::write(dir.path().join("other.txt"), b"").expect("write");
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    std::fs::write(dir.path().join("sub/nearly.txt"), b"").expect("write");
    fire_control(&mut s, 8, &dir.path().join("sub/control"));
    assert!(!has_fired(&mut s, 7), "watch 7 fired although its path never appeared");
    // Still watching: the path appearing now fires it.
    std::fs::write(&never, b"").expect("write");
    s.next_matching(changed(7));
}

#[test]
fn the_server_exits_at_eof_while_a_watch_is_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Executor::ready(&[]);
    assert_eq!(watch(&mut s, 1, &[&dir.path().join("never")]), json!({"watching": true}));
    s.close_stdin();
    // The watcher thread must not keep the process alive (wait_exit panics at the hang guard).
    assert!(s.wait_exit().success());
}

#[test]
fn a_path_whose_parent_is_removed_and_recreated_still_fires() {
    let dir = tempfile::tempdir().expect("tempdir");
    let parent = dir.path().join("p");
    std::fs::create_dir(&parent).expect("mkdir");
    let target = parent.join("t");
    let mut s = Executor::ready(&[]);
    assert_eq!(watch(&mut s, 9, &[&target]), json!({"watching": true}));
    // The watched directory goes away: the watch must move up to its parent.
    std::fs::remove_dir(&parent).expect("rmdir");
    std::fs::create_dir(&parent).expect("mkdir again");
    std::fs::write(&target, b"").expect("write");
    s.next_matching(changed(9));
}

#[test]
fn a_repeated_watch_id_replaces_the_watch_and_an_empty_list_cancels_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    let mut s = Executor::ready(&[]);
    assert_eq!(watch(&mut s, 10, &[&a]), json!({"watching": true}));
    assert_eq!(watch(&mut s, 10, &[&b]), json!({"watching": true}), "same id again replaces, no error");
    std::fs::write(&a, b"").expect("write a");
    fire_control(&mut s, 11, &dir.path().join("control1"));
    assert!(!has_fired(&mut s, 10), "the replaced watch on `a` must not fire");
    std::fs::write(&b, b"").expect("write b");
    s.next_matching(changed(10));

    assert_eq!(watch(&mut s, 12, &[&c]), json!({"watching": true}));
    assert_eq!(s.call("fs/watchMissing", json!({"watchId": 12, "missing": []})), json!({"watching": false}));
    std::fs::write(&c, b"").expect("write c");
    fire_control(&mut s, 13, &dir.path().join("control2"));
    assert!(!has_fired(&mut s, 12), "a watch replaced by an empty list is cancelled");
}

#[test]
fn bad_params_and_caps_are_errors_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Executor::start(&[]);
    // Params are checked before the handshake gate (§17.4), then the gate applies.
    let (code, message) = s.call_err("fs/watchMissing", json!({"missing": []}));
    assert_eq!((code, message.as_str()), (-32602, "missing field `watchId`"));
    let (code, _) = s.call_err("fs/watchMissing", json!({"watchId": 1, "missing": []}));
    assert_eq!(code, -32600);
    s.handshake();

    let (code, message) = s.call_err("fs/watchMissing", json!({"watchId": 1, "missing": ["/tmp/x"]}));
    assert_eq!((code, message.as_str()), (-32602, "invalid URI: relative URL without a base"));
    let (code, _) = s.call_err("fs/watchMissing", json!({"watchId": 1, "missing": ["file://otherhost/x"]}));
    assert_eq!(code, -32600);
    let (code, _) = s.call_err("fs/watchMissing", json!({"watchId": 1, "missing": ["http://x/y"]}));
    assert_eq!(code, -32602);
    let (code, _) = s.call_err("fs/watchMissing", json!({"watchId": -1, "missing": []}));
    assert_eq!(code, -32602);
    let (code, _) = s.call_err("fs/watchMissing", json!({"watchId": 1, "missing": "file:///x"}));
    assert_eq!(code, -32602);

    // At most 1024 paths per watch.
    let many: Vec<String> = (0..1025).map(|i| uri(&dir.path().join(format!("m{i}")))).collect();
    let (code, message) = s.call_err("fs/watchMissing", json!({"watchId": 1, "missing": many}));
    assert_eq!(code, -32600, "{message}");
    // At most 64 live watches per session; replacing a live one is not a new one.
    for id in 0..64 {
        assert_eq!(watch(&mut s, id, &[&dir.path().join(format!("w{id}"))]), json!({"watching": true}));
    }
    let (code, message) = s.call_err("fs/watchMissing", json!({"watchId": 64, "missing": [uri(&dir.path().join("w64"))]}));
    assert_eq!(code, -32600, "{message}");
    assert_eq!(watch(&mut s, 3, &[&dir.path().join("w3b")]), json!({"watching": true}));

    // The server still serves, and the watches still work.
    assert_eq!(s.call("environment/status", json!({})), json!({"status": "ready"}));
    std::fs::write(dir.path().join("w0"), b"").expect("write");
    s.next_matching(changed(0));
}

#[test]
fn the_capability_follows_the_sandbox_floor() {
    let mut s = Executor::ready(&[]);
    let info = s.call("environment/info", json!({}));
    assert_eq!(info["capabilities"]["fsWatchMissing"], json!(true));

    // Under --require-sandbox (no default) a watch would run with the executor's own
    // rights: it is refused, and the capability says so.
    let mut strict = Executor::ready(&["--require-sandbox"]);
    let info = strict.call("environment/info", json!({}));
    assert_eq!(info["capabilities"]["fsWatchMissing"], json!(false));
    let (code, _) = strict.call_err("fs/watchMissing", json!({"watchId": 1, "missing": ["file:///nonexistent/x"]}));
    assert_eq!(code, -32602);
}

fn ws_changed(client: &mut WsClient, watch_id: u64) -> Value {
    client.next_matching(changed(watch_id))
}

fn ws_watch(client: &mut WsClient, watch_id: u64, path: &Path) {
    let result = client.call("fs/watchMissing", json!({"watchId": watch_id, "missing": [uri(path)]}));
    assert_eq!(result, json!({"watching": true}));
}

#[test]
fn a_watch_firing_while_detached_is_delivered_after_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("appears");
    let server = WsServer::start(&[]);
    let mut detached = server.connect();
    let id = detached.handshake()["sessionId"].as_str().expect("sessionId").to_owned();
    ws_watch(&mut detached, 20, &target);
    drop(detached);
    // A second session watches the same path: once it hears of it, the event has been
    // handled for the detached session too (same directory, same round).
    let mut control = server.ready();
    ws_watch(&mut control, 21, &target);
    std::fs::write(&target, b"").expect("write");
    ws_changed(&mut control, 21);
    let mut resumed = server.resume_when_detached(&id);
    let event = ws_changed(&mut resumed, 20);
    assert_eq!(event, json!({"method": "fs/missingChanged", "params": {"watchId": 20}}));
}

#[test]
fn an_expired_session_leaves_no_watcher_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = WsServer::start(&["--session-ttl", "1"]);
    let mut client = server.ready();
    ws_watch(&mut client, 30, &dir.path().join("never"));
    let pid = u32::try_from(server.pid()).expect("pid");
    wait_watcher(pid, 1, 1);
    drop(client);
    // The session expires a second after the disconnect and takes its watch with it.
    wait_watcher(pid, 0, 0);
}
