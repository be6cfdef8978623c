//! Filesystem operations of the exec-server protocol (`fs/*`), usable directly by the
//! executor or inside the sandbox by the `executor-fs-helper` process.

// Tests may unwrap: a panic there is a test failure, not a client-triggered crash.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod error;
pub mod ops;
pub mod protocol;
pub mod uri;

pub use error::FsError;
pub use ops::{execute, Operation};
pub use uri::{parse_file_uri, path_to_uri, PathUri, UriError};
