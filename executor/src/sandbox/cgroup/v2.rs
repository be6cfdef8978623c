//! cgroup v2: one directory per tree below the executor's own cgroup, with the memory,
//! pids and cpu controllers enabled in that parent's `cgroup.subtree_control`.
//!
//! A cgroup with processes in it cannot enable controllers for its children (the "no
//! internal processes" rule), and a delegated cgroup (systemd `Delegate=yes`, a container's
//! cgroup namespace) usually holds the executor itself. Then the executor moves itself
//! into a leaf `executor-server` below it (a fixed name, reused by the next start), and
//! enables the controllers in the parent.

use std::path::{Path, PathBuf};

use super::mounts::Mounts;
use super::{keyed, make_dir, probe_writable, write_file, Backend, CgroupError, Counters, TreeCgroup, TreeLimits};

const WANTED: [&str; 3] = ["memory", "pids", "cpu"];
const CPU_PERIOD_US: u64 = 100_000;
/// Where the executor moves itself when its own cgroup must stay free of processes.
const SERVER_LEAF: &str = "executor-server";

pub(super) fn detect(mounts: &Mounts, problems: &mut Vec<String>) -> Option<Backend> {
    let own = mounts.v2_dir()?;
    let available = read_words(&own.join("cgroup.controllers"));
    if !WANTED.iter().any(|w| available.iter().any(|a| a == w)) {
        problems.push(format!(
            "cgroup v2: none of memory, pids, cpu is available in {} (it has: {})",
            own.display(),
            if available.is_empty() { "none".to_string() } else { available.join(" ") }
        ));
        return None;
    }
    let (base, controllers) = match enable(&own, &available) {
        Ok(found) => found,
        Err(why) => {
            problems.push(format!("cgroup v2: {why}"));
            return None;
        }
    };
    if let Err(e) = probe_writable(&base) {
        problems.push(format!("cgroup v2: cannot create cgroups in {} ({e})", base.display()));
        return None;
    }
    Some(Backend::V2 { base, controllers })
}

/// Enables the wanted controllers for children of `own` (moving this process into a leaf
/// when `own` holds processes); returns the parent for tree cgroups and what is enabled.
fn enable(own: &Path, available: &[String]) -> Result<(PathBuf, Vec<String>), String> {
    let wanted: Vec<&str> = WANTED.into_iter().filter(|c| available.iter().any(|a| a == c)).collect();
    let enabled = |dir: &Path| read_words(&dir.join("cgroup.subtree_control"));
    let missing = |dir: &Path| -> Vec<&str> {
        let on = enabled(dir);
        wanted.iter().copied().filter(|c| !on.iter().any(|o| o == c)).collect()
    };
    let request = |dir: &Path, list: &[&str]| -> std::io::Result<()> {
        let text: Vec<String> = list.iter().map(|c| format!("+{c}")).collect();
        std::fs::write(dir.join("cgroup.subtree_control"), text.join(" "))
    };
    let todo = missing(own);
    if !todo.is_empty() {
        if let Err(first) = request(own, &todo) {
            if first.raw_os_error() != Some(libc::EBUSY) {
                return Err(format!("cannot enable {} in {} ({first})", todo.join(" "), own.display()));
            }
            // Our own cgroup holds processes (us): move into a leaf, then enable.
            let leaf = own.join(SERVER_LEAF);
            if let Err(e) = std::fs::create_dir(&leaf) {
                if e.kind() != std::io::ErrorKind::AlreadyExists {
                    return Err(format!("cannot create {} to free {} of processes ({e})", leaf.display(), own.display()));
                }
            }
            std::fs::write(leaf.join("cgroup.procs"), "0")
                .map_err(|e| format!("cannot move the executor into {} ({e})", leaf.display()))?;
            request(own, &todo).map_err(|e| format!("cannot enable {} in {} ({e})", todo.join(" "), own.display()))?;
        }
    }
    let on = enabled(own);
    Ok((own.to_path_buf(), WANTED.iter().filter(|c| on.iter().any(|o| o == *c)).map(|c| c.to_string()).collect()))
}

pub(super) fn create(
    made: &mut TreeCgroup,
    name: &str,
    limits: &TreeLimits,
    base: &Path,
    controllers: &[String],
) -> Result<(), CgroupError> {
    let dir = make_dir(made, base, name)?;
    // A limit whose controller is not enabled here is left to its rlimit fallback.
    let has = |c: &str| controllers.iter().any(|e| e == c);
    if let Some(bytes) = limits.memory_bytes.filter(|_| has("memory")) {
        write_file(&dir, "memory.max", bytes.to_string())?;
        // No swap beyond the memory limit. Absent without swap accounting.
        if dir.join("memory.swap.max").exists() {
            write_file(&dir, "memory.swap.max", "0".into())?;
        }
    }
    if let Some(max) = limits.max_procs.filter(|_| has("pids")) {
        write_file(&dir, "pids.max", max.to_string())?;
    }
    if let Some(percent) = limits.cpu_percent.filter(|_| has("cpu")) {
        let quota = (CPU_PERIOD_US * u64::from(percent) / 100).max(1000);
        write_file(&dir, "cpu.max", format!("{quota} {CPU_PERIOD_US}"))?;
    }
    Ok(())
}

pub(super) fn counters(dir: &Path) -> Counters {
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    Counters {
        oom_kills: keyed(&read("memory.events"), "oom_kill"),
        pids_refused: keyed(&read("pids.events"), "max"),
        throttled: keyed(&read("cpu.stat"), "nr_throttled"),
    }
}

fn read_words(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).map(|s| s.split_whitespace().map(String::from).collect()).unwrap_or_default()
}
