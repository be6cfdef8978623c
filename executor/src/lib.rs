//! executor: a hardened Linux exec-server speaking the Codex exec-server protocol.

pub mod audit;
pub mod child_env;
pub mod connection;
pub mod crash;
pub mod fds;
pub mod fs;
pub mod host_info;
pub mod http;
pub mod limits;
pub mod notify;
pub mod process;
pub mod protocol;
pub mod reaper;
pub mod rpc;
pub mod sandbox;
pub mod server;
pub mod session;
pub mod sync;
pub mod transport;
