//! The identity of every host path a sandbox plan names, to tell whether a sandbox that
//! was built for the plan still matches the host.
//!
//! A bind mount or a mask holds on to the directory that was at its path when the
//! sandbox started; Landlock rules hold on to inodes too. When the host replaces such a
//! directory (`rm -rf D && mkdir D`, a rename onto the path, a bind mount over it), a
//! long-lived sandbox keeps enforcing the old one: the kernel even detaches a mask
//! whose mountpoint was deleted, so the new `D` shows through unmasked. Recording
//! (device, inode, mount id, birth time, type) of each path when the sandbox is made
//! and comparing before and after each use catches every such replacement: a new
//! directory is a new inode (or, where a file system reuses inode numbers, has another
//! birth time), and a mount over the path changes the device or the mount id.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::policy::SandboxPlan;

/// What identifies the object at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: (u32, u32),
    ino: u64,
    mnt_id: u64,
    btime: (i64, u32),
    kind: u16,
}

/// Identities of a plan's paths (`None`: nothing there), in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanIdentity(Vec<(PathBuf, Option<Identity>)>);

impl PlanIdentity {
    /// Every path `plan` names, and `cwd`, as they are on the host now.
    pub fn of(plan: &SandboxPlan, cwd: &Path) -> Self {
        PlanIdentity(
            plan_paths(plan, cwd)
                .into_iter()
                .map(|p| {
                    let id = identity(&p);
                    (p, id)
                })
                .collect(),
        )
    }

    /// The first path whose identity differs in `now`, when something changed.
    pub fn changed_in(&self, now: &PlanIdentity) -> Option<PathBuf> {
        if self.0.len() != now.0.len() {
            return Some(PathBuf::from("/"));
        }
        self.0.iter().zip(&now.0).find(|(a, b)| a != b).map(|(a, _)| a.0.clone())
    }
}

fn plan_paths(plan: &SandboxPlan, cwd: &Path) -> BTreeSet<PathBuf> {
    let mut paths: BTreeSet<PathBuf> = BTreeSet::new();
    paths.extend(plan.ops.iter().map(|op| op.path().to_path_buf()));
    let lists = [&plan.readable_roots, &plan.writable_roots, &plan.denied, &plan.protected, &plan.missing_protected, &plan.pinned];
    for list in lists {
        paths.extend(list.iter().cloned());
    }
    paths.insert(cwd.to_path_buf());
    // The cwd may be a link; what the sandbox enters is its target.
    if let Ok(real) = std::fs::canonicalize(cwd) {
        paths.insert(real);
    }
    paths
}

fn identity(path: &Path) -> Option<Identity> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let stx = statx_nofollow(&c)?;
    Some(Identity {
        dev: (stx.stx_dev_major, stx.stx_dev_minor),
        ino: stx.stx_ino,
        mnt_id: if stx.stx_mask & libc::STATX_MNT_ID != 0 { stx.stx_mnt_id } else { 0 },
        btime: if stx.stx_mask & libc::STATX_BTIME != 0 { (stx.stx_btime.tv_sec, stx.stx_btime.tv_nsec) } else { (0, 0) },
        kind: stx.stx_mode & libc::S_IFMT as u16,
    })
}

fn statx_nofollow(path: &CString) -> Option<libc::statx> {
    let mask = libc::STATX_TYPE | libc::STATX_INO | libc::STATX_BTIME | libc::STATX_MNT_ID;
    // SAFETY: an all-zero statx is a valid value of this plain C struct.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stx` a live, writable statx for
    // the duration of the call; the kernel writes nothing else.
    let rc = unsafe { libc::statx(libc::AT_FDCWD, path.as_ptr(), libc::AT_SYMLINK_NOFOLLOW, mask, &mut stx) };
    (rc == 0).then_some(stx)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sandbox::policy::{builtin_context, resolve};

    #[test]
    fn replacing_a_denied_dir_or_the_workspace_changes_the_identity() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let (ws, denied) = (root.join("ws"), root.join("denied"));
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::create_dir_all(&denied).unwrap();
        let ctx = builtin_context(false, &ws, std::slice::from_ref(&ws), std::slice::from_ref(&denied), false);
        let plan = resolve(&ctx, None).unwrap();
        let before = PlanIdentity::of(&plan, &ws);
        assert_eq!(before.changed_in(&PlanIdentity::of(&plan, &ws)), None);
        // Writing inside the workspace is not a change of the view.
        std::fs::write(ws.join("f"), "x").unwrap();
        assert_eq!(before.changed_in(&PlanIdentity::of(&plan, &ws)), None);

        std::fs::remove_dir(&denied).unwrap();
        std::fs::create_dir(&denied).unwrap();
        assert_eq!(before.changed_in(&PlanIdentity::of(&plan, &ws)), Some(denied.clone()));

        let before = PlanIdentity::of(&plan, &ws);
        std::fs::rename(&ws, root.join("old")).unwrap();
        std::fs::create_dir(&ws).unwrap();
        assert_eq!(before.changed_in(&PlanIdentity::of(&plan, &ws)), Some(ws.clone()));
    }
}
