//! `http/request`: gated like every method, then handed to the HTTP service. A streamed
//! response is answered from here, before its first body delta can be queued.

use crate::http::{stream, Outcome};
use crate::protocol::envelope::response_line;
use crate::protocol::http::HttpRequestParams;
use crate::protocol::RpcError;

use super::{to_value, Answer, RequestContext};

pub async fn request(ctx: &RequestContext, params: HttpRequestParams) -> Result<Answer, RpcError> {
    let session = ctx.gate("http")?.id.clone();
    let audit = super::audit::http_intent(&session, &params);
    let outcome = ctx.server.http.request(ctx.connection, params).await;
    if let Some(fields) = audit {
        super::audit::http_done(fields, &outcome);
    }
    match outcome? {
        Outcome::Buffered(result) => Ok(Answer::Result(to_value(result)?)),
        Outcome::Streaming { head, body, ticket } => {
            // The result goes into the connection's queue first, so every delta follows it.
            let line = response_line(&ctx.id, &to_value(head)?);
            if ctx.outbound.send(line.into()).await.is_err() {
                return Ok(Answer::Sent);
            }
            tokio::spawn(stream::send_body(body, ticket, ctx.outbound.clone()));
            Ok(Answer::Sent)
        }
    }
}
