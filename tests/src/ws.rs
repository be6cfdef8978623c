//! Websocket side of the harness: a server started with `--listen ws://127.0.0.1:0`, clients
//! speaking the protocol over real websocket connections, and raw HTTP requests to its port.
//! Timeouts only stop a hung test.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest as _;
use tungstenite::http::HeaderValue;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::{executor_bin, ClientState, RpcClient, TIMEOUT};

/// An executor serving websocket connections.
pub struct WsServer {
    pub child: Child,
    /// `ws://127.0.0.1:PORT`, as the server printed it.
    pub url: String,
    /// Lines the server printed on stdout after the URL (there must be none).
    extra_stdout: Arc<Mutex<Vec<String>>>,
    /// What the server wrote on stderr, when started with [`WsServer::spawn_capturing_stderr`].
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl WsServer {
    /// `executor --listen ws://127.0.0.1:0` with extra arguments.
    pub fn start(args: &[&str]) -> Self {
        let mut command = Command::new(executor_bin());
        command.args(["--listen", "ws://127.0.0.1:0"]).args(args);
        Self::spawn(command)
    }

    /// `executor --listen wss://127.0.0.1:0 --tls-cert CERT --tls-key KEY` with extra
    /// arguments, stderr kept.
    pub fn start_tls(cert: &Path, key: &Path, args: &[&str]) -> Self {
        let mut command = Command::new(executor_bin());
        command.args(["--listen", "wss://127.0.0.1:0", "--tls-cert"]).arg(cert).arg("--tls-key").arg(key).args(args);
        // Reloads are reported at info level.
        command.env("EXECUTOR_LOG", "info");
        Self::spawn_capturing_stderr(command)
    }

    /// Starts `command`, which must print a ws URL as its first stdout line.
    pub fn spawn(command: Command) -> Self {
        Self::spawn_with(command, false)
    }

    /// [`WsServer::spawn`], keeping the server's stderr for [`WsServer::stderr`].
    pub fn spawn_capturing_stderr(command: Command) -> Self {
        Self::spawn_with(command, true)
    }

    fn spawn_with(mut command: Command, capture_stderr: bool) -> Self {
        // stdin at EOF from the start: a ws server must not care.
        let stderr_to = if capture_stderr { Stdio::piped() } else { Stdio::inherit() };
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr_to);
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start executor: {e}"));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = stderr.clone();
            thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                    sink.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(&chunk[..n]);
                }
            });
        }
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        let extra_stdout = Arc::new(Mutex::new(Vec::new()));
        let extra = extra_stdout.clone();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for line in lines.map_while(Result::ok) {
                extra.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let url = match rx.recv_timeout(TIMEOUT) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("executor printed no URL within {TIMEOUT:?}");
            }
        };
        Self { child, url, extra_stdout, stderr }
    }

    /// Waits until the captured stderr contains `text` (hang guard: [`TIMEOUT`]) and
    /// returns all of it.
    pub fn stderr_containing(&self, text: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let so_far = String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
            if so_far.contains(text) || Instant::now() >= deadline {
                return so_far;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        self.url.strip_prefix("ws://").or_else(|| self.url.strip_prefix("wss://")).unwrap_or_else(|| panic!("not a ws URL: {}", self.url))
    }

    pub fn connect(&self) -> WsClient {
        WsClient::connect(&self.url, &[]).unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url))
    }

    /// A connected client that has completed the handshake.
    pub fn ready(&self) -> WsClient {
        let mut client = self.connect();
        client.handshake();
        client
    }

    /// Resumes session `id` on a new connection (and sends `initialized`), retrying while
    /// the server has not yet noticed that the previous connection is gone (-32010); the
    /// retry loop is only a hang guard.
    pub fn resume_when_detached(&self, id: &str) -> WsClient {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let mut client = self.connect();
            let response = client.resume(id);
            if let Some(result) = response.get("result") {
                assert_eq!(result["sessionId"], json!(id), "resume must return the same session id");
                client.notify("initialized", json!({}));
                return client;
            }
            assert_eq!(response["error"]["code"], json!(-32010), "{response}");
            assert!(Instant::now() < deadline, "session {id} still attached after {TIMEOUT:?}");
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn extra_stdout(&self) -> Vec<String> {
        self.extra_stdout.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for the server to exit; panics at the hang guard.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "executor did not exit within {TIMEOUT:?}");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for WsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One websocket connection speaking the protocol.
pub struct WsClient {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    state: ClientState,
    closed: bool,
    /// Code and reason of the server's Close frame, once one arrived.
    pub close_frame: Option<(u16, String)>,
}

/// What a read from the socket gave.
enum Received {
    Message(Value),
    TimedOut,
    Closed,
}

impl WsClient {
    /// Connects to `url` with extra request headers; the error of a refused upgrade
    /// carries the HTTP response.
    pub fn connect(url: &str, headers: &[(&str, &str)]) -> Result<Self, tungstenite::Error> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes()).expect("valid header name");
            request.headers_mut().append(name, HeaderValue::from_str(value).expect("valid header value"));
        }
        let (ws, _response) = tungstenite::connect(request)?;
        Ok(Self { ws, state: ClientState::starting_ids_at(1000), closed: false, close_frame: None })
    }

    /// Connects to a `wss://` URL with a TLS client configuration ([`tls_client_config`]).
    pub fn connect_tls(url: &str, headers: &[(&str, &str)], tls: Arc<rustls::ClientConfig>) -> Result<Self, tungstenite::Error> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes()).expect("valid header name");
            request.headers_mut().append(name, HeaderValue::from_str(value).expect("valid header value"));
        }
        let addr = url.strip_prefix("wss://").unwrap_or_else(|| panic!("not a wss URL: {url}"));
        let tcp = TcpStream::connect(addr.trim_end_matches('/'))?;
        // Bounds the TLS handshake and the upgrade, which a refusing server may never finish.
        tcp.set_read_timeout(Some(TIMEOUT))?;
        match tungstenite::client_tls_with_config(request, tcp, None, Some(tungstenite::Connector::Rustls(tls))) {
            Ok((ws, _response)) => Ok(Self { ws, state: ClientState::starting_ids_at(1000), closed: false, close_frame: None }),
            Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
            Err(tungstenite::HandshakeError::Interrupted(_)) => panic!("a blocking handshake was interrupted"),
        }
    }

    fn tcp(&self) -> &TcpStream {
        match self.ws.get_ref() {
            MaybeTlsStream::Plain(stream) => stream,
            MaybeTlsStream::Rustls(stream) => stream.get_ref(),
            _ => panic!("tests use ws:// and wss:// (rustls) only"),
        }
    }

    pub fn handshake(&mut self) -> Value {
        let result = self.call("initialize", json!({"clientName": "ws-tests"}));
        self.notify("initialized", json!({}));
        result
    }

    /// `initialize` with `resumeSessionId`; the whole response (result or error).
    pub fn resume(&mut self, session_id: &str) -> Value {
        self.request("initialize", json!({"clientName": "ws-tests", "resumeSessionId": session_id}))
    }

    pub fn send_frame(&mut self, message: Message) {
        // A server that already closed the connection is observed by the test elsewhere.
        let _ = self.ws.send(message);
    }

    fn receive(&mut self, deadline: Instant) -> Received {
        if self.closed {
            return Received::Closed;
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Received::TimedOut;
            }
            let _ = self.tcp().set_read_timeout(Some(left));
            match self.ws.read() {
                Ok(Message::Text(text)) => return Received::Message(parse(text.as_bytes())),
                Ok(Message::Binary(data)) => return Received::Message(parse(&data)),
                Ok(Message::Close(frame)) => {
                    self.close_frame = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                    self.closed = true;
                    return Received::Closed;
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => {
                    self.closed = true;
                    return Received::Closed;
                }
            }
        }
    }

    /// True when the server closed the connection within the hang guard; messages that
    /// arrive meanwhile stay pending.
    pub fn wait_closed(&mut self) -> bool {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.receive(deadline) {
                Received::Message(m) => self.state.pending.push(m),
                Received::Closed => return true,
                Received::TimedOut => return false,
            }
        }
    }

    /// Drops the TCP connection without a websocket Close, like a vanished client.
    pub fn drop_tcp(self) {
        let _ = self.tcp().shutdown(Shutdown::Both);
    }

    /// Reads a process's whole retained stream with `process/read` from `afterSeq` 0 until
    /// it is closed: (seq, bytes) per chunk, and the exit code.
    pub fn read_all(&mut self, process_id: &str) -> (Vec<(u64, Vec<u8>)>, Option<i64>) {
        let mut chunks = Vec::new();
        let mut after = 0u64;
        let deadline = Instant::now() + TIMEOUT;
        loop {
            assert!(Instant::now() < deadline, "{process_id} did not close within {TIMEOUT:?}");
            let result = self.call("process/read", json!({"processId": process_id, "afterSeq": after, "waitMs": 1000}));
            for chunk in result["chunks"].as_array().expect("chunks") {
                let seq = chunk["seq"].as_u64().expect("seq");
                chunks.push((seq, crate::unb64(chunk["chunk"].as_str().expect("chunk"))));
            }
            after = result["nextSeq"].as_u64().expect("nextSeq").saturating_sub(1);
            if result["closed"] == json!(true) {
                return (chunks, result["exitCode"].as_i64());
            }
        }
    }
}

impl RpcClient for WsClient {
    fn send(&mut self, message: &Value) {
        self.send_frame(Message::text(message.to_string()));
    }

    fn recv_until(&mut self, deadline: Instant) -> Option<Value> {
        match self.receive(deadline) {
            Received::Message(message) => Some(message),
            Received::TimedOut | Received::Closed => None,
        }
    }

    fn state(&mut self) -> &mut ClientState {
        &mut self.state
    }
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("server sent a non-JSON frame {:?}: {e}", String::from_utf8_lossy(bytes)))
}

/// A plain HTTP/1.1 request to `addr` (`127.0.0.1:PORT`); returns status and body.
pub fn http_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let response = http_request(addr, path, headers);
    (response.status, response.body)
}

/// An HTTP response as the server sent it.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header lines after the status line, as sent (`Name: value`).
    pub headers: Vec<String>,
    pub body: String,
}

/// A plain HTTP/1.1 GET to `addr` (`127.0.0.1:PORT`).
pub fn http_request(addr: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    stream.set_read_timeout(Some(TIMEOUT)).expect("set timeout");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send request");
    let mut response = Vec::new();
    // The server answers plain HTTP with `Connection: close`, so EOF ends the response.
    stream.read_to_end(&mut response).unwrap_or_else(|e| panic!("reading the response to {path}: {e}"));
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    HttpResponse { status, headers: lines.map(str::to_owned).collect(), body: body.to_owned() }
}

/// Headers of a websocket upgrade request, for [`http_get`].
pub const UPGRADE_HEADERS: &[(&str, &str)] = &[
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

/// A TLS client configuration trusting the CA certificates in `ca_pem`, presenting
/// `client` (certificate and key PEM) when given.
pub fn tls_client_config(ca_pem: &Path, client: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem).expect("read CA PEM") {
        roots.add(cert.expect("CA certificate")).expect("add CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain: Vec<_> = CertificateDer::pem_file_iter(cert).expect("read client cert").map(|c| c.expect("client cert")).collect();
            let key = PrivateKeyDer::from_pem_file(key).expect("read client key");
            builder.with_client_auth_cert(chain, key).expect("client certificate")
        }
    };
    Arc::new(config)
}

/// A GET over TLS to `addr` (`127.0.0.1:PORT`); status and body, or the I/O error of a
/// refused handshake.
pub fn https_get(addr: &str, path: &str, tls: Arc<rustls::ClientConfig>) -> std::io::Result<(u16, String)> {
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    let connection = rustls::ClientConnection::new(tls, name).map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(TIMEOUT))?;
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) => {}
        // The server closes after the response without a TLS close_notify at times.
        Err(e) if e.kind() == ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e),
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, body.to_owned()))
}
