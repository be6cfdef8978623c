//! The server's shared state: its configuration, the sessions, the warm fs helpers and
//! the descriptor budget. Connections (`crate::connection`) and handlers (`crate::rpc`)
//! hold it; it knows neither of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::limits::{DescriptorBudget, SessionLimits};
use crate::protocol::types::EnvironmentInfo;
use crate::sandbox::floor::OperatorFloor;
use crate::sandbox::launcher::LauncherConfig;
use crate::session::{Session, SessionRegistry};

#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Requests of one connection processed at a time.
    pub concurrent_requests: usize,
    /// Which bwrap runs sandboxed commands.
    pub launcher: LauncherConfig,
    /// What requests without a sandbox get (`--default-sandbox`, `--require-sandbox`).
    pub floor: OperatorFloor,
    /// How long a detached session is kept before it expires and its processes are killed.
    pub session_ttl: Duration,
    /// What one session may hold (fs handles, live processes).
    pub limits: SessionLimits,
    /// `http/request`: the egress policy.
    pub http: crate::http::HttpConfig,
}

/// Detached sessions expire after this long unless resumed (80 s measured on the reference,
/// protocol.md §10).
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(80);

pub struct Server {
    pub config: ServerConfig,
    pub sessions: SessionRegistry,
    pub environment_info: EnvironmentInfo,
    /// Warm fs helpers for sandboxed filesystem requests.
    pub fs_helpers: crate::fs::sandboxed::HelperPool,
    /// The executor's descriptor limit and the reserve kept for process and helper starts.
    pub descriptors: DescriptorBudget,
    /// `http/request`: the shared clients and each connection's requests.
    pub http: crate::http::HttpService,
    next_connection: AtomicU64,
}

impl Server {
    pub fn new(config: ServerConfig, environment_info: EnvironmentInfo) -> Arc<Self> {
        Arc::new(Self {
            sessions: SessionRegistry::new(config.limits),
            http: crate::http::HttpService::new(config.http.clone()),
            config,
            environment_info,
            fs_helpers: Default::default(),
            descriptors: DescriptorBudget::current(),
            next_connection: AtomicU64::new(1),
        })
    }

    /// A number for a new connection, unique in this server's life.
    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Ends every session for a shutdown: SIGTERM to every process group, then SIGKILL to
    /// whatever has not closed when `grace` has passed.
    pub async fn shutdown(&self, grace: Duration) {
        let sessions = self.sessions.all();
        for session in &sessions {
            session.processes.signal_all(nix::sys::signal::Signal::SIGTERM);
        }
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline && !sessions.iter().all(|s| s.processes.all_closed()) {
            tokio::time::sleep(Duration::from_millis(20).min(grace)).await;
        }
        for session in sessions {
            self.sessions.remove(&session.id);
        }
    }

    /// Detaches `connection` and starts the session's expiry timer.
    pub fn detach(self: &Arc<Self>, session: &Arc<Session>, connection: u64) {
        let Some(generation) = self.sessions.detach(session, connection) else { return };
        let server = Arc::downgrade(self);
        let id = session.id.clone();
        let ttl = self.config.session_ttl;
        tokio::spawn(async move {
            tokio::time::sleep(ttl).await;
            if let Some(server) = server.upgrade() {
                if server.sessions.expire(&id, generation) {
                    tracing::info!(session = %id, "detached session expired; its processes were killed");
                    crate::audit::record("session.expired", serde_json::json!({"session": id}));
                }
            }
        });
    }
}
