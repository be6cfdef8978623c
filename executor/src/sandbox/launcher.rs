//! Which bwrap runs the sandbox: the host's (`System`) or the one compiled into this
//! binary (`Bundled`), and how it is executed.
//!
//! Selection (`select`) happens once per server and is cached:
//! * the system candidate's `--help`/`--version` probe is cached by the file identity
//!   (dev, ino, mtime, size) of the canonical path, so an upgraded bwrap is re-probed and
//!   an unchanged one never is; the cheap trust checks (owner, modes, parents) run on
//!   every `select` so a later `chmod o+w` is noticed;
//! * the bundled launcher (sealed memfd or resource file) is built once per process.
//!
//! None of these caches maps a policy to kernel state: they hold which binary builds a
//! sandbox, keyed by that binary's identity, and every mount, mask and Landlock rule is
//! made per launch from a plan resolved for that request. `proc_mountable` only decides
//! between a fresh `/proc` and an empty one (never the host's), so a stale answer can
//! narrow a sandbox, not widen it.
//!
//! Order for `--bwrap auto`: a trusted system bwrap from PATH that advertises `--perms`
//! and `--as-pid-1` (with or without `--argv0`), else the bundled one. Per request,
//! `is_usable_for` rejects a system bwrap under the command's cwd or a writable root;
//! `select_for` then falls back to the bundled one in `auto` mode.
//!
//! Exec of the bundled bwrap: the bytes go into a memfd created with MFD_CLOEXEC |
//! MFD_ALLOW_SEALING, sealed against any change, hashed by reading back through that same
//! descriptor and compared with the digest compiled in by `bwrap-vendor`; it is then
//! executed as `/proc/self/fd/N`. Keeping MFD_CLOEXEC is deliberate: the kernel resolves
//! `/proc/self/fd/N` (in the forked child, whose fd table is a copy) before it closes
//! close-on-exec descriptors, so an ELF binary runs fine, and bwrap — and therefore the
//! sandboxed command — does not inherit a descriptor to it. (For a `#!` script the
//! interpreter would get a closed `/dev/fd/N`; bwrap is ELF, and a test pins that exec
//! works.) Callers that close descriptors in the child before exec must spare
//! `exec_fd()`.
//!
//! If exec from a memfd is refused (`vm.memfd_noexec=2`, an LSM), the fallback is a
//! resource file `<exe_dir>/executor-resources/bwrap` for packagers: opened once,
//! checked (regular, owned by root or us, not group/other-writable), hashed through the
//! opened descriptor and executed through `/proc/self/fd/N` of that descriptor, so the
//! inode that was verified is the inode that runs. Nothing is ever written to the host.

use crate::sync::lock;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// Where the resource-file fallback lives, relative to the directory of the executable.
pub const RESOURCE_RELATIVE_PATH: &str = "executor-resources/bwrap";

/// How long a probe of a bwrap (`--help`, `--version`) may take before we give up on it.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Debug builds only: overrides the expected digest so tests can prove that a mismatch
/// is refused. Compiled out of release builds (see `expected_digest`).
pub const DEBUG_EXPECTED_DIGEST_ENV: &str = "EXECUTOR_DEBUG_EXPECT_BWRAP_SHA256";
/// Debug builds only: pretend exec from a memfd is refused, to test the resource file.
pub const DEBUG_REFUSE_MEMFD_EXEC_ENV: &str = "EXECUTOR_DEBUG_REFUSE_MEMFD_EXEC";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LauncherKind {
    System,
    Bundled,
}

/// Operator's choice (`--bwrap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BwrapMode {
    /// Trusted system bwrap from PATH when it is capable enough, else the bundled one.
    #[default]
    Auto,
    /// Only the system bwrap (from PATH, or `--bwrap-path`).
    System,
    /// Only the bundled bwrap.
    Bundled,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LauncherConfig {
    pub mode: BwrapMode,
    /// `--bwrap-path`: use this system bwrap instead of searching PATH. An explicit path
    /// that is unusable is an error, never silently replaced by the bundled bwrap.
    pub path_override: Option<PathBuf>,
    /// Most processes (and threads) one sandbox may hold; `None` for no limit.
    pub max_procs: Option<u64>,
    /// The inner stage's exit status when the command cannot be executed.
    pub exec_failure: super::inner::ExecFailure,
}

/// Default of `--sandbox-max-procs`: far above what a build or test run needs, far below
/// what exhausts a host.
pub const DEFAULT_MAX_PROCS: u64 = 4096;

impl Default for LauncherConfig {
    fn default() -> Self {
        LauncherConfig {
            mode: BwrapMode::default(),
            path_override: None,
            max_procs: Some(DEFAULT_MAX_PROCS),
            exec_failure: super::inner::ExecFailure::default(),
        }
    }
}

/// Where a bundled launcher's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BundledSource {
    /// Sealed memfd filled from the bytes compiled into this binary.
    Memfd,
    /// `<exe_dir>/executor-resources/bwrap`, because exec from a memfd was refused.
    ResourceFile { path: PathBuf, memfd_error: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub size: u64,
}

impl FileIdentity {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self { dev: meta.dev(), ino: meta.ino(), mtime: meta.mtime(), mtime_nsec: meta.mtime_nsec(), size: meta.size() }
    }
}

#[derive(Debug)]
pub struct Launcher {
    pub kind: LauncherKind,
    /// What to execve: the canonical system path, or `/proc/self/fd/N` of the verified
    /// descriptor (memfd or resource file).
    pub exec_path: PathBuf,
    pub version: Option<String>,
    pub supports_argv0: bool,
    pub supports_perms: bool,
    pub supports_as_pid_1: bool,
    /// Keeps the memfd / resource file open for as long as the launcher is in use.
    fd: Option<File>,
    /// System: identity of the file that was probed.
    identity: Option<FileIdentity>,
    /// Bundled: digest measured through the descriptor (always computed).
    measured_digest: Option<[u8; 32]>,
    /// Bundled: the all-zero digest was compiled in, so nothing was compared.
    dev_build: bool,
    bundled_source: Option<BundledSource>,
    /// Whether a fresh procfs can be mounted in a sandbox, learned by one trial run.
    proc_mountable: OnceLock<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum LauncherError {
    #[error("no `bwrap` found on PATH ({path})")]
    SystemNotFound { path: String },
    #[error("system bwrap {path} cannot be found: {source}")]
    SystemUnresolvable { path: PathBuf, source: io::Error },
    #[error("system bwrap {path} is not trusted: {reason}")]
    SystemUntrusted { path: PathBuf, reason: String },
    #[error("system bwrap {path} ({version}) lacks {missing}; install bubblewrap >= 0.5 (>= 0.9 for --argv0) or use --bwrap bundled")]
    SystemMissingFlags { path: PathBuf, version: String, missing: String },
    #[error("could not run system bwrap {path} to probe it: {reason}")]
    SystemProbe { path: PathBuf, reason: String },
    #[error("no usable system bwrap: {}", .0.join("; "))]
    NoUsableSystem(Vec<String>),
    #[error("bwrap {path} cannot be used for this request: {reason}")]
    NotUsableForRequest { path: PathBuf, reason: String },
    #[error("bundled bubblewrap digest mismatch for {source_desc}: expected sha256:{expected}, got sha256:{actual}; refusing to run it")]
    DigestMismatch { source_desc: String, expected: String, actual: String },
    #[error("this executor was built without a bundled bwrap (EXECUTOR_NO_BUNDLED_BWRAP=1) and no {RESOURCE_RELATIVE_PATH} was found next to it")]
    NoBundled,
    #[error("bundled bwrap cannot be executed: from a memfd: {memfd}; from the resource file: {resource}")]
    BundledUnavailable { memfd: String, resource: String },
    #[error("--bwrap bundled and --bwrap-path exclude each other")]
    ConfigConflict,
    #[error("no bwrap available: system: {system}; bundled: {bundled}")]
    Unavailable { system: Box<LauncherError>, bundled: Box<LauncherError> },
    /// A bundled-launcher failure from the first attempt in this process, re-reported.
    #[error("{0}")]
    BundledCached(Arc<LauncherError>),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl LauncherError {
    /// The error, then its fix on a line of its own, for a command-line user (the caller
    /// prints `executor: ` before it).
    pub fn with_fix(&self) -> String {
        format!("{self}\nexecutor: FIX: {}", self.fix())
    }

    /// What the operator can do about it; each text names the cause it answers.
    pub fn fix(&self) -> String {
        match self {
            LauncherError::SystemNotFound { .. } | LauncherError::NoUsableSystem(_) => {
                "install bubblewrap >= 0.5 (`apt-get install bubblewrap`), or use the bundled one (`--bwrap auto` or `--bwrap bundled`)"
                    .into()
            }
            LauncherError::SystemUnresolvable { path, .. } => format!(
                "give --bwrap-path the path of an installed bwrap (`command -v bwrap`, usually /usr/bin/bwrap) instead of {}, \
                 or drop --bwrap-path to use the bundled bwrap",
                path.display()
            ),
            LauncherError::SystemUntrusted { path, .. } => format!(
                "make {} and every directory above it owned by root and not writable by group or others \
                 (`chown root:root` and `chmod go-w` on each), or point --bwrap-path at a bwrap that is (e.g. /usr/bin/bwrap), \
                 or drop --bwrap-path to use the bundled bwrap",
                path.display()
            ),
            LauncherError::SystemMissingFlags { .. } => {
                "install bubblewrap >= 0.9 (>= 0.5 at least), or use the bundled one (`--bwrap bundled`)".into()
            }
            LauncherError::SystemProbe { path, .. } => {
                format!("check that `{} --version` runs on this host, or use `--bwrap bundled`", path.display())
            }
            LauncherError::NotUsableForRequest { .. } => {
                "move the system bwrap out of the command's cwd and writable roots, or use `--bwrap auto`/`--bwrap bundled`".into()
            }
            LauncherError::DigestMismatch { .. } => {
                "reinstall the executor from a trusted build: its bundled bwrap does not match the digest it was built with".into()
            }
            LauncherError::NoBundled => {
                "build the executor without EXECUTOR_NO_BUNDLED_BWRAP (needs libcap-dev and a C compiler), or install bubblewrap".into()
            }
            LauncherError::BundledUnavailable { .. } => format!(
                "allow exec from memfds (`sysctl -w vm.memfd_noexec=0`), or ship the bwrap next to the executor as {RESOURCE_RELATIVE_PATH}"
            ),
            LauncherError::ConfigConflict => "give either `--bwrap bundled` or `--bwrap-path`, not both".into(),
            LauncherError::Unavailable { system, bundled } => format!("{}; or {}", system.fix(), bundled.fix()),
            LauncherError::BundledCached(first) => first.fix(),
            LauncherError::Io { .. } => "see the error: the executor could not read what it needs to start bwrap".into(),
        }
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> LauncherError {
    let context = context.into();
    move |source| LauncherError::Io { context, source }
}

impl Launcher {
    /// Descriptor that must stay open in a child until it execs `exec_path`
    /// (None for a system bwrap).
    pub fn exec_fd(&self) -> Option<RawFd> {
        self.fd.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// A command that runs this bwrap, with argv[0] `bwrap` (bwrap's messages start
    /// with its argv[0]-independent "bwrap:" prefix either way; this keeps `ps` tidy).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.exec_path);
        cmd.arg0("bwrap");
        cmd
    }

    /// Runs `true` under this bwrap with the namespaces and base mounts of a
    /// network-restricted command, `/proc` set up by `proc_args`. Returns whether it
    /// succeeded, and bwrap's stderr.
    pub fn trial_run(&self, proc_args: [&'static str; 2]) -> (bool, String) {
        let args = trial_args(proc_args);
        let mut cmd = self.command();
        cmd.args(&args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).env_clear();
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => return (false, format!("cannot start {}: {e}", self.exec_path.display())),
        };
        let deadline = Instant::now() + TRIAL_LIMIT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                _ => {
                    let _ = child.kill();
                    break;
                }
            }
        }
        match child.wait_with_output() {
            Ok(out) => (out.status.success(), String::from_utf8_lossy(&out.stderr).trim().to_string()),
            Err(e) => (false, e.to_string()),
        }
    }

    /// Whether sandboxes can get a fresh `/proc` of their PID namespace. Hosts where the
    /// kernel refuses it (a container whose /proc has locked over-mounts) get a masked,
    /// empty `/proc` instead: never the host's. Learned once per launcher by a trial
    /// run; any other failure counts as mountable so the real run reports it.
    pub fn can_mount_proc(&self) -> bool {
        *self.proc_mountable.get_or_init(|| {
            let (ok, stderr) = self.trial_run(["--proc", "/proc"]);
            let mountable = ok || !is_proc_mount_failure(&stderr);
            if !mountable {
                tracing::warn!("a fresh /proc cannot be mounted in sandboxes on this host ({stderr}); sandboxes get an empty /proc");
            }
            mountable
        })
    }

    pub fn is_dev_build(&self) -> bool {
        self.dev_build
    }

    pub fn measured_digest_hex(&self) -> Option<String> {
        self.measured_digest.as_ref().map(|d| hex(d))
    }

    pub fn bundled_source(&self) -> Option<&BundledSource> {
        self.bundled_source.as_ref()
    }

    pub fn identity(&self) -> Option<FileIdentity> {
        self.identity
    }

    /// Per-request check: a system bwrap under the command's cwd or under one of its
    /// writable roots could be replaced by the sandboxed code itself (for a later run),
    /// so it is not used for that request. Same for the resource-file fallback: its
    /// inode is verified once, but its bytes could be rewritten by a command that may
    /// write there. A memfd is on no filesystem and is always usable.
    pub fn is_usable_for(&self, cwd: &Path, writable_roots: &[PathBuf]) -> Result<(), LauncherError> {
        let on_disk = match (&self.kind, &self.bundled_source) {
            (LauncherKind::System, _) => self.exec_path.clone(),
            (LauncherKind::Bundled, Some(BundledSource::ResourceFile { path, .. })) => path.clone(),
            (LauncherKind::Bundled, _) => return Ok(()),
        };
        let cwd = canonical_or_lexical(cwd);
        if cwd != Path::new("/") && on_disk.starts_with(&cwd) {
            return Err(LauncherError::NotUsableForRequest {
                path: on_disk,
                reason: format!("it lies under the command's cwd {}", cwd.display()),
            });
        }
        for root in writable_roots {
            let root = canonical_or_lexical(root);
            if on_disk.starts_with(&root) {
                return Err(LauncherError::NotUsableForRequest {
                    path: on_disk,
                    reason: format!("it lies under the writable root {}", root.display()),
                });
            }
        }
        Ok(())
    }
}

fn canonical_or_lexical(p: &Path) -> PathBuf {
    // A writable root that does not exist yet cannot contain the bwrap; comparing the
    // lexical path is then the conservative choice.
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub fn parse_hex_digest(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

// ---------------------------------------------------------------------------------
// Probing
// ---------------------------------------------------------------------------------

/// Flags found in `bwrap --help`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HelpFlags {
    pub argv0: bool,
    pub perms: bool,
    pub as_pid_1: bool,
}

/// Looks for whole option tokens (not substrings), so `--perms` is not found inside a
/// longer option name or a sentence mentioning it in passing after a different prefix.
pub fn parse_help(text: &str) -> HelpFlags {
    let mut flags = HelpFlags::default();
    for token in text.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']' || c == '=') {
        match token {
            "--argv0" => flags.argv0 = true,
            "--perms" => flags.perms = true,
            "--as-pid-1" => flags.as_pid_1 = true,
            _ => {}
        }
    }
    flags
}

/// `bubblewrap 0.8.0` → `0.8.0`; anything else → the first line, trimmed.
pub fn parse_version(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let version = line.strip_prefix("bubblewrap ").unwrap_or(line);
    Some(version.split_whitespace().next().unwrap_or(version).to_string())
}

/// Runs a probe command with a deadline. The exit status is not judged here: bwrap
/// versions differ in what `--help` returns.
fn run_probe(mut cmd: Command) -> io::Result<Output> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // A probe must not depend on, or leak, the server's environment.
    cmd.env_clear().env("LC_ALL", "C");
    let mut child = cmd.spawn()?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let mut pause = Duration::from_micros(200);
    loop {
        if child.try_wait()?.is_some() {
            return child.wait_with_output();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(io::ErrorKind::TimedOut, "probe timed out"));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

fn output_text(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push('\n');
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s
}

// ---------------------------------------------------------------------------------
// System bwrap
// ---------------------------------------------------------------------------------

/// One `bwrap` found on PATH (or given by `--bwrap-path`) and what became of it.
#[derive(Debug)]
pub struct SystemCandidate {
    pub found_at: PathBuf,
    pub canonical: Option<PathBuf>,
    pub outcome: Result<Arc<Launcher>, LauncherError>,
}

/// Every `bwrap` on PATH, in order, canonicalised and de-duplicated. Relative PATH
/// entries are skipped: they would resolve against the server's cwd, which is no
/// trusted location.
pub fn path_candidates(path_var: Option<&std::ffi::OsStr>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Some(path_var) = path_var else { return out };
    for dir in std::env::split_paths(path_var) {
        if !dir.is_absolute() {
            continue;
        }
        let candidate = dir.join("bwrap");
        if candidate.is_file() && !out.contains(&candidate) {
            out.push(candidate);
        }
    }
    out
}

/// Owner must be root and nobody else may write the file or any directory above it:
/// anyone who can write them can choose what runs as our sandbox.
pub fn check_trusted(canonical: &Path) -> Result<FileIdentity, String> {
    let meta = std::fs::symlink_metadata(canonical).map_err(|e| format!("stat failed: {e}"))?;
    if !meta.file_type().is_file() {
        return Err("not a regular file".into());
    }
    if meta.uid() != 0 {
        return Err(format!("owned by uid {}, not root", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("group/other-writable (mode {:o})", meta.mode() & 0o7777));
    }
    if meta.mode() & 0o111 == 0 {
        return Err("not executable".into());
    }
    for dir in canonical.ancestors().skip(1) {
        let d = std::fs::metadata(dir).map_err(|e| format!("stat of {} failed: {e}", dir.display()))?;
        if d.uid() != 0 {
            return Err(format!("parent directory {} is owned by uid {}, not root", dir.display(), d.uid()));
        }
        if d.mode() & 0o022 != 0 {
            return Err(format!("parent directory {} is group/other-writable (mode {:o})", dir.display(), d.mode() & 0o7777));
        }
    }
    Ok(FileIdentity::of(&meta))
}

type IdentityKey = (PathBuf, FileIdentity);
type ProbeCache = HashMap<IdentityKey, Result<ProbeResult, String>>;

#[derive(Debug, Clone)]
struct ProbeResult {
    flags: HelpFlags,
    version: Option<String>,
}

/// `bwrap --help` and `bwrap --version`, once per file identity.
fn probe_system(canonical: &Path, identity: FileIdentity) -> Result<ProbeResult, String> {
    static PROBES: OnceLock<Mutex<ProbeCache>> = OnceLock::new();
    let cache = PROBES.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (canonical.to_path_buf(), identity);
    if let Some(hit) = lock(cache).get(&key) {
        return hit.clone();
    }
    let result = (|| {
        let mut help = Command::new(canonical);
        help.arg("--help");
        let help = run_probe(help).map_err(|e| e.to_string())?;
        let flags = parse_help(&output_text(&help));
        let mut ver = Command::new(canonical);
        ver.arg("--version");
        let version = run_probe(ver).ok().and_then(|o| parse_version(&String::from_utf8_lossy(&o.stdout)));
        Ok(ProbeResult { flags, version })
    })();
    lock(cache).insert(key, result.clone());
    result
}

fn evaluate_system(found_at: &Path) -> (Option<PathBuf>, Result<Arc<Launcher>, LauncherError>) {
    let canonical = match std::fs::canonicalize(found_at) {
        Ok(c) => c,
        Err(source) => return (None, Err(LauncherError::SystemUnresolvable { path: found_at.to_path_buf(), source })),
    };
    let result = (|| {
        let identity = check_trusted(&canonical).map_err(|reason| LauncherError::SystemUntrusted { path: canonical.clone(), reason })?;
        let probe = probe_system(&canonical, identity).map_err(|reason| LauncherError::SystemProbe { path: canonical.clone(), reason })?;
        let mut missing = Vec::new();
        if !probe.flags.perms {
            missing.push("--perms");
        }
        if !probe.flags.as_pid_1 {
            missing.push("--as-pid-1");
        }
        if !missing.is_empty() {
            return Err(LauncherError::SystemMissingFlags {
                path: canonical.clone(),
                version: probe.version.clone().unwrap_or_else(|| "unknown version".into()),
                missing: missing.join(" and "),
            });
        }
        Ok(system_launcher(&canonical, identity, &probe))
    })();
    (Some(canonical), result)
}

/// Longest a trial run may take before it counts as failed.
const TRIAL_LIMIT: Duration = Duration::from_secs(10);

/// bwrap's message when the kernel refuses a new procfs ("Can't mount proc on
/// /newroot/proc: Operation not permitted"); matched without the path.
pub fn is_proc_mount_failure(stderr: &str) -> bool {
    stderr.contains("Can't mount proc")
}

/// The bwrap arguments of [`Launcher::trial_run`].
pub fn trial_args(proc_args: [&'static str; 2]) -> Vec<&'static str> {
    let mut args = vec![
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-net",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--as-pid-1",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
    ];
    args.extend(proc_args);
    args.extend(["--cap-drop", "ALL", "--", true_binary()]);
    args
}

/// `true`, from wherever this system keeps it.
pub fn true_binary() -> &'static str {
    if Path::new("/usr/bin/true").exists() {
        "/usr/bin/true"
    } else {
        "/bin/true"
    }
}

/// One shared `Arc` per (path, identity) so callers can compare launchers cheaply.
fn system_launcher(canonical: &Path, identity: FileIdentity, probe: &ProbeResult) -> Arc<Launcher> {
    static LAUNCHERS: OnceLock<Mutex<HashMap<IdentityKey, Arc<Launcher>>>> = OnceLock::new();
    let cache = LAUNCHERS.get_or_init(|| Mutex::new(HashMap::new()));
    lock(cache)
        .entry((canonical.to_path_buf(), identity))
        .or_insert_with(|| {
            Arc::new(Launcher {
                kind: LauncherKind::System,
                exec_path: canonical.to_path_buf(),
                version: probe.version.clone(),
                supports_argv0: probe.flags.argv0,
                supports_perms: probe.flags.perms,
                supports_as_pid_1: probe.flags.as_pid_1,
                fd: None,
                identity: Some(identity),
                measured_digest: None,
                dev_build: false,
                bundled_source: None,
                proc_mountable: OnceLock::new(),
            })
        })
        .clone()
}

/// All system candidates for this configuration and their verdicts (for `doctor`).
pub fn inspect_system(config: &LauncherConfig) -> Vec<SystemCandidate> {
    let found = match &config.path_override {
        Some(p) => vec![p.clone()],
        None => path_candidates(std::env::var_os("PATH").as_deref()),
    };
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for found_at in found {
        // /bin/bwrap and /usr/bin/bwrap are one file on merged-/usr systems.
        if let Ok(c) = std::fs::canonicalize(&found_at) {
            if seen.contains(&c) {
                continue;
            }
            seen.push(c);
        }
        let (canonical, outcome) = evaluate_system(&found_at);
        out.push(SystemCandidate { found_at, canonical, outcome });
    }
    out
}

fn select_system(config: &LauncherConfig) -> Result<Arc<Launcher>, LauncherError> {
    let candidates = inspect_system(config);
    if candidates.is_empty() {
        return Err(LauncherError::SystemNotFound { path: std::env::var("PATH").unwrap_or_else(|_| "PATH unset".into()) });
    }
    let mut reasons = Vec::new();
    for c in candidates {
        match c.outcome {
            Ok(l) => return Ok(l),
            Err(e) if config.path_override.is_some() => return Err(e),
            Err(e) => reasons.push(e.to_string()),
        }
    }
    Err(LauncherError::NoUsableSystem(reasons))
}

// ---------------------------------------------------------------------------------
// Bundled bwrap
// ---------------------------------------------------------------------------------

/// The digest the bundled bwrap must have. Debug builds let tests inject a different
/// one to prove that a mismatch is refused; release builds cannot be told.
fn expected_digest() -> [u8; 32] {
    #[cfg(debug_assertions)]
    if let Some(v) = std::env::var_os(DEBUG_EXPECTED_DIGEST_ENV) {
        if let Some(d) = v.to_str().and_then(parse_hex_digest) {
            tracing::warn!("{DEBUG_EXPECTED_DIGEST_ENV} overrides the bundled bwrap digest (debug build)");
            return d;
        }
    }
    bwrap_vendor::BWRAP_SHA256
}

fn memfd_exec_refused_for_test() -> bool {
    #[cfg(debug_assertions)]
    if std::env::var_os(DEBUG_REFUSE_MEMFD_EXEC_ENV).is_some_and(|v| v == "1") {
        return true;
    }
    false
}

/// MFD_EXEC (Linux 6.3): ask explicitly for an executable memfd, so that with
/// `vm.memfd_noexec=1` we are not handed a silently non-executable one. Older kernels
/// reject the unknown flag with EINVAL, and we retry without it.
const MFD_EXEC: libc::c_uint = 0x0010;

fn memfd_create(name: &std::ffi::CStr, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string; memfd_create does not retain it.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn add_seals(fd: &File, seals: libc::c_int) -> io::Result<()> {
    // SAFETY: F_ADD_SEALS takes an int argument; `fd` is a valid open descriptor.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn get_seals(fd: &File) -> io::Result<libc::c_int> {
    // SAFETY: F_GET_SEALS takes no argument; `fd` is a valid open descriptor.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// SHA-256 of everything readable through `fd`, from offset 0 (pread: independent of,
/// and not moving, the file offset).
fn digest_through_fd(fd: &File) -> io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    loop {
        let n = fd.read_at(&mut buf, offset)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&hasher.finalize());
    Ok(out)
}

/// Fills and seals a memfd with the bundled bytes.
fn sealed_memfd(bytes: &[u8]) -> io::Result<File> {
    let name = c"executor-bwrap";
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    let fd = match memfd_create(name, base | MFD_EXEC) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => memfd_create(name, base)?,
        other => other?,
    };
    let mut file = File::from(fd);
    io::Write::write_all(&mut file, bytes)?;
    // F_SEAL_EXEC (6.3+) also freezes the exec bits; older kernels reject it, so it is
    // best effort. WRITE/SHRINK/GROW make the contents immutable, SEAL freezes the set.
    let required = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    if add_seals(&file, required | libc::F_SEAL_EXEC).is_err() {
        add_seals(&file, required)?;
    }
    add_seals(&file, libc::F_SEAL_SEAL)?;
    let seals = get_seals(&file)?;
    let all = required | libc::F_SEAL_SEAL;
    if seals & all != all {
        return Err(io::Error::other(format!("memfd seals incomplete: {seals:#x}")));
    }
    Ok(file)
}

fn fd_path(fd: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Runs `<fd path> --version` once: proves that exec through this descriptor works
/// here and reads the version.
fn exec_version(fd: &File) -> io::Result<String> {
    let mut cmd = Command::new(fd_path(fd));
    cmd.arg0("bwrap").arg("--version");
    let out = run_probe(cmd)?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.starts_with("bubblewrap ") {
        return Err(io::Error::other(format!("`bwrap --version` gave status {} and output {:?}", out.status, output_text(&out).trim())));
    }
    Ok(parse_version(&text).unwrap_or_default())
}

fn verify(source_desc: &str, fd: &File) -> Result<([u8; 32], bool), LauncherError> {
    let expected = expected_digest();
    let actual = digest_through_fd(fd).map_err(io_err(format!("hashing {source_desc}")))?;
    if expected == [0u8; 32] {
        tracing::warn!("development build: bundled bwrap digest not checked ({source_desc}, sha256:{})", hex(&actual));
        return Ok((actual, true));
    }
    if actual != expected {
        return Err(LauncherError::DigestMismatch { source_desc: source_desc.to_string(), expected: hex(&expected), actual: hex(&actual) });
    }
    Ok((actual, false))
}

fn bundled_launcher(file: File, digest: [u8; 32], dev_build: bool, version: String, source: BundledSource) -> Launcher {
    Launcher {
        kind: LauncherKind::Bundled,
        exec_path: fd_path(&file),
        // The bundled build is bubblewrap 0.12.0, which has all three; it is ours, so
        // there is nothing to probe beyond the `--version` exec test.
        supports_argv0: true,
        supports_perms: true,
        supports_as_pid_1: true,
        version: Some(version),
        fd: Some(file),
        identity: None,
        measured_digest: Some(digest),
        dev_build,
        bundled_source: Some(source),
        proc_mountable: OnceLock::new(),
    }
}

fn memfd_launcher() -> Result<Launcher, MemfdFailure> {
    if !bwrap_vendor::BUNDLED {
        return Err(MemfdFailure::Unavailable("built without a bundled bwrap".into()));
    }
    let file = sealed_memfd(bwrap_vendor::BWRAP_BYTES).map_err(|e| {
        MemfdFailure::Unavailable(if e.raw_os_error() == Some(libc::EACCES) {
            format!("executable memfds are refused here (vm.memfd_noexec=2 or an LSM policy): {e}")
        } else {
            format!("creating the sealed memfd failed: {e}")
        })
    })?;
    // Verified through the very descriptor that will be executed.
    let (digest, dev_build) = verify("sealed memfd", &file).map_err(MemfdFailure::Fatal)?;
    if memfd_exec_refused_for_test() {
        return Err(MemfdFailure::Unavailable(format!("{DEBUG_REFUSE_MEMFD_EXEC_ENV}=1 (debug build)")));
    }
    let version = exec_version(&file).map_err(|e| MemfdFailure::Unavailable(format!("exec from memfd refused: {e}")))?;
    Ok(bundled_launcher(file, digest, dev_build, version, BundledSource::Memfd))
}

enum MemfdFailure {
    /// Exec from a memfd does not work here: try the resource file.
    Unavailable(String),
    /// Integrity failure: stop, never fall back.
    Fatal(LauncherError),
}

pub fn resource_path() -> io::Result<PathBuf> {
    let exe = std::fs::canonicalize("/proc/self/exe").or_else(|_| std::env::current_exe())?;
    let dir = exe.parent().ok_or_else(|| io::Error::other("executable has no parent directory"))?;
    Ok(dir.join(RESOURCE_RELATIVE_PATH))
}

fn resource_launcher(memfd_error: String) -> Result<Launcher, LauncherError> {
    let path = resource_path().map_err(io_err("locating the executable"))?;
    let unavailable = |resource: String| LauncherError::BundledUnavailable { memfd: memfd_error.clone(), resource };
    // O_NOFOLLOW on the last component: a symlink planted there is not followed.
    let file = std::fs::OpenOptions::new().read(true).custom_flags_nofollow().open(&path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound && !bwrap_vendor::BUNDLED {
            LauncherError::NoBundled
        } else {
            unavailable(format!("{}: {e}", path.display()))
        }
    })?;
    let meta = file.metadata().map_err(io_err(format!("fstat {}", path.display())))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if !meta.file_type().is_file() {
        return Err(unavailable(format!("{} is not a regular file", path.display())));
    }
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(unavailable(format!("{} is owned by uid {}, neither root nor us", path.display(), meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unavailable(format!("{} is group/other-writable", path.display())));
    }
    let (digest, dev_build) = verify(&path.display().to_string(), &file)?;
    let version = exec_version(&file).map_err(|e| unavailable(format!("exec of {} failed: {e}", path.display())))?;
    Ok(bundled_launcher(file, digest, dev_build, version, BundledSource::ResourceFile { path, memfd_error }))
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}
impl NoFollow for std::fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt as _;
        self.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
    }
}

fn build_bundled() -> Result<Launcher, LauncherError> {
    match memfd_launcher() {
        Ok(l) => Ok(l),
        Err(MemfdFailure::Fatal(e)) => Err(e),
        Err(MemfdFailure::Unavailable(why)) => {
            tracing::info!("bundled bwrap: {why}; trying {RESOURCE_RELATIVE_PATH}");
            resource_launcher(why)
        }
    }
}

/// The bundled launcher, built once per process. Errors are cached as text (and
/// re-reported) so a refused digest is not re-tried on every command.
pub fn bundled() -> Result<Arc<Launcher>, LauncherError> {
    static BUNDLED: OnceLock<Result<Arc<Launcher>, Arc<LauncherError>>> = OnceLock::new();
    match BUNDLED.get_or_init(|| build_bundled().map(Arc::new).map_err(Arc::new)) {
        Ok(l) => Ok(l.clone()),
        Err(e) => Err(LauncherError::BundledCached(e.clone())),
    }
}

/// Builds a fresh bundled launcher without the process-wide cache (doctor, tests).
pub fn bundled_uncached() -> Result<Launcher, LauncherError> {
    build_bundled()
}

// ---------------------------------------------------------------------------------
// Selection
// ---------------------------------------------------------------------------------

/// The launcher for this server and configuration. Cheap after the first call: the
/// system candidate is re-stat'ed (trust checks, identity) but only re-probed when its
/// identity changed; the bundled launcher is built once.
pub fn select(config: &LauncherConfig) -> Result<Arc<Launcher>, LauncherError> {
    match (config.mode, &config.path_override) {
        (BwrapMode::Bundled, Some(_)) => Err(LauncherError::ConfigConflict),
        (BwrapMode::Bundled, None) => bundled(),
        (BwrapMode::System, _) => select_system(config),
        // An explicit path is a promise by the operator: no silent fallback.
        (BwrapMode::Auto, Some(_)) => select_system(config),
        (BwrapMode::Auto, None) => match select_system(config) {
            Ok(l) => Ok(l),
            Err(system) => bundled().map_err(|bundled| LauncherError::Unavailable { system: Box::new(system), bundled: Box::new(bundled) }),
        },
    }
}

/// `select`, then the per-request check; in `auto` mode (without `--bwrap-path`) a
/// system bwrap that is unusable for this request is replaced by the bundled one.
pub fn select_for(config: &LauncherConfig, cwd: &Path, writable_roots: &[PathBuf]) -> Result<Arc<Launcher>, LauncherError> {
    let launcher = select(config)?;
    match launcher.is_usable_for(cwd, writable_roots) {
        Ok(()) => Ok(launcher),
        Err(e) if config.mode == BwrapMode::Auto && config.path_override.is_none() && launcher.kind == LauncherKind::System => {
            tracing::info!("{e}; using the bundled bwrap for this request");
            let b = bundled()?;
            b.is_usable_for(cwd, writable_roots)?;
            Ok(b)
        }
        Err(e) => Err(e),
    }
}

/// `--bwrap` / `--bwrap-path`, for the server command, `executor sandbox` and `doctor`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LauncherArgs {
    /// Which bwrap runs sandboxes: a trusted system bwrap when capable (auto), only the
    /// system one, or only the bundled one.
    #[arg(long = "bwrap", value_enum, default_value_t = BwrapMode::Auto)]
    pub mode: BwrapMode,
    /// Use this system bwrap instead of searching PATH (no fallback if it is unusable).
    #[arg(long = "bwrap-path", value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Most processes and threads one sandbox may hold (fork bombs fail there, not on the
    /// host); 0 for no limit. Enforced through RLIMIT_NPROC counted in the sandbox's own
    /// user namespace, which the kernel does not apply to root.
    #[arg(long = "sandbox-max-procs", value_name = "N", default_value_t = DEFAULT_MAX_PROCS)]
    pub max_procs: u64,
}

impl LauncherArgs {
    /// The configuration these flags ask for; a contradiction among them is an error.
    pub fn config(&self) -> Result<LauncherConfig, LauncherError> {
        if self.mode == BwrapMode::Bundled && self.path.is_some() {
            return Err(LauncherError::ConfigConflict);
        }
        Ok(LauncherConfig {
            mode: self.mode,
            path_override: self.path.clone(),
            max_procs: (self.max_procs > 0).then_some(self.max_procs),
            ..LauncherConfig::default()
        })
    }
}

/// Start-up check of an explicit `--bwrap-path`: it must exist, be trusted and capable
/// (the same verdict every later selection gives, probed once and cached), so that an
/// operator's typo stops the executor at once rather than failing its first request.
pub fn check_explicit_path(config: &LauncherConfig) -> Result<(), LauncherError> {
    match config.path_override {
        Some(_) => select(config).map(drop),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let f =
            parse_help(&format!("{HELP_080}    --argv0 VALUE                Set argv[0] to the value VALUE before running the program\n"));
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
        let trusted =
            |d: &Path| d.ancestors().all(|a| std::fs::metadata(a).map(|m| m.uid() == 0 && m.mode() & 0o022 == 0).unwrap_or(false));
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
            kind: LauncherKind::System,
            exec_path: path.to_path_buf(),
            version: Some("0.8.0".into()),
            supports_argv0: false,
            supports_perms: true,
            supports_as_pid_1: true,
            fd: None,
            identity: None,
            measured_digest: None,
            dev_build: false,
            bundled_source: None,
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
        b.kind = LauncherKind::Bundled;
        b.bundled_source = Some(BundledSource::Memfd);
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
        assert_eq!(l.kind, LauncherKind::Bundled);
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
                let msg = LauncherError::DigestMismatch { source_desc: "x".into(), expected: expected.clone(), actual: actual.clone() }
                    .to_string();
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
}
