//! Why no launcher could be had, and what the operator can do about each cause.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::RESOURCE_RELATIVE_PATH;

/// Cloneable, so that a refusal cached for the process (the bundled bwrap is built once)
/// is reported again as the same typed error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LauncherError {
    #[error("no `bwrap` found on PATH ({path})")]
    SystemNotFound { path: String },
    #[error("system bwrap {path} cannot be found: {source}")]
    SystemUnresolvable { path: PathBuf, source: Arc<io::Error> },
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
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: Arc<io::Error>,
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
            LauncherError::Io { .. } => "see the error: the executor could not read what it needs to start bwrap".into(),
        }
    }
}

pub(super) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> LauncherError {
    let context = context.into();
    move |source| LauncherError::Io { context, source: Arc::new(source) }
}
