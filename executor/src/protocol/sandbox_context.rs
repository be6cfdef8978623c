//! The `sandbox` field of `process/start` and `fs/*` requests, as it travels (protocol
//! §8.1, §8.2). Field names, variants and error texts follow the reference. Only data:
//! what it means for the host is `sandbox::policy`'s business.

use std::path::PathBuf;

pub use fs_helper::uri::PathUri;
use serde::{Deserialize, Serialize};

/// The `sandbox` field of `process/start` and `fs/*` requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileSystemSandboxContext {
    pub permissions: PermissionProfile,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathUri>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_roots: Option<Vec<PathUri>>,
    pub windows_sandbox_level: WindowsSandboxLevel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_sandbox_private_desktop: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_legacy_landlock: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_home_dir: Option<PathUri>,
    /// Windows-only; kept opaque so that any value the client sends round-trips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_sandbox_proxy_settings_mode: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WindowsSandboxLevel {
    Disabled,
    RestrictedToken,
    Elevated,
    Mxc,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PermissionProfile {
    Managed { file_system: FileSystemPolicy, network: NetworkPolicy },
    Disabled,
    External { network: NetworkPolicy },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkPolicy {
    Restricted,
    Enabled,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FileSystemPolicy {
    Restricted {
        entries: Vec<FileSystemEntry>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        glob_scan_max_depth: Option<u32>,
    },
    Unrestricted,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileSystemEntry {
    pub path: EntryPath,
    pub access: Access,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_path_behavior: Option<MissingPathBehavior>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EntryPath {
    Path { path: PathUri },
    Special { value: SpecialPath },
    GlobPattern { pattern: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SpecialPath {
    Root,
    Minimal,
    CurrentWorkingDirectory,
    ProjectRoots {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subpath: Option<PathBuf>,
    },
    Tmpdir,
    SlashTmp,
    /// Forward-compatibility placeholder of the reference: accepted and ignored.
    Unknown {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<serde_json::Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subpath: Option<serde_json::Value>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Read,
    Write,
    None,
    Deny,
}

impl Access {
    /// Precedence on equal specificity: none/deny > write > read.
    pub fn rank(self) -> u8 {
        match self {
            Access::Read => 1,
            Access::Write => 2,
            Access::None | Access::Deny => 3,
        }
    }
    /// `none` and `deny` hide a path; they differ only in name.
    pub fn hides(self) -> bool {
        matches!(self, Access::None | Access::Deny)
    }
}

/// Only `skip` has been observed; any other value is accepted and treated the same,
/// since a missing path has nothing to mount or hide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingPathBehavior {
    Skip,
    #[serde(other)]
    Other,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// A context from its JSON text, as a request would carry it.
    pub fn ctx(json: &str) -> Result<FileSystemSandboxContext, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn serde_errors_match_reference() {
        let e = ctx(r#"{"permissions":{"type":"bogus"},"windowsSandboxLevel":"disabled"}"#).unwrap_err();
        assert!(e.to_string().starts_with("unknown variant `bogus`, expected one of `managed`, `disabled`, `external`"), "{e}");
        let e = ctx(r#"{"permissions":{"type":"disabled"},"windowsSandboxLevel":"bogus"}"#).unwrap_err();
        assert!(
            e.to_string().starts_with("unknown variant `bogus`, expected one of `disabled`, `restricted-token`, `elevated`, `mxc`"),
            "{e}"
        );
        let e = ctx(r#"{"permissions":{"type":"disabled"}}"#).unwrap_err();
        assert!(e.to_string().starts_with("missing field `windowsSandboxLevel`"), "{e}");
        let e = ctx(r#"{"permissions":{"type":"managed","file_system":{"type":"restricted","entries":[{"path":{"type":"special","value":{"kind":"nope"}},"access":"read"}]},"network":"restricted"},"windowsSandboxLevel":"disabled"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant `nope`"), "{e}");
        let e = ctx(r#"{"permissions":{"type":"disabled"},"cwd":"/tmp","windowsSandboxLevel":"disabled"}"#).unwrap_err();
        assert!(e.to_string().starts_with("invalid URI: relative URL without a base"), "{e}");
    }
}
