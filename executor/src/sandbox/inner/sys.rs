//! The inner stage's seam to raw system calls that neither `nix` nor the `caps` and
//! `landlock` crates cover. Each wrapper is one call in one `unsafe` block, and every
//! result goes through [`check`], so a failure is always the kernel's errno as an
//! `io::Error` (the create guard turns it back into the bare errno it must forward).

use std::io;

/// A raw return value: negative means failure, with the reason in errno.
pub fn check(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `prctl(option, arg2)` with integer arguments; the call's non-negative result.
pub fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> io::Result<libc::c_long> {
    // SAFETY: prctl with integer arguments only; no memory is passed.
    let r = unsafe { libc::prctl(option, arg2, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    check(libc::c_long::from(r))
}

/// Soft and hard limit of `resource` set to `limit`.
pub fn set_rlimit(resource: libc::__rlimit_resource_t, limit: u64) -> io::Result<()> {
    let rlim = libc::rlimit { rlim_cur: limit, rlim_max: limit };
    // SAFETY: setrlimit reads one rlimit struct that lives for the call.
    let r = unsafe { libc::setrlimit(resource, &rlim) };
    check(libc::c_long::from(r)).map(drop)
}

/// Replaces the session keyring with a new anonymous one.
pub fn join_fresh_session_keyring() -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: KEYCTL_JOIN_SESSION_KEYRING with a NULL name takes no memory from us.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, std::ptr::null::<libc::c_char>()) };
    check(r).map(drop)
}

/// An `O_PATH` descriptor of the directory `path`, resolved without following any
/// symlink (or magic link) on the way, so a name swapped for a link is refused.
pub fn open_dir_no_symlinks(path: &std::ffi::CStr) -> io::Result<std::os::fd::OwnedFd> {
    // `struct open_how` of linux/openat2.h (libc's is non-exhaustive).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW) as u64,
        mode: 0,
        resolve: libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: openat2 reads `path` (NUL-terminated, alive for the call) and one open_how
    // of the size passed.
    let r = unsafe { libc::syscall(libc::SYS_openat2, libc::AT_FDCWD, path.as_ptr(), &how as *const OpenHow, size_of::<OpenHow>()) };
    let fd = check(r)?;
    // SAFETY: a successful openat2 returns a new descriptor that nothing else owns.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) })
}

/// A detached copy of the mount tree at `dir` (with every mount below it).
pub fn clone_tree(dir: std::os::fd::BorrowedFd<'_>) -> io::Result<std::os::fd::OwnedFd> {
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: open_tree reads the empty NUL-terminated path; `dir` is a live descriptor.
    let r = unsafe { libc::syscall(libc::SYS_open_tree, std::os::fd::AsRawFd::as_raw_fd(&dir), c"".as_ptr(), flags) };
    let fd = check(r)?;
    // SAFETY: a successful open_tree returns a new descriptor that nothing else owns.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) })
}

/// The detached tree `tree` made like a bwrap `--bind`: every mount in it nosuid and
/// nodev, and its top mount (the root's own directory) writable. Mounts below the top
/// keep their read-only flag: one that is there is either the host's own or one the plan
/// put there read-only, and `--bind` keeps those read-only too.
pub fn make_tree_writable(tree: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    let every_mount =
        libc::mount_attr { attr_set: libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV, attr_clr: 0, propagation: 0, userns_fd: 0 };
    set_mount_attr(tree, &every_mount, libc::AT_RECURSIVE as libc::c_uint)?;
    let top_mount = libc::mount_attr { attr_set: 0, attr_clr: libc::MOUNT_ATTR_RDONLY, propagation: 0, userns_fd: 0 };
    set_mount_attr(tree, &top_mount, 0)
}

fn set_mount_attr(tree: std::os::fd::BorrowedFd<'_>, attr: &libc::mount_attr, extra_flags: libc::c_uint) -> io::Result<()> {
    let flags = libc::AT_EMPTY_PATH as libc::c_uint | extra_flags;
    // SAFETY: mount_setattr reads the empty path and one mount_attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            std::os::fd::AsRawFd::as_raw_fd(&tree),
            c"".as_ptr(),
            flags,
            attr as *const libc::mount_attr,
            size_of::<libc::mount_attr>(),
        )
    };
    check(r).map(drop)
}

/// Enters the directory `dir` (a descriptor, so nothing is resolved again).
pub fn enter_dir(dir: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fchdir takes a live descriptor and no memory.
    let r = unsafe { libc::fchdir(std::os::fd::AsRawFd::as_raw_fd(&dir)) };
    check(libc::c_long::from(r)).map(drop)
}

/// Attaches the detached tree `tree` on top of the directory `onto`.
pub fn attach_tree(tree: std::os::fd::BorrowedFd<'_>, onto: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    let flags = libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: move_mount reads two empty NUL-terminated paths; both descriptors are live.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            std::os::fd::AsRawFd::as_raw_fd(&tree),
            c"".as_ptr(),
            std::os::fd::AsRawFd::as_raw_fd(&onto),
            c"".as_ptr(),
            flags,
        )
    };
    check(r).map(drop)
}

/// Whether this process may use the three calls the late binds need (`mount_setattr` is
/// the newest, Linux 5.12): each is made with an invalid descriptor, which the kernel
/// refuses with EBADF or EINVAL when the call exists; ENOSYS (an older kernel) or EPERM
/// (a seccomp profile, as container runtimes install) means no.
pub fn has_new_mount_api() -> bool {
    let usable = |r: libc::c_long| !(r < 0 && matches!(io::Error::last_os_error().raw_os_error(), Some(libc::ENOSYS | libc::EPERM)));
    // SAFETY: each call gets an invalid descriptor and NULL or empty paths; the kernel
    // reads no memory of ours before it refuses the descriptor.
    unsafe {
        usable(libc::syscall(libc::SYS_mount_setattr, -1, std::ptr::null::<libc::c_char>(), 0, std::ptr::null::<libc::c_void>(), 0))
            && usable(libc::syscall(libc::SYS_open_tree, -1, c"".as_ptr(), libc::AT_EMPTY_PATH))
            && usable(libc::syscall(
                libc::SYS_move_mount,
                -1,
                c"".as_ptr(),
                -1,
                c"".as_ptr(),
                libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
            ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_carry_the_kernels_errno() {
        let bad_option = prctl(-1, 0).expect_err("no such prctl option");
        assert_eq!(bad_option.raw_os_error(), Some(libc::EINVAL));
        assert_eq!(prctl(libc::PR_GET_DUMPABLE, 0).ok(), Some(1), "a test process is dumpable");
    }
}
