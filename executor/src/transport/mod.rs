//! Transports deliver messages to a connection and write its lines back. They know the
//! framing, not the protocol.

pub mod auth;
pub mod stdio;
pub mod ws;

/// The largest message accepted; a longer line drops the connection (protocol.md §1.2).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
