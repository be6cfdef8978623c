//! The JSON-RPC envelope as the Codex exec-server speaks it: JSON-RPC 2.0 without the
//! `"jsonrpc"` member, ids that are integers or strings, no batches.

use serde::Serialize;
use serde_json::Value;

use super::error::RpcError;
use super::outgoing::{Outgoing, StreamedLine};

/// A request id, echoed verbatim. Floats and `null` are not ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum RequestId {
    Integer(i64),
    String(String),
}

impl RequestId {
    /// The id used for answers to lines that could not be parsed at all.
    pub const UNPARSEABLE: RequestId = RequestId::Integer(-1);
}

/// A handler's success.
pub enum Answer {
    /// A result to be serialised into the response.
    Result(Value),
    /// The complete response line, built by the handler (see [`response_head`]).
    Line(Vec<u8>),
    /// The response line, written while the handler still produces it (a large
    /// `fs/readFile`).
    Streamed(StreamedLine),
    /// The handler has queued its response line itself (a streamed `http/request`
    /// answers, then sends its body as notifications).
    Sent,
}

/// What answers request `id` with a handler's outcome, or nothing when the handler
/// queued its answer itself.
pub fn answer_line(id: &RequestId, outcome: Result<Answer, RpcError>) -> Option<Outgoing> {
    match outcome {
        Ok(Answer::Result(result)) => Some(response_line(id, &result).into()),
        Ok(Answer::Line(line)) => Some(line.into()),
        Ok(Answer::Streamed(line)) => Some(Outgoing::Streamed(line)),
        Ok(Answer::Sent) => None,
        Err(error) => Some(error_line(id, &error).into()),
    }
}

/// One parsed line from the client.
#[derive(Debug)]
pub enum Incoming {
    Request {
        id: RequestId,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
    },
    /// The client sent a response or an error object: the connection is closed.
    Response,
}

/// Why a line could not be parsed; the text follows serde's wording as the reference does.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

/// Parses one line (without its terminator) into an [`Incoming`] message.
pub fn parse_line(line: &[u8]) -> Result<Incoming, ParseError> {
    let value: Value = serde_json::from_slice(line).map_err(|e| ParseError(e.to_string()))?;
    let Value::Object(mut object) = value else {
        return Err(ParseError("expected a JSON-RPC object".into()));
    };
    let method = match object.remove("method") {
        Some(Value::String(m)) => Some(m),
        Some(_) => return Err(ParseError("invalid type for `method`, expected a string".into())),
        None => None,
    };
    let id = match object.remove("id") {
        Some(raw) => Some(parse_id(raw)?),
        None => None,
    };
    match (id, method) {
        (Some(id), Some(method)) => {
            let params = object.remove("params").unwrap_or(Value::Null);
            Ok(Incoming::Request { id, method, params })
        }
        (None, Some(method)) => Ok(Incoming::Notification { method }),
        (Some(_), None) if object.contains_key("result") || object.contains_key("error") => Ok(Incoming::Response),
        _ => Err(ParseError("data did not match any variant of untagged enum JSONRPCMessage".into())),
    }
}

fn parse_id(raw: Value) -> Result<RequestId, ParseError> {
    match raw {
        Value::Number(n) if n.is_i64() => n.as_i64().map(RequestId::Integer).ok_or_else(|| ParseError(UNTAGGED_ID.into())),
        Value::String(s) => Ok(RequestId::String(s)),
        _ => Err(ParseError(UNTAGGED_ID.into())),
    }
}

const UNTAGGED_ID: &str = "data did not match any variant of untagged enum RequestId";

/// The id of a message of which only `prefix` (its first bytes) was kept, because the
/// whole message was over the size limit: found only when `"id"` is a member of the
/// top-level object that ends within the prefix, before any member that does not.
/// Clients put the id first, so the answer usually reaches the request that caused it.
pub fn recover_id(prefix: &[u8]) -> Option<RequestId> {
    // A number that runs up to the end of the prefix may have been cut: drop its
    // trailing digits so that it cannot be read as a shorter, different id.
    let cut = prefix.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let prefix = &prefix[..prefix.len() - cut];
    let found = std::cell::Cell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(prefix);
    // The prefix is an unfinished object, so this always ends in an error; what counts
    // is whether the id was seen before it.
    let _ = serde::Deserializer::deserialize_map(&mut deserializer, IdFinder(&found));
    found.take()
}

/// Visits the members of an object until `"id"`, storing its value when it is an id.
struct IdFinder<'a>(&'a std::cell::Cell<Option<RequestId>>);

impl<'de> serde::de::Visitor<'de> for IdFinder<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON-RPC object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "id" {
                self.0.set(parse_id(map.next_value::<Value>()?).ok());
                return Ok(());
            }
            map.next_value::<serde::de::IgnoredAny>()?;
        }
        Ok(())
    }
}

/// Serialises a success response as one line (without the trailing newline).
pub fn response_line(id: &RequestId, result: &Value) -> Vec<u8> {
    #[derive(Serialize)]
    struct Success<'a> {
        id: &'a RequestId,
        result: &'a Value,
    }
    to_line(&Success { id, result })
}

/// The start of a success response whose result the handler appends itself, as JSON
/// text: `{"id":<id>,"result":`. [`finish_response`] closes it. For results too large
/// to pass through a `Value` (fs/readFile): the data is encoded straight into the line.
pub fn response_head(id: &RequestId) -> Vec<u8> {
    let mut line = br#"{"id":"#.to_vec();
    // A RequestId is an integer or a string: serialising it cannot fail.
    let _ = serde_json::to_writer(&mut line, id);
    line.extend_from_slice(br#","result":"#);
    line
}

/// Closes a line begun with [`response_head`] once the result has been appended.
pub fn finish_response(line: &mut Vec<u8>) {
    line.push(b'}');
}

/// Serialises an error response as one line (without the trailing newline).
pub fn error_line(id: &RequestId, error: &RpcError) -> Vec<u8> {
    #[derive(Serialize)]
    struct Failure<'a> {
        error: &'a RpcError,
        id: &'a RequestId,
    }
    to_line(&Failure { error, id })
}

/// Serialises a server notification as one line.
pub fn notification_line<P: Serialize>(method: &str, params: &P) -> Vec<u8> {
    #[derive(Serialize)]
    struct Notification<'a, P> {
        method: &'a str,
        params: &'a P,
    }
    to_line(&Notification { method, params })
}

/// A `process/output` notification line, built by concatenation: base64 never needs JSON
/// escaping, and scanning megabytes of it through a serializer was the streaming
/// bottleneck. `process_id_json` is the id already encoded as a JSON string.
pub fn output_notification_line(process_id_json: &str, seq: u64, stream: &str, chunk_base64: &str) -> Vec<u8> {
    const HEAD: &str = r#"{"method":"process/output","params":{"processId":"#;
    let mut line = Vec::with_capacity(HEAD.len() + process_id_json.len() + chunk_base64.len() + 64);
    line.extend_from_slice(HEAD.as_bytes());
    line.extend_from_slice(process_id_json.as_bytes());
    line.extend_from_slice(br#","seq":"#);
    line.extend_from_slice(seq.to_string().as_bytes());
    line.extend_from_slice(br#","stream":""#);
    line.extend_from_slice(stream.as_bytes());
    line.extend_from_slice(br#"","chunk":""#);
    line.extend_from_slice(chunk_base64.as_bytes());
    line.extend_from_slice(br#""}}"#);
    line
}

/// A string encoded as a JSON string literal (with quotes).
pub fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

fn to_line<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising our own plain structs cannot fail (no maps with non-string keys, no
    // failing Serialize impls), so an empty object is only a theoretical fallback.
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> String {
        match parse_line(line.as_bytes()) {
            Err(e) => e.to_string(),
            Ok(m) => panic!("parsed {m:?}"),
        }
    }

    #[test]
    fn requests_notifications_and_responses() {
        match parse_line(br#"{"id":"x","method":"m"}"#) {
            Ok(Incoming::Request { id, method, params }) => {
                assert_eq!(id, RequestId::String("x".into()));
                assert_eq!(method, "m");
                assert_eq!(params, Value::Null);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_line(br#"{"method":"initialized"}"#), Ok(Incoming::Notification { .. })));
        assert!(matches!(parse_line(br#"{"id":1,"result":{}}"#), Ok(Incoming::Response)));
        assert!(matches!(parse_line(br#"{"id":1,"error":{"code":1,"message":"x"}}"#), Ok(Incoming::Response)));
    }

    #[test]
    fn parse_errors_use_reference_wording() {
        assert_eq!(err("this is not json"), "expected ident at line 1 column 2");
        assert_eq!(err("[]"), "expected a JSON-RPC object");
        assert_eq!(err(r#"{"id":1.5,"method":"x"}"#), UNTAGGED_ID);
        assert_eq!(err(r#"{"id":null,"method":"x"}"#), UNTAGGED_ID);
        assert!(err(r#"{"id":1}"#).contains("untagged enum"));
    }

    #[test]
    fn hand_built_output_line_equals_the_serialised_one() {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Output<'a> {
            process_id: &'a str,
            seq: u64,
            stream: &'a str,
            chunk: &'a str,
        }
        let id = "p\"1\\é";
        let line = output_notification_line(&json_string(id), 42, "stderr", "aGVsbG8K");
        let expected = notification_line("process/output", &Output { process_id: id, seq: 42, stream: "stderr", chunk: "aGVsbG8K" });
        assert_eq!(line, expected);
    }

    #[test]
    fn hand_built_response_equals_the_serialised_one() {
        for id in [RequestId::Integer(-7), RequestId::String("r\"1\\é".into())] {
            let mut line = response_head(&id);
            line.extend_from_slice(br#"{"dataBase64":"aGk="}"#);
            finish_response(&mut line);
            assert_eq!(line, response_line(&id, &serde_json::json!({"dataBase64": "aGk="})));
        }
    }

    #[test]
    fn ids_are_recovered_from_the_start_of_an_oversized_message() {
        let id = |prefix: &str| recover_id(prefix.as_bytes());
        assert_eq!(id(r#"{"id":41,"method":"fs/writeFile","params":{"dataBase64":"AAAA"#), Some(RequestId::Integer(41)));
        assert_eq!(id(r#" { "method" : "x", "id" : "r-1", "params": {"a": "#), Some(RequestId::String("r-1".into())));
        assert_eq!(id(r#"{"method":"x","params":{"id":3,"data":"AAAA"#), None, "an id inside params is not the id");
        // Cut inside the id itself: a number may be longer than what was kept.
        assert_eq!(id(r#"{"id":12"#), None);
        assert_eq!(id(r#"{"id":"abc"#), None);
        assert_eq!(id(r#"{"id":1.5,"method":"#), None);
        assert_eq!(id(r#"{"id":null,"method":"#), None);
        assert_eq!(id("[1,2,3"), None);
        assert_eq!(id("    "), None);
        assert_eq!(id(""), None);
    }

    #[test]
    fn output_lines_have_no_jsonrpc_member() {
        let line = response_line(&RequestId::Integer(7), &serde_json::json!({"a":1}));
        assert_eq!(line, br#"{"id":7,"result":{"a":1}}"#);
        let line = error_line(&RequestId::UNPARSEABLE, &RpcError::invalid_request("bad"));
        assert_eq!(line, br#"{"error":{"code":-32600,"message":"bad"},"id":-1}"#);
    }
}
