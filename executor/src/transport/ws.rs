//! WebSocket listener (protocol.md §1.1–1.2): one JSON-RPC message per text (or binary)
//! frame, a Ping every 30 s, and plain HTTP on the same port for `/readyz`; over TLS
//! (`wss://`, [`super::tls`]) when configured.
//!
//! The HTTP request head is read and judged here (readiness probe, 404/400, `Origin`
//! refusal, capability-token auth) before the upgrade is answered; the websocket framing
//! itself is `tokio-tungstenite`'s. Each connection gets a reader task (frames → inbound
//! messages), a writer task (queued lines → frames, pings), and the transport-agnostic
//! connection loop of [`connection::serve`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::auth::{AuthFailure, Authenticator, Principal};
use super::jwt::JwtFailure;
use super::peers::{Bucket, PeerRefusal, PeerTable};
use super::tls::TlsReloader;
use super::MAX_MESSAGE_BYTES;
use crate::connection::{self, Inbound, WEBSOCKET_LABEL};
use crate::protocol::outgoing::{Next, Outgoing};
use crate::server::Server;

/// The server pings every connection this often (the reference's keepalive).
pub const PING_INTERVAL: Duration = Duration::from_secs(30);
/// A peer from which nothing (not even a Pong) arrived for this many ping intervals is
/// taken for gone, so that its session is detached and can be resumed elsewhere.
const SILENT_INTERVALS: u32 = 3;
/// Largest accepted HTTP request head.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// A client that has not sent its request head by then is dropped.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Initial read buffer of a connection (tungstenite allocates it eagerly; 128 KiB by
/// default). Larger messages grow it as needed.
const READ_BUFFER_BYTES: usize = 16 * 1024;
/// Lines queued for one connection's writer before producers wait.
const OUTBOUND_QUEUE: usize = 256;
/// Close code of a connection ended by `--ws-idle-timeout`: in the range RFC 6455 leaves
/// to applications, and 4000 + HTTP's 408 (Request Timeout) so that it reads as what it is.
pub const IDLE_CLOSE_CODE: u16 = 4408;

#[derive(Debug, thiserror::Error)]
pub enum ListenUrlError {
    #[error(
        "`{0}` is neither `stdio` nor `ws://IP:PORT` (or `wss://IP:PORT` with --tls-cert and --tls-key) \
         with an IP address (e.g. ws://127.0.0.1:8765)"
    )]
    Unsupported(String),
}

/// Parses `ws://IP:PORT` (an IP literal, `[v6]` in brackets; an optional trailing `/`).
pub fn parse_listen_url(url: &str) -> Result<SocketAddr, ListenUrlError> {
    parse_url_with_scheme(url, "ws://")
}

/// Parses `wss://IP:PORT`, as [`parse_listen_url`] does `ws://`.
pub fn parse_wss_listen_url(url: &str) -> Result<SocketAddr, ListenUrlError> {
    parse_url_with_scheme(url, "wss://")
}

fn parse_url_with_scheme(url: &str, scheme: &str) -> Result<SocketAddr, ListenUrlError> {
    let unsupported = || ListenUrlError::Unsupported(url.to_owned());
    let rest = url.strip_prefix(scheme).ok_or_else(unsupported)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    rest.parse().map_err(|_| unsupported())
}

#[derive(Debug, Clone, Default)]
pub struct WsOptions {
    /// Upgrade auth; `None` accepts every upgrade without `Origin`.
    pub auth: Option<Authenticator>,
    /// Take the bearer from `?token=` when the upgrade has no `Authorization` header.
    pub allow_query_token: bool,
    /// TLS (`wss://`); `None` serves plain TCP.
    pub tls: Option<Arc<TlsReloader>>,
    /// Websocket connections served at once; more are closed with 1013 (Try Again Later).
    pub max_connections: Option<usize>,
    /// A connection with no message in either direction for this long is closed with
    /// [`IDLE_CLOSE_CODE`].
    pub idle_timeout: Option<Duration>,
    /// Per-peer connection and connection-rate limits; `None` when no limit is set.
    pub peers: Option<Arc<PeerTable>>,
    /// Messages per second one connection may send; more close it with 1008.
    pub max_messages_per_second: Option<u32>,
}

/// Accepts connections until `stop` is notified; every connection runs in its own task.
pub async fn serve(listener: TcpListener, server: Arc<Server>, options: WsOptions, stop: Arc<Notify>) {
    let options = Arc::new(options);
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        tokio::select! {
            () = stop.notified() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let (server, options, open) = (server.clone(), options.clone(), open.clone());
                    tokio::spawn(async move {
                        tracing::debug!(%peer, "websocket connection accepted");
                        let _ = stream.set_nodelay(true);
                        match &options.tls {
                            None => handle_stream(stream, peer, server, &options, &open, None).await,
                            Some(tls) => {
                                // The handshake shares the head's deadline: a client that
                                // opens TCP and says nothing must not hold a task forever.
                                match tokio::time::timeout(HEAD_TIMEOUT, tls.acceptor().accept(stream)).await {
                                    Ok(Ok(stream)) => {
                                        let client_cert = client_certificate_digest(&stream);
                                        handle_stream(stream, peer, server, &options, &open, client_cert).await
                                    }
                                    Ok(Err(e)) => {
                                        // Debug only: port scanners fail handshakes all day. The
                                        // audit trail keeps them (a refused client certificate is one).
                                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                                        if crate::audit::enabled() {
                                            let reason = format!("TLS handshake failed: {e}");
                                            crate::audit::record("connection.refused", serde_json::json!({"peer": peer.to_string(), "reason": reason}));
                                        }
                                    }
                                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                                }
                            }
                        }
                        tracing::debug!(%peer, "websocket connection ended");
                    });
                }
                Err(e) => {
                    // EMFILE and the like: wait a little instead of spinning.
                    tracing::warn!("accepting a websocket connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// One slot of `--max-connections`, given back when dropped.
struct ConnectionSlot(Arc<AtomicUsize>);

impl ConnectionSlot {
    fn take(open: &Arc<AtomicUsize>, max: Option<usize>) -> Option<Self> {
        let previous = open.fetch_add(1, Ordering::AcqRel);
        let slot = Self(open.clone());
        match max {
            Some(max) if previous >= max => None, // the drop gives the count back
            _ => Some(slot),
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The SHA-256 (hex) of the client's certificate under mutual TLS, for the audit trail.
fn client_certificate_digest(stream: &tokio_rustls::server::TlsStream<tokio::net::TcpStream>) -> Option<String> {
    use sha2::Digest as _;
    let leaf = stream.get_ref().1.peer_certificates()?.first()?;
    Some(sha2::Sha256::digest(leaf.as_ref()).iter().map(|b| format!("{b:02x}")).collect())
}

async fn handle_stream<S>(
    mut stream: S,
    peer: SocketAddr,
    server: Arc<Server>,
    options: &WsOptions,
    open: &Arc<AtomicUsize>,
    client_cert: Option<String>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (head, leftover) = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(read)) => read,
        Ok(Err(HeadError::TooLarge)) => {
            let _ = respond(&mut stream, 431, "Request Header Fields Too Large", "request head too large").await;
            return;
        }
        Ok(Err(HeadError::Malformed)) => {
            let _ = respond(&mut stream, 400, "Bad Request", "malformed HTTP request").await;
            return;
        }
        Ok(Err(HeadError::Closed)) | Err(_) => return,
    };
    match decide(&head, options.auth.as_ref(), options.allow_query_token) {
        Decision::Respond { status, reason, body } => {
            log_refusal(peer, status, body);
            if matches!(status, 401 | 403) && crate::audit::enabled() {
                crate::audit::record("connection.refused", serde_json::json!({"peer": peer.to_string(), "status": status, "reason": body}));
            }
            let _ = respond(&mut stream, status, reason, body).await;
        }
        Decision::Upgrade { accept, principal } => {
            if let Some(Err(PeerRefusal::Rate(rate))) = options.peers.as_ref().map(|p| p.charge_rate(peer.ip())) {
                let body = "too many new connections from this address; retry later";
                tracing::warn!(%peer, rate, "websocket upgrade refused: --ws-peer-connection-rate reached");
                crate::audit::record("connection.refused", serde_json::json!({"peer": peer.to_string(), "reason": "peer-connection-rate"}));
                let _ = respond(&mut stream, 429, "Too Many Requests", body).await;
                return;
            }
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            if stream.write_all(response.as_bytes()).await.is_err() {
                return;
            }
            let config = WebSocketConfig::default()
                .max_message_size(Some(MAX_MESSAGE_BYTES))
                .max_frame_size(Some(MAX_MESSAGE_BYTES))
                .read_buffer_size(READ_BUFFER_BYTES);
            let mut ws = WebSocketStream::from_partially_read(stream, leftover, Role::Server, Some(config)).await;
            // Counted after the upgrade: probes and refused requests take no slot.
            let Some(_slot) = ConnectionSlot::take(open, options.max_connections) else {
                let limit = options.max_connections.unwrap_or_default();
                tracing::warn!(%peer, limit, "websocket connection refused: --max-connections reached");
                crate::audit::record("connection.refused", serde_json::json!({"peer": peer.to_string(), "reason": "max-connections"}));
                let reason = format!("server at its connection limit ({limit}); try again later");
                let _ = ws.close(Some(CloseFrame { code: CloseCode::Again, reason: reason.into() })).await;
                // Let the client's Close answer arrive, so that it sees ours rather than a reset.
                let _ = tokio::time::timeout(Duration::from_secs(1), async { while ws.next().await.is_some() {} }).await;
                return;
            };
            let peer_slot = options.peers.as_ref().map(|p| p.open(peer.ip()));
            let _peer_slot = match peer_slot {
                Some(Err(PeerRefusal::TooMany(limit))) => {
                    tracing::warn!(%peer, limit, "websocket connection refused: --ws-max-connections-per-peer reached");
                    crate::audit::record(
                        "connection.refused",
                        serde_json::json!({"peer": peer.to_string(), "reason": "max-connections-per-peer"}),
                    );
                    let reason = format!("too many connections from this address ({limit}); try again later");
                    let _ = ws.close(Some(CloseFrame { code: CloseCode::Again, reason: reason.into() })).await;
                    let _ = tokio::time::timeout(Duration::from_secs(1), async { while ws.next().await.is_some() {} }).await;
                    return;
                }
                other => other,
            };
            match &principal {
                Some(Principal::Jwt(subject)) => tracing::debug!(%peer, sub = ?subject.sub, "websocket upgrade authenticated (jwt)"),
                Some(Principal::CapabilityToken { .. }) => tracing::debug!(%peer, "websocket upgrade authenticated (capability token)"),
                None => {}
            }
            if crate::audit::enabled() {
                let (auth, subject) = match &principal {
                    Some(Principal::Jwt(subject)) => ("signed-bearer-token", serde_json::json!({"sub": subject.sub})),
                    Some(Principal::CapabilityToken { digest_prefix }) => {
                        ("capability-token", serde_json::json!({"tokenSha256Prefix": digest_prefix}))
                    }
                    None => ("none", serde_json::Value::Null),
                };
                let tls = options.tls.is_some();
                crate::audit::record(
                    "connection.accepted",
                    serde_json::json!({"peer": peer.to_string(), "auth": auth, "subject": subject, "tls": tls, "clientCertSha256": client_cert}),
                );
            }
            run_connection(ws, server, options.idle_timeout, options.max_messages_per_second).await;
        }
    }
}

/// Moves frames between the socket and the connection loop until either side ends.
async fn run_connection<S>(
    ws: WebSocketStream<S>,
    server: Arc<Server>,
    idle_timeout: Option<Duration>,
    max_messages_per_second: Option<u32>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut source) = ws.split();
    let (in_tx, in_rx) = mpsc::channel::<Inbound>(16);
    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(OUTBOUND_QUEUE);
    let started = Instant::now();
    // Milliseconds since `started` at which the peer was last heard from.
    let last_heard = Arc::new(AtomicU64::new(0));
    // ... and at which the last message went either way (pings do not count).
    let last_message = Arc::new(AtomicU64::new(0));
    let peer_gone = Arc::new(Notify::new());

    // The close frame the reader asks for, when it ends the connection for a reason.
    let (close_with, mut close_frame) = oneshot::channel::<CloseFrame>();
    let reader = {
        let (last_heard, last_message, peer_gone) = (last_heard.clone(), last_message.clone(), peer_gone.clone());
        let mut message_bucket = max_messages_per_second.map(Bucket::new);
        tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    frame = source.next() => frame,
                    () = peer_gone.notified() => break,
                };
                last_heard.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                let message = match frame {
                    Some(Ok(Message::Text(text))) => Vec::from(text.as_bytes()),
                    Some(Ok(Message::Binary(data))) => Vec::from(data),
                    // Pongs to pings are queued and sent by tungstenite itself.
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(WsError::Capacity(e))) => {
                        // tungstenite stops at the frame header and cannot skip the
                        // payload, so the stream cannot be resynced: answer, then close
                        // with 1009 (message too big).
                        tracing::debug!("websocket message over the limit: {e}");
                        let _ = close_with.send(too_big_close_frame());
                        let too_large = Inbound::TooLarge { limit: MAX_MESSAGE_BYTES, prefix: Vec::new(), then_closed: true };
                        let _ = in_tx.send(too_large).await;
                        break;
                    }
                    Some(Err(e)) => {
                        tracing::debug!("websocket read failed: {e}");
                        break;
                    }
                };
                last_message.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                if let (Some(bucket), Some(rate)) = (&mut message_bucket, max_messages_per_second) {
                    if !bucket.take() {
                        tracing::warn!(rate, "websocket connection over --ws-max-messages-per-second; closing it");
                        let reason = format!("more than {rate} messages per second (--ws-max-messages-per-second)");
                        let _ = close_with.send(CloseFrame { code: CloseCode::Policy, reason: reason.into() });
                        break;
                    }
                }
                if in_tx.send(Inbound::Message(message)).await.is_err() {
                    return;
                }
            }
            let _ = in_tx.send(Inbound::Closed).await;
        })
    };

    let (closing_tx, mut closing) = oneshot::channel::<Option<CloseFrame>>();
    let writer = tokio::spawn(async move {
        let start = tokio::time::Instant::now() + PING_INTERVAL;
        let mut ping = tokio::time::interval_at(start, PING_INTERVAL);
        let silent_limit = (PING_INTERVAL * SILENT_INTERVALS).as_millis() as u64;
        // Checked a few times per timeout period, at most once a second.
        let idle_period = idle_timeout.map_or(Duration::from_secs(1), |t| (t / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)));
        let mut idle_check = tokio::time::interval(idle_period);
        loop {
            tokio::select! {
                line = out_rx.recv() => {
                    let Some(line) = line else {
                        // Every sender is gone, so the connection has ended: its close
                        // reason (an oversized message's 1009, say) comes next.
                        if let Ok(Some(reason)) = (&mut closing).await {
                            let _ = sink.send(Message::Close(Some(reason))).await;
                        }
                        break;
                    };
                    last_message.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                    if let Err(stop) = deliver(&mut sink, line).await {
                        stop.close(&mut sink).await;
                        peer_gone.notify_one();
                        return;
                    }
                    // Whatever else is queued goes out before the one flush.
                    while let Ok(line) = out_rx.try_recv() {
                        if let Err(stop) = deliver(&mut sink, line).await {
                            stop.close(&mut sink).await;
                            peer_gone.notify_one();
                            return;
                        }
                    }
                    if sink.flush().await.is_err() {
                        peer_gone.notify_one();
                        return;
                    }
                }
                _ = idle_check.tick(), if idle_timeout.is_some() => {
                    let Some(limit) = idle_timeout else { continue };
                    let quiet = (started.elapsed().as_millis() as u64).saturating_sub(last_message.load(Ordering::Relaxed));
                    if quiet >= limit.as_millis() as u64 {
                        tracing::debug!(seconds = limit.as_secs_f64(), "websocket connection idle; closing it");
                        let reason = format!("idle for {} s (--ws-idle-timeout)", limit.as_secs_f64());
                        let close = CloseFrame { code: CloseCode::from(IDLE_CLOSE_CODE), reason: reason.into() };
                        let _ = sink.send(Message::Close(Some(close))).await;
                        peer_gone.notify_one();
                        return;
                    }
                }
                _ = ping.tick() => {
                    let silent = (started.elapsed().as_millis() as u64).saturating_sub(last_heard.load(Ordering::Relaxed));
                    if silent > silent_limit || sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                        tracing::debug!("websocket peer is silent or gone; dropping the connection");
                        peer_gone.notify_one();
                        return;
                    }
                }
                reason = &mut closing => {
                    // The connection ended: send what is already queued, then a Close.
                    while let Ok(line) = out_rx.try_recv() {
                        if let Err(stop) = deliver(&mut sink, line).await {
                            stop.close(&mut sink).await;
                            return;
                        }
                    }
                    if let Ok(Some(reason)) = reason {
                        let _ = sink.send(Message::Close(Some(reason))).await;
                    }
                    break;
                }
            }
        }
        let _ = sink.close().await;
    });

    let (reason, _session) = connection::serve(&server, in_rx, out_tx, WEBSOCKET_LABEL).await;
    tracing::debug!(?reason, "websocket connection closed");
    let _ = closing_tx.send(close_frame.try_recv().ok());
    // Bounded, so that a peer that stopped reading cannot keep the task alive.
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    reader.abort();
}

/// Close frame for a message over the size limit.
fn too_big_close_frame() -> CloseFrame {
    let reason = format!("message larger than the {MAX_MESSAGE_BYTES}-byte limit");
    CloseFrame { code: CloseCode::Size, reason: reason.into() }
}

/// Why the writer stopped sending.
enum Stop {
    PeerGone,
    /// A streamed answer could not be completed: the connection is closed with 1011, since
    /// part of the message was already sent and cannot be taken back.
    CutShort,
}

impl Stop {
    async fn close<Si>(self, sink: &mut Si)
    where
        Si: futures_util::Sink<Message, Error = WsError> + Unpin,
    {
        if let Stop::CutShort = self {
            let reason = "an answer failed while it was being sent; its request did not complete";
            let _ = sink.send(Message::Close(Some(CloseFrame { code: CloseCode::Error, reason: reason.into() }))).await;
        }
    }
}

/// Queues one outgoing item: a line as one frame, a streamed line as one fragmented text
/// message with a frame per piece (the last piece is held back until the producer says
/// whether it ends the message).
async fn deliver<Si>(sink: &mut Si, outgoing: Outgoing) -> Result<(), Stop>
where
    Si: futures_util::Sink<Message, Error = WsError> + Unpin,
{
    let mut line = match outgoing {
        Outgoing::Line(line) => return sink.feed(frame(line)).await.map_err(|_| Stop::PeerGone),
        Outgoing::Streamed(line) => line,
    };
    let mut held: Option<Vec<u8>> = None;
    let mut first = true;
    let piece = |data: Vec<u8>, first: bool, last: bool| {
        let opcode = if first { OpCode::Data(Data::Text) } else { OpCode::Data(Data::Continue) };
        Message::Frame(Frame::message(data, opcode, last))
    };
    loop {
        match line.next().await {
            Next::Write(bytes) => {
                if let Some(previous) = held.replace(bytes) {
                    sink.send(piece(previous, first, false)).await.map_err(|_| Stop::PeerGone)?;
                    first = false;
                }
            }
            Next::Finished => {
                let last = held.take().unwrap_or_default();
                return sink.feed(piece(last, first, true)).await.map_err(|_| Stop::PeerGone);
            }
            Next::CutShort => return Err(Stop::CutShort),
        }
    }
}

fn frame(line: Vec<u8>) -> Message {
    match String::from_utf8(line) {
        Ok(text) => Message::Text(text.into()),
        Err(e) => Message::Binary(e.into_bytes().into()),
    }
}

/// The parts of an HTTP request head that matter here.
#[derive(Debug, Default)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    /// Header names lower-cased, values as sent.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl RequestHead {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    /// Whether the comma-separated header `name` lists `token` (case-insensitive).
    fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .any(|(_, v)| String::from_utf8_lossy(v).split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }
}

#[derive(Debug)]
enum HeadError {
    Closed,
    Malformed,
    TooLarge,
}

/// Reads the request head; returns it and any bytes read past it.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(RequestHead, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| HeadError::Closed)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some((head, used)) = parse_head(&buf)? {
            return Ok((head, buf.split_off(used)));
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
    }
}

/// `Some((head, length))` once `buf` holds a complete head.
fn parse_head(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let used = match request.parse(buf) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed),
    };
    let head = RequestHead {
        method: request.method.unwrap_or_default().to_owned(),
        path: request.path.unwrap_or_default().to_owned(),
        headers: request.headers.iter().map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec())).collect(),
    };
    Ok(Some((head, used)))
}

#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Respond { status: u16, reason: &'static str, body: &'static str },
    Upgrade { accept: String, principal: Option<Principal> },
}

fn decide(head: &RequestHead, auth: Option<&Authenticator>, allow_query_token: bool) -> Decision {
    let (path, query) = head.path.split_once('?').unwrap_or((&head.path, ""));
    let respond = |status, reason, body| Decision::Respond { status, reason, body };
    if path == "/readyz" {
        // The readiness probe needs no token.
        return if head.method == "GET" || head.method == "HEAD" {
            respond(200, "OK", "ready")
        } else {
            respond(405, "Method Not Allowed", "method not allowed")
        };
    }
    if path != "/" {
        return respond(404, "Not Found", "not found");
    }
    let key = head.header("sec-websocket-key");
    let is_upgrade = head.method == "GET"
        && head.header_has_token("upgrade", "websocket")
        && head.header_has_token("connection", "upgrade")
        && head.header("sec-websocket-version") == Some(b"13".as_slice())
        && key.is_some();
    let Some(key) = key.filter(|_| is_upgrade) else {
        return respond(400, "Bad Request", "expected a websocket upgrade");
    };
    if head.header("origin").is_some() {
        // Browsers always send Origin; exec-server clients never do.
        return respond(403, "Forbidden", "websocket upgrades carrying an Origin header are refused");
    }
    let mut principal = None;
    if let Some(auth) = auth {
        // Without the operator's consent a `?token=` is ignored, as the reference does.
        let query_token = if allow_query_token { query_token(query) } else { None };
        match auth.check(head.header("authorization"), query_token.as_deref()) {
            Ok(who) => principal = Some(who),
            Err(failure) => return respond(401, "Unauthorized", failure_text(failure)),
        }
    }
    Decision::Upgrade { accept: derive_accept_key(key), principal }
}

/// The (percent-decoded) `token` parameter of the upgrade's query string.
fn query_token(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes()).find(|(name, _)| name == "token").map(|(_, value)| value.into_owned())
}

fn failure_text(failure: AuthFailure) -> &'static str {
    match failure {
        AuthFailure::Missing => "missing websocket bearer token",
        AuthFailure::Invalid => "invalid websocket bearer token",
        AuthFailure::BadHeader => "invalid authorization header",
        AuthFailure::Jwt(JwtFailure::Invalid) => "invalid websocket jwt",
        AuthFailure::Jwt(JwtFailure::Expired) => "expired websocket jwt",
        AuthFailure::Jwt(JwtFailure::NotYetValid) => "websocket jwt is not valid yet",
        AuthFailure::Jwt(JwtFailure::IssuerMismatch) => "websocket jwt issuer mismatch",
        AuthFailure::Jwt(JwtFailure::AudienceMismatch) => "websocket jwt audience mismatch",
    }
}

/// Upgrades refused for who sent them (a bad token, a browser page) are worth an
/// operator's attention; probes and stray HTTP requests are not.
fn log_refusal(peer: SocketAddr, status: u16, body: &str) {
    match status {
        401 | 403 => tracing::warn!(%peer, status, "websocket upgrade refused: {body}"),
        _ => tracing::debug!(%peer, status, "HTTP request answered: {body}"),
    }
}

async fn respond<S: AsyncWrite + Unpin>(stream: &mut S, status: u16, reason: &str, body: &str) -> std::io::Result<()> {
    // RFC 6750 §3: a 401 names the scheme the client should use.
    // RFC 6585 §4: a 429 may say when to come back.
    let challenge = match status {
        401 => "WWW-Authenticate: Bearer\r\n",
        429 => "Retry-After: 1\r\n",
        _ => "",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\n{challenge}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Binds the listener and returns it with the URL to announce (`ws://127.0.0.1:41767`,
/// `wss://...` when `tls`).
pub async fn bind(addr: SocketAddr, tls: bool) -> std::io::Result<(TcpListener, String)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let scheme = if tls { "wss" } else { "ws" };
    Ok((listener, format!("{scheme}://{local}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestHead {
        RequestHead {
            method: method.into(),
            path: path.into(),
            headers: headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec())).collect(),
        }
    }

    const UPGRADE: &[(&str, &str)] = &[
        ("Upgrade", "websocket"),
        ("Connection", "keep-alive, Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    fn decide_plain(head: &RequestHead, auth: Option<&Authenticator>) -> Decision {
        decide(head, auth, false)
    }

    fn status(d: Decision) -> u16 {
        match d {
            Decision::Respond { status, .. } => status,
            Decision::Upgrade { .. } => 101,
        }
    }

    #[test]
    fn http_routes() {
        assert_eq!(status(decide_plain(&head("GET", "/readyz", &[]), None)), 200);
        assert_eq!(status(decide_plain(&head("GET", "/healthz", &[]), None)), 404);
        assert_eq!(status(decide_plain(&head("GET", "/", &[]), None)), 400);
        assert_eq!(status(decide_plain(&head("GET", "/", UPGRADE), None)), 101);
        let mut with_origin = UPGRADE.to_vec();
        with_origin.push(("Origin", "http://example.test"));
        assert_eq!(status(decide_plain(&head("GET", "/", &with_origin), None)), 403);
    }

    #[test]
    fn accept_key_of_rfc6455_example() {
        let d = decide_plain(&head("GET", "/", UPGRADE), None);
        assert_eq!(d, Decision::Upgrade { accept: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into(), principal: None });
    }

    #[test]
    fn auth_applies_to_upgrades_but_not_readyz() {
        let digest = Authenticator::CapabilityToken(super::super::auth::TokenDigest::of_token(b"t0k"));
        assert_eq!(status(decide_plain(&head("GET", "/readyz", &[]), Some(&digest))), 200);
        assert_eq!(
            decide_plain(&head("GET", "/", UPGRADE), Some(&digest)),
            Decision::Respond { status: 401, reason: "Unauthorized", body: "missing websocket bearer token" }
        );
        let mut authed = UPGRADE.to_vec();
        authed.push(("Authorization", "bearer t0k"));
        assert_eq!(status(decide_plain(&head("GET", "/", &authed), Some(&digest))), 101);
    }

    #[test]
    fn query_token_only_when_allowed() {
        let digest = Authenticator::CapabilityToken(super::super::auth::TokenDigest::of_token(b"t 0k"));
        let with_query = head("GET", "/?x=1&token=t%200k", UPGRADE);
        assert_eq!(status(decide(&with_query, Some(&digest), true)), 101);
        assert_eq!(
            decide(&with_query, Some(&digest), false),
            Decision::Respond { status: 401, reason: "Unauthorized", body: "missing websocket bearer token" }
        );
        assert_eq!(status(decide(&head("GET", "/?token=wrong", UPGRADE), Some(&digest), true)), 401);
        assert_eq!(status(decide(&head("GET", "/?token=t0k", &[]), Some(&digest), true)), 400);
    }

    #[test]
    fn listen_urls() {
        assert_eq!(parse_listen_url("ws://127.0.0.1:0").ok(), Some("127.0.0.1:0".parse().expect("addr")));
        assert_eq!(parse_listen_url("ws://[::1]:8765/").ok(), Some("[::1]:8765".parse().expect("addr")));
        assert!(parse_listen_url("ws://localhost:1").is_err());
        assert!(parse_listen_url("http://127.0.0.1:1").is_err());
        assert!(parse_listen_url("ws://127.0.0.1").is_err());
        assert_eq!(parse_wss_listen_url("wss://127.0.0.1:0").ok(), Some("127.0.0.1:0".parse().expect("addr")));
        assert!(parse_wss_listen_url("ws://127.0.0.1:0").is_err());
    }
}
