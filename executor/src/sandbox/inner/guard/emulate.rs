//! Carrying out one intercepted call for the supervised process.
//!
//! The supervisor never lets the kernel re-read the process's memory after a check
//! (`SECCOMP_USER_NOTIF_FLAG_CONTINUE` would re-read the path, and another thread could
//! have changed it in between). It copies the path once, resolves the parent directory
//! itself, refuses a protected name, and makes the call on that directory descriptor
//! and that name. The supervisor shares the process's mount namespace, credentials,
//! Landlock domain and (per call) umask, so the result is what the process's own call
//! would have done.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::sys::{self, Errno, Notif};
use super::target::{cstr, split, Target};
use super::Guard;

/// What a handled call answers.
pub enum Outcome {
    Value(Result<i64, Errno>),
    /// An opened file to install in the process as the call's result.
    File {
        fd: OwnedFd,
        cloexec: bool,
    },
    /// An open that may block (a FIFO): finish it on a thread of its own.
    Blocking(BlockingOpen),
}

pub struct BlockingOpen {
    parent: OwnedFd,
    last: Vec<u8>,
    flags: i32,
    mode: u32,
    umask: u32,
}

impl BlockingOpen {
    /// Runs on its own thread, so it sets up its own umask.
    pub fn finish(self) -> Outcome {
        let _ = sys::unshare_fs();
        sys::set_umask(self.umask);
        match cstr(&self.last).and_then(|n| sys::openat(self.parent.as_fd(), &n, self.flags, self.mode)) {
            Ok(fd) => Outcome::File { fd, cloexec: self.flags & libc::O_CLOEXEC != 0 },
            Err(e) => Outcome::Value(Err(e)),
        }
    }
}

/// One call, decoded: which operation and where its path arguments are.
enum Call {
    Open { dirfd: i32, path: u64, flags: i32, mode: u32 },
    Mkdir { dirfd: i32, path: u64, mode: u32 },
    Mknod { dirfd: i32, path: u64, mode: u32, dev: u64 },
    Symlink { target: u64, dirfd: i32, path: u64 },
    Link { old_dirfd: i32, old: u64, new_dirfd: i32, new: u64, flags: i32 },
    Rename { old_dirfd: i32, old: u64, new_dirfd: i32, new: u64, flags: u32 },
}

fn int(a: u64) -> i32 {
    a as u32 as i32
}

fn decode(n: &Notif) -> Option<Call> {
    let a = n.args;
    let cwd = libc::AT_FDCWD;
    #[cfg(target_arch = "x86_64")]
    match n.nr {
        libc::SYS_open => return Some(Call::Open { dirfd: cwd, path: a[0], flags: int(a[1]), mode: a[2] as u32 }),
        libc::SYS_creat => {
            let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC;
            return Some(Call::Open { dirfd: cwd, path: a[0], flags, mode: a[1] as u32 });
        }
        libc::SYS_mkdir => return Some(Call::Mkdir { dirfd: cwd, path: a[0], mode: a[1] as u32 }),
        libc::SYS_mknod => return Some(Call::Mknod { dirfd: cwd, path: a[0], mode: a[1] as u32, dev: a[2] }),
        libc::SYS_symlink => return Some(Call::Symlink { target: a[0], dirfd: cwd, path: a[1] }),
        libc::SYS_link => return Some(Call::Link { old_dirfd: cwd, old: a[0], new_dirfd: cwd, new: a[1], flags: 0 }),
        libc::SYS_rename => return Some(Call::Rename { old_dirfd: cwd, old: a[0], new_dirfd: cwd, new: a[1], flags: 0 }),
        libc::SYS_renameat => return Some(Call::Rename { old_dirfd: int(a[0]), old: a[1], new_dirfd: int(a[2]), new: a[3], flags: 0 }),
        _ => {}
    }
    match n.nr {
        libc::SYS_openat => Some(Call::Open { dirfd: int(a[0]), path: a[1], flags: int(a[2]), mode: a[3] as u32 }),
        libc::SYS_mkdirat => Some(Call::Mkdir { dirfd: int(a[0]), path: a[1], mode: a[2] as u32 }),
        libc::SYS_mknodat => Some(Call::Mknod { dirfd: int(a[0]), path: a[1], mode: a[2] as u32, dev: a[3] }),
        libc::SYS_symlinkat => Some(Call::Symlink { target: a[0], dirfd: int(a[1]), path: a[2] }),
        libc::SYS_linkat => Some(Call::Link { old_dirfd: int(a[0]), old: a[1], new_dirfd: int(a[2]), new: a[3], flags: int(a[4]) }),
        libc::SYS_renameat2 => Some(Call::Rename { old_dirfd: int(a[0]), old: a[1], new_dirfd: int(a[2]), new: a[3], flags: a[4] as u32 }),
        _ => None,
    }
}

/// The per-call context: the process, the sandbox root, the symlink budget.
struct Ctx<'a> {
    guard: &'a Guard,
    target: &'a Target,
    root: BorrowedFd<'a>,
}

/// A resolved last component: its directory and its name as given.
struct Place {
    parent: OwnedFd,
    last: Vec<u8>,
    name: Vec<u8>,
}

impl Ctx<'_> {
    fn place(&self, dirfd: i32, path: &[u8], links: &mut u32) -> Result<Place, Errno> {
        let s = split(path)?;
        let base = if path.first() == Some(&b'/') { None } else { Some(self.target.base(dirfd)?) };
        let start = base.as_ref().map(|b| b.as_fd()).unwrap_or(self.root);
        let parent = self.target.walk(self.root, start, s.dir, links)?;
        Ok(Place { parent, last: s.last.to_vec(), name: s.name.to_vec() })
    }

    /// Refuses a protected name in a guarded directory, as a read-only mount would.
    fn allow(&self, p: &Place) -> Result<(), Errno> {
        let st = sys::fstat(p.parent.as_fd())?;
        if self.guard.protects(st.st_dev, st.st_ino, &p.name) {
            return Err(libc::EROFS);
        }
        Ok(())
    }

    /// Refuses to move (or replace) a pinned directory: an ancestor of a denied path
    /// would take the denied content with it to a path the policy does not name.
    fn movable(&self, p: &Place) -> Result<(), Errno> {
        let Ok(st) = sys::lstatat(p.parent.as_fd(), &cstr(&p.last)?) else {
            return Ok(()); // nothing there: the kernel gives the answer
        };
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR && self.guard.pins(st.st_dev, st.st_ino) {
            return Err(libc::EPERM);
        }
        Ok(())
    }

    fn path_arg(&self, addr: u64) -> Result<Vec<u8>, Errno> {
        self.target.read_path(addr)
    }
}

/// Handles one notification whose `/proc` entry is open as `target`.
pub fn handle(guard: &Guard, root: BorrowedFd<'_>, target: &Target, n: &Notif) -> Outcome {
    let Some(call) = decode(n) else {
        return Outcome::Value(Err(libc::ENOSYS));
    };
    let ctx = Ctx { guard, target, root };
    match run(&ctx, call) {
        Ok(o) => o,
        Err(e) => Outcome::Value(Err(e)),
    }
}

fn run(ctx: &Ctx<'_>, call: Call) -> Result<Outcome, Errno> {
    let mut links = 0u32;
    let done = Outcome::Value(Ok(0));
    match call {
        Call::Open { dirfd, path, flags, mode } => open(ctx, dirfd, &ctx.path_arg(path)?, flags, mode),
        Call::Mkdir { dirfd, path, mode } => {
            let p = ctx.place(dirfd, &ctx.path_arg(path)?, &mut links)?;
            ctx.allow(&p)?;
            sys::set_umask(ctx.target.umask()?);
            sys::mkdirat(p.parent.as_fd(), &cstr(&p.last)?, mode)?;
            Ok(done)
        }
        Call::Mknod { dirfd, path, mode, dev } => {
            let p = ctx.place(dirfd, &ctx.path_arg(path)?, &mut links)?;
            ctx.allow(&p)?;
            sys::set_umask(ctx.target.umask()?);
            sys::mknodat(p.parent.as_fd(), &cstr(&p.last)?, mode, dev)?;
            Ok(done)
        }
        Call::Symlink { target, dirfd, path } => {
            let contents = ctx.path_arg(target)?;
            if contents.is_empty() {
                return Err(libc::ENOENT);
            }
            let p = ctx.place(dirfd, &ctx.path_arg(path)?, &mut links)?;
            ctx.allow(&p)?;
            sys::symlinkat(&cstr(&contents)?, p.parent.as_fd(), &cstr(&p.last)?)?;
            Ok(done)
        }
        Call::Link { old_dirfd, old, new_dirfd, new, flags } => {
            let old = ctx.path_arg(old)?;
            let (old_dir, old_last) = if old.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
                (ctx.target.base(old_dirfd)?, Vec::new())
            } else {
                let p = ctx.place(old_dirfd, &old, &mut links)?;
                (p.parent, p.last)
            };
            let p = ctx.place(new_dirfd, &ctx.path_arg(new)?, &mut links)?;
            ctx.allow(&p)?;
            sys::linkat((old_dir.as_fd(), &cstr(&old_last)?), (p.parent.as_fd(), &cstr(&p.last)?), flags)?;
            Ok(done)
        }
        Call::Rename { old_dirfd, old, new_dirfd, new, flags } => {
            let from = ctx.place(old_dirfd, &ctx.path_arg(old)?, &mut links)?;
            let to = ctx.place(new_dirfd, &ctx.path_arg(new)?, &mut links)?;
            ctx.allow(&to)?;
            ctx.movable(&from)?;
            ctx.movable(&to)?;
            if flags & libc::RENAME_EXCHANGE != 0 {
                ctx.allow(&from)?;
            }
            sys::renameat2((from.parent.as_fd(), &cstr(&from.last)?), (to.parent.as_fd(), &cstr(&to.last)?), flags)?;
            Ok(done)
        }
    }
}

/// `open` with `O_CREAT`. A dangling symbolic link as the last component would make the
/// kernel create the link's target, so links are followed here, one at a time, and each
/// name is checked before it can be created: the open itself always has `O_NOFOLLOW`.
fn open(ctx: &Ctx<'_>, dirfd: i32, path: &[u8], flags: i32, mode: u32) -> Result<Outcome, Errno> {
    let follow = flags & (libc::O_EXCL | libc::O_NOFOLLOW) == 0;
    let umask = ctx.target.umask()?;
    let mut links = 0u32;
    let mut p = ctx.place(dirfd, path, &mut links)?;
    loop {
        ctx.allow(&p)?;
        let name = cstr(&p.last)?;
        if sys::is_procfs(p.parent.as_fd()) {
            if !ctx.target.owns(p.parent.as_fd()) {
                return Err(libc::EACCES);
            }
            // Nothing can be created in /proc; its links (`/proc/<tid>/fd/1` behind
            // `/dev/stdout`) are jumps the kernel must make, and may reach a pipe.
            return Ok(Outcome::Blocking(BlockingOpen { parent: p.parent, last: p.last, flags, mode, umask }));
        }
        match sys::lstatat(p.parent.as_fd(), &name) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFIFO => {
                let flags = flags | libc::O_NOFOLLOW;
                return Ok(Outcome::Blocking(BlockingOpen { parent: p.parent, last: p.last, flags, mode, umask }));
            }
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(5, 0) => {
                return ctx.target.controlling_tty(ctx.root, flags).map(|fd| Outcome::File { fd, cloexec: flags & libc::O_CLOEXEC != 0 });
            }
            _ => {}
        }
        sys::set_umask(umask);
        match sys::openat(p.parent.as_fd(), &name, flags | libc::O_NOFOLLOW, mode) {
            Ok(fd) => return Ok(Outcome::File { fd, cloexec: flags & libc::O_CLOEXEC != 0 }),
            Err(libc::ELOOP) if follow => {
                links += 1;
                if links > 40 {
                    return Err(libc::ELOOP);
                }
                let target = sys::readlinkat(p.parent.as_fd(), &name).map_err(|_| libc::ELOOP)?;
                // A relative link target starts from the link's own directory.
                let start = p.parent;
                let s = split(&target)?;
                let parent = ctx.target.walk(ctx.root, start.as_fd(), s.dir, &mut links)?;
                p = Place { parent, last: s.last.to_vec(), name: s.name.to_vec() };
            }
            Err(e) => return Err(e),
        }
    }
}
