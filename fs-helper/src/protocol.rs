//! Params and results of the `fs/*` methods (protocol.md §7, §17.5–17.6).
//!
//! Unknown members (notably `sandbox`, which the executor handles before calling
//! us) are ignored by serde's default. Path fields are `file:` URIs.

use serde::{Deserialize, Serialize};

use crate::uri::PathUri;

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadFileParams {
    pub path: PathUri,
    #[serde(default)]
    pub follow_symlinks: Option<bool>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReadFileResult {
    pub data_base64: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteFileParams {
    pub path: PathUri,
    pub data_base64: String,
    #[serde(default)]
    pub follow_symlinks: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateDirectoryParams {
    pub path: PathUri,
    #[serde(default = "default_true")]
    pub recursive: bool,
    #[serde(default)]
    pub follow_symlinks: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetMetadataParams {
    pub path: PathUri,
    #[serde(default)]
    pub follow_symlinks: Option<bool>,
}

/// Field order matches the reference's output.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MetadataResult {
    pub is_directory: bool,
    pub is_file: bool,
    pub is_symlink: bool,
    pub size: u64,
    pub created_at_ms: i64,
    pub modified_at_ms: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanonicalizeParams {
    pub path: PathUri,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CanonicalizeResult {
    pub path: PathUri,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadDirectoryParams {
    pub path: PathUri,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryEntry {
    /// Lossy UTF-8 of the raw name: the field is a JSON string and the reference
    /// protocol has no byte form for it. Exact names are available via `fs/walk` URIs.
    pub file_name: String,
    pub is_directory: bool,
    pub is_file: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReadDirectoryResult {
    pub entries: Vec<DirectoryEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WalkParams {
    pub path: PathUri,
    pub options: WalkOptions,
}

/// All four members are required, as observed on the reference.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WalkOptions {
    pub max_depth: usize,
    pub max_directories: usize,
    pub max_entries: usize,
    pub follow_directory_symlinks: bool,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WalkEntryKind {
    Directory,
    File,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WalkEntry {
    pub path: PathUri,
    pub kind: WalkEntryKind,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WalkError {
    pub path: PathUri,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct WalkResult {
    pub entries: Vec<WalkEntry>,
    pub errors: Vec<WalkError>,
    pub truncated: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveParams {
    pub path: PathUri,
    #[serde(default = "default_true")]
    pub recursive: bool,
    #[serde(default = "default_true")]
    pub force: bool,
    /// Accepted for compatibility; remove never follows a final symlink (it removes
    /// the link itself), whatever this says.
    #[serde(default)]
    pub follow_symlinks: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyParams {
    pub source_path: PathUri,
    pub destination_path: PathUri,
    pub recursive: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpenMode {
    #[default]
    Read,
    Replace,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenParams {
    pub handle_id: String,
    pub path: PathUri,
    #[serde(default)]
    pub mode: OpenMode,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OpenResult {
    pub handle_id: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReadBlockResult {
    pub chunk: String,
    pub eof: bool,
}

/// `{}`: the result of every operation that reports nothing.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_unknown_members() {
        let p: RemoveParams = serde_json::from_value(json!({"path": "file:///x", "sandbox": {"a": 1}, "zzz": 2})).unwrap();
        assert!(p.recursive && p.force);
        let p: CreateDirectoryParams = serde_json::from_value(json!({"path": "file:///x"})).unwrap();
        assert!(p.recursive);
        let p: OpenParams = serde_json::from_value(json!({"handleId": "h", "path": "file:///x"})).unwrap();
        assert_eq!(p.mode, OpenMode::Read);
        let p: OpenParams = serde_json::from_value(json!({"handleId": "h", "path": "file:///x", "mode": "replace"})).unwrap();
        assert_eq!(p.mode, OpenMode::Replace);
    }

    #[test]
    fn required_members() {
        let e = serde_json::from_value::<CopyParams>(json!({"sourcePath": "file:///a", "destinationPath": "file:///b"})).unwrap_err();
        assert_eq!(e.to_string(), "missing field `recursive`");
        let e = serde_json::from_value::<WalkParams>(
            json!({"path": "file:///a", "options": {"maxDepth": 1, "maxDirectories": 1, "maxEntries": 1}}),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "missing field `followDirectorySymlinks`");
        let e = serde_json::from_value::<WriteFileParams>(json!({"path": "file:///a"})).unwrap_err();
        assert_eq!(e.to_string(), "missing field `dataBase64`");
    }

    #[test]
    fn result_shapes() {
        let m = MetadataResult { is_directory: false, is_file: true, is_symlink: false, size: 12, created_at_ms: 0, modified_at_ms: 5 };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"isDirectory":false,"isFile":true,"isSymlink":false,"size":12,"createdAtMs":0,"modifiedAtMs":5}"#
        );
        let w = WalkResult {
            entries: vec![WalkEntry { path: PathUri("/d/a b".into()), kind: WalkEntryKind::Directory }],
            errors: vec![],
            truncated: false,
        };
        assert_eq!(
            serde_json::to_string(&w).unwrap(),
            r#"{"entries":[{"path":"file:///d/a%20b","kind":"directory"}],"errors":[],"truncated":false}"#
        );
        assert_eq!(serde_json::to_string(&Empty {}).unwrap(), "{}");
    }
}
