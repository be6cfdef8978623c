//! `executor sandbox [OPTIONS] -- CMD ARGS...`: run one command in the sandbox with
//! inherited stdio and exit with its status.
//!
//! Options:
//!   --policy read-only|workspace-write   default workspace-write (cwd, /tmp, $TMPDIR writable)
//!   --writable DIR                       extra writable root (repeatable)
//!   --deny PATH                          `none` entry: hidden inside (repeatable)
//!   --network                            leave the network enabled
//!   --cwd DIR                            command and policy cwd (default: current dir)
//!   --permissions JSON                   a full FileSystemSandboxContext instead of the above
//!   --bwrap auto|system|bundled          launcher
//!   --bwrap-path PATH                    this system bwrap
//!   --sandbox-max-procs N                processes and threads the sandbox may hold (0: no limit)

use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;

use super::policy::{builtin_context, FileSystemSandboxContext};
use super::launcher::{BwrapMode, LauncherConfig};

const USAGE: &str = "usage: executor sandbox [--policy read-only|workspace-write] [--writable DIR]... [--deny PATH]... [--network] [--cwd DIR] [--permissions JSON] [--bwrap auto|system|bundled] [--bwrap-path PATH] [--sandbox-max-procs N] -- CMD [ARGS...]";

pub fn main(args: Vec<OsString>) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("executor sandbox: {msg}");
            2
        }
    }
}

fn run(args: Vec<OsString>) -> Result<i32, String> {
    let mut workspace_write = true;
    let mut writable: Vec<PathBuf> = Vec::new();
    let mut denied: Vec<PathBuf> = Vec::new();
    let mut network = false;
    let mut cwd: Option<PathBuf> = None;
    let mut permissions: Option<String> = None;
    let mut launcher = LauncherConfig::default();
    let mut it = args.into_iter();
    let mut command: Vec<String> = Vec::new();
    while let Some(a) = it.next() {
        let a = a.into_string().map_err(|_| format!("option is not UTF-8\n{USAGE}"))?;
        let mut value = |name: &str| -> Result<OsString, String> { it.next().ok_or_else(|| format!("{name} needs a value\n{USAGE}")) };
        match a.as_str() {
            "--" => {
                for c in it.by_ref() {
                    command.push(c.into_string().map_err(|_| "command arguments must be UTF-8".to_string())?);
                }
                break;
            }
            "--policy" => {
                workspace_write = match value("--policy")?.to_str() {
                    Some("read-only") => false,
                    Some("workspace-write") => true,
                    _ => return Err(format!("unknown policy\n{USAGE}")),
                }
            }
            "--writable" => writable.push(PathBuf::from(value("--writable")?)),
            "--deny" => denied.push(PathBuf::from(value("--deny")?)),
            "--network" => network = true,
            "--cwd" => cwd = Some(PathBuf::from(value("--cwd")?)),
            "--permissions" => permissions = Some(value("--permissions")?.into_string().map_err(|_| "--permissions must be UTF-8")?),
            "--bwrap" => {
                launcher.mode = match value("--bwrap")?.to_str() {
                    Some("auto") => BwrapMode::Auto,
                    Some("system") => BwrapMode::System,
                    Some("bundled") => BwrapMode::Bundled,
                    _ => return Err(format!("--bwrap takes auto, system or bundled\n{USAGE}")),
                }
            }
            "--bwrap-path" => launcher.path_override = Some(PathBuf::from(value("--bwrap-path")?)),
            "--sandbox-max-procs" => {
                let n: u64 = value("--sandbox-max-procs")?
                    .to_str()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("--sandbox-max-procs takes a number (0: no limit)\n{USAGE}"))?;
                launcher.max_procs = (n > 0).then_some(n);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(0);
            }
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    if command.is_empty() {
        return Err(USAGE.to_string());
    }
    let cwd = match cwd {
        Some(c) => c,
        None => std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?,
    };
    let cwd = std::fs::canonicalize(&cwd).map_err(|e| format!("cannot resolve cwd {}: {e}", cwd.display()))?;
    let ctx: FileSystemSandboxContext = match permissions {
        Some(json) => serde_json::from_str(&json).map_err(|e| format!("invalid --permissions: {e}"))?,
        None => builtin_context(workspace_write, &cwd, &writable, &denied, network),
    };
    let spec = super::prepare(&launcher, &ctx, Some(&cwd), &cwd, &command, None, &[]).map_err(|e| e.to_string())?.launch;
    let status = std::process::Command::new(&spec.program)
        .arg0(&spec.argv0)
        .args(&spec.args)
        .current_dir(&cwd)
        .status()
        .map_err(|e| format!("cannot start {}: {e}", spec.program.display()))?;
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 1,
    })
}
