//! Deployment over SSH (docs/deploy-ssh.md): a real sshd on loopback, a real ssh client,
//! `executor --listen stdio` as an unprivileged user on the "remote" side.
//!
//! Needs what ci/setup.d/sshd.sh sets up (openssh-server, the `executor-ssh` user, keys and
//! an sshd config under /var/lib/executor-tests/ssh) and root (sshd must run as root).
//! Anything missing is a loud failure, never a pass.

use executor_tests::RpcClient as _;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use executor_tests::deploy::ssh_argv;
use executor_tests::{b64, executor_bin, sh, unb64, uri, wait_pid_gone, Executor, TIMEOUT};
use serde_json::json;

const SSH_DIR: &str = "/var/lib/executor-tests/ssh";
const SSH_USER: &str = "executor-ssh";
const SSHD: &str = "/usr/sbin/sshd";

/// The test's own sshd, killed when dropped.
struct Sshd {
    child: Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn require(path: &Path) {
    assert!(
        path.exists(),
        "{} is missing: run `bash ci/setup-tests.sh` (ci/setup.d/sshd.sh installs sshd and the test keys)",
        path.display()
    );
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

fn start_sshd() -> Sshd {
    assert!(nix::unistd::geteuid().is_root(), "the SSH test runs its own sshd and needs root");
    for file in ["sshd_config", "ssh_host_ed25519_key", "id_ed25519", "authorized_keys"] {
        require(&Path::new(SSH_DIR).join(file));
    }
    require(Path::new(SSHD));
    let port = free_port();
    let config = format!("{SSH_DIR}/sshd_config");
    let child = Command::new(SSHD)
        .args(["-D", "-e", "-f", &config, "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}"));
    let mut sshd = Sshd { child, port };
    let deadline = Instant::now() + TIMEOUT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = sshd.child.try_wait() {
            panic!("sshd exited at start-up with {status} (see its log above)");
        }
        assert!(Instant::now() < deadline, "sshd did not listen on port {port} within {TIMEOUT:?}");
        thread::sleep(Duration::from_millis(20));
    }
    sshd
}

/// A world-readable copy of the executor binary, since the test user cannot read the
/// build directory.
struct RemoteBinary {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn remote_binary() -> RemoteBinary {
    let dir = tempfile::Builder::new().prefix("executor-ssh-bin").tempdir_in("/tmp").expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let path = dir.path().join("executor");
    std::fs::copy(executor_bin(), &path).expect("copy the executor binary");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod binary");
    RemoteBinary { _dir: dir, path }
}

/// `ssh ... executor-ssh@127.0.0.1 EXECUTOR --listen stdio`, as docs/deploy-ssh.md shows it.
fn ssh_command(sshd: &Sshd, executor: &Path, scratch: &Path) -> Command {
    let host_key = std::fs::read_to_string(format!("{SSH_DIR}/ssh_host_ed25519_key.pub")).expect("host key");
    let mut fields = host_key.split_whitespace();
    let (Some(kind), Some(key)) = (fields.next(), fields.next()) else { panic!("malformed host key {host_key:?}") };
    let known_hosts = scratch.join("known_hosts");
    std::fs::write(&known_hosts, format!("[127.0.0.1]:{} {kind} {key}\n", sshd.port)).expect("known_hosts");
    let argv = ssh_argv(
        &sshd.port.to_string(),
        &format!("{SSH_DIR}/id_ed25519"),
        known_hosts.to_str().expect("utf8"),
        &format!("{SSH_USER}@127.0.0.1"),
        executor.to_str().expect("utf8"),
    );
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    command
}

#[test]
fn full_session_over_ssh_and_children_die_with_the_connection() {
    let sshd = start_sshd();
    let binary = remote_binary();
    let scratch = tempfile::tempdir().expect("tempdir");
    let user = nix::unistd::User::from_name(SSH_USER)
        .expect("user database")
        .unwrap_or_else(|| panic!("user {SSH_USER} is missing: run `bash ci/setup-tests.sh`"));

    let mut remote = Executor::spawn(ssh_command(&sshd, &binary.path, scratch.path()));
    let init = remote.handshake();
    assert!(init["result"]["sessionId"].is_string(), "{init}");

    // A process with output, running as the unprivileged user on the far side.
    let out = remote.run("id", sh("id -un; echo to-stderr >&2; exit 5"));
    assert_eq!(out.stdout_str(), format!("{SSH_USER}\n"));
    assert_eq!(out.stderr, b"to-stderr\n");
    assert_eq!(out.exit_code, Some(5));

    // fs methods: the file is created by the remote user.
    let dir = PathBuf::from(format!("/tmp/executor-ssh-fs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = dir.join("hello.txt");
    remote.call("fs/createDirectory", json!({"path": uri(&dir), "recursive": true}));
    remote.call("fs/writeFile", json!({"path": uri(&file), "dataBase64": b64(b"over ssh\n")}));
    let read = remote.call("fs/readFile", json!({"path": uri(&file)}));
    assert_eq!(unb64(read["dataBase64"].as_str().expect("dataBase64")), b"over ssh\n");
    let owner = std::fs::metadata(&file).expect("file exists on the host").uid();
    assert_eq!(owner, user.uid.as_raw(), "the file must belong to {SSH_USER}");

    // A sandboxed process (the unprivileged user's own user namespace): it may write its
    // workspace, not a place the same user could write on the host without the sandbox.
    let outside = PathBuf::from(format!("/var/tmp/executor-ssh-outside-{}", std::process::id()));
    let _ = std::fs::remove_file(&outside);
    let sandbox = json!({"permissions": {"type": "managed", "file_system": {"type": "restricted", "entries": [
        {"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"},
        {"path": {"type": "path", "path": uri(&dir)}, "access": "write"}]}, "network": "restricted"},
        "windowsSandboxLevel": "disabled"});
    let script = format!("echo inside > in.txt && echo ok; echo escaped > {} || echo denied", outside.display());
    let started = remote.call(
        "process/start",
        json!({"processId": "boxed", "argv": ["sh", "-c", script],
        "cwd": uri(&dir), "env": {"PATH": "/usr/bin:/bin"}, "tty": false, "sandbox": sandbox}),
    );
    assert_eq!(started["sandboxType"], json!("linuxSeccomp"));
    let out = executor_tests::RunOutput::from_events(&remote.events_until_closed("boxed"));
    assert_eq!(out.stdout_str(), "ok\ndenied\n", "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((out.exit_code, out.sandbox_denied), (Some(0), Some(false)));
    assert_eq!(std::fs::read(dir.join("in.txt")).expect("written inside"), b"inside\n");
    assert!(!outside.exists(), "the sandboxed process wrote {} on the host", outside.display());
    let _ = std::fs::remove_dir_all(&dir);

    // A long-running child; then the SSH connection goes away (the client is killed, as
    // when a laptop drops off the network): the remote executor and its children must go.
    remote.call(
        "process/start",
        json!({"processId": "sleeper", "argv": ["sh", "-c", "echo $$ $PPID; exec sleep 1000"],
        "cwd": "file:///tmp", "env": {"PATH": "/usr/bin:/bin"}, "tty": false}),
    );
    let event = remote.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == json!("sleeper"));
    let text = String::from_utf8(unb64(event["params"]["chunk"].as_str().expect("chunk"))).expect("utf8");
    let pids: Vec<i32> = text.split_whitespace().map(|p| p.parse().expect("pid")).collect();
    let (child_pid, executor_pid) = (pids[0], pids[1]);
    assert!(executor_tests::pid_alive(child_pid));
    remote.child.kill().expect("kill the ssh client");
    let _ = remote.child.wait();
    assert!(wait_pid_gone(child_pid), "remote child {child_pid} survived the closed SSH connection");
    assert!(wait_pid_gone(executor_pid), "remote executor {executor_pid} survived the closed SSH connection");
}

#[test]
fn closing_stdin_over_ssh_ends_the_remote_executor() {
    let sshd = start_sshd();
    let binary = remote_binary();
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut remote = Executor::spawn(ssh_command(&sshd, &binary.path, scratch.path()));
    remote.handshake();
    remote.call(
        "process/start",
        json!({"processId": "sleeper", "argv": ["sh", "-c", "echo $$; exec sleep 1000"],
        "cwd": "file:///tmp", "env": {"PATH": "/usr/bin:/bin"}, "tty": false}),
    );
    let event = remote.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == json!("sleeper"));
    let text = String::from_utf8(unb64(event["params"]["chunk"].as_str().expect("chunk"))).expect("utf8");
    let child_pid: i32 = text.trim().parse().expect("pid");
    // A clean end: EOF on the executor's stdin through the SSH channel.
    remote.close_stdin();
    let status = remote.wait_exit();
    assert!(status.success(), "ssh (and the remote executor) should exit 0 on EOF: {status}");
    assert!(wait_pid_gone(child_pid), "remote child {child_pid} survived stdin EOF");
}
