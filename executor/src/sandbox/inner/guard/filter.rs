//! The guard's part of the command's seccomp program (`seccomp::command_program`): which
//! calls go to the supervisor.
//!
//! Hand-assembled because seccompiler has no user-notification action. Every call that
//! can make a new directory entry is sent to the supervisor: `mkdir`, `mknod`, `symlink`,
//! `link`, `rename` in all their forms, and `open`/`openat` when `O_CREAT` is set (the
//! flag is a register argument, so plain opens never leave the kernel; with `O_PATH` the
//! kernel ignores `O_CREAT`). `openat2` keeps its flags in memory a filter cannot read;
//! it fails with ENOSYS and callers fall back to `openat`. None of these calls is
//! refused by a seccomp rule, so a notification for one of them is always the guard's.

use crate::sandbox::inner::bpf::{off_arg, Assembler, Label, Target, JEQ_K, JSET_K, LD_W_ABS, RET_ALLOW, RET_K};

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

/// Whether a notification for call `nr` is the guard's (every other one the command's
/// filter sends is a refusal).
pub fn routes(nr: i64) -> bool {
    ALWAYS.contains(&nr) || WITH_CREAT.iter().any(|&(n, _)| n == nr)
}

/// The guard's checks in the command's filter, emitted after the call number is loaded:
/// creating calls jump to `notify`, `openat2` to `enosys`, anything else falls through.
/// The `O_CREAT` tests sit out of line; [`Routes::emit_blocks`] places them where
/// nothing falls into them.
pub struct Routes {
    blocks: Vec<Label>,
}

pub fn emit_checks(a: &mut Assembler, notify: Label, enosys: Label) -> Routes {
    let blocks: Vec<Label> = WITH_CREAT.iter().map(|_| a.label()).collect();
    for &nr in ALWAYS {
        a.jump(JEQ_K, nr as u32, Target::Label(notify), Target::Next);
    }
    for (&(nr, _), &block) in WITH_CREAT.iter().zip(&blocks) {
        a.jump(JEQ_K, nr as u32, Target::Label(block), Target::Next);
    }
    a.jump(JEQ_K, libc::SYS_openat2 as u32, Target::Label(enosys), Target::Next);
    Routes { blocks }
}

impl Routes {
    /// Call only after an instruction that never falls through (a `ret`). `open` and
    /// `openat` are not refused by any rule, so an open that creates nothing is allowed
    /// right here.
    pub fn emit_blocks(self, a: &mut Assembler, notify: Label) {
        for (&(_, arg), &block) in WITH_CREAT.iter().zip(&self.blocks) {
            a.place(block);
            a.stmt(LD_W_ABS, off_arg(arg));
            let creates_nothing = a.label();
            // O_PATH ignores O_CREAT: such an open creates nothing.
            a.jump(JSET_K, libc::O_PATH as u32, Target::Label(creates_nothing), Target::Next);
            a.jump(JSET_K, libc::O_CREAT as u32, Target::Label(notify), Target::Next);
            a.place(creates_nothing);
            a.stmt(RET_K, RET_ALLOW);
        }
    }
}
