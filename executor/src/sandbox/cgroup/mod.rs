//! Resource limits for one sandboxed process tree (issue 17): memory, processes, CPU
//! rate and wall-clock time.
//!
//! Mechanism, per tree: a cgroup created below the executor's own cgroup before the child
//! runs (the child joins it in `pre_exec`, before exec, so nothing of the tree ever runs
//! outside it), read once the tree exited to say which limit it hit, and removed after
//! the tree is reaped (whatever is left in it is killed first). cgroup v1 (one directory
//! per controller: memory, pids, cpu) and v2 (one directory, controllers enabled in the
//! parent) are both handled (`v1.rs`, `v2.rs`); which one is usable is found once per
//! process (`detect`).
//!
//! Without a usable cgroup the limits fall back to rlimits, which are per process, not
//! per tree: RLIMIT_AS for memory, RLIMIT_NPROC for processes (the inner stage sets it;
//! the kernel does not apply it to root), RLIMIT_CPU for a CPU-time budget when a wall
//! limit bounds the rate's window. `enforcement` says for each limit exactly what holds,
//! so that no limit silently does nothing. The wall-clock limit is the executor's own
//! timer and holds everywhere.

mod mounts;
mod size;
mod v1;
mod v2;

use std::fmt::Write as _;
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

pub use size::{human_bytes, parse_bytes};

/// The limits one tree gets; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TreeLimits {
    /// Memory of the whole tree, in bytes (no swap beyond it).
    pub memory_bytes: Option<u64>,
    /// Processes and threads of the whole tree.
    pub max_procs: Option<u64>,
    /// CPU rate, in percent of one core.
    pub cpu_percent: Option<u32>,
    /// Wall-clock time after which the tree is killed.
    pub wall_seconds: Option<u64>,
}

impl TreeLimits {
    /// True when a limit needs a cgroup (or its rlimit fallback); the wall limit does not.
    pub fn needs_cgroup(&self) -> bool {
        self.memory_bytes.is_some() || self.max_procs.is_some() || self.cpu_percent.is_some()
    }

    pub fn is_empty(&self) -> bool {
        !self.needs_cgroup() && self.wall_seconds.is_none()
    }

    /// `self` with each limit no looser than `cap`'s (a request may only tighten the
    /// operator's limits).
    pub fn capped_by(&self, cap: &TreeLimits) -> TreeLimits {
        fn min<T: Ord + Copy>(asked: Option<T>, cap: Option<T>) -> Option<T> {
            match (asked, cap) {
                (Some(a), Some(c)) => Some(a.min(c)),
                (a, c) => a.or(c),
            }
        }
        TreeLimits {
            memory_bytes: min(self.memory_bytes, cap.memory_bytes),
            max_procs: min(self.max_procs, cap.max_procs),
            cpu_percent: min(self.cpu_percent, cap.cpu_percent),
            wall_seconds: min(self.wall_seconds, cap.wall_seconds),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot create the sandbox's cgroup {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set {file} of the sandbox's cgroup {path} to {value}: {source}")]
    Write {
        path: PathBuf,
        file: &'static str,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open {path}/cgroup.procs to place the sandbox in its cgroup: {source}")]
    OpenProcs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Which cgroup hierarchy the executor can create tree cgroups in.
#[derive(Debug, Clone)]
pub enum Backend {
    /// One directory per controller (None: that controller is not usable).
    V1 { memory: Option<PathBuf>, pids: Option<PathBuf>, cpu: Option<PathBuf> },
    /// One directory, with these controllers enabled for its children.
    V2 { base: PathBuf, controllers: Vec<String> },
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::V1 { .. } => "cgroup v1",
            Backend::V2 { .. } => "cgroup v2",
        }
    }

    /// Whether the limit of `controller` (memory, pids, cpu) can be set here.
    pub fn has(&self, controller: &str) -> bool {
        match self {
            Backend::V1 { memory, pids, cpu } => match controller {
                "memory" => memory.is_some(),
                "pids" => pids.is_some(),
                "cpu" => cpu.is_some(),
                _ => false,
            },
            Backend::V2 { controllers, .. } => controllers.iter().any(|c| c == controller),
        }
    }
}

/// What this process found: a backend, and why each hierarchy was not usable.
#[derive(Debug, Clone, Default)]
pub struct Detection {
    pub backend: Option<Backend>,
    pub problems: Vec<String>,
}

static DETECTED: OnceLock<Detection> = OnceLock::new();

/// The cgroup backend of this host for this process, found once. Probing creates and
/// removes one empty directory per hierarchy: only a write shows that we may.
pub fn detect() -> &'static Detection {
    DETECTED.get_or_init(|| {
        let mut problems = Vec::new();
        let found = mounts::Mounts::read();
        if let Some(backend) = v2::detect(&found, &mut problems) {
            return Detection { backend: Some(backend), problems };
        }
        match v1::detect(&found, &mut problems) {
            Some(backend) => Detection { backend: Some(backend), problems },
            None => Detection { backend: None, problems },
        }
    })
}

/// How one limit is enforced on this host.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitFact {
    /// memory, processes, cpu, wall
    pub limit: &'static str,
    /// The operator's value, e.g. `128 MiB`.
    pub value: String,
    /// True when the limit binds the whole tree.
    pub holds_for_tree: bool,
    /// What enforces it, and what it does not cover.
    pub mechanism: String,
}

/// For each configured limit, exactly what enforces it here (environment/info facts,
/// `executor doctor`, the start line). `as_root`: RLIMIT_NPROC does not bind root.
pub fn enforcement(limits: &TreeLimits, detection: &Detection, as_root: bool) -> Vec<LimitFact> {
    let backend = detection.backend.as_ref();
    let by_cgroup = |controller: &str| backend.filter(|b| b.has(controller)).map(Backend::name);
    let mut facts = Vec::new();
    if let Some(bytes) = limits.memory_bytes {
        let (holds, mechanism) = match by_cgroup("memory") {
            Some(b) => (true, format!("{b} memory controller (the tree is OOM-killed; no swap beyond it)")),
            None => (false, "RLIMIT_AS per process: allocations beyond it fail; not the tree's total, no kill report".into()),
        };
        facts.push(LimitFact { limit: "memory", value: human_bytes(bytes), holds_for_tree: holds, mechanism });
    }
    if let Some(n) = limits.max_procs {
        let (holds, mechanism) = match by_cgroup("pids") {
            Some(b) => (true, format!("{b} pids controller (forks beyond it fail)")),
            None if as_root => (false, "NOT ENFORCED: RLIMIT_NPROC does not bind root and no pids cgroup is usable".into()),
            None => (true, "RLIMIT_NPROC in the sandbox's user namespace (forks beyond it fail)".into()),
        };
        facts.push(LimitFact { limit: "processes", value: n.to_string(), holds_for_tree: holds, mechanism });
    }
    if let Some(pct) = limits.cpu_percent {
        let (holds, mechanism) = match (by_cgroup("cpu"), cpu_seconds_budget(limits)) {
            (Some(b), _) => (true, format!("{b} cpu controller (the tree is throttled)")),
            (None, Some(secs)) => {
                (false, format!("RLIMIT_CPU per process: {secs} s of CPU time (the rate over the wall limit), then SIGKILL; not a rate"))
            }
            (None, None) => (false, "NOT ENFORCED: no cpu cgroup is usable and no wall limit bounds a CPU-time budget".into()),
        };
        facts.push(LimitFact { limit: "cpu", value: format!("{pct}% of one core"), holds_for_tree: holds, mechanism });
    }
    if let Some(secs) = limits.wall_seconds {
        facts.push(LimitFact {
            limit: "wall",
            value: format!("{secs} s"),
            holds_for_tree: true,
            mechanism: "the executor's timer kills the tree".into(),
        });
    }
    facts
}

/// What the limits of this server amount to on this host: the backend, each limit's
/// enforcement, and why a cgroup hierarchy was not usable. Shown in `environment/info`
/// facts, `executor doctor` and the start line.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitsReport {
    /// `cgroup v1`, `cgroup v2`, or `none (rlimits only)`.
    pub mechanism: String,
    /// The controllers usable for tree cgroups.
    pub controllers: Vec<&'static str>,
    pub limits: Vec<LimitFact>,
    /// Limits configured that do not bind a whole tree here (subset of `limits`).
    pub not_binding_tree: Vec<&'static str>,
    pub problems: Vec<String>,
    /// How a request tightens these limits.
    pub per_request: &'static str,
    /// Whether unsandboxed processes get them too (`--limit-unsandboxed`).
    pub unsandboxed_limited: bool,
    /// The executor method that reports what one process ran into.
    pub report_method: &'static str,
}

/// The report for `limits` on this host, as this process (root or not) runs.
///
/// The cgroup hierarchies are probed (a directory made and removed in each, stale tree
/// cgroups swept) only when a limit needs them or `probe` asks for it (doctor): a server
/// without limits starts without touching cgroupfs.
pub fn report(limits: &TreeLimits, unsandboxed_limited: bool, probe: bool) -> LimitsReport {
    let not_probed = Detection::default();
    let probed = probe || limits.needs_cgroup();
    let detection = if probed { detect() } else { &not_probed };
    let as_root = nix::unistd::geteuid().is_root();
    let facts = enforcement(limits, detection, as_root);
    let backend = detection.backend.as_ref();
    LimitsReport {
        mechanism: match backend {
            Some(backend) => backend.name(),
            None if !probed => "not probed (no memory, process or cpu limit is set)",
            None => "none (rlimits only)",
        }
        .to_string(),
        controllers: ["memory", "pids", "cpu"].into_iter().filter(|c| backend.is_some_and(|b| b.has(c))).collect(),
        not_binding_tree: facts.iter().filter(|f| !f.holds_for_tree).map(|f| f.limit).collect(),
        limits: facts,
        problems: detection.problems.clone(),
        per_request:
            "process/start params.executorLimits {memoryBytes, maxProcs, cpuPercent, wallSeconds}, each capped by the operator's limit",
        unsandboxed_limited,
        report_method: "sandbox/report {processId}: the limits a process's tree ran into (seccomp, network and write refusals are not recorded yet, and the report says so)",
    }
}

/// One line for the start log: `memory 128 MiB: cgroup v1 ...; processes 64: ...`.
pub fn summary(facts: &[LimitFact]) -> String {
    if facts.is_empty() {
        return "none".into();
    }
    let mut out = String::new();
    for (i, f) in facts.iter().enumerate() {
        let sep = if i == 0 { "" } else { "; " };
        let _ = write!(out, "{sep}{} {}: {}", f.limit, f.value, f.mechanism);
    }
    out
}

/// The RLIMIT_CPU fallback: the CPU time the rate allows over the wall limit, rounded up
/// to whole seconds (what RLIMIT_CPU counts in).
fn cpu_seconds_budget(limits: &TreeLimits) -> Option<u64> {
    let (pct, wall) = (u64::from(limits.cpu_percent?), limits.wall_seconds?);
    Some((wall.saturating_mul(pct)).div_ceil(100).max(1))
}

/// A limit the tree ran into, for the last stderr chunk and the exit report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hit {
    Memory { bytes: u64 },
    Processes { max: u64, refused: u64 },
    Cpu { percent: u32 },
    Wall { seconds: u64 },
}

impl Hit {
    /// Which limit: memory, processes, cpu, wall.
    pub fn limit(&self) -> &'static str {
        match self {
            Hit::Memory { .. } => "memory",
            Hit::Processes { .. } => "processes",
            Hit::Cpu { .. } => "cpu",
            Hit::Wall { .. } => "wall",
        }
    }

    /// The stderr line the executor adds for it (without the newline).
    pub fn line(&self) -> String {
        match self {
            Hit::Memory { bytes } => format!("executor: killed: memory limit {} reached", human_bytes(*bytes)),
            Hit::Processes { max, refused } => {
                format!("executor: refused: process limit {max} reached ({refused} forks failed)")
            }
            Hit::Cpu { percent } => format!("executor: throttled: cpu limit {percent}% of one core reached"),
            Hit::Wall { seconds } => format!("executor: killed: wall limit {seconds} s reached"),
        }
    }
}

/// A resource (`libc::RLIMIT_*`) and the value of its soft and hard limit.
pub type Rlimit = (libc::__rlimit_resource_t, u64);

/// The limits of one tree as applied: its cgroup (when usable) and the rlimit fallbacks.
#[derive(Debug)]
pub struct TreeLimiter {
    limits: TreeLimits,
    cgroup: Option<TreeCgroup>,
    rlimits: Vec<Rlimit>,
}

impl TreeLimiter {
    /// The limiter for one tree, with its cgroup created and configured; `None` when no
    /// limit is set.
    pub fn new(limits: &TreeLimits) -> Result<Option<TreeLimiter>, CgroupError> {
        if limits.is_empty() {
            return Ok(None);
        }
        let detection = detect();
        let started = std::time::Instant::now();
        let cgroup = match (&detection.backend, limits.needs_cgroup()) {
            (Some(backend), true) => Some(TreeCgroup::create(backend, limits)?),
            _ => None,
        };
        // The cost of a tree cgroup, apart from the sandbox's (issue 17's budget).
        if let Some(cgroup) = &cgroup {
            tracing::debug!(micros = started.elapsed().as_micros() as u64, dirs = cgroup.dirs.len(), "tree cgroup created");
        }
        let covered = |controller: &str| detection.backend.as_ref().is_some_and(|b| b.has(controller));
        let mut rlimits = Vec::new();
        if let Some(bytes) = limits.memory_bytes.filter(|_| !covered("memory")) {
            rlimits.push((libc::RLIMIT_AS, bytes));
        }
        if let Some(secs) = cpu_seconds_budget(limits).filter(|_| !covered("cpu")) {
            rlimits.push((libc::RLIMIT_CPU, secs));
        }
        Ok(Some(TreeLimiter { limits: *limits, cgroup, rlimits }))
    }

    pub fn limits(&self) -> &TreeLimits {
        &self.limits
    }

    /// Descriptors of `cgroup.procs` files the child writes "0" to before exec; valid
    /// until [`TreeLimiter::spawned`].
    pub fn join_fds(&self) -> Vec<RawFd> {
        self.cgroup.as_ref().map(|c| crate::sync::lock(&c.procs).iter().map(|fd| fd.as_raw_fd()).collect()).unwrap_or_default()
    }

    /// The child was spawned (or could not be): the `cgroup.procs` descriptors are closed,
    /// so that a long-lived process does not hold them against the descriptor budget.
    pub fn spawned(&self) {
        if let Some(cgroup) = &self.cgroup {
            crate::sync::lock(&cgroup.procs).clear();
        }
    }

    /// Rlimits the child sets before exec (the fallbacks for limits no cgroup holds).
    pub fn rlimits(&self) -> &[Rlimit] {
        &self.rlimits
    }

    pub fn wall(&self) -> Option<Duration> {
        self.limits.wall_seconds.map(Duration::from_secs)
    }

    /// The limits the tree ran into, read from its cgroup (the wall limit is the
    /// caller's to know).
    pub fn hits(&self) -> Vec<Hit> {
        let Some(cgroup) = &self.cgroup else { return Vec::new() };
        let counters = cgroup.counters();
        let mut hits = Vec::new();
        if let (Some(bytes), true) = (self.limits.memory_bytes, counters.oom_kills > 0) {
            hits.push(Hit::Memory { bytes });
        }
        if let (Some(max), true) = (self.limits.max_procs, counters.pids_refused > 0) {
            hits.push(Hit::Processes { max, refused: counters.pids_refused });
        }
        if let (Some(percent), true) = (self.limits.cpu_percent, counters.throttled > 0) {
            hits.push(Hit::Cpu { percent });
        }
        hits
    }

    /// SIGKILL to every process left in the tree's cgroup.
    pub fn kill_all(&self) {
        if let Some(cgroup) = &self.cgroup {
            cgroup.kill_all();
        }
    }

    /// Kills what is left and removes the cgroup; false while processes are still
    /// leaving it (call again a little later).
    pub fn try_remove(&self) -> bool {
        match &self.cgroup {
            Some(cgroup) => {
                cgroup.kill_all();
                cgroup.try_remove()
            }
            None => true,
        }
    }

    /// The cgroup's directories (tests and logs).
    pub fn paths(&self) -> Vec<PathBuf> {
        self.cgroup.as_ref().map(|c| c.dirs.clone()).unwrap_or_default()
    }
}

impl Drop for TreeLimiter {
    fn drop(&mut self) {
        // Normally removed after the reap; this covers a spawn that failed (nothing in it)
        // and a server that exits right after killing its trees (stdin EOF), whose last
        // processes need a moment to leave the cgroup.
        let removed = (0..50).any(|attempt| {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
            self.try_remove()
        });
        if !removed {
            tracing::warn!(cgroups = ?self.paths(), "a sandbox's cgroup could not be removed: processes are still in it");
        }
    }
}

/// In the forked child, before exec: enter the tree's cgroup (writing "0" to an open
/// `cgroup.procs` moves the writer) and set the fallback rlimits, so that nothing of the
/// tree runs unlimited, not even bwrap. Only async-signal-safe calls, no allocation.
pub fn join_in_child(procs: &[RawFd], rlimits: &[Rlimit]) -> std::io::Result<()> {
    for &fd in procs {
        // SAFETY: write(2) of one byte from a static buffer to a descriptor we own.
        if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    for &(resource, value) in rlimits {
        let limit = libc::rlimit { rlim_cur: value, rlim_max: value };
        // SAFETY: setrlimit(2) reads the struct it is given.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

impl TreeLimiter {
    /// [`TreeLimiter::try_remove`] until it succeeds, for a caller without a runtime (the
    /// `executor sandbox` command); false when processes are still in it after 5 s.
    pub fn remove_blocking(&self) -> bool {
        for _ in 0..250 {
            if self.try_remove() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

/// What the cgroup counted.
#[derive(Debug, Default)]
struct Counters {
    oom_kills: u64,
    pids_refused: u64,
    throttled: u64,
}

/// One tree's cgroup: its directory in each hierarchy and an open `cgroup.procs` of each.
#[derive(Debug)]
struct TreeCgroup {
    v2: bool,
    dirs: Vec<PathBuf>,
    /// Open until the child has been spawned.
    procs: std::sync::Mutex<Vec<OwnedFd>>,
}

/// Unique names within this executor's life: `executor-<pid>-<n>`.
static NEXT: AtomicU64 = AtomicU64::new(1);

impl TreeCgroup {
    fn create(backend: &Backend, limits: &TreeLimits) -> Result<TreeCgroup, CgroupError> {
        let name = format!("executor-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut made = TreeCgroup { v2: matches!(backend, Backend::V2 { .. }), dirs: Vec::new(), procs: Default::default() };
        // A failure part-way removes the directories made so far.
        let result = match backend {
            Backend::V1 { memory, pids, cpu } => v1::create(&mut made, &name, limits, memory, pids, cpu),
            Backend::V2 { base, controllers } => v2::create(&mut made, &name, limits, base, controllers),
        };
        match result {
            Ok(()) => Ok(made),
            Err(e) => {
                made.try_remove();
                Err(e)
            }
        }
    }

    fn counters(&self) -> Counters {
        if self.v2 {
            self.dirs.first().map(|d| v2::counters(d)).unwrap_or_default()
        } else {
            v1::counters(&self.dirs)
        }
    }

    fn kill_all(&self) {
        if self.v2 {
            if let Some(dir) = self.dirs.first() {
                // cgroup.kill (Linux 5.14) kills the whole tree atomically, forks included.
                if std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
                    return;
                }
            }
        }
        // Repeated: a process may fork while we walk the list.
        for _ in 0..8 {
            let mut any = false;
            for dir in &self.dirs {
                for pid in read_pids(&dir.join("cgroup.procs")) {
                    any = true;
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                }
            }
            if !any {
                return;
            }
        }
    }

    fn try_remove(&self) -> bool {
        let mut all = true;
        for dir in &self.dirs {
            match std::fs::remove_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => all = false,
            }
        }
        all
    }
}

fn read_pids(path: &std::path::Path) -> Vec<i32> {
    std::fs::read_to_string(path).map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect()).unwrap_or_default()
}

/// `key value` lines (memory.events, pids.events, cpu.stat, memory.oom_control): the
/// value of `key`, 0 when absent.
fn keyed(text: &str, key: &str) -> u64 {
    text.lines().filter_map(|l| l.split_once(' ')).find(|(k, _)| *k == key).and_then(|(_, v)| v.trim().parse().ok()).unwrap_or(0)
}

/// Writes `value` to `dir/file`, as a typed error.
fn write_file(dir: &std::path::Path, file: &'static str, value: String) -> Result<(), CgroupError> {
    std::fs::write(dir.join(file), &value).map_err(|source| CgroupError::Write { path: dir.to_path_buf(), file, value, source })
}

/// Creates `parent/name`, records it in `made`, and opens its `cgroup.procs`.
fn make_dir(made: &mut TreeCgroup, parent: &std::path::Path, name: &str) -> Result<PathBuf, CgroupError> {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).map_err(|source| CgroupError::Create { path: dir.clone(), source })?;
    made.dirs.push(dir.clone());
    let procs = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(dir.join("cgroup.procs"))
        .map_err(|source| CgroupError::OpenProcs { path: dir.clone(), source })?;
    crate::sync::lock(&made.procs).push(OwnedFd::from(procs));
    Ok(dir)
}

/// Removes the empty tree cgroups that executors which no longer run left below `parent`
/// (one killed with SIGKILL cannot clean up). Names are `executor-<pid>-<n>`; a live pid
/// (even a reused one) is left alone, and a cgroup with processes cannot be removed.
fn sweep_stale(parent: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    let me = std::process::id();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("executor-")) else { continue };
        let Some((pid, n)) = rest.split_once('-') else { continue };
        let (Ok(pid), true) = (pid.parse::<u32>(), !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) else { continue };
        if pid == me || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if std::fs::remove_dir(entry.path()).is_ok() {
            tracing::info!(cgroup = %entry.path().display(), "removed a stale sandbox cgroup of an executor that is gone");
        }
    }
}

/// Only a write shows that we may create cgroups below `parent`: make and remove one.
fn probe_writable(parent: &std::path::Path) -> Result<(), std::io::Error> {
    let dir = parent.join(format!("executor-{}-probe", std::process::id()));
    std::fs::create_dir(&dir)?;
    std::fs::remove_dir(&dir)?;
    sweep_stale(parent);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_only_tighten_the_operators_limits() {
        let cap = TreeLimits { memory_bytes: Some(100), max_procs: None, cpu_percent: Some(50), wall_seconds: Some(10) };
        let asked = TreeLimits { memory_bytes: Some(500), max_procs: Some(7), cpu_percent: Some(20), wall_seconds: None };
        let got = asked.capped_by(&cap);
        assert_eq!(got, TreeLimits { memory_bytes: Some(100), max_procs: Some(7), cpu_percent: Some(20), wall_seconds: Some(10) });
    }

    #[test]
    fn without_a_cgroup_root_is_told_the_process_limit_does_not_hold() {
        let limits = TreeLimits { max_procs: Some(64), cpu_percent: Some(20), ..TreeLimits::default() };
        let facts = enforcement(&limits, &Detection::default(), true);
        assert!(facts.iter().all(|f| !f.holds_for_tree), "{facts:?}");
        assert!(facts.iter().all(|f| f.mechanism.starts_with("NOT ENFORCED")), "{facts:?}");
        let facts = enforcement(&limits, &Detection::default(), false);
        assert!(facts[0].holds_for_tree && facts[0].mechanism.contains("RLIMIT_NPROC"), "{facts:?}");
    }

    #[test]
    fn keyed_counters_are_read_by_name() {
        assert_eq!(keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill"), 3);
        assert_eq!(keyed("max 12\n", "max"), 12);
        assert_eq!(keyed("nr_periods 1\n", "nr_throttled"), 0);
    }

    #[test]
    fn the_cpu_time_budget_rounds_up() {
        let limits = TreeLimits { cpu_percent: Some(20), wall_seconds: Some(2), ..TreeLimits::default() };
        assert_eq!(cpu_seconds_budget(&limits), Some(1));
        let limits = TreeLimits { cpu_percent: Some(50), wall_seconds: Some(9), ..TreeLimits::default() };
        assert_eq!(cpu_seconds_budget(&limits), Some(5));
    }
}
