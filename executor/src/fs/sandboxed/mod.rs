//! fs requests under a restricted profile: served by the executor binary running as the
//! fs-helper inside the same bwrap + inner-stage sandbox a process would get (network
//! always off, empty environment). Helpers stay warm, one per distinct resolved plan, so
//! a request costs a round trip over a pipe rather than a sandbox start. Replies are
//! read by `reply` (an ok `fs/readFile` is spliced into the response unparsed), file
//! descriptors handed over by `handoff`.
//!
//! The plan, not the policy text, is the key: every request is planned anew (as every
//! process start is), so a protected name such as `.git` or a `none` path that appears
//! on the host after a helper started gets a helper whose mounts cover it, instead of
//! being served by a helper whose view predates it.
//!
//! The plan is not enough: a helper's mounts hold on to the directories that were at
//! the plan's paths when it started. Each helper carries the [`PlanIdentity`] it was
//! made from; before and after every request the host is compared with it, and a helper
//! whose view no longer matches is retired (docs/security-model.md "Fresh view").
//!
//! `fs/open` is opened by the helper, inside the sandbox, so the policy at open time
//! bounds the descriptor; the helper passes it back over a `SOCK_SEQPACKET` pair (its
//! end inherited at the number it has in the executor, named by `--fd-socket N`) and
//! block reads and writes then run in the executor on that descriptor, without the
//! helper.

mod handoff;
mod reply;

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fs_helper::helper::READ_FILE_OK_HEAD;
use fs_helper::ops::Operation;
use serde_json::{json, Value};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::fds::InheritedFds;
use crate::fs::error::helper_failed;
use crate::fs::FsServiceError;
use crate::protocol::envelope::response_head;
use crate::protocol::envelope::Answer;
use crate::protocol::RequestId;
use crate::sandbox::launcher::{self, LauncherConfig};
use crate::sandbox::plan_identity::PlanIdentity;
use crate::sandbox::policy::SandboxPlan;
use crate::sandbox::{self, FileSystemSandboxContext};
use crate::sync::lock;

/// argv[1] that makes the executor binary serve the helper protocol on stdin/stdout.
pub const HELPER_ARG1: &str = "--run-as-fs-helper";
/// Helper argument naming the descriptor of its end of the hand-off socket.
pub const FD_SOCKET_ARG: &str = "--fd-socket";
/// Longest handleId a sandboxed `fs/open` accepts. The id travels as the hand-off
/// message, which must fit one socket message (the socket's send buffer, ~200 KiB by
/// default); refusing before the helper runs keeps `replace` from truncating a file
/// whose handle could not be passed back.
pub const MAX_HANDOFF_ID_BYTES: usize = 4096;
use handoff::{discard_handoff, handoff_socketpair, take_handoff, NO_TRANSFER};
use reply::{parse_reply, read_rest, read_start, splice_read_file};

/// Warm helpers kept at most; the least recently used one is stopped beyond this.
const MAX_HELPERS: usize = 8;
/// A helper unused this long is stopped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Buffer for the helper's replies, and the pipe size asked for: a readFile reply is
/// the whole file in base64, and the default 64 KiB pipe costs a context switch per
/// 64 KiB.
const REPLY_BUFFER: usize = 1024 * 1024;

struct Helper {
    /// The host as the helper's mounts and Landlock rules were made from; taken before
    /// it started, so a change during the start shows as well.
    view: PlanIdentity,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Our end of the hand-off socket, non-blocking: a descriptor is queued before the
    /// reply line that announces it, so it is never waited for.
    fd_socket: OwnedFd,
    /// Its stderr, passed on to ours: what it said before it died goes into the error.
    stderr: crate::crash::StderrWatch,
}

/// One operation for a helper.
pub struct HelperRequest<'a> {
    pub op: Operation,
    pub params: Value,
    /// The RPC request's id: an ok readFile reply becomes the response line directly.
    pub id: &'a RequestId,
}

/// What is sent to a helper; `handoff`: the handleId an `fs/open` descriptor must carry.
struct Request<'a> {
    op: Operation,
    params: Value,
    id: Option<&'a RequestId>,
    handoff: Option<&'a str>,
    /// Changes no file: safe to send again.
    idempotent: bool,
}

impl Request<'_> {
    /// The same request, to send once more.
    fn again(&self) -> Self {
        Request { params: self.params.clone(), ..*self }
    }
}

/// A helper's ok answer, with the file it handed over for `fs/open`.
struct Reply {
    answer: Answer,
    file: Option<File>,
}

/// Which warm helper serves a request: one per resolved plan and cwd. The launcher is
/// the server's and the same for all.
#[derive(Clone, PartialEq, Eq, Hash)]
struct HelperKey {
    cwd: PathBuf,
    plan: SandboxPlan,
}

struct Slot {
    helper: Arc<tokio::sync::Mutex<Option<Helper>>>,
    last_used: Instant,
}

/// Warm helpers by resolved plan and cwd.
#[derive(Default)]
pub struct HelperPool {
    slots: Mutex<HashMap<HelperKey, Slot>>,
}

/// The plan for `ctx` as of now; `plan.direct` means no sandbox at all (then the
/// executor serves the request itself). Entries that depend on a cwd need the context's
/// own (-32602 without, as the reference answers): an fs request has no other cwd.
pub fn plan(ctx: &FileSystemSandboxContext) -> Result<SandboxPlan, FsServiceError> {
    Ok(sandbox::policy::resolve(ctx, None)?)
}

impl HelperPool {
    /// Runs `request` inside a helper for `plan` (from [`plan`] for `ctx`).
    pub async fn run(
        &self,
        launcher: &LauncherConfig,
        ctx: &FileSystemSandboxContext,
        plan: SandboxPlan,
        server_cwd: &Path,
        request: HelperRequest<'_>,
    ) -> Result<Answer, FsServiceError> {
        let idempotent = request.op.is_read_only();
        let request = Request { op: request.op, params: request.params, id: Some(request.id), handoff: None, idempotent };
        Ok(self.request(launcher, ctx, plan, server_cwd, request).await?.answer)
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
    ) -> Result<File, FsServiceError> {
        // `read` is the default mode; `replace` truncates.
        let idempotent = matches!(params.get("mode").and_then(Value::as_str), None | Some("read"));
        let request = Request { op: Operation::Open, params, id: None, handoff: Some(handle_id), idempotent };
        let reply = self.request(launcher, ctx, plan, server_cwd, request).await?;
        reply.file.ok_or_else(|| FsServiceError::HelperFailed(NO_TRANSFER.into()))
    }

    async fn request(
        &self,
        launcher: &LauncherConfig,
        ctx: &FileSystemSandboxContext,
        mut plan: SandboxPlan,
        server_cwd: &Path,
        request: Request<'_>,
    ) -> Result<Reply, FsServiceError> {
        // The helper never needs the network, whatever the client's profile allows.
        plan.network = false;
        let cwd: PathBuf = ctx.cwd.as_ref().map(|c| c.0.clone()).unwrap_or_else(|| server_cwd.to_path_buf());
        let slot = self.slot(HelperKey { cwd: cwd.clone(), plan: plan.clone() });
        let mut guard = slot.lock().await;
        // A read whose view changed under it is answered again by a fresh helper; a
        // change that keeps coming is reported rather than chased.
        let (op, idempotent) = (request.op, request.idempotent);
        let mut spare = idempotent.then(|| request.again());
        let mut current = request;
        loop {
            let helper = fresh_helper(&mut guard, launcher, &plan, &cwd)?;
            let outcome = match exchange(helper, current).await {
                Err(failure) => Err(with_last_words(helper, failure).await),
                done => done,
            };
            let changed = helper.view.changed_in(&PlanIdentity::of(&plan, &cwd));
            if outcome.is_err() || changed.is_some() {
                retire(&mut guard);
            }
            let reply = outcome?;
            let Some(path) = changed else { return reply };
            match spare.take() {
                Some(next) => current = next,
                None => return Err(FsServiceError::ChangedDuring { op: op.name(), path, idempotent }),
            }
        }
    }

    fn slot(&self, key: HelperKey) -> Arc<tokio::sync::Mutex<Option<Helper>>> {
        let mut slots = lock(&self.slots);
        let now = Instant::now();
        slots.retain(|_, s| now.duration_since(s.last_used) < IDLE_TIMEOUT);
        if !slots.contains_key(&key) && slots.len() >= MAX_HELPERS {
            let oldest = slots.iter().min_by_key(|(_, s)| s.last_used).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                slots.remove(&oldest);
            }
        }
        let slot = slots.entry(key).or_insert_with(|| Slot { helper: Arc::new(tokio::sync::Mutex::new(None)), last_used: now });
        slot.last_used = now;
        slot.helper.clone()
    }
}

/// The slot's helper, started anew unless the host still matches the view it was made
/// from (the check is a few `statx` calls).
fn fresh_helper<'g>(
    slot: &'g mut Option<Helper>,
    launcher: &LauncherConfig,
    plan: &SandboxPlan,
    cwd: &Path,
) -> Result<&'g mut Helper, FsServiceError> {
    let now = PlanIdentity::of(plan, cwd);
    if let Some(helper) = slot.as_ref() {
        if let Some(path) = helper.view.changed_in(&now) {
            tracing::debug!(path = %path.display(), "fs sandbox helper retired: the host changed a path of its plan");
            retire(slot);
        }
    }
    if slot.is_none() {
        *slot = Some(spawn_helper(launcher, plan, cwd, now)?);
    }
    slot.as_mut().ok_or_else(|| FsServiceError::Internal("fs sandbox helper is not running".into()))
}

/// `failure` of a broken helper, with what the helper said last: its crash report when
/// it panicked. Killed first, so that its stderr ends and the wait is short.
async fn with_last_words(helper: &mut Helper, failure: FsServiceError) -> FsServiceError {
    let _ = helper.child.start_kill();
    FsServiceError::HelperFailed(crate::crash::explain(&failure.to_string(), helper.stderr.last_words().await))
}

fn retire(slot: &mut Option<Helper>) {
    if let Some(mut old) = slot.take() {
        let _ = old.child.start_kill();
    }
}

fn spawn_helper(config: &LauncherConfig, plan: &SandboxPlan, cwd: &Path, view: PlanIdentity) -> Result<Helper, FsServiceError> {
    let internal = FsServiceError::Internal;
    let exe =
        std::env::current_exe().and_then(std::fs::canonicalize).map_err(|e| internal(format!("cannot locate the executor binary: {e}")))?;
    let (ours, theirs) = handoff_socketpair().map_err(|e| internal(format!("cannot create the fs helper socket: {e}")))?;
    let inherited = InheritedFds::new(vec![theirs]);
    let numbers = inherited.numbers();
    let helper_fd: RawFd = numbers.first().copied().unwrap_or(-1);
    let argv = [exe.to_string_lossy().into_owned(), HELPER_ARG1.to_owned(), FD_SOCKET_ARG.to_owned(), helper_fd.to_string()];
    let launcher = launcher::select_for(config, cwd, &plan.writable_roots).map_err(sandbox::SandboxError::from)?;
    // The inner stage makes every descriptor above stderr close-on-exec but these.
    let handover = sandbox::Handover { keep_fds: &numbers, refusals_fd: None };
    let launch = sandbox::launch_for_plan(&launcher, plan, cwd, &argv, None, handover, config)?;
    let mut command = Command::new(&launch.program);
    command
        .arg0(&launch.argv0)
        .args(&launch.args)
        .current_dir(cwd)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    inherited.install(&mut command);
    let spawned = command.spawn();
    // Closes our copy of the helper's end, so only the helper holds it.
    drop(command);
    let mut child = spawned.map_err(|e| internal(format!("cannot start the fs sandbox helper: {e}")))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(internal("fs sandbox helper pipes were not created".into()));
    };
    crate::fds::enlarge_pipe(&stdout, REPLY_BUFFER);
    let stderr = crate::crash::StderrWatch::spawn(child.stderr.take());
    Ok(Helper { view, child, stdin, stdout: BufReader::with_capacity(REPLY_BUFFER, stdout), fd_socket: ours, stderr })
}

/// One request/reply. `Err` means the helper itself failed (it is then discarded);
/// `Ok(Err(..))` is the operation's own error.
async fn exchange(helper: &mut Helper, request: Request<'_>) -> Result<Result<Reply, FsServiceError>, FsServiceError> {
    let Request { op, params, id, handoff, .. } = request;
    let mut line =
        serde_json::to_vec(&json!({"operation": op.name(), "params": params})).map_err(|e| FsServiceError::Internal(e.to_string()))?;
    line.push(b'\n');
    helper.stdin.write_all(&line).await.map_err(helper_failed)?;
    helper.stdin.flush().await.map_err(helper_failed)?;
    drop(line);
    let start = read_start(&mut helper.stdout, READ_FILE_OK_HEAD.len()).await?;
    if start.is_empty() {
        let ended = helper.child.try_wait().ok().flatten().map(|s| format!("it exited ({s})"));
        return Err(helper_failed(ended.unwrap_or_else(|| "it closed its output".into())));
    }
    if let (Operation::ReadFile, Some(id)) = (op, id) {
        if start == READ_FILE_OK_HEAD {
            // The data goes from the helper's pipe into the response line untouched.
            let mut line = response_head(id);
            let head_len = line.len();
            read_rest(&mut helper.stdout, &mut line).await?;
            let line = splice_read_file(line, head_len)?;
            return Ok(Ok(Reply { answer: Answer::Line(line), file: None }));
        }
    }
    let mut reply = start;
    read_rest(&mut helper.stdout, &mut reply).await?;
    match parse_reply(&reply)? {
        Ok(response) => {
            let file = handoff.map(|handle| take_handoff(helper.fd_socket.as_fd(), handle)).transpose()?;
            Ok(Ok(Reply { answer: Answer::Result(response), file }))
        }
        Err(e) => {
            if handoff.is_some() {
                discard_handoff(helper.fd_socket.as_fd());
            }
            Ok(Err(e))
        }
    }
}

/// The helper process's entry point (`args`: what follows `--run-as-fs-helper`): serve
/// requests on stdin/stdout until EOF.
pub fn helper_main(args: &[OsString]) -> i32 {
    let served = fd_socket_from_args(args).map_err(std::io::Error::other).and_then(|fd_socket| {
        let (stdin, stdout) = raw_stdio()?;
        let reader = std::io::BufReader::with_capacity(REPLY_BUFFER, stdin);
        let writer = std::io::BufWriter::with_capacity(64 * 1024, stdout);
        fs_helper::helper::serve(reader, writer, fd_socket)
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
fn raw_stdio() -> std::io::Result<(File, File)> {
    let stdin = std::io::stdin().as_fd().try_clone_to_owned()?;
    let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
    Ok((stdin.into(), stdout.into()))
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
    use std::os::fd::{AsRawFd, IntoRawFd};

    #[test]
    fn helper_arguments() {
        assert!(fd_socket_from_args(&[]).unwrap().is_none());
        let (_ours, theirs) = handoff_socketpair().unwrap();
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
