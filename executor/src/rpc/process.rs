//! `process/*` handlers.

use std::os::fd::AsRawFd;
use std::time::Duration;

use serde_json::{json, Value};

use super::{to_value, RequestContext};
use crate::child_env::{build_child_env, server_env};
use crate::limits::Use;
use crate::process::{decode_chunk, info_pipe, ProcessError, SpawnSpec};
use crate::protocol::types::{
    ExecutorLimits, ProcessReadParams, ProcessSignalParams, ProcessStartParams, ProcessStartResult, ProcessTerminateParams,
    ProcessTerminateResult, ProcessWriteParams, ProcessWriteResult, SandboxReportParams, SandboxType, SignalName,
};
use crate::protocol::RpcError;
use crate::sandbox;

const FAMILY: &str = "exec";

pub fn start(ctx: &RequestContext, params: ProcessStartParams) -> Result<Value, RpcError> {
    let session = ctx.gate(FAMILY)?;
    reject_unsupported(&params)?;
    if params.argv.is_empty() {
        return Err(ProcessError::EmptyArgv.into());
    }
    ctx.server.descriptors.check(Use::Process)?;
    let cwd = params.cwd.0;
    let sandbox = ctx.server.config.floor.apply(params.sandbox, &cwd)?;
    // The operator's limits (issue 17), tightened by the request's `executorLimits`.
    let operator = &ctx.server.config.launcher;
    let limits = tree_limits(&operator.tree_limits, params.executor_limits)?;
    // A request's process limit also reaches the inner stage's RLIMIT_NPROC (what holds
    // where no pids cgroup is usable).
    let launcher = match limits.max_procs == operator.max_procs {
        true => std::borrow::Cow::Borrowed(operator),
        false => std::borrow::Cow::Owned(sandbox::launcher::LauncherConfig { max_procs: limits.max_procs, ..operator.clone() }),
    };
    // The inner stage reports what its seccomp filter refused on this pipe (sandbox/report).
    let refusals = match &sandbox {
        Some(_) => Some(info_pipe().map_err(ProcessError::Spawn)?),
        None => None,
    };
    let (mut launch, sandboxed) = match &sandbox {
        None => (sandbox::LaunchSpec::direct(&params.argv, params.arg0.as_deref()), false),
        Some(policy) => {
            let handover = sandbox::Handover { keep_fds: &[], refusals_fd: refusals.as_ref().map(|(_, write)| write.as_raw_fd()) };
            let prepared = sandbox::prepare(&launcher, policy, Some(&cwd), &cwd, &params.argv, params.arg0.as_deref(), handover)
                .map_err(ProcessError::from)?;
            (prepared.launch, prepared.sandboxed)
        }
    };
    let (init_report, refusals, inherited) = if sandboxed {
        let (read, write) = info_pipe().map_err(ProcessError::Spawn)?;
        launch.report_child_pid_on(write.as_raw_fd());
        let mut inherited = vec![write];
        let refusals = refusals.map(|(refusals_read, refusals_write)| {
            inherited.push(refusals_write);
            refusals_read
        });
        (Some(read), refusals, inherited)
    } else {
        (None, None, Vec::new())
    };
    // Every sandboxed tree gets its limits in a cgroup made now, before the child exists.
    let limited = sandboxed || operator.limit_unsandboxed;
    if !limited && params.executor_limits.is_some() {
        return Err(RpcError::invalid_params(
            "executorLimits apply to sandboxed processes only (the operator did not set --limit-unsandboxed); this one runs without a sandbox",
        ));
    }
    let limiter = if limited {
        sandbox::cgroup::TreeLimiter::new(&limits).map_err(|e| ProcessError::from(sandbox::SandboxError::from(e)))?.map(std::sync::Arc::new)
    } else {
        None
    };
    let env = build_child_env(server_env(), params.env_policy.as_ref(), &params.env)?;
    let spec = SpawnSpec {
        program: launch.program,
        argv0: launch.argv0,
        args: launch.args,
        cwd,
        env,
        tty: params.tty,
        pipe_stdin: params.pipe_stdin,
        inherited,
        limiter,
    };
    session.processes.start(&params.process_id, spec, sandboxed, init_report, refusals, session.sink.clone())?;
    let sandbox_type = if sandboxed { SandboxType::LinuxSeccomp } else { SandboxType::None };
    to_value(ProcessStartResult { process_id: params.process_id, sandbox_type })
}

/// The operator's limits, tightened by the request's: a request can lower a limit or set
/// one the operator left open, never raise one.
fn tree_limits(operator: &sandbox::cgroup::TreeLimits, asked: Option<ExecutorLimits>) -> Result<sandbox::cgroup::TreeLimits, RpcError> {
    let Some(asked) = asked else { return Ok(*operator) };
    let zero = [asked.memory_bytes, asked.max_procs, asked.cpu_percent.map(u64::from), asked.wall_seconds].contains(&Some(0));
    if zero {
        return Err(RpcError::invalid_params("executorLimits: every limit must be above 0 (leave a member out for the operator's)"));
    }
    let asked = sandbox::cgroup::TreeLimits {
        memory_bytes: asked.memory_bytes,
        max_procs: asked.max_procs,
        cpu_percent: asked.cpu_percent,
        wall_seconds: asked.wall_seconds,
    };
    Ok(asked.capped_by(operator))
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
        return Err(RpcError::invalid_params("shellSnapshot is not supported by this executor (capabilities.shellSnapshotV2 is false)"));
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

pub async fn signal(ctx: &RequestContext, params: ProcessSignalParams) -> Result<Value, RpcError> {
    let session = ctx.gate(FAMILY)?;
    match params.signal {
        SignalName::Interrupt => session.processes.interrupt(&params.process_id).await,
    }
    Ok(json!({}))
}

pub fn terminate(ctx: &RequestContext, params: ProcessTerminateParams) -> Result<Value, RpcError> {
    let session = ctx.gate(FAMILY)?;
    let running = session.processes.terminate(&params.process_id);
    to_value(ProcessTerminateResult { running })
}

/// `sandbox/report {processId}` (an executor method): what the sandbox refused for one
/// process of the session, until its retention ends.
pub fn sandbox_report(ctx: &RequestContext, params: SandboxReportParams) -> Result<Value, RpcError> {
    let session = ctx.gate(FAMILY)?;
    let process = session.processes.get(&params.process_id)?;
    to_value(process.sandbox_report())
}
