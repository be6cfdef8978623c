//! Sandbox escape tests (DESIGN.md §5, the categories that apply to processes).
//!
//! Each test runs the real `executor sandbox -- CMD` twice: as root, and as the
//! unprivileged user `executor-test` (created by ci/setup-sandbox-users.sh). Every
//! attack is judged by host state afterwards or by the exact errno a layer produces,
//! and is paired with a control that shows the same action works where it is allowed,
//! so a test cannot pass because the action was impossible anyway.
//!
//! Binary: `$EXECUTOR_BIN`, else `<target>/<profile>/executor` next to this test's
//! `deps/` directory (build it first: `cargo build -p executor`). Launcher: the
//! `$EXECUTOR_TEST_BWRAP` value (`system`, or `bundled` once the launcher branch is in)
//! is passed as `--bwrap`.
//!
//! The unprivileged variants FAIL (not skip) when the user is missing or cannot create
//! user namespaces on this host.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use executor_tests::unprivileged::{chown_tree, setpriv_args, test_user_ids, user_binary};

const PY: &str = "/usr/bin/python3";

// ------------------------------------------------------------------------------------
// Local harness (the unprivileged user: executor_tests::unprivileged).
// ------------------------------------------------------------------------------------

fn built_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("EXECUTOR_BIN") {
        return PathBuf::from(p);
    }
    let me = std::env::current_exe().unwrap();
    let profile_dir = me.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("executor");
    assert!(bin.is_file(), "executor binary not found at {} (run `cargo build -p executor` first, or set EXECUTOR_BIN)", bin.display());
    bin
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

fn out(o: Output) -> Out {
    use std::os::unix::process::ExitStatusExt;
    Out {
        code: o.status.code().unwrap_or_else(|| 128 + o.status.signal().unwrap_or(0)),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Who runs the executor.
struct Sb {
    user: Option<(u32, u32)>,
}

/// A scratch tree: `ws` (the workspace, writable in the sandbox) and `outside`
/// (writable on the host by the same user, not in the sandbox). Not under a writable
/// /tmp in the sandbox because tests use `--policy read-only --writable ws`.
struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
    ws: PathBuf,
    outside: PathBuf,
}

impl Sb {
    fn root() -> Self {
        Sb { user: None }
    }
    fn user() -> Self {
        Sb { user: Some(test_user_ids()) }
    }
    fn is_root(&self) -> bool {
        self.user.is_none()
    }

    fn scratch(&self) -> Scratch {
        let dir = tempfile::Builder::new().prefix("executor-sbx-").tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let ws = root.join("ws");
        let outside = root.join("outside");
        std::fs::create_dir(&ws).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), "TOPSECRET\n").unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = Scratch { _dir: dir, root, ws, outside };
        self.own(&s.root);
        s
    }

    /// Give a host path to the test user, so that only the sandbox can stop its writes.
    fn own(&self, p: &Path) {
        if let Some(ids) = self.user {
            chown_tree(ids, p);
        }
    }

    fn base_cmd(&self, program: &Path) -> Command {
        let mut c = match self.user {
            None => Command::new(program),
            Some(ids) => {
                let mut c = Command::new("setpriv");
                c.args(setpriv_args(ids)).arg(program);
                c
            }
        };
        c.env_clear().env("PATH", "/usr/local/bin:/usr/bin:/bin").env("LANG", "C.UTF-8").stdin(Stdio::null());
        c
    }

    fn exe(&self) -> PathBuf {
        if self.is_root() {
            built_binary()
        } else {
            user_binary(&built_binary()).clone()
        }
    }

    /// `executor sandbox OPTS --cwd CWD -- ARGV`
    fn sandbox(&self, opts: &[&str], cwd: &Path, argv: &[&str]) -> Out {
        let mut c = self.base_cmd(&self.exe());
        c.arg("sandbox");
        if let Ok(b) = std::env::var("EXECUTOR_TEST_BWRAP") {
            c.args(["--bwrap", &b]);
        }
        c.args(opts).arg("--cwd").arg(cwd).arg("--").args(argv);
        out(c.output().unwrap())
    }

    fn sh(&self, opts: &[&str], cwd: &Path, script: &str) -> Out {
        self.sandbox(opts, cwd, &["/bin/sh", "-c", script])
    }

    fn py(&self, opts: &[&str], cwd: &Path, code: &str) -> Out {
        self.sandbox(opts, cwd, &[PY, "-c", &format!("{PY_PRELUDE}\n{code}")])
    }

    /// The same Python probe on the host, as the same user: the control.
    fn py_host(&self, code: &str) -> Out {
        let mut c = self.base_cmd(Path::new(PY));
        c.arg("-c").arg(format!("{PY_PRELUDE}\n{code}")).current_dir("/");
        out(c.output().unwrap())
    }

    fn host_sh(&self, script: &str) -> Out {
        let mut c = self.base_cmd(Path::new("/bin/sh"));
        c.arg("-c").arg(script).current_dir("/");
        out(c.output().unwrap())
    }
}

/// `sc(name, nr, *args)` prints `name:ok` or `name:<ERRNO NAME>`.
const PY_PRELUDE: &str = r#"
import ctypes, errno, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def res(name, fn):
    try:
        fn(); print(f"{name}:ok")
    except OSError as e:
        print(f"{name}:{errno.errorcode.get(e.errno, e.errno)}")
def sc(name, nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    e = ctypes.get_errno()
    print(f"{name}:" + ("ok" if r >= 0 else errno.errorcode.get(e, str(e))))
"#;

fn has_line(o: &Out, line: &str) -> bool {
    o.stdout.lines().any(|l| l == line)
}

#[track_caller]
fn assert_line(o: &Out, line: &str) {
    assert!(has_line(o, line), "expected line `{line}` in:\n{o:?}");
}

macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn as_root() {
                let f: fn(&Sb) = $body;
                f(&Sb::root())
            }
            #[test]
            fn unprivileged() {
                let f: fn(&Sb) = $body;
                f(&Sb::user())
            }
        }
    };
}

fn ro_ws(s: &Scratch) -> Vec<String> {
    vec!["--policy".into(), "read-only".into(), "--writable".into(), s.ws.to_string_lossy().into_owned()]
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

// ------------------------------------------------------------------------------------
// Layers are applied
// ------------------------------------------------------------------------------------

both!(layers_applied, |sb| {
    let s = sb.scratch();
    let o = sb.sh(&[], &s.ws, "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status; echo pid=$$");
    assert_eq!(o.code, 0, "{o:?}");
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_line(&o, &format!("{cap}:\t0000000000000000"));
    }
    assert_line(&o, "NoNewPrivs:\t1");
    assert_line(&o, "Seccomp:\t2");
    // own PID namespace: the inner stage is PID 1, the shell its child
    assert_line(&o, "pid=2");

    // Landlock is reported enforced when asked.
    let mut c = sb.base_cmd(&sb.exe());
    c.env("EXECUTOR_SANDBOX_DEBUG", "1").args(["sandbox", "--cwd"]).arg(&s.ws).args(["--", "true"]);
    let o = out(c.output().unwrap());
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("landlock: fully enforced"), "{o:?}");
    assert!(o.stderr.contains("session keyring: fresh"), "{o:?}");
});

/// Landlock on its own: in a minimal view the root is bwrap's writable tmpfs, so only
/// Landlock can refuse a new file there. Root only: for the unprivileged user the
/// tmpfs root is not DAC-writable, so the check would not isolate Landlock.
#[test]
fn landlock_denies_what_mounts_allow() {
    let sb = Sb::root();
    let s = sb.scratch();
    let ws = url_of(&s.ws);
    let perms = format!(
        r#"{{"permissions":{{"type":"managed","file_system":{{"type":"restricted","entries":[
        {{"path":{{"type":"special","value":{{"kind":"minimal"}}}},"access":"read"}},
        {{"path":{{"type":"path","path":"{ws}"}},"access":"write"}}]}},"network":"restricted"}},
        "windowsSandboxLevel":"disabled"}}"#
    );
    let o = sb.sh(&["--permissions", &perms], &s.ws, "touch /probe-root 2>&1; echo rc=$?; touch ./inside; echo ws=$?");
    assert_line(&o, "ws=0");
    assert!(o.stdout.contains("Permission denied"), "{o:?}");
    assert_line(&o, "rc=1");
    assert!(s.ws.join("inside").exists());
}

fn url_of(p: &Path) -> String {
    format!("file://{}", p.display())
}

// ------------------------------------------------------------------------------------
// Exit status and exec failures
// ------------------------------------------------------------------------------------

both!(exit_status_is_forwarded, |sb| {
    let s = sb.scratch();
    assert_eq!(sb.sh(&[], &s.ws, "exit 7").code, 7);
    assert_eq!(sb.sh(&[], &s.ws, "kill -TERM $$").code, 128 + 15);
    let o = sb.sandbox(&[], &s.ws, &["/nonexistent/command"]);
    assert_eq!(o.code, 101, "{o:?}");
    assert!(o.stderr.contains("cannot execute `/nonexistent/command`"), "{o:?}");
});

// ------------------------------------------------------------------------------------
// Writes outside writable roots
// ------------------------------------------------------------------------------------

both!(writes_outside_writable_roots, |sb| {
    let s = sb.scratch();
    std::os::unix::fs::symlink(&s.outside, s.ws.join("link")).unwrap();
    std::fs::write(s.outside.join("target.txt"), "original\n").unwrap();
    sb.own(&s.root);
    let o_ = ro_ws(&s);
    let script = format!(
        "echo x > {out}/direct; echo x > ../outside/dotdot; echo x > link/symlink; \
         ln {out}/target.txt hardlink; echo x >> link/target.txt; mv {out}/secret.txt ./stolen; \
         echo x > control; echo done",
        out = s.outside.display()
    );
    let o = sb.sh(&refs(&o_), &s.ws, &script);
    assert_line(&o, "done");
    for f in ["direct", "dotdot", "symlink"] {
        assert!(!s.outside.join(f).exists(), "{f} escaped: {o:?}");
    }
    assert!(!s.ws.join("hardlink").exists(), "hard link to an outside file created: {o:?}");
    assert_eq!(std::fs::read_to_string(s.outside.join("target.txt")).unwrap(), "original\n");
    // (`mv` falls back to copy + unlink: the copy in is a permitted read, the unlink fails)
    assert!(s.outside.join("secret.txt").exists(), "{o:?}");
    // control
    assert_eq!(std::fs::read_to_string(s.ws.join("control")).unwrap(), "x\n");
});

// DESIGN.md §5: a hard link that already exists inside a writable root and points
// outside cannot be stopped by mounts or Landlock. Pinned so a change is noticed.
both!(preexisting_hard_link_is_a_documented_limit, |sb| {
    let s = sb.scratch();
    std::fs::write(s.outside.join("linked.txt"), "original\n").unwrap();
    std::fs::hard_link(s.outside.join("linked.txt"), s.ws.join("hl")).unwrap();
    sb.own(&s.root);
    let o = sb.sh(&refs(&ro_ws(&s)), &s.ws, "echo changed > hl");
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(std::fs::read_to_string(s.outside.join("linked.txt")).unwrap(), "changed\n");
});

both!(writable_root_through_symlink, |sb| {
    let s = sb.scratch();
    let alias = s.root.join("alias");
    std::os::unix::fs::symlink(&s.ws, &alias).unwrap();
    sb.own(&s.root);
    let a = alias.to_string_lossy().into_owned();
    let o = sb.sh(&["--policy", "read-only", "--writable", &a], &alias, "echo ok > viaalias && echo done");
    assert_line(&o, "done");
    assert!(s.ws.join("viaalias").exists());
});

// ------------------------------------------------------------------------------------
// Protected metadata
// ------------------------------------------------------------------------------------

both!(existing_git_is_read_only, |sb| {
    let s = sb.scratch();
    std::fs::create_dir_all(s.ws.join(".git/hooks")).unwrap();
    std::fs::write(s.ws.join(".git/config"), "[core]\n").unwrap();
    std::fs::create_dir_all(s.ws.join(".codex")).unwrap();
    sb.own(&s.root);
    let o = sb.sh(
        &refs(&ro_ws(&s)),
        &s.ws,
        "echo '[core] fsmonitor=evil' >> .git/config; echo x > .git/hooks/pre-commit; rm -rf .git; mv .git g2; \
         echo x > .codex/config.toml; echo x > sibling; echo done",
    );
    assert_line(&o, "done");
    assert_eq!(std::fs::read_to_string(s.ws.join(".git/config")).unwrap(), "[core]\n");
    assert!(!s.ws.join(".git/hooks/pre-commit").exists());
    assert!(!s.ws.join("g2").exists());
    assert!(!s.ws.join(".codex/config.toml").exists());
    assert!(s.ws.join("sibling").exists(), "control write failed: {o:?}");
});

both!(protected_symlink_fails_closed, |sb| {
    let s = sb.scratch();
    std::fs::create_dir(s.ws.join("decoy")).unwrap();
    std::os::unix::fs::symlink("decoy", s.ws.join(".codex")).unwrap();
    sb.own(&s.root);
    let o = sb.sh(&refs(&ro_ws(&s)), &s.ws, "echo ran");
    assert_ne!(o.code, 0, "{o:?}");
    assert!(!has_line(&o, "ran"));
    assert!(o.stderr.contains("cannot enforce sandbox read-only path"), "{o:?}");
});

// No host litter: running in a workspace without `.git`/`.codex`/... must not create
// placeholders on the host, during or after the run.
both!(missing_metadata_leaves_no_host_litter, |sb| {
    let s = sb.scratch();
    let o = sb.sh(&refs(&ro_ws(&s)), &s.ws, "ls -A .; echo done");
    assert_line(&o, "done");
    let names: Vec<_> = std::fs::read_dir(&s.ws).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(names.is_empty(), "host litter: {names:?}");
    assert!(!o.stdout.contains(".git"), "{o:?}");
});

// Known limit (see bwrap_args.rs docs): a protected name that does not exist cannot be
// mounted over without creating it on the host, so it is not protected. Pinned so the
// day it is closed this test is updated, and the gap stays visible.
both!(missing_git_creation_is_a_documented_limit, |sb| {
    let s = sb.scratch();
    let o = sb.sh(&refs(&ro_ws(&s)), &s.ws, "mkdir .git && echo created");
    assert_line(&o, "created");
    assert!(s.ws.join(".git").is_dir());
});

// ------------------------------------------------------------------------------------
// Reads of none/deny paths
// ------------------------------------------------------------------------------------

both!(denied_paths_are_unreadable, |sb| {
    let s = sb.scratch();
    std::fs::write(s.ws.join("secret.env"), "TOPSECRET\n").unwrap();
    std::fs::create_dir(s.ws.join("private")).unwrap();
    std::fs::write(s.ws.join("private/key"), "TOPSECRET\n").unwrap();
    std::fs::create_dir(s.ws.join("private/pub")).unwrap();
    std::fs::write(s.ws.join("public.txt"), "public\n").unwrap();
    sb.own(&s.root);
    let mut opts = ro_ws(&s);
    for d in ["secret.env", "private"] {
        opts.push("--deny".into());
        opts.push(s.ws.join(d).to_string_lossy().into_owned());
    }
    let o = sb.sh(
        &refs(&opts),
        &s.ws,
        "cat secret.env; cat private/key; ls private; cat public.txt; echo y > secret.env; echo y > private/new; echo done",
    );
    assert_line(&o, "done");
    assert!(!o.stdout.contains("TOPSECRET"), "{o:?}");
    assert_line(&o, "public");
    assert_eq!(std::fs::read_to_string(s.ws.join("secret.env")).unwrap(), "TOPSECRET\n");
    assert!(!s.ws.join("private/new").exists());
});

// ------------------------------------------------------------------------------------
// /proc, signals, ptrace
// ------------------------------------------------------------------------------------

both!(host_processes_are_invisible, |sb| {
    let s = sb.scratch();
    let mut victim = Command::new("sleep").arg("600").spawn().unwrap();
    let vpid = victim.id();
    let me = std::process::id();
    let o = sb.sh(
        &[],
        &s.ws,
        &format!(
            "cat /proc/{me}/environ && echo READ_ENVIRON; ls /proc/{me}/root/ && echo READ_ROOT; \
             kill -9 {vpid} && echo KILLED; ls /proc | grep -E '^[0-9]+$' | wc -l; echo done"
        ),
    );
    assert_line(&o, "done");
    assert!(!o.stdout.contains("READ_ENVIRON") && !o.stdout.contains("READ_ROOT") && !o.stdout.contains("KILLED"), "{o:?}");
    assert!(victim.try_wait().unwrap().is_none(), "host process was killed from the sandbox");
    victim.kill().unwrap();
    victim.wait().unwrap();
    // Only the inner stage, the shell, ls/grep/wc are in the PID namespace.
    let n: usize = o.stdout.lines().rev().nth(1).unwrap().trim().parse().unwrap();
    assert!(n <= 6, "{o:?}");
});

both!(dangerous_syscalls_are_denied, |sb| {
    let s = sb.scratch();
    // x86_64 numbers; expected in the sandbox: EPERM (or ENOSYS for clone3).
    let probe = r#"
sc("ptrace", 101, 0, 0, 0, 0)
sc("process_vm_readv", 310, 1, 0, 0, 0, 0, 0)
sc("io_uring_setup", 425, 1, 0)
sc("bpf", 321, 0, 0, 0)
sc("perf_event_open", 298, 0, 0, -1, -1, 0)
sc("keyctl", 250, 0, -3, 0)
sc("add_key", 248, 0, 0, 0, 0, 0)
sc("clone3", 435, 0, 0)
sc("unshare_user", 272, 0x10000000)
sc("clone_newuser", 56, 0x10000000 | 17, 0, 0, 0, 0)
sc("mount", 165, 0, 0, 0, 0, 0)
import fcntl, termios
res("tiocsti", lambda: fcntl.ioctl(0, termios.TIOCSTI, b"x"))
res("tioclinux", lambda: fcntl.ioctl(0, 0x541C, b"\x00"))
"#;
    let o = sb.py(&[], &s.ws, probe);
    assert_eq!(o.code, 0, "{o:?}");
    for n in ["ptrace", "process_vm_readv", "io_uring_setup", "bpf", "perf_event_open", "keyctl", "add_key", "unshare_user", "clone_newuser", "mount", "tiocsti", "tioclinux"] {
        assert_line(&o, &format!("{n}:EPERM"));
    }
    assert_line(&o, "clone3:ENOSYS");
    // Controls on the host: the same calls are not refused with EPERM there (so EPERM
    // above is the filter, not the kernel). Only calls an unprivileged user may make.
    let h = sb.py_host(probe);
    for (n, not) in [("io_uring_setup", "io_uring_setup:EPERM"), ("keyctl", "keyctl:EPERM"), ("clone3", "clone3:ENOSYS"), ("tiocsti", "tiocsti:EPERM")] {
        assert!(!has_line(&h, not), "control {n} on host: {h:?}");
    }
    // shell-level: new user namespace and mount
    let o = sb.sh(&[], &s.ws, "unshare -Ur true && echo UNSHARED; mount -t tmpfs none /mnt && echo MOUNTED; echo done");
    assert_line(&o, "done");
    assert!(!o.stdout.contains("UNSHARED") && !o.stdout.contains("MOUNTED"), "{o:?}");
});

// ------------------------------------------------------------------------------------
// Network
// ------------------------------------------------------------------------------------

const NET_PROBE: &str = r#"
for fam, name in [(socket.AF_INET, "inet"), (socket.AF_INET6, "inet6"), (socket.AF_NETLINK, "netlink"), (socket.AF_PACKET, "packet"), (socket.AF_UNIX, "unix")]:
    res(name, lambda: socket.socket(fam, socket.SOCK_DGRAM if fam != socket.AF_UNIX else socket.SOCK_STREAM).close())
res("socketpair", lambda: [s.close() for s in socket.socketpair()])
res("connect_host_unix", lambda: socket.socket(socket.AF_UNIX).connect(sys.argv[1]))
"#;

both!(network_restricted, |sb| {
    let s = sb.scratch();
    let sock = s.outside.join("daemon.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o777)).unwrap();
    sb.own(&s.root);
    let sock_s = sock.to_string_lossy().into_owned();
    let prog = format!("{PY_PRELUDE}\n{NET_PROBE}");
    let o = sb.sandbox(&[], &s.ws, &[PY, "-c", &prog, &sock_s]);
    assert_eq!(o.code, 0, "{o:?}");
    for n in ["inet", "inet6", "netlink", "packet", "connect_host_unix"] {
        assert_line(&o, &format!("{n}:EPERM"));
    }
    assert_line(&o, "unix:ok");
    assert_line(&o, "socketpair:ok");
    assert!(listener.accept().is_err(), "a sandboxed process reached the host socket");

    // control: with the network enabled the same probes work
    let o = sb.sandbox(&["--network"], &s.ws, &[PY, "-c", &prog, &sock_s]);
    assert_line(&o, "inet:ok");
    assert_line(&o, "connect_host_unix:ok");
});

// ------------------------------------------------------------------------------------
// Kernel interfaces as root, keyring, setuid
// ------------------------------------------------------------------------------------

#[test]
fn root_cannot_write_host_kernel_interfaces() {
    let sb = Sb::root();
    let s = sb.scratch();
    let before = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let domain_before = std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap();
    let o = sb.sh(
        &[],
        &s.ws,
        "echo pwned > /proc/sys/kernel/hostname; echo pwned > /proc/sys/kernel/domainname; hostname pwned; \
         echo 1 > /proc/sysrq-trigger; echo 1 > /sys/kernel/profiling; echo done",
    );
    assert_line(&o, "done");
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(), before);
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap(), domain_before);
    // control: the sandbox really is uid 0 (so these were real attempts)
    let o = sb.sh(&[], &s.ws, "id -u");
    assert_line(&o, "0");
}

both!(setuid_binary_gains_nothing, |sb| {
    let s = sb.scratch();
    // A setuid-root copy of `id` on the host.
    let suid = s.root.join("suid-id");
    std::fs::copy("/usr/bin/id", &suid).unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    assert_eq!(std::fs::metadata(&suid).unwrap().uid(), 0);
    let suid_s = suid.to_string_lossy().into_owned();
    let o = sb.sh(&[], &s.ws, &format!("{suid_s} -u"));
    assert_eq!(o.code, 0, "{o:?}");
    let expected = sb.user.map(|(u, _)| u).unwrap_or(0).to_string();
    assert_line(&o, &expected);
    if !sb.is_root() {
        // control: on the host the copy does elevate
        let h = sb.host_sh(&format!("{suid_s} -u"));
        assert_line(&h, "0");
    }
});

both!(session_keyring_is_fresh_and_unreachable, |sb| {
    let s = sb.scratch();
    // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)
    let o = sb.py(&[], &s.ws, "sc('session', 250, 0, -3, 0)");
    assert_line(&o, "session:EPERM");
    let h = sb.py_host("sc('session', 250, 0, -3, 0)");
    assert_line(&h, "session:ok");
});
