//! The container entrypoint case (docs/deploy-container.md): executor as PID 1 of a fresh
//! PID namespace (`unshare --pid --fork --mount-proc`, as root), listening on websocket.
//! Orphans are reaped, our own children's exit codes stay right, and SIGTERM drains and
//! exits. Needs root (as CI runs) for the namespaces; its absence is a failure, not a pass.

use executor_tests::RpcClient as _;
use std::os::unix::fs::MetadataExt as _;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use executor_tests::ws::{http_get, WsClient, WsServer, UPGRADE_HEADERS};
use executor_tests::{executor_bin, sh, wait_pid_gone, TIMEOUT};
use serde_json::json;

/// `unshare --pid --fork --mount-proc executor --listen ws://127.0.0.1:0 ARGS`.
fn start_as_pid1(args: &[&str]) -> WsServer {
    let mut all = vec!["--listen", "ws://127.0.0.1:0"];
    all.extend_from_slice(args);
    start_argv_as_pid1(&all)
}

/// `unshare --pid --fork --mount-proc executor ARGS`; `--kill-child` so that the whole
/// namespace goes when the test drops the server.
fn start_argv_as_pid1(args: &[&str]) -> WsServer {
    assert!(nix::unistd::geteuid().is_root(), "the PID 1 tests need root for a PID namespace");
    let mut command = Command::new("unshare");
    command.args(["--pid", "--fork", "--kill-child", "--mount-proc"]).arg(executor_bin()).args(args);
    WsServer::spawn(command)
}

/// The `ENTRYPOINT` of ci/container/Dockerfile, as its exec-form JSON array.
fn dockerfile_entrypoint() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ci/container/Dockerfile");
    let dockerfile = std::fs::read_to_string(path).expect("ci/container/Dockerfile");
    let line = dockerfile.lines().find_map(|l| l.strip_prefix("ENTRYPOINT ")).expect("an ENTRYPOINT line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("ENTRYPOINT is not an exec-form array: {e}"))
}

#[test]
fn the_dockerfile_entrypoint_runs_as_pid1() {
    let mut argv = dockerfile_entrypoint();
    assert_eq!(argv.first().map(String::as_str), Some("executor"));
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("executor-token");
    std::fs::write(&token_file, "container-token\n").expect("token");
    // Only the port and the secret's path differ from the image.
    for (from, to) in [("ws://0.0.0.0:8765", "ws://127.0.0.1:0"), ("/run/secrets/executor-token", token_file.to_str().expect("utf8"))] {
        let arg = argv.iter_mut().find(|a| a.as_str() == from).unwrap_or_else(|| panic!("ENTRYPOINT lacks {from}"));
        *arg = to.to_owned();
    }
    let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    let server = start_argv_as_pid1(&args);
    assert_eq!(http_get(server.addr(), "/readyz", &[]).0, 200);
    assert_eq!(http_get(server.addr(), "/", UPGRADE_HEADERS), (401, "missing websocket bearer token".into()));
    let mut client = WsClient::connect(&server.url, &[("Authorization", "Bearer container-token")]).expect("authorized upgrade");
    client.handshake();
    let (comm, code) = run(&mut client, "pid1", "cat /proc/1/comm");
    assert_eq!((comm.trim(), code), ("executor", Some(0)));
}

/// The host pid of the namespace's PID 1: the only child of `unshare`.
fn pid1_host_pid(server: &WsServer) -> i32 {
    let unshare = server.pid();
    let children = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).expect("children of unshare");
    let pids: Vec<i32> = children.split_whitespace().map(|p| p.parse().expect("pid")).collect();
    assert_eq!(pids.len(), 1, "unshare --fork has one child: {pids:?}");
    pids[0]
}

/// Runs `script` in the namespace through the executor and returns its stdout.
fn run(client: &mut WsClient, id: &str, script: &str) -> (String, Option<i64>) {
    let out = client.run(id, sh(script));
    (out.stdout_str(), out.exit_code)
}

/// Zombies in the namespace, as `pid comm` lines, listed from inside it.
const LIST_ZOMBIES: &str = "for f in /proc/[0-9]*/stat; do read -r pid comm state rest < \"$f\" 2>/dev/null && [ \"$state\" = Z ] && echo \"$pid $comm\"; done; true";

#[test]
fn orphans_are_reaped_and_our_exit_codes_stay_right() {
    let server = start_as_pid1(&[]);
    let mut client = server.ready();
    let (pid1, _) = run(&mut client, "who-is-1", "cat /proc/1/comm");
    assert_eq!(pid1.trim(), "executor", "the executor is PID 1 of the namespace");

    // Orphans: each background sleep outlives its shell, is re-parented to PID 1 and exits
    // there. Meanwhile the shell itself, our child, exits with 7.
    let (orphans, code) =
        run(&mut client, "orphans", "for i in 1 2 3 4 5; do sleep 0.2 & echo $!; done; setsid sh -c 'sleep 0.2' & echo $!; exit 7");
    assert_eq!(code, Some(7), "our own child's exit status must not be taken by the reaper");
    let orphans: Vec<&str> = orphans.split_whitespace().collect();
    assert_eq!(orphans.len(), 6);

    // Every orphan disappears completely (no zombie left behind), and no zombie remains.
    let deadline = Instant::now() + TIMEOUT;
    let check = format!("for p in {}; do [ -e /proc/$p ] && echo $p; done; {LIST_ZOMBIES}", orphans.join(" "));
    let mut n = 0;
    loop {
        n += 1;
        let (left, code) = run(&mut client, &format!("check{n}"), &check);
        assert_eq!(code, Some(0));
        if left.trim().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "orphans or zombies left in the namespace: {left}");
        thread::sleep(Duration::from_millis(100));
    }
    // Plenty of quick children of ours still report their own statuses.
    for i in 0..20 {
        let (_, code) = run(&mut client, &format!("quick{i}"), &format!("exit {i}"));
        assert_eq!(code, Some(i));
    }
}

#[test]
fn sigterm_to_pid1_terminates_children_and_exits() {
    let mut server = start_as_pid1(&["--shutdown-grace-ms", "1000"]);
    let pid1 = pid1_host_pid(&server);
    let pid_ns = std::fs::metadata(format!("/proc/{pid1}/ns/pid")).expect("pid ns").ino();
    let marker_dir = tempfile::tempdir().expect("tempdir");
    let marker = marker_dir.path().join("got-term");
    let mut client = server.ready();
    // A child that records SIGTERM and exits, and one that ignores SIGTERM.
    client.call(
        "process/start",
        json!({"processId": "polite",
        "argv": ["sh", "-c", format!("trap 'echo term > {}; exit 0' TERM; echo $$; while :; do sleep 0.05; done", marker.display())],
        "cwd": "file:///tmp", "env": {"PATH": "/usr/bin:/bin"}, "tty": false}),
    );
    client.call(
        "process/start",
        json!({"processId": "stubborn",
        "argv": ["sh", "-c", "trap '' TERM; echo $$; while :; do sleep 0.05; done"],
        "cwd": "file:///tmp", "env": {"PATH": "/usr/bin:/bin"}, "tty": false}),
    );
    let mut host_pids = Vec::new();
    for id in ["polite", "stubborn"] {
        let event = client.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == json!(id));
        let text = String::from_utf8(executor_tests::unb64(event["params"]["chunk"].as_str().expect("chunk"))).expect("utf8");
        let ns_pid: i32 = text.trim().parse().expect("pid");
        host_pids.push(host_pid(pid_ns, ns_pid).unwrap_or_else(|| panic!("no host pid for {id} (ns pid {ns_pid})")));
    }

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid1), nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(128 + 15), "PID 1 exits with the server's status after SIGTERM: {status:?}");
    assert_eq!(std::fs::read_to_string(&marker).ok().as_deref(), Some("term\n"), "children get SIGTERM before SIGKILL");
    for pid in host_pids {
        assert!(wait_pid_gone(pid), "child {pid} survived the shutdown");
    }
}

/// The host pid of the process that has `ns_pid` in the PID namespace `pid_ns` (inode).
fn host_pid(pid_ns: u64, ns_pid: i32) -> Option<i32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let in_ns = std::fs::metadata(format!("/proc/{pid}/ns/pid")).is_ok_and(|m| m.ino() == pid_ns);
        if !in_ns {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let innermost = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|p| p.parse::<i32>().ok());
        if innermost == Some(ns_pid) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn reap_orphans_outside_pid1_makes_the_supervisor_their_reaper() {
    let server = WsServer::start(&["--reap-orphans"]);
    let supervisor = server.pid();
    let mut client = server.ready();
    let (orphan, code) = run(&mut client, "orphan", "sleep 2 >/dev/null 2>&1 & echo $!; exit 3");
    assert_eq!(code, Some(3));
    let orphan: i32 = orphan.trim().parse().expect("pid");
    // Re-parented to the supervisor (a child subreaper), not to the host's init.
    let ppid = std::fs::read_to_string(format!("/proc/{orphan}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PPid:")).and_then(|p| p.trim().parse::<i32>().ok()));
    assert_eq!(ppid, Some(supervisor), "orphan {orphan} should be a child of the supervisor {supervisor}");
    // And reaped when it exits: /proc/PID disappears entirely (a zombie would stay).
    let deadline = Instant::now() + TIMEOUT;
    while std::path::Path::new(&format!("/proc/{orphan}")).exists() {
        assert!(Instant::now() < deadline, "orphan {orphan} was not reaped");
        thread::sleep(Duration::from_millis(50));
    }
}
