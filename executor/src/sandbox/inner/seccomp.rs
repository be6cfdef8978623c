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
//! One program, a hand-assembled head in front of seccompiler's EPERM filter:
//! - seccompiler gives every rule of a filter the same action, so the two ENOSYS answers
//!   (x32, `clone3`) are in the head rather than filters of their own: each installed
//!   filter costs a compilation in the kernel and a run on every system call;
//! - seccompiler tests the listed numbers one after another. The head sends only those
//!   numbers on to it and allows every other one after a binary search. When a filter is
//!   attached the kernel runs it once per system call number to find the calls it can
//!   allow without running it again; with the search that costs a handful of
//!   instructions per number instead of a walk of the whole chain, which made installing
//!   the filter the slowest step of the inner stage.
//!
//! Why not seccompiler or libseccomp alone: seccompiler 0.5 has neither a
//! user-notification action (the create guard) nor more than one action per filter, and
//! tests listed numbers linearly; libseccomp is a C library, which the static-pie build
//! would have to link and audit as well. The head and the guard's program are small
//! enough to assemble by hand (`bpf::Assembler`, labels and checked offsets), and
//! seccompiler still compiles the argument rules.

use std::collections::BTreeMap;

use super::guard::filter as guard_filter;
use libc::sock_filter;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond, SeccompFilter, SeccompRule,
    TargetArch,
};

#[cfg(target_arch = "x86_64")]
use super::bpf::JSET_K;
use super::bpf::{Assembler, Target, AUDIT_ARCH, JEQ_K, JGE_K, LD_W_ABS, OFF_ARCH, OFF_NR, RET_ALLOW, RET_ENOSYS, RET_K, RET_NOTIFY};

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
        vec![rule(vec![cond(1, Len::Dword, Op::Eq, libc::TIOCSTI)?])?, rule(vec![cond(1, Len::Dword, Op::Eq, libc::TIOCLINUX)?])?],
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

/// Calls whose number (in the accumulator) is in `listed` (sorted) go to the rules
/// (just past the head); every other one is allowed.
fn search(a: &mut Assembler, listed: &[u32]) {
    if listed.len() <= 4 {
        for &nr in listed {
            a.jump(JEQ_K, nr, Target::End, Target::Next);
        }
        a.stmt(RET_K, RET_ALLOW);
        return;
    }
    let (low, high) = listed.split_at(listed.len() / 2);
    let upper = a.label();
    a.jump(JGE_K, high[0], Target::Label(upper), Target::Next);
    search(a, low);
    a.place(upper);
    search(a, high);
}

/// What the command's program adds to PID 1's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandFilter {
    /// Route the create guard's calls to the supervisor.
    pub guard: bool,
    /// Send refused calls to the supervisor (which answers EPERM and counts them)
    /// instead of failing them in the kernel.
    pub notify_refusals: bool,
}

impl CommandFilter {
    /// PID 1's own program: no notification, since PID 1 is the one that would answer.
    pub const NONE: CommandFilter = CommandFilter { guard: false, notify_refusals: false };

    /// Whether the program needs a listener.
    pub fn notifies(self) -> bool {
        self.guard || self.notify_refusals
    }
}

/// x32 numbers (x86_64) and `clone3` fail with ENOSYS, the guard's calls (with `guard`)
/// go to the supervisor, numbers in `listed` go on to the rules, every other call of
/// the native architecture is allowed. A foreign architecture goes to the rules, whose
/// own check kills it. Seccompiler's program goes right after the head.
fn head(listed: &[u32], guard: bool) -> Result<Vec<sock_filter>, String> {
    #[cfg(target_arch = "x86_64")]
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let mut a = Assembler::default();
    let (enosys, notify) = (a.label(), a.label());
    a.stmt(LD_W_ABS, OFF_ARCH);
    a.jump(JEQ_K, AUDIT_ARCH, Target::Next, Target::End);
    a.stmt(LD_W_ABS, OFF_NR);
    #[cfg(target_arch = "x86_64")]
    a.jump(JSET_K, X32_SYSCALL_BIT, Target::Label(enosys), Target::Next);
    a.jump(JEQ_K, libc::SYS_clone3 as u32, Target::Label(enosys), Target::Next);
    let routes = guard.then(|| guard_filter::emit_checks(&mut a, notify, enosys));
    search(&mut a, listed);
    if let Some(routes) = routes {
        routes.emit_blocks(&mut a, notify);
        a.place(notify);
        a.stmt(RET_K, RET_NOTIFY);
    }
    a.place(enosys);
    a.stmt(RET_K, RET_ENOSYS);
    a.finish()
}

/// The whole program for `network`: the head, then seccompiler's rules, whose refusals
/// are EPERM or (with `notify_refusals`) a notification for the supervisor to answer
/// with EPERM.
pub fn program(network: bool, filter: CommandFilter) -> Result<Vec<sock_filter>, String> {
    let rules = denied_rules(network)?;
    let listed: Vec<u32> = rules.keys().map(|&nr| nr as u32).collect(); // sorted: a BTreeMap
    let mut p = head(&listed, filter.guard)?;
    let eperm = RET_ERRNO_EPERM;
    let refuse = if filter.notify_refusals { RET_NOTIFY } else { eperm };
    // seccompiler has no notification action: its EPERM returns are rewritten (only
    // `ret` instructions; jumps with the same constant are left alone).
    p.extend(compile(rules, libc::EPERM)?.into_iter().map(|i| {
        let k = if i.code == RET_K && i.k == eperm { refuse } else { i.k };
        sock_filter { code: i.code, jt: i.jt, jf: i.jf, k }
    }));
    Ok(p)
}

const RET_ERRNO_EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;

/// Why the seccomp step failed: the program could not be built, or the kernel refused it.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("cannot build the seccomp program: {0}")]
    Build(String),
    #[error("cannot install seccomp filter: {0}")]
    Install(#[source] std::io::Error),
}

/// Installs PID 1's own program (no listener) on the calling process.
pub fn apply_own(program: &[sock_filter]) -> Result<(), SeccompError> {
    match install(program, false) {
        Ok(_) => Ok(()),
        Err(errno) => Err(SeccompError::Install(std::io::Error::from_raw_os_error(errno))),
    }
}

/// Installs `prog` on the calling thread; with `listener`, returns the notification
/// listener. Tries to make waits for the supervisor killable-only first (Linux 5.19):
/// otherwise a signal that arrives while the supervisor works would restart the call,
/// and an `mkdir` already done would then fail with EEXIST. Only system calls, so it
/// can run in the forked child. `Err` is the errno.
pub fn install(prog: &[sock_filter], listener: bool) -> Result<Option<std::os::fd::OwnedFd>, i32> {
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};
    let fprog = libc::sock_fprog { len: prog.len() as libc::c_ushort, filter: prog.as_ptr() as *mut sock_filter };
    let attempts: &[libc::c_ulong] = if listener {
        &[libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER]
    } else {
        &[0]
    };
    let mut last = libc::EINVAL;
    for &flags in attempts {
        // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel copies
        // the program before returning.
        let r = unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, flags, &fprog as *const _) };
        if r >= 0 && !listener {
            return Ok(None);
        }
        if r >= 0 {
            // SAFETY: the kernel returned a fresh descriptor that nothing else owns.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(r as RawFd) }));
        }
        last = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
        if last != libc::EINVAL {
            break;
        }
    }
    Err(last)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sandbox::inner::bpf::{run, RET_ALLOW, RET_NOTIFY};

    const RET_EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;

    fn as_libc(p: BpfProgram) -> Vec<sock_filter> {
        p.into_iter().map(|i| sock_filter { code: i.code, jt: i.jt, jf: i.jf, k: i.k }).collect()
    }

    /// Every number, with arguments that hit and miss each rule: the head changes how
    /// fast an answer comes, never which answer.
    #[test]
    fn head_changes_no_answer_of_the_rules() {
        let args: [[u64; 6]; 6] = [
            [0; 6],
            [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0],
            [libc::AF_INET as u64, 0, 0, 0, 0, 0],
            [libc::AF_UNIX as u64, libc::TIOCSTI, 0, 0, 0, 0],
            [0, libc::TIOCLINUX, 0, 0, 1, 0],
            [0, 0, 0, 0, 0x7fff_0000_0000, 0],
        ];
        for network in [false, true] {
            let whole = program(network, CommandFilter::NONE).unwrap();
            let rules = as_libc(compile(denied_rules(network).unwrap(), libc::EPERM).unwrap());
            for nr in 0..1024i64 {
                for a in args {
                    let expected = if nr == libc::SYS_clone3 { RET_ENOSYS } else { run(&rules, AUDIT_ARCH, nr, a) };
                    assert_eq!(run(&whole, AUDIT_ARCH, nr, a), expected, "nr {nr} args {a:?} network {network}");
                }
            }
        }
    }

    /// The head alone answers every unlisted number: the kernel's attach-time walk over
    /// all numbers then never enters the rule chain for them.
    #[test]
    fn head_allows_unlisted_numbers_by_itself() {
        let listed: Vec<u32> = denied_rules(false).unwrap().keys().map(|&nr| nr as u32).collect();
        let mut p = head(&listed, false).unwrap();
        let sentinel = 0x7ff0_dead;
        p.push(sock_filter { code: RET_K, jt: 0, jf: 0, k: sentinel });
        for nr in 0..1024u32 {
            let got = run(&p, AUDIT_ARCH, nr as i64, [0; 6]);
            if nr == libc::SYS_clone3 as u32 {
                assert_eq!(got, RET_ENOSYS);
            } else if listed.contains(&nr) {
                assert_eq!(got, sentinel, "listed {nr} must reach the rules");
            } else {
                assert_eq!(got, RET_ALLOW, "unlisted {nr}");
            }
        }
    }

    #[test]
    fn one_program_answers_like_the_three_filters_it_replaces() {
        for network in [false, true] {
            let p = program(network, CommandFilter::NONE).unwrap();
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

    /// With `notify_refusals`, exactly the calls the rules refuse go to the supervisor;
    /// every other answer is the same.
    #[test]
    fn notifying_refusals_changes_only_the_refusals() {
        let args: [[u64; 6]; 4] = [
            [0; 6],
            [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0],
            [libc::AF_INET as u64, 0, 0, 0, 0, 0],
            [libc::AF_UNIX as u64, libc::TIOCSTI, 0, 0, 1, 0],
        ];
        for network in [false, true] {
            for guard in [false, true] {
                let plain = program(network, CommandFilter { guard, notify_refusals: false }).unwrap();
                let notifying = program(network, CommandFilter { guard, notify_refusals: true }).unwrap();
                for nr in 0..1024i64 {
                    for a in args {
                        let expected = match run(&plain, AUDIT_ARCH, nr, a) {
                            RET_EPERM => RET_NOTIFY,
                            other => other,
                        };
                        assert_eq!(run(&notifying, AUDIT_ARCH, nr, a), expected, "nr {nr} args {a:?} network {network} guard {guard}");
                    }
                }
                let i386 = |p: &[sock_filter]| run(p, 0x4000_0003, libc::SYS_ptrace, [0; 6]);
                assert_eq!(i386(&notifying), libc::SECCOMP_RET_KILL_PROCESS);
            }
        }
        let p = program(false, CommandFilter { guard: false, notify_refusals: true }).unwrap();
        assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_ptrace, [0; 6]), RET_NOTIFY);
        assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_perf_event_open, [0; 6]), RET_NOTIFY);
        assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_socket, [libc::AF_INET as u64, 0, 0, 0, 0, 0]), RET_NOTIFY);
        assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_socket, [libc::AF_UNIX as u64, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_clone3, [0; 6]), RET_ENOSYS);
        assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_read, [0; 6]), RET_ALLOW);
    }

    /// The guard's creating calls go to the supervisor; nothing the rules decide moves.
    #[test]
    fn guard_routes_creating_calls_to_the_supervisor() {
        let p = program(false, CommandFilter { guard: true, notify_refusals: false }).unwrap();
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
        assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_ptrace, [0; 6]), RET_EPERM);
        // A foreign architecture is killed, creating call or not.
        assert_eq!(run(&p, 0x4000_0003, libc::SYS_mkdirat, [0; 6]), libc::SECCOMP_RET_KILL_PROCESS);
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_open, [0, creat, 0, 0, 0, 0]), RET_NOTIFY);
            assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_open, [0, 0, creat, 0, 0, 0]), RET_ALLOW);
            assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_creat, [0; 6]), RET_NOTIFY);
            assert_eq!(run(&p, AUDIT_ARCH, libc::SYS_mkdir | 0x4000_0000, [0; 6]), RET_ENOSYS);
        }
        // The supervisor tells a guard notification from a refusal by number alone.
        for network in [false, true] {
            for nr in denied_rules(network).unwrap().keys() {
                assert!(!guard_filter::routes(*nr), "{nr} is both refused and routed to the guard");
            }
        }
        assert!(guard_filter::routes(libc::SYS_mkdirat) && guard_filter::routes(libc::SYS_openat));
    }
}
