//! The wire form of an error (`RpcError`) and the JSON-RPC codes, re-exported from the
//! one table in `fs_helper::codes`. Typed errors are mapped to codes in `rpc/errors.rs`.

use serde::Serialize;

pub use fs_helper::codes::{INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, NOT_FOUND, SESSION_ATTACHED};

/// An error as sent on the wire: `{"code":..,"message":..}` and never a `data` member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message} ({code})")]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(INVALID_REQUEST, message)
    }
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(INTERNAL_ERROR, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(NOT_FOUND, message)
    }
    pub fn method_not_found(method: &str) -> Self {
        Self::new(METHOD_NOT_FOUND, format!("exec-server stub does not implement `{method}` yet"))
    }
}

impl From<fs_helper::uri::UriError> for RpcError {
    fn from(e: fs_helper::uri::UriError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<fs_helper::FsError> for RpcError {
    fn from(e: fs_helper::FsError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}
