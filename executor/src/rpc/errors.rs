//! The one mapping from the services' typed errors to JSON-RPC codes. It lives here,
//! at the edge, so that `protocol` stays a leaf and the services know nothing of codes.

use crate::protocol::error::{INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, NOT_FOUND, SESSION_ATTACHED};
use crate::protocol::RpcError;

impl From<crate::process::ProcessError> for RpcError {
    fn from(e: crate::process::ProcessError) -> Self {
        use crate::process::ProcessError as E;
        let code = match &e {
            E::AlreadyExists(_) | E::UnknownProcess(_) | E::Starting(_) => INVALID_REQUEST,
            E::EmptyArgv | E::EmptyWriteId | E::InvalidBase64(_) => INVALID_PARAMS,
            E::Spawn(_) | E::StdinClosed | E::Pty(_) => INTERNAL_ERROR,
            E::Sandbox(sandbox) => sandbox_code(sandbox),
            E::Limit(limit) => return limit.clone().into(),
        };
        Self::new(code, e.to_string())
    }
}

/// Sandbox failures the request caused are -32602; the host's are -32603.
fn sandbox_code(e: &crate::sandbox::SandboxError) -> i64 {
    if e.is_client_error() {
        INVALID_PARAMS
    } else {
        INTERNAL_ERROR
    }
}

impl From<crate::sandbox::SandboxError> for RpcError {
    fn from(e: crate::sandbox::SandboxError) -> Self {
        Self::new(sandbox_code(&e), e.to_string())
    }
}

impl From<crate::sandbox::floor::FloorError> for RpcError {
    fn from(e: crate::sandbox::floor::FloorError) -> Self {
        // The request lacks what the operator demands of it.
        Self::new(INVALID_PARAMS, e.to_string())
    }
}

impl From<crate::child_env::EnvGlobError> for RpcError {
    fn from(e: crate::child_env::EnvGlobError) -> Self {
        Self::new(INVALID_PARAMS, e.to_string())
    }
}

impl From<crate::limits::LimitError> for RpcError {
    fn from(e: crate::limits::LimitError) -> Self {
        // Server-side resources ran out, not a malformed request.
        Self::new(INTERNAL_ERROR, e.to_string())
    }
}

impl From<crate::session::SessionError> for RpcError {
    fn from(e: crate::session::SessionError) -> Self {
        use crate::session::SessionError as E;
        let code = match &e {
            E::AlreadyAttached(_) => SESSION_ATTACHED,
            E::Unknown(_) | E::Evicted => INVALID_REQUEST,
        };
        Self::new(code, e.to_string())
    }
}

impl From<crate::fs::watch::WatchError> for RpcError {
    fn from(e: crate::fs::watch::WatchError) -> Self {
        use crate::fs::watch::WatchError as E;
        let code = match &e {
            E::TooManyWatches | E::TooManyPaths(_) => INVALID_REQUEST,
            E::Thread(_) => INTERNAL_ERROR,
        };
        Self::new(code, e.to_string())
    }
}

impl From<crate::http::HttpError> for RpcError {
    fn from(e: crate::http::HttpError) -> Self {
        // Params the client got wrong are -32602; the network, the egress policy and the
        // limits are -32603 (the reference's `http/request failed: ...`).
        let code = if e.is_client_error() { INVALID_PARAMS } else { INTERNAL_ERROR };
        Self::new(code, e.to_string())
    }
}

impl From<crate::fs::FsServiceError> for RpcError {
    fn from(e: crate::fs::FsServiceError) -> Self {
        use crate::fs::FsServiceError as E;
        let code = match &e {
            E::Op(op) => op.code(),
            E::Helper { code, .. } => *code,
            E::UnknownHandle(_) => NOT_FOUND,
            E::HandleExists(_) => INVALID_REQUEST,
            E::Limit(limit) => return limit.clone().into(),
            E::Sandbox(sandbox) => sandbox_code(sandbox),
            E::HelperFailed(_) | E::ChangedDuring { .. } | E::Internal(_) => INTERNAL_ERROR,
        };
        Self::new(code, e.to_string())
    }
}
