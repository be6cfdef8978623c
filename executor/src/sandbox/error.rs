//! Errors of the sandbox layer.
//!
//! The sandbox knows nothing of JSON-RPC; it only says whether a failure was caused by
//! what the client asked for (the protocol layer maps that to -32602) or by the host
//! (mapped to -32603).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Text is the reference server's, byte for byte (protocol.md §8.1).
    #[error("file system sandbox context with dynamic permissions requires cwd")]
    DynamicPermissionsRequireCwd,

    #[error("argv must not be empty")]
    EmptyArgv,

    #[error("invalid sandbox policy: {0}")]
    InvalidPolicy(String),

    #[error("glob pattern `{pattern}` matches or visits too many paths (limit {limit})")]
    GlobTooBroad { pattern: String, limit: usize },

    /// A protected metadata path (e.g. `.git`) inside a writable root is a symlink: a
    /// mount cannot cover the link itself, so the sandboxed command could replace it.
    /// Fail closed, like the reference.
    #[error("cannot enforce sandbox read-only path {0}: it is a symlink inside a writable root")]
    ProtectedPathIsSymlink(PathBuf),

    /// A grant would follow a link that a sandboxed command could have made (it lies
    /// inside a writable root): following it could hand out any host directory.
    #[error(
        "sandbox path {path} passes through the symlink {link}, which lies inside the writable root {root}: \
         a sandboxed command may have planted it, so it is not followed"
    )]
    SymlinkInWritableRoot { path: PathBuf, link: PathBuf, root: PathBuf },

    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot locate the executor binary: {0}")]
    CurrentExe(#[source] std::io::Error),

    #[error("sandbox configuration cannot be encoded: {0}")]
    Encode(String),

    /// The tree's cgroup could not be made (a host failure).
    #[error(transparent)]
    TreeLimits(#[from] super::cgroup::CgroupError),

    /// No usable bwrap (or the bundled one failed verification).
    #[error(transparent)]
    Launcher(#[from] super::launcher::LauncherError),
}

impl SandboxError {
    /// True when the request itself is at fault (JSON-RPC -32602); false for host-side
    /// failures (-32603).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            SandboxError::DynamicPermissionsRequireCwd
                | SandboxError::EmptyArgv
                | SandboxError::InvalidPolicy(_)
                | SandboxError::GlobTooBroad { .. }
                | SandboxError::SymlinkInWritableRoot { .. }
        )
    }

    pub(crate) fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SandboxError::Io { context, path: path.into(), source }
    }
}
