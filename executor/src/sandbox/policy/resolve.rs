//! From a context to a plan, in steps (each a function below):
//! 1. `requested_paths`: the entries as (path as given, access), special paths and globs
//!    expanded;
//! 2. `strongest_access`: each path resolved without following planted links
//!    (`trusted_path`), missing ones dropped, one access per resolved path;
//! 3. `protect_metadata`: protected names in writable roots kept read-only, or listed
//!    as missing for the create guard;
//! 4. `emit_ops`: the mounts, parents first, and the root lists;
//! 5. `pinned_ancestors`: what the create guard must not let be renamed.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::glob::expand_glob;
use super::plan::{Base, Effective, MountOp, SandboxPlan};
use super::{DEFAULT_GLOB_DEPTH, MINIMAL_READ_ROOTS, PROTECTED_NAMES};
use crate::protocol::sandbox_context::*;
use crate::sandbox::error::SandboxError;
use crate::sandbox::trusted_path::{self, is_missing, Follow, Resolved, WritableHistory};

/// Resolve a context into a plan. `fallback_cwd` is used when the context has no `cwd`
/// (for `process/start` the process cwd); `None` makes cwd-dependent entries an error.
pub fn resolve(ctx: &FileSystemSandboxContext, fallback_cwd: Option<&Path>) -> Result<SandboxPlan, SandboxError> {
    let (entries, glob_depth, network) = match restricted(ctx) {
        Restricted::Entries { entries, glob_depth, network } => (entries, glob_depth, network),
        Restricted::No(plan) => return Ok(plan),
    };
    let cwd: Option<PathBuf> = ctx.cwd.as_ref().map(|u| u.0.clone()).or_else(|| fallback_cwd.map(Path::to_path_buf));
    let requested = requested_paths(ctx, entries, cwd.as_deref(), glob_depth)?;
    let (access, top_symlinks) = strongest_access(requested)?;
    let mut access: BTreeMap<PathBuf, Effective> = access.into_iter().map(|(p, a)| (p, effective(a))).collect();
    let base_access = access.remove(Path::new("/")).unwrap_or(Effective::Hidden);
    let mut plan = SandboxPlan::restricted(base_access, network);
    protect_metadata(&mut access, base_access, &mut plan)?;
    emit_ops(&access, base_access, top_symlinks, &mut plan)?;
    plan.pinned = pinned_ancestors(&plan.denied, &plan.writable_roots);
    WritableHistory::global().record(&plan.writable_roots);
    Ok(plan)
}

/// A context either lists entries to resolve or needs no resolution at all.
enum Restricted<'a> {
    Entries { entries: &'a [FileSystemEntry], glob_depth: u32, network: bool },
    No(SandboxPlan),
}

fn restricted(ctx: &FileSystemSandboxContext) -> Restricted<'_> {
    let (fs, network) = match &ctx.permissions {
        PermissionProfile::Disabled => return Restricted::No(SandboxPlan::direct()),
        PermissionProfile::External { network } => (None, *network),
        PermissionProfile::Managed { file_system, network } => (Some(file_system), *network),
    };
    let network = network == NetworkPolicy::Enabled;
    match fs {
        Some(FileSystemPolicy::Restricted { entries, glob_scan_max_depth }) => {
            Restricted::Entries { entries, glob_depth: glob_scan_max_depth.unwrap_or(DEFAULT_GLOB_DEPTH).max(1), network }
        }
        // Unrestricted files: no sandbox at all unless the network must be cut.
        None | Some(FileSystemPolicy::Unrestricted) if network => Restricted::No(SandboxPlan::direct()),
        None | Some(FileSystemPolicy::Unrestricted) => Restricted::No(SandboxPlan::network_only()),
    }
}

/// Step 1: (path as given, access) for every entry.
fn requested_paths(
    ctx: &FileSystemSandboxContext,
    entries: &[FileSystemEntry],
    cwd: Option<&Path>,
    glob_depth: u32,
) -> Result<Vec<(PathBuf, Access)>, SandboxError> {
    let need_cwd = || cwd.map(Path::to_path_buf).ok_or(SandboxError::DynamicPermissionsRequireCwd);
    let mut requested: Vec<(PathBuf, Access)> = Vec::new();
    for entry in entries {
        let paths = match &entry.path {
            EntryPath::Path { path } => vec![path.0.clone()],
            EntryPath::Special { value } => special_paths(ctx, value, &need_cwd)?,
            EntryPath::GlobPattern { pattern } => {
                let full = if Path::new(pattern).is_absolute() { PathBuf::from(pattern) } else { need_cwd()?.join(pattern) };
                expand_glob(&full, glob_depth)?
            }
        };
        requested.extend(paths.into_iter().map(|p| (p, entry.access)));
    }
    Ok(requested)
}

fn special_paths(
    ctx: &FileSystemSandboxContext,
    value: &SpecialPath,
    need_cwd: &dyn Fn() -> Result<PathBuf, SandboxError>,
) -> Result<Vec<PathBuf>, SandboxError> {
    Ok(match value {
        SpecialPath::Root => vec![PathBuf::from("/")],
        SpecialPath::Minimal => MINIMAL_READ_ROOTS.iter().map(PathBuf::from).collect(),
        SpecialPath::CurrentWorkingDirectory => vec![need_cwd()?],
        SpecialPath::ProjectRoots { subpath } => {
            let roots: Vec<PathBuf> = match &ctx.workspace_roots {
                Some(r) if !r.is_empty() => {
                    // Roots are absolute, but the reference still treats a project_roots
                    // entry as dynamic (needs a cwd).
                    need_cwd()?;
                    r.iter().map(|u| u.0.clone()).collect()
                }
                _ => vec![need_cwd()?],
            };
            match subpath {
                Some(sub) => roots.iter().map(|root| join_relative(root, sub)).collect::<Result<_, _>>()?,
                None => roots,
            }
        }
        SpecialPath::Tmpdir => std::env::var_os("TMPDIR").map(PathBuf::from).filter(|t| t.is_absolute()).into_iter().collect(),
        SpecialPath::SlashTmp => vec![PathBuf::from("/tmp")],
        SpecialPath::Unknown { .. } => Vec::new(),
    })
}

/// Step 2: the strongest access per resolved path (on equal paths none/deny > write >
/// read), and the top-level links (merged-/usr `/bin`) an empty root must recreate.
fn strongest_access(requested: Vec<(PathBuf, Access)>) -> Result<(BTreeMap<PathBuf, Access>, Vec<MountOp>), SandboxError> {
    let mut map: BTreeMap<PathBuf, Access> = BTreeMap::new();
    let mut top_symlinks: Vec<MountOp> = Vec::new();
    for (orig, access, canon) in resolve_requested(requested)? {
        if canon != orig && orig.parent() == Some(Path::new("/")) && !access.hides() {
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
    Ok((map, top_symlinks))
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
        let follow = if access.hides() { Follow::Any } else { Follow::TrustedOnly };
        if let Resolved::Path(canon) = trusted_path::resolve(&orig, &untrusted, follow)? {
            out.push((orig, access, canon));
        }
    }
    Ok(out)
}

/// Step 3: protected metadata inside writable roots is read-only; missing names are
/// listed for the create guard. An explicit entry at exactly the same path wins (the
/// client asked for it).
fn protect_metadata(access: &mut BTreeMap<PathBuf, Effective>, base: Effective, plan: &mut SandboxPlan) -> Result<(), SandboxError> {
    let mut writable: Vec<PathBuf> = access.iter().filter(|(_, a)| **a == Effective::Write).map(|(p, _)| p.clone()).collect();
    if base == Effective::Write {
        writable.push(PathBuf::from("/"));
    }
    for root in &writable {
        for name in PROTECTED_NAMES {
            let p = root.join(name);
            if access.contains_key(&p) {
                continue;
            }
            match std::fs::symlink_metadata(&p) {
                Ok(md) if md.file_type().is_symlink() => return Err(SandboxError::ProtectedPathIsSymlink(p)),
                Ok(md) => {
                    if md.is_file() {
                        protect_gitdir(&p, access, base, plan);
                    }
                    plan.protected.push(p.clone());
                    access.insert(p, Effective::Read);
                }
                Err(e) if is_missing(&e) => plan.missing_protected.push(p),
                Err(e) => return Err(SandboxError::io("cannot inspect protected path", p, e)),
            }
        }
    }
    Ok(())
}

/// A `.git` file points at the real git dir ("gitdir: X"); keep that read-only as well
/// when it exists. Only where it would otherwise be writable: the file lies in a
/// writable root, so a sandboxed command may have written it, and a pointer must never
/// make a hidden directory readable.
fn protect_gitdir(file: &Path, access: &mut BTreeMap<PathBuf, Effective>, base: Effective, plan: &mut SandboxPlan) {
    let Some(gitdir) = gitdir_pointer(file).filter(|g| inherited_access(access, g, base) == Effective::Write) else {
        return;
    };
    if let std::collections::btree_map::Entry::Vacant(slot) = access.entry(gitdir.clone()) {
        plan.protected.push(gitdir);
        slot.insert(Effective::Read);
    }
}

/// Step 4: mount operations, parents first; a path needs one only where its access
/// differs from what it inherits.
fn emit_ops(
    access: &BTreeMap<PathBuf, Effective>,
    base: Effective,
    top_symlinks: Vec<MountOp>,
    plan: &mut SandboxPlan,
) -> Result<(), SandboxError> {
    let mut paths: Vec<(&PathBuf, &Effective)> = access.iter().collect();
    paths.sort_by(|a, b| depth(a.0).cmp(&depth(b.0)).then_with(|| a.0.cmp(b.0)));
    if plan.base == Base::Empty {
        plan.ops.extend(top_symlinks);
    }
    for (p, a) in paths {
        match a {
            Effective::Read => plan.readable_roots.push(p.clone()),
            Effective::Write => plan.writable_roots.push(p.clone()),
            Effective::Hidden => plan.denied.push(p.clone()),
        }
        if *a == inherited_access(access, p, base) {
            continue;
        }
        plan.ops.push(match a {
            Effective::Read => MountOp::ReadOnly(p.clone()),
            Effective::Write => MountOp::Writable(p.clone()),
            Effective::Hidden => mask(p)?,
        });
    }
    Ok(())
}

fn mask(p: &Path) -> Result<MountOp, SandboxError> {
    let md = std::fs::metadata(p).map_err(|e| SandboxError::io("cannot inspect denied path", p, e))?;
    Ok(if md.is_dir() { MountOp::MaskDir(p.to_path_buf()) } else { MountOp::MaskFile(p.to_path_buf()) })
}

/// Step 5: every directory strictly below a writable root on the way to a denied path,
/// and the denied path: renaming any of them from inside would take the denied content
/// to a path the policy does not name.
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

fn effective(access: Access) -> Effective {
    match access {
        Access::Read => Effective::Read,
        Access::Write => Effective::Write,
        Access::None | Access::Deny => Effective::Hidden,
    }
}

fn depth(p: &Path) -> usize {
    p.components().count()
}

/// Access of the nearest ancestor that has an entry, else the base.
fn inherited_access(access: &BTreeMap<PathBuf, Effective>, p: &Path, base: Effective) -> Effective {
    p.ancestors().skip(1).find_map(|a| access.get(a).copied()).unwrap_or(base)
}

/// `subpath` of `project_roots` must stay inside the root.
fn join_relative(root: &Path, sub: &Path) -> Result<PathBuf, SandboxError> {
    if sub.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(SandboxError::InvalidPolicy(format!("project_roots subpath must be a relative path without `..`: {}", sub.display())));
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::protocol::sandbox_context::tests::ctx;
    use crate::sandbox::policy::builtin_context;

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
            path: EntryPath::Path { path: PathUri(p.to_path_buf()) },
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
}
