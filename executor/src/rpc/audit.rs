//! What the handlers tell the audit log (`crate::audit`): the fields of a request that
//! starts a process or changes files, gathered before it runs and completed after.

use serde_json::Value;

use super::RequestContext;
use crate::http::{HttpError, Outcome};
use crate::protocol::http::HttpRequestParams;
use crate::protocol::types::ProcessStartParams;
use crate::protocol::RpcError;

/// The `process.started` audit fields: what runs, where, in which sandbox, with which
/// environment (secret-looking values redacted).
pub(super) fn process_start(ctx: &RequestContext, params: &ProcessStartParams) -> Value {
    let sandbox = match &params.sandbox {
        Some(context) => serde_json::json!({"permissions": context.permissions}),
        None => match ctx.server.config.floor.default_sandbox {
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
pub(super) fn fs_intent(method: &str, params: &Value) -> Option<Value> {
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

/// Completes and records a `process.started` line once the start has been tried.
pub(super) fn process_started(ctx: &RequestContext, process_id: &str, mut fields: Value, outcome: &Result<Value, RpcError>) {
    fields["ok"] = Value::Bool(outcome.is_ok());
    if let Err(e) = outcome {
        fields["error"] = Value::String(e.message.clone());
    }
    let session = ctx.gate("exec").ok();
    fields["pid"] = session.and_then(|s| s.processes.get(process_id).ok()).map_or(Value::Null, |p| p.pid().into());
    crate::audit::record("process.started", fields);
}

/// Completes and records the line of an fs request that changes files.
pub(super) fn fs_done(ctx: &RequestContext, method: &str, mut fields: Value, ok: bool) {
    fields["ok"] = Value::Bool(ok);
    fields["session"] = ctx.gate("fs").map(|s| Value::String(s.id.clone())).unwrap_or(Value::Null);
    crate::audit::record(method, fields);
}

/// The `http.request` audit fields (`None` when the audit log is off): the method and the
/// origin only. The path, query and headers stay out, since they may carry credentials.
pub(super) fn http_intent(session: &str, params: &HttpRequestParams) -> Option<Value> {
    if !crate::audit::enabled() {
        return None;
    }
    let url = url::Url::parse(&params.url).ok();
    Some(serde_json::json!({
        "session": session,
        "method": params.method,
        "scheme": url.as_ref().map(|u| u.scheme().to_owned()),
        "host": url.as_ref().and_then(|u| u.host_str().map(str::to_owned)),
        "port": url.as_ref().and_then(url::Url::port_or_known_default),
        "streamed": params.stream_response,
    }))
}

/// Completes and records an `http.request` line once the response head (or the failure)
/// is known; a streamed body's later end is not part of it.
pub(super) fn http_done(mut fields: Value, outcome: &Result<Outcome, HttpError>) {
    match outcome {
        Ok(Outcome::Buffered(result)) => fields["status"] = result.status.into(),
        Ok(Outcome::Streaming { head, .. }) => fields["status"] = head.status.into(),
        Err(e) => fields["error"] = Value::String(e.kind().to_owned()),
    }
    crate::audit::record("http.request", fields);
}
