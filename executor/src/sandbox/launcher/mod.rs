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

use std::fmt::Write as _;
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

mod bundled;
mod error;
mod system;
mod trial;

pub use bundled::{bundled, bundled_uncached, resource_path};
pub use error::LauncherError;
use system::select_system;
pub use system::{check_trusted, inspect_system, parse_help, parse_version, path_candidates, HelpFlags, SystemCandidate};
pub use trial::{is_proc_mount_failure, trial_args, true_binary};

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
    /// The operator's limits for every sandboxed process tree (`--sandbox-*-max`).
    pub tree_limits: super::cgroup::TreeLimits,
    /// `--limit-unsandboxed`: unsandboxed process trees get the same limits.
    pub limit_unsandboxed: bool,
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
            // No tree cgroup unless the operator asks for a limit: moving a child into a
            // cgroup costs about 10 ms per start on cgroup v1 (docs/benchmarks.md).
            tree_limits: super::cgroup::TreeLimits::default(),
            limit_unsandboxed: false,
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
    /// Where this bwrap came from, with what only that kind of source has.
    source: Source,
    /// What to execve: the canonical system path, or `/proc/self/fd/N` of the verified
    /// descriptor (memfd or resource file).
    pub exec_path: PathBuf,
    pub version: Option<String>,
    pub supports_argv0: bool,
    pub supports_perms: bool,
    pub supports_as_pid_1: bool,
    /// Whether a fresh procfs can be mounted in a sandbox, learned by one trial run.
    proc_mountable: OnceLock<bool>,
}

/// The sources a bwrap can come from.
#[derive(Debug)]
enum Source {
    /// The host's bwrap, trusted by its path's ownership and probed for its flags.
    System {
        /// Identity of the file that was probed.
        identity: FileIdentity,
    },
    /// The bwrap compiled into this binary.
    Bundled {
        /// The memfd or resource file, kept open for as long as the launcher is in use.
        file: File,
        /// Digest measured through the descriptor (always computed).
        measured_digest: [u8; 32],
        /// The all-zero digest was compiled in, so nothing was compared.
        dev_build: bool,
        origin: BundledSource,
    },
}

impl Launcher {
    /// Descriptor that must stay open in a child until it execs `exec_path`
    /// (None for a system bwrap).
    pub fn exec_fd(&self) -> Option<RawFd> {
        match &self.source {
            Source::System { .. } => None,
            Source::Bundled { file, .. } => Some(file.as_raw_fd()),
        }
    }

    pub fn kind(&self) -> LauncherKind {
        match self.source {
            Source::System { .. } => LauncherKind::System,
            Source::Bundled { .. } => LauncherKind::Bundled,
        }
    }

    /// A command that runs this bwrap, with argv[0] `bwrap` (bwrap's messages start
    /// with its argv[0]-independent "bwrap:" prefix either way; this keeps `ps` tidy).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.exec_path);
        cmd.arg0("bwrap");
        cmd
    }

    pub fn is_dev_build(&self) -> bool {
        matches!(self.source, Source::Bundled { dev_build: true, .. })
    }

    pub fn measured_digest_hex(&self) -> Option<String> {
        match &self.source {
            Source::Bundled { measured_digest, .. } => Some(hex(measured_digest)),
            Source::System { .. } => None,
        }
    }

    pub fn bundled_source(&self) -> Option<&BundledSource> {
        match &self.source {
            Source::Bundled { origin, .. } => Some(origin),
            Source::System { .. } => None,
        }
    }

    pub fn identity(&self) -> Option<FileIdentity> {
        match self.source {
            Source::System { identity } => Some(identity),
            Source::Bundled { .. } => None,
        }
    }

    /// Per-request check: a system bwrap under the command's cwd or under one of its
    /// writable roots could be replaced by the sandboxed code itself (for a later run),
    /// so it is not used for that request. Same for the resource-file fallback: its
    /// inode is verified once, but its bytes could be rewritten by a command that may
    /// write there. A memfd is on no filesystem and is always usable.
    pub fn is_usable_for(&self, cwd: &Path, writable_roots: &[PathBuf]) -> Result<(), LauncherError> {
        let on_disk = match &self.source {
            Source::System { .. } => self.exec_path.clone(),
            Source::Bundled { origin: BundledSource::ResourceFile { path, .. }, .. } => path.clone(),
            Source::Bundled { origin: BundledSource::Memfd, .. } => return Ok(()),
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
        Err(e) if config.mode == BwrapMode::Auto && config.path_override.is_none() && launcher.kind() == LauncherKind::System => {
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
    /// host); 0 for no limit. Given explicitly, it is enforced by a pids cgroup per sandbox
    /// where one is usable (root included) as well as by RLIMIT_NPROC in the sandbox's own
    /// user namespace; without the flag only RLIMIT_NPROC 4096 applies, which the kernel
    /// does not apply to root (a tree cgroup costs each sandboxed start about 10 ms).
    #[arg(long = "sandbox-max-procs", value_name = "N")]
    pub max_procs: Option<u64>,
    /// Most memory one sandbox's process tree may use (K/M/G suffixes, powers of 1024; no
    /// swap beyond it); the tree is OOM-killed past it. Without a usable memory cgroup:
    /// RLIMIT_AS per process.
    #[arg(long = "sandbox-memory-max", value_name = "BYTES", value_parser = super::cgroup::parse_bytes)]
    pub memory_max: Option<u64>,
    /// CPU one sandbox's process tree may use, in percent of one core (throttled past
    /// it). Without a usable cpu cgroup: an RLIMIT_CPU budget when --sandbox-wall-max is set.
    #[arg(long = "sandbox-cpu-max", value_name = "PERCENT", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub cpu_max: Option<u32>,
    /// Seconds a sandbox's process tree may run before it is killed.
    #[arg(long = "sandbox-wall-max", value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub wall_max: Option<u64>,
    /// Apply the --sandbox-*-max limits (and a request's executorLimits) to processes that
    /// run without a sandbox too.
    #[arg(long = "limit-unsandboxed")]
    pub limit_unsandboxed: bool,
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
            max_procs: Some(self.max_procs.unwrap_or(DEFAULT_MAX_PROCS)).filter(|n| *n > 0),
            tree_limits: super::cgroup::TreeLimits {
                memory_bytes: self.memory_max,
                max_procs: self.max_procs.filter(|n| *n > 0),
                cpu_percent: self.cpu_max,
                wall_seconds: self.wall_max,
            },
            limit_unsandboxed: self.limit_unsandboxed,
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
mod tests;
