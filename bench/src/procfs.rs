//! Reading process facts from `/proc`: memory figures and the process tree.

use std::collections::HashMap;
use std::fs;

/// Memory facts of one process, from `/proc/PID/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcMem {
    pub pid: u32,
    pub comm: String,
    /// Resident set size now, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size, KiB (`VmHWM`).
    pub hwm_kib: u64,
}

/// Reads `/proc/PID/status`; `None` when the process is gone.
pub fn read_mem(pid: u32) -> Option<ProcMem> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(parse_status(pid, &text))
}

/// Parses the `Name`, `VmRSS` and `VmHWM` lines of a status file. Kernel threads
/// and zombies have no `Vm*` lines; those read as 0.
pub fn parse_status(pid: u32, text: &str) -> ProcMem {
    let mut mem = ProcMem { pid, comm: String::new(), rss_kib: 0, hwm_kib: 0 };
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        match key {
            "Name" => mem.comm = value.to_string(),
            "VmRSS" => mem.rss_kib = parse_kib(value),
            "VmHWM" => mem.hwm_kib = parse_kib(value),
            _ => {}
        }
    }
    mem
}

fn parse_kib(value: &str) -> u64 {
    value.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Parent pid from the text of `/proc/PID/stat`. The command name (field 2) is in
/// parentheses and may itself contain spaces or parentheses, so parse after the
/// last `)`: state, then ppid.
pub fn parse_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    fields.next()?; // state
    fields.next()?.parse().ok()
}

extern "C" {
    /// libc `sysconf(3)`, for the clock tick rate of `/proc/PID/stat` times.
    fn sysconf(name: i32) -> i64;
}

const SC_CLK_TCK: i32 = 2;

/// User + system CPU seconds from the text of `/proc/PID/stat` (fields 14, 15).
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the comm: field 3 (state) is index 0, so utime (14) is index 11.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU seconds used so far by `pid` (`"self"` for this process).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { sysconf(SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Some(parse_cpu_ticks(&stat)? as f64 / hz)
}

/// Map parent pid → child pids for every process currently visible.
fn children_map() -> HashMap<u32, Vec<u32>> {
    let mut map: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else { return map };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        if let Some(ppid) = parse_ppid(&stat) {
            map.entry(ppid).or_default().push(pid);
        }
    }
    map
}

/// A process of the tree with its depth below the root (root = 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeNode {
    pub pid: u32,
    pub depth: u32,
}

/// The root and all its descendants, breadth first.
pub fn process_tree(root: u32) -> Vec<TreeNode> {
    let map = children_map();
    let mut out = vec![TreeNode { pid: root, depth: 0 }];
    let mut next = 0;
    while next < out.len() {
        let node = out[next];
        next += 1;
        if let Some(kids) = map.get(&node.pid) {
            let mut kids = kids.clone();
            kids.sort_unstable();
            out.extend(kids.into_iter().map(|pid| TreeNode { pid, depth: node.depth + 1 }));
        }
    }
    out
}

/// Which process of an idle server tree is the server proper. A launcher (the npm
/// `codex` is a node script that spawns the native binary) sits above the real
/// server, so take the deepest process; among equally deep ones the largest RSS.
pub fn pick_server(tree: &[(TreeNode, ProcMem)]) -> Option<&(TreeNode, ProcMem)> {
    tree.iter().max_by_key(|(node, mem)| (node.depth, mem.rss_kib))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_parsed() {
        let text = "Name:\tcodex\nUmask:\t0022\nVmHWM:\t   51234 kB\nVmRSS:\t   48000 kB\n";
        let mem = parse_status(7, text);
        assert_eq!(mem, ProcMem { pid: 7, comm: "codex".into(), rss_kib: 48000, hwm_kib: 51234 });
    }

    #[test]
    fn status_without_vm_lines_reads_zero() {
        let mem = parse_status(2, "Name:\tkthreadd\nState:\tS (sleeping)\n");
        assert_eq!((mem.rss_kib, mem.hwm_kib), (0, 0));
    }

    #[test]
    fn ppid_survives_odd_command_names() {
        assert_eq!(parse_ppid("42 (a) b (c)) S 17 42 42 0 -1"), Some(17));
        assert_eq!(parse_ppid("1 (init) S 0 1 1"), Some(0));
        assert_eq!(parse_ppid("garbage"), None);
    }

    #[test]
    fn cpu_ticks_are_utime_plus_stime() {
        let stat = "5 (x y) S 1 5 5 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 99";
        assert_eq!(parse_cpu_ticks(stat), Some(10));
        assert!(cpu_seconds("self").is_some());
    }

    #[test]
    fn own_process_is_in_its_tree() {
        let me = std::process::id();
        let tree = process_tree(me);
        assert_eq!(tree[0], TreeNode { pid: me, depth: 0 });
        assert!(read_mem(me).is_some_and(|m| m.rss_kib > 0));
    }

    #[test]
    fn deepest_process_is_the_server() {
        let mem = |pid, rss| ProcMem { pid, comm: String::new(), rss_kib: rss, hwm_kib: rss };
        let tree = vec![
            (TreeNode { pid: 1, depth: 0 }, mem(1, 40_000)),
            (TreeNode { pid: 2, depth: 1 }, mem(2, 9_000)),
            (TreeNode { pid: 3, depth: 1 }, mem(3, 12_000)),
        ];
        assert_eq!(pick_server(&tree).map(|(n, _)| n.pid), Some(3));
    }
}
