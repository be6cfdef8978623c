//! The guard's seccomp program: which calls go to the supervisor.
//!
//! Hand-assembled because seccompiler has no user-notification action. Every call that
//! can make a new directory entry is sent to the supervisor: `mkdir`, `mknod`, `symlink`,
//! `link`, `rename` in all their forms, and `open`/`openat` when `O_CREAT` is set (the
//! flag is a register argument, so plain opens never leave the kernel; with `O_PATH` the
//! kernel ignores `O_CREAT`). `openat2` keeps its flags in memory a filter cannot read;
//! it fails with ENOSYS and callers fall back to `openat`. A foreign architecture is
//! left to the main filter, which kills it.

use libc::sock_filter;

use crate::sandbox::inner::bpf::{
    jump, off_arg, stmt, AUDIT_ARCH, JEQ_K, JSET_K, LD_W_ABS, OFF_ARCH, OFF_NR, RET_ALLOW, RET_ENOSYS, RET_K, RET_NOTIFY,
};

/// Calls that always go to the supervisor.
#[cfg(target_arch = "x86_64")]
const ALWAYS: &[i64] = &[
    libc::SYS_mkdirat,
    libc::SYS_mknodat,
    libc::SYS_symlinkat,
    libc::SYS_linkat,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_mkdir,
    libc::SYS_mknod,
    libc::SYS_symlink,
    libc::SYS_link,
    libc::SYS_rename,
    libc::SYS_creat,
];
#[cfg(target_arch = "aarch64")]
const ALWAYS: &[i64] =
    &[libc::SYS_mkdirat, libc::SYS_mknodat, libc::SYS_symlinkat, libc::SYS_linkat, libc::SYS_renameat2];

/// Calls that go to the supervisor when the flags argument (index) has `O_CREAT`.
#[cfg(target_arch = "x86_64")]
const WITH_CREAT: &[(i64, u32)] = &[(libc::SYS_openat, 2), (libc::SYS_open, 1)];
#[cfg(target_arch = "aarch64")]
const WITH_CREAT: &[(i64, u32)] = &[(libc::SYS_openat, 2)];

pub fn program() -> Vec<sock_filter> {
    let mut p =
        vec![stmt(LD_W_ABS, OFF_ARCH), jump(JEQ_K, AUDIT_ARCH, 1, 0), stmt(RET_K, RET_ALLOW), stmt(LD_W_ABS, OFF_NR)];
    // Layout after the comparisons: `ret allow`, one 4-instruction block per
    // WITH_CREAT entry, `ret ENOSYS`, `ret notify`.
    let compares = ALWAYS.len() + WITH_CREAT.len() + 1;
    let first_cmp = p.len();
    let allow_at = first_cmp + compares;
    let creat_block_at = |i: usize| allow_at + 1 + 4 * i;
    let enosys_at = creat_block_at(WITH_CREAT.len());
    let notify_at = enosys_at + 1;

    let cmp = |p: &mut Vec<sock_filter>, nr: i64, target: usize| {
        let here = p.len();
        p.push(jump(JEQ_K, nr as u32, target - here - 1, 0));
    };
    for &nr in ALWAYS {
        cmp(&mut p, nr, notify_at);
    }
    for (i, &(nr, _)) in WITH_CREAT.iter().enumerate() {
        cmp(&mut p, nr, creat_block_at(i));
    }
    cmp(&mut p, libc::SYS_openat2, enosys_at);
    p.push(stmt(RET_K, RET_ALLOW));
    for &(_, arg) in WITH_CREAT {
        p.push(stmt(LD_W_ABS, off_arg(arg)));
        // O_PATH ignores O_CREAT: such an open creates nothing.
        p.push(jump(JSET_K, libc::O_PATH as u32, 1, 0));
        let here = p.len();
        p.push(jump(JSET_K, libc::O_CREAT as u32, notify_at - here - 1, 0));
        p.push(stmt(RET_K, RET_ALLOW));
    }
    p.push(stmt(RET_K, RET_ENOSYS));
    p.push(stmt(RET_K, RET_NOTIFY));
    debug_assert_eq!(p.len(), notify_at + 1);
    p
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sandbox::inner::bpf::run;

    #[test]
    fn routes_creating_calls_to_the_supervisor() {
        let p = program();
        let creat = libc::O_CREAT as u64;
        assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_mkdirat, [0; 6]), RET_NOTIFY);
        assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_renameat2, [0; 6]), RET_NOTIFY);
        assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_openat, [0, 0, creat | 1, 0, 0, 0]), RET_NOTIFY);
        assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_openat, [0, 0, 1, 0, 0, 0]), RET_ALLOW);
        let path = libc::O_PATH as u64;
        assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_openat, [0, 0, creat | path, 0, 0, 0]), RET_ALLOW);
        // Garbage in the upper half of the flags does not turn O_CREAT off or on.
        assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_openat, [0, 0, (1 << 40) | creat, 0, 0, 0]), RET_NOTIFY);
        assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_openat2, [0; 6]), RET_ENOSYS);
        assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_read, [0; 6]), RET_ALLOW);
        assert_eq!(run(&p, 0x4000_0003, libc::SYS_mkdirat, [0; 6]), RET_ALLOW);
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_open, [0, creat, 0, 0, 0, 0]), RET_NOTIFY);
            assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_open, [0, 0, creat, 0, 0, 0]), RET_ALLOW);
            assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_creat, [0; 6]), RET_NOTIFY);
        }
    }
}
