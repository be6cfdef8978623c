//! The few classic-BPF pieces the hand-assembled seccomp programs use (the create guard's
//! program, and the head of the main filter): opcodes, `seccomp_data` offsets, one
//! assembler with labels and checked jump offsets, and an interpreter for their tests.

use libc::sock_filter;

#[cfg(target_arch = "x86_64")]
pub const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
pub const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64

/// The opcodes used here, built from the kernel's field constants.
pub const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
pub const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
pub const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
pub const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
pub const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

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

/// Where a conditional jump goes. Classic BPF only jumps forward.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// The next instruction.
    Next,
    /// A label, placed with [`Assembler::place`] before `finish`.
    Label(Label),
    /// Just past the program: whatever the caller appends (e.g. seccompiler's rules).
    End,
}

/// A named position in a program being assembled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(usize);

/// A classic-BPF program with symbolic jump targets; `finish` computes every offset and
/// fails rather than truncate one that does not fit the 8-bit jump fields.
#[derive(Default)]
pub struct Assembler {
    code: Vec<(u16, u32, Target, Target)>,
    labels: Vec<Option<usize>>,
}

impl Assembler {
    pub fn stmt(&mut self, code: u16, k: u32) {
        self.code.push((code, k, Target::Next, Target::Next));
    }

    pub fn jump(&mut self, code: u16, k: u32, jt: Target, jf: Target) {
        self.code.push((code, k, jt, jf));
    }

    /// A label to jump to, placed later.
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Makes `label` name the next instruction.
    pub fn place(&mut self, label: Label) {
        if let Some(slot) = self.labels.get_mut(label.0) {
            *slot = Some(self.code.len());
        }
    }

    pub fn finish(self) -> Result<Vec<libc::sock_filter>, String> {
        let end = self.code.len();
        let offset = |from: usize, to: Target| -> Result<u8, String> {
            let target = match to {
                Target::Next => from + 1,
                Target::End => end,
                Target::Label(l) => self.labels.get(l.0).copied().flatten().ok_or_else(|| format!("bpf: label {} never placed", l.0))?,
            };
            target
                .checked_sub(from + 1)
                .and_then(|d| u8::try_from(d).ok())
                .ok_or_else(|| format!("bpf: jump from {from} to {target} out of range"))
        };
        let mut out = Vec::with_capacity(self.code.len());
        for (i, &(code, k, jt, jf)) in self.code.iter().enumerate() {
            out.push(sock_filter { code, jt: offset(i, jt)?, jf: offset(i, jf)?, k });
        }
        Ok(out)
    }
}

/// Runs `p` on one system call the way the kernel would, for tests. Knows the opcodes
/// these programs and seccompiler's output use, and panics on any other.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub fn run(p: &[sock_filter], arch: u32, nr: i64, args: [u64; 6]) -> u32 {
    const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
    const JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
    const AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn labels_resolve_forward_and_bad_jumps_are_errors() {
        let mut a = Assembler::default();
        let out = a.label();
        a.stmt(LD_W_ABS, OFF_NR);
        a.jump(JEQ_K, 7, Target::Label(out), Target::Next);
        a.stmt(RET_K, RET_ALLOW);
        a.place(out);
        a.stmt(RET_K, RET_ENOSYS);
        let p = a.finish().unwrap();
        assert_eq!((p[1].jt, p[1].jf), (1, 0));
        assert_eq!(run(&p, AUDIT_ARCH, 7, [0; 6]), RET_ENOSYS);
        assert_eq!(run(&p, AUDIT_ARCH, 8, [0; 6]), RET_ALLOW);

        let mut back = Assembler::default();
        let top = back.label();
        back.place(top);
        back.jump(JEQ_K, 0, Target::Label(top), Target::Next);
        assert!(back.finish().unwrap_err().contains("out of range"));

        let mut far = Assembler::default();
        far.jump(JEQ_K, 0, Target::End, Target::Next);
        for _ in 0..300 {
            far.stmt(RET_K, RET_ALLOW);
        }
        assert!(far.finish().unwrap_err().contains("out of range"));

        let mut unplaced = Assembler::default();
        let l = unplaced.label();
        unplaced.jump(JEQ_K, 0, Target::Label(l), Target::Next);
        assert!(unplaced.finish().unwrap_err().contains("never placed"));
    }
}
