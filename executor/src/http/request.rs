//! Turning `http/request` params into a request the client can send: the URL checked to be
//! absolute http(s), headers in order with `valueEnvVar` values filled in from the
//! executor's environment, the body decoded. Everything a client can get wrong is found
//! here, before any connection is made.

use std::ffi::OsString;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;

use super::HttpError;
use crate::protocol::http::{HttpRequestParams, RedirectPolicy};

/// A request ready to send.
#[derive(Debug)]
pub struct Prepared {
    pub method: Method,
    pub url: url::Url,
    /// In the order given; a repeated name keeps every value, in order. (A header map
    /// groups the values of one name together; the relative order of different names is
    /// kept, and HTTP gives no meaning to it across names.)
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
    pub timeout: Option<Duration>,
    pub redirect: RedirectPolicy,
    pub stream: bool,
    pub request_id: String,
}

/// Checks and converts `params`; `env` reads the executor's environment.
pub fn prepare(params: HttpRequestParams, env: impl Fn(&str) -> Option<OsString>) -> Result<Prepared, HttpError> {
    let method = Method::from_bytes(params.method.as_bytes()).map_err(|_| HttpError::BadMethod(params.method.clone()))?;
    let url = url::Url::parse(&params.url).map_err(|e| HttpError::BadUrl(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(HttpError::BadScheme(url.scheme().to_owned()));
    }
    if url.host().is_none() {
        return Err(HttpError::BadUrl("empty host".to_owned()));
    }
    let mut headers = HeaderMap::with_capacity(params.headers.len());
    for header in params.headers {
        let name = HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| HttpError::BadHeaderName)?;
        let mut value = header.value.into_bytes();
        let from_env = header.value_env_var.is_some();
        if let Some(var) = header.value_env_var {
            let env_error = |why| HttpError::EnvVar { header: header.name.clone(), var: var.clone(), why };
            let found = env(&var).ok_or_else(|| env_error(""))?;
            let found = found.into_string().map_err(|_| env_error(" (its value is not valid UTF-8)"))?;
            value.extend_from_slice(found.as_bytes());
        }
        let mut value = HeaderValue::from_bytes(&value).map_err(|_| HttpError::BadHeaderValue(header.name.clone()))?;
        // A value from the environment is a secret: hyper then keeps it out of HPACK's
        // index, and `Debug` output shows `Sensitive` instead of it.
        value.set_sensitive(from_env);
        headers.append(name, value);
    }
    let body = match params.body_base64 {
        Some(text) => Some(BASE64.decode(text.as_bytes()).map_err(|e| HttpError::BadBody(e.to_string()))?),
        None => None,
    };
    Ok(Prepared {
        method,
        url,
        headers,
        body,
        timeout: params.timeout_ms.map(Duration::from_millis),
        redirect: params.redirect_policy.unwrap_or_default(),
        stream: params.stream_response,
        request_id: params.request_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(value: serde_json::Value) -> HttpRequestParams {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
    }

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    #[test]
    fn headers_keep_order_and_duplicates_and_env_values_are_appended() {
        let p = params(json!({"method":"POST","url":"https://h.example/x?q=1","requestId":"r","bodyBase64":"aGk=","timeoutMs":1500,
            "headers":[{"name":"X-A","value":"1"},{"name":"Authorization","value":"Bearer ","valueEnvVar":"TOKEN"},{"name":"x-a","value":"2"}]}));
        let env = |name: &str| (name == "TOKEN").then(|| OsString::from("s3cret"));
        let prepared = prepare(p, env).unwrap_or_else(|e| panic!("{e}"));
        let values: Vec<_> = prepared.headers.get_all("x-a").iter().map(|v| v.to_str().unwrap_or("?").to_owned()).collect();
        assert_eq!(values, ["1", "2"]);
        let auth = prepared.headers.get("authorization").map(|v| (v.to_str().unwrap_or("?").to_owned(), v.is_sensitive()));
        assert_eq!(auth, Some(("Bearer s3cret".to_owned(), true)));
        assert_eq!(prepared.body.as_deref(), Some(&b"hi"[..]));
        assert_eq!(prepared.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(prepared.redirect, RedirectPolicy::Follow);
    }

    #[test]
    fn client_mistakes_are_named_without_values() {
        let err = |v: serde_json::Value| prepare(params(v), no_env).err().map(|e| (e.is_client_error(), e.to_string()));
        let (client, message) = err(json!({"method":"GET","url":"http://x/","requestId":"r",
            "headers":[{"name":"Authorization","value":"","valueEnvVar":"NOPE_TOKEN"}]}))
        .unwrap_or_default();
        assert!(client);
        assert_eq!(message, "http/request header Authorization requires executor environment variable NOPE_TOKEN");
        let (_, message) = err(json!({"method":"GET","url":"/relative","requestId":"r"})).unwrap_or_default();
        assert!(message.contains("relative URL without a base"), "{message}");
        let (_, message) = err(json!({"method":"GET","url":"file:///etc/passwd","requestId":"r"})).unwrap_or_default();
        assert_eq!(message, "http/request only supports http and https URLs, got file");
        let (_, message) = err(json!({"method":"GET","url":"http://x/","requestId":"r","headers":[{"name":"a","value":"bad\nsecret"}]}))
            .unwrap_or_default();
        assert!(!message.contains("secret"), "{message}");
        assert!(err(json!({"method":"G ET","url":"http://x/","requestId":"r"})).is_some());
        assert!(err(json!({"method":"GET","url":"http://x/","requestId":"r","headers":[{"name":"a b","value":""}]})).is_some());
        assert!(err(json!({"method":"GET","url":"http://x/","requestId":"r","bodyBase64":"***"})).is_some());
    }
}
