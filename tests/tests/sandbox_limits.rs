//! Resource limits of sandboxed process trees (issue 17): memory, processes, CPU and wall
//! clock, through a cgroup per tree (as root on CI: cgroup v1 memory, pids and cpu), and
//! the rlimit fallback the unprivileged user gets. Each limit hit is reported as a last
//! stderr chunk before `process/exited`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use executor_tests::unprivileged::{chown_tree, setpriv_args, user_binary};
use executor_tests::RpcClient as _;
use executor_tests::{as_root_and_unprivileged, executor_bin, uri, workspace_write_sandbox, Executor, RunOutput};
use serde_json::{json, Value};

/// `executor --listen stdio ARGS` as root (`None`) or as the test user, in `ws`, after the
/// handshake.
fn serve(user: Option<(u32, u32)>, ws: &Path, args: &[&str]) -> Executor {
    serve_with_info(user, ws, args).0
}

/// [`serve`], with `environment/info`'s limits facts from the handshake.
fn serve_with_info(user: Option<(u32, u32)>, ws: &Path, args: &[&str]) -> (Executor, Value) {
    let mut command = match user {
        None => Command::new(executor_bin()),
        Some(ids) => {
            chown_tree(ids, ws);
            let mut c = Command::new("setpriv");
            c.args(setpriv_args(ids)).arg(user_binary(&executor_bin()));
            c
        }
    };
    command.args(["--listen", "stdio"]).args(args);
    command.env_clear().env("PATH", "/usr/local/bin:/usr/bin:/bin").env("EXECUTOR_LOG", "info").current_dir(ws);
    let mut server = Executor::spawn(command);
    let init = server.handshake();
    let limits = init["result"]["environmentInfo"]["executor"]["facts"]["sandbox"]["limits"].clone();
    assert!(limits.is_object(), "environment/info has no limits facts: {init}");
    (server, limits)
}

fn workspace() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = std::fs::canonicalize(dir.path()).expect("canonical");
    (dir, ws)
}

fn start_params(ws: &Path, argv: &[&str]) -> Value {
    json!({"argv": argv, "cwd": uri(ws), "env": {"PATH": "/usr/bin:/bin"}, "tty": false,
        "sandbox": workspace_write_sandbox(ws)})
}

fn stderr_of(out: &RunOutput) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The seq of the `process/output` chunk holding `text`, and of `process/exited`.
fn seqs_of(events: &[Value], text: &str) -> (Option<u64>, Option<u64>) {
    let chunk = events.iter().find(|e| {
        e["method"] == "process/output"
            && String::from_utf8_lossy(&executor_tests::unb64(e["params"]["chunk"].as_str().unwrap_or(""))).contains(text)
    });
    let exited = events.iter().find(|e| e["method"] == "process/exited");
    (chunk.and_then(|e| e["params"]["seq"].as_u64()), exited.and_then(|e| e["params"]["seq"].as_u64()))
}

fn assert_root() {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root's cgroups (CI runs it as root)");
}

#[test]
fn a_gigabyte_allocation_under_a_128m_memory_limit_is_killed_and_reported() {
    assert_root();
    let (_dir, ws) = workspace();
    let mut s = serve(None, &ws, &["--sandbox-memory-max", "128M"]);
    // Control: a small allocation under the same limit runs and is not reported.
    let small = s.run("small", start_params(&ws, &["python3", "-c", "s = b'x' * (16 << 20); print(len(s))"]));
    assert_eq!((small.stdout_str().as_str(), small.exit_code), ("16777216\n", Some(0)), "{}", stderr_of(&small));
    assert!(!stderr_of(&small).contains("executor: killed"), "{}", stderr_of(&small));

    let hog = "s = b'x' * (1 << 30); print('allocated', len(s))";
    s.call("process/start", with_id("hog", start_params(&ws, &["python3", "-c", hog])));
    let events = s.events_until_closed("hog");
    let out = RunOutput::from_events(&events);
    let stderr = stderr_of(&out);
    assert!(!out.stdout_str().contains("allocated"), "the allocation succeeded: {}", out.stdout_str());
    assert_eq!(out.exit_code, Some(137), "killed by the OOM killer: {stderr}");
    assert_eq!(out.sandbox_denied, Some(false), "the reference's fields keep their meaning");
    let line = "executor: killed: memory limit 128 MiB reached";
    assert!(stderr.ends_with(&format!("{line}\n")), "the last stderr chunk names the limit: {stderr:?}");
    let (chunk, exited) = seqs_of(&events, line);
    assert!(chunk.is_some() && chunk < exited, "the report comes before exited: {chunk:?} {exited:?}");
}

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
print('forked', n, flush=True)
time.sleep(60)
";

#[test]
fn the_process_limit_binds_root_and_the_server_keeps_answering() {
    assert_root();
    let (_dir, ws) = workspace();
    let mut s = serve(None, &ws, &["--sandbox-max-procs", "64"]);
    s.call("process/start", with_id("forker", start_params(&ws, &["python3", "-c", FORKER])));
    let line = s.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == "forker");
    let text = String::from_utf8_lossy(&executor_tests::unb64(line["params"]["chunk"].as_str().unwrap_or(""))).into_owned();
    assert!(text.contains(&format!("refused {}", libc::EAGAIN)), "root's forks were not refused: {text}");
    let forked: usize = text.lines().find_map(|l| l.strip_prefix("forked ")).and_then(|n| n.trim().parse().ok()).unwrap_or(999);
    assert!(forked < 64, "{forked} children under --sandbox-max-procs 64");

    // The tree is at its limit; the server still answers, quickly.
    let asked = Instant::now();
    let alive = s.run("alive", start_params(&ws, &["sh", "-c", "echo alive"]));
    assert_eq!((alive.stdout_str().as_str(), alive.exit_code), ("alive\n", Some(0)), "{}", stderr_of(&alive));
    assert!(asked.elapsed() < Duration::from_secs(5), "the server took {:?} to run a command", asked.elapsed());

    assert_eq!(s.call("process/terminate", json!({"processId": "forker"}))["running"], true);
    let out = RunOutput::from_events(&s.events_until_closed("forker"));
    assert!(stderr_of(&out).contains("executor: refused: process limit 64 reached"), "{}", stderr_of(&out));
}

fn with_id(id: &str, mut params: Value) -> Value {
    params["processId"] = json!(id);
    params
}

/// `sleep 60` under `--sandbox-wall-max 2` is killed at about 2 s, as root (cgroup) and as
/// the test user (the executor's timer needs no cgroup).
fn sleep_is_killed_at_the_wall_limit(user: Option<(u32, u32)>) {
    let (_dir, ws) = workspace();
    let mut s = serve(user, &ws, &["--sandbox-wall-max", "2"]);
    let started = Instant::now();
    s.call("process/start", with_id("sleeper", start_params(&ws, &["sleep", "60"])));
    let events = s.events_until_closed("sleeper");
    let took = started.elapsed();
    let out = RunOutput::from_events(&events);
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(15), "killed after {took:?}");
    assert_eq!(out.exit_code, Some(137), "{}", stderr_of(&out));
    assert!(stderr_of(&out).ends_with("executor: killed: wall limit 2 s reached\n"), "{:?}", stderr_of(&out));
}

as_root_and_unprivileged!(sleep_is_killed_at_the_wall_limit);

/// The tree cgroups of server `pid` in `controller`'s v1 hierarchy.
fn tree_cgroups(pid: u32, controller: &str) -> Vec<PathBuf> {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("server's cgroups");
    let path = own
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':').skip(1);
            parts.next().zip(parts.next())
        })
        .find(|(controllers, _)| controllers.split(',').any(|c| c == controller))
        .map(|(_, path)| path.trim_start_matches('/').to_string())
        .unwrap_or_else(|| panic!("no {controller} hierarchy in {own}"));
    let dir = Path::new("/sys/fs/cgroup").join(controller).join(path);
    let prefix = format!("executor-{pid}-");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && !n.ends_with("-probe")))
        .collect()
}

#[test]
fn the_cgroups_exist_while_the_tree_runs_and_are_gone_after_it_is_reaped() {
    assert_root();
    let (_dir, ws) = workspace();
    let mut s = serve(None, &ws, &["--sandbox-memory-max", "256M", "--sandbox-max-procs", "100", "--sandbox-cpu-max", "50"]);
    let pid = s.pid();
    s.call("process/start", with_id("tree", start_params(&ws, &["sh", "-c", "echo up; sleep 1 & sleep 1 & wait"])));
    s.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == "tree");
    for controller in ["memory", "pids", "cpu"] {
        let dirs = tree_cgroups(pid, controller);
        assert_eq!(dirs.len(), 1, "one {controller} cgroup for the running tree: {dirs:?}");
        let procs = std::fs::read_to_string(dirs[0].join("cgroup.procs")).expect("cgroup.procs");
        assert!(procs.lines().count() >= 3, "the tree (bwrap, its PID 1, sh, sleeps) is in {dirs:?}: {procs}");
    }
    let limit = std::fs::read_to_string(tree_cgroups(pid, "memory")[0].join("memory.limit_in_bytes")).expect("limit");
    assert_eq!(limit.trim(), (256u64 << 20).to_string());
    let out = RunOutput::from_events(&s.events_until_closed("tree"));
    assert_eq!(out.exit_code, Some(0), "{}", stderr_of(&out));
    let deadline = Instant::now() + Duration::from_secs(10);
    let left = || ["memory", "pids", "cpu"].iter().flat_map(|c| tree_cgroups(pid, c)).collect::<Vec<_>>();
    while !left().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(left(), Vec::<PathBuf>::new(), "cgroups left behind after the tree was reaped");
}

/// utime + stime, in clock ticks, of every process whose command line holds `marker`.
fn cpu_ticks_with(marker: &str) -> (u64, usize) {
    let mut ticks = 0;
    let mut count = 0;
    for entry in std::fs::read_dir("/proc").expect("read /proc").filter_map(Result::ok) {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if !String::from_utf8_lossy(&cmdline).contains(marker) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // Fields after the `(comm)`: state is field 3, utime 14 and stime 15.
        let Some((_, rest)) = stat.rsplit_once(") ") else { continue };
        let fields: Vec<&str> = rest.split(' ').collect();
        let field = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        ticks += field(14) + field(15);
        count += 1;
    }
    (ticks, count)
}

#[test]
fn a_busy_loop_under_a_20_percent_cpu_limit_uses_at_most_30_percent_of_a_core() {
    assert_root();
    let (_dir, ws) = workspace();
    let mut s = serve(None, &ws, &["--sandbox-cpu-max", "20"]);
    let marker = format!("busy-marker-{}", std::process::id());
    let script = format!("print('spinning', flush=True)\nwhile True: pass # {marker}");
    s.call("process/start", with_id("busy", start_params(&ws, &["python3", "-c", &script])));
    s.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == "busy");
    let (before, count) = cpu_ticks_with(&marker);
    // bwrap, the sandbox's PID 1 and the loop all carry the marker: the whole tree counts.
    assert!(count >= 1, "the busy loop is not running");
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let (after, _) = cpu_ticks_with(&marker);
    let wall = t0.elapsed().as_secs_f64();
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let used = (after - before) as f64 / hz;
    assert!(used <= 0.30 * wall, "the loop used {used:.2} s of CPU in {wall:.2} s under --sandbox-cpu-max 20");
    assert_eq!(s.call("process/terminate", json!({"processId": "busy"}))["running"], true);
    let out = RunOutput::from_events(&s.events_until_closed("busy"));
    // The quota engaged (not just a loaded machine): the cgroup throttled the tree.
    assert!(stderr_of(&out).contains("executor: throttled: cpu limit 20% of one core reached"), "{}", stderr_of(&out));
}

fn fact<'a>(limits: &'a Value, name: &str) -> &'a Value {
    limits["limits"].as_array().and_then(|l| l.iter().find(|f| f["limit"] == name)).unwrap_or_else(|| panic!("no {name} in {limits}"))
}

/// What environment/info says holds is what holds: as root the cgroup binds the tree and
/// the hog is killed; as the test user (no writable cgroup) the facts say memory is only
/// RLIMIT_AS per process and cpu is not enforced, and the allocation fails inside.
fn the_memory_limit_holds_as_the_facts_say(user: Option<(u32, u32)>) {
    let (_dir, ws) = workspace();
    let (mut s, limits) = serve_with_info(user, &ws, &["--sandbox-memory-max", "128M", "--sandbox-cpu-max", "20"]);
    let memory = fact(&limits, "memory");
    assert_eq!(memory["value"], "128 MiB", "{limits}");
    let hog = "s = b'x' * (1 << 30); print('allocated', len(s))";
    let out = s.run("hog", start_params(&ws, &["python3", "-c", hog]));
    let stderr = stderr_of(&out);
    assert!(!out.stdout_str().contains("allocated"), "the allocation succeeded: {}", out.stdout_str());
    match user {
        None => {
            assert_eq!(limits["mechanism"], "cgroup v1", "{limits}");
            assert_eq!(memory["holdsForTree"], true, "{limits}");
            assert_eq!(fact(&limits, "cpu")["holdsForTree"], true, "{limits}");
            assert_eq!(limits["notBindingTree"], json!([]), "{limits}");
            assert!(stderr.contains("executor: killed: memory limit 128 MiB reached"), "{stderr}");
        }
        Some(_) => {
            assert_eq!(limits["mechanism"], "none (rlimits only)", "{limits}");
            assert_eq!(memory["holdsForTree"], false, "{limits}");
            assert!(memory["mechanism"].as_str().is_some_and(|m| m.contains("RLIMIT_AS")), "{limits}");
            let cpu = fact(&limits, "cpu");
            assert!(cpu["mechanism"].as_str().is_some_and(|m| m.starts_with("NOT ENFORCED")), "{limits}");
            assert_eq!(limits["notBindingTree"], json!(["memory", "cpu"]), "{limits}");
            assert!(stderr.contains("MemoryError"), "RLIMIT_AS refused the allocation: {stderr}");
            assert!(!stderr.contains("executor: killed"), "no kill is claimed without a cgroup: {stderr}");
        }
    }
}

as_root_and_unprivileged!(the_memory_limit_holds_as_the_facts_say);

/// `executorLimits` in `process/start` tightens the operator's limits and never loosens
/// them; a misspelt or zero limit is refused, as is a limit for an unsandboxed process.
#[test]
fn per_request_limits_are_capped_by_the_operators() {
    assert_root();
    let (_dir, ws) = workspace();
    let mut s = serve(None, &ws, &["--sandbox-memory-max", "256M", "--sandbox-wall-max", "30"]);
    let pid = s.pid();
    let memory_limit_while_running = |s: &mut Executor, id: &str, limits: Value| -> String {
        let mut params = with_id(id, start_params(&ws, &["sh", "-c", "echo up; read line"]));
        params["pipeStdin"] = json!(true);
        params["executorLimits"] = limits;
        s.call("process/start", params);
        s.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == id);
        let dirs = tree_cgroups(pid, "memory");
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        let limit = std::fs::read_to_string(dirs[0].join("memory.limit_in_bytes")).expect("limit").trim().to_string();
        s.call("process/terminate", json!({"processId": id}));
        s.events_until_closed(id);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !tree_cgroups(pid, "memory").is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        limit
    };
    assert_eq!(memory_limit_while_running(&mut s, "lower", json!({"memoryBytes": 64u64 << 20})), (64u64 << 20).to_string());
    assert_eq!(memory_limit_while_running(&mut s, "higher", json!({"memoryBytes": 1u64 << 30})), (256u64 << 20).to_string());

    // A wall limit below the operator's applies.
    let started = Instant::now();
    let mut params = with_id("short", start_params(&ws, &["sleep", "60"]));
    params["executorLimits"] = json!({"wallSeconds": 1});
    let out = s.run("short", params);
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    assert!(stderr_of(&out).ends_with("executor: killed: wall limit 1 s reached\n"), "{:?}", stderr_of(&out));

    for (limits, why) in [(json!({"memoryByte": 1}), "unknown field"), (json!({"maxProcs": 0}), "above 0")] {
        let mut params = with_id("bad", start_params(&ws, &["true"]));
        params["executorLimits"] = limits;
        let (code, message) = s.call_err("process/start", params);
        assert_eq!(code, -32602, "{message}");
        assert!(message.contains(why), "{message}");
    }
    let (code, message) = s.call_err(
        "process/start",
        json!({"processId": "plain", "argv": ["true"], "cwd": uri(&ws), "env": {}, "tty": false, "executorLimits": {"wallSeconds": 5}}),
    );
    assert_eq!(code, -32602, "{message}");
    assert!(message.contains("sandboxed processes only"), "{message}");
}

/// The one-shot `executor sandbox` command applies the same limits as the server.
#[test]
fn the_sandbox_command_kills_at_the_wall_limit_and_says_so() {
    let (_dir, ws) = workspace();
    let started = Instant::now();
    let out = Command::new(executor_bin())
        .args(["sandbox", "--sandbox-wall-max", "1", "--cwd"])
        .arg(&ws)
        .args(["--", "sleep", "60"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("run executor sandbox");
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(137), "{stderr}");
    assert!(stderr.ends_with("executor: killed: wall limit 1 s reached\n"), "{stderr:?}");
}

/// `--limit-unsandboxed`: a process without a sandbox gets the same limits.
#[test]
fn limit_unsandboxed_kills_an_unsandboxed_hog_and_sleeper() {
    assert_root();
    let (_dir, ws) = workspace();
    let (mut s, limits) = serve_with_info(None, &ws, &["--limit-unsandboxed", "--sandbox-memory-max", "128M", "--sandbox-wall-max", "2"]);
    assert_eq!(limits["unsandboxedLimited"], true, "{limits}");
    let plain = |argv: &[&str]| json!({"argv": argv, "cwd": uri(&ws), "env": {"PATH": "/usr/bin:/bin"}, "tty": false});
    let hog = s.run("hog", plain(&["python3", "-c", "s = b'x' * (1 << 30); print('allocated', len(s))"]));
    assert!(!hog.stdout_str().contains("allocated"), "{}", hog.stdout_str());
    assert!(stderr_of(&hog).ends_with("executor: killed: memory limit 128 MiB reached\n"), "{:?}", stderr_of(&hog));
    let started = Instant::now();
    let sleeper = s.run("sleeper", plain(&["sleep", "60"]));
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    assert_eq!(sleeper.exit_code, Some(137));
    assert!(stderr_of(&sleeper).ends_with("executor: killed: wall limit 2 s reached\n"), "{:?}", stderr_of(&sleeper));
}

/// `sandbox/report {processId}` names the limit a tree hit, and says what it does not
/// observe rather than answering an empty success.
#[test]
fn sandbox_report_names_the_limit_hit_and_what_it_does_not_observe() {
    let (_dir, ws) = workspace();
    let (mut s, limits) = serve_with_info(None, &ws, &["--sandbox-wall-max", "1"]);
    assert!(limits["reportMethod"].as_str().is_some_and(|m| m.starts_with("sandbox/report")), "{limits}");
    s.run("sleeper", start_params(&ws, &["sleep", "60"]));
    let report = s.call("sandbox/report", json!({"processId": "sleeper"}));
    assert_eq!(report["exited"], true, "{report}");
    assert_eq!(report["sandboxed"], true, "{report}");
    assert_eq!(report["limits"], json!([{"limit": "wall", "message": "executor: killed: wall limit 1 s reached"}]), "{report}");
    assert_eq!(report["observed"], json!(["limits", "seccomp-refused syscalls", "refused network sockets"]), "{report}");
    assert_eq!(report["syscalls"], json!([]), "`sleep` tries nothing the filter refuses: {report}");
    assert_eq!(report["network"], json!([]), "{report}");
    let not_observed: Vec<&str> =
        report["notObserved"].as_array().map(|a| a.iter().filter_map(|n| n["what"].as_str()).collect()).unwrap_or_default();
    assert!(not_observed.contains(&"writes refused under read-only or protected paths"), "{report}");

    let fine = s.run("fine", start_params(&ws, &["true"]));
    assert_eq!(fine.exit_code, Some(0));
    let report = s.call("sandbox/report", json!({"processId": "fine"}));
    assert_eq!(report["limits"], json!([]), "{report}");

    let plain = json!({"argv": ["true"], "cwd": uri(&ws), "env": {}, "tty": false});
    s.run("plain", plain);
    let report = s.call("sandbox/report", json!({"processId": "plain"}));
    assert_eq!(report["observed"], json!([]), "nothing is observed without a sandbox or limits: {report}");
    assert!(report["notObserved"].as_array().is_some_and(|a| !a.is_empty()), "{report}");

    let (code, message) = s.call_err("sandbox/report", json!({"processId": "nosuch"}));
    assert!(code == -32600 || code == -32602, "{code} {message}");
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server that ends on stdin EOF kills its trees and removes their cgroups; the
/// cgroups of a server killed with SIGKILL (which cannot clean up) are removed by the
/// next server that starts.
#[test]
fn no_cgroup_outlives_its_server() {
    assert_root();
    let (_dir, ws) = workspace();
    let running_tree = |s: &mut Executor| -> Vec<PathBuf> {
        s.call("process/start", with_id("tree", start_params(&ws, &["sh", "-c", "echo up; exec sleep 60"])));
        s.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == "tree");
        let dirs: Vec<PathBuf> = ["memory", "pids"].iter().flat_map(|c| tree_cgroups(s.pid(), c)).collect();
        assert_eq!(dirs.len(), 2, "{dirs:?}");
        dirs
    };
    let args = ["--sandbox-memory-max", "256M", "--sandbox-max-procs", "4096"];

    let mut s = serve(None, &ws, &args);
    let dirs = running_tree(&mut s);
    s.close_stdin();
    s.wait_exit();
    assert!(dirs.iter().all(|d| !d.exists()), "left behind at stdin EOF: {dirs:?}");

    let mut s = serve(None, &ws, &args);
    let dirs = running_tree(&mut s);
    s.child.kill().expect("SIGKILL the server");
    s.child.wait().expect("reap the server");
    // bwrap dies with its parent; its cgroups stay, empty (the control).
    wait_until("the tree to die with its server", || {
        dirs.iter().all(|d| std::fs::read_to_string(d.join("cgroup.procs")).is_ok_and(|p| p.trim().is_empty()))
    });
    assert!(dirs.iter().all(|d| d.exists()), "{dirs:?}");
    let _next = serve(None, &ws, &args);
    assert!(dirs.iter().all(|d| !d.exists()), "the next server did not remove the stale cgroups: {dirs:?}");
}

fn processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(marker))
        .count()
}

/// A real fork bomb in a root executor's sandbox: the pids cgroup holds it at the limit,
/// the server answers the next request within 1 s, and terminate takes the bomb down.
#[test]
fn a_root_fork_bomb_is_held_at_the_process_limit() {
    assert_root();
    let (_dir, ws) = workspace();
    let mut s = serve(None, &ws, &["--sandbox-max-procs", "64"]);
    let marker = format!("root-bomb-marker-{}", std::process::id());
    let bomb = format!("echo started; exec 2>/dev/null; f() {{ while :; do f & sleep 0.05; done; }}; f & exec sleep 60 # {marker}");
    s.call("process/start", with_id("bomb", start_params(&ws, &["sh", "-c", &bomb])));
    s.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == "bomb");
    // Let it reach its limit: a tree this size exists only when it multiplied.
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_with(&marker) < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let multiplied = processes_with(&marker);
    assert!(multiplied >= 20, "control: the bomb did not multiply ({multiplied} processes)");
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    let answer = s.call("environment/status", json!({}));
    assert!(asked.elapsed() < Duration::from_secs(1), "answered after {:?}: {answer}", asked.elapsed());
    let alive = s.run("alive", start_params(&ws, &["sh", "-c", "echo alive"]));
    assert_eq!((alive.stdout_str().as_str(), alive.exit_code), ("alive\n", Some(0)), "{}", stderr_of(&alive));
    let bombers = processes_with(&marker);
    assert!(bombers <= 64, "the sandbox held {bombers} processes despite --sandbox-max-procs 64");

    assert_eq!(s.call("process/terminate", json!({"processId": "bomb"}))["running"], true);
    let out = RunOutput::from_events(&s.events_until_closed("bomb"));
    assert!(stderr_of(&out).contains("executor: refused: process limit 64 reached"), "{}", stderr_of(&out));
    wait_until("the bomb to be gone", || processes_with(&marker) == 0);
}

/// A PTY process has no separate stderr: the limit line comes on the terminal.
#[test]
fn a_pty_process_gets_the_limit_line_on_its_terminal() {
    let (_dir, ws) = workspace();
    let mut s = serve(None, &ws, &["--sandbox-wall-max", "1"]);
    let mut params = start_params(&ws, &["sleep", "60"]);
    params["tty"] = json!(true);
    let out = s.run("tty", params);
    assert_eq!(out.exit_code, Some(137));
    let pty = String::from_utf8_lossy(&out.pty).into_owned();
    assert!(pty.contains("executor: killed: wall limit 1 s reached"), "{pty:?}");
    assert!(out.stderr.is_empty(), "{:?}", stderr_of(&out));
}

/// Without a pids cgroup (the test user), a request's `maxProcs` still binds: it reaches
/// the sandbox's RLIMIT_NPROC.
#[test]
fn a_requests_process_limit_binds_without_a_cgroup() {
    let (_dir, ws) = workspace();
    let (mut s, limits) = serve_with_info(Some(executor_tests::unprivileged::test_user_ids()), &ws, &[]);
    // No operator limit: the server did not probe cgroupfs at start, and says so.
    assert_eq!(limits["mechanism"], "not probed (no memory, process or cpu limit is set)", "{limits}");
    let mut params = with_id("forker", start_params(&ws, &["python3", "-c", FORKER]));
    params["executorLimits"] = json!({"maxProcs": 16});
    s.call("process/start", params);
    let line = s.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == "forker");
    let text = String::from_utf8_lossy(&executor_tests::unb64(line["params"]["chunk"].as_str().unwrap_or(""))).into_owned();
    let forked: usize = text.lines().find_map(|l| l.strip_prefix("forked ")).and_then(|n| n.trim().parse().ok()).unwrap_or(999);
    assert!(forked < 16, "{forked} children under executorLimits.maxProcs 16: {text}");
    s.call("process/terminate", json!({"processId": "forker"}));
    s.events_until_closed("forker");
}

/// `executor doctor` says for each limit what enforces it: everything binds the tree for
/// root (cgroup v1 here), memory and cpu do not for the test user (no writable cgroup).
fn doctor_reports_which_limits_hold(user: Option<(u32, u32)>) {
    let mut command = match user {
        None => Command::new(executor_bin()),
        Some(ids) => {
            let mut c = Command::new("setpriv");
            c.args(setpriv_args(ids)).arg(user_binary(&executor_bin()));
            c
        }
    };
    let out = command
        .args(["doctor", "--json", "--sandbox-memory-max", "1G", "--sandbox-cpu-max", "50"])
        .current_dir("/")
        .output()
        .expect("run executor doctor");
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("doctor --json: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    let limits = &report["limits"];
    assert_eq!(fact(limits, "memory")["value"], "1 GiB", "{limits}");
    let expected = if user.is_none() { json!([]) } else { json!(["memory", "cpu"]) };
    assert_eq!(limits["notBindingTree"], expected, "{limits}");
    let human = match user {
        None => Command::new(executor_bin()).args(["doctor", "--sandbox-cpu-max", "50"]).output(),
        Some(ids) => Command::new("setpriv")
            .args(setpriv_args(ids))
            .arg(user_binary(&executor_bin()))
            .args(["doctor", "--sandbox-cpu-max", "50"])
            .current_dir("/")
            .output(),
    }
    .expect("run executor doctor");
    let text = String::from_utf8_lossy(&human.stdout);
    let mark = if user.is_none() { "[ok] cpu 50% of one core" } else { "[!!] cpu 50% of one core: NOT ENFORCED" };
    assert!(text.contains(mark), "{text}");
}

as_root_and_unprivileged!(doctor_reports_which_limits_hold);

/// Without a cpu cgroup, `--sandbox-cpu-max` with `--sandbox-wall-max` is a CPU-time
/// budget (RLIMIT_CPU, PERCENT × wall seconds): a busy loop dies when it has used it,
/// before the wall limit, and the facts call it a budget, not a rate.
#[test]
fn without_a_cgroup_the_cpu_limit_is_a_cpu_time_budget() {
    let (_dir, ws) = workspace();
    let ids = executor_tests::unprivileged::test_user_ids();
    // A 1 s CPU budget (5% of 20 s): small, so that a loaded machine still spends it well
    // within the wall limit.
    let (mut s, limits) = serve_with_info(Some(ids), &ws, &["--sandbox-cpu-max", "5", "--sandbox-wall-max", "20"]);
    let cpu = fact(&limits, "cpu");
    assert_eq!(cpu["holdsForTree"], false, "{limits}");
    assert!(cpu["mechanism"].as_str().is_some_and(|m| m.starts_with("RLIMIT_CPU per process: 1 s")), "{limits}");
    let out = s.run("busy", start_params(&ws, &["python3", "-c", "while True: pass"]));
    assert_eq!(out.exit_code, Some(137), "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains("wall limit"), "the wall limit fired first: {}", stderr_of(&out));
}
