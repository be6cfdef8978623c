//! Method dispatch: params are decoded first (-32602), then the handshake gate is checked
//! (-32600), then the handler runs. Unknown methods are -32601.

mod errors;
mod process;

pub use process::effective_sandbox;

use std::future::Future;
use std::sync::Arc;

use futures_util::FutureExt as _;
use serde::Serialize;
use serde_json::Value;

use crate::protocol::types::{NoParams, StatusResult};
use crate::protocol::{decode_params, RequestId, RpcError};
use crate::server::Server;
use crate::session::Session;

/// Where the connection stood in the handshake when the request was read.
#[derive(Clone)]
pub enum Phase {
    New,
    AwaitingInitialized,
    Ready(Arc<Session>),
}

/// Everything a handler may use.
#[derive(Clone)]
pub struct RequestContext {
    pub server: Arc<Server>,
    pub connection: u64,
    pub phase: Phase,
    /// The request's id, for handlers that write their response line themselves.
    pub id: RequestId,
}

/// A handler's success.
pub enum Answer {
    /// A result to be serialised into the response.
    Result(Value),
    /// The complete response line, built by the handler (see
    /// [`crate::protocol::envelope::response_head`]).
    Line(Vec<u8>),
}

impl RequestContext {
    /// The session, if the handshake is complete for `family` methods.
    pub fn gate(&self, family: &str) -> Result<&Arc<Session>, RpcError> {
        match &self.phase {
            Phase::Ready(session) => Ok(session),
            Phase::AwaitingInitialized => {
                Err(RpcError::invalid_request(format!("client must send initialized before using {family} methods")))
            }
            Phase::New => Err(RpcError::invalid_request(format!("client must call initialize before using {family} methods"))),
        }
    }
}

fn to_value<T: Serialize>(value: T) -> Result<Value, RpcError> {
    serde_json::to_value(value).map_err(|e| RpcError::internal(e.to_string()))
}

/// Whether `method` must run inline, in the order requests were read: `process/start`
/// reserves its id before any later request of the connection can look it up.
pub fn runs_inline(method: &str) -> bool {
    method == "process/start"
}

/// Runs one request other than `initialize`. A panic in its handler (a bug) fails this
/// request alone, with a message that says so, rather than the connection or the
/// server. (Release builds abort on panic; there the hook's report is all that is left.)
pub async fn dispatch(ctx: RequestContext, method: &str, params: Value) -> Result<Answer, RpcError> {
    guarded(method, dispatch_unguarded(ctx, method, params)).await
}

/// `handler`'s outcome, or an internal error naming the bug if it panicked.
async fn guarded(method: &str, handler: impl Future<Output = Result<Answer, RpcError>>) -> Result<Answer, RpcError> {
    // Unwind safety: what a handler shares (tables, logs) sits behind mutexes that
    // `sync::lock` takes even when poisoned, and each of them stays consistent between
    // statements; a half-done request leaves at worst an entry that its owner can remove.
    match std::panic::AssertUnwindSafe(handler).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(payload) => {
            Err(RpcError::internal(crate::crash::report(&format!("the {method} handler"), &crate::crash::panic_text(&*payload))))
        }
    }
}

async fn dispatch_unguarded(ctx: RequestContext, method: &str, params: Value) -> Result<Answer, RpcError> {
    if crate::fs::is_fs_method(method) {
        let audit = audit_fs_intent(method, &params);
        let outcome = crate::fs::dispatch(&ctx, method, params).await;
        if let Some(mut fields) = audit {
            fields["ok"] = Value::Bool(outcome.is_ok());
            fields["session"] = ctx.gate("fs").map(|s| Value::String(s.id.clone())).unwrap_or(Value::Null);
            crate::audit::record(method, fields);
        }
        return outcome;
    }
    dispatch_value(ctx, method, params).await.map(Answer::Result)
}

async fn dispatch_value(ctx: RequestContext, method: &str, params: Value) -> Result<Value, RpcError> {
    match method {
        "environment/info" => {
            decode_params::<NoParams>(params)?;
            ctx.gate("environment info")?;
            to_value(&ctx.server.environment_info)
        }
        "environment/status" => {
            decode_params::<NoParams>(params)?;
            ctx.gate("environment status")?;
            to_value(StatusResult { status: "ready" })
        }
        "process/start" => {
            let params: crate::protocol::types::ProcessStartParams = decode_params(params)?;
            let audit = crate::audit::enabled().then(|| audit_process_start(&ctx, &params));
            let process_id = params.process_id.clone();
            let outcome = process::start(&ctx, params);
            if let Some(mut fields) = audit {
                fields["ok"] = Value::Bool(outcome.is_ok());
                if let Err(e) = &outcome {
                    fields["error"] = Value::String(e.message.clone());
                }
                let session = ctx.gate("exec").ok();
                fields["pid"] = session.and_then(|s| s.processes.get(&process_id).ok()).map_or(Value::Null, |p| p.pid().into());
                crate::audit::record("process.started", fields);
            }
            outcome
        }
        "process/read" => process::read(&ctx, decode_params(params)?).await,
        "process/write" => process::write(&ctx, decode_params(params)?),
        "process/signal" => process::signal(&ctx, decode_params(params)?).await,
        "process/terminate" => process::terminate(&ctx, decode_params(params)?),
        _ => Err(RpcError::method_not_found(method)),
    }
}

/// The `process.started` audit fields: what runs, where, in which sandbox, with which
/// environment (secret-looking values redacted).
fn audit_process_start(ctx: &RequestContext, params: &crate::protocol::types::ProcessStartParams) -> Value {
    let sandbox = match &params.sandbox {
        Some(context) => serde_json::json!({"permissions": context.permissions}),
        None => match ctx.server.config.default_sandbox {
            Some(profile) => serde_json::json!({"operatorDefault": format!("{profile:?}")}),
            None => Value::Null,
        },
    };
    serde_json::json!({
        "session": ctx.gate("exec").map(|s| Value::String(s.id.clone())).unwrap_or(Value::Null),
        "processId": params.process_id,
        "argv": params.argv,
        "cwd": params.cwd.0.display().to_string(),
        "tty": params.tty,
        "sandbox": sandbox,
        "env": crate::audit::redacted_env(&params.env),
        "envPolicy": params.env_policy.is_some(),
    })
}

/// The audit fields of an fs request that changes files (`None` for reads, or when the
/// audit log is off): the path and, for whole-file writes, the size.
fn audit_fs_intent(method: &str, params: &Value) -> Option<Value> {
    if !crate::audit::enabled() {
        return None;
    }
    let path = |name: &str| params.get(name).and_then(Value::as_str).map(str::to_owned);
    match method {
        "fs/writeFile" => {
            let data = params.get("dataBase64").and_then(Value::as_str).unwrap_or_default();
            Some(serde_json::json!({"path": path("path"), "size": crate::audit::base64_decoded_len(data)}))
        }
        "fs/remove" | "fs/createDirectory" => Some(serde_json::json!({"path": path("path")})),
        "fs/copy" | "fs/rename" => Some(serde_json::json!({"source": path("sourcePath"), "destination": path("destinationPath")})),
        "fs/open" => {
            // Only opens that can write are worth a line.
            let writes = params.get("mode").and_then(Value::as_str).is_some_and(|m| m != "read");
            writes.then(|| serde_json::json!({"path": path("path")}))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f)
    }

    #[test]
    fn a_panicking_handler_fails_its_request_as_a_bug() {
        let outcome = block_on(guarded("fs/walk", async { panic!("deliberate") }));
        let error = outcome.err().expect("an error");
        assert_eq!(error.code, crate::protocol::error::INTERNAL_ERROR);
        assert_eq!(error.message, "the fs/walk handler crashed (this is a bug in executor): deliberate");
        let fine = block_on(guarded("fs/walk", async { Ok(Answer::Result(Value::Null)) }));
        assert!(matches!(fine, Ok(Answer::Result(Value::Null))));
    }
}
