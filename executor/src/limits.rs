//! Bounds on what one client can make the server hold, and the descriptor budget that
//! keeps `process/start` and the sandboxed fs helper working when something does fill up.
//!
//! Each session may hold at most `--max-fs-handles` open `fs/open` handles and run at
//! most `--max-processes` processes that have not closed yet. Descriptors are a
//! process-wide resource, though, and many websocket sessions together can still exhaust
//! them; so at start the executor raises its own `RLIMIT_NOFILE` soft limit to the hard
//! limit, and an `fs/open` is refused while fewer than a reserve of descriptors would be
//! left free. `process/start` may dip into that reserve (down to a quarter of it), which
//! is what the reserve is for. Children get the soft limit the executor was started with,
//! not the raised one: programs that size tables by it or use `select()` keep working.

use std::sync::OnceLock;

/// Default of `--max-fs-handles`: far below the usual descriptor limits (1024 soft and
/// 524288 or more hard on current distributions), far above what a client needs.
pub const DEFAULT_MAX_FS_HANDLES: usize = 1024;
/// Default of `--max-processes`: processes that have not closed yet, per session.
pub const DEFAULT_MAX_PROCESSES: usize = 256;

/// Largest descriptor reserve; a process start or an fs helper start needs a handful.
const MAX_RESERVE: u64 = 1024;
/// Smallest descriptor reserve, for very low limits.
const MIN_RESERVE: u64 = 32;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error(
        "too many open file handles: this session already holds {cap}, the limit set by --max-fs-handles; close one with fs/close first"
    )]
    FsHandles { cap: usize },
    #[error("too many processes: this session already runs {cap} that have not closed, the limit set by --max-processes")]
    Processes { cap: usize },
    #[error(
        "too few free file descriptors: {open} of the executor's {limit} (RLIMIT_NOFILE) are open, and {reserve} are kept for process/start and sandboxed fs requests; close fs handles or raise the limit"
    )]
    Descriptors { open: u64, limit: u64, reserve: u64 },
}

/// The per-session caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub max_fs_handles: usize,
    pub max_processes: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits { max_fs_handles: DEFAULT_MAX_FS_HANDLES, max_processes: DEFAULT_MAX_PROCESSES }
    }
}

/// What a descriptor check is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A new `fs/open` handle: must leave the whole reserve free.
    FsHandle,
    /// A process start: may use all but a quarter of the reserve.
    Process,
}

/// The executor's descriptor limit and the reserve kept below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorBudget {
    pub limit: u64,
    pub reserve: u64,
}

impl DescriptorBudget {
    /// The budget for the current soft `RLIMIT_NOFILE`.
    pub fn current() -> Self {
        let (soft, _) = nofile().unwrap_or((u64::MAX, u64::MAX));
        Self::for_limit(soft)
    }

    pub fn for_limit(limit: u64) -> Self {
        DescriptorBudget { limit, reserve: (limit / 8).clamp(MIN_RESERVE, MAX_RESERVE) }
    }

    /// Refuses `what` when it would leave fewer descriptors free than it may.
    pub fn check(&self, what: Use) -> Result<(), LimitError> {
        let keep = match what {
            Use::FsHandle => self.reserve,
            Use::Process => self.reserve / 4,
        };
        let allowed = self.limit.saturating_sub(keep);
        // The descriptor table's size bounds the count from above and costs one small
        // read; the exact count walks every descriptor, so it is taken only when the
        // bound is not enough.
        if table_size().is_some_and(|size| size <= allowed) {
            return Ok(());
        }
        match open_count() {
            Some(open) if open >= allowed => Err(LimitError::Descriptors { open, limit: self.limit, reserve: self.reserve }),
            // Without /proc there is nothing to count: the per-session caps still hold.
            _ => Ok(()),
        }
    }
}

/// The soft limit the executor was started with, for its children; set by
/// [`raise_nofile_limit`].
static CHILD_NOFILE: OnceLock<libc::rlimit> = OnceLock::new();

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft limit. The
/// original is remembered for children ([`restore_for_child`]).
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    let mut current = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut current) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let _ = CHILD_NOFILE.set(current);
    let raised = libc::rlimit { rlim_cur: current.rlim_max, rlim_max: current.rlim_max };
    // SAFETY: setrlimit only reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(raised.rlim_cur)
}

/// Makes `command`'s child start with the soft limit the executor itself started with.
pub fn restore_for_child(command: &mut tokio::process::Command) {
    let Some(&original) = CHILD_NOFILE.get() else { return };
    // SAFETY: the closure runs in the forked child before exec and only calls setrlimit,
    // which is async-signal-safe, on a value copied into the closure.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &original) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// (soft, hard) `RLIMIT_NOFILE` of this process.
fn nofile() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct it is given.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some((limit.rlim_cur, limit.rlim_max))
}

/// Size of this process's descriptor table (`FDSize` in /proc/self/status): every open
/// descriptor is below it.
fn table_size() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("FDSize:")).and_then(|v| v.trim().parse().ok())
}

/// How many descriptors this process has open.
fn open_count() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    // The listing's own descriptor is among them; one too many only errs on the safe side.
    Some(entries.count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_scales_with_the_limit_within_bounds() {
        assert_eq!(DescriptorBudget::for_limit(64).reserve, MIN_RESERVE);
        assert_eq!(DescriptorBudget::for_limit(2048).reserve, 256);
        assert_eq!(DescriptorBudget::for_limit(1 << 20).reserve, MAX_RESERVE);
    }

    #[test]
    fn checks_count_the_descriptors_really_open() {
        let open = open_count().expect("/proc/self/fd");
        // A limit just above what is open: a handle would eat into the reserve, a process
        // start may still use part of it.
        // Margins of a few dozen: tests running alongside open and close descriptors too.
        let tight = DescriptorBudget { limit: open + 40, reserve: 64 };
        assert!(matches!(tight.check(Use::FsHandle), Err(LimitError::Descriptors { .. })));
        assert_eq!(tight.check(Use::Process), Ok(()));
        assert_eq!(DescriptorBudget::for_limit(open + 100_000).check(Use::FsHandle), Ok(()));
    }
}
