//! Method dispatch: params are decoded first (-32602), then the handshake gate is checked
//! (-32600), then the handler runs. Unknown methods are -32601.

mod audit;
mod errors;
mod fs;
mod http;
mod process;

use std::future::Future;
use std::sync::Arc;

use futures_util::FutureExt as _;
use serde::Serialize;
use serde_json::Value;

use crate::protocol::envelope::Answer;
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
    /// The connection's queue of lines, for handlers that answer and then go on sending
    /// notifications (a streamed `http/request`).
    pub outbound: crate::notify::Outbound,
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
    if fs::is_fs_method(method) {
        let intent = audit::fs_intent(method, &params);
        let outcome = fs::dispatch(&ctx, method, params).await;
        if let Some(fields) = intent {
            audit::fs_done(&ctx, method, fields, outcome.is_ok());
        }
        return outcome;
    }
    if method == "http/request" {
        return http::request(&ctx, decode_params(params)?).await;
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
            let intent = crate::audit::enabled().then(|| audit::process_start(&ctx, &params));
            let process_id = params.process_id.clone();
            let outcome = process::start(&ctx, params);
            if let Some(fields) = intent {
                audit::process_started(&ctx, &process_id, fields, &outcome);
            }
            outcome
        }
        "process/read" => process::read(&ctx, decode_params(params)?).await,
        "process/write" => process::write(&ctx, decode_params(params)?),
        "process/signal" => process::signal(&ctx, decode_params(params)?).await,
        "process/terminate" => process::terminate(&ctx, decode_params(params)?),
        "sandbox/report" => process::sandbox_report(&ctx, decode_params(params)?),
        _ => Err(RpcError::method_not_found(method)),
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
