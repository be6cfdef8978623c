//! Resolution of plan paths that code inside a sandbox cannot redirect.
//!
//! A sandboxed command may change anything inside its writable roots, including turning
//! a directory into a symlink. If the next plan simply canonicalised its paths, a grant
//! on `W/build` after an earlier command ran `rm -r W/build && ln -s / W/build` would
//! bind-mount `/` writable. So paths are resolved one component at a time, like
//! `realpath`, except that a symlink whose own location lies strictly inside a writable
//! root — of the plan being resolved or of any plan resolved before in this executor
//! ([`WritableHistory`]) — is never followed for a grant: the grant is refused, naming
//! the path and the link. Symlinks elsewhere (merged-/usr `/bin`, an operator's
//! `/home -> /data/home`) were not made by a sandbox and are followed as usual.
//!
//! A `none`/`deny` entry may follow such a link: hiding whatever the link reaches is
//! what the entry asks for, and refusing it would let a command break every later
//! request by planting one link that a deny glob matches.

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use super::error::SandboxError;

/// More links than this in one path is a loop (the kernel's limit too).
const MAX_LINK_HOPS: usize = 40;
/// Writable roots remembered at most; beyond it the oldest are dropped. A root that
/// contains another makes the inner one redundant, so real sets stay small.
const HISTORY_MAX: usize = 4096;

/// What [`resolve`] makes of a path.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    /// The symlink-free path the kernel will use.
    Path(PathBuf),
    /// Some component does not exist (nothing to mount or hide).
    Missing,
}

/// Whether symlinks inside writable roots may be followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Grants (`read`, `write`, cwd, workspace roots): refuse such links.
    TrustedOnly,
    /// `none`/`deny`: follow them, the target gets hidden.
    Any,
}

/// Resolves the absolute `path`; `untrusted` are the writable roots whose contents a
/// sandbox may have changed (canonical paths).
pub fn resolve(path: &Path, untrusted: &BTreeSet<PathBuf>, follow: Follow) -> Result<Resolved, SandboxError> {
    let mut pending: VecDeque<OsString> = components(path);
    let mut resolved = PathBuf::from("/");
    let mut hops = 0usize;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&name);
        let md = match std::fs::symlink_metadata(&candidate) {
            Ok(md) => md,
            Err(e) if is_missing(&e) => return Ok(Resolved::Missing),
            Err(e) => return Err(SandboxError::io("cannot resolve sandbox path", path, e)),
        };
        if !md.file_type().is_symlink() {
            if !pending.is_empty() && !md.is_dir() {
                return Ok(Resolved::Missing);
            }
            resolved = candidate;
            continue;
        }
        if follow == Follow::TrustedOnly {
            if let Some(root) = inside_any(&candidate, untrusted) {
                return Err(SandboxError::SymlinkInWritableRoot { path: path.to_path_buf(), link: candidate, root });
            }
        }
        hops += 1;
        if hops > MAX_LINK_HOPS {
            return Err(SandboxError::io("cannot resolve sandbox path", path, std::io::Error::from_raw_os_error(libc::ELOOP)));
        }
        let target = std::fs::read_link(&candidate).map_err(|e| SandboxError::io("cannot read sandbox path link", &candidate, e))?;
        if target.is_absolute() {
            resolved = PathBuf::from("/");
        }
        for part in components(&target).into_iter().rev() {
            pending.push_front(part);
        }
    }
    Ok(Resolved::Path(resolved))
}

/// The root of `untrusted` that strictly contains `p`, if any.
fn inside_any(p: &Path, untrusted: &BTreeSet<PathBuf>) -> Option<PathBuf> {
    p.ancestors().skip(1).find(|a| untrusted.contains(*a)).map(Path::to_path_buf)
}

/// Normal components and `..`, in order; `.` and the root are implied.
fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// The path (or a directory on the way) does not exist.
pub(crate) fn is_missing(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

/// Every writable root a plan of this executor has granted (except `/`: a sandbox that
/// could write everywhere could have changed anything, and no rule about links can
/// take that back). Shared by every connection: one session's sandbox can plant links
/// for another's.
pub struct WritableHistory {
    roots: Mutex<Vec<PathBuf>>,
}

static HISTORY: WritableHistory = WritableHistory { roots: Mutex::new(Vec::new()) };

impl WritableHistory {
    pub fn global() -> &'static WritableHistory {
        &HISTORY
    }

    /// The remembered roots.
    pub fn snapshot(&self) -> BTreeSet<PathBuf> {
        crate::sync::lock(&self.roots).iter().cloned().collect()
    }

    /// Remembers `roots` (canonical paths).
    pub fn record<'a>(&self, roots: impl IntoIterator<Item = &'a PathBuf>) {
        let mut list = crate::sync::lock(&self.roots);
        for root in roots {
            if root.as_os_str() == "/" || list.contains(root) {
                continue;
            }
            list.push(root.clone());
            if list.len() > HISTORY_MAX {
                list.remove(0);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn set(paths: &[&Path]) -> BTreeSet<PathBuf> {
        paths.iter().map(|p| p.to_path_buf()).collect()
    }

    #[test]
    fn follows_links_outside_writable_roots_like_realpath() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("real/sub")).unwrap();
        symlink("real", root.join("rel")).unwrap();
        symlink(root.join("real/sub"), root.join("abs")).unwrap();
        let none = BTreeSet::new();
        let r = |p: PathBuf| resolve(&p, &none, Follow::TrustedOnly).unwrap();
        assert_eq!(r(root.join("rel/sub")), Resolved::Path(root.join("real/sub")));
        assert_eq!(r(root.join("abs/../sub")), Resolved::Path(root.join("real/sub")));
        assert_eq!(r(root.join("rel/missing")), Resolved::Missing);
        for p in [root.join("rel/sub"), root.join("abs")] {
            assert_eq!(r(p.clone()), Resolved::Path(std::fs::canonicalize(p).unwrap()));
        }
    }

    #[test]
    fn refuses_a_link_planted_inside_a_writable_root() {
        let dir = tempfile::tempdir().unwrap();
        let w = std::fs::canonicalize(dir.path()).unwrap().join("w");
        std::fs::create_dir(&w).unwrap();
        symlink("/", w.join("b1")).unwrap();
        let untrusted = set(&[&w]);
        let e = resolve(&w.join("b1"), &untrusted, Follow::TrustedOnly).unwrap_err();
        assert!(e.is_client_error());
        let text = e.to_string();
        assert!(text.contains(&w.join("b1").display().to_string()) && text.contains("symlink"), "{text}");
        // Deeper, and reached through a trusted link first.
        let trusted_link = w.parent().unwrap().join("alias");
        symlink(&w, &trusted_link).unwrap();
        assert!(resolve(&trusted_link.join("b1/etc"), &untrusted, Follow::TrustedOnly).is_err());
        // The root itself is not inside itself; a deny may follow the link.
        assert_eq!(resolve(&w, &untrusted, Follow::TrustedOnly).unwrap(), Resolved::Path(w.clone()));
        assert_eq!(resolve(&w.join("b1"), &untrusted, Follow::Any).unwrap(), Resolved::Path(PathBuf::from("/")));
    }

    #[test]
    fn link_loops_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        symlink(root.join("b"), root.join("a")).unwrap();
        symlink(root.join("a"), root.join("b")).unwrap();
        let e = resolve(&root.join("a"), &BTreeSet::new(), Follow::Any).unwrap_err();
        assert!(e.to_string().contains("symbolic links"), "{e}");
    }

    #[test]
    fn history_skips_slash_and_duplicates() {
        let h = WritableHistory { roots: Mutex::new(Vec::new()) };
        let (a, slash) = (PathBuf::from("/srv/a"), PathBuf::from("/"));
        h.record([&a, &slash, &a]);
        assert_eq!(h.snapshot(), set(&[Path::new("/srv/a")]));
    }
}
