//! The server: shared state, and the per-connection loop that reads messages, runs the
//! handshake and dispatches requests concurrently (bounded) while one writer sends lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};

use crate::protocol::envelope::{error_line, response_line};
use crate::protocol::types::{EnvironmentInfo, InitializeParams, InitializeResult};
use crate::protocol::{decode_params, parse_line, Incoming, RequestId, RpcError};
use crate::rpc::{self, Phase, RequestContext};
use crate::sandbox::launcher::LauncherConfig;
use crate::session::{Outbound, Session, SessionRegistry};

#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Requests of one connection processed at a time.
    pub concurrent_requests: usize,
    /// Which bwrap runs sandboxed commands.
    pub launcher: LauncherConfig,
    /// Operator floor: the sandbox applied to requests that carry none.
    pub default_sandbox: Option<DefaultSandbox>,
    /// Operator floor: refuse requests that carry no sandbox (and have no default).
    pub require_sandbox: bool,
}

/// Built-in profiles an operator can impose with `--default-sandbox`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DefaultSandbox {
    /// Read everything, write nothing, no network.
    ReadOnly,
    /// Read everything, write the request's cwd and temp dirs, no network.
    WorkspaceWrite,
}

pub struct Server {
    pub config: ServerConfig,
    pub sessions: SessionRegistry,
    pub environment_info: EnvironmentInfo,
    /// Warm fs helpers for sandboxed filesystem requests.
    pub fs_helpers: crate::fs::sandboxed::HelperPool,
    next_connection: AtomicU64,
}

/// What a transport delivers to a connection.
#[derive(Debug)]
pub enum Inbound {
    /// One message (a line without its terminator, or a websocket frame).
    Message(Vec<u8>),
    /// The peer went away or exceeded a limit: the connection ends without an answer.
    Closed,
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    PeerClosed,
    ProtocolViolation,
}

impl Server {
    pub fn new(config: ServerConfig, environment_info: EnvironmentInfo) -> Arc<Self> {
        Arc::new(Self {
            config,
            sessions: SessionRegistry::default(),
            environment_info,
            fs_helpers: Default::default(),
            next_connection: AtomicU64::new(1),
        })
    }

    /// Serves one connection until it ends; returns the session it was attached to, if any.
    pub async fn serve_connection(
        self: &Arc<Self>,
        mut inbound: mpsc::Receiver<Inbound>,
        outbound: Outbound,
    ) -> (CloseReason, Option<Arc<Session>>) {
        let mut connection = Connection {
            server: self.clone(),
            id: self.next_connection.fetch_add(1, Ordering::Relaxed),
            phase: Phase::New,
            outbound,
            permits: Arc::new(Semaphore::new(self.config.concurrent_requests.max(1))),
            pending_session: None,
        };
        let reason = loop {
            let Some(Inbound::Message(line)) = inbound.recv().await else { break CloseReason::PeerClosed };
            if let Err(reason) = connection.handle_message(&line).await {
                break reason;
            }
        };
        let session = connection.session();
        if let Some(session) = &session {
            self.sessions.detach(session, connection.id);
        }
        (reason, session)
    }
}

struct Connection {
    server: Arc<Server>,
    id: u64,
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

    async fn send(&self, line: Vec<u8>) {
        // The writer is gone only when the transport is closing; nothing is left to tell.
        let _ = self.outbound.send(line).await;
    }

    async fn handle_message(&mut self, line: &[u8]) -> Result<(), CloseReason> {
        match parse_line(line) {
            Err(e) => {
                let error = RpcError::invalid_request(format!(
                    "failed to parse JSON-RPC message from exec-server stdio: {e}"
                ));
                self.send(error_line(&RequestId::UNPARSEABLE, &error)).await;
                Ok(())
            }
            Ok(Incoming::Response) => Err(CloseReason::ProtocolViolation),
            Ok(Incoming::Notification { method }) => self.handle_notification(&method),
            Ok(Incoming::Request { id, method, params }) => {
                self.handle_request(id, method, params).await;
                Ok(())
            }
        }
    }

    fn handle_notification(&mut self, method: &str) -> Result<(), CloseReason> {
        match (method, &self.phase) {
            ("initialized", Phase::AwaitingInitialized) => {
                let session = self.pending_session.take().ok_or(CloseReason::ProtocolViolation)?;
                self.phase = Phase::Ready(session);
                Ok(())
            }
            ("initialized", Phase::Ready(_)) => Ok(()),
            _ => Err(CloseReason::ProtocolViolation),
        }
    }

    async fn handle_request(&mut self, id: RequestId, method: String, params: Value) {
        if method == "initialize" {
            let outcome = self.initialize(params);
            self.answer(&id, outcome).await;
            return;
        }
        let ctx = RequestContext { server: self.server.clone(), connection: self.id, phase: self.phase.clone() };
        if rpc::runs_inline(&method) {
            let outcome = rpc::dispatch(ctx, &method, params).await;
            self.answer(&id, outcome).await;
            return;
        }
        let Ok(permit) = self.permits.clone().acquire_owned().await else { return };
        let outbound = self.outbound.clone();
        tokio::spawn(async move {
            let outcome = rpc::dispatch(ctx, &method, params).await;
            let _ = outbound.send(answer_line(&id, outcome)).await;
            drop(permit);
        });
    }

    async fn answer(&self, id: &RequestId, outcome: Result<Value, RpcError>) {
        self.send(answer_line(id, outcome)).await;
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
        let result = InitializeResult {
            session_id: session.id.clone(),
            environment_info: self.server.environment_info.clone(),
        };
        self.pending_session = Some(session);
        self.phase = Phase::AwaitingInitialized;
        serde_json::to_value(result).map_err(|e| RpcError::internal(e.to_string()))
    }
}

fn answer_line(id: &RequestId, outcome: Result<Value, RpcError>) -> Vec<u8> {
    match outcome {
        Ok(result) => response_line(id, &result),
        Err(error) => error_line(id, &error),
    }
}
