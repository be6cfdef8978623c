//! Shared helpers for the launcher_* integration tests: locate the real executor
//! binary, make directories that the launcher's trust checks accept, run doctor.
#![allow(dead_code)]

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use executor_tests::executor_bin;

fn chain_trusted(d: &Path) -> bool {
    d.ancestors().all(|a| std::fs::metadata(a).map(|m| m.uid() == 0 && m.mode() & 0o022 == 0).unwrap_or(false))
}

/// A fresh directory whose whole ancestor chain is root-owned and not group/other-
/// writable (what the launcher requires of a system bwrap's location). /tmp is not.
pub fn trusted_tempdir() -> tempfile::TempDir {
    let target_tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&target_tmp).expect("target tmp");
    let base = [target_tmp, PathBuf::from("/run"), PathBuf::from("/root")]
        .into_iter()
        .find(|d| chain_trusted(d))
        .expect("a root-owned directory chain without group/other write access (tests run as root)");
    tempfile::Builder::new().prefix("launcher-it").tempdir_in(base).expect("tempdir")
}

pub fn run(mut cmd: Command) -> Output {
    cmd.output().expect("run executor")
}

pub fn doctor_json(args: &[&str], envs: &[(&str, &str)]) -> (i32, serde_json::Value, String) {
    let mut cmd = Command::new(executor_bin());
    cmd.arg("doctor").arg("--json").args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = run(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("doctor --json printed invalid JSON ({e}):\n{stdout}\nstderr:\n{stderr}"));
    (out.status.code().unwrap_or(-1), json, stderr)
}

pub fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().expect("sha256sum");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

pub fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}
