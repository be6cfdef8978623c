//! STUB: the `sandbox-launcher` branch replaces this file (launcher selection: bundled
//! bwrap from a sealed memfd, system bwrap probe, `executor doctor`). Only the shared
//! struct and a fixed system launcher for Debian 12's bwrap 0.8.0 live here.

use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LauncherKind {
    System,
    Bundled,
}

#[derive(Debug, Clone)]
pub struct Launcher {
    pub kind: LauncherKind,
    /// What to execve: a canonical path or /proc/self/fd/N (sealed memfd).
    pub exec_path: PathBuf,
    pub version: Option<String>,
    pub supports_argv0: bool,
    pub supports_perms: bool,
    pub supports_as_pid_1: bool,
}

/// STUB: `/usr/bin/bwrap` with the flags bwrap 0.8.0 has.
pub fn system_stub() -> Launcher {
    Launcher {
        kind: LauncherKind::System,
        exec_path: PathBuf::from("/usr/bin/bwrap"),
        version: None,
        supports_argv0: false,
        supports_perms: true,
        supports_as_pid_1: true,
    }
}
