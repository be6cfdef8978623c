//! Ready-made contexts: `read-only` and `workspace-write`, for the CLI, the operator
//! floor and tests.

use std::path::{Path, PathBuf};

use crate::protocol::sandbox_context::*;

/// A ready-made context for the CLI and tests: `read-only` or `workspace-write`.
pub fn builtin_context(
    workspace_write: bool,
    cwd: &Path,
    extra_writable: &[PathBuf],
    denied: &[PathBuf],
    network: bool,
) -> FileSystemSandboxContext {
    let special =
        |value: SpecialPath, access: Access| FileSystemEntry { path: EntryPath::Special { value }, access, missing_path_behavior: None };
    let path = |p: &Path, access: Access| FileSystemEntry {
        path: EntryPath::Path { path: PathUri(p.to_path_buf()) },
        access,
        missing_path_behavior: Some(MissingPathBehavior::Skip),
    };
    let mut entries = vec![special(SpecialPath::Root, Access::Read)];
    if workspace_write {
        entries.push(special(SpecialPath::CurrentWorkingDirectory, Access::Write));
        entries.push(special(SpecialPath::SlashTmp, Access::Write));
        entries.push(special(SpecialPath::Tmpdir, Access::Write));
    }
    entries.extend(extra_writable.iter().map(|p| path(p, Access::Write)));
    entries.extend(denied.iter().map(|p| path(p, Access::None)));
    FileSystemSandboxContext {
        permissions: PermissionProfile::Managed {
            file_system: FileSystemPolicy::Restricted { entries, glob_scan_max_depth: None },
            network: if network { NetworkPolicy::Enabled } else { NetworkPolicy::Restricted },
        },
        cwd: Some(PathUri(cwd.to_path_buf())),
        workspace_roots: None,
        windows_sandbox_level: WindowsSandboxLevel::Disabled,
        windows_sandbox_private_desktop: None,
        use_legacy_landlock: None,
        user_home_dir: None,
        windows_sandbox_proxy_settings_mode: None,
    }
}
