//! Thin wrappers over the system calls the guard makes. Each returns the errno on
//! failure, because that errno is what the supervised process will see.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

pub type Errno = i32;

fn errno() -> Errno {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

/// [`super::super::sys::check`], with the bare errno the supervised process is given.
fn check(r: libc::c_int) -> Result<(), Errno> {
    super::super::sys::check(libc::c_long::from(r)).map(drop).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
}

/// Size the kernel writes for one notification (at least our struct's).
pub fn notif_size() -> usize {
    let mut sizes = libc::seccomp_notif_sizes { seccomp_notif: 0, seccomp_notif_resp: 0, seccomp_data: 0 };
    // SAFETY: the kernel fills the three u16 fields of `sizes`, which lives for the call.
    let r = unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_GET_NOTIF_SIZES, 0, &mut sizes as *mut _) };
    let ours = std::mem::size_of::<libc::seccomp_notif>();
    if r < 0 {
        ours
    } else {
        ours.max(sizes.seccomp_notif as usize)
    }
}

/// One received notification.
#[derive(Debug, Clone, Copy)]
pub struct Notif {
    pub id: u64,
    pub pid: u32,
    pub nr: i64,
    pub args: [u64; 6],
}

/// Blocks for the next notification. `buf` must hold `notif_size()` bytes (u64 units).
pub fn recv(listener: BorrowedFd<'_>, buf: &mut [u64]) -> Result<Notif, Errno> {
    debug_assert!(buf.len() * 8 >= std::mem::size_of::<libc::seccomp_notif>());
    buf.fill(0); // the kernel refuses a buffer that is not zeroed
                 // SAFETY: `buf` is zeroed, 8-byte aligned and at least as large as the kernel's
                 // struct seccomp_notif; the kernel writes at most that much.
    check(unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, buf.as_mut_ptr()) })?;
    // SAFETY: the buffer now holds a struct seccomp_notif written by the kernel, and it
    // is aligned for it.
    let n: libc::seccomp_notif = unsafe { std::ptr::read(buf.as_ptr() as *const libc::seccomp_notif) };
    let mut args = [0u64; 6];
    args.copy_from_slice(&n.data.args);
    Ok(Notif { id: n.id, pid: n.pid, nr: n.data.nr as i64, args })
}

/// Whether notification `id` is still pending (its process has not died or been
/// interrupted); checked after opening the process's /proc entries so they are known
/// to belong to it.
pub fn id_valid(listener: BorrowedFd<'_>, id: u64) -> bool {
    // SAFETY: the ioctl reads one u64 that lives for the call.
    unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id as *const u64) == 0 }
}

/// Answers `id` with a return value or an errno. Failure means the process is gone or
/// was interrupted, which needs no action.
pub fn reply(listener: BorrowedFd<'_>, id: u64, result: Result<i64, Errno>) {
    let (val, error) = match result {
        Ok(v) => (v, 0),
        Err(e) => (0, -e),
    };
    let mut resp = libc::seccomp_notif_resp { id, val, error, flags: 0 };
    // SAFETY: the ioctl reads one seccomp_notif_resp that lives for the call.
    unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp as *mut _) };
}

/// Installs `fd` in the process behind `id` and answers the call with its number
/// (Linux 5.14), atomically.
pub fn reply_with_fd(listener: BorrowedFd<'_>, id: u64, fd: BorrowedFd<'_>, cloexec: bool) -> Result<(), Errno> {
    let add = libc::seccomp_notif_addfd {
        id,
        flags: libc::SECCOMP_ADDFD_FLAG_SEND as u32,
        srcfd: fd.as_raw_fd() as u32,
        newfd: 0,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    // SAFETY: the ioctl reads one seccomp_notif_addfd that lives for the call.
    check(unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ADDFD, &add as *const _) })
}

pub fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: i32, mode: u32) -> Result<OwnedFd, Errno> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens an absolute directory path as an `O_PATH` descriptor.
pub fn open_dir(path: &CStr) -> Result<OwnedFd, Errno> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn fstat(fd: BorrowedFd<'_>) -> Result<libc::stat, Errno> {
    // SAFETY: stat is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes one struct stat into `st`, which lives for the call.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

pub fn lstatat(dir: BorrowedFd<'_>, name: &CStr) -> Result<libc::stat, Errno> {
    // SAFETY: as for fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated; the kernel writes one struct stat into `st`.
    check(unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

pub fn is_procfs(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: statfs is plain old data; all-zero is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes one struct statfs into `st`, which lives for the call.
    let r = unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) };
    r == 0 && st.f_type == libc::PROC_SUPER_MAGIC
}

pub fn readlinkat(dir: BorrowedFd<'_>, name: &CStr) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: `name` is NUL-terminated; the kernel writes at most `buf.len()` bytes.
    let n = unsafe { libc::readlinkat(dir.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if n < 0 {
        return Err(errno());
    }
    let n = n as usize;
    if n >= buf.len() {
        return Err(libc::ENAMETOOLONG);
    }
    buf.truncate(n);
    Ok(buf)
}

pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> Result<(), Errno> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) })
}

pub fn mknodat(dir: BorrowedFd<'_>, name: &CStr, mode: u32, dev: u64) -> Result<(), Errno> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    check(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t, dev as libc::dev_t) })
}

pub fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> Result<(), Errno> {
    // SAFETY: both strings are NUL-terminated and outlive the call.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) })
}

/// A directory entry named relative to a directory descriptor.
pub type Entry<'a> = (BorrowedFd<'a>, &'a CStr);

pub fn linkat((old_dir, old): Entry<'_>, (new_dir, new): Entry<'_>, flags: i32) -> Result<(), Errno> {
    // SAFETY: both strings are NUL-terminated and outlive the call.
    check(unsafe { libc::linkat(old_dir.as_raw_fd(), old.as_ptr(), new_dir.as_raw_fd(), new.as_ptr(), flags) })
}

pub fn renameat2((old_dir, old): Entry<'_>, (new_dir, new): Entry<'_>, flags: u32) -> Result<(), Errno> {
    // SAFETY: both strings are NUL-terminated and outlive the call; integers otherwise.
    let r = unsafe { libc::syscall(libc::SYS_renameat2, old_dir.as_raw_fd(), old.as_ptr(), new_dir.as_raw_fd(), new.as_ptr(), flags) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// Sets the umask of the calling thread, which must have its own filesystem context
/// (see [`unshare_fs`]).
pub fn set_umask(mask: u32) {
    // SAFETY: umask takes an integer and cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// Gives the calling thread its own umask/cwd, so setting a process's umask for one
/// call does not touch the rest of the inner stage.
pub fn unshare_fs() -> Result<(), Errno> {
    // SAFETY: unshare with CLONE_FS only copies this thread's filesystem context.
    check(unsafe { libc::unshare(libc::CLONE_FS) })
}
