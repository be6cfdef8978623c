//! Method dispatch: params are decoded first (-32602), then the handshake gate is checked
//! (-32600), then the handler runs. Unknown methods are -32601.

mod process;

pub use process::effective_sandbox;

use std::sync::Arc;

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
            Phase::AwaitingInitialized => Err(RpcError::invalid_request(format!(
                "client must send initialized before using {family} methods"
            ))),
            Phase::New => Err(RpcError::invalid_request(format!(
                "client must call initialize before using {family} methods"
            ))),
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

/// Runs one request other than `initialize`.
pub async fn dispatch(ctx: RequestContext, method: &str, params: Value) -> Result<Answer, RpcError> {
    if crate::fs::is_fs_method(method) {
        return crate::fs::dispatch(&ctx, method, params).await;
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
        "process/start" => process::start(&ctx, decode_params(params)?),
        "process/read" => process::read(&ctx, decode_params(params)?).await,
        "process/write" => process::write(&ctx, decode_params(params)?),
        "process/signal" => process::signal(&ctx, decode_params(params)?).await,
        "process/terminate" => process::terminate(&ctx, decode_params(params)?),
        _ => Err(RpcError::method_not_found(method)),
    }
}
