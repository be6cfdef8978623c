//! Many writable roots (issue 19): the plain ones are bound by the inner stage with the
//! new mount API instead of one bwrap `--bind` each (executor/src/sandbox/late_binds.rs).
//! Judged by what the sandboxed command can do and sees, and by the host afterwards:
//! every root is writable, nosuid and nodev, nothing else is writable, no capability is
//! left (bwrap hands the inner stage CAP_SYS_ADMIN for the binds), and a root with a
//! host mount below keeps bwrap's bind, whose read-only submount stays read-only.
//! As root and as the unprivileged test user; `$EXECUTOR_TEST_BWRAP` picks the launcher.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use executor_tests::unprivileged::{chown_tree, setpriv_args, test_user_ids, user_binary};
use executor_tests::{as_root_and_unprivileged, executor_bin};

/// executor/src/sandbox/late_binds.rs: fewer plain roots stay with bwrap.
const MIN_LATE_BINDS: usize = 4;

/// `executor sandbox --policy read-only --writable R... -- sh -c SCRIPT` as `user`.
fn sandboxed(user: Option<(u32, u32)>, roots: &[PathBuf], cwd: &Path, script: &str) -> Output {
    let mut command = match user {
        None => Command::new(executor_bin()),
        Some(ids) => {
            let mut c = Command::new("setpriv");
            c.args(setpriv_args(ids)).arg(user_binary(&executor_bin()));
            c
        }
    };
    command.arg("sandbox");
    if let Ok(launcher) = std::env::var("EXECUTOR_TEST_BWRAP") {
        command.args(["--bwrap", &launcher]);
    }
    command.args(["--policy", "read-only"]);
    for root in roots {
        command.arg("--writable").arg(root);
    }
    command.args(["--cwd"]).arg(cwd).args(["--", "/bin/sh", "-c", script]);
    command.env_clear().env("PATH", "/usr/bin:/bin").env("EXECUTOR_SANDBOX_DEBUG", "1").current_dir(cwd);
    command.output().expect("run executor sandbox")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A scratch dir the user owns, holding `n` roots and one directory that is not a root.
fn scratch(user: Option<(u32, u32)>, n: usize) -> (tempfile::TempDir, Vec<PathBuf>, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let roots: Vec<PathBuf> = (0..n).map(|i| base.join(format!("root-{i:02}"))).collect();
    for root in &roots {
        std::fs::create_dir(root).unwrap();
    }
    let other = base.join("not-a-root");
    std::fs::create_dir(&other).unwrap();
    if let Some(ids) = user {
        chown_tree(ids, &base);
    }
    (dir, roots, other)
}

fn many_roots_are_writable_nosuid_nodev_and_nothing_else_is(user: Option<(u32, u32)>) {
    let (_dir, roots, other) = scratch(user, 24);
    let mut script = String::new();
    for root in &roots {
        script.push_str(&format!("echo ok > '{}/written' || exit 10; ", root.display()));
    }
    script.push_str(&format!("if echo no > '{}/written' 2>/dev/null; then exit 11; fi; ", other.display()));
    // Relative to the working directory, which is a root: it must be the writable mount,
    // not the read-only directory below it.
    script.push_str("mkdir sub && echo rel > sub/relative && rmdir sub 2>/dev/null; test -e sub/relative || exit 12; ");
    script.push_str("grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status; cat /proc/self/mountinfo");
    let out = sandboxed(user, &roots, &roots[0], &script);
    assert!(out.status.success(), "{}", text(&out));
    for root in &roots {
        assert_eq!(std::fs::read_to_string(root.join("written")).unwrap(), "ok\n", "{}", root.display());
    }
    assert_eq!(std::fs::read_to_string(roots[0].join("sub/relative")).unwrap(), "rel\n", "a write relative to the cwd");
    assert!(!other.join("written").exists(), "a directory that is not a root was written");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let line = stdout.lines().find(|l| l.starts_with(cap)).unwrap_or_else(|| panic!("no {cap}: {stdout}"));
        assert!(line.ends_with("0000000000000000"), "a capability survived: {line}");
    }
    // As root the inner stage binds them (late binds); otherwise bwrap does (a second
    // user namespace leaves the inner stage no capability over the mounts).
    let bound_here = if user.is_none() { roots.len() } else { 0 };
    let report = format!("writable roots bound here: {bound_here};");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&report), "expected `{report}`: {}", text(&out));
    for root in &roots {
        let point = format!(" {} ", root.display());
        let line = stdout.lines().find(|l| l.contains(&point)).unwrap_or_else(|| panic!("{} is not a mount: {stdout}", root.display()));
        let options = line.split(' ').nth(5).unwrap();
        for flag in ["rw", "nosuid", "nodev"] {
            assert!(options.split(',').any(|o| o == flag), "{} mounted {options}, without {flag}", root.display());
        }
    }
}

/// Needs root on the host, to mount below a root (ci runs the tests as root).
fn a_root_with_a_host_mount_below_keeps_the_read_only_submount(user: Option<(u32, u32)>) {
    assert!(nix::unistd::geteuid().is_root(), "this test mounts tmpfs on the host and must run as root");
    // One root with mounts below, and enough plain ones to be bound late (as root).
    let (_dir, roots, _) = scratch(user, 1 + MIN_LATE_BINDS);
    let (rw, ro) = (roots[0].join("rw-vol"), roots[0].join("ro-vol"));
    for (dir, options) in [(&rw, "mode=0777"), (&ro, "mode=0777,ro")] {
        std::fs::create_dir(dir).unwrap();
        let status = Command::new("mount").args(["-t", "tmpfs", "-o", options, "tmpfs"]).arg(dir).status().unwrap();
        assert!(status.success(), "mount tmpfs on {}", dir.display());
    }
    struct Unmount(Vec<PathBuf>);
    impl Drop for Unmount {
        fn drop(&mut self) {
            for dir in &self.0 {
                let _ = Command::new("umount").arg(dir).status();
            }
        }
    }
    let _unmount = Unmount(vec![rw.clone(), ro.clone()]);
    let script = format!(
        "echo a > '{r}/top' && echo b > '{rw}/in-rw' || exit 10; if echo c > '{ro}/in-ro' 2>/dev/null; then exit 11; fi; echo d > '{other}/second'",
        r = roots[0].display(),
        rw = rw.display(),
        ro = ro.display(),
        other = roots[1].display()
    );
    let out = sandboxed(user, &roots, &roots[1], &script);
    assert!(out.status.success(), "{}", text(&out));
    // The root with mounts below stays with bwrap; the plain ones are bound late as root.
    let report = format!("writable roots bound here: {};", if user.is_none() { MIN_LATE_BINDS } else { 0 });
    assert!(String::from_utf8_lossy(&out.stderr).contains(&report), "expected `{report}`: {}", text(&out));
    assert!(roots[0].join("top").exists() && rw.join("in-rw").exists() && roots[1].join("second").exists());
    assert!(!ro.join("in-ro").exists());
}

/// Below the threshold bwrap binds every root, and the result is the same.
fn a_few_roots_are_bound_by_bwrap(user: Option<(u32, u32)>) {
    let (_dir, roots, other) = scratch(user, MIN_LATE_BINDS - 1);
    let mut script: String = roots.iter().map(|r| format!("echo ok > '{}/w' || exit 10; ", r.display())).collect();
    script.push_str(&format!("if echo no > '{}/w' 2>/dev/null; then exit 11; fi", other.display()));
    let out = sandboxed(user, &roots, &roots[0], &script);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("writable roots bound here: 0;"), "{}", text(&out));
    assert!(roots.iter().all(|r| r.join("w").exists()) && !other.join("w").exists());
}

as_root_and_unprivileged!(
    many_roots_are_writable_nosuid_nodev_and_nothing_else_is,
    a_root_with_a_host_mount_below_keeps_the_read_only_submount,
    a_few_roots_are_bound_by_bwrap
);

#[test]
fn the_user_can_be_found() {
    // The unprivileged variants need it; say so plainly when it is missing.
    let _ = test_user_ids();
}

/// The inner stage's own late bind, driven directly under bwrap: a read-only mount that
/// is below a late-bound root when the inner stage copies it (here bwrap's `--ro-bind`
/// of a `.git`; in an attack, a plan mount placed there through a link swapped in after
/// the plan) stays read-only, while the root itself becomes writable. Root only: the
/// inner stage needs bwrap's single user namespace to hold CAP_SYS_ADMIN over the mounts.
#[test]
fn a_read_only_mount_below_a_late_root_stays_read_only() {
    use std::os::unix::fs::MetadataExt;
    assert!(nix::unistd::geteuid().is_root(), "this test drives bwrap with CAP_SYS_ADMIN for the inner stage and must run as root");
    let (_dir, roots, _) = scratch(None, 1);
    let root = &roots[0];
    let git = root.join(".git");
    std::fs::create_dir(&git).unwrap();
    let meta = std::fs::metadata(root).unwrap();
    let config = serde_json::json!({
        "ro": ["/"], "rw": [root], "net": false, "debug": true,
        "late_binds": [{"path": root, "dev": meta.dev(), "ino": meta.ino()}],
    });
    let script = format!(
        "echo top > '{r}/top' || exit 10; if echo no > '{g}/config' 2>/dev/null; then exit 11; fi; grep ' {g} ' /proc/self/mountinfo",
        r = root.display(),
        g = git.display()
    );
    let out = Command::new("bwrap")
        .args(["--unshare-user", "--unshare-pid", "--unshare-net", "--die-with-parent", "--ro-bind", "/", "/"])
        .arg("--ro-bind")
        .arg(&git)
        .arg(&git)
        .args([
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "CAP_SETPCAP",
            "--cap-add",
            "CAP_SYS_ADMIN",
            "--chdir",
        ])
        .arg(root)
        .arg("--")
        .arg(executor_bin())
        .arg("--run-as-sandbox-inner")
        .arg(config.to_string())
        .args(["--", "/bin/sh", "-c", &script])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("EXECUTOR_SANDBOX_DEBUG", "1")
        .output()
        .expect("run bwrap");
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("writable roots bound here: 1;"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(root.join("top")).unwrap(), "top\n");
    assert!(!git.join("config").exists(), "the read-only mount below the root was written");
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(line.split(' ').nth(5).is_some_and(|o| o.split(',').any(|f| f == "ro")), "the .git mount is not read-only: {line}");
}
