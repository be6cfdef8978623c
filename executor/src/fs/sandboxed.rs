//! fs requests under a restricted profile: served by the executor binary running as the
//! fs-helper inside the same bwrap + inner-stage sandbox a process would get (network
//! always off, empty environment). Helpers stay warm, one per distinct resolved plan, so
//! a request costs a round trip over a pipe rather than a sandbox start.
//!
//! The plan, not the policy text, is the key: every request is planned anew (as every
//! process start is), so a protected name such as `.git` or a `none` path that appears
//! on the host after a helper started gets a helper whose mounts cover it, instead of
//! being served by a helper whose view predates it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::protocol::RpcError;
use crate::sync::lock;
use crate::sandbox::launcher::{self, LauncherConfig};
use crate::sandbox::policy::SandboxPlan;
use crate::sandbox::{self, FileSystemSandboxContext};

/// argv[1] that makes the executor binary serve the helper protocol on stdin/stdout.
pub const HELPER_ARG1: &str = "--run-as-fs-helper";

/// Warm helpers kept at most; the least recently used one is stopped beyond this.
const MAX_HELPERS: usize = 8;
/// A helper unused this long is stopped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

struct Helper {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

struct Slot {
    helper: Arc<tokio::sync::Mutex<Option<Helper>>>,
    last_used: Instant,
}

/// Warm helpers by resolved plan and cwd.
#[derive(Default)]
pub struct HelperPool {
    slots: Mutex<HashMap<String, Slot>>,
}


/// The plan for `ctx` as of now; `plan.direct` means no sandbox at all (then the
/// executor serves the request itself).
pub fn plan(ctx: &FileSystemSandboxContext, server_cwd: &Path) -> Result<SandboxPlan, RpcError> {
    sandbox::policy::resolve(ctx, Some(server_cwd)).map_err(sandbox_error)
}

fn sandbox_error(e: sandbox::SandboxError) -> RpcError {
    if e.is_client_error() {
        RpcError::invalid_params(e.to_string())
    } else {
        RpcError::internal(e.to_string())
    }
}

impl HelperPool {
    /// Runs `operation` with `params` inside a helper for `plan` (from [`plan`] for `ctx`).
    pub async fn run(
        &self,
        launcher: &LauncherConfig,
        ctx: &FileSystemSandboxContext,
        mut plan: SandboxPlan,
        server_cwd: &Path,
        operation: &str,
        params: Value,
    ) -> Result<Value, RpcError> {
        // The helper never needs the network, whatever the client's profile allows.
        plan.network = false;
        let cwd: PathBuf = ctx.cwd.as_ref().map(|c| c.0.clone()).unwrap_or_else(|| server_cwd.to_path_buf());
        let key = format!("{cwd:?}\n{plan:?}");
        let slot = self.slot(&key);
        let mut guard = slot.lock().await;
        if guard.is_none() {
            *guard = Some(spawn_helper(launcher, &plan, &cwd)?);
        }
        let Some(helper) = guard.as_mut() else { return Err(RpcError::internal("fs sandbox helper is not running")) };
        match exchange(helper, operation, params).await {
            Ok(reply) => reply,
            Err(failure) => {
                // A helper that broke the protocol is not reused.
                if let Some(mut dead) = guard.take() {
                    let _ = dead.child.start_kill();
                }
                Err(failure)
            }
        }
    }

    fn slot(&self, key: &str) -> Arc<tokio::sync::Mutex<Option<Helper>>> {
        let mut slots = lock(&self.slots);
        let now = Instant::now();
        slots.retain(|_, s| now.duration_since(s.last_used) < IDLE_TIMEOUT);
        if !slots.contains_key(key) && slots.len() >= MAX_HELPERS {
            let oldest = slots.iter().min_by_key(|(_, s)| s.last_used).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                slots.remove(&oldest);
            }
        }
        let slot = slots
            .entry(key.to_owned())
            .or_insert_with(|| Slot { helper: Arc::new(tokio::sync::Mutex::new(None)), last_used: now });
        slot.last_used = now;
        slot.helper.clone()
    }
}

fn spawn_helper(config: &LauncherConfig, plan: &SandboxPlan, cwd: &Path) -> Result<Helper, RpcError> {
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| RpcError::internal(format!("cannot locate the executor binary: {e}")))?;
    let argv = [exe.to_string_lossy().into_owned(), HELPER_ARG1.to_owned()];
    let launcher = launcher::select_for(config, cwd, &plan.writable_roots).map_err(|e| sandbox_error(e.into()))?;
    let launch = sandbox::launch_for_plan(&launcher, plan, cwd, &argv, None).map_err(sandbox_error)?;
    let mut child = Command::new(&launch.program)
        .arg0(&launch.argv0)
        .args(&launch.args)
        .current_dir(cwd)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| RpcError::internal(format!("cannot start the fs sandbox helper: {e}")))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(RpcError::internal("fs sandbox helper pipes were not created"));
    };
    Ok(Helper { child, stdin, stdout: BufReader::new(stdout) })
}

/// One request/reply. `Err` means the helper itself failed (it is then discarded);
/// `Ok(Err(..))` is the operation's own error.
async fn exchange(helper: &mut Helper, operation: &str, params: Value) -> Result<Result<Value, RpcError>, RpcError> {
    let mut line = serde_json::to_vec(&json!({"operation": operation, "params": params}))
        .map_err(|e| RpcError::internal(e.to_string()))?;
    line.push(b'\n');
    let broken = |what: &str| RpcError::internal(format!("fs sandbox helper failed: {what}"));
    helper.stdin.write_all(&line).await.map_err(|e| broken(&e.to_string()))?;
    helper.stdin.flush().await.map_err(|e| broken(&e.to_string()))?;
    let mut reply = String::new();
    let n = helper.stdout.read_line(&mut reply).await.map_err(|e| broken(&e.to_string()))?;
    if n == 0 {
        let status = helper.child.try_wait().ok().flatten().map(|s| s.to_string()).unwrap_or_else(|| "running".into());
        return Err(broken(&format!("it exited ({status}); see the executor's stderr for its message")));
    }
    let mut reply: Value = serde_json::from_str(&reply).map_err(|e| broken(&format!("unreadable reply: {e}")))?;
    let payload = reply.get_mut("payload").map(Value::take).unwrap_or(Value::Null);
    match reply.get("status").and_then(Value::as_str) {
        Some("ok") => Ok(Ok(payload.get("response").cloned().unwrap_or(Value::Null))),
        Some("error") => {
            let code = payload.get("code").and_then(Value::as_i64).unwrap_or(crate::protocol::error::INTERNAL_ERROR);
            let message = payload.get("message").and_then(Value::as_str).unwrap_or("fs sandbox helper error");
            Ok(Err(RpcError::new(code, message)))
        }
        _ => Err(broken("reply without a status")),
    }
}

/// The helper process's entry point: serve requests on stdin/stdout until EOF.
pub fn helper_main() -> i32 {
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    match fs_helper::helper::serve(stdin, stdout, None) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("fs sandbox helper failed: {e}");
            1
        }
    }
}
