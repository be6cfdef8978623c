//! Command-line flags of the websocket service (signed bearer tokens, the query-token
//! form, TLS, connection limits), kept here so that the CLI only flattens them in.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::auth::Authenticator;
use super::peers::{PeerLimits, PeerTable};
use super::tls::{self, TlsError, TlsFlagsError, TlsReloader};
use super::ws::WsOptions;

#[derive(clap::Args, Debug, Default, Clone)]
pub struct WsServiceArgs {
    /// Absolute path to the shared secret file for signed JWT bearer tokens (HS256; at
    /// least 32 bytes after trimming; readable by its owner only).
    #[arg(long, value_name = "PATH")]
    pub ws_shared_secret_file: Option<PathBuf>,
    /// Expected issuer (`iss`) for signed JWT bearer tokens.
    #[arg(long, value_name = "ISSUER")]
    pub ws_issuer: Option<String>,
    /// Expected audience (`aud`) for signed JWT bearer tokens.
    #[arg(long, value_name = "AUDIENCE")]
    pub ws_audience: Option<String>,
    /// Maximum clock skew when validating signed JWT bearer tokens (`exp`, `nbf`, `iat`);
    /// 30 when not given.
    #[arg(long, value_name = "SECONDS")]
    pub ws_max_clock_skew_seconds: Option<u64>,
    /// Also accept the bearer token as `?token=` on the upgrade URL when the request has no
    /// `Authorization` header. Off by default: URLs end up in proxy and access logs.
    #[arg(long)]
    pub ws_allow_query_token: bool,
    /// PEM certificate chain for `--listen wss://IP:PORT` (re-read on SIGHUP).
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (re-read on SIGHUP).
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: clients must present a certificate issued by one of them
    /// (mutual TLS; re-read on SIGHUP).
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Websocket connections served at once; more are closed with code 1013 (Try Again
    /// Later). Unlimited when not given.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
    /// Close a websocket connection after this many seconds without a message in either
    /// direction (close code 4408). Never when not given.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub ws_idle_timeout: Option<u64>,
    /// Websocket connections one IP address may hold at once; more are closed with code
    /// 1013. Unlimited when not given.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub ws_max_connections_per_peer: Option<u32>,
    /// New websocket connections one IP address may open per second (bursts of as many);
    /// more are answered with HTTP 429 before the upgrade. Unlimited when not given.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub ws_peer_connection_rate: Option<u32>,
    /// Messages one websocket connection may send per second (bursts of as many); a
    /// connection over it is closed with code 1008 (Policy Violation). Unlimited when not
    /// given.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub ws_max_messages_per_second: Option<u32>,
}

/// Startup errors of these flags (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum WsServiceError {
    #[error(transparent)]
    TlsFlags(#[from] TlsFlagsError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("--ws-allow-query-token requires --ws-auth")]
    QueryTokenWithoutAuth,
    #[error("--max-connections, --ws-idle-timeout and the --ws-*-per-peer/rate limits require a websocket listener, not stdio")]
    LimitsWithStdio,
}

/// What these flags ask of the listener, checked and loaded.
#[derive(Debug, Default)]
pub struct WsService {
    pub tls: Option<Arc<TlsReloader>>,
    pub allow_query_token: bool,
    pub max_connections: Option<usize>,
    pub idle_timeout: Option<Duration>,
    pub peer_limits: PeerLimits,
    pub max_messages_per_second: Option<u32>,
}

impl WsService {
    /// The listener's options, with `auth` from the `--ws-auth` flags.
    pub fn into_options(self, auth: Option<Authenticator>) -> WsOptions {
        WsOptions {
            auth,
            allow_query_token: self.allow_query_token,
            tls: self.tls,
            max_connections: self.max_connections,
            idle_timeout: self.idle_timeout,
            peers: Some(PeerTable::new(self.peer_limits)).filter(|t| t.is_limited()),
            max_messages_per_second: self.max_messages_per_second,
        }
    }
}

impl WsServiceArgs {
    /// Checks the flags against the listener kind and loads the TLS files.
    pub fn resolve(&self, stdio: bool, wss: bool, auth_on: bool) -> Result<WsService, WsServiceError> {
        if self.ws_allow_query_token && !auth_on {
            return Err(WsServiceError::QueryTokenWithoutAuth);
        }
        let peer_flags = self.ws_max_connections_per_peer.is_some()
            || self.ws_peer_connection_rate.is_some()
            || self.ws_max_messages_per_second.is_some();
        if stdio && (self.max_connections.is_some() || self.ws_idle_timeout.is_some() || peer_flags) {
            return Err(WsServiceError::LimitsWithStdio);
        }
        let files = tls::resolve_flags(wss, self.tls_cert.as_deref(), self.tls_key.as_deref(), self.tls_client_ca.as_deref())?;
        let tls = files.map(TlsReloader::load).transpose()?.map(Arc::new);
        Ok(WsService {
            tls,
            allow_query_token: self.ws_allow_query_token,
            max_connections: self.max_connections.map(|n| n as usize),
            idle_timeout: self.ws_idle_timeout.map(Duration::from_secs),
            peer_limits: PeerLimits {
                max_connections: self.ws_max_connections_per_peer.map(|n| n as usize),
                connections_per_second: self.ws_peer_connection_rate,
            },
            max_messages_per_second: self.ws_max_messages_per_second,
        })
    }
}
