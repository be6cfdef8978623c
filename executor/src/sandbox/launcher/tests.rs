use super::bundled::{digest_through_fd, exec_version, fd_path, get_seals, sealed_memfd, verify};
use super::system::{output_text, run_probe};
use super::*;
use sha2::{Digest as _, Sha256};
use std::io;
use std::os::unix::fs::FileExt as _;
use std::os::unix::fs::PermissionsExt as _;

/// Excerpt of `bwrap --help` from bubblewrap 0.8.0 (Debian 12).
const HELP_080: &str = "usage: bwrap [OPTIONS...] [--] COMMAND [ARGS...]\n\n\
    \x20   --help                       Print this help\n\
    \x20   --version                    Print version\n\
    \x20   --unshare-user               Create new user namespace (may be automatically implied if not setuid)\n\
    \x20   --as-pid-1                   Do not install a reaper process with PID=1\n\
    \x20   --perms OCTAL                Set permissions of next argument (--bind-data, --file, etc.)\n\
    \x20   --ro-bind-fd FD DEST         Bind open directory or path fd read-only on DEST\n";

#[test]
fn help_080_has_perms_and_pid1_but_no_argv0() {
    let f = parse_help(HELP_080);
    assert_eq!(f, HelpFlags { argv0: false, perms: true, as_pid_1: true });
}

#[test]
fn help_with_argv0() {
    let f = parse_help(&format!("{HELP_080}    --argv0 VALUE                Set argv[0] to the value VALUE before running the program\n"));
    assert!(f.argv0 && f.perms && f.as_pid_1);
}

#[test]
fn help_of_old_bwrap_without_perms() {
    let f = parse_help("    --as-pid-1   Do not install a reaper\n    --cap-drop CAP   Drop cap\n");
    assert_eq!(f, HelpFlags { argv0: false, perms: false, as_pid_1: true });
}

#[test]
fn help_matches_tokens_not_substrings() {
    // A longer option that merely starts with the name must not count.
    let f = parse_help("    --permsx OCTAL  nope\n    --as-pid-10  nope\n    --argv0-foo nope\n");
    assert_eq!(f, HelpFlags::default());
    // `[--perms]` and `--perms=` forms do count.
    assert!(parse_help("usage [--perms] x").perms);
}

#[test]
fn real_system_bwrap_help_parses_like_its_version() {
    // Ties the parser to the bwrap actually installed here (Debian 12: 0.8.0).
    let out = run_probe({
        let mut c = Command::new("/usr/bin/bwrap");
        c.arg("--help");
        c
    })
    .expect("this host has /usr/bin/bwrap");
    let flags = parse_help(&output_text(&out));
    assert!(flags.perms && flags.as_pid_1, "{flags:?}");
    let v = run_probe({
        let mut c = Command::new("/usr/bin/bwrap");
        c.arg("--version");
        c
    })
    .expect("--version");
    let version = parse_version(&String::from_utf8_lossy(&v.stdout)).expect("a version");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    assert_eq!(flags.argv0, (major, minor) >= (0, 9), "version {version} vs --argv0 {}", flags.argv0);
}

#[test]
fn version_parsing() {
    assert_eq!(parse_version("bubblewrap 0.8.0\n").as_deref(), Some("0.8.0"));
    assert_eq!(parse_version("\nbubblewrap 0.12.0 extra\n").as_deref(), Some("0.12.0"));
    assert_eq!(parse_version("weird").as_deref(), Some("weird"));
    assert_eq!(parse_version("  \n"), None);
}

#[test]
fn hex_digest_parsing() {
    let d = [0xabu8; 32];
    assert_eq!(parse_hex_digest(&hex(&d)), Some(d));
    assert_eq!(parse_hex_digest(&format!(" {}\n", hex(&d))), Some(d));
    assert_eq!(parse_hex_digest("abc"), None);
    assert_eq!(parse_hex_digest(&"zz".repeat(32)), None);
    assert_eq!(parse_hex_digest(&"é".repeat(32)), None);
}

fn trusted_dir() -> tempfile::TempDir {
    // Under the target dir: root-owned, not group/other-writable up to `/`,
    // unlike /tmp (sticky, world-writable), which `check_trusted` rejects.
    let trusted = |d: &Path| d.ancestors().all(|a| std::fs::metadata(a).map(|m| m.uid() == 0 && m.mode() & 0o022 == 0).unwrap_or(false));
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default();
    let base = [workspace, PathBuf::from("/run"), PathBuf::from("/root")]
        .into_iter()
        .find(|d| trusted(d))
        .expect("a root-owned directory chain without group/other write access");
    tempfile::Builder::new().prefix("launcher-unit").tempdir_in(base).expect("tempdir")
}

fn fake_bwrap(dir: &Path, mode: u32) -> PathBuf {
    let p = dir.join("bwrap");
    std::fs::write(&p, "#!/bin/sh\nexit 0\n").expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    p
}

#[test]
fn trust_checks_owner_mode_and_parents() {
    if unsafe_geteuid() != 0 {
        panic!("these checks need root to chown (the project's CI runs as root)");
    }
    let dir = trusted_dir();
    let p = fake_bwrap(dir.path(), 0o755);
    let canonical = std::fs::canonicalize(&p).expect("canonical");
    check_trusted(&canonical).expect("root-owned 0755 file in root-owned dirs is trusted");

    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o775)).expect("chmod");
    let e = check_trusted(&canonical).expect_err("group-writable");
    assert!(e.contains("group/other-writable"), "{e}");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o757)).expect("chmod");
    assert!(check_trusted(&canonical).is_err(), "world-writable");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(check_trusted(&canonical).expect_err("not executable").contains("not executable"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    std::os::unix::fs::chown(&p, Some(65534), None).expect("chown");
    let e = check_trusted(&canonical).expect_err("non-root owner");
    assert!(e.contains("uid 65534"), "{e}");
    std::os::unix::fs::chown(&p, Some(0), None).expect("chown back");

    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod dir");
    let e = check_trusted(&canonical).expect_err("writable parent");
    assert!(e.contains("parent directory"), "{e}");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod dir");

    // /tmp is world-writable (sticky): never a trusted place for a launcher.
    let tmp = tempfile::tempdir().expect("tmp");
    let t = fake_bwrap(tmp.path(), 0o755);
    let canonical_tmp = std::fs::canonicalize(&t).expect("canonical");
    if std::fs::metadata(std::env::temp_dir()).map(|m| m.mode() & 0o002 != 0).unwrap_or(false) {
        assert!(check_trusted(&canonical_tmp).is_err());
    }
}

fn unsafe_geteuid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

fn system_launcher_at(path: &Path) -> Launcher {
    Launcher {
        source: Source::System { identity: FileIdentity { dev: 0, ino: 0, mtime: 0, mtime_nsec: 0, size: 0 } },
        exec_path: path.to_path_buf(),
        version: Some("0.8.0".into()),
        supports_argv0: false,
        supports_perms: true,
        supports_as_pid_1: true,
        proc_mountable: OnceLock::new(),
    }
}

#[test]
fn usable_for_rejects_bwrap_under_cwd_or_writable_root() {
    let dir = trusted_dir();
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    let bin = root.join("repo/bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let l = system_launcher_at(&bin.join("bwrap"));
    let e = l.is_usable_for(&root.join("repo"), &[]).expect_err("under cwd");
    assert!(e.to_string().contains("cwd"), "{e}");
    let e = l.is_usable_for(Path::new("/"), std::slice::from_ref(&root)).expect_err("under writable root");
    assert!(e.to_string().contains("writable root"), "{e}");
    // Writable root given through a symlink is compared canonically.
    let link = root.join("link");
    std::os::unix::fs::symlink(root.join("repo"), &link).expect("symlink");
    assert!(l.is_usable_for(Path::new("/"), &[link]).is_err());
    // cwd `/` does not reject everything; unrelated roots are fine.
    l.is_usable_for(Path::new("/"), &[PathBuf::from("/nonexistent-root")]).expect("usable");
    // A memfd-backed launcher lives on no filesystem.
    let mut b = system_launcher_at(Path::new("/proc/self/fd/9"));
    let file = sealed_memfd(b"not bwrap").expect("memfd");
    b.source = Source::Bundled { file, measured_digest: [0; 32], dev_build: false, origin: BundledSource::Memfd };
    b.is_usable_for(&root, &[PathBuf::from("/")]).expect("memfd always usable");
}

#[test]
fn memfd_is_sealed_cloexec_and_hashed_through_the_fd() {
    let data = b"hello sealed world".repeat(10_000);
    let f = sealed_memfd(&data).expect("memfd");
    // SAFETY: F_GETFD on a valid descriptor.
    let fdflags = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFD) };
    assert!(fdflags & libc::FD_CLOEXEC != 0, "memfd must be close-on-exec");
    let seals = get_seals(&f).expect("seals");
    for s in [libc::F_SEAL_SEAL, libc::F_SEAL_SHRINK, libc::F_SEAL_GROW, libc::F_SEAL_WRITE] {
        assert!(seals & s != 0, "seal {s:#x} missing in {seals:#x}");
    }
    // Writes through the fd or a fresh writable open of /proc/self/fd/N are refused.
    assert!(f.write_at(b"x", 0).is_err());
    // (Opening it writable is allowed; writing through that new description is not.)
    if let Ok(mut w) = std::fs::OpenOptions::new().write(true).open(fd_path(&f)) {
        assert!(io::Write::write_all(&mut w, b"x").is_err());
    }
    assert!(f.set_len(1).is_err());
    let expected: [u8; 32] = {
        let mut o = [0u8; 32];
        o.copy_from_slice(&Sha256::digest(&data));
        o
    };
    assert_eq!(digest_through_fd(&f).expect("digest"), expected);
}

#[test]
fn cloexec_memfd_execs_elf_but_not_a_script() {
    // Why MFD_CLOEXEC is kept: the kernel opens /proc/self/fd/N before closing
    // close-on-exec fds, so an ELF runs; a `#!` script's interpreter would get a
    // closed /dev/fd/N. bwrap is ELF.
    if bwrap_vendor::BUNDLED {
        let f = sealed_memfd(bwrap_vendor::BWRAP_BYTES).expect("memfd");
        let v = exec_version(&f).expect("ELF from a CLOEXEC memfd runs");
        assert_eq!(v, bwrap_vendor::BWRAP_VERSION);
    }
    let script = sealed_memfd(b"#!/bin/sh\necho script-ran\n").expect("memfd");
    let out = Command::new(fd_path(&script)).output();
    let ran = out.map(|o| String::from_utf8_lossy(&o.stdout).contains("script-ran")).unwrap_or(false);
    assert!(!ran, "a script in a CLOEXEC memfd unexpectedly ran");
}

#[test]
fn bundled_launcher_verifies_and_runs() {
    if !bwrap_vendor::BUNDLED {
        assert!(matches!(bundled_uncached(), Err(LauncherError::NoBundled) | Err(LauncherError::BundledUnavailable { .. })));
        return;
    }
    let l = bundled_uncached().expect("bundled launcher");
    assert_eq!(l.kind(), LauncherKind::Bundled);
    assert_eq!(l.measured_digest_hex(), Some(hex(&bwrap_vendor::BWRAP_SHA256)));
    assert_eq!(l.version.as_deref(), Some(bwrap_vendor::BWRAP_VERSION));
    assert!(l.exec_path.starts_with("/proc/self/fd/"));
    let out = l.command().arg("--version").output().expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("bubblewrap {}", bwrap_vendor::BWRAP_VERSION));
}

#[test]
fn verify_refuses_mismatch_naming_both_digests() {
    let f = sealed_memfd(b"not bwrap").expect("memfd");
    if bwrap_vendor::is_dev_build() {
        return;
    }
    match verify("sealed memfd", &f) {
        Err(LauncherError::DigestMismatch { expected, actual, .. }) => {
            assert_eq!(expected, hex(&bwrap_vendor::BWRAP_SHA256));
            assert_eq!(actual, hex(&Sha256::digest(b"not bwrap")));
            let msg =
                LauncherError::DigestMismatch { source_desc: "x".into(), expected: expected.clone(), actual: actual.clone() }.to_string();
            assert!(msg.contains(&expected) && msg.contains(&actual), "{msg}");
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

#[test]
fn path_search_skips_relative_entries_and_missing_files() {
    let dir = trusted_dir();
    let a = dir.path().join("a");
    std::fs::create_dir(&a).expect("mkdir");
    fake_bwrap(&a, 0o755);
    let path = std::env::join_paths([PathBuf::from("relative/dir"), dir.path().join("empty"), a.clone()]).expect("join");
    assert_eq!(path_candidates(Some(&path)), vec![a.join("bwrap")]);
    assert!(path_candidates(None).is_empty());
}

#[test]
fn config_conflict_and_explicit_path_do_not_fall_back() {
    let c = LauncherConfig {
        mode: BwrapMode::Bundled,
        path_override: Some("/usr/bin/bwrap".into()),
        max_procs: None,
        ..LauncherConfig::default()
    };
    assert!(matches!(select(&c), Err(LauncherError::ConfigConflict)));
    let c = LauncherConfig {
        mode: BwrapMode::Auto,
        path_override: Some("/nonexistent/bwrap".into()),
        max_procs: None,
        ..LauncherConfig::default()
    };
    let e = select(&c).expect_err("explicit path that does not exist");
    assert!(e.to_string().contains("/nonexistent/bwrap"), "{e}");
}
