//! `sandbox/report` names what the seccomp filter refused (issue 17 item 4): the calls
//! by name with exact counts, refused sockets by family, per process, with the command
//! still seeing the EPERM it always got. Root and the unprivileged `executor-test` user,
//! over the real stdio transport.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};

use executor_tests::unprivileged::{chown_tree, serve_stdio_as};
use executor_tests::RpcClient as _;
use executor_tests::{uri, workspace_write_sandbox, Executor};
use serde_json::{json, Value};

fn workspace(user: Option<(u32, u32)>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix("executor-report-").tempdir().unwrap();
    let ws = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::set_permissions(&ws, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    if let Some(ids) = user {
        chown_tree(ids, &ws);
    }
    (dir, ws)
}

fn python(ws: &Path, script: &str) -> Value {
    json!({"argv": ["python3", "-c", script], "cwd": uri(ws), "env": {"PATH": "/usr/bin:/bin"}, "tty": false,
        "sandbox": workspace_write_sandbox(ws)})
}

/// Tries ptrace once, perf_event_open twice, an AF_INET and an AF_INET6 socket, and an
/// AF_UNIX socketpair (allowed), printing what each call returned.
const PROBES: &str = r#"
import ctypes, platform, socket
libc = ctypes.CDLL(None, use_errno=True)
perf = {"x86_64": 298, "aarch64": 241}[platform.machine()]
r = libc.ptrace(0, 0, 0, 0); print("ptrace", r, ctypes.get_errno())
for _ in range(2):
    r = libc.syscall(perf, 0, 0, -1, -1, 0); print("perf", r, ctypes.get_errno())
for fam in (socket.AF_INET, socket.AF_INET6):
    try:
        socket.socket(fam); print("socket allowed")
    except OSError as e:
        print("socket", e.errno)
a, b = socket.socketpair(); print("socketpair ok")
"#;

fn count_of(list: &Value, key: &str, value: &str) -> Option<u64> {
    list.as_array()?.iter().find(|e| e[key] == value).and_then(|e| e["count"].as_u64())
}

fn report(s: &mut Executor, id: &str) -> Value {
    s.call("sandbox/report", json!({"processId": id}))
}

fn refused_calls_are_named_and_counted(user: Option<(u32, u32)>) {
    let (_dir, ws) = workspace(user);
    let mut s = serve_stdio_as(user, &ws, &[]);
    let out = s.run("probes", python(&ws, PROBES));
    let stdout = out.stdout_str();
    // The command sees what the filter always answered.
    let eperm = libc::EPERM;
    for line in [format!("ptrace -1 {eperm}"), format!("perf -1 {eperm}"), format!("socket {eperm}"), "socketpair ok".into()] {
        assert!(stdout.contains(&line), "{line:?} missing: {stdout} {:?}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(out.exit_code, Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    let r = report(&mut s, "probes");
    assert_eq!(r["exited"], true, "{r}");
    let observed: Vec<&str> = r["observed"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(observed.contains(&"seccomp-refused syscalls") && observed.contains(&"refused network sockets"), "{r}");
    assert_eq!(count_of(&r["syscalls"], "name", "ptrace"), Some(1), "{r}");
    assert_eq!(count_of(&r["syscalls"], "name", "perf_event_open"), Some(2), "{r}");
    assert_eq!(count_of(&r["syscalls"], "name", "socket"), Some(2), "{r}");
    assert_eq!(count_of(&r["syscalls"], "name", "socketpair"), None, "the allowed socketpair is not a refusal: {r}");
    assert_eq!(count_of(&r["network"], "family", "AF_INET"), Some(1), "{r}");
    assert_eq!(count_of(&r["network"], "family", "AF_INET6"), Some(1), "{r}");
    assert!(r["network"].as_array().unwrap().iter().all(|e| e["call"] == "socket"), "{r}");

    // Per process: the next one refused nothing, and says so with empty lists. (Not
    // python: without HOME its start-up looks the user up, and glibc tries nscd's socket
    // with a `connect` the filter refuses.)
    let mut quiet = python(&ws, "");
    quiet["argv"] = json!(["echo", "fine"]);
    let quiet = s.run("quiet", quiet);
    assert_eq!(quiet.stdout_str(), "fine\n");
    let r = report(&mut s, "quiet");
    assert_eq!((r["syscalls"].clone(), r["network"].clone()), (json!([]), json!([])), "{r}");
    assert!(r["observed"].as_array().unwrap().contains(&json!("seccomp-refused syscalls")), "{r}");
}

/// Many refusals in a row are all counted (nothing lost between PID 1 and the
/// executor), and the report can be read while the process still runs.
fn a_flood_of_refusals_is_counted_exactly(user: Option<(u32, u32)>) {
    let (_dir, ws) = workspace(user);
    let mut s = serve_stdio_as(user, &ws, &[]);
    let script = "import ctypes, sys, time\nlibc = ctypes.CDLL(None)\nfor _ in range(20000): libc.ptrace(0, 0, 0, 0)\nprint('done', flush=True)\nsys.stdin.read()";
    let mut params = python(&ws, script);
    params["processId"] = json!("flood");
    params["pipeStdin"] = json!(true);
    s.call("process/start", params);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let live = loop {
        let r = report(&mut s, "flood");
        if count_of(&r["syscalls"], "name", "ptrace") == Some(20000) {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "the live report never reached 20000 ptrace refusals: {r}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(live["exited"], false, "the report was read while the process ran: {live}");
    s.call("process/terminate", json!({"processId": "flood"}));
}

/// The create guard and the refusal count share the command's one listener: both work
/// in the same process.
fn guard_and_refusals_work_together(user: Option<(u32, u32)>) {
    let (_dir, ws) = workspace(user);
    let mut s = serve_stdio_as(user, &ws, &[]);
    let script = "import ctypes, os\nlibc = ctypes.CDLL(None)\nlibc.ptrace(0, 0, 0, 0)\n\
                  try:\n    os.mkdir('.git'); print('made .git')\nexcept OSError as e:\n    print('mkdir', e.errno)\n\
                  os.mkdir('src'); print('made src')";
    let out = s.run("both", python(&ws, script));
    let stdout = out.stdout_str();
    assert!(
        stdout.contains(&format!("mkdir {}", libc::EROFS)) && stdout.contains("made src"),
        "{stdout} {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!ws.join(".git").exists() && ws.join("src").is_dir());
    let r = report(&mut s, "both");
    assert_eq!(count_of(&r["syscalls"], "name", "ptrace"), Some(1), "{r}");
    assert_eq!(count_of(&r["syscalls"], "name", "mkdir"), None, "a guard refusal is not a seccomp refusal: {r}");
}

executor_tests::as_root_and_unprivileged!(
    refused_calls_are_named_and_counted,
    a_flood_of_refusals_is_counted_exactly,
    guard_and_refusals_work_together
);
