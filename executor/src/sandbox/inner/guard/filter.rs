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
    off_arg, Assembler, Label, Target, AUDIT_ARCH, JEQ_K, JSET_K, LD_W_ABS, OFF_ARCH, OFF_NR, RET_ALLOW, RET_ENOSYS, RET_K, RET_NOTIFY,
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
const ALWAYS: &[i64] = &[libc::SYS_mkdirat, libc::SYS_mknodat, libc::SYS_symlinkat, libc::SYS_linkat, libc::SYS_renameat2];

/// Calls that go to the supervisor when the flags argument (index) has `O_CREAT`.
#[cfg(target_arch = "x86_64")]
const WITH_CREAT: &[(i64, u32)] = &[(libc::SYS_openat, 2), (libc::SYS_open, 1)];
#[cfg(target_arch = "aarch64")]
const WITH_CREAT: &[(i64, u32)] = &[(libc::SYS_openat, 2)];

pub fn program() -> Result<Vec<sock_filter>, String> {
    let mut a = Assembler::default();
    let (allow, notify, enosys) = (a.label(), a.label(), a.label());
    let creat_blocks: Vec<Label> = WITH_CREAT.iter().map(|_| a.label()).collect();
    a.stmt(LD_W_ABS, OFF_ARCH);
    a.jump(JEQ_K, AUDIT_ARCH, Target::Next, Target::Label(allow));
    a.stmt(LD_W_ABS, OFF_NR);
    for &nr in ALWAYS {
        a.jump(JEQ_K, nr as u32, Target::Label(notify), Target::Next);
    }
    for (&(nr, _), &block) in WITH_CREAT.iter().zip(&creat_blocks) {
        a.jump(JEQ_K, nr as u32, Target::Label(block), Target::Next);
    }
    a.jump(JEQ_K, libc::SYS_openat2 as u32, Target::Label(enosys), Target::Next);
    a.place(allow);
    a.stmt(RET_K, RET_ALLOW);
    for (&(_, arg), &block) in WITH_CREAT.iter().zip(&creat_blocks) {
        a.place(block);
        a.stmt(LD_W_ABS, off_arg(arg));
        let creates_nothing = a.label();
        // O_PATH ignores O_CREAT: such an open creates nothing.
        a.jump(JSET_K, libc::O_PATH as u32, Target::Label(creates_nothing), Target::Next);
        a.jump(JSET_K, libc::O_CREAT as u32, Target::Label(notify), Target::Next);
        a.place(creates_nothing);
        a.stmt(RET_K, RET_ALLOW);
    }
    a.place(enosys);
    a.stmt(RET_K, RET_ENOSYS);
    a.place(notify);
    a.stmt(RET_K, RET_NOTIFY);
    a.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sandbox::inner::bpf::run;

    #[test]
    fn routes_creating_calls_to_the_supervisor() {
        let p = program().unwrap();
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
