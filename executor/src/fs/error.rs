//! What the filesystem service reports. It knows nothing of JSON-RPC: `rpc/errors.rs`
//! maps each kind to its code (an operation's own failure keeps the code fs-helper gave
//! it, on either side of the helper's pipe).

use std::path::PathBuf;

use crate::limits::LimitError;
use crate::sandbox::SandboxError;

#[derive(Debug, thiserror::Error)]
pub enum FsServiceError {
    /// The operation's own failure (not found, not a file, too large, ...), done here.
    #[error(transparent)]
    Op(#[from] fs_helper::FsError),
    /// The operation's own failure as the sandboxed helper answered it: its code and text
    /// come from the helper's `fs_helper::FsError`.
    #[error("{message}")]
    Helper { code: i64, message: String },
    #[error("unknown file handle `{0}`")]
    UnknownHandle(String),
    #[error("file handle `{0}` already exists")]
    HandleExists(String),
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// The request's sandbox could not be planned or launched.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The helper broke down or broke its protocol (it is then discarded); the text says
    /// how, with its last words when it crashed.
    #[error("{0}")]
    HelperFailed(String),
    /// The host changed a path of the plan while a request ran in the old view.
    #[error("{op} was interrupted: {} was replaced on the host while the request ran, so {}; retry the request", path.display(), effect(*idempotent))]
    ChangedDuring { op: &'static str, path: PathBuf, idempotent: bool },
    /// The executor could not do its own part (start a helper, run a blocking thread).
    #[error("{0}")]
    Internal(String),
}

fn effect(idempotent: bool) -> &'static str {
    if idempotent {
        "its answer was discarded"
    } else {
        "it may or may not have taken effect"
    }
}

/// `fs sandbox helper failed: {what}`: the helper's side of the exchange went wrong.
pub fn helper_failed(what: impl std::fmt::Display) -> FsServiceError {
    FsServiceError::HelperFailed(format!("fs sandbox helper failed: {what}"))
}
