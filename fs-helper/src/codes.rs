//! The JSON-RPC error codes of the exec-server protocol (protocol.md §1.4): the one
//! table, used by the fs operations here and by every handler of the executor.

pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// A path or handle that does not exist.
pub const NOT_FOUND: i64 = -32004;
/// `initialize` with the id of a session another connection holds.
pub const SESSION_ATTACHED: i64 = -32010;
