//! The wire protocol: envelope, method params/results and error codes. It knows nothing of
//! transports, processes or sandboxes.

pub mod envelope;
pub mod error;
pub mod http;
pub mod outgoing;
pub mod sandbox_context;
pub mod types;

/// The protocol this server speaks, for `--version`.
pub const PROTOCOL: &str = "Codex exec-server protocol of codex-cli 0.169.0";

pub use envelope::{parse_line, Incoming, RequestId};
pub use error::RpcError;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Decodes params as the reference does: serde's message on failure (-32602), and `{}` is
/// retried as `null` so that unit-typed params accept an empty object.
pub fn decode_params<P: DeserializeOwned>(params: Value) -> Result<P, RpcError> {
    let empty_object = matches!(&params, Value::Object(m) if m.is_empty());
    match serde_json::from_value(params) {
        Ok(p) => Ok(p),
        Err(first) if empty_object => serde_json::from_value(Value::Null).map_err(|_| params_error(first)),
        Err(e) => Err(params_error(e)),
    }
}

/// serde's text, with the code a URI error inside the params calls for (a non-local host is
/// -32600, everything else -32602).
fn params_error(e: serde_json::Error) -> RpcError {
    let message = e.to_string();
    RpcError::new(fs_helper::uri::code_for_params_message(&message), message)
}

#[cfg(test)]
mod tests {
    use super::types::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn unit_params_accept_null_and_empty_object_only() {
        assert!(decode_params::<NoParams>(Value::Null).is_ok());
        assert!(decode_params::<NoParams>(json!({})).is_ok());
        let err = decode_params::<NoParams>(json!({"x": 1})).err().map(|e| e.code);
        assert_eq!(err, Some(error::INVALID_PARAMS));
    }

    #[test]
    fn serde_messages_match_the_reference() {
        let e = decode_params::<InitializeParams>(json!({})).err().map(|e| e.message);
        assert_eq!(e.as_deref(), Some("missing field `clientName`"));
        let e = decode_params::<ProcessSignalParams>(json!({"processId":"p","signal":"kill"})).err().map(|e| e.message);
        assert_eq!(e.as_deref(), Some("unknown variant `kill`, expected `interrupt`"));
        let e = decode_params::<EnvPolicy>(json!({"inherit":"All","ignoreDefaultExcludes":false,
            "exclude":[],"set":{},"includeOnly":[]}))
        .err()
        .map(|e| e.message);
        assert_eq!(e.as_deref(), Some("unknown variant `All`, expected one of `core`, `all`, `none`"));
    }
}
