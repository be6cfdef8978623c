//! System bwrap selection through the real binary: fake `bwrap`s on PATH that print
//! bwrap's real error texts get explained; untrusted ones (group/world-writable, owned
//! by someone else, in a writable directory) and incapable ones (no --perms) are
//! rejected; one without --argv0 is used; the probe runs once per file identity.

mod launcher_common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use launcher_common::{doctor_json, executor_bin, geteuid, run, trusted_tempdir};

const HELP_NO_ARGV0: &str = "usage: bwrap [OPTIONS...] [--] COMMAND [ARGS...]\n    --unshare-user  Create new user namespace\n    --as-pid-1  Do not install a reaper process with PID=1\n    --perms OCTAL  Set permissions\n";

/// A fake bwrap: answers `--help`/`--version` like bwrap 0.8.0 (help text given), logs
/// every invocation, and for a real run either prints `error` and fails, or hands over
/// to /usr/bin/bwrap.
fn fake_bwrap(dir: &Path, help: &str, error: Option<&str>, mode: u32) -> PathBuf {
    let log = dir.join("calls.log");
    let run = match error {
        // Heredoc: bwrap's texts contain quotes.
        Some(e) => format!("cat >&2 <<'ERR'\n{e}\nERR\nexit 1"),
        None => "exec /usr/bin/bwrap \"$@\"".to_string(),
    };
    let script = format!(
        "#!/bin/sh\necho \"$1\" >> '{}'\ncase \"$1\" in\n  --help) cat <<'EOF'\n{help}EOF\n  exit 0;;\n  --version) echo 'bubblewrap 0.8.0'; exit 0;;\nesac\n{run}\n",
        log.display()
    );
    let p = dir.join("bwrap");
    std::fs::write(&p, script).expect("write fake");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    p
}

fn path_with(dir: &Path) -> String {
    format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", dir.display())
}

fn calls(dir: &Path, what: &str) -> usize {
    std::fs::read_to_string(dir.join("calls.log")).unwrap_or_default().lines().filter(|l| *l == what).count()
}

fn candidate<'a>(r: &'a serde_json::Value, path: &Path) -> &'a serde_json::Value {
    let canonical = std::fs::canonicalize(path).expect("canonical");
    r["system_bwrap"]["candidates"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["canonical"] == canonical.to_string_lossy().as_ref()))
        .unwrap_or_else(|| panic!("{} not among {}", canonical.display(), r["system_bwrap"]))
}

#[test]
fn fake_bwrap_errors_are_explained_with_fixes() {
    let cases: &[(&str, &str)] = &[
        (
            "bwrap: No permissions to create a new namespace, likely because the kernel does not allow non-privileged user namespaces. On e.g. debian this can be enabled with 'sysctl kernel.unprivileged_userns_clone=1'.",
            "kernel.unprivileged_userns_clone=1",
        ),
        ("bwrap: setting up uid map: Permission denied", "kernel.apparmor_restrict_unprivileged_userns=0"),
        ("bwrap: Creating new namespace failed: Operation not permitted", "seccomp=unconfined"),
        ("bwrap: Can't mount proc on /newroot/proc: Operation not permitted", "unmask=ALL"),
        ("bwrap: loopback: Failed RTM_NEWADDR: Operation not permitted", "kernel.apparmor_restrict_unprivileged_userns=0"),
    ];
    for (error, fix) in cases {
        let dir = trusted_tempdir();
        let fake = fake_bwrap(dir.path(), &format!("{HELP_NO_ARGV0}    --argv0 VALUE  Set argv[0]\n"), Some(error), 0o755);
        let (code, r, stderr) = doctor_json(&[], &[("PATH", &path_with(dir.path()))]);
        let canonical = std::fs::canonicalize(&fake).expect("canonical");
        assert_eq!(r["verdict"]["launcher"]["exec_path"], canonical.to_string_lossy().as_ref(), "fake selected: {}", r["verdict"]);
        assert_eq!(r["verdict"]["launcher"]["supports_argv0"], true);
        let smoke = &r["smoke_test"];
        assert_eq!(smoke["ok"], false, "{smoke}");
        let explanation = smoke["explanation"].as_str().unwrap_or("");
        assert!(explanation.contains(fix), "{error}\n→ {explanation}");
        assert!(explanation.contains(error.split(':').nth(1).unwrap_or(error).trim()), "bwrap's line is quoted: {explanation}");
        let problems = r["verdict"]["problems"].to_string();
        assert!(problems.contains(fix), "{problems}");
        if error.contains("mount proc") {
            // A /proc failure alone is retried with /proc masked; the fake fails that too.
            assert_eq!(smoke["proc_masked"], false);
        }
        assert_eq!(code, 1, "{stderr}");
    }
}

#[test]
fn bwrap_without_argv0_is_used_and_probed_once() {
    let dir = trusted_tempdir();
    let fake = fake_bwrap(dir.path(), HELP_NO_ARGV0, None, 0o755);
    let (code, r, stderr) = doctor_json(&[], &[("PATH", &path_with(dir.path()))]);
    let c = candidate(&r, &fake);
    assert_eq!(c["usable"], true, "{c}");
    assert_eq!(c["supports_argv0"], false);
    assert_eq!(r["verdict"]["launcher"]["kind"], "system");
    assert_eq!(r["verdict"]["launcher"]["supports_argv0"], false);
    assert_eq!(r["smoke_test"]["ok"], true, "handed over to /usr/bin/bwrap: {}", r["smoke_test"]);
    assert_eq!(code, 0, "{stderr}");
    // doctor inspects the candidates and then selects: one probe per identity.
    assert_eq!(calls(dir.path(), "--help"), 1, "--help probed once");
    assert_eq!(calls(dir.path(), "--version"), 1, "--version probed once");
}

#[test]
fn bwrap_without_perms_is_not_used() {
    let dir = trusted_tempdir();
    let fake = fake_bwrap(dir.path(), "    --as-pid-1  x\n    --argv0 VALUE  x\n", None, 0o755);
    let (_, r, _) = doctor_json(&[], &[("PATH", &path_with(dir.path()))]);
    let c = candidate(&r, &fake);
    assert_eq!(c["usable"], false);
    assert!(c["rejected_because"].as_str().unwrap_or("").contains("lacks --perms"), "{c}");
    assert_eq!(r["verdict"]["launcher"]["exec_path"], "/usr/bin/bwrap", "next PATH entry wins");
}

#[test]
fn untrusted_system_bwrap_is_rejected() {
    assert_eq!(geteuid(), 0, "these tests chown files: run them as root (CI does)");
    let cases: &[(&str, u32, Option<u32>, u32, &str)] = &[
        ("group-writable", 0o775, None, 0o755, "group/other-writable"),
        ("world-writable", 0o757, None, 0o755, "group/other-writable"),
        ("non-root owner", 0o755, Some(65534), 0o755, "owned by uid 65534"),
        ("world-writable parent", 0o755, None, 0o777, "parent directory"),
    ];
    for (name, mode, owner, dir_mode, reason) in cases {
        let dir = trusted_tempdir();
        let fake = fake_bwrap(dir.path(), HELP_NO_ARGV0, None, *mode);
        if let Some(uid) = owner {
            std::os::unix::fs::chown(&fake, Some(*uid), None).expect("chown");
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(*dir_mode)).expect("chmod dir");
        let (_, r, _) = doctor_json(&[], &[("PATH", &path_with(dir.path()))]);
        let c = candidate(&r, &fake);
        assert_eq!(c["usable"], false, "{name}: {c}");
        assert!(c["rejected_because"].as_str().unwrap_or("").contains(reason), "{name}: {c}");
        assert_eq!(r["verdict"]["launcher"]["exec_path"], "/usr/bin/bwrap", "{name}: falls through to the next PATH entry");
        assert_eq!(calls(dir.path(), "--help"), 0, "{name}: an untrusted bwrap is never executed");

        // An explicit --bwrap-path that is untrusted is an error, not a silent fallback.
        let (code, r, _) = doctor_json(&["--bwrap-path", &fake.to_string_lossy()], &[]);
        assert_eq!(code, 1, "{name}");
        let err = r["verdict"]["launcher_error"].as_str().unwrap_or("");
        assert!(err.contains("not trusted") && err.contains(reason), "{name}: {err}");
        let (code, r, _) = doctor_json(&["--bwrap", "system", "--bwrap-path", &fake.to_string_lossy()], &[]);
        assert_eq!(code, 1, "{name}");
        assert!(r["verdict"]["launcher"].is_null());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("restore");
    }
}

#[test]
fn bwrap_mode_flags() {
    // --bwrap bundled ignores PATH; --bwrap system never uses the bundled one.
    let (_, r, _) = doctor_json(&["--bwrap", "bundled"], &[]);
    assert_eq!(r["verdict"]["launcher"]["kind"], "bundled");
    let (code, r, _) = doctor_json(&["--bwrap", "system"], &[("PATH", "/nonexistent")]);
    assert_eq!(code, 1);
    assert!(r["verdict"]["launcher_error"].as_str().unwrap_or("").contains("no `bwrap` found on PATH"), "{}", r["verdict"]);
    // auto without any system bwrap: bundled.
    let (code, r, _) = doctor_json(&[], &[("PATH", "/nonexistent")]);
    assert_eq!(r["verdict"]["launcher"]["kind"], "bundled");
    assert_eq!(code, 0);
    // --bwrap bundled with --bwrap-path: a usage error, before any report.
    let out = run({
        let mut c = Command::new(executor_bin());
        c.args(["doctor", "--json", "--bwrap", "bundled", "--bwrap-path", "/usr/bin/bwrap"]);
        c
    });
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("executor: --bwrap bundled and --bwrap-path exclude each other"));
}
