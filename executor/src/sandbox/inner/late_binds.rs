//! Writable roots the inner stage binds itself, instead of bwrap (`--bind`): bwrap
//! re-reads and parses all of `/proc/self/mountinfo` for every bind it makes, so a plan
//! with many writable roots paid for each one more than for the last. Here each root is
//! three calls of the new mount API, whatever the number of mounts.
//!
//! Only roots the outer stage found plain are bound here (`sandbox::late_binds`): under
//! the read-only root, with no other mount of the plan at, above or below them, no host
//! mount at or below them, on a host mount that is writable. Inside, the root
//! is the host's directory seen through the read-only root bind; it is opened without
//! following any link, checked to be the directory (device and inode) the plan was made
//! from, copied with its mounts (`open_tree`), made nosuid and nodev throughout and
//! writable at its top mount only (`mount_setattr`: a mount that got below it anyway,
//! say a plan mount that bwrap placed through a link swapped in meanwhile, keeps its
//! read-only flag, as under `--bind`), and attached on top of itself (`move_mount`). Every call works on the checked descriptor,
//! so a name swapped for a link or another directory meanwhile is refused, not followed.
//!
//! It needs `CAP_SYS_ADMIN` in the sandbox's user namespace, which bwrap then leaves to
//! the inner stage (`--cap-add CAP_SYS_ADMIN`) only when there are late binds; the
//! `DropCapabilities` step that follows drops it with every other capability.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::sys;

/// A writable root for the inner stage to bind, with the identity it had when planned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LateBind {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LateBindError {
    #[error("writable root {}: cannot open it without following links: {source}", path.display())]
    Open { path: PathBuf, source: std::io::Error },
    #[error("writable root {} is not the directory the plan was made from (it was replaced while the sandbox started); retry", path.display())]
    Replaced { path: PathBuf },
    #[error("writable root {}: cannot copy its mounts: {source}", path.display())]
    Clone { path: PathBuf, source: std::io::Error },
    #[error("writable root {}: cannot make it writable: {source}", path.display())]
    Writable { path: PathBuf, source: std::io::Error },
    #[error("writable root {}: cannot mount it: {source}", path.display())]
    Attach { path: PathBuf, source: std::io::Error },
    #[error("cannot enter the working directory again after binding the writable roots: {0}")]
    Chdir(#[source] std::io::Error),
}

/// Whether this process may use the calls (see `sys::has_new_mount_api`).
pub fn supported() -> bool {
    sys::has_new_mount_api()
}

/// Binds every root in `binds`, in order; the first failure stops the sandbox. Then
/// enters the working directory bwrap chose again: a process keeps the directory it is
/// in, so one that was under a new mount would still be the read-only one below it.
pub fn apply(binds: &[LateBind]) -> Result<(), LateBindError> {
    if binds.is_empty() {
        return Ok(());
    }
    binds.iter().try_for_each(bind)?;
    // By path (now through the new mounts), without following links, then by descriptor.
    let cwd = std::env::current_dir().map_err(LateBindError::Chdir)?;
    let dir = open_checked(&cwd).map_err(LateBindError::Chdir)?;
    sys::enter_dir(dir.as_fd()).map_err(LateBindError::Chdir)
}

fn bind(root: &LateBind) -> Result<(), LateBindError> {
    let path = || root.path.clone();
    let dir = open_checked(&root.path).map_err(|source| LateBindError::Open { path: path(), source })?;
    let meta = nix::sys::stat::fstat(dir.as_raw_fd()).map_err(|e| LateBindError::Open { path: path(), source: e.into() })?;
    let is_dir = meta.st_mode & libc::S_IFMT == libc::S_IFDIR;
    if (meta.st_dev, meta.st_ino) != (root.dev, root.ino) || !is_dir {
        return Err(LateBindError::Replaced { path: path() });
    }
    let tree = sys::clone_tree(dir.as_fd()).map_err(|source| LateBindError::Clone { path: path(), source })?;
    sys::make_tree_writable(tree.as_fd()).map_err(|source| LateBindError::Writable { path: path(), source })?;
    sys::attach_tree(tree.as_fd(), dir.as_fd()).map_err(|source| LateBindError::Attach { path: path(), source })
}

fn open_checked(path: &Path) -> std::io::Result<std::os::fd::OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    sys::open_dir_no_symlinks(&c)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_link_on_the_way_or_a_different_directory_is_refused_before_any_mount() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let meta = std::fs::metadata(&real).unwrap();
        let through_link = LateBind { path: link.join("."), dev: meta.dev(), ino: meta.ino() };
        assert!(matches!(bind(&through_link), Err(LateBindError::Open { .. })), "a symlink component must not be followed");
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        let swapped = LateBind { path: other, dev: meta.dev(), ino: meta.ino() };
        assert!(matches!(bind(&swapped), Err(LateBindError::Replaced { .. })));
    }
}
