//! A resolved plan: what the sandbox view starts as and the mounts that shape it, with
//! the root lists the inner stage (Landlock, the create guard) needs.

use std::path::{Path, PathBuf};

/// Effective access of a subtree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effective {
    /// `none`/`deny`: masked.
    Hidden,
    Read,
    Write,
}

/// What the root of the sandbox view starts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Base {
    /// `--ro-bind / /`
    ReadOnlyRoot,
    /// `--bind / /`
    WritableRoot,
    /// bwrap's empty tmpfs root; only explicit paths are visible.
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MountOp {
    ReadOnly(PathBuf),
    Writable(PathBuf),
    /// Hide a directory: empty, mode 000, read-only tmpfs.
    MaskDir(PathBuf),
    /// Hide a non-directory: bind `/dev/null` read-only over it.
    MaskFile(PathBuf),
    /// Recreate a top-level symlink (e.g. merged-/usr `/bin -> usr/bin`) in an empty root.
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
}

impl MountOp {
    /// Where the mount goes in the sandbox's view.
    pub fn path(&self) -> &Path {
        match self {
            MountOp::ReadOnly(p) | MountOp::Writable(p) | MountOp::MaskDir(p) | MountOp::MaskFile(p) => p,
            MountOp::Symlink { link, .. } => link,
        }
    }
}

/// Equal plans give equal sandboxes: a warm fs helper is kept per plan (and cwd).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    /// No sandbox: the command runs as it is.
    pub(super) fn direct() -> Self {
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

    /// Everything writable, network cut: a sandbox for the network namespace alone.
    pub(super) fn network_only() -> Self {
        SandboxPlan { direct: false, network: false, writable_roots: vec![PathBuf::from("/")], ..Self::direct() }
    }

    /// A restricted plan whose root starts as `base`, before any mount is added.
    pub(super) fn restricted(base: Effective, network: bool) -> Self {
        let mut plan = SandboxPlan { direct: false, network, base: Base::from(base), ..Self::direct() };
        match base {
            Effective::Read => plan.readable_roots.push(PathBuf::from("/")),
            Effective::Write => plan.writable_roots.push(PathBuf::from("/")),
            Effective::Hidden => {}
        }
        plan
    }
}

impl From<Effective> for Base {
    fn from(root: Effective) -> Self {
        match root {
            Effective::Hidden => Base::Empty,
            Effective::Read => Base::ReadOnlyRoot,
            Effective::Write => Base::WritableRoot,
        }
    }
}
