//! `process/*` handlers.

use std::ffi::OsString;
use std::time::Duration;

use serde_json::{json, Value};

use super::{to_value, RequestContext};
use crate::env_policy::{build_child_env, server_env};
use crate::process::{decode_chunk, ProcessError, SpawnSpec};
use crate::protocol::types::{
    ProcessReadParams, ProcessSignalParams, ProcessStartParams, ProcessStartResult, ProcessTerminateParams,
    ProcessTerminateResult, ProcessWriteParams, ProcessWriteResult, SandboxType, SignalName,
};
use crate::protocol::RpcError;

const FAMILY: &str = "exec";

pub fn start(ctx: &RequestContext, params: ProcessStartParams) -> Result<Value, RpcError> {
    let session = ctx.gate(FAMILY)?;
    reject_unsupported(&params)?;
    if params.argv.is_empty() {
        return Err(ProcessError::EmptyArgv.into());
    }
    if params.sandbox.is_some() {
        // Until the sandbox lands, a request for one must not silently run unsandboxed.
        return Err(RpcError::invalid_params("sandbox intent cannot be enforced on this executor"));
    }
    let env = build_child_env(server_env(), params.env_policy.as_ref(), &params.env);
    let spec = SpawnSpec {
        program: params.argv[0].clone().into(),
        argv0: OsString::from(params.arg0.as_deref().unwrap_or(&params.argv[0])),
        args: params.argv[1..].iter().map(OsString::from).collect(),
        cwd: params.cwd.0,
        env,
        tty: params.tty,
        pipe_stdin: params.pipe_stdin,
    };
    session.processes.start(&params.process_id, &spec, false, session.sink.clone())?;
    to_value(ProcessStartResult { process_id: params.process_id, sandbox_type: SandboxType::None })
}

/// Fields whose features this executor does not provide: refusing them is safer than
/// running the command without what the client asked for.
fn reject_unsupported(params: &ProcessStartParams) -> Result<(), RpcError> {
    if params.enforce_managed_network || params.managed_network.is_some() {
        return Err(RpcError::invalid_params("managed network enforcement is not supported by this executor"));
    }
    if params.network_proxy.is_some() {
        return Err(RpcError::invalid_params(
            "networkProxy launch is not supported by this executor (capabilities.networkProxyLaunch is false)",
        ));
    }
    if params.shell_snapshot.is_some() {
        return Err(RpcError::invalid_params(
            "shellSnapshot is not supported by this executor (capabilities.shellSnapshotV2 is false)",
        ));
    }
    Ok(())
}

pub async fn read(ctx: &RequestContext, params: ProcessReadParams) -> Result<Value, RpcError> {
    let session = ctx.gate(FAMILY)?;
    let process = session.processes.get(&params.process_id)?;
    let wait = Duration::from_millis(params.wait_ms.unwrap_or(0));
    let result = process.read(params.after_seq.unwrap_or(0), params.max_bytes, wait).await;
    if !wait.is_zero() {
        session.check_attached(ctx.connection)?;
    }
    to_value(result)
}

pub fn write(ctx: &RequestContext, params: ProcessWriteParams) -> Result<Value, RpcError> {
    let session = ctx.gate(FAMILY)?;
    if params.write_id.is_empty() {
        return Err(ProcessError::EmptyWriteId.into());
    }
    let data = decode_chunk(&params.chunk)?;
    let status = session.processes.write(&params.process_id, &params.write_id, data)?;
    to_value(ProcessWriteResult { status })
}

pub fn signal(ctx: &RequestContext, params: ProcessSignalParams) -> Result<Value, RpcError> {
    let session = ctx.gate(FAMILY)?;
    match params.signal {
        SignalName::Interrupt => session.processes.interrupt(&params.process_id),
    }
    Ok(json!({}))
}

pub fn terminate(ctx: &RequestContext, params: ProcessTerminateParams) -> Result<Value, RpcError> {
    let session = ctx.gate(FAMILY)?;
    let running = session.processes.terminate(&params.process_id);
    to_value(ProcessTerminateResult { running })
}
