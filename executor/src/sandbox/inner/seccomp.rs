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
//! x86_64 x32 system call numbers (bit 30), which share the x86_64 audit architecture
//! and would otherwise bypass the rules by number, fail with ENOSYS.
//!
//! One program: seccompiler gives every rule of a filter the same action, so the two
//! ENOSYS answers (x32, `clone3`) are a short hand-assembled prefix in front of its
//! EPERM filter rather than filters of their own. Each installed filter is compiled
//! and run on every system call separately; one is cheaper on both counts.

use std::collections::BTreeMap;

use libc::sock_filter;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::bpf::{jump, stmt, AUDIT_ARCH, JEQ_K, LD_W_ABS, OFF_ARCH, OFF_NR, RET_ENOSYS, RET_K};
#[cfg(target_arch = "x86_64")]
use super::bpf::JSET_K;

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

/// x32 numbers (x86_64) and `clone3` fail with ENOSYS; every other call of the native
/// architecture, and every call of a foreign one, falls through to the instruction after
/// the prefix, where seccompiler's program begins.
fn enosys_prefix() -> Vec<sock_filter> {
    #[cfg(target_arch = "x86_64")]
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let mut p = vec![stmt(LD_W_ABS, OFF_ARCH)];
    let arch_check = p.len();
    p.push(jump(JEQ_K, AUDIT_ARCH, 0, 0)); // jf patched below: past the prefix
    p.push(stmt(LD_W_ABS, OFF_NR));
    #[cfg(target_arch = "x86_64")]
    p.push(jump(JSET_K, X32_SYSCALL_BIT, 1, 0)); // jt: over the clone3 check to `ret ENOSYS`
    p.push(jump(JEQ_K, libc::SYS_clone3 as u32, 0, 1));
    p.push(stmt(RET_K, RET_ENOSYS));
    p[arch_check].jf = (p.len() - arch_check - 1) as u8;
    p
}

/// The whole filter for `network`: the ENOSYS prefix, then the EPERM rules.
fn program(network: bool) -> Result<BpfProgram, String> {
    let to_seccompiler = |i: sock_filter| seccompiler::sock_filter { code: i.code, jt: i.jt, jf: i.jf, k: i.k };
    let mut p: BpfProgram = enosys_prefix().into_iter().map(to_seccompiler).collect();
    p.extend(compile(denied_rules(network)?, libc::EPERM)?);
    Ok(p)
}

pub fn apply(network: bool) -> Result<(), String> {
    seccompiler::apply_filter(&program(network)?).map_err(|e| format!("cannot install seccomp filter: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sandbox::inner::bpf::{run, RET_ALLOW};

    const RET_EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;

    #[test]
    fn one_program_answers_like_the_three_filters_it_replaces() {
        for network in [false, true] {
            let p: Vec<sock_filter> =
                program(network).unwrap().into_iter().map(|i| sock_filter { code: i.code, jt: i.jt, jf: i.jf, k: i.k }).collect();
            let call = |nr: i64, args: [u64; 6]| run(&p, AUDIT_ARCH, nr, args);
            assert_eq!(call(libc::SYS_clone3, [0; 6]), RET_ENOSYS);
            assert_eq!(call(libc::SYS_ptrace, [0; 6]), RET_EPERM);
            assert_eq!(call(libc::SYS_keyctl, [0; 6]), RET_EPERM);
            assert_eq!(call(libc::SYS_read, [0; 6]), RET_ALLOW);
            assert_eq!(call(libc::SYS_clone, [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]), RET_EPERM);
            assert_eq!(call(libc::SYS_clone, [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]), RET_ALLOW);
            let inet = [libc::AF_INET as u64, 0, 0, 0, 0, 0];
            assert_eq!(call(libc::SYS_socket, inet), if network { RET_ALLOW } else { RET_EPERM });
            #[cfg(target_arch = "x86_64")]
            {
                // x32 read and x32 ptrace: the number with bit 30 set
                assert_eq!(call(libc::SYS_read | 0x4000_0000, [0; 6]), RET_ENOSYS);
                assert_eq!(call(libc::SYS_ptrace | 0x4000_0000, [0; 6]), RET_ENOSYS);
            }
            // A foreign architecture (i386) is killed by seccompiler's own check, even
            // for a number that is clone3 here.
            assert_eq!(run(&p, 0x4000_0003, libc::SYS_clone3, [0; 6]), libc::SECCOMP_RET_KILL_PROCESS);
        }
    }
}
