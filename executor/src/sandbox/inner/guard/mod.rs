//! The create guard: keeps protected names (`.git`, `.codex`, ...) that do not exist
//! yet in a writable root from being created, without writing anything on the host.
//!
//! A mount can only cover a name that exists, and a placeholder would have to be
//! created in the host's directory, so the mount layer cannot do this. Instead every
//! call that makes a directory entry is routed by a seccomp filter to a supervisor
//! (seccomp user notification): the inner stage's PID 1, which is itself outside that
//! filter and serves the notifications from the same event loop that reaps and
//! forwards signals. The supervisor copies the path arguments once, resolves them itself,
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
mod filter;
mod sys;
mod target;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

use fs_helper::fd_pass;
use nix::sys::socket::{self, MsgFlags};

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

/// What the inner stage prepares before forking the command.
pub struct Setup {
    guard: Guard,
    program: Vec<libc::sock_filter>,
    parent_end: OwnedFd,
    child_end: OwnedFd,
}

/// Prepares the guard for `missing` (protected paths absent when the plan was made) and
/// `pinned` (directories not to be renamed).
/// `Ok(None)`: nothing to guard. `Err`: the host cannot run the guard (the reason).
pub fn prepare(missing: &[PathBuf], pinned: &[PathBuf]) -> Result<Option<Setup>, String> {
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
    let (parent_end, child_end) =
        socket::socketpair(socket::AddressFamily::Unix, socket::SockType::SeqPacket, None, socket::SockFlag::SOCK_CLOEXEC)
            .map_err(|e| format!("socketpair: {e}"))?;
    Ok(Some(Setup { guard: Guard { protected, pinned }, program: filter::program()?, parent_end, child_end }))
}

impl Setup {
    /// In the forked child, before exec: install the filter and pass its listener to
    /// the parent. The child keeps no copy of the listener. Only system calls and
    /// allocation (the parent was single-threaded at fork). `Err`: the command must not
    /// run, since it would run unguarded.
    pub fn install_in_child(&self) -> Result<(), i32> {
        // The message is the errno (0 on success), with the listener attached.
        match sys::install_listener(&self.program) {
            Ok(listener) => fd_pass::send_fd(self.child_end.as_fd(), listener.as_fd(), &0i32.to_ne_bytes())
                .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO)),
            Err(errno) => {
                let _ = socket::send(self.child_end.as_raw_fd(), &errno.to_ne_bytes(), MsgFlags::MSG_NOSIGNAL);
                Err(errno)
            }
        }
    }

    /// In the parent after fork: receive the listener. The supervisor then runs in
    /// PID 1's own event loop (no extra thread on the start path).
    pub fn start_in_parent(self) -> Result<Supervisor, String> {
        let Setup { guard, parent_end, child_end, .. } = self;
        drop(child_end);
        let listener = receive_listener(parent_end.as_fd())?;
        let (root, proc_root) = match (sys::open_dir(c"/"), sys::open_dir(c"/proc")) {
            (Ok(r), Ok(p)) => (r, p),
            // The caller kills the command: nothing would answer its guarded calls.
            (Err(e), _) | (_, Err(e)) => {
                return Err(format!("cannot open / or /proc: {}", std::io::Error::from_raw_os_error(e)));
            }
        };
        let buf = vec![0u64; sys::notif_size().div_ceil(8)];
        Ok(Supervisor { guard, listener: Arc::new(listener), root, proc_root, buf })
    }
}

/// The supervisor: answers the guard's notifications one at a time, from PID 1's
/// event loop. PID 1 is single-threaded and its umask is its own (the command forked
/// off with a copy), so it can take on each caller's umask for a call.
pub struct Supervisor {
    guard: Guard,
    listener: Arc<OwnedFd>,
    root: OwnedFd,
    proc_root: OwnedFd,
    buf: Vec<u64>,
}

impl Supervisor {
    /// The descriptor to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// Number of protected names and of pinned directories, for the debug report.
    pub fn counts(&self) -> (usize, usize) {
        (self.guard.protected.len(), self.guard.pinned.len())
    }

    /// Receives and answers one notification (call when `fd()` is readable).
    pub fn handle_one(&mut self) {
        let n = match sys::recv(self.listener.as_fd(), &mut self.buf) {
            Ok(n) => n,
            Err(_) => return, // interrupted, or the caller died before we got to it
        };
        let target = match target::Target::open(self.proc_root.as_fd(), n.pid) {
            Ok(t) => t,
            Err(e) => {
                sys::reply(self.listener.as_fd(), n.id, Err(if e == libc::ENOENT { libc::ESRCH } else { libc::EACCES }));
                return;
            }
        };
        if !sys::id_valid(self.listener.as_fd(), n.id) {
            return;
        }
        match emulate::handle(&self.guard, self.root.as_fd(), &target, &n) {
            Outcome::Blocking(open) => {
                // A FIFO open waits for its peer: on a thread of its own, so the
                // rest of the sandbox is not held up.
                let shared = Arc::clone(&self.listener);
                let spawned = std::thread::Builder::new().spawn(move || answer(shared.as_fd(), n.id, open.finish()));
                if spawned.is_err() {
                    sys::reply(self.listener.as_fd(), n.id, Err(libc::EAGAIN));
                }
            }
            outcome => answer(self.listener.as_fd(), n.id, outcome),
        }
    }
}

fn receive_listener(sock: BorrowedFd<'_>) -> Result<OwnedFd, String> {
    let mut bytes = [0u8; 4];
    let (len, listener) = fd_pass::recv_fd(sock, &mut bytes).map_err(|e| format!("recvmsg: {e}"))?;
    if len == 0 {
        return Err("the command exited before installing the filter".into());
    }
    let errno = i32::from_ne_bytes(bytes);
    listener.ok_or_else(|| format!("seccomp listener: {}", std::io::Error::from_raw_os_error(errno)))
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
