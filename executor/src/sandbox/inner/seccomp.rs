//! Layer 2: seccomp (DESIGN.md §4). Default allow; listed calls fail with EPERM.
//!
//! Always denied: ptrace, process_vm_readv/writev, io_uring_*, bpf, perf_event_open,
//! the keyctl family, userfaultfd, kexec_*, mount-related calls (also refused for lack
//! of capabilities; denied here as a second wall), open_by_handle_at, syslog,
//! unshare/clone with CLONE_NEWUSER, and the TIOCSTI/TIOCLINUX ioctls. `clone3` fails
//! with ENOSYS because its flags live in memory a filter cannot read; libc then falls
//! back to `clone`, whose flags are checked.
//!
//! Network restricted: `socket`/`socketpair` only for AF_UNIX, and no
//! connect/bind/listen/accept at all, so host daemon sockets (docker.sock, ...) stay
//! unreachable while socketpairs keep working; `sendto` with a destination address is
//! denied too (it reaches a host datagram socket without connect). Known gap:
//! `sendmsg` with `msg_name` to a host datagram socket cannot be filtered by seccomp
//! (the address is behind a pointer); abstract sockets are out of reach through the
//! network namespace and Landlock scoping.
//!
//! Foreign ABIs: seccompiler's architecture check kills 32-bit (int 0x80) calls; on
//! x86_64 a small extra filter rejects x32 system call numbers (bit 30), which share
//! the x86_64 audit architecture and would otherwise bypass the rules by number.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond, SeccompFilter,
    SeccompRule, TargetArch,
};

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

fn cond(arg: u8, len: Len, op: Op, v: u64) -> Result<Cond, String> {
    Cond::new(arg, len, op, v).map_err(|e| format!("seccomp condition: {e}"))
}
fn rule(c: Vec<Cond>) -> Result<SeccompRule, String> {
    SeccompRule::new(c).map_err(|e| format!("seccomp rule: {e}"))
}

fn denied_rules(network: bool) -> Result<BTreeMap<i64, Vec<SeccompRule>>, String> {
    let mut m: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let always = [
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_userfaultfd,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_setns,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
        libc::SYS_open_by_handle_at,
        libc::SYS_syslog,
    ];
    for nr in always {
        m.insert(nr, vec![]);
    }
    let newuser = libc::CLONE_NEWUSER as u64;
    m.insert(libc::SYS_unshare, vec![rule(vec![cond(0, Len::Dword, Op::MaskedEq(newuser), newuser)?])?]);
    m.insert(libc::SYS_clone, vec![rule(vec![cond(0, Len::Dword, Op::MaskedEq(newuser), newuser)?])?]);
    // ioctl's request is an unsigned int: compare the low 32 bits only, so garbage in
    // the upper half cannot dodge the rule.
    m.insert(
        libc::SYS_ioctl,
        vec![
            rule(vec![cond(1, Len::Dword, Op::Eq, libc::TIOCSTI)?])?,
            rule(vec![cond(1, Len::Dword, Op::Eq, libc::TIOCLINUX)?])?,
        ],
    );
    if !network {
        let unix = libc::AF_UNIX as u64;
        m.insert(libc::SYS_socket, vec![rule(vec![cond(0, Len::Dword, Op::Ne, unix)?])?]);
        m.insert(libc::SYS_socketpair, vec![rule(vec![cond(0, Len::Dword, Op::Ne, unix)?])?]);
        for nr in [libc::SYS_connect, libc::SYS_bind, libc::SYS_listen, libc::SYS_accept, libc::SYS_accept4] {
            m.insert(nr, vec![]);
        }
        m.insert(libc::SYS_sendto, vec![rule(vec![cond(4, Len::Qword, Op::Ne, 0)?])?]);
    }
    Ok(m)
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> Result<BpfProgram, String> {
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(errno as u32), ARCH)
        .map_err(|e| format!("seccomp filter: {e}"))?;
    BpfProgram::try_from(filter).map_err(|e| format!("seccomp compile: {e}"))
}

#[cfg(target_arch = "x86_64")]
fn x32_guard() -> BpfProgram {
    use seccompiler::sock_filter;
    const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS (LD and W are 0)
    const BPF_JMP_JSET_K: u16 = 0x05 | 0x40; // BPF_JMP | BPF_JSET | BPF_K (K is 0)
    const BPF_RET_K: u16 = 0x06;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    vec![
        sock_filter { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: 0 }, // seccomp_data.nr
        sock_filter { code: BPF_JMP_JSET_K, jt: 0, jf: 1, k: X32_SYSCALL_BIT },
        sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: SECCOMP_RET_ERRNO | libc::ENOSYS as u32 },
        sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: SECCOMP_RET_ALLOW },
    ]
}

pub fn apply(network: bool) -> Result<(), String> {
    let main = compile(denied_rules(network)?, libc::EPERM)?;
    let mut clone3 = BTreeMap::new();
    clone3.insert(libc::SYS_clone3, vec![]);
    let clone3 = compile(clone3, libc::ENOSYS)?;
    let install = |p: &BpfProgram| seccompiler::apply_filter(p).map_err(|e| format!("cannot install seccomp filter: {e}"));
    #[cfg(target_arch = "x86_64")]
    install(&x32_guard())?;
    install(&main)?;
    install(&clone3)?;
    Ok(())
}
