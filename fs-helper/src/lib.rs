//! Filesystem operations of the exec-server protocol (`fs/*`), usable directly by the
//! executor or inside the sandbox by the `executor-fs-helper` process.
//!
//! * [`uri`]: `file:` URIs ([`PathUri`] for params fields, [`path_to_uri`] for output).
//! * [`protocol`]: params/results of each `fs/*` method.
//! * [`ops`]: the operations, typed (`ops::read_file`, ...) or by name ([`execute`]).
//! * [`helper`]: the helper's NDJSON request/reply loop ([`helper::serve`]) and the
//!   SCM_RIGHTS handoff of `fs/open` descriptors ([`helper::send_fd`], [`helper::recv_fd`]).
//! * [`error`]: [`FsError`] and its JSON-RPC codes, from the one table in [`codes`].

// Tests may unwrap: a panic there is a test failure, not a client-triggered crash.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod codes;
pub mod error;
pub mod fd_pass;
pub mod helper;
pub mod ops;
pub mod protocol;
pub mod uri;

pub use error::FsError;
pub use ops::{execute, Operation};
pub use uri::{parse_file_uri, path_to_uri, PathUri, UriError};
