//! The sandbox context of the wire protocol (protocol.md §8.1, §8.2) and its resolution
//! into a concrete plan of host paths.
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

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::SandboxError;
use super::trusted_path::{self, Follow, Resolved, WritableHistory};

/// Metadata directories kept read-only inside every writable root.
pub const PROTECTED_NAMES: &[&str] = &[".git", ".hg", ".svn", ".codex", ".agents", ".aws"];

/// The platform default read roots of the `minimal` special path.
pub const MINIMAL_READ_ROOTS: &[&str] = &["/bin", "/sbin", "/usr", "/etc", "/lib", "/lib64", "/lib32", "/libx32"];

pub const DEFAULT_GLOB_DEPTH: u32 = 16;
pub const GLOB_MAX_MATCHES: usize = 8192;
pub const GLOB_MAX_VISITED: usize = 200_000;

// ---------------------------------------------------------------------------------
// Wire model
// ---------------------------------------------------------------------------------

/// A `file:` URI decoded to an absolute native path.
///
/// Temporary local type: `fs_helper::uri::PathUri` replaces it once main has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileUri(pub PathBuf);

impl FileUri {
    pub fn parse(s: &str) -> Result<Self, String> {
        let url = url::Url::parse(s).map_err(|e| format!("invalid URI: {e}"))?;
        if url.scheme() != "file" {
            return Err(format!("invalid URI: expected a file: URI, got scheme `{}`", url.scheme()));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("invalid URI: file URIs must not contain a query or fragment".into());
        }
        let path = url
            .to_file_path()
            .map_err(|()| format!("invalid URI: not a local file path: {s}"))?;
        if path.as_os_str().as_bytes().contains(&0) {
            return Err("invalid URI: path contains an encoded NUL byte".into());
        }
        Ok(FileUri(path))
    }

    pub fn from_path(path: &Path) -> Self {
        FileUri(path.to_path_buf())
    }
}

impl<'de> Deserialize<'de> for FileUri {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        FileUri::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for FileUri {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match url::Url::from_file_path(&self.0) {
            Ok(u) => s.serialize_str(u.as_str()),
            Err(()) => Err(serde::ser::Error::custom("path is not absolute")),
        }
    }
}

/// The `sandbox` field of `process/start` and `fs/*` requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileSystemSandboxContext {
    pub permissions: PermissionProfile,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<FileUri>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_roots: Option<Vec<FileUri>>,
    pub windows_sandbox_level: WindowsSandboxLevel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_sandbox_private_desktop: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_legacy_landlock: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_home_dir: Option<FileUri>,
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
    Path { path: FileUri },
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
    fn rank(self) -> u8 {
        match self {
            Access::Read => 1,
            Access::Write => 2,
            Access::None | Access::Deny => 3,
        }
    }
    fn normalized(self) -> Eff {
        match self {
            Access::Read => Eff::Read,
            Access::Write => Eff::Write,
            Access::None | Access::Deny => Eff::None,
        }
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

// ---------------------------------------------------------------------------------
// Plan
// ---------------------------------------------------------------------------------

/// Effective access of a subtree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Eff {
    None,
    Read,
    Write,
}

/// What the root of the sandbox view starts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// `--ro-bind / /`
    ReadOnlyRoot,
    /// `--bind / /`
    WritableRoot,
    /// bwrap's empty tmpfs root; only explicit paths are visible.
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOp {
    ReadOnly(PathBuf),
    Writable(PathBuf),
    /// Hide a directory: empty, mode 000, read-only tmpfs.
    MaskDir(PathBuf),
    /// Hide a non-directory: bind `/dev/null` read-only over it.
    MaskFile(PathBuf),
    /// Recreate a top-level symlink (e.g. merged-/usr `/bin -> usr/bin`) in an empty root.
    Symlink { target: PathBuf, link: PathBuf },
}

#[derive(Debug, Clone)]
pub struct SandboxPlan {
    /// No sandbox at all: the command is executed directly (profile `disabled`, or
    /// unrestricted filesystem with network enabled), like the reference.
    pub direct: bool,
    pub base: Base,
    /// In the order they must be applied (parents before children).
    pub ops: Vec<MountOp>,
    pub readable_roots: Vec<PathBuf>,
    pub writable_roots: Vec<PathBuf>,
    pub denied: Vec<PathBuf>,
    pub protected: Vec<PathBuf>,
    pub missing_protected: Vec<PathBuf>,
    /// Directories inside a writable root on the way down to a denied path (and the
    /// denied path itself): the create guard refuses to rename them, so a command cannot
    /// move a denied directory out from under the path the policy names.
    pub pinned: Vec<PathBuf>,
    pub network: bool,
}

impl SandboxPlan {
    fn direct() -> Self {
        SandboxPlan {
            direct: true,
            base: Base::WritableRoot,
            ops: Vec::new(),
            readable_roots: Vec::new(),
            writable_roots: Vec::new(),
            denied: Vec::new(),
            protected: Vec::new(),
            missing_protected: Vec::new(),
            pinned: Vec::new(),
            network: true,
        }
    }
}

/// Resolve a context into a plan. `fallback_cwd` is used when the context has no `cwd`
/// (for `process/start` the process cwd); `None` makes cwd-dependent entries an error.
pub fn resolve(ctx: &FileSystemSandboxContext, fallback_cwd: Option<&Path>) -> Result<SandboxPlan, SandboxError> {
    let (fs, network) = match &ctx.permissions {
        PermissionProfile::Disabled => return Ok(SandboxPlan::direct()),
        PermissionProfile::External { network } => (None, *network),
        PermissionProfile::Managed { file_system, network } => (Some(file_system), *network),
    };
    let network_on = network == NetworkPolicy::Enabled;
    let (entries, glob_depth) = match fs {
        None | Some(FileSystemPolicy::Unrestricted) => {
            if network_on {
                return Ok(SandboxPlan::direct());
            }
            let mut plan = SandboxPlan::direct();
            plan.direct = false;
            plan.network = false;
            plan.writable_roots.push(PathBuf::from("/"));
            return Ok(plan);
        }
        Some(FileSystemPolicy::Restricted { entries, glob_scan_max_depth }) => {
            (entries, glob_scan_max_depth.unwrap_or(DEFAULT_GLOB_DEPTH).max(1))
        }
    };

    let cwd: Option<PathBuf> = ctx.cwd.as_ref().map(|u| u.0.clone()).or_else(|| fallback_cwd.map(Path::to_path_buf));
    let need_cwd = || cwd.clone().ok_or(SandboxError::DynamicPermissionsRequireCwd);

    // Requested (path as given, access) pairs.
    let mut requested: Vec<(PathBuf, Access)> = Vec::new();
    for entry in entries {
        match &entry.path {
            EntryPath::Path { path } => requested.push((path.0.clone(), entry.access)),
            EntryPath::Special { value } => match value {
                SpecialPath::Root => requested.push((PathBuf::from("/"), entry.access)),
                SpecialPath::Minimal => {
                    for r in MINIMAL_READ_ROOTS {
                        requested.push((PathBuf::from(r), entry.access));
                    }
                }
                SpecialPath::CurrentWorkingDirectory => requested.push((need_cwd()?, entry.access)),
                SpecialPath::ProjectRoots { subpath } => {
                    let roots: Vec<PathBuf> = match &ctx.workspace_roots {
                        Some(r) if !r.is_empty() => {
                            // Roots are absolute, but the reference still treats a
                            // project_roots entry as dynamic (needs a cwd).
                            need_cwd()?;
                            r.iter().map(|u| u.0.clone()).collect()
                        }
                        _ => vec![need_cwd()?],
                    };
                    for root in roots {
                        let p = match subpath {
                            Some(sub) => join_relative(&root, sub)?,
                            None => root,
                        };
                        requested.push((p, entry.access));
                    }
                }
                SpecialPath::Tmpdir => {
                    if let Some(t) = std::env::var_os("TMPDIR").map(PathBuf::from) {
                        if t.is_absolute() {
                            requested.push((t, entry.access));
                        }
                    }
                }
                SpecialPath::SlashTmp => requested.push((PathBuf::from("/tmp"), entry.access)),
                SpecialPath::Unknown { .. } => {}
            },
            EntryPath::GlobPattern { pattern } => {
                let full = if Path::new(pattern).is_absolute() {
                    PathBuf::from(pattern)
                } else {
                    need_cwd()?.join(pattern)
                };
                for p in expand_glob(&full, glob_depth)? {
                    requested.push((p, entry.access));
                }
            }
        }
    }

    // Resolve without following links a sandbox could have planted; missing paths are
    // skipped.
    let mut map: BTreeMap<PathBuf, Access> = BTreeMap::new();
    let mut top_symlinks: Vec<MountOp> = Vec::new();
    for (orig, access, canon) in resolve_requested(requested)? {
        let hides = matches!(access, Access::None | Access::Deny);
        if canon != orig && orig.parent() == Some(Path::new("/")) && !hides {
            if let Ok(target) = std::fs::read_link(&orig) {
                top_symlinks.push(MountOp::Symlink { target, link: orig.clone() });
            }
        }
        match map.get(&canon) {
            Some(prev) if prev.rank() >= access.rank() => {}
            _ => {
                map.insert(canon, access);
            }
        }
    }

    let mut eff: BTreeMap<PathBuf, Eff> = map.iter().map(|(p, a)| (p.clone(), a.normalized())).collect();
    let base_eff = eff.remove(Path::new("/")).unwrap_or(Eff::None);
    let base = match base_eff {
        Eff::None => Base::Empty,
        Eff::Read => Base::ReadOnlyRoot,
        Eff::Write => Base::WritableRoot,
    };

    let mut plan = SandboxPlan {
        direct: false,
        base,
        ops: Vec::new(),
        readable_roots: Vec::new(),
        writable_roots: Vec::new(),
        denied: Vec::new(),
        protected: Vec::new(),
        missing_protected: Vec::new(),
        pinned: Vec::new(),
        network: network_on,
    };
    match base_eff {
        Eff::Read => plan.readable_roots.push(PathBuf::from("/")),
        Eff::Write => plan.writable_roots.push(PathBuf::from("/")),
        Eff::None => {}
    }

    // Protected metadata inside writable roots. An explicit entry at exactly the same
    // path wins (the client asked for it).
    let writable: Vec<PathBuf> = eff.iter().filter(|(_, a)| **a == Eff::Write).map(|(p, _)| p.clone()).collect();
    let mut writable_all = writable.clone();
    if base_eff == Eff::Write {
        writable_all.push(PathBuf::from("/"));
    }
    for root in &writable_all {
        for name in PROTECTED_NAMES {
            let p = root.join(name);
            if eff.contains_key(&p) {
                continue;
            }
            match std::fs::symlink_metadata(&p) {
                Ok(md) if md.file_type().is_symlink() => return Err(SandboxError::ProtectedPathIsSymlink(p)),
                Ok(md) => {
                    if md.is_file() {
                        // A `.git` file points at the real git dir ("gitdir: X"); keep
                        // that read-only as well when it exists. Only where it would
                        // otherwise be writable: the file lies in a writable root, so
                        // a sandboxed command may have written it, and a pointer must
                        // never make a hidden directory readable.
                        let pointed = gitdir_pointer(&p).filter(|g| inherited_access(&eff, g, base_eff) == Eff::Write);
                        if let Some(gitdir) = pointed {
                            if let std::collections::btree_map::Entry::Vacant(slot) = eff.entry(gitdir.clone()) {
                                plan.protected.push(gitdir);
                                slot.insert(Eff::Read);
                            }
                        }
                    }
                    plan.protected.push(p.clone());
                    eff.insert(p, Eff::Read);
                }
                Err(e) if is_missing(&e) => plan.missing_protected.push(p),
                Err(e) => return Err(SandboxError::io("cannot inspect protected path", p, e)),
            }
        }
    }

    // Emit mount operations, parents first.
    let mut paths: Vec<(&PathBuf, &Eff)> = eff.iter().collect();
    paths.sort_by(|a, b| depth(a.0).cmp(&depth(b.0)).then_with(|| a.0.cmp(b.0)));
    if base == Base::Empty {
        plan.ops.extend(top_symlinks);
    }
    for (p, a) in paths {
        let inherited = inherited_access(&eff, p, base_eff);
        match a {
            Eff::Read => plan.readable_roots.push(p.clone()),
            Eff::Write => plan.writable_roots.push(p.clone()),
            Eff::None => plan.denied.push(p.clone()),
        }
        if *a == inherited {
            continue;
        }
        let op = match a {
            Eff::Read => MountOp::ReadOnly(p.clone()),
            Eff::Write => MountOp::Writable(p.clone()),
            Eff::None => {
                let md = std::fs::metadata(p).map_err(|e| SandboxError::io("cannot inspect denied path", p.clone(), e))?;
                if md.is_dir() {
                    MountOp::MaskDir(p.clone())
                } else {
                    MountOp::MaskFile(p.clone())
                }
            }
        };
        plan.ops.push(op);
    }
    plan.pinned = pinned_ancestors(&plan.denied, &plan.writable_roots);
    WritableHistory::global().record(&plan.writable_roots);
    Ok(plan)
}

/// Every directory strictly below a writable root on the way to a denied path, and the
/// denied path: renaming any of them from inside would take the denied content to a
/// path the policy does not name.
fn pinned_ancestors(denied: &[PathBuf], writable: &[PathBuf]) -> Vec<PathBuf> {
    let mut pinned: Vec<PathBuf> = Vec::new();
    for d in denied {
        let Some(root) = writable.iter().filter(|w| d.starts_with(w) && d != *w).max_by_key(|w| depth(w)) else {
            continue;
        };
        for a in d.ancestors().take_while(|a| a != root) {
            if !pinned.iter().any(|p| p == a) {
                pinned.push(a.to_path_buf());
            }
        }
    }
    pinned
}

/// Each requested path with its resolution (see `trusted_path`); missing ones dropped.
/// Writable entries are resolved first, shallowest first, so that every link is judged
/// against the writable roots of this plan as well as those of earlier plans.
fn resolve_requested(requested: Vec<(PathBuf, Access)>) -> Result<Vec<(PathBuf, Access, PathBuf)>, SandboxError> {
    if let Some((orig, _)) = requested.iter().find(|(p, _)| !p.is_absolute()) {
        return Err(SandboxError::InvalidPolicy(format!("path is not absolute: {}", orig.display())));
    }
    let mut untrusted = WritableHistory::global().snapshot();
    let mut writes: Vec<&PathBuf> = requested.iter().filter(|(_, a)| *a == Access::Write).map(|(p, _)| p).collect();
    writes.sort_by_key(|p| depth(p));
    for path in writes {
        if let Resolved::Path(canon) = trusted_path::resolve(path, &untrusted, Follow::TrustedOnly)? {
            if canon.as_os_str() != "/" {
                untrusted.insert(canon);
            }
        }
    }
    let mut out = Vec::with_capacity(requested.len());
    for (orig, access) in requested {
        let follow = if matches!(access, Access::None | Access::Deny) { Follow::Any } else { Follow::TrustedOnly };
        if let Resolved::Path(canon) = trusted_path::resolve(&orig, &untrusted, follow)? {
            out.push((orig, access, canon));
        }
    }
    Ok(out)
}

fn is_missing(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

fn depth(p: &Path) -> usize {
    p.components().count()
}

/// Access of the nearest ancestor that has an entry, else the base.
fn inherited_access(eff: &BTreeMap<PathBuf, Eff>, p: &Path, base: Eff) -> Eff {
    p.ancestors().skip(1).find_map(|a| eff.get(a).copied()).unwrap_or(base)
}

/// `subpath` of `project_roots` must stay inside the root.
fn join_relative(root: &Path, sub: &Path) -> Result<PathBuf, SandboxError> {
    if sub.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(SandboxError::InvalidPolicy(format!(
            "project_roots subpath must be a relative path without `..`: {}",
            sub.display()
        )));
    }
    Ok(root.join(sub))
}

/// Parse a `gitdir: X` pointer file and return the canonical git dir when it exists.
fn gitdir_pointer(file: &Path) -> Option<PathBuf> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(file).ok()?.take(4096).read_to_end(&mut buf).ok()?;
    let text = std::str::from_utf8(&buf).ok()?;
    let rest = text.lines().next()?.strip_prefix("gitdir:")?.trim();
    let target = Path::new(rest);
    let target = if target.is_absolute() { target.to_path_buf() } else { file.parent()?.join(target) };
    std::fs::canonicalize(target).ok()
}

/// Expand a glob by walking from its literal prefix, bounded (see module docs).
fn expand_glob(pattern: &Path, max_depth: u32) -> Result<Vec<PathBuf>, SandboxError> {
    let pattern_str = pattern
        .to_str()
        .ok_or_else(|| SandboxError::InvalidPolicy("glob pattern is not valid UTF-8".into()))?;
    let matcher = glob::Pattern::new(pattern_str)
        .map_err(|e| SandboxError::InvalidPolicy(format!("invalid glob pattern `{pattern_str}`: {e}")))?;
    let opts = glob::MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: false };

    let mut prefix = PathBuf::new();
    for c in pattern.components() {
        let s = c.as_os_str().as_bytes();
        if s.iter().any(|b| matches!(b, b'*' | b'?' | b'[' | b'{')) {
            break;
        }
        prefix.push(c);
    }
    if prefix == pattern {
        return Ok(vec![pattern.to_path_buf()]);
    }
    let too_broad = || SandboxError::GlobTooBroad { pattern: pattern_str.to_string(), limit: GLOB_MAX_MATCHES };

    let mut out = Vec::new();
    let mut visited = 0usize;
    let mut stack: Vec<(PathBuf, u32)> = vec![(prefix, 0)];
    while let Some((dir, d)) = stack.pop() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(_) => continue, // unreadable or vanished: nothing to match below it
        };
        for ent in rd.flatten() {
            visited += 1;
            if visited > GLOB_MAX_VISITED {
                return Err(SandboxError::GlobTooBroad { pattern: pattern_str.to_string(), limit: GLOB_MAX_VISITED });
            }
            let path = ent.path();
            if matcher.matches_path_with(&path, opts) {
                out.push(path.clone());
                if out.len() > GLOB_MAX_MATCHES {
                    return Err(too_broad());
                }
            }
            let is_dir = ent.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir && d + 1 < max_depth {
                stack.push((path, d + 1));
            }
        }
    }
    Ok(out)
}

/// A ready-made context for the CLI and tests: `read-only` or `workspace-write`.
pub fn builtin_context(
    workspace_write: bool,
    cwd: &Path,
    extra_writable: &[PathBuf],
    denied: &[PathBuf],
    network: bool,
) -> FileSystemSandboxContext {
    let special = |value: SpecialPath, access: Access| FileSystemEntry {
        path: EntryPath::Special { value },
        access,
        missing_path_behavior: None,
    };
    let path = |p: &Path, access: Access| FileSystemEntry {
        path: EntryPath::Path { path: FileUri::from_path(p) },
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
        cwd: Some(FileUri::from_path(cwd)),
        workspace_roots: None,
        windows_sandbox_level: WindowsSandboxLevel::Disabled,
        windows_sandbox_private_desktop: None,
        use_legacy_landlock: None,
        user_home_dir: None,
        windows_sandbox_proxy_settings_mode: None,
    }
}

/// Lossless encoding of paths for the inner stage's JSON config: UTF-8 paths as plain
/// strings, anything else as `{"b": [bytes]}`.
pub(crate) mod path_list {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Utf8(String),
        Bytes { b: Vec<u8> },
    }

    pub fn serialize<S: Serializer>(v: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
        let reprs: Vec<Repr> = v
            .iter()
            .map(|p| match p.to_str() {
                Some(u) => Repr::Utf8(u.to_string()),
                None => Repr::Bytes { b: p.as_os_str().as_bytes().to_vec() },
            })
            .collect();
        reprs.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
        let reprs = Vec::<Repr>::deserialize(d)?;
        Ok(reprs
            .into_iter()
            .map(|r| match r {
                Repr::Utf8(s) => PathBuf::from(s),
                Repr::Bytes { b } => PathBuf::from(OsString::from_vec(b)),
            })
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ctx(json: &str) -> Result<FileSystemSandboxContext, serde_json::Error> {
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

    #[test]
    fn unknown_special_kind_is_ignored_and_all_accesses_parse() {
        let c = ctx(r#"{"permissions":{"type":"managed","file_system":{"type":"restricted","entries":[
            {"path":{"type":"special","value":{"kind":"unknown","path":"x","subpath":"y"}},"access":"write"},
            {"path":{"type":"special","value":{"kind":"root"}},"access":"read"},
            {"path":{"type":"path","path":"file:///nonexistent-xyz"},"access":"deny","missing_path_behavior":"skip"},
            {"path":{"type":"path","path":"file:///nonexistent-abc"},"access":"none"}]},"network":"enabled"},
            "windowsSandboxLevel":"disabled"}"#)
        .unwrap();
        let plan = resolve(&c, None).unwrap();
        assert_eq!(plan.base, Base::ReadOnlyRoot);
        assert!(plan.ops.is_empty(), "{:?}", plan.ops);
        assert!(plan.network);
    }

    #[test]
    fn dynamic_entries_need_cwd() {
        let c = ctx(r#"{"permissions":{"type":"managed","file_system":{"type":"restricted","entries":[{"path":{"type":"special","value":{"kind":"project_roots"}},"access":"write"}]},"network":"restricted"},"windowsSandboxLevel":"disabled"}"#).unwrap();
        let e = resolve(&c, None).unwrap_err();
        assert!(e.is_client_error());
        assert_eq!(e.to_string(), "file system sandbox context with dynamic permissions requires cwd");
    }

    #[test]
    fn specificity_and_protection() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join(".git")).unwrap();
        std::fs::create_dir_all(ws.join("secret")).unwrap();
        std::fs::write(ws.join("key.txt"), "k").unwrap();
        let ws = std::fs::canonicalize(&ws).unwrap();
        // read-only base (so /tmp, where the tempdir lives, is not writable) + ws writable
        let c = builtin_context(false, &ws, std::slice::from_ref(&ws), &[ws.join("secret"), ws.join("key.txt")], false);
        let plan = resolve(&c, None).unwrap();
        assert!(plan.ops.contains(&MountOp::Writable(ws.clone())));
        assert!(plan.ops.contains(&MountOp::ReadOnly(ws.join(".git"))));
        assert!(plan.ops.contains(&MountOp::MaskDir(ws.join("secret"))));
        assert!(plan.ops.contains(&MountOp::MaskFile(ws.join("key.txt"))));
        assert!(plan.missing_protected.contains(&ws.join(".codex")));
        // parents first
        let wpos = plan.ops.iter().position(|o| o == &MountOp::Writable(ws.clone())).unwrap();
        let gpos = plan.ops.iter().position(|o| o == &MountOp::ReadOnly(ws.join(".git"))).unwrap();
        assert!(wpos < gpos);
        assert!(!plan.network);
    }

    #[test]
    fn equal_specificity_none_beats_write_beats_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = std::fs::canonicalize(dir.path()).unwrap();
        let uri = url::Url::from_file_path(&p).unwrap();
        let json = format!(
            r#"{{"permissions":{{"type":"managed","file_system":{{"type":"restricted","entries":[
            {{"path":{{"type":"special","value":{{"kind":"root"}}}},"access":"read"}},
            {{"path":{{"type":"path","path":"{uri}"}},"access":"read"}},
            {{"path":{{"type":"path","path":"{uri}"}},"access":"none"}},
            {{"path":{{"type":"path","path":"{uri}"}},"access":"write"}}]}},"network":"restricted"}},
            "windowsSandboxLevel":"disabled"}}"#
        );
        let plan = resolve(&ctx(&json).unwrap(), None).unwrap();
        assert_eq!(plan.ops, vec![MountOp::MaskDir(p)]);
    }

    #[test]
    fn gitdir_pointer_never_makes_a_hidden_dir_readable() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let (ws, hidden, real_git) = (root.join("ws"), root.join("hidden"), root.join("ws/real-git"));
        std::fs::create_dir_all(&hidden).unwrap();
        std::fs::create_dir_all(&real_git).unwrap();
        let write = |p: &Path| FileSystemEntry {
            path: EntryPath::Path { path: FileUri::from_path(p) },
            access: Access::Write,
            missing_path_behavior: None,
        };
        let mut c = builtin_context(false, &ws, &[], &[], false);
        // No root entry: only the workspace exists in the sandbox.
        if let PermissionProfile::Managed { file_system: FileSystemPolicy::Restricted { entries, .. }, .. } = &mut c.permissions {
            *entries = vec![write(&ws)];
        }
        std::fs::write(ws.join(".git"), format!("gitdir: {}\n", hidden.display())).unwrap();
        let plan = resolve(&c, None).unwrap();
        assert!(!plan.readable_roots.contains(&hidden), "{plan:?}");
        assert!(!plan.ops.contains(&MountOp::ReadOnly(hidden.clone())));
        // A pointer inside the writable root is kept read-only.
        std::fs::write(ws.join(".git"), "gitdir: real-git\n").unwrap();
        let plan = resolve(&c, None).unwrap();
        assert!(plan.ops.contains(&MountOp::ReadOnly(real_git)), "{plan:?}");
    }

    #[test]
    fn protected_symlink_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let ws = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(ws.join("decoy")).unwrap();
        std::os::unix::fs::symlink("decoy", ws.join(".codex")).unwrap();
        let c = builtin_context(true, &ws, &[], &[], false);
        let e = resolve(&c, None).unwrap_err();
        assert!(matches!(e, SandboxError::ProtectedPathIsSymlink(_)));
        assert!(!e.is_client_error());
    }

    #[test]
    fn symlinked_roots_are_canonicalised() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = real.parent().unwrap().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let c = builtin_context(false, &link, std::slice::from_ref(&link), &[], true);
        let plan = resolve(&c, None).unwrap();
        assert!(plan.ops.contains(&MountOp::Writable(real)));
    }

    #[test]
    fn glob_expansion_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/.env"), "").unwrap();
        std::fs::write(root.join("a/b/.env"), "").unwrap();
        let found = expand_glob(&root.join("**/.env"), 16).unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        let shallow = expand_glob(&root.join("**/.env"), 2).unwrap();
        assert_eq!(shallow.len(), 1, "{shallow:?}");
    }
}
