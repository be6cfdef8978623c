//! Transports deliver messages to a connection and write its lines back. They know the
//! framing, not the protocol.

pub mod auth;
pub mod cli;
pub mod jwt;
pub mod peers;
pub mod stdio;
pub mod tls;
pub mod ws;

/// The largest message accepted; a longer line drops the connection (protocol.md §1.2).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Where the server listens (`--listen`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// One connection on stdin/stdout.
    Stdio,
    /// A websocket listener on this address.
    Ws(std::net::SocketAddr),
    /// A websocket listener over TLS (`wss://`).
    Wss(std::net::SocketAddr),
}

impl std::str::FromStr for Listen {
    type Err = ws::ListenUrlError;

    /// `stdio` (or `stdio://`), `ws://IP:PORT` or `wss://IP:PORT`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "stdio" | "stdio://" => Ok(Listen::Stdio),
            _ if text.starts_with("wss://") => ws::parse_wss_listen_url(text).map(Listen::Wss),
            _ => ws::parse_listen_url(text).map(Listen::Ws),
        }
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Stdio => f.write_str("stdio"),
            Listen::Ws(addr) => write!(f, "ws://{addr}"),
            Listen::Wss(addr) => write!(f, "wss://{addr}"),
        }
    }
}
