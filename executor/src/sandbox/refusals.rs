//! What the sandbox refused, carried from the inner stage to the executor for
//! `sandbox/report` (issue 17).
//!
//! The inner stage's seccomp filter hands the command's refused calls to its PID 1 as
//! user notifications instead of failing them in the kernel; PID 1 answers each with
//! EPERM, the errno the filter used to return, and counts it. Allowed calls never leave
//! the kernel, so recording costs nothing until something is refused. PID 1 sends the
//! counts on a pipe the executor gave it (its number is in the inner config), as
//! fixed-size [`Record`]s; both ends are the same binary, so native byte order.
//!
//! The pipe's write end is held only by PID 1 (non-dumpable) and bwrap; the command
//! loses it at exec. The executor still treats what it reads as untrusted input: fixed
//! records, a bounded number of distinct entries, names only from its own table.

use std::collections::BTreeMap;

/// One record: `count` more refusals of system call `nr` (with `family` the socket
/// family for `socket`/`socketpair`, else [`NO_FAMILY`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub nr: u32,
    pub family: u32,
    pub count: u64,
}

pub const RECORD_LEN: usize = 16;
pub const NO_FAMILY: u32 = u32::MAX;
/// The first record PID 1 sends: recording is on (absent when the kernel could not
/// give the command a notifying filter, or the sandbox never got that far).
pub const RECORDING_ON: u32 = u32::MAX;

/// Distinct entries kept; anything past them is counted as one "other" total.
const MAX_ENTRIES: usize = 256;

impl Record {
    pub fn recording_on() -> Self {
        Record { nr: RECORDING_ON, family: NO_FAMILY, count: 0 }
    }

    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[0..4].copy_from_slice(&self.nr.to_ne_bytes());
        b[4..8].copy_from_slice(&self.family.to_ne_bytes());
        b[8..16].copy_from_slice(&self.count.to_ne_bytes());
        b
    }

    pub fn decode(b: &[u8; RECORD_LEN]) -> Self {
        let word = |r: std::ops::Range<usize>| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&b[r]);
            u32::from_ne_bytes(w)
        };
        let mut c = [0u8; 8];
        c.copy_from_slice(&b[8..16]);
        Record { nr: word(0..4), family: word(4..8), count: u64::from_ne_bytes(c) }
    }
}

/// Whether a refused call with this number is a network attempt named by its family.
pub fn takes_family(nr: i64) -> bool {
    nr == libc::SYS_socket || nr == libc::SYS_socketpair
}

/// The executor's tally for one process.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub recording: bool,
    syscalls: BTreeMap<u32, u64>,
    network: BTreeMap<(u32, u32), u64>,
    /// Refusals past [`MAX_ENTRIES`] distinct entries (a hostile or broken writer).
    other: u64,
}

impl Tally {
    pub fn add(&mut self, r: Record) {
        if r.nr == RECORDING_ON {
            self.recording = true;
            return;
        }
        if !self.recording {
            return; // counts only after the start record: never a half-told story
        }
        let full = self.syscalls.len() + self.network.len() >= MAX_ENTRIES;
        let bump = |slot: Option<&mut u64>, other: &mut u64| match slot {
            Some(n) => *n = n.saturating_add(r.count),
            None => *other = other.saturating_add(r.count),
        };
        if takes_family(i64::from(r.nr)) && r.family != NO_FAMILY {
            let key = (r.nr, r.family);
            let slot = if full && !self.network.contains_key(&key) { None } else { Some(self.network.entry(key).or_insert(0)) };
            bump(slot, &mut self.other);
        }
        let slot = if full && !self.syscalls.contains_key(&r.nr) { None } else { Some(self.syscalls.entry(r.nr).or_insert(0)) };
        bump(slot, &mut self.other);
    }

    /// `(name, count)` per refused system call, most refused first.
    pub fn syscalls(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self.syscalls.iter().map(|(&nr, &n)| (syscall_name(nr), n)).collect();
        if self.other > 0 {
            v.push(("(other)".into(), self.other));
        }
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }

    /// `(call, family, count)` per refused socket family.
    pub fn network(&self) -> Vec<(String, String, u64)> {
        self.network.iter().map(|(&(nr, family), &n)| (syscall_name(nr), family_name(family), n)).collect()
    }
}

/// Names of the calls the seccomp filter refuses (the only numbers a refusal can carry).
pub fn syscall_name(nr: u32) -> String {
    let nr = i64::from(nr);
    let name = NAMES.iter().find(|(n, _)| *n == nr).map(|(_, name)| *name);
    name.map_or_else(|| format!("syscall {nr}"), str::to_string)
}

pub fn family_name(family: u32) -> String {
    let name = match family as i32 {
        libc::AF_INET => "AF_INET",
        libc::AF_INET6 => "AF_INET6",
        libc::AF_NETLINK => "AF_NETLINK",
        libc::AF_PACKET => "AF_PACKET",
        libc::AF_UNIX => "AF_UNIX",
        libc::AF_VSOCK => "AF_VSOCK",
        libc::AF_BLUETOOTH => "AF_BLUETOOTH",
        libc::AF_ALG => "AF_ALG",
        libc::AF_CAN => "AF_CAN",
        libc::AF_XDP => "AF_XDP",
        libc::AF_TIPC => "AF_TIPC",
        _ => return format!("family {family}"),
    };
    name.to_string()
}

const NAMES: &[(i64, &str)] = &[
    (libc::SYS_ptrace, "ptrace"),
    (libc::SYS_process_vm_readv, "process_vm_readv"),
    (libc::SYS_process_vm_writev, "process_vm_writev"),
    (libc::SYS_io_uring_setup, "io_uring_setup"),
    (libc::SYS_io_uring_enter, "io_uring_enter"),
    (libc::SYS_io_uring_register, "io_uring_register"),
    (libc::SYS_bpf, "bpf"),
    (libc::SYS_perf_event_open, "perf_event_open"),
    (libc::SYS_keyctl, "keyctl"),
    (libc::SYS_add_key, "add_key"),
    (libc::SYS_request_key, "request_key"),
    (libc::SYS_userfaultfd, "userfaultfd"),
    (libc::SYS_kexec_load, "kexec_load"),
    (libc::SYS_kexec_file_load, "kexec_file_load"),
    (libc::SYS_mount, "mount"),
    (libc::SYS_umount2, "umount2"),
    (libc::SYS_pivot_root, "pivot_root"),
    (libc::SYS_setns, "setns"),
    (libc::SYS_open_tree, "open_tree"),
    (libc::SYS_move_mount, "move_mount"),
    (libc::SYS_fsopen, "fsopen"),
    (libc::SYS_fsconfig, "fsconfig"),
    (libc::SYS_fsmount, "fsmount"),
    (libc::SYS_fspick, "fspick"),
    (libc::SYS_mount_setattr, "mount_setattr"),
    (libc::SYS_open_by_handle_at, "open_by_handle_at"),
    (libc::SYS_syslog, "syslog"),
    (libc::SYS_unshare, "unshare"),
    (libc::SYS_clone, "clone"),
    (libc::SYS_ioctl, "ioctl"),
    (libc::SYS_socket, "socket"),
    (libc::SYS_socketpair, "socketpair"),
    (libc::SYS_connect, "connect"),
    (libc::SYS_bind, "bind"),
    (libc::SYS_listen, "listen"),
    (libc::SYS_accept, "accept"),
    (libc::SYS_accept4, "accept4"),
    (libc::SYS_sendto, "sendto"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(nr: i64, family: u32, count: u64) -> Record {
        Record { nr: nr as u32, family, count }
    }

    #[test]
    fn records_round_trip() {
        let r = rec(libc::SYS_socket, libc::AF_INET as u32, 7);
        assert_eq!(Record::decode(&r.encode()), r);
    }

    #[test]
    fn tallies_by_name_and_family_after_the_start_record() {
        let mut t = Tally::default();
        t.add(rec(libc::SYS_ptrace, NO_FAMILY, 1)); // before the start record: dropped
        t.add(Record::recording_on());
        t.add(rec(libc::SYS_ptrace, NO_FAMILY, 2));
        t.add(rec(libc::SYS_socket, libc::AF_INET as u32, 1));
        t.add(rec(libc::SYS_socket, libc::AF_INET6 as u32, 1));
        t.add(rec(libc::SYS_ptrace, NO_FAMILY, 1));
        assert!(t.recording);
        assert_eq!(t.syscalls(), vec![("ptrace".to_string(), 3), ("socket".to_string(), 2)]);
        assert_eq!(t.network(), vec![("socket".to_string(), "AF_INET".to_string(), 1), ("socket".to_string(), "AF_INET6".to_string(), 1)]);
    }

    /// A writer that floods distinct numbers cannot grow the tally without bound.
    #[test]
    fn distinct_entries_are_bounded() {
        let mut t = Tally::default();
        t.add(Record::recording_on());
        for nr in 0..10_000u32 {
            t.add(Record { nr, family: NO_FAMILY, count: u64::MAX });
        }
        assert!(t.syscalls().len() <= MAX_ENTRIES + 1);
        assert!(t.syscalls().iter().any(|(n, c)| n == "(other)" && *c == u64::MAX));
    }
}
