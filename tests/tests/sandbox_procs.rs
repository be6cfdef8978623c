//! Fork bombs (DESIGN.md §5): a sandbox holds at most `--sandbox-max-procs` processes
//! and threads (a pids cgroup per sandbox where one is usable, as for root on CI; else
//! RLIMIT_NPROC, counted by the kernel in the sandbox's own user namespace), and the
//! server stays responsive while one runs. The kernel does not apply RLIMIT_NPROC to host
//! root: the pids cgroup is what binds root (docs/security-model.md, "Resource limits").

use executor_tests::RpcClient as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use executor_tests::unprivileged::{chown_tree, setpriv_args, test_user_ids, user_binary};
use executor_tests::{executor_bin, uri, workspace_write_sandbox, Executor, RunOutput};
use serde_json::json;

/// Forks up to 200 children that sleep, stopping at the first refusal.
const FORKER: &str = "import os, time
n = 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError as e:
        print('refused', e.errno)
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    n += 1
print('forked', n)
";

fn forked(stdout: &str) -> usize {
    let line = stdout.lines().find(|l| l.starts_with("forked ")).unwrap_or_else(|| panic!("no count in {stdout:?}"));
    line["forked ".len()..].parse().unwrap_or_else(|e| panic!("bad count {line:?}: {e}"))
}

/// `executor sandbox --sandbox-max-procs LIMIT -- python3 -c FORKER`, as the test user or
/// as root.
fn fork_in_sandbox(unprivileged: bool, limit: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = if unprivileged {
        let ids = test_user_ids();
        chown_tree(ids, dir.path());
        let mut c = Command::new("setpriv");
        c.args(setpriv_args(ids)).arg(user_binary(&executor_bin()));
        c
    } else {
        Command::new(executor_bin())
    };
    command
        .args(["sandbox", "--sandbox-max-procs", limit, "--cwd"])
        .arg(dir.path())
        .args(["--", "/usr/bin/python3", "-c", FORKER])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null());
    let out = command.output().expect("run executor sandbox");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "stdout {stdout}, stderr {}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn the_process_limit_holds_inside_an_unprivileged_sandbox() {
    let limited = fork_in_sandbox(true, "64");
    assert!(limited.contains(&format!("refused {}", libc::EAGAIN)), "{limited}");
    assert!(forked(&limited) < 64, "{limited}");
    // Control: without a limit the same user forks all 200.
    let unlimited = fork_in_sandbox(true, "0");
    assert_eq!(forked(&unlimited), 200, "{unlimited}");
}

#[test]
fn the_process_limit_binds_root_through_the_pids_cgroup() {
    assert!(nix::unistd::geteuid().is_root(), "this test pins root's behaviour and must run as root (CI does)");
    let limited = fork_in_sandbox(false, "64");
    assert!(limited.contains(&format!("refused {}", libc::EAGAIN)), "{limited}");
    assert!(forked(&limited) < 64, "{limited}");
    // Control: without a limit root forks all 200.
    let unlimited = fork_in_sandbox(false, "0");
    assert_eq!(forked(&unlimited), 200, "{unlimited}");
}

fn processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(marker))
        .count()
}

#[test]
fn a_fork_bomb_leaves_the_server_responsive() {
    let ids = test_user_ids();
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = std::fs::canonicalize(dir.path()).expect("canonical");
    chown_tree(ids, &ws);
    let mut command = Command::new("setpriv");
    command
        .args(setpriv_args(ids))
        .arg(user_binary(&executor_bin()))
        .args(["--listen", "stdio", "--sandbox-max-procs", "128"])
        .current_dir(&ws);
    let mut s = Executor::spawn(command);
    s.handshake();
    let sandbox = workspace_write_sandbox(&ws);
    let marker = format!("bomb-marker-{}", std::process::id());
    // Every process keeps forking copies of itself, retrying when refused (a refused
    // fork ends that shell; the top one execs so that it is not among them).
    let bomb = format!("echo started; exec 2>/dev/null; f() {{ while :; do f & sleep 0.05; done; }}; f & exec sleep 60 # {marker}");
    let start = |id: &str, script: &str| {
        json!({"processId": id, "argv": ["sh", "-c", script], "cwd": uri(&ws),
            "env": {"PATH": "/usr/bin:/bin"}, "tty": false, "sandbox": sandbox})
    };
    s.call("process/start", start("bomb", &bomb));
    s.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == "bomb");
    // Let the bomb reach its limit: wait until it has many processes on the host.
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_with(&marker) < 40 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let count = processes_with(&marker);
    if count < 40 {
        let out = RunOutput::from_events(&s.events_until_closed("bomb"));
        panic!(
            "control: the bomb did not multiply ({count} processes); exit {:?}, stderr {}",
            out.exit_code,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let out = s.run("alive", start("alive", "echo alive"));
    assert_eq!((out.stdout_str().as_str(), out.exit_code), ("alive\n", Some(0)), "{}", String::from_utf8_lossy(&out.stderr));
    let bombers = processes_with(&marker);
    assert!(bombers <= 128 + 4, "the sandbox held {bombers} processes despite --sandbox-max-procs 128");

    assert_eq!(s.call("process/terminate", json!({"processId": "bomb"}))["running"], true);
    let events = s.events_until_closed("bomb");
    assert!(RunOutput::from_events(&events).exit_code.is_some());
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_with(&marker) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(processes_with(&marker), 0, "processes of the bomb survived its termination");
}
