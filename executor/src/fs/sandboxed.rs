//! fs requests under a restricted profile: served by the executor binary running as the
//! fs-helper inside the same bwrap + inner-stage sandbox a process would get (network
//! always off, empty environment). Helpers stay warm, one per distinct resolved plan, so
//! a request costs a round trip over a pipe rather than a sandbox start.
//!
//! The plan, not the policy text, is the key: every request is planned anew (as every
//! process start is), so a protected name such as `.git` or a `none` path that appears
//! on the host after a helper started gets a helper whose mounts cover it, instead of
//! being served by a helper whose view predates it.
//!
//! `fs/open` is opened by the helper, inside the sandbox, so the policy at open time
//! bounds the descriptor; the helper passes it back over a `SOCK_SEQPACKET` pair (its
//! end inherited at the number it has in the executor, named by `--fd-socket N`) and
//! block reads and writes then run in the executor on that descriptor, without the
//! helper.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::fds::InheritedFds;
use crate::protocol::RpcError;
use crate::sync::lock;
use crate::sandbox::launcher::{self, LauncherConfig};
use crate::sandbox::policy::SandboxPlan;
use crate::sandbox::{self, FileSystemSandboxContext};

/// argv[1] that makes the executor binary serve the helper protocol on stdin/stdout.
pub const HELPER_ARG1: &str = "--run-as-fs-helper";
/// Helper argument naming the descriptor of its end of the hand-off socket.
pub const FD_SOCKET_ARG: &str = "--fd-socket";
/// Longest handleId a sandboxed `fs/open` accepts. The id travels as the hand-off
/// message, which must fit one socket message (the socket's send buffer, ~200 KiB by
/// default); refusing before the helper runs keeps `replace` from truncating a file
/// whose handle could not be passed back.
pub const MAX_HANDOFF_ID_BYTES: usize = 4096;
/// Reference text for an ok reply to `fs/open` without a descriptor.
const NO_TRANSFER: &str = "fs sandbox helper did not transfer its opened file descriptor";

/// Warm helpers kept at most; the least recently used one is stopped beyond this.
const MAX_HELPERS: usize = 8;
/// A helper unused this long is stopped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

struct Helper {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Our end of the hand-off socket, non-blocking: a descriptor is queued before the
    /// reply line that announces it, so it is never waited for.
    fd_socket: OwnedFd,
}

/// One request to a helper. `handoff`: the handleId an `fs/open` descriptor must carry.
struct Request<'a> {
    operation: &'a str,
    params: Value,
    handoff: Option<&'a str>,
}

/// A helper's ok answer, with the file it handed over for `fs/open`.
struct Answer {
    response: Value,
    file: Option<File>,
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
        plan: SandboxPlan,
        server_cwd: &Path,
        operation: &str,
        params: Value,
    ) -> Result<Value, RpcError> {
        let request = Request { operation, params, handoff: None };
        Ok(self.request(launcher, ctx, plan, server_cwd, request).await?.response)
    }

    /// `fs/open` (raw `params`, whose handleId is `handle_id`) inside a helper for
    /// `plan`: the file the helper opened, handed over by descriptor.
    pub async fn open(
        &self,
        launcher: &LauncherConfig,
        ctx: &FileSystemSandboxContext,
        plan: SandboxPlan,
        server_cwd: &Path,
        params: Value,
        handle_id: &str,
    ) -> Result<File, RpcError> {
        let request = Request { operation: "fs/open", params, handoff: Some(handle_id) };
        let answer = self.request(launcher, ctx, plan, server_cwd, request).await?;
        answer.file.ok_or_else(|| RpcError::internal(NO_TRANSFER))
    }

    async fn request(
        &self,
        launcher: &LauncherConfig,
        ctx: &FileSystemSandboxContext,
        mut plan: SandboxPlan,
        server_cwd: &Path,
        request: Request<'_>,
    ) -> Result<Answer, RpcError> {
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

fn spawn_helper(config: &LauncherConfig, plan: &SandboxPlan, cwd: &Path) -> Result<Helper, RpcError> {
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| RpcError::internal(format!("cannot locate the executor binary: {e}")))?;
    let (ours, theirs) = handoff_socketpair().map_err(|e| RpcError::internal(format!("cannot create the fs helper socket: {e}")))?;
    let inherited = InheritedFds::new(vec![theirs]);
    let numbers = inherited.numbers();
    let helper_fd: RawFd = numbers.first().copied().unwrap_or(-1);
    let argv = [
        exe.to_string_lossy().into_owned(),
        HELPER_ARG1.to_owned(),
        FD_SOCKET_ARG.to_owned(),
        helper_fd.to_string(),
    ];
    let launcher = launcher::select_for(config, cwd, &plan.writable_roots).map_err(|e| sandbox_error(e.into()))?;
    // The inner stage makes every descriptor above stderr close-on-exec but these.
    let launch = sandbox::launch_for_plan(&launcher, plan, cwd, &argv, None, &numbers, config.max_procs).map_err(sandbox_error)?;
    let mut command = Command::new(&launch.program);
    command
        .arg0(&launch.argv0)
        .args(&launch.args)
        .current_dir(cwd)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    inherited.install(&mut command);
    let spawned = command.spawn();
    // Closes our copy of the helper's end, so only the helper holds it.
    drop(command);
    let mut child = spawned.map_err(|e| RpcError::internal(format!("cannot start the fs sandbox helper: {e}")))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(RpcError::internal("fs sandbox helper pipes were not created"));
    };
    Ok(Helper { child, stdin, stdout: BufReader::new(stdout), fd_socket: ours })
}

/// The hand-off pair: (our non-blocking end, the helper's blocking end), both
/// close-on-exec here so no other child the executor starts inherits them.
fn handoff_socketpair() -> nix::Result<(OwnedFd, OwnedFd)> {
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
    let flags = OFlag::from_bits_retain(fcntl(ours.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(ours.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok((ours, theirs))
}

/// One request/reply. `Err` means the helper itself failed (it is then discarded);
/// `Ok(Err(..))` is the operation's own error.
async fn exchange(helper: &mut Helper, request: Request<'_>) -> Result<Result<Answer, RpcError>, RpcError> {
    let Request { operation, params, handoff } = request;
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
        Some("ok") => {
            let file = handoff.map(|id| take_handoff(helper.fd_socket.as_fd(), id)).transpose()?;
            Ok(Ok(Answer { response: payload.get("response").cloned().unwrap_or(Value::Null), file }))
        }
        Some("error") => {
            if handoff.is_some() {
                discard_handoff(helper.fd_socket.as_fd());
            }
            let code = payload.get("code").and_then(Value::as_i64).unwrap_or(crate::protocol::error::INTERNAL_ERROR);
            let message = payload.get("message").and_then(Value::as_str).unwrap_or("fs sandbox helper error");
            Ok(Err(RpcError::new(code, message)))
        }
        _ => Err(broken("reply without a status")),
    }
}

/// Receives the descriptor queued for the `fs/open` of `handle_id`. An `Err` means the
/// helper broke the hand-off protocol (it is then discarded, so a stray message cannot
/// be matched to a later open).
fn take_handoff(sock: BorrowedFd<'_>, handle_id: &str) -> Result<File, RpcError> {
    // send_fd sends an empty payload as one 0 byte.
    let expected: &[u8] = if handle_id.is_empty() { &[0] } else { handle_id.as_bytes() };
    // One byte more than expected, so a longer (truncated) message cannot match.
    let mut buf = vec![0u8; expected.len() + 1];
    let fd = match fs_helper::helper::recv_fd(sock, &mut buf) {
        Ok((n, Some(fd))) if buf[..n] == *expected => fd,
        Ok((_, Some(_))) => return Err(RpcError::internal("fs sandbox helper transferred a descriptor for another handle")),
        Ok((_, None)) => return Err(RpcError::internal(NO_TRANSFER)),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Err(RpcError::internal(NO_TRANSFER)),
        Err(e) => return Err(RpcError::internal(format!("fs sandbox helper failed: cannot receive its descriptor: {e}"))),
    };
    // The helper already refuses anything else; checked again because this descriptor
    // crosses from the sandbox into the executor.
    let file = File::from(fd);
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(RpcError::internal("fs sandbox helper transferred a descriptor that is not a regular file"));
    }
    Ok(file)
}

/// After a failed `fs/open`, drops anything queued anyway (nothing is expected).
fn discard_handoff(sock: BorrowedFd<'_>) {
    let mut buf = [0u8; 1];
    while let Ok((n, fd)) = fs_helper::helper::recv_fd(sock, &mut buf) {
        drop(fd);
        if n == 0 {
            break;
        }
    }
}

/// The helper process's entry point (`args`: what follows `--run-as-fs-helper`): serve
/// requests on stdin/stdout until EOF.
pub fn helper_main(args: &[OsString]) -> i32 {
    let fd_socket = match fd_socket_from_args(args) {
        Ok(sock) => sock,
        Err(e) => {
            eprintln!("fs sandbox helper failed: {e}");
            return 1;
        }
    };
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    match fs_helper::helper::serve(stdin, stdout, fd_socket) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("fs sandbox helper failed: {e}");
            1
        }
    }
}

/// `[]` (no hand-off: `fs/open` is refused) or `["--fd-socket", N]`.
fn fd_socket_from_args(args: &[OsString]) -> Result<Option<OwnedFd>, String> {
    match args {
        [] => Ok(None),
        [flag, number] if flag == FD_SOCKET_ARG => {
            let raw: RawFd = number
                .to_str()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("{FD_SOCKET_ARG} needs a descriptor number, not {number:?}"))?;
            fs_helper::fd_pass::adopt_seqpacket_socket(raw).map(Some).map_err(|e| format!("{FD_SOCKET_ARG} {raw}: {e}"))
        }
        _ => Err(format!("unexpected arguments {args:?}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use fs_helper::helper::send_fd;
    use std::io::Write;
    use std::os::fd::IntoRawFd;

    fn pair() -> (OwnedFd, OwnedFd) {
        handoff_socketpair().unwrap()
    }

    fn message(r: Result<File, RpcError>) -> String {
        r.err().map(|e| e.message).unwrap_or_default()
    }

    #[test]
    fn takes_the_descriptor_announced_for_the_handle() {
        let (ours, theirs) = pair();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"abc").unwrap();
        send_fd(theirs.as_fd(), f.as_fd(), b"h1").unwrap();
        let got = take_handoff(ours.as_fd(), "h1").unwrap();
        assert_eq!(got.metadata().unwrap().len(), 3);
        send_fd(theirs.as_fd(), f.as_fd(), b"").unwrap();
        assert!(take_handoff(ours.as_fd(), "").is_ok(), "an empty id travels as one 0 byte");
    }

    #[test]
    fn refuses_a_missing_mismatched_or_irregular_handoff() {
        let (ours, theirs) = pair();
        // Nothing queued: answered at once (the socket is non-blocking), not waited for.
        assert_eq!(message(take_handoff(ours.as_fd(), "h")), NO_TRANSFER);
        let f = tempfile::tempfile().unwrap();
        for sent in [&b"h2"[..], b"h", b"h1-longer"] {
            send_fd(theirs.as_fd(), f.as_fd(), sent).unwrap();
            let e = message(take_handoff(ours.as_fd(), "h1"));
            assert_eq!(e, "fs sandbox helper transferred a descriptor for another handle", "{sent:?}");
        }
        let (r, _w) = nix::unistd::pipe().unwrap();
        send_fd(theirs.as_fd(), r.as_fd(), b"h").unwrap();
        assert_eq!(message(take_handoff(ours.as_fd(), "h")), "fs sandbox helper transferred a descriptor that is not a regular file");
        nix::unistd::write(&theirs, b"h").unwrap();
        assert_eq!(message(take_handoff(ours.as_fd(), "h")), NO_TRANSFER, "a message without a descriptor");
        drop(theirs);
        assert_eq!(message(take_handoff(ours.as_fd(), "h")), NO_TRANSFER, "the helper's end is closed");
    }

    #[test]
    fn a_failed_open_leaves_nothing_queued() {
        let (ours, theirs) = pair();
        let f = tempfile::tempfile().unwrap();
        send_fd(theirs.as_fd(), f.as_fd(), b"stale").unwrap();
        send_fd(theirs.as_fd(), f.as_fd(), b"stale2").unwrap();
        discard_handoff(ours.as_fd());
        send_fd(theirs.as_fd(), f.as_fd(), b"next").unwrap();
        assert!(take_handoff(ours.as_fd(), "next").is_ok(), "the next open is not matched with a stale message");
    }

    #[test]
    fn helper_arguments() {
        assert!(fd_socket_from_args(&[]).unwrap().is_none());
        let (_ours, theirs) = pair();
        let raw = theirs.into_raw_fd();
        let args = [OsString::from(FD_SOCKET_ARG), OsString::from(raw.to_string())];
        assert_eq!(fd_socket_from_args(&args).unwrap().map(|s| s.as_raw_fd()), Some(raw));
        let bad = [OsString::from(FD_SOCKET_ARG), OsString::from("three")];
        assert!(fd_socket_from_args(&bad).unwrap_err().contains("needs a descriptor number"));
        let closed = [OsString::from(FD_SOCKET_ARG), OsString::from("1000000")];
        assert!(fd_socket_from_args(&closed).unwrap_err().contains("Bad file descriptor"));
        assert!(fd_socket_from_args(&[OsString::from("--other")]).unwrap_err().contains("unexpected arguments"));
    }
}
