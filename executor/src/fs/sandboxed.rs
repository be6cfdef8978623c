//! fs requests under a restricted profile: served by the executor binary running as the
//! fs-helper inside the same bwrap + inner-stage sandbox a process would get (network
//! always off, empty environment). Helpers stay warm, one per distinct policy, so a
//! request costs a round trip over a pipe rather than a sandbox start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fs_helper::helper::{OK_TAIL, READ_FILE_OK_HEAD};
use fs_helper::ops::{Operation, READ_FILE_RESULT_HEAD, READ_FILE_RESULT_TAIL};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::protocol::envelope::{finish_response, response_head};
use crate::protocol::{RequestId, RpcError};
use crate::rpc::Answer;
use crate::sync::lock;
use crate::sandbox::launcher::LauncherConfig;
use crate::sandbox::policy::{NetworkPolicy, PermissionProfile};
use crate::sandbox::{self, FileSystemSandboxContext};

/// argv[1] that makes the executor binary serve the helper protocol on stdin/stdout.
pub const HELPER_ARG1: &str = "--run-as-fs-helper";

/// Warm helpers kept at most; the least recently used one is stopped beyond this.
const MAX_HELPERS: usize = 8;
/// A helper unused this long is stopped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Buffer for the helper's replies, and the pipe size asked for: a readFile reply is
/// the whole file in base64, and the default 64 KiB pipe costs a context switch per
/// 64 KiB.
const REPLY_BUFFER: usize = 1024 * 1024;

struct Helper {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

struct Slot {
    helper: Arc<tokio::sync::Mutex<Option<Helper>>>,
    last_used: Instant,
}

/// One operation for a helper.
pub struct HelperRequest<'a> {
    pub op: Operation,
    pub params: Value,
    /// The RPC request's id: an ok readFile reply becomes the response line directly.
    pub id: &'a RequestId,
}

/// Warm helpers by policy.
#[derive(Default)]
pub struct HelperPool {
    slots: Mutex<HashMap<String, Slot>>,
}


/// Whether `ctx` asks for no sandbox at all (then the executor serves the request itself).
pub fn is_unsandboxed(ctx: &FileSystemSandboxContext, server_cwd: &Path) -> Result<bool, RpcError> {
    let plan = sandbox::policy::resolve(ctx, Some(server_cwd)).map_err(sandbox_error)?;
    Ok(plan.direct)
}

fn sandbox_error(e: sandbox::SandboxError) -> RpcError {
    if e.is_client_error() {
        RpcError::invalid_params(e.to_string())
    } else {
        RpcError::internal(e.to_string())
    }
}

impl HelperPool {
    /// Runs `request` inside a helper for `ctx`.
    pub async fn run(
        &self,
        launcher: &LauncherConfig,
        ctx: &FileSystemSandboxContext,
        server_cwd: &Path,
        request: HelperRequest<'_>,
    ) -> Result<Answer, RpcError> {
        let key = serde_json::to_string(ctx).map_err(|e| RpcError::internal(e.to_string()))?;
        let slot = self.slot(&key);
        let mut guard = slot.lock().await;
        if guard.is_none() {
            *guard = Some(spawn_helper(launcher, ctx, server_cwd)?);
        }
        let Some(helper) = guard.as_mut() else { return Err(RpcError::internal("fs sandbox helper is not running")) };
        match exchange(helper, request).await {
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

/// The helper's policy: the client's, with the network always off.
fn helper_context(ctx: &FileSystemSandboxContext) -> FileSystemSandboxContext {
    let mut ctx = ctx.clone();
    if let PermissionProfile::Managed { network, .. } | PermissionProfile::External { network } = &mut ctx.permissions {
        *network = NetworkPolicy::Restricted;
    }
    ctx
}

fn spawn_helper(launcher: &LauncherConfig, ctx: &FileSystemSandboxContext, server_cwd: &Path) -> Result<Helper, RpcError> {
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| RpcError::internal(format!("cannot locate the executor binary: {e}")))?;
    let ctx = helper_context(ctx);
    let cwd: PathBuf = ctx.cwd.as_ref().map(|c| c.0.clone()).unwrap_or_else(|| server_cwd.to_path_buf());
    let argv = [exe.to_string_lossy().into_owned(), HELPER_ARG1.to_owned()];
    let prepared = sandbox::prepare(launcher, &ctx, Some(&cwd), &cwd, &argv, None).map_err(sandbox_error)?;
    let launch = prepared.launch;
    let mut child = Command::new(&launch.program)
        .arg0(&launch.argv0)
        .args(&launch.args)
        .current_dir(&cwd)
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
    enlarge_pipe(&stdout);
    Ok(Helper { child, stdin, stdout: BufReader::with_capacity(REPLY_BUFFER, stdout) })
}

/// Best effort: an unprivileged process may be refused a size above
/// /proc/sys/fs/pipe-max-size; the default size then stays, which only costs speed.
fn enlarge_pipe(stdout: &ChildStdout) {
    use std::os::fd::AsRawFd;
    let size = i32::try_from(REPLY_BUFFER).unwrap_or(i32::MAX);
    let _ = nix::fcntl::fcntl(stdout.as_raw_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(size));
}

/// One request/reply. `Err` means the helper itself failed (it is then discarded);
/// `Ok(Err(..))` is the operation's own error.
async fn exchange(helper: &mut Helper, request: HelperRequest<'_>) -> Result<Result<Answer, RpcError>, RpcError> {
    let mut line = serde_json::to_vec(&json!({"operation": request.op.name(), "params": request.params}))
        .map_err(|e| RpcError::internal(e.to_string()))?;
    line.push(b'\n');
    helper.stdin.write_all(&line).await.map_err(|e| broken(&e.to_string()))?;
    helper.stdin.flush().await.map_err(|e| broken(&e.to_string()))?;
    drop(line);
    let start = read_start(&mut helper.stdout, READ_FILE_OK_HEAD.len()).await?;
    if start.is_empty() {
        let status = helper.child.try_wait().ok().flatten().map(|s| s.to_string()).unwrap_or_else(|| "running".into());
        return Err(broken(&format!("it exited ({status}); see the executor's stderr for its message")));
    }
    if request.op == Operation::ReadFile && start == READ_FILE_OK_HEAD {
        // The data goes from the helper's pipe into the response line untouched.
        let mut line = response_head(request.id);
        let head_len = line.len();
        read_rest(&mut helper.stdout, &mut line).await?;
        return splice_read_file(line, head_len).map(|line| Ok(Answer::Line(line)));
    }
    let mut reply = start;
    read_rest(&mut helper.stdout, &mut reply).await?;
    Ok(parse_reply(&reply)?.map(Answer::Result))
}

fn broken(what: &str) -> RpcError {
    RpcError::internal(format!("fs sandbox helper failed: {what}"))
}

/// The first `n` bytes of a reply line, fewer if the line (with its newline) is
/// shorter; empty at EOF. Never reads past the newline, so a short reply cannot leave
/// this waiting for a next line that will not come.
async fn read_start(reader: &mut BufReader<ChildStdout>, n: usize) -> Result<Vec<u8>, RpcError> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n && out.last() != Some(&b'\n') {
        let available = reader.fill_buf().await.map_err(|e| broken(&e.to_string()))?;
        if available.is_empty() {
            break;
        }
        let window = &available[..available.len().min(n - out.len())];
        let take = window.iter().position(|&b| b == b'\n').map_or(window.len(), |i| i + 1);
        out.extend_from_slice(&window[..take]);
        reader.consume(take);
    }
    Ok(out)
}

/// Appends the rest of a reply line begun by [`read_start`] to `line`, without the newline.
async fn read_rest(reader: &mut BufReader<ChildStdout>, line: &mut Vec<u8>) -> Result<(), RpcError> {
    if line.last() != Some(&b'\n') {
        reader.read_until(b'\n', line).await.map_err(|e| broken(&e.to_string()))?;
    }
    if line.pop() != Some(b'\n') {
        return Err(broken("its reply was cut short"));
    }
    Ok(())
}

/// `line` is the response head followed by the rest of the helper's ok reply
/// (`{"dataBase64":"..."}}}`): drop the reply's closing braces and close the response
/// instead. The data must not contain a quote or backslash, so that the helper's text
/// cannot end the string early and change the line's structure.
fn splice_read_file(mut line: Vec<u8>, head_len: usize) -> Result<Vec<u8>, RpcError> {
    if !line.ends_with(OK_TAIL) || line.len() < head_len + OK_TAIL.len() {
        return Err(broken("malformed fs/readFile reply"));
    }
    line.truncate(line.len() - OK_TAIL.len());
    let data = line[head_len..].strip_prefix(READ_FILE_RESULT_HEAD).and_then(|r| r.strip_suffix(READ_FILE_RESULT_TAIL));
    let plain = matches!(data, Some(d) if memchr::memchr2(b'"', b'\\', d).is_none());
    if !plain {
        return Err(broken("malformed fs/readFile reply"));
    }
    finish_response(&mut line);
    Ok(line)
}

/// A reply line other than an ok readFile, parsed.
fn parse_reply(reply: &[u8]) -> Result<Result<Value, RpcError>, RpcError> {
    let mut reply: Value = serde_json::from_slice(reply).map_err(|e| broken(&format!("unreadable reply: {e}")))?;
    let mut payload = reply.get_mut("payload").map(Value::take).unwrap_or(Value::Null);
    match reply.get("status").and_then(Value::as_str) {
        Some("ok") => Ok(Ok(payload.get_mut("response").map(Value::take).unwrap_or(Value::Null))),
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
    let served = raw_stdio().and_then(|(stdin, stdout)| {
        let reader = std::io::BufReader::with_capacity(REPLY_BUFFER, stdin);
        let writer = std::io::BufWriter::with_capacity(64 * 1024, stdout);
        fs_helper::helper::serve(reader, writer, None)
    });
    match served {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("fs sandbox helper failed: {e}");
            1
        }
    }
}

/// Duplicates of fd 0 and 1 as plain files: std's stdout is line-buffered and scans
/// every write for a newline, which for a readFile reply is the whole file in base64.
fn raw_stdio() -> std::io::Result<(std::fs::File, std::fs::File)> {
    use std::os::fd::AsFd;
    let stdin = std::io::stdin().as_fd().try_clone_to_owned()?;
    let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
    Ok((stdin.into(), stdout.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spliced(rest: &str) -> Result<Vec<u8>, RpcError> {
        let mut line = response_head(&RequestId::Integer(3));
        let head_len = line.len();
        line.extend_from_slice(rest.as_bytes());
        splice_read_file(line, head_len)
    }

    #[test]
    fn ok_read_file_reply_becomes_the_response_line() {
        let line = spliced(r#"{"dataBase64":"aGk="}}}"#).map_err(|e| e.message);
        assert_eq!(line, Ok(br#"{"id":3,"result":{"dataBase64":"aGk="}}"#.to_vec()));
    }

    #[test]
    fn malformed_read_file_replies_are_refused() {
        for rest in [
            r#"{"dataBase64":"aGk="}}"#,
            r#"{"dataBase64":"aGk="}"#,
            r#"{"dataBase64":"aG","x":"k="}}}"#,
            r#"{"dataBase64":"aG\"k="}}}"#,
            r#"{"dataBase64":"aGk=\"}}}"#,
            r#"{"other":"aGk="}}}"#,
            "}}",
        ] {
            let e = spliced(rest).err().map(|e| e.message);
            assert_eq!(e.as_deref(), Some("fs sandbox helper failed: malformed fs/readFile reply"), "{rest}");
        }
    }
}
