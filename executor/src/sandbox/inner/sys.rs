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
