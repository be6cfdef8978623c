//! The create guard: keeps protected names (`.git`, `.codex`, ...) that do not exist
//! yet in a writable root from being created, without writing anything on the host.
//!
//! A mount can only cover a name that exists, and a placeholder would have to be
//! created in the host's directory, so the mount layer cannot do this. Instead every
//! call that makes a directory entry is routed by a seccomp filter to a supervisor
//! (seccomp user notification): the inner stage's PID 1, which is itself outside that
//! filter and serves the notifications from the same event loop that reaps and
//! forwards signals (`supervisor`, which also answers the seccomp refusals it is sent).
//! The supervisor copies the path arguments once, resolves them itself,
//! refuses a protected name in a guarded directory with EROFS (what a read-only mount
//! would answer), and otherwise makes the call itself and hands back the result, an
//! opened file included (`SECCOMP_ADDFD_FLAG_SEND`). It never lets the kernel re-read
//! the path, so a second thread rewriting the path after the check gains nothing.
//!
//! Guarded directories are identified by device and inode, so every route to them
//! (`..`, symlinks, `/proc/self/cwd`, another bind of the same directory) is covered.
//!
//! Requirements: Linux 5.14 (descriptor hand-back) and a `/proc` of the sandbox's PID
//! namespace (the supervisor reads the caller's memory, cwd and umask there). Without
//! them the guard is not installed and the debug line says so. The inner stage is
//! non-dumpable, so no sandboxed process can take the listener descriptor.
//!
//! What the guard does not cover: an AF_UNIX socket bound to a protected name (allowed
//! only with network enabled; a socket is not metadata git or an agent would read),
//! and a process that made itself non-dumpable: its memory cannot be read, so its
//! creating calls fail with EACCES.

mod emulate;
pub mod filter;
pub mod sys;
mod target;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

use emulate::Outcome;

/// Protected names to keep from being created: `(device, inode)` of the directory
/// (as seen inside the sandbox) and the name.
pub struct Guard {
    protected: Vec<(u64, u64, Vec<u8>)>,
    /// `(device, inode)` of directories that must not be renamed.
    pinned: Vec<(u64, u64)>,
}

impl Guard {
    fn protects(&self, dev: u64, ino: u64, name: &[u8]) -> bool {
        self.protected.iter().any(|(d, i, n)| *d == dev && *i == ino && n.as_slice() == name)
    }

    fn pins(&self, dev: u64, ino: u64) -> bool {
        self.pinned.contains(&(dev, ino))
    }
}

/// Prepares the guard for `missing` (protected paths absent when the plan was made) and
/// `pinned` (directories not to be renamed).
/// `Ok(None)`: nothing to guard. `Err`: the host cannot run the guard (the reason).
pub fn prepare(missing: &[PathBuf], pinned: &[PathBuf]) -> Result<Option<Guard>, String> {
    let pinned: Vec<(u64, u64)> = pinned
        .iter()
        .filter_map(|p| std::fs::symlink_metadata(p).ok())
        .map(|md| (std::os::unix::fs::MetadataExt::dev(&md), std::os::unix::fs::MetadataExt::ino(&md)))
        .collect();
    let mut protected = Vec::new();
    // Every writable root has several protected names: one lookup per directory.
    let mut dirs: std::collections::HashMap<&std::path::Path, Option<(u64, u64)>> = std::collections::HashMap::new();
    for path in missing {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            continue;
        };
        let id = *dirs.entry(dir).or_insert_with(|| {
            std::fs::metadata(dir).ok().map(|md| (std::os::unix::fs::MetadataExt::dev(&md), std::os::unix::fs::MetadataExt::ino(&md)))
        });
        // A directory not visible in this view has nothing to guard.
        let Some((dev, ino)) = id else {
            continue;
        };
        protected.push((dev, ino, name.as_bytes().to_vec()));
    }
    if protected.is_empty() && pinned.is_empty() {
        return Ok(None);
    }
    if !kernel_supported() {
        return Err(KERNEL_NEEDED.into());
    }
    if std::fs::metadata("/proc/self/mem").is_err() {
        return Err("needs the sandbox's /proc, which this host does not allow".into());
    }
    Ok(Some(Guard { protected, pinned }))
}

impl Guard {
    /// In PID 1 once the listener is there: what serving the guard needs. `Err`: the
    /// caller kills the command, since nothing would answer its guarded calls.
    pub fn serve(self) -> Result<Served, String> {
        let (root, proc_root) = match (sys::open_dir(c"/"), sys::open_dir(c"/proc")) {
            (Ok(r), Ok(p)) => (r, p),
            (Err(e), _) | (_, Err(e)) => {
                return Err(format!("cannot open / or /proc: {}", std::io::Error::from_raw_os_error(e)));
            }
        };
        Ok(Served { guard: self, root, proc_root })
    }
}

/// The guard as PID 1's supervisor serves it. PID 1 is single-threaded and its umask is
/// its own (the command forked off with a copy), so it can take on each caller's umask
/// for a call.
pub struct Served {
    guard: Guard,
    root: OwnedFd,
    proc_root: OwnedFd,
}

impl Served {
    /// Number of protected names and of pinned directories, for the debug report.
    pub fn counts(&self) -> (usize, usize) {
        (self.guard.protected.len(), self.guard.pinned.len())
    }

    /// Answers notification `n`, one of the guard's calls ([`filter::routes`]).
    pub fn handle(&self, listener: &Arc<OwnedFd>, n: sys::Notif) {
        let target = match target::Target::open(self.proc_root.as_fd(), n.pid) {
            Ok(t) => t,
            Err(e) => {
                sys::reply(listener.as_fd(), n.id, Err(if e == libc::ENOENT { libc::ESRCH } else { libc::EACCES }));
                return;
            }
        };
        if !sys::id_valid(listener.as_fd(), n.id) {
            return;
        }
        match emulate::handle(&self.guard, self.root.as_fd(), &target, &n) {
            Outcome::Blocking(open) => {
                // A FIFO open waits for its peer: on a thread of its own, so the
                // rest of the sandbox is not held up.
                let shared = Arc::clone(listener);
                let spawned = std::thread::Builder::new().spawn(move || answer(shared.as_fd(), n.id, open.finish()));
                if spawned.is_err() {
                    sys::reply(listener.as_fd(), n.id, Err(libc::EAGAIN));
                }
            }
            outcome => answer(listener.as_fd(), n.id, outcome),
        }
    }
}

pub const KERNEL_NEEDED: &str = "needs Linux 5.14 (seccomp descriptor hand-back)";

/// Whether this kernel can run the guard (SECCOMP_ADDFD_FLAG_SEND).
pub fn kernel_supported() -> bool {
    kernel_at_least(5, 14)
}

fn kernel_at_least(major: u32, minor: u32) -> bool {
    let Ok(u) = nix::sys::utsname::uname() else {
        return false;
    };
    let release = u.release().to_string_lossy().into_owned();
    let mut parts = release.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse::<u32>().ok());
    let (Some(a), Some(b)) = (parts.next(), parts.next()) else {
        return false;
    };
    (a, b) >= (major, minor)
}

fn answer(listener: BorrowedFd<'_>, id: u64, outcome: Outcome) {
    match outcome {
        Outcome::Value(r) => sys::reply(listener, id, r),
        Outcome::File { fd, cloexec } => {
            if let Err(e) = sys::reply_with_fd(listener, id, fd.as_fd(), cloexec) {
                sys::reply(listener, id, Err(e));
            }
        }
        Outcome::Blocking(_) => sys::reply(listener, id, Err(libc::EIO)),
    }
}
