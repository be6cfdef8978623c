//! Executor-side HTTP (`http/request`, protocol.md §11): a client's MCP-over-HTTP traffic
//! (or any HTTP it needs) leaves from this host, under the operator's egress policy.
//!
//! - [`request`]: params → a checked request (URL, ordered headers, `valueEnvVar`, body);
//! - [`egress`]: the allow/deny rules and the resolver that enforces them;
//! - [`client`]: the shared reqwest clients (rustls, system roots + `SSL_CERT_FILE`);
//! - [`registry`]: per-connection limits, active stream ids, cancellation on close;
//! - [`stream`]: streamed bodies as `http/request/bodyDelta` notifications.

pub mod client;
pub mod egress;
mod error;
pub mod registry;
pub mod request;
pub mod stream;

use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

pub use error::HttpError;

use crate::protocol::http::{HttpHeader, HttpRequestParams, HttpRequestResult, RedirectPolicy};
use client::Clients;
use egress::{EgressPolicy, Target};
use registry::{Registry, Ticket};

/// Largest body returned whole in the `http/request` result. Its base64 (a third more)
/// must fit in one protocol message (64 MiB on stdio) with room to spare; larger bodies
/// are for `streamResponse`.
pub const MAX_BUFFERED_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The operator's flags for `http/request`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct HttpArgs {
    /// Allow http/request to reach HOST (`example.com`, `*.example.com`), an address or a
    /// CIDR range, even where a deny rule matches (repeatable). Allow wins over deny.
    #[arg(long = "http-allow", value_name = "HOST|CIDR", value_parser = egress::parse_target)]
    pub http_allow: Vec<Target>,
    /// Refuse http/request to HOST, an address or a CIDR range (repeatable), in addition to
    /// the built-in link-local ranges 169.254.0.0/16 and fe80::/10. Checked against the
    /// address actually connected to and at every redirect.
    #[arg(long = "http-deny", value_name = "HOST|CIDR", value_parser = egress::parse_target)]
    pub http_deny: Vec<Target>,
}

impl HttpArgs {
    pub fn config(&self) -> HttpConfig {
        HttpConfig { policy: Arc::new(EgressPolicy::new(self.http_allow.clone(), self.http_deny.clone())) }
    }
}

#[derive(Debug, Clone, Default)]
pub struct HttpConfig {
    pub policy: Arc<EgressPolicy>,
}

/// What a request produced.
pub enum Outcome {
    /// The whole response.
    Buffered(HttpRequestResult),
    /// The head (with an empty body); the body follows with [`stream::send_body`].
    Streaming { head: HttpRequestResult, body: reqwest::Response, ticket: Ticket },
}

/// The server's HTTP service: one per server, shared by its connections.
pub struct HttpService {
    config: HttpConfig,
    /// Built on first use: loading the system's roots costs milliseconds that `initialize`
    /// should not wait for, and most sessions never send `http/request`.
    clients: OnceLock<Result<Clients, String>>,
    registry: Arc<Registry>,
}

impl HttpService {
    pub fn new(config: HttpConfig) -> Self {
        Self { config, clients: OnceLock::new(), registry: Arc::default() }
    }

    pub fn open_connection(&self, connection: u64) {
        self.registry.open(connection);
    }

    /// Cancels every request of `connection`.
    pub fn close_connection(&self, connection: u64) {
        self.registry.close(connection);
    }

    fn clients(&self) -> Result<&Clients, HttpError> {
        // Blocks this worker once, for the few milliseconds that reading the system's roots
        // takes; every later request finds the clients built.
        let built = self.clients.get_or_init(|| {
            let built = Clients::build(&self.config.policy);
            if let Err(e) = &built {
                tracing::warn!("cannot set up the HTTP client for http/request: {e}");
            }
            built
        });
        built.as_ref().map_err(|e| HttpError::Client(e.clone()))
    }

    /// Runs one `http/request` of `connection`. Cancelled when the connection closes.
    pub async fn request(&self, connection: u64, params: HttpRequestParams) -> Result<Outcome, HttpError> {
        let prepared = request::prepare(params, |name| std::env::var_os(name))?;
        let ticket = self.registry.begin(connection, &prepared.request_id, prepared.stream)?;
        let cancelled = ticket.cancelled();
        tokio::select! {
            biased;
            () = cancelled => Err(HttpError::ConnectionClosed),
            outcome = self.perform(prepared, ticket) => outcome,
        }
    }

    async fn perform(&self, prepared: request::Prepared, ticket: Ticket) -> Result<Outcome, HttpError> {
        if let Err(denied) = self.config.policy.check_url(&prepared.url) {
            tracing::info!("http/request egress refused: {denied}");
            return Err(denied.into());
        }
        let clients = self.clients()?;
        let client = match prepared.redirect {
            RedirectPolicy::Follow => &clients.follow,
            RedirectPolicy::Stop => &clients.stop,
        };
        // Only the method and host: paths and queries can carry tokens.
        tracing::debug!(method = %prepared.method, host = prepared.url.host_str().unwrap_or(""), stream = prepared.stream, "http/request");
        let mut builder = client.request(prepared.method, prepared.url).headers(prepared.headers);
        if let Some(timeout) = prepared.timeout {
            // reqwest's timeout covers the whole exchange, body included.
            builder = builder.timeout(timeout);
        }
        if let Some(body) = prepared.body {
            builder = builder.body(body);
        }
        let response = builder.send().await.map_err(|e| HttpError::from_reqwest(&e))?;
        let head = HttpRequestResult {
            status: response.status().as_u16(),
            headers: response_headers(response.headers()),
            body_base64: String::new(),
        };
        if prepared.stream {
            return Ok(Outcome::Streaming { head, body: response, ticket });
        }
        let body = read_whole(response).await?;
        Ok(Outcome::Buffered(HttpRequestResult { body_base64: BASE64.encode(&body), ..head }))
    }
}

/// Names as they are (the http crate keeps them lower-case); values lossily as UTF-8.
fn response_headers(headers: &reqwest::header::HeaderMap) -> Vec<HttpHeader> {
    headers
        .iter()
        .map(|(name, value)| HttpHeader { name: name.as_str().to_owned(), value: String::from_utf8_lossy(value.as_bytes()).into_owned() })
        .collect()
}

/// The body, up to [`MAX_BUFFERED_BODY_BYTES`]; refused as soon as it is known to be larger.
async fn read_whole(mut response: reqwest::Response) -> Result<Vec<u8>, HttpError> {
    let limit = MAX_BUFFERED_BODY_BYTES;
    let declared = response.content_length().unwrap_or(0);
    if declared > limit as u64 {
        return Err(HttpError::BodyTooLarge { limit });
    }
    let mut body = Vec::with_capacity(declared as usize);
    while let Some(chunk) = response.chunk().await.map_err(|e| HttpError::from_reqwest(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(HttpError::BodyTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
