//! What can go wrong with an `http/request`; rpc/errors.rs maps each kind to its code.
//! No message ever carries a header value: values may be secrets (`valueEnvVar`).

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    // The texts of the params errors are the reference's (codex exec-server 0.169.0).
    #[error("http/request url is invalid: {0}")]
    BadUrl(String),
    #[error("http/request only supports http and https URLs, got {0}")]
    BadScheme(String),
    #[error("http/request method `{0}` is not a valid HTTP method")]
    BadMethod(String),
    #[error("http/request header name is invalid: invalid HTTP header name")]
    BadHeaderName,
    /// The value is not shown: it may have come from the executor's environment.
    #[error("http/request header value is invalid for {0}: failed to parse header value")]
    BadHeaderValue(String),
    #[error("http/request header {header} requires executor environment variable {var}{why}")]
    EnvVar { header: String, var: String, why: &'static str },
    #[error("http/request bodyBase64 is not valid base64: {0}")]
    BadBody(String),
    #[error("http/request streamResponse requestId `{0}` is already active")]
    StreamActive(String),
    #[error("too many http/request calls in flight on this connection (limit {0})")]
    TooMany(usize),
    #[error("http/request failed: the connection closed")]
    ConnectionClosed,
    /// The egress policy refused a destination (docs/security-model.md).
    #[error("http/request failed: refused by the egress policy: {0}")]
    Refused(#[from] super::egress::EgressDenied),
    #[error("http/request failed: the response body is larger than the {limit}-byte limit of a non-streamed response (send streamResponse: true for larger bodies)")]
    BodyTooLarge { limit: usize },
    /// The HTTP client could not be set up (TLS roots, resolver).
    #[error("http/request failed: cannot set up the HTTP client: {0}")]
    Client(String),
    /// Connection, TLS, protocol or timeout failures, with reqwest's whole cause chain.
    #[error("http/request failed: {0}")]
    Failed(String),
}

impl HttpError {
    /// A short name of the failure for the audit log, whose lines must not carry what a
    /// message may quote (reqwest's texts quote the whole URL, query included).
    pub fn kind(&self) -> &'static str {
        match self {
            HttpError::BadUrl(_) | HttpError::BadScheme(_) => "bad-url",
            HttpError::BadMethod(_) => "bad-method",
            HttpError::BadHeaderName | HttpError::BadHeaderValue(_) => "bad-header",
            HttpError::EnvVar { .. } => "missing-env-var",
            HttpError::BadBody(_) => "bad-body",
            HttpError::StreamActive(_) => "stream-active",
            HttpError::TooMany(_) => "too-many-requests",
            HttpError::ConnectionClosed => "connection-closed",
            HttpError::Refused(_) => "egress-refused",
            HttpError::BodyTooLarge { .. } => "body-too-large",
            HttpError::Client(_) => "client-setup",
            HttpError::Failed(_) => "failed",
        }
    }

    /// Whether the client's params are at fault (-32602) rather than the network (-32603).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            HttpError::BadUrl(_)
                | HttpError::BadScheme(_)
                | HttpError::BadMethod(_)
                | HttpError::BadHeaderName
                | HttpError::BadHeaderValue(_)
                | HttpError::EnvVar { .. }
                | HttpError::BadBody(_)
                | HttpError::StreamActive(_)
        )
    }

    /// A reqwest failure: a refusal by the egress policy anywhere in its causes (the
    /// resolver's or a redirect hop's) is reported as such; otherwise the whole chain,
    /// because reqwest's own text ("error sending request for url (...)") hides the cause.
    pub fn from_reqwest(e: &reqwest::Error) -> Self {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            if let Some(denied) = cause.downcast_ref::<super::egress::EgressDenied>() {
                return HttpError::Refused(denied.clone());
            }
            let cause_text = cause.to_string();
            // hyper and reqwest repeat their inner error's text in their own.
            if !text.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        HttpError::Failed(text)
    }
}
