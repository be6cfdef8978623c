//! `fs/*` handlers: decode, gate, apply the operator floor, then hand the operation to
//! the fs service, which runs it directly or in a sandboxed helper (`crate::fs`).

use std::sync::Arc;

use fs_helper::ops::{self, Operation};
use fs_helper::protocol::OpenParams;
use serde_json::{json, Value};

use super::RequestContext;
use crate::fs::{blocking, is_rpc_method, read_file_answer, result_answer, sandboxed, watch, FileHandles, Reservation};
use crate::limits::Use;
use crate::protocol::envelope::Answer;
use crate::protocol::types::{CloseParams, ReadBlockParams, WatchMissingParams, WatchMissingResult, WriteBlockParams};
use crate::protocol::{decode_params, RpcError};
use crate::sandbox::FileSystemSandboxContext;

const FAMILY: &str = "filesystem";

/// Methods served here that are not fs-helper operations.
const EXECUTOR_ONLY_METHODS: [&str; 4] = ["fs/readBlock", "fs/writeBlock", "fs/close", "fs/watchMissing"];

/// Whether `method` is served by [`dispatch`].
pub fn is_fs_method(method: &str) -> bool {
    EXECUTOR_ONLY_METHODS.contains(&method) || Operation::from_name(method).is_some_and(is_rpc_method)
}

/// Runs an `fs/*` method (one for which [`is_fs_method`] holds).
pub async fn dispatch(ctx: &RequestContext, method: &str, mut params: Value) -> Result<Answer, RpcError> {
    let outcome = match method {
        "fs/readBlock" => read_block(ctx, decode_params(params)).await,
        "fs/writeBlock" => write_block(ctx, decode_params(params)).await,
        "fs/close" => close(ctx, decode_params(params)),
        "fs/watchMissing" => watch_missing(ctx, decode_params(params)).await,
        _ => {
            let Some(op) = Operation::from_name(method).filter(|op| is_rpc_method(*op)) else {
                return Err(RpcError::method_not_found(method));
            };
            let sandbox = take_sandbox(&mut params);
            return run(ctx, op, params, sandbox).await;
        }
    };
    outcome.map(Answer::Result)
}

/// Removes the `sandbox` member: it selects where the operation runs, not what it does.
fn take_sandbox(params: &mut Value) -> Option<Value> {
    params.as_object_mut().and_then(|m| m.remove("sandbox")).filter(|s| !s.is_null())
}

async fn run(ctx: &RequestContext, op: Operation, params: Value, sandbox: Option<Value>) -> Result<Answer, RpcError> {
    let session = match ctx.gate(FAMILY) {
        Ok(session) => session.clone(),
        Err(gate) => return Err(validate(op, params).err().unwrap_or(gate)),
    };
    let server = &ctx.server;
    let server_cwd = std::env::current_dir().map_err(|e| RpcError::internal(format!("cannot read the server cwd: {e}")))?;
    let requested = sandbox.map(decode_params::<FileSystemSandboxContext>).transpose()?;
    if let Some(policy) = server.config.floor.apply(requested, &server_cwd)? {
        let plan = sandboxed::plan(&policy)?;
        if !plan.direct {
            if op == Operation::Open {
                return open_sandboxed(ctx, &session.files, &policy, plan, &server_cwd, params).await.map(Answer::Result);
            }
            if op == Operation::ReadFile {
                if let Some(read) = read_file_sandboxed(ctx, &policy, &plan, &server_cwd, &params).await {
                    return read;
                }
            }
            let helper = sandboxed::HelperRequest { op, params, id: &ctx.id };
            return Ok(server.fs_helpers.run(&server.config.launcher, &policy, plan, &server_cwd, helper).await?);
        }
    }
    match op {
        Operation::Open => open(ctx, &session.files, params).await.map(Answer::Result),
        Operation::ReadFile => Ok(read_file_answer(ctx.id.clone(), move || ops::open_read_file(params)).await?),
        _ => Ok(result_answer(ctx.id.clone(), op, params).await?),
    }
}

/// Handle id of the descriptor hand-off that serves a sandboxed `fs/readFile`.
const READ_FILE_HANDOFF: &str = "fs/readFile";

/// `fs/readFile` under a sandbox, served like a sandboxed `fs/open`: the helper opens the
/// file inside the sandbox (so the profile decides) and hands the descriptor over; the
/// executor then encodes it straight into the response line, as for a direct read, so
/// the data crosses no pipe and no JSON parser. `None` for `followSymlinks: false`, whose
/// checks only the helper's own readFile makes.
async fn read_file_sandboxed(
    ctx: &RequestContext,
    policy: &FileSystemSandboxContext,
    plan: &crate::sandbox::SandboxPlan,
    server_cwd: &std::path::Path,
    params: &Value,
) -> Option<Result<Answer, RpcError>> {
    let read: fs_helper::protocol::ReadFileParams = match decode_params(params.clone()) {
        Ok(read) => read,
        Err(e) => return Some(Err(e)),
    };
    if read.follow_symlinks == Some(false) {
        return None;
    }
    let open = json!({"handleId": READ_FILE_HANDOFF, "path": params.get("path"), "mode": "read"});
    let server = &ctx.server;
    let opened = server.fs_helpers.open(&server.config.launcher, policy, plan.clone(), server_cwd, open, READ_FILE_HANDOFF).await;
    let file = match opened {
        Ok(file) => file,
        Err(e) => return Some(Err(e.into())),
    };
    Some(read_file_answer(ctx.id.clone(), move || ops::FileToRead::from_file(file, read.path.as_path())).await.map_err(RpcError::from))
}

/// Decodes params only to report a params error ahead of the handshake gate (§17.4).
fn validate(op: Operation, params: Value) -> Result<(), RpcError> {
    use fs_helper::protocol as p;
    match op {
        Operation::ReadFile => decode_params::<p::ReadFileParams>(params).map(drop),
        Operation::WriteFile => decode_params::<p::WriteFileParams>(params).map(drop),
        Operation::CreateDirectory => decode_params::<p::CreateDirectoryParams>(params).map(drop),
        Operation::GetMetadata => decode_params::<p::GetMetadataParams>(params).map(drop),
        Operation::Canonicalize => decode_params::<p::CanonicalizeParams>(params).map(drop),
        Operation::ReadDirectory => decode_params::<p::ReadDirectoryParams>(params).map(drop),
        Operation::Walk => decode_params::<p::WalkParams>(params).map(drop),
        Operation::Remove => decode_params::<p::RemoveParams>(params).map(drop),
        Operation::Copy => decode_params::<p::CopyParams>(params).map(drop),
        Operation::Open => decode_params::<OpenParams>(params).map(drop),
        Operation::LoadDiscoveries | Operation::DiscoverV1 => Ok(()),
    }
}

async fn open(ctx: &RequestContext, handles: &Arc<FileHandles>, params: Value) -> Result<Value, RpcError> {
    let params: OpenParams = decode_params(params)?;
    let reservation = reserve_handle(ctx, handles, &params.handle_id)?;
    let handle_id = params.handle_id.clone();
    let file = blocking(move || ops::open_file(&params)).await?;
    Ok(handles.insert(reservation, handle_id, file)?)
}

/// A place for a new handle: under the session's cap, and only while the executor keeps
/// its descriptor reserve.
fn reserve_handle<'a>(ctx: &RequestContext, handles: &'a FileHandles, id: &str) -> Result<Reservation<'a>, RpcError> {
    let reservation = handles.reserve(id)?;
    ctx.server.descriptors.check(Use::FsHandle)?;
    Ok(reservation)
}

/// `fs/open` under a restricted profile: the helper opens the file inside the sandbox
/// and hands the descriptor over; from then on the handle is served like a direct one.
async fn open_sandboxed(
    ctx: &RequestContext,
    handles: &Arc<FileHandles>,
    policy: &FileSystemSandboxContext,
    plan: crate::sandbox::SandboxPlan,
    server_cwd: &std::path::Path,
    params: Value,
) -> Result<Value, RpcError> {
    let handle_id = decode_params::<OpenParams>(params.clone())?.handle_id;
    let reservation = reserve_handle(ctx, handles, &handle_id)?;
    if handle_id.len() > sandboxed::MAX_HANDOFF_ID_BYTES {
        return Err(RpcError::invalid_request(format!(
            "file handle ids of a sandboxed fs/open are limited to {} bytes",
            sandboxed::MAX_HANDOFF_ID_BYTES
        )));
    }
    let server = &ctx.server;
    let file = server.fs_helpers.open(&server.config.launcher, policy, plan, server_cwd, params, &handle_id).await?;
    Ok(handles.insert(reservation, handle_id, file)?)
}

async fn read_block(ctx: &RequestContext, params: Result<ReadBlockParams, RpcError>) -> Result<Value, RpcError> {
    let params = params?;
    let file = ctx.gate(FAMILY)?.files.get(&params.handle_id)?;
    let result = blocking(move || ops::read_block(&file, params.offset, params.len)).await?;
    serde_json::to_value(result).map_err(|e| RpcError::internal(e.to_string()))
}

async fn write_block(ctx: &RequestContext, params: Result<WriteBlockParams, RpcError>) -> Result<Value, RpcError> {
    let params = params?;
    let file = ctx.gate(FAMILY)?.files.get(&params.handle_id)?;
    blocking(move || ops::write_block(&file, params.offset, &params.chunk)).await?;
    Ok(json!({}))
}

fn close(ctx: &RequestContext, params: Result<CloseParams, RpcError>) -> Result<Value, RpcError> {
    let params = params?;
    ctx.gate(FAMILY)?.files.remove(&params.handle_id);
    Ok(json!({}))
}

/// `fs/watchMissing`. Params are decoded by the caller so that their errors come first.
pub async fn watch_missing(ctx: &RequestContext, params: Result<WatchMissingParams, RpcError>) -> Result<Value, RpcError> {
    let params = params?;
    let session = ctx.gate(FAMILY)?.clone();
    // Same operator floor as the other fs methods: under --require-sandbox without a
    // default, a request that runs with the executor's own rights is refused.
    let server_cwd = std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from("/"));
    ctx.server.config.floor.apply(None, &server_cwd)?;
    if params.missing.len() > watch::MAX_PATHS_PER_WATCH {
        return Err(watch::WatchError::TooManyPaths(params.missing.len()).into());
    }
    let paths: Vec<std::path::PathBuf> = params.missing.into_iter().map(|uri| uri.0).collect();
    let runtime = tokio::runtime::Handle::current();
    let watch_id = params.watch_id;
    let watching = tokio::task::spawn_blocking(move || session.watches.watch(watch_id, paths, session.sink.clone(), runtime))
        .await
        .map_err(|e| RpcError::internal(format!("fs/watchMissing failed: {e}")))??;
    serde_json::to_value(WatchMissingResult { watching }).map_err(|e| RpcError::internal(e.to_string()))
}
