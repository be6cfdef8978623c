//! cgroup v1: one directory per controller (memory, pids, cpu), each below the
//! executor's own cgroup in that hierarchy.

use std::path::{Path, PathBuf};

use super::mounts::Mounts;
use super::{keyed, make_dir, probe_writable, write_file, Backend, CgroupError, Counters, TreeCgroup, TreeLimits};

/// CFS period for the cpu limit: 100 ms, the kernel's default.
const CFS_PERIOD_US: u64 = 100_000;

pub(super) fn detect(mounts: &Mounts, problems: &mut Vec<String>) -> Option<Backend> {
    let mut usable = |controller: &str| -> Option<PathBuf> {
        let Some(dir) = mounts.v1_dir(controller) else {
            problems.push(format!("cgroup v1: no {controller} hierarchy is mounted"));
            return None;
        };
        match probe_writable(&dir) {
            Ok(()) => Some(dir),
            Err(e) => {
                problems.push(format!("cgroup v1: cannot create cgroups in {} ({e})", dir.display()));
                None
            }
        }
    };
    let (memory, pids, cpu) = (usable("memory"), usable("pids"), usable("cpu"));
    if memory.is_none() && pids.is_none() && cpu.is_none() {
        return None;
    }
    Some(Backend::V1 { memory, pids, cpu })
}

pub(super) fn create(
    made: &mut TreeCgroup,
    name: &str,
    limits: &TreeLimits,
    memory: &Option<PathBuf>,
    pids: &Option<PathBuf>,
    cpu: &Option<PathBuf>,
) -> Result<(), CgroupError> {
    if let (Some(bytes), Some(parent)) = (limits.memory_bytes, memory) {
        let dir = make_dir(made, parent, name)?;
        write_file(&dir, "memory.limit_in_bytes", bytes.to_string())?;
        // memsw is memory + swap: equal to the memory limit means no swap beyond it. It
        // exists only with swap accounting enabled; without it there is nothing to cap.
        if dir.join("memory.memsw.limit_in_bytes").exists() {
            write_file(&dir, "memory.memsw.limit_in_bytes", bytes.to_string())?;
        }
    }
    if let (Some(max), Some(parent)) = (limits.max_procs, pids) {
        let dir = make_dir(made, parent, name)?;
        write_file(&dir, "pids.max", max.to_string())?;
    }
    if let (Some(percent), Some(parent)) = (limits.cpu_percent, cpu) {
        let dir = make_dir(made, parent, name)?;
        write_file(&dir, "cpu.cfs_period_us", CFS_PERIOD_US.to_string())?;
        write_file(&dir, "cpu.cfs_quota_us", quota_us(percent).to_string())?;
    }
    Ok(())
}

/// The CFS quota of `percent` of one core per period (at least the kernel's 1 ms).
fn quota_us(percent: u32) -> u64 {
    (CFS_PERIOD_US * u64::from(percent) / 100).max(1000)
}

pub(super) fn counters(dirs: &[PathBuf]) -> Counters {
    let mut counters = Counters::default();
    for dir in dirs {
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).ok();
        if let Some(text) = read("memory.oom_control") {
            counters.oom_kills += keyed(&text, "oom_kill");
        }
        if let Some(text) = read("pids.events") {
            counters.pids_refused += keyed(&text, "max");
        }
        if is_cpu_dir(dir) {
            if let Some(text) = read("cpu.stat") {
                counters.throttled += keyed(&text, "nr_throttled");
            }
        }
    }
    counters
}

fn is_cpu_dir(dir: &Path) -> bool {
    dir.join("cpu.cfs_quota_us").exists()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_quota_is_a_share_of_one_period() {
        assert_eq!(super::quota_us(20), 20_000);
        assert_eq!(super::quota_us(250), 250_000);
        assert_eq!(super::quota_us(0), 1000);
    }
}
