//! Shared pieces of the sandboxed workloads: a scratch workspace under /tmp, the
//! workspace-write `sandbox` context for it, and the bare bwrap argv with the mounts
//! the executor uses for that policy.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::Server;
use crate::error::{Error, Result};
use crate::fail;

/// Where an fs workload runs a mode: on the server itself, or under the sandbox.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Direct,
    Sandboxed,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Direct => "direct",
            Mode::Sandboxed => "sandboxed",
        }
    }
}

/// The setup and bookkeeping shared by fs-read and fs-meta: runs `measure` for each of
/// `modes` on one server, passing the workspace-write `sandbox` context of `scratch`
/// for the sandboxed mode. A mode that fails is recorded as `{"error": ...}` and the
/// other is still measured; the workload fails only if every mode did.
pub fn run_fs_modes(
    mut server: Server,
    scratch: &Scratch,
    modes: [Mode; 2],
    mut measure: impl FnMut(&mut Server, Mode, Option<&Value>) -> Result<Value>,
) -> Result<serde_json::Map<String, Value>> {
    let sandbox = workspace_write(&scratch.dir);
    let mut out = serde_json::Map::new();
    for mode in modes {
        let context = (mode == Mode::Sandboxed).then_some(&sandbox);
        let outcome = measure(&mut server, mode, context).unwrap_or_else(|e| json!({"error": e.0}));
        out.insert(mode.name().into(), outcome);
    }
    server.shutdown();
    let errors: Vec<String> = out.iter().filter_map(|(k, v)| v.get("error").and_then(Value::as_str).map(|e| format!("{k}: {e}"))).collect();
    if errors.len() == out.len() {
        fail!("{}", errors.join("; "))
    }
    Ok(out)
}

/// `fs/*` params for `path`, with the sandbox context if there is one.
pub fn fs_params(path: &Path, sandbox: Option<&Value>) -> Value {
    let mut params = json!({"path": uri(path)});
    if let Some(sb) = sandbox {
        params["sandbox"] = sb.clone();
    }
    params
}

/// Writes a workload's input file.
pub fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    std::fs::write(path, data).map_err(|e| Error(format!("cannot write {}: {e}", path.display())))
}

/// A directory under /tmp, removed on drop.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(what: &str) -> Result<Self> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let dir = PathBuf::from(format!("/tmp/exec-bench-{what}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| Error(format!("cannot create {}: {e}", dir.display())))?;
        Ok(Self { dir })
    }

    pub fn uri(&self) -> String {
        uri(&self.dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// Workspace-write with network restricted: `/` readable, `dir` writable, cwd `dir`.
pub fn workspace_write(dir: &Path) -> Value {
    json!({
        "permissions": {
            "type": "managed",
            "file_system": {
                "type": "restricted",
                "entries": [
                    {"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"},
                    {"path": {"type": "path", "path": uri(dir)}, "access": "write"},
                ],
            },
            "network": "restricted",
        },
        "windowsSandboxLevel": "disabled",
        "cwd": uri(dir),
    })
}

/// Bare bwrap with the mounts and namespaces executor/src/sandbox/bwrap_args.rs builds
/// for the workspace-write policy above on bwrap 0.8 (`--as-pid-1` supported; no
/// protected names exist in the fresh scratch dir, so none are mounted; the executor
/// binary is seen through the read-only root, so it is not bound either). Left out:
/// `--info-fd`, `--cap-add CAP_SETPCAP` and the executor's inner stage (the sandboxed run
/// pays for those; the bare one does not).
pub fn bare_args(scratch: &Path) -> Vec<String> {
    let s = scratch.display().to_string();
    let mut a: Vec<String> = [
        "--as-pid-1",
        "--new-session",
        "--die-with-parent",
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--unshare-net",
        "--ro-bind",
        "/",
        "/",
    ]
    .map(String::from)
    .to_vec();
    a.extend(["--bind".into(), s.clone(), s.clone()]);
    a.extend(["--dev", "/dev", "--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys"].map(String::from));
    for p in ["/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"] {
        a.extend(["--ro-bind-try".into(), p.into(), p.into()]);
    }
    a.extend(["--cap-drop".into(), "ALL".into(), "--chdir".into(), s, "--".into(), "/bin/true".into()]);
    a
}

/// One bare run: spawn and wait.
pub fn bare_once(bwrap: &Path, args: &[String]) -> Result<Duration> {
    let started = Instant::now();
    let out = Command::new(bwrap)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error(format!("cannot run {}: {e}", bwrap.display())))?;
    let took = started.elapsed();
    if !out.status.success() {
        fail!("bare bwrap failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim())
    }
    Ok(took)
}

/// What the server says about itself (`environment/info`), for the report: executor
/// names the bwrap launcher mode there. Errors are recorded, not fatal.
pub fn environment_info(server: &mut Server) -> Value {
    match server.request("environment/info", json!({})).and_then(|id| server.wait_result(id)) {
        Ok(v) => v.get("executor").cloned().unwrap_or(Value::Null),
        Err(e) => json!({"error": e.0}),
    }
}
