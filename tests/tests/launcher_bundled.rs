//! The bundled bwrap runs from a sealed memfd, verified through that descriptor; a
//! wrong digest is refused naming both digests; the resource-file fallback is verified
//! the same way; nothing is written on the host.

mod launcher_common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use launcher_common::{doctor_json, executor_bin, sha256sum, trusted_tempdir};

const WRONG: &str = "abababababababababababababababababababababababababababababababab";

fn expected_digest() -> String {
    let (_, r, _) = doctor_json(&["--bwrap", "bundled"], &[]);
    let d = r["bundled_bwrap"]["expected_sha256"].as_str().expect("expected_sha256").to_string();
    assert_eq!(d.len(), 64);
    assert_ne!(d, "0".repeat(64), "this test suite expects a build with the bundled bwrap");
    d
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    v.sort();
    v
}

#[test]
fn bundled_bwrap_runs_from_sealed_memfd_without_host_files() {
    let scratch = tempfile::tempdir().expect("tmp");
    let exe = executor_bin();
    let exe_dir = exe.parent().expect("exe dir").to_path_buf();
    let before = listing(&exe_dir);
    let out = Command::new(&exe)
        .args(["doctor", "--exec-bundled-bwrap-version"])
        .env("TMPDIR", scratch.path())
        .env("XDG_RUNTIME_DIR", scratch.path())
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("bubblewrap 0.12.0\n"), "{stdout}");
    assert!(stdout.contains("source: memfd"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("exec_path: /proc/self/fd/")), "{stdout}");
    assert!(stdout.contains(&format!("sha256: {}", expected_digest())), "{stdout}");
    assert!(stdout.contains("dev_build: false"), "{stdout}");
    // No helper dirs, symlinks or extracted copies anywhere we can see.
    assert!(listing(scratch.path()).is_empty(), "{:?}", listing(scratch.path()));
    assert_eq!(listing(&exe_dir), before);

    // And it actually sandboxes: doctor's test run with the bundled launcher.
    let (code, r, _) = doctor_json(&["--bwrap", "bundled"], &[]);
    assert_eq!(r["verdict"]["launcher"]["kind"], "bundled");
    assert_eq!(r["verdict"]["launcher"]["bundled_source"]["kind"], "memfd");
    assert_eq!(r["smoke_test"]["ok"], true, "{}", r["smoke_test"]);
    assert_eq!(code, 0);
}

#[test]
fn tampered_digest_is_refused_naming_both_digests() {
    let actual = expected_digest();
    let out = Command::new(executor_bin())
        .args(["doctor", "--exec-bundled-bwrap-version"])
        .env("EXECUTOR_DEBUG_EXPECT_BWRAP_SHA256", WRONG)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("expected sha256:{WRONG}")), "{stderr}");
    assert!(stderr.contains(&format!("got sha256:{actual}")), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("bubblewrap"), "must not have run it");

    // doctor: the bundled launcher is refused, with no fallback to the resource file.
    let (code, r, _) = doctor_json(&["--bwrap", "bundled"], &[("EXECUTOR_DEBUG_EXPECT_BWRAP_SHA256", WRONG)]);
    assert_eq!(code, 1);
    let err = r["verdict"]["launcher_error"].as_str().unwrap_or("");
    assert!(err.contains("digest mismatch") && err.contains(WRONG) && err.contains(&actual), "{err}");
    assert_eq!(r["verdict"]["sandbox_enforceable"], false);

    // The hook really compares: the right digest passed the same way is accepted.
    let ok = Command::new(executor_bin())
        .args(["doctor", "--exec-bundled-bwrap-version"])
        .env("EXECUTOR_DEBUG_EXPECT_BWRAP_SHA256", &actual)
        .output()
        .expect("run");
    assert!(ok.status.success());
}

/// `<dir>/executor` (a hard link, so /proc/self/exe points into `dir`) plus
/// `<dir>/executor-resources/bwrap` with the given bytes and mode.
fn install_copy(dir: &Path, resource: &Path, mode: u32) -> PathBuf {
    let exe = dir.join("executor");
    // Never copy onto an existing path: it may be a hard link to the real binary.
    if !exe.exists() && std::fs::hard_link(executor_bin(), &exe).is_err() {
        std::fs::copy(executor_bin(), &exe).expect("copy executor");
    }
    let res = dir.join("executor-resources");
    std::fs::create_dir_all(&res).expect("mkdir");
    let target = res.join("bwrap");
    let _ = std::fs::remove_file(&target);
    std::fs::copy(resource, &target).expect("copy resource");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).expect("chmod");
    exe
}

/// The bwrap that bwrap-vendor built for this executor, found by its digest.
fn built_bundled_bwrap(digest: &str) -> PathBuf {
    let build = executor_bin().parent().expect("profile dir").join("build");
    std::fs::read_dir(&build)
        .expect("target/<profile>/build")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("bwrap-vendor-"))
        .map(|e| e.path().join("out/bwrap"))
        .find(|p| p.is_file() && sha256sum(p) == digest)
        .unwrap_or_else(|| panic!("no bwrap-vendor output with sha256 {digest} under {}", build.display()))
}

fn exec_version_with_memfd_refused(exe: &Path) -> std::process::Output {
    Command::new(exe)
        .args(["doctor", "--exec-bundled-bwrap-version"])
        .env("EXECUTOR_DEBUG_REFUSE_MEMFD_EXEC", "1")
        .output()
        .expect("run copy")
}

#[test]
fn resource_file_fallback_is_verified_through_its_descriptor() {
    let expected = expected_digest();
    let dir = trusted_tempdir();

    // 1. A different bwrap as the resource file: refused, both digests named.
    let exe = install_copy(dir.path(), Path::new("/usr/bin/bwrap"), 0o755);
    let other = sha256sum(Path::new("/usr/bin/bwrap"));
    let out = exec_version_with_memfd_refused(&exe);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("executor-resources/bwrap"), "{stderr}");
    assert!(stderr.contains(&format!("expected sha256:{expected}")) && stderr.contains(&format!("got sha256:{other}")), "{stderr}");

    // 2. The real bundled bwrap as the resource file: used, from its descriptor.
    let real = built_bundled_bwrap(&expected);
    let exe = install_copy(dir.path(), &real, 0o755);
    let out = exec_version_with_memfd_refused(&exe);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("bubblewrap 0.12.0"), "{stdout}");
    assert!(stdout.contains("source: resource ") && stdout.contains("executor-resources/bwrap"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("exec_path: /proc/self/fd/")), "exec through the fd: {stdout}");

    // 3. Writable by group: refused before hashing.
    let exe = install_copy(dir.path(), &real, 0o775);
    let out = exec_version_with_memfd_refused(&exe);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("group/other-writable"), "{stderr}");

    // 4. A symlink planted as the resource is not followed.
    let target = dir.path().join("executor-resources/bwrap");
    std::fs::remove_file(&target).expect("rm");
    std::os::unix::fs::symlink(&real, &target).expect("symlink");
    let out = exec_version_with_memfd_refused(&exe);
    assert_eq!(out.status.code(), Some(1), "symlinked resource must be refused");
}

/// `vm.memfd_noexec` is per PID namespace (Linux 6.3+) and can only be tightened there:
/// in a new one set to 2, executable memfds are refused for real (no debug hook).
fn in_pidns_with_memfd_noexec_2(exe: &Path, args: &[&str]) -> std::process::Output {
    let script = format!("echo 2 > /proc/sys/vm/memfd_noexec && exec '{}' \"$@\"", exe.display());
    Command::new("unshare").args(["-p", "-f", "--mount-proc", "sh", "-c", &script, "sh"]).args(args).output().expect("unshare -p")
}

#[test]
fn memfd_noexec_2_falls_back_to_the_verified_resource_file() {
    assert!(Path::new("/proc/sys/vm/memfd_noexec").exists(), "this kernel has no vm.memfd_noexec (needs Linux >= 6.3)");
    let expected = expected_digest();
    // Without a resource file: refused, and the reason is named.
    let out = in_pidns_with_memfd_noexec_2(&executor_bin(), &["doctor", "--exec-bundled-bwrap-version"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("memfd_noexec=2") && stderr.contains("executor-resources/bwrap"), "{stderr}");
    let out = in_pidns_with_memfd_noexec_2(&executor_bin(), &["doctor", "--json", "--bwrap", "bundled"]);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(r["memfd_exec"]["memfd_noexec"], "2");
    assert_eq!(r["memfd_exec"]["exec_ok"], false);
    assert_eq!(out.status.code(), Some(1));

    // With the real bundled bwrap installed as the resource file: used from its fd.
    let dir = trusted_tempdir();
    let exe = install_copy(dir.path(), &built_bundled_bwrap(&expected), 0o755);
    let out = in_pidns_with_memfd_noexec_2(&exe, &["doctor", "--exec-bundled-bwrap-version"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("bubblewrap 0.12.0") && stdout.contains("source: resource "), "{stdout}");
    assert!(stdout.contains(&format!("sha256: {expected}")), "{stdout}");
}
