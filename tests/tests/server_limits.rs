//! Bounded server resources (issue 18, item 3): fs handles and live processes per
//! session, the open-file limit the executor raises for itself, and the descriptor
//! reserve that keeps `process/start` and sandboxed fs requests working when fs handles
//! have used up everything else. Root and the unprivileged test user, over stdio (and
//! websocket for the per-connection part).

use executor_tests::RpcClient as _;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use executor_tests::unprivileged::{chown_tree, setpriv_args, test_user_ids, user_binary};
use executor_tests::ws::WsServer;
use executor_tests::{b64, error_of, executor_bin, sh, unb64, uri, workspace_write_sandbox, Executor};
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug)]
enum Who {
    Root,
    Unprivileged,
}

/// A scratch directory (owned by the test user when the server runs as it) with one
/// file to open.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new(who: Who) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("f.txt"), b"handle data\n").expect("write");
        if let Who::Unprivileged = who {
            chown_tree(test_user_ids(), dir.path());
        }
        Scratch { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn open(&self, id: &str) -> Value {
        json!({"handleId": id, "path": uri(&self.path().join("f.txt"))})
    }

    fn sandboxed(&self, mut params: Value) -> Value {
        params["sandbox"] = workspace_write_sandbox(self.path());
        params
    }
}

/// `executor --listen stdio ARGS` as `who`, with `RLIMIT_NOFILE` set to `(soft, hard)`
/// when given.
fn server(who: Who, args: &[&str], nofile: Option<(u64, u64)>) -> Executor {
    let mut command = match who {
        Who::Root => Command::new(executor_bin()),
        Who::Unprivileged => {
            let mut c = Command::new("setpriv");
            c.args(setpriv_args(test_user_ids())).arg(user_binary(&executor_bin()));
            c
        }
    };
    command.args(["--listen", "stdio"]).args(args).current_dir("/tmp");
    if let Some((soft, hard)) = nofile {
        let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
        // SAFETY: runs in the forked child before exec and only calls setrlimit
        // (async-signal-safe) on a value copied into the closure.
        unsafe {
            command.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut server = Executor::spawn(command);
    server.handshake();
    server
}

/// The error of an `fs/open` that must be refused.
fn refused_open(s: &mut Executor, params: Value) -> String {
    let (code, message) = s.call_err("fs/open", params);
    assert_eq!(code, -32603, "{message}");
    message
}

/// After a flood, the server must still start processes and serve sandboxed fs requests
/// (each of which needs descriptors for pipes, sockets and the helper's start).
fn still_serves_processes_and_sandboxed_fs(s: &mut Executor, scratch: &Scratch) {
    for i in 0..3 {
        let out = s.run(&format!("after-flood-{i}"), sh("echo still here"));
        assert_eq!((out.stdout_str().as_str(), out.exit_code), ("still here\n", Some(0)));
    }
    let written = scratch.path().join("sandboxed.txt");
    let write = json!({"path": uri(&written), "dataBase64": b64(b"in the sandbox")});
    assert_eq!(s.call("fs/writeFile", scratch.sandboxed(write)), json!({}));
    assert_eq!(std::fs::read(&written).expect("written by the helper"), b"in the sandbox");
}

#[test]
fn fs_handles_past_the_default_cap_are_refused_naming_it_and_the_server_keeps_working() {
    let scratch = Scratch::new(Who::Root);
    let mut s = server(Who::Root, &[], None);
    for i in 0..1024 {
        s.call("fs/open", scratch.open(&format!("h{i}")));
    }
    let message = refused_open(&mut s, scratch.open("one-too-many"));
    assert_eq!(
        message,
        "too many open file handles: this session already holds 1024, the limit set by --max-fs-handles; close one with fs/close first"
    );
    // A sandboxed open (descriptor handed over by the helper) counts against the same cap.
    let message = refused_open(&mut s, scratch.sandboxed(scratch.open("sandboxed")));
    assert!(message.contains("--max-fs-handles"), "{message}");
    still_serves_processes_and_sandboxed_fs(&mut s, &scratch);
    // Closing a handle makes room again, and the handles that exist still work.
    assert_eq!(s.call("fs/close", json!({"handleId": "h0"})), json!({}));
    assert_eq!(s.call("fs/open", scratch.sandboxed(scratch.open("sandboxed"))), json!({"handleId": "sandboxed"}));
    let block = s.call("fs/readBlock", json!({"handleId": "sandboxed", "offset": 0, "len": 64}));
    assert_eq!(unb64(block["chunk"].as_str().expect("chunk")), b"handle data\n");
    let block = s.call("fs/readBlock", json!({"handleId": "h1023", "offset": 0, "len": 6}));
    assert_eq!(unb64(block["chunk"].as_str().expect("chunk")), b"handle");
    refused_open(&mut s, scratch.open("full-again"));
}

/// With a low descriptor limit and no handle cap to speak of, `fs/open` stops at the
/// reserve, with an error that says so, and everything that needs descriptors still runs.
fn descriptor_reserve_holds(who: Who) {
    let scratch = Scratch::new(who);
    let mut s = server(who, &["--max-fs-handles", "100000"], Some((256, 256)));
    let mut opened = 0;
    let message = loop {
        assert!(opened < 256, "{who:?}: 256 handles opened with a descriptor limit of 256");
        let response = s.request("fs/open", scratch.open(&format!("h{opened}")));
        match error_of(&response) {
            None => opened += 1,
            Some((code, message)) => {
                assert_eq!(code, -32603, "{message}");
                break message;
            }
        }
    };
    assert!(opened >= 150, "{who:?}: only {opened} handles before the refusal: {message}");
    assert!(message.starts_with("too few free file descriptors: "), "{message}");
    assert!(message.contains("of the executor's 256 (RLIMIT_NOFILE) are open, and 32 are kept for process/start"), "{message}");
    still_serves_processes_and_sandboxed_fs(&mut s, &scratch);
    for i in 0..8 {
        s.call("fs/close", json!({"handleId": format!("h{i}")}));
    }
    assert_eq!(s.call("fs/open", scratch.open("again")), json!({"handleId": "again"}));
}

#[test]
fn the_descriptor_reserve_keeps_processes_and_sandboxed_fs_working_as_root() {
    descriptor_reserve_holds(Who::Root);
}

#[test]
fn the_descriptor_reserve_keeps_processes_and_sandboxed_fs_working_unprivileged() {
    descriptor_reserve_holds(Who::Unprivileged);
}

/// The executor raises its own soft limit to the hard one; its children, sandboxed or
/// not, start with the soft limit it was given.
fn nofile_is_raised_for_the_server_only(who: Who) {
    let scratch = Scratch::new(who);
    let mut s = server(who, &[], Some((300, 4000)));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", s.pid())).expect("limits");
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("Max open files");
    assert_eq!(line.split_whitespace().skip(3).take(2).collect::<Vec<_>>(), ["4000", "4000"], "{who:?}: {line}");
    let out = s.run("plain", sh("ulimit -Sn; ulimit -Hn"));
    assert_eq!(out.stdout_str(), "300\n4000\n", "{who:?}");
    let mut sandboxed = sh("ulimit -Sn; ulimit -Hn");
    sandboxed["cwd"] = json!(uri(scratch.path()));
    sandboxed["sandbox"] = workspace_write_sandbox(scratch.path());
    let out = s.run("sandboxed", sandboxed);
    assert_eq!((out.stdout_str().as_str(), out.exit_code), ("300\n4000\n", Some(0)), "{who:?}: {:?}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_open_file_limit_is_raised_for_the_server_and_restored_for_children_as_root() {
    nofile_is_raised_for_the_server_only(Who::Root);
}

#[test]
fn the_open_file_limit_is_raised_for_the_server_and_restored_for_children_unprivileged() {
    nofile_is_raised_for_the_server_only(Who::Unprivileged);
}

fn sleeper(s: &mut Executor, id: &str) -> Value {
    let mut params = sh("exec sleep 60");
    params["processId"] = json!(id);
    s.request("process/start", params)
}

#[test]
fn processes_that_have_not_closed_are_capped_per_session() {
    let mut s = server(Who::Root, &["--max-processes", "2"], None);
    // Processes that closed do not count.
    for i in 0..3 {
        assert_eq!(s.run(&format!("quick-{i}"), sh("true")).exit_code, Some(0));
    }
    for id in ["p1", "p2"] {
        assert!(sleeper(&mut s, id).get("result").is_some());
    }
    let (code, message) = error_of(&sleeper(&mut s, "p3")).expect("a third live process is refused");
    assert_eq!(
        (code, message.as_str()),
        (-32603, "too many processes: this session already runs 2 that have not closed, the limit set by --max-processes")
    );
    // The refused id was not taken; once p1 has closed there is room for it.
    assert_eq!(s.call("process/terminate", json!({"processId": "p1"})), json!({"running": true}));
    s.events_until_closed("p1");
    assert!(sleeper(&mut s, "p3").get("result").is_some());
    let (code, _) = error_of(&sleeper(&mut s, "p4")).expect("full again");
    assert_eq!(code, -32603);
}

#[test]
fn the_caps_are_per_connection_on_the_websocket_listener() {
    let scratch = Scratch::new(Who::Root);
    let server = WsServer::start(&["--max-fs-handles", "2"]);
    let mut first = server.ready();
    let mut second = server.ready();
    for id in ["a", "b"] {
        first.call("fs/open", scratch.open(id));
    }
    let (code, message) = first.call_err("fs/open", scratch.open("c"));
    assert_eq!(code, -32603);
    assert!(message.contains("already holds 2, the limit set by --max-fs-handles"), "{message}");
    for id in ["a", "b"] {
        assert_eq!(second.call("fs/open", scratch.open(id)), json!({"handleId": id}));
    }
}
