//! The sandbox context of the wire protocol (`wire`) and its resolution (`resolve`)
//! into a concrete plan of host paths (`plan`).
//!
//! Resolution rules:
//! - every path is resolved to a symlink-free path before it is used (the bundled
//!   bubblewrap 0.12 refuses symlink mount destinations, and a canonical path is what
//!   the kernel will actually check), except that a grant never follows a symlink that
//!   lies inside a writable root of this plan or of an earlier one: such a plan is
//!   refused ([`super::trusted_path`]);
//! - the most specific path wins; on equal specificity `none`/`deny` beats `write`
//!   beats `read`;
//! - entries whose path does not exist are skipped (nothing to mount, nothing to hide);
//! - protected metadata names (`.git`, `.hg`, `.svn`, `.codex`, `.agents`, `.aws`) that
//!   exist inside a writable root are kept read-only. A protected path that is a symlink
//!   makes the plan fail closed. Missing protected names are listed in
//!   [`SandboxPlan::missing_protected`]: no mount can cover a name that does not exist
//!   in a host-backed writable directory without creating it on the host, so the inner
//!   stage's create guard keeps them from being created (`inner/guard`);
//! - `glob_pattern` entries are expanded by walking from the pattern's literal prefix,
//!   at most `glob_scan_max_depth` levels deep (default [`DEFAULT_GLOB_DEPTH`]), visiting
//!   at most [`GLOB_MAX_VISITED`] entries and accepting at most [`GLOB_MAX_MATCHES`]
//!   matches. Exceeding a limit is an error rather than a silent truncation, because a
//!   truncated `none` list would expose the paths it left out. Symlinks are not followed
//!   during the walk.

mod builtin;
mod glob;
pub(crate) mod path_list;
mod plan;
mod resolve;

pub use crate::protocol::sandbox_context::*;
pub use builtin::builtin_context;
pub use plan::{Base, Effective, MountOp, SandboxPlan};
pub use resolve::resolve;

/// Metadata directories kept read-only inside every writable root.
pub const PROTECTED_NAMES: &[&str] = &[".git", ".hg", ".svn", ".codex", ".agents", ".aws"];

/// The platform default read roots of the `minimal` special path.
pub const MINIMAL_READ_ROOTS: &[&str] = &["/bin", "/sbin", "/usr", "/etc", "/lib", "/lib64", "/lib32", "/libx32"];

pub const DEFAULT_GLOB_DEPTH: u32 = 16;
pub const GLOB_MAX_MATCHES: usize = 8192;
pub const GLOB_MAX_VISITED: usize = 200_000;
