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

use executor_tests::executor_bin;
use executor_tests::unprivileged::{chown_tree, setpriv_args, test_user_ids, user_binary};

const PY: &str = "/usr/bin/python3";

// ------------------------------------------------------------------------------------
// Local harness (the unprivileged user: executor_tests::unprivileged).
// ------------------------------------------------------------------------------------

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
            executor_bin()
        } else {
            user_binary(&executor_bin()).clone()
        }
    }

    /// `executor sandbox OPTS --cwd CWD -- ARGV`
    fn sandbox(&self, opts: &[&str], cwd: &Path, argv: &[&str]) -> Out {
        self.sandbox_with(&self.exe(), opts, cwd, argv)
    }

    /// The same with another copy of the executor binary.
    fn sandbox_with(&self, exe: &Path, opts: &[&str], cwd: &Path, argv: &[&str]) -> Out {
        let mut c = self.base_cmd(exe);
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
    assert_eq!(o.code, 127, "{o:?}"); // like a shell: command not found
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

// The inner stage's binary, where it is seen inside, can be neither changed nor replaced:
// outside the writable roots the read-only root covers it (the executor adds no mount
// then), inside a writable root the executor binds it read-only over the writable view.
// Judged by the host file afterwards. (Writes alone would fail with ETXTBSY while it
// runs; the rename is what only the mount stops.)
both!(inner_stage_binary_cannot_be_replaced, |sb| {
    let s = sb.scratch();
    let inside = s.ws.join("bin").join("executor");
    std::fs::create_dir(s.ws.join("bin")).unwrap();
    std::fs::copy(sb.exe(), &inside).unwrap();
    sb.own(&s.root);
    let attack = |exe: &Path| {
        format!(
            "E='{e}'; \
             (printf x >> \"$E\") 2>/dev/null && echo append:ok || echo append:denied; \
             cp /bin/true \"$E\" 2>/dev/null && echo overwrite:ok || echo overwrite:denied; \
             mv \"$E\" \"$E.moved\" 2>/dev/null && echo rename:ok || echo rename:denied; \
             chmod 700 \"$E\" 2>/dev/null && echo chmod:ok || echo chmod:denied; \
             rm -f \"$E\" 2>/dev/null; [ -e \"$E\" ] && echo unlink:denied || echo unlink:ok; \
             echo x > bin/control && echo control:ok",
            e = exe.display()
        )
    };
    let o_ = ro_ws(&s);
    for exe in [sb.exe(), inside.clone()] {
        let before = std::fs::metadata(&exe).unwrap();
        let o = sb.sandbox_with(&exe, &refs(&o_), &s.ws, &["/bin/sh", "-c", &attack(&exe)]);
        for line in ["append:denied", "overwrite:denied", "rename:denied", "chmod:denied", "unlink:denied", "control:ok"] {
            assert_line(&o, line);
        }
        let after = std::fs::metadata(&exe).unwrap_or_else(|e| panic!("{} gone: {e}\n{o:?}", exe.display()));
        assert_eq!(
            (before.ino(), before.len(), before.mtime(), before.mtime_nsec(), before.mode()),
            (after.ino(), after.len(), after.mtime(), after.mtime_nsec(), after.mode()),
            "{} changed: {o:?}",
            exe.display()
        );
        assert!(!Path::new(&format!("{}.moved", exe.display())).exists(), "{o:?}");
    }
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

const MISSING: [&str; 6] = [".git", ".hg", ".svn", ".codex", ".agents", ".aws"];

#[track_caller]
fn assert_none_created(s: &Scratch) {
    for name in MISSING {
        assert!(std::fs::symlink_metadata(s.ws.join(name)).is_err(), "{name} was created on the host");
    }
}

// A protected name that does not exist yet cannot be created by any call that makes a
// directory entry (the create guard, inner/guard): each attack is refused with EROFS,
// the same call with another name works, and the host is checked afterwards.
both!(missing_protected_names_cannot_be_created, |sb| {
    let s = sb.scratch();
    std::fs::create_dir(s.ws.join("sub")).unwrap();
    sb.own(&s.root);
    let o = sb.sh(
        &refs(&ro_ws(&s)),
        &s.ws,
        "try() { if \"$@\" 2>/dev/null; then echo \"$*:created\"; else echo \"$*:refused\"; fi; }; \
         echo data > f; mkdir d; mkdir d2; \
         try mkdir .git; try touch .codex; try sh -c 'echo x > .hg'; try ln -s elsewhere .svn; \
         try ln f .aws; try mv d .agents; try mkfifo .git; \
         try mkdir sub/../.git; try mkdir /proc/self/cwd/.codex; try mkdir \"$PWD/.hg\"; \
         cd sub; try mkdir ../.aws; ln -s ../.git dangling; try sh -c 'echo x > dangling'; cd ..; \
         try mkdir ok-dir; try touch ok-file; try ln -s elsewhere ok-link; try ln f ok-hard; try mv d2 ok-moved; \
         try mkfifo ok-fifo; echo done",
    );
    assert_line(&o, "done");
    for attack in [
        "mkdir .git",
        "touch .codex",
        "sh -c echo x > .hg",
        "ln -s elsewhere .svn",
        "ln f .aws",
        "mv d .agents",
        "mkfifo .git",
        "mkdir sub/../.git",
        "mkdir /proc/self/cwd/.codex",
        "sh -c echo x > dangling",
        "mkdir ../.aws",
    ] {
        assert_line(&o, &format!("{attack}:refused"));
    }
    assert_line(&o, &format!("mkdir {}/.hg:refused", s.ws.display()));
    assert_none_created(&s);
    for control in ["mkdir ok-dir", "touch ok-file", "ln -s elsewhere ok-link", "ln f ok-hard", "mv d2 ok-moved", "mkfifo ok-fifo"] {
        assert_line(&o, &format!("{control}:created"));
    }
    assert!(s.ws.join("ok-dir").is_dir() && s.ws.join("ok-moved").is_dir() && s.ws.join("d").is_dir());
    assert_eq!(std::fs::read_to_string(s.ws.join("ok-hard")).unwrap(), "data\n");
    assert_eq!(std::fs::read_link(s.ws.join("sub/dangling")).unwrap(), Path::new("../.git"));

    // The errno is the one a read-only mount gives.
    let o = sb.sh(&refs(&ro_ws(&s)), &s.ws, "mkdir .git");
    assert!(o.stderr.contains("Read-only file system"), "{o:?}");
});

// Through directory descriptors and every system call form, including `O_EXCL`, a
// hard link of an O_TMPFILE file through /proc/self/fd (refused by the guard before the
// kernel would answer EXDEV, as it does for that link to any name in this sandbox), and
// RENAME_EXCHANGE.
both!(missing_protected_names_via_descriptors, |sb| {
    let s = sb.scratch();
    sb.own(&s.root);
    let code = r#"
ws = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
os.chdir("/")
res("mkdirat", lambda: os.mkdir(".git", dir_fd=ws))
res("openat_excl", lambda: os.close(os.open(".codex", os.O_CREAT | os.O_EXCL | os.O_WRONLY, dir_fd=ws)))
res("symlinkat", lambda: os.symlink("x", ".hg", dir_fd=ws))
os.close(os.open("plain", os.O_CREAT | os.O_WRONLY, dir_fd=ws))
res("renameat", lambda: os.rename("plain", ".svn", src_dir_fd=ws, dst_dir_fd=ws))
res("linkat", lambda: os.link("plain", ".aws", src_dir_fd=ws, dst_dir_fd=ws))
res("mknodat", lambda: os.mknod(".agents", 0o600 | 0o010000, dir_fd=ws))
os.chdir(ws)
tmp = os.open(".", os.O_TMPFILE | os.O_WRONLY, 0o600)
os.write(tmp, b"tmpfile\n")
res("link_tmpfile", lambda: os.link(f"/proc/self/fd/{tmp}", ".git", follow_symlinks=True))
nr = 316 if os.uname().machine == "x86_64" else 276  # renameat2
r = libc.syscall(ctypes.c_long(nr), ctypes.c_int(-100), b"plain", ctypes.c_int(-100), b".git", ctypes.c_uint(2))
print("exchange:" + ("ok" if r == 0 else errno.errorcode[ctypes.get_errno()]))
res("mkdirat_ok", lambda: os.mkdir("ok", dir_fd=ws))
res("excl_ok", lambda: os.close(os.open("ok-excl", os.O_CREAT | os.O_EXCL | os.O_WRONLY, dir_fd=ws)))
res("excl_again", lambda: os.close(os.open("ok-excl", os.O_CREAT | os.O_EXCL | os.O_WRONLY, dir_fd=ws)))
"#;
    let o = sb.py(&refs(&ro_ws(&s)), &s.ws, code);
    for attack in ["mkdirat", "openat_excl", "symlinkat", "renameat", "linkat", "mknodat", "link_tmpfile", "exchange"] {
        assert_line(&o, &format!("{attack}:EROFS"));
    }
    assert_line(&o, "mkdirat_ok:ok");
    assert_line(&o, "excl_ok:ok");
    assert_line(&o, "excl_again:EEXIST");
    assert_none_created(&s);
    assert!(s.ws.join("plain").is_file());
});

// The check copies the path once and the supervisor makes the call itself, so a second
// thread flipping the path between a harmless name and `.git` never gets `.git`
// created. The harmless name is created many times over: the race was run.
both!(missing_protected_name_race, |sb| {
    let s = sb.scratch();
    sb.own(&s.root);
    let code = r#"
import threading
buf = ctypes.create_string_buffer(b"xgit", 8)
stop = False
def flip():
    while not stop:
        ctypes.memmove(buf, b".git", 4)
        ctypes.memmove(buf, b"xgit", 4)
th = threading.Thread(target=flip); th.start()
made = refused = 0
for _ in range(20000):
    if libc.mkdir(buf, 0o755) == 0:
        made += 1
        os.rmdir("xgit") if os.path.isdir("xgit") else None
        if os.path.isdir(".git"):
            print("ESCAPED"); break
    elif ctypes.get_errno() == errno.EROFS:
        refused += 1
stop = True; th.join()
print(f"made={made > 100} refused={refused > 100}")
"#;
    let o = sb.py(&refs(&ro_ws(&s)), &s.ws, code);
    assert!(!o.stdout.contains("ESCAPED"), "{o:?}");
    assert_line(&o, "made=True refused=True");
    assert_none_created(&s);
});

// The supervisor is PID 1, an ancestor of every sandboxed process, and may open its own
// memory and descriptors. A creating open through another process's /proc entry would
// run with those rights: refused. The caller's own entries work as they would for it.
both!(create_guard_does_not_lend_pid1_rights, |sb| {
    let s = sb.scratch();
    sb.own(&s.root);
    let code = r#"
res("pid1_mem", lambda: os.close(os.open("/proc/1/mem", os.O_RDWR | os.O_CREAT)))
res("pid1_fd", lambda: os.close(os.open("/proc/1/fd/0", os.O_RDONLY | os.O_CREAT)))
res("pid1_fd_dir", lambda: os.mkdir("/proc/1/cwd/x"))
res("own_mem", lambda: os.close(os.open("/proc/self/mem", os.O_RDWR | os.O_CREAT)))
res("plain_pid1_mem", lambda: os.close(os.open("/proc/1/mem", os.O_RDWR)))
"#;
    let o = sb.py(&refs(&ro_ws(&s)), &s.ws, code);
    assert_line(&o, "pid1_mem:EACCES");
    assert_line(&o, "pid1_fd:EACCES");
    assert_line(&o, "pid1_fd_dir:EACCES");
    assert_line(&o, "own_mem:ok");
    // Control: without O_CREAT the kernel checks the caller itself, and PID 1 is not
    // dumpable.
    assert_line(&o, "plain_pid1_mem:EACCES");
    assert!(!s.ws.join("x").exists());
});

// What the guard does on behalf of a command must be what the command's own call
// would have done: umask, O_CLOEXEC, FIFOs that block until a reader comes, /dev/null
// and /dev/stdout (a pipe of the sandbox's own: reopening the harness's root-owned
// pipe is refused to an unprivileged user with or without the guard), relative paths from a subdirectory, a dangling link that creates its
// target, and `set -C`.
both!(create_guard_keeps_call_semantics, |sb| {
    let s = sb.scratch();
    sb.own(&s.root);
    let o = sb.sh(
        &refs(&ro_ws(&s)),
        &s.ws,
        "umask 027; mkdir m750; touch f640; umask 022; \
         mkfifo p; cat p > from-fifo & echo through-fifo > p; wait; \
         echo quiet > /dev/null; { echo to-stdout > /dev/stdout; } | cat; \
         mkdir -p a/b; cd a/b; echo deep > ../x; ln -s ../made-by-link dl; echo via-link > dl; cd ../..; \
         echo once > once; set -C; if echo twice > once 2>/dev/null; then echo clobbered; fi; echo done",
    );
    assert_line(&o, "done");
    assert_line(&o, "to-stdout");
    assert!(!has_line(&o, "clobbered"), "{o:?}");
    let mode = |p: &str| std::fs::metadata(s.ws.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("m750"), 0o750);
    assert_eq!(mode("f640"), 0o640);
    assert_eq!(std::fs::read_to_string(s.ws.join("from-fifo")).unwrap(), "through-fifo\n");
    assert_eq!(std::fs::read_to_string(s.ws.join("a/x")).unwrap(), "deep\n");
    assert_eq!(std::fs::read_to_string(s.ws.join("a/made-by-link")).unwrap(), "via-link\n");
    assert_eq!(std::fs::read_to_string(s.ws.join("once")).unwrap(), "once\n");

    let code = r#"
import fcntl
a = os.open("cx", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC)
b = libc.open(b"nc", os.O_CREAT | os.O_WRONLY, 0o644)  # os.open always adds O_CLOEXEC
print("cloexec", bool(fcntl.fcntl(a, fcntl.F_GETFD) & fcntl.FD_CLOEXEC), bool(fcntl.fcntl(b, fcntl.F_GETFD) & fcntl.FD_CLOEXEC))
print("same-file", os.fstat(a).st_ino == os.stat("cx").st_ino)
"#;
    let o = sb.py(&refs(&ro_ws(&s)), &s.ws, code);
    assert_line(&o, "cloexec True False");
    assert_line(&o, "same-file True");

    // The guard reports itself, and is off when nothing is missing.
    let mut c = sb.base_cmd(&sb.exe());
    c.env("EXECUTOR_SANDBOX_DEBUG", "1").args(["sandbox"]).args(ro_ws(&s)).arg("--cwd").arg(&s.ws).args(["--", "true"]);
    let o = out(c.output().unwrap());
    assert!(o.stderr.contains("create guard: on (6 missing protected names, 0 pinned directories)"), "{o:?}");
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
    for n in [
        "ptrace",
        "process_vm_readv",
        "io_uring_setup",
        "bpf",
        "perf_event_open",
        "keyctl",
        "add_key",
        "unshare_user",
        "clone_newuser",
        "mount",
        "tiocsti",
        "tioclinux",
    ] {
        assert_line(&o, &format!("{n}:EPERM"));
    }
    assert_line(&o, "clone3:ENOSYS");
    // Controls on the host: the same calls are not refused with EPERM there (so EPERM
    // above is the filter, not the kernel). Only calls an unprivileged user may make.
    let h = sb.py_host(probe);
    for (n, not) in
        [("io_uring_setup", "io_uring_setup:EPERM"), ("keyctl", "keyctl:EPERM"), ("clone3", "clone3:ENOSYS"), ("tiocsti", "tiocsti:EPERM")]
    {
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
