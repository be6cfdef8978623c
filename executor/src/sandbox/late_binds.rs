//! Which writable roots of a plan the inner stage binds itself rather than bwrap
//! (`inner/late_binds.rs` says how and why). Decided for every launch from the host as
//! it is now (the plan, this process's mountinfo, each root's identity); nothing here is
//! cached but whether the kernel has the mount API.
//!
//! Only for an executor running as root (see `runs_in_the_mount_namespaces_user_namespace`),
//! and only from [`MIN_LATE_BINDS`] plain roots on.
//! A root is bound late only when that cannot change the sandbox's view, that is when
//! bwrap would have made the same mount last: the view starts as the read-only root; no
//! other mount of the plan is at, above or below the root; nothing bwrap mounts itself
//! (`/dev`, `/proc`, `/sys`, the executor binary) is at or below it; the host has no
//! mount at or below it (so the copy is of one directory of one mount); and the host
//! mount it lies on is writable (so the result is what `--bind` gives: writable, nosuid,
//! nodev). Every other writable root stays a bwrap `--bind`.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::OnceLock;

use super::inner::late_binds::{self, LateBind};
use super::mountinfo::{self, Mount};
use super::policy::{Base, MountOp, SandboxPlan};

/// Paths bwrap mounts over itself, after the plan's mounts.
const BWRAP_MOUNTS: &[&str] = &["/dev", "/proc", "/sys"];

/// The writable roots of `plan` to bind in the inner stage (`exe`: the executor binary,
/// canonical, which bwrap may bind read-only).
pub fn select(plan: &SandboxPlan, exe: &Path) -> Vec<LateBind> {
    if plan.base != Base::ReadOnlyRoot || !runs_in_the_mount_namespaces_user_namespace() || !kernel_supports() {
        return Vec::new();
    }
    let mounts_of_plan = mount_points(plan);
    let candidates: Vec<&Path> = plan
        .ops
        .iter()
        .filter_map(|op| match op {
            MountOp::Writable(p) if alone_in_plan(&mounts_of_plan, p) && clear_of_bwrap(p, exe) => Some(p.as_path()),
            _ => None,
        })
        .collect();
    if candidates.len() < MIN_LATE_BINDS {
        return Vec::new();
    }
    let mounts = mountinfo::read();
    let binds: Vec<LateBind> = candidates.into_iter().filter(|p| plain_on_host(&mounts, p)).filter_map(identity).collect();
    if binds.len() < MIN_LATE_BINDS {
        return Vec::new();
    }
    binds
}

/// Fewer plain roots than this stay with bwrap: a late bind has a fixed cost (about
/// 0.5 to 1 ms per sandbox start on the 2-core test machine, measured with one root)
/// that bwrap's scan only exceeds from a few roots on (even at 2 and 4 roots, 2.5 ms
/// faster at 16, 25 ms at 100; docs/benchmarks.md).
pub const MIN_LATE_BINDS: usize = 4;

/// Only an executor running as root: for any other user, bwrap (which must then map
/// that user to root to mount `/dev`) enters a second user namespace before it runs the
/// inner stage, which then holds no capability over the sandbox's mount namespace
/// (`open_tree` fails with EPERM), and bwrap's own binds are used.
fn runs_in_the_mount_namespaces_user_namespace() -> bool {
    nix::unistd::geteuid().is_root()
}

fn kernel_supports() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(late_binds::supported)
}

/// How many of the plan's mounts are at each path, in component order (in which the
/// paths below a directory come right after it).
fn mount_points(plan: &SandboxPlan) -> BTreeMap<&Path, usize> {
    let mut points = BTreeMap::new();
    for op in &plan.ops {
        *points.entry(op.path()).or_insert(0) += 1;
    }
    points
}

/// No other mount of the plan is at, above or below `root`: a lookup per ancestor and
/// one for the first path after `root`, so a plan with many roots is not checked pair by
/// pair.
fn alone_in_plan(points: &BTreeMap<&Path, usize>, root: &Path) -> bool {
    if points.get(root) != Some(&1) || root.ancestors().skip(1).any(|a| points.contains_key(a)) {
        return false;
    }
    points.range::<Path, _>((Bound::Excluded(root), Bound::Unbounded)).next().is_none_or(|(next, _)| !next.starts_with(root))
}

/// Neither `root` nor anything below it is mounted by bwrap itself, nor is `root`
/// inside such a mount.
fn clear_of_bwrap(root: &Path, exe: &Path) -> bool {
    root.is_absolute()
        && root != Path::new("/")
        && !exe.starts_with(root)
        && !BWRAP_MOUNTS.iter().any(|m| root.starts_with(m) || Path::new(m).starts_with(root))
}

/// No host mount at or below `root`, and the host mount it lies on is writable.
fn plain_on_host(mounts: &[Mount], root: &Path) -> bool {
    if mounts.iter().any(|m| m.point.starts_with(root)) {
        return false;
    }
    // The last mount on a path is the one seen there.
    let on = mounts.iter().filter(|m| root.starts_with(&m.point)).max_by_key(|m| m.point.components().count());
    on.is_some_and(Mount::is_writable)
}

/// The root as it is now; a root that is gone or not a directory stays with bwrap,
/// which reports it.
fn identity(root: &Path) -> Option<LateBind> {
    let meta = std::fs::symlink_metadata(root).ok().filter(|m| m.is_dir())?;
    Some(LateBind { path: root.to_path_buf(), dev: meta.dev(), ino: meta.ino() })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn plan(ops: Vec<MountOp>) -> SandboxPlan {
        SandboxPlan {
            direct: false,
            base: Base::ReadOnlyRoot,
            ops,
            readable_roots: vec![],
            writable_roots: vec![],
            denied: vec![],
            protected: vec![],
            missing_protected: vec![],
            pinned: vec![],
            network: false,
        }
    }

    fn w(p: &str) -> MountOp {
        MountOp::Writable(PathBuf::from(p))
    }

    #[test]
    fn a_root_with_another_mount_at_above_or_below_it_stays_with_bwrap() {
        let p = plan(vec![
            w("/a"),
            w("/a/b"),
            w("/c"),
            MountOp::ReadOnly("/d/.git".into()),
            w("/d"),
            w("/e"),
            w("/f"),
            w("/f"),
            w("/g/h"),
            w("/gg"),
        ]);
        let points = mount_points(&p);
        let roots = ["/a", "/a/b", "/c", "/d", "/e", "/f", "/g/h", "/gg"];
        let alone: Vec<&str> = roots.into_iter().filter(|r| alone_in_plan(&points, Path::new(r))).collect();
        assert_eq!(alone, ["/c", "/e", "/g/h", "/gg"], "twice at /f is not alone, /gg is no child of /g");
    }

    #[test]
    fn bwraps_own_mounts_and_the_executor_keep_a_root_with_bwrap() {
        let exe = Path::new("/opt/x/executor");
        assert!(clear_of_bwrap(Path::new("/work"), exe));
        for root in ["/", "/dev/shm", "/proc", "/sys/fs", "/opt", "/opt/x", "relative"] {
            assert!(!clear_of_bwrap(Path::new(root), exe), "{root}");
        }
    }

    #[test]
    fn host_mounts_at_or_below_or_a_read_only_host_mount_keep_a_root_with_bwrap() {
        let mounts = mountinfo::parse(
            "\
1 0 8:1 / / rw,relatime - ext4 /dev/root rw
2 1 0:5 / /work/vol rw - tmpfs tmpfs rw
3 1 8:2 / /ro ro,relatime - ext4 /dev/sdb ro
",
        );
        assert!(plain_on_host(&mounts, Path::new("/tmp/a")));
        assert!(!plain_on_host(&mounts, Path::new("/work")), "a mount below");
        assert!(!plain_on_host(&mounts, Path::new("/work/vol")), "a mount at the root");
        assert!(plain_on_host(&mounts, Path::new("/work/vol/x")), "inside a writable mount");
        assert!(!plain_on_host(&mounts, Path::new("/ro/x")), "on a read-only mount");
        assert!(!plain_on_host(&[], Path::new("/tmp/a")), "no mount known: keep bwrap's way");
    }

    #[test]
    fn only_a_read_only_root_view_has_late_binds() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let mut p = plan(vec![MountOp::Writable(root.clone())]);
        p.base = Base::Empty;
        assert!(select(&p, Path::new("/nonexistent/executor")).is_empty());
    }
}
