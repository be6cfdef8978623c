//! `http/request` (protocol.md §11): params, result and the `http/request/bodyDelta`
//! notification, as serde types. Unknown members are ignored, as everywhere.

use serde::{Deserialize, Serialize};

/// One request header. `valueEnvVar` names a variable of the executor's own environment
/// whose value is appended to `value` (`httpHeaderEnvVars`), so that a secret such as a
/// bearer token never travels through the client. `value` is required even then, as the
/// reference has it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeaderParam {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub value_env_var: Option<String>,
}

/// Whether redirects are followed (the default) or returned as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RedirectPolicy {
    #[default]
    Follow,
    Stop,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequestParams {
    pub method: String,
    pub url: String,
    /// Ordered; repeated names are kept.
    #[serde(default)]
    pub headers: Vec<HttpHeaderParam>,
    #[serde(default)]
    pub body_base64: Option<String>,
    /// Absent or null: no timeout.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Absent or null: follow.
    #[serde(default)]
    pub redirect_policy: Option<RedirectPolicy>,
    /// Required; names the body stream of a streamed response.
    pub request_id: String,
    #[serde(default)]
    pub stream_response: bool,
}

/// A response header; names are lower-cased (HTTP/2 style, as the reference sends them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequestResult {
    pub status: u16,
    pub headers: Vec<HttpHeader>,
    /// The whole body; empty when the body is streamed.
    pub body_base64: String,
}

pub const BODY_DELTA_METHOD: &str = "http/request/bodyDelta";

/// An `http/request/bodyDelta` notification line, built by concatenation like
/// `process/output`: base64 needs no JSON escaping, and this is the streaming hot path, so
/// `delta` is encoded straight into the line (no intermediate string). `request_id_json`
/// is the id already encoded as a JSON string; `error_json` a JSON string or `null`.
pub fn body_delta_line(request_id_json: &str, seq: u64, delta: &[u8], done: bool, error_json: &str) -> Vec<u8> {
    const HEAD: &str = r#"{"method":"http/request/bodyDelta","params":{"requestId":"#;
    let encoded_len = base64_simd::STANDARD.encoded_length(delta.len());
    let mut line = Vec::with_capacity(HEAD.len() + request_id_json.len() + encoded_len + error_json.len() + 64);
    line.extend_from_slice(HEAD.as_bytes());
    line.extend_from_slice(request_id_json.as_bytes());
    line.extend_from_slice(br#","seq":"#);
    line.extend_from_slice(seq.to_string().as_bytes());
    line.extend_from_slice(br#","deltaBase64":""#);
    let start = line.len();
    line.resize(start + encoded_len, 0);
    let written = base64_simd::STANDARD.encode(delta, base64_simd::Out::from_slice(&mut line[start..])).len();
    line.truncate(start + written);
    line.extend_from_slice(br#"","done":"#);
    line.extend_from_slice(if done { b"true" } else { b"false" });
    line.extend_from_slice(br#","error":"#);
    line.extend_from_slice(error_json.as_bytes());
    line.extend_from_slice(b"}}");
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::envelope::{json_string, notification_line};
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;
    use serde_json::json;

    #[test]
    fn delta_line_is_the_serialised_notification() {
        let line = body_delta_line(&json_string("r\"2"), 7, b"hi", true, &json_string("boom"));
        let expected =
            notification_line(BODY_DELTA_METHOD, &json!({"requestId":"r\"2","seq":7,"deltaBase64":"aGk=","done":true,"error":"boom"}));
        let parsed: serde_json::Value = serde_json::from_slice(&line).expect("json");
        let wanted: serde_json::Value = serde_json::from_slice(&expected).expect("json");
        assert_eq!(parsed, wanted);
        // Every tail length, and sizes past the SIMD block widths, agree with the base64 crate.
        for len in (0..100).chain([1000, 4099, 262_144]) {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let line = body_delta_line("\"r\"", 1, &data, false, "null");
            let parsed: serde_json::Value = serde_json::from_slice(&line).expect("json");
            assert_eq!(parsed["params"]["deltaBase64"], BASE64.encode(&data), "{len} bytes");
        }
    }

    #[test]
    fn params_defaults() {
        let p: HttpRequestParams =
            serde_json::from_value(json!({"method":"GET","url":"http://x/","requestId":"r","timeoutMs":null})).expect("decodes");
        assert!(p.headers.is_empty() && p.body_base64.is_none() && p.timeout_ms.is_none() && !p.stream_response);
        assert_eq!(p.redirect_policy, None);
        let e = serde_json::from_value::<HttpRequestParams>(json!({"method":"GET","url":"http://x/"})).err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("missing field `requestId`"));
        let p: HttpRequestParams = serde_json::from_value(
            json!({"method":"GET","url":"u","requestId":"r","redirectPolicy":"stop","headers":[{"name":"a","value":"","valueEnvVar":"V"}]}),
        )
        .expect("decodes");
        assert_eq!(p.redirect_policy, Some(RedirectPolicy::Stop));
        assert_eq!((p.headers[0].value.as_str(), p.headers[0].value_env_var.as_deref()), ("", Some("V")));
        let e = serde_json::from_value::<HttpRequestParams>(json!({"method":"GET","url":"u","requestId":"r","headers":[{"name":"a"}]}))
            .err()
            .map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("missing field `value`"), "as the reference");
    }
}
