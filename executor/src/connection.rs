//! One connection: the loop that reads a transport's messages, runs the handshake and
//! dispatches requests (bounded, concurrently) while one writer sends the lines out.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};

use crate::protocol::envelope::{answer_line, error_line, recover_id, Answer};
use crate::protocol::outgoing::Outgoing;
use crate::protocol::types::{InitializeParams, InitializeResult};
use crate::protocol::{decode_params, parse_line, Incoming, RequestId, RpcError};
use crate::rpc::{self, Phase, RequestContext};
use crate::server::Server;
use crate::session::{Outbound, Session};

/// How the transport is named in parse-error messages (`... from exec-server stdio: ...`).
pub const STDIO_LABEL: &str = "exec-server stdio";
/// The websocket counterpart of [`STDIO_LABEL`] (the reference names its connections by
/// transport; this wording for websocket is inferred from its source, not observed).
pub const WEBSOCKET_LABEL: &str = "exec-server websocket";

/// What a transport delivers to a connection.
#[derive(Debug)]
pub enum Inbound {
    /// One message (a line without its terminator, or a websocket frame).
    Message(Vec<u8>),
    /// A message longer than `limit` bytes, of which only its first bytes (`prefix`)
    /// were kept. It is answered with -32600; `then_closed` says the transport cannot
    /// read past it and ends the connection next (the answer says so).
    TooLarge { limit: usize, prefix: Vec<u8>, then_closed: bool },
    /// The peer went away, or the transport cannot read on: the connection ends.
    Closed,
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    PeerClosed,
    ProtocolViolation,
    /// The connection's session was resumed by another connection.
    Evicted,
}

/// Serves one stdio connection until it ends; returns the session it was attached to.
pub async fn serve_stdio(
    server: &Arc<Server>,
    inbound: mpsc::Receiver<Inbound>,
    outbound: Outbound,
) -> (CloseReason, Option<Arc<Session>>) {
    serve(server, inbound, outbound, STDIO_LABEL).await
}

/// Serves one connection until it ends; `label` names the transport in parse errors.
///
/// The session is detached as soon as the peer goes away, even while a message is
/// still being handled (a request waiting for a permit or for room in the outbound
/// queue), so that a resume from a new connection is not refused meanwhile. A detached
/// session expires after [`crate::server::ServerConfig::session_ttl`] unless it is resumed.
pub async fn serve(
    server: &Arc<Server>,
    mut inbound: mpsc::Receiver<Inbound>,
    outbound: Outbound,
    label: &'static str,
) -> (CloseReason, Option<Arc<Session>>) {
    let mut connection = Connection {
        server: server.clone(),
        id: server.next_connection_id(),
        label,
        phase: Phase::New,
        outbound,
        permits: Arc::new(Semaphore::new(server.config.concurrent_requests.max(1))),
        pending_session: None,
    };
    server.http.open_connection(connection.id);
    // Oversized messages are answered from here, also while a request is being handled.
    let answers = connection.outbound.clone();
    // At most one message read ahead while the previous one is handled: order is kept,
    // and a close behind it is seen at once.
    let mut read_ahead: Option<Vec<u8>> = None;
    let reason = loop {
        let line = match read_ahead.take() {
            Some(line) => line,
            None => match inbound.recv().await {
                Some(Inbound::Message(line)) => line,
                Some(Inbound::TooLarge { limit, prefix, then_closed }) => {
                    let _ = answers.send(too_large_line(label, limit, &prefix, then_closed).into()).await;
                    continue;
                }
                Some(Inbound::Closed) | None => break CloseReason::PeerClosed,
            },
        };
        let handling = connection.handle_message(line);
        tokio::pin!(handling);
        let outcome = loop {
            tokio::select! {
                // The message first: one that is answered at once (`initialize` just
                // before EOF) is answered even when the close is already queued.
                biased;
                outcome = &mut handling => break Some(outcome),
                next = inbound.recv(), if read_ahead.is_none() => match next {
                    Some(Inbound::Message(line)) => read_ahead = Some(line),
                    // Answered at once: nothing of it is handled, so order does not matter.
                    Some(Inbound::TooLarge { limit, prefix, then_closed }) => {
                        let _ = answers.send(too_large_line(label, limit, &prefix, then_closed).into()).await;
                    }
                    Some(Inbound::Closed) | None => break None,
                },
            }
        };
        match outcome {
            Some(Ok(())) => {}
            Some(Err(reason)) => break reason,
            None => break CloseReason::PeerClosed,
        }
    };
    // Its HTTP requests end with it; a later resume of the session does not get them.
    server.http.close_connection(connection.id);
    let session = connection.session();
    if let Some(session) = &session {
        server.detach(session, connection.id);
    }
    (reason, session)
}

struct Connection {
    server: Arc<Server>,
    id: u64,
    label: &'static str,
    phase: Phase,
    outbound: Outbound,
    permits: Arc<Semaphore>,
    /// The session chosen by `initialize`, until `initialized` arrives.
    pending_session: Option<Arc<Session>>,
}

impl Connection {
    fn session(&self) -> Option<Arc<Session>> {
        match &self.phase {
            Phase::Ready(s) => Some(s.clone()),
            Phase::AwaitingInitialized => self.pending_session.clone(),
            Phase::New => None,
        }
    }

    async fn send(&self, line: impl Into<Outgoing>) {
        // The writer is gone only when the transport is closing; nothing is left to tell.
        let _ = self.outbound.send(line.into()).await;
    }

    /// Takes the line by value: it is freed once parsed, so a large request (writeFile)
    /// is not held twice while it is handled.
    async fn handle_message(&mut self, line: Vec<u8>) -> Result<(), CloseReason> {
        let parsed = parse_line(&line);
        drop(line);
        match parsed {
            Err(e) => {
                // The client is told; the operator sees it only when asking for detail.
                tracing::debug!(transport = self.label, "malformed message: {e}");
                let error = RpcError::invalid_request(format!("failed to parse JSON-RPC message from {}: {e}", self.label));
                self.send(error_line(&RequestId::UNPARSEABLE, &error)).await;
                Ok(())
            }
            Ok(Incoming::Response) => Err(CloseReason::ProtocolViolation),
            Ok(Incoming::Notification { method }) => {
                if let Some(ready) = self.handle_notification(&method)? {
                    // Notifications held while the session was detached go out now that
                    // the client has finished (re)attaching.
                    ready.sink.flush_held().await;
                }
                Ok(())
            }
            Ok(Incoming::Request { id, method, params }) => self.handle_request(id, method, params).await,
        }
    }

    /// Returns the session when this notification completed the handshake.
    fn handle_notification(&mut self, method: &str) -> Result<Option<Arc<Session>>, CloseReason> {
        match (method, &self.phase) {
            ("initialized", Phase::AwaitingInitialized) => {
                let session = self.pending_session.take().ok_or(CloseReason::ProtocolViolation)?;
                self.phase = Phase::Ready(session.clone());
                Ok(Some(session))
            }
            ("initialized", Phase::Ready(_)) => Ok(None),
            _ => Err(CloseReason::ProtocolViolation),
        }
    }

    async fn handle_request(&mut self, id: RequestId, method: String, params: Value) -> Result<(), CloseReason> {
        // A connection whose session was taken over by a resume gets this answer to every
        // request, and is then closed.
        if let Some(session) = self.session() {
            if let Err(evicted) = session.check_attached(self.id) {
                self.answer(&id, Err(evicted.into())).await;
                return Err(CloseReason::Evicted);
            }
        }
        if method == "initialize" {
            let outcome = self.initialize(params).map(Answer::Result);
            self.answer(&id, outcome).await;
            return Ok(());
        }
        let ctx = RequestContext {
            server: self.server.clone(),
            connection: self.id,
            phase: self.phase.clone(),
            id: id.clone(),
            outbound: self.outbound.clone(),
        };
        if rpc::runs_inline(&method) {
            let outcome = rpc::dispatch(ctx, &method, params).await;
            self.answer(&id, outcome).await;
            return Ok(());
        }
        let Ok(permit) = self.permits.clone().acquire_owned().await else { return Ok(()) };
        let outbound = self.outbound.clone();
        tokio::spawn(async move {
            let outcome = rpc::dispatch(ctx, &method, params).await;
            if let Some(line) = answer_line(&id, outcome) {
                let _ = outbound.send(line).await;
            }
            drop(permit);
        });
        Ok(())
    }

    async fn answer(&self, id: &RequestId, outcome: Result<Answer, RpcError>) {
        if let Some(line) = answer_line(id, outcome) {
            self.send(line).await;
        }
    }

    fn initialize(&mut self, params: Value) -> Result<Value, RpcError> {
        let params: InitializeParams = decode_params(params)?;
        if !matches!(self.phase, Phase::New) {
            return Err(RpcError::invalid_request("initialize may only be sent once per connection"));
        }
        let sessions = &self.server.sessions;
        let session = match params.resume_session_id.as_deref() {
            Some(id) => sessions.resume(id, self.id, self.outbound.clone())?,
            None => sessions.create(self.id, self.outbound.clone()),
        };
        let event = if params.resume_session_id.is_some() { "session.resumed" } else { "session.started" };
        crate::audit::record(event, serde_json::json!({"session": session.id, "connection": self.id, "client": params.client_name}));
        let result = InitializeResult { session_id: session.id.clone(), environment_info: self.server.environment_info.clone() };
        self.pending_session = Some(session);
        self.phase = Phase::AwaitingInitialized;
        serde_json::to_value(result).map_err(|e| RpcError::internal(e.to_string()))
    }
}

/// The -32600 answer to a message over the size limit, to the id it began with when
/// that could be read from its start, else to -1 like any unparseable line.
fn too_large_line(label: &str, limit: usize, prefix: &[u8], then_closed: bool) -> Vec<u8> {
    let what_next = if then_closed { "the connection is closed" } else { "it was skipped" };
    let error = RpcError::invalid_request(format!(
        "message from {label} is larger than the {limit}-byte limit; {what_next} (send large file data with fs/open and fs/writeBlock)"
    ));
    let id = recover_id(prefix).unwrap_or(RequestId::UNPARSEABLE);
    error_line(&id, &error)
}
