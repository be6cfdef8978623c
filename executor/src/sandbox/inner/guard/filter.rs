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

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// Low 32 bits of argument `i` (both supported architectures are little-endian).
const fn off_arg(i: u32) -> u32 {
    16 + 8 * i
}

const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_NOTIFY: u32 = libc::SECCOMP_RET_USER_NOTIF;
const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

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

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter { code, jt: 0, jf: 0, k }
}
fn jump(code: u16, k: u32, jt: usize, jf: usize) -> sock_filter {
    // Offsets are small by construction (a few dozen instructions).
    sock_filter { code, jt: jt as u8, jf: jf as u8, k }
}

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

    /// A tiny interpreter for the subset of classic BPF the program uses.
    fn run(p: &[sock_filter], arch: u32, nr: i64, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&(nr as u32).to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let ins = p[pc];
            match ins.code {
                LD_W_ABS => {
                    let k = ins.k as usize;
                    acc = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                    pc += 1;
                }
                JEQ_K => pc += 1 + if acc == ins.k { ins.jt as usize } else { ins.jf as usize },
                JSET_K => pc += 1 + if acc & ins.k != 0 { ins.jt as usize } else { ins.jf as usize },
                RET_K => return ins.k,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

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
