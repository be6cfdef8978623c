//! The few classic-BPF pieces the hand-assembled seccomp programs use (the create guard's
//! program, and the prefix of the main filter), and an interpreter for their tests.

use libc::sock_filter;

#[cfg(target_arch = "x86_64")]
pub const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
pub const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64

pub const LD_W_ABS: u16 = 0x20;
pub const JEQ_K: u16 = 0x15;
pub const JSET_K: u16 = 0x45;
pub const JGE_K: u16 = 0x35;
pub const RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
pub const OFF_NR: u32 = 0;
pub const OFF_ARCH: u32 = 4;
/// Low 32 bits of argument `i` (both supported architectures are little-endian).
pub const fn off_arg(i: u32) -> u32 {
    16 + 8 * i
}

pub const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
pub const RET_NOTIFY: u32 = libc::SECCOMP_RET_USER_NOTIF;
pub const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

pub fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter { code, jt: 0, jf: 0, k }
}

/// A conditional jump; offsets count instructions after this one. The programs built
/// here are a few dozen instructions long, far below the 255 a jump can cover.
pub fn jump(code: u16, k: u32, jt: usize, jf: usize) -> sock_filter {
    debug_assert!(jt <= u8::MAX as usize && jf <= u8::MAX as usize);
    sock_filter { code, jt: jt as u8, jf: jf as u8, k }
}

/// Runs `p` on one system call the way the kernel would, for tests. Knows the opcodes
/// these programs and seccompiler's output use, and panics on any other.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub fn run(p: &[sock_filter], arch: u32, nr: i64, args: [u64; 6]) -> u32 {
    const JA: u16 = 0x05;
    const JGT_K: u16 = 0x25;
    const AND_K: u16 = 0x54;
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&(nr as u32).to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let ins = p[pc];
        let branch = |taken: bool| 1 + if taken { ins.jt as usize } else { ins.jf as usize };
        match ins.code {
            LD_W_ABS => {
                let k = ins.k as usize;
                acc = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                pc += 1;
            }
            AND_K => {
                acc &= ins.k;
                pc += 1;
            }
            JA => pc += 1 + ins.k as usize,
            JEQ_K => pc += branch(acc == ins.k),
            JGT_K => pc += branch(acc > ins.k),
            JGE_K => pc += branch(acc >= ins.k),
            JSET_K => pc += branch(acc & ins.k != 0),
            RET_K => return ins.k,
            c => panic!("unexpected opcode {c:#x} at {pc}"),
        }
    }
}
