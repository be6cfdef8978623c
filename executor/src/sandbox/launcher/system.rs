//! The host's bwrap: candidates on PATH (or `--bwrap-path`), trust checks, and the
//! `--help`/`--version` probe cached by file identity.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{FileIdentity, Launcher, LauncherConfig, LauncherError, Source, PROBE_TIMEOUT};
use crate::sync::lock;

// ---------------------------------------------------------------------------------
// Probing
// ---------------------------------------------------------------------------------

/// Flags found in `bwrap --help`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HelpFlags {
    pub argv0: bool,
    pub perms: bool,
    pub as_pid_1: bool,
}

/// Looks for whole option tokens (not substrings), so `--perms` is not found inside a
/// longer option name or a sentence mentioning it in passing after a different prefix.
pub fn parse_help(text: &str) -> HelpFlags {
    let mut flags = HelpFlags::default();
    for token in text.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']' || c == '=') {
        match token {
            "--argv0" => flags.argv0 = true,
            "--perms" => flags.perms = true,
            "--as-pid-1" => flags.as_pid_1 = true,
            _ => {}
        }
    }
    flags
}

/// `bubblewrap 0.8.0` → `0.8.0`; anything else → the first line, trimmed.
pub fn parse_version(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let version = line.strip_prefix("bubblewrap ").unwrap_or(line);
    Some(version.split_whitespace().next().unwrap_or(version).to_string())
}

/// Runs a probe command with a deadline. The exit status is not judged here: bwrap
/// versions differ in what `--help` returns.
pub(super) fn run_probe(mut cmd: Command) -> io::Result<Output> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // A probe must not depend on, or leak, the server's environment.
    cmd.env_clear().env("LC_ALL", "C");
    let mut child = cmd.spawn()?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let mut pause = Duration::from_micros(200);
    loop {
        if child.try_wait()?.is_some() {
            return child.wait_with_output();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(io::ErrorKind::TimedOut, "probe timed out"));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

pub(super) fn output_text(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push('\n');
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s
}

// ---------------------------------------------------------------------------------
// System bwrap
// ---------------------------------------------------------------------------------

/// One `bwrap` found on PATH (or given by `--bwrap-path`) and what became of it.
#[derive(Debug)]
pub struct SystemCandidate {
    pub found_at: PathBuf,
    pub canonical: Option<PathBuf>,
    pub outcome: Result<Arc<Launcher>, LauncherError>,
}

/// Every `bwrap` on PATH, in order, canonicalised and de-duplicated. Relative PATH
/// entries are skipped: they would resolve against the server's cwd, which is no
/// trusted location.
pub fn path_candidates(path_var: Option<&std::ffi::OsStr>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Some(path_var) = path_var else { return out };
    for dir in std::env::split_paths(path_var) {
        if !dir.is_absolute() {
            continue;
        }
        let candidate = dir.join("bwrap");
        if candidate.is_file() && !out.contains(&candidate) {
            out.push(candidate);
        }
    }
    out
}

/// Owner must be root and nobody else may write the file or any directory above it:
/// anyone who can write them can choose what runs as our sandbox.
pub fn check_trusted(canonical: &Path) -> Result<FileIdentity, String> {
    let meta = std::fs::symlink_metadata(canonical).map_err(|e| format!("stat failed: {e}"))?;
    if !meta.file_type().is_file() {
        return Err("not a regular file".into());
    }
    if meta.uid() != 0 {
        return Err(format!("owned by uid {}, not root", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("group/other-writable (mode {:o})", meta.mode() & 0o7777));
    }
    if meta.mode() & 0o111 == 0 {
        return Err("not executable".into());
    }
    for dir in canonical.ancestors().skip(1) {
        let d = std::fs::metadata(dir).map_err(|e| format!("stat of {} failed: {e}", dir.display()))?;
        if d.uid() != 0 {
            return Err(format!("parent directory {} is owned by uid {}, not root", dir.display(), d.uid()));
        }
        if d.mode() & 0o022 != 0 {
            return Err(format!("parent directory {} is group/other-writable (mode {:o})", dir.display(), d.mode() & 0o7777));
        }
    }
    Ok(FileIdentity::of(&meta))
}

type IdentityKey = (PathBuf, FileIdentity);
type ProbeCache = HashMap<IdentityKey, Result<ProbeResult, String>>;

#[derive(Debug, Clone)]
struct ProbeResult {
    flags: HelpFlags,
    version: Option<String>,
}

/// `bwrap --help` and `bwrap --version`, once per file identity.
fn probe_system(canonical: &Path, identity: FileIdentity) -> Result<ProbeResult, String> {
    static PROBES: OnceLock<Mutex<ProbeCache>> = OnceLock::new();
    let cache = PROBES.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (canonical.to_path_buf(), identity);
    if let Some(hit) = lock(cache).get(&key) {
        return hit.clone();
    }
    let result = (|| {
        let mut help = Command::new(canonical);
        help.arg("--help");
        let help = run_probe(help).map_err(|e| e.to_string())?;
        let flags = parse_help(&output_text(&help));
        let mut ver = Command::new(canonical);
        ver.arg("--version");
        let version = run_probe(ver).ok().and_then(|o| parse_version(&String::from_utf8_lossy(&o.stdout)));
        Ok(ProbeResult { flags, version })
    })();
    lock(cache).insert(key, result.clone());
    result
}

fn evaluate_system(found_at: &Path) -> (Option<PathBuf>, Result<Arc<Launcher>, LauncherError>) {
    let canonical = match std::fs::canonicalize(found_at) {
        Ok(c) => c,
        Err(source) => return (None, Err(LauncherError::SystemUnresolvable { path: found_at.to_path_buf(), source: Arc::new(source) })),
    };
    let result = (|| {
        let identity = check_trusted(&canonical).map_err(|reason| LauncherError::SystemUntrusted { path: canonical.clone(), reason })?;
        let probe = probe_system(&canonical, identity).map_err(|reason| LauncherError::SystemProbe { path: canonical.clone(), reason })?;
        let mut missing = Vec::new();
        if !probe.flags.perms {
            missing.push("--perms");
        }
        if !probe.flags.as_pid_1 {
            missing.push("--as-pid-1");
        }
        if !missing.is_empty() {
            return Err(LauncherError::SystemMissingFlags {
                path: canonical.clone(),
                version: probe.version.clone().unwrap_or_else(|| "unknown version".into()),
                missing: missing.join(" and "),
            });
        }
        Ok(system_launcher(&canonical, identity, &probe))
    })();
    (Some(canonical), result)
}

/// One shared `Arc` per (path, identity) so callers can compare launchers cheaply.
fn system_launcher(canonical: &Path, identity: FileIdentity, probe: &ProbeResult) -> Arc<Launcher> {
    static LAUNCHERS: OnceLock<Mutex<HashMap<IdentityKey, Arc<Launcher>>>> = OnceLock::new();
    let cache = LAUNCHERS.get_or_init(|| Mutex::new(HashMap::new()));
    lock(cache)
        .entry((canonical.to_path_buf(), identity))
        .or_insert_with(|| {
            Arc::new(Launcher {
                source: Source::System { identity },
                exec_path: canonical.to_path_buf(),
                version: probe.version.clone(),
                supports_argv0: probe.flags.argv0,
                supports_perms: probe.flags.perms,
                supports_as_pid_1: probe.flags.as_pid_1,
                proc_mountable: OnceLock::new(),
            })
        })
        .clone()
}

/// All system candidates for this configuration and their verdicts (for `doctor`).
pub fn inspect_system(config: &LauncherConfig) -> Vec<SystemCandidate> {
    let found = match &config.path_override {
        Some(p) => vec![p.clone()],
        None => path_candidates(std::env::var_os("PATH").as_deref()),
    };
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for found_at in found {
        // /bin/bwrap and /usr/bin/bwrap are one file on merged-/usr systems.
        if let Ok(c) = std::fs::canonicalize(&found_at) {
            if seen.contains(&c) {
                continue;
            }
            seen.push(c);
        }
        let (canonical, outcome) = evaluate_system(&found_at);
        out.push(SystemCandidate { found_at, canonical, outcome });
    }
    out
}

pub(super) fn select_system(config: &LauncherConfig) -> Result<Arc<Launcher>, LauncherError> {
    let candidates = inspect_system(config);
    if candidates.is_empty() {
        return Err(LauncherError::SystemNotFound { path: std::env::var("PATH").unwrap_or_else(|_| "PATH unset".into()) });
    }
    let mut reasons = Vec::new();
    for c in candidates {
        match c.outcome {
            Ok(l) => return Ok(l),
            Err(e) if config.path_override.is_some() => return Err(e),
            Err(e) => reasons.push(e.to_string()),
        }
    }
    Err(LauncherError::NoUsableSystem(reasons))
}
