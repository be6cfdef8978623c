//! Descriptor hygiene. A process inherits every descriptor its parent left without
//! close-on-exec: an sshd channel, a CI runner's log, a socket to a daemon. Without care
//! those would reach every command the executor runs, sandboxed or not, and a sandbox
//! cannot take back what an open descriptor already grants. So the server marks what it
//! inherited close-on-exec at startup, and the inner stage does the same again just
//! before the command runs, keeping only descriptors handed over on purpose.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Marks every descriptor from `first` upwards close-on-exec, except those in `keep`.
/// The descriptors stay open in this process.
pub fn mark_cloexec_from(first: RawFd, keep: &[RawFd]) -> io::Result<()> {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&fd| fd >= first).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut start = first;
    for &kept in &keep {
        if kept > start {
            mark_range(start, kept - 1)?;
        }
        if kept == RawFd::MAX {
            return Ok(());
        }
        start = kept + 1;
    }
    mark_range(start, RawFd::MAX)
}

fn mark_range(first: RawFd, last: RawFd) -> io::Result<()> {
    let (Ok(lo), Ok(hi)) = (libc::c_uint::try_from(first), libc::c_uint::try_from(last)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on descriptors of this
    // process; no memory is passed.
    let r = unsafe { libc::syscall(libc::SYS_close_range, lo, hi, libc::CLOSE_RANGE_CLOEXEC) };
    if r == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    // Kernels before 5.11 lack the flag (EINVAL) or the call (ENOSYS): walk the table.
    match err.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) => mark_listed(first, last),
        _ => Err(err),
    }
}

/// The descriptors of this process from `first` upwards, ascending, as `/proc/self/fd`
/// lists them (without the one the listing itself used).
pub fn open_from(first: RawFd) -> io::Result<Vec<RawFd>> {
    let dir = std::fs::read_dir("/proc/self/fd")?;
    let mut fds: Vec<RawFd> = dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).filter(|fd| *fd >= first).collect();
    fds.sort_unstable();
    // The listing's own descriptor is closed by now.
    // SAFETY: F_GETFD on a descriptor number only reads its flags.
    fds.retain(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0);
    Ok(fds)
}

fn mark_listed(first: RawFd, last: RawFd) -> io::Result<()> {
    let open: Vec<RawFd> = open_from(first)?.into_iter().filter(|fd| *fd <= last).collect();
    for fd in open {
        // SAFETY: F_GETFD/F_SETFD on a descriptor number only change its flags; a number
        // that closed meanwhile (the directory's own) just fails with EBADF.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
    Ok(())
}

/// Asks for a pipe buffer of `size` bytes, best effort: an unprivileged process may be
/// refused a size above /proc/sys/fs/pipe-max-size, and the default size then stays,
/// which only costs wake-ups.
pub fn enlarge_pipe(pipe: &impl AsRawFd, size: usize) {
    let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    // SAFETY: F_SETPIPE_SZ with an integer argument on a descriptor the caller holds.
    unsafe {
        libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, size);
    }
}

/// Descriptors a child inherits at the numbers they have here.
///
/// They are not moved to fixed numbers on purpose: a `dup2` in `pre_exec` could land on
/// the descriptor the standard library uses to report a failed exec, which would then
/// report success (or write its error into our descriptor). Their numbers are passed to
/// the child on its command line instead.
pub struct InheritedFds {
    fds: Vec<OwnedFd>,
}

impl InheritedFds {
    pub fn new(fds: Vec<OwnedFd>) -> Self {
        InheritedFds { fds }
    }

    /// The numbers the child will find them at.
    pub fn numbers(&self) -> Vec<RawFd> {
        self.fds.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// Makes `command`'s child inherit the descriptors. The parent's copies close when
    /// `command` is dropped.
    pub fn install(self, command: &mut tokio::process::Command) {
        let fds = self.fds;
        // SAFETY: the closure runs in the forked child before exec and only calls fcntl
        // (async-signal-safe) on descriptors kept open by `fds`.
        unsafe {
            command.pre_exec(move || {
                for fd in &fds {
                    if libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloexec(fd: RawFd) -> bool {
        // SAFETY: F_GETFD only reads the flags of a descriptor this test owns.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert!(flags >= 0, "fd {fd} is not open");
        flags & libc::FD_CLOEXEC != 0
    }

    fn inheritable_pipe() -> (OwnedFd, OwnedFd) {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        for fd in [&r, &w] {
            // SAFETY: clears the flag on descriptors owned by this test.
            unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) };
        }
        (r, w)
    }

    #[test]
    fn marks_all_but_the_kept_descriptor() {
        let (r, w) = inheritable_pipe();
        let (r2, w2) = inheritable_pipe();
        assert!(!cloexec(r.as_raw_fd()) && !cloexec(w2.as_raw_fd()));
        mark_cloexec_from(3, &[w.as_raw_fd()]).expect("mark");
        assert!(cloexec(r.as_raw_fd()));
        assert!(!cloexec(w.as_raw_fd()), "the kept descriptor must stay inheritable");
        assert!(cloexec(r2.as_raw_fd()) && cloexec(w2.as_raw_fd()));
    }

    #[test]
    fn the_fallback_walk_marks_the_same_way() {
        let (r, w) = inheritable_pipe();
        let lo = r.as_raw_fd().min(w.as_raw_fd());
        let hi = r.as_raw_fd().max(w.as_raw_fd());
        mark_listed(lo, hi).expect("walk");
        assert!(cloexec(r.as_raw_fd()) && cloexec(w.as_raw_fd()));
    }
}
