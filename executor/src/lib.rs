//! executor: a hardened Linux exec-server speaking the Codex exec-server protocol.

pub mod audit;
pub mod crash;
pub mod env_policy;
pub mod environment;
pub mod fds;
pub mod fs;
pub mod init;
pub mod limits;
pub mod notify;
pub mod process;
pub mod protocol;
pub mod rpc;
pub mod sandbox;
pub mod server;
pub mod session;
pub mod sync;
pub mod transport;
