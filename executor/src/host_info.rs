//! What `environment/info` reports about this host, computed once at start-up.

use std::path::{Path, PathBuf};

use fs_helper::uri::path_to_uri;
use serde_json::json;

use crate::protocol::types::{Capabilities, EnvironmentInfo, ShellInfo};

pub fn environment_info(capabilities: Capabilities, executor_facts: serde_json::Value) -> EnvironmentInfo {
    let temp_dir = std::env::temp_dir();
    EnvironmentInfo {
        shell: user_shell(),
        executor_version: env!("CARGO_PKG_VERSION").to_owned(),
        cwd: std::env::current_dir().ok().map(|p| path_to_uri(&p)),
        user_home_dir: home_dir().map(|p| path_to_uri(&p)),
        platform_os: std::env::consts::OS.to_owned(),
        prepend_path_dirs: Vec::new(),
        temporary_directories: std::env::var_os("TMPDIR")
            .filter(|v| !v.is_empty())
            .map(|v| vec![path_to_uri(Path::new(&v))])
            .unwrap_or_default(),
        temp_dir: path_to_uri(&temp_dir),
        capabilities,
        executor: json!({"implementation": "executor", "facts": executor_facts}),
    }
}

/// The account's entry in the user database, falling back to `$HOME`/`$SHELL`.
fn passwd_entry() -> Option<nix::unistd::User> {
    nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten()
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from).or_else(|| passwd_entry().map(|u| u.dir))
}

fn user_shell() -> ShellInfo {
    let path = std::env::var_os("SHELL")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| passwd_entry().map(|u| u.shell))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("/bin/sh"));
    let name = match path.file_name().and_then(|n| n.to_str()) {
        Some(n @ ("bash" | "zsh" | "sh" | "powershell" | "cmd")) => n.to_owned(),
        Some("pwsh") => "powershell".to_owned(),
        // Other shells (dash, fish, ...) are reported as `sh`, the closest kind a client knows.
        _ => "sh".to_owned(),
    };
    ShellInfo { name, path: path.to_string_lossy().into_owned() }
}
