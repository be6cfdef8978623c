//! `file:` URIs used for every path-typed protocol field (protocol.md §4, §17.3).
//!
//! Parsing goes through the `url` crate so that error texts and dot-segment removal
//! match the reference server byte for byte. Decoding is done on raw bytes so that
//! non-UTF-8 file names survive a round trip.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, CONTROLS};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::{Host, Url};

// -32602 for params that fail to decode; -32600 is what the reference answers for a
// non-local `file:` host.
use crate::codes::{INVALID_PARAMS, INVALID_REQUEST};

/// Prefix of the message for a non-local host. Exposed so that a caller which only
/// sees serde's text (after a `PathUri` failed inside a params struct) can still
/// recover the -32600 code, see [`code_for_params_message`].
pub const REMOTE_HOST_PREFIX: &str = "invalid URI: file URI host is not local: ";

/// Same byte set as the `url` crate's file-path segment encoding (WHATWG path set
/// plus `/`, `%` and `\`), so our output equals `Url::from_file_path`.
const SEGMENT: &AsciiSet =
    &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>').add(b'`').add(b'#').add(b'?').add(b'{').add(b'}').add(b'/').add(b'%').add(b'\\');

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("invalid URI: {0}")]
    Parse(#[from] url::ParseError),
    #[error("invalid URI: expected a file: URI, got scheme `{0}`")]
    Scheme(String),
    #[error("invalid URI: file URIs must not contain a user name or password")]
    Credentials,
    #[error("invalid URI: file URIs must not contain a port")]
    Port,
    #[error("invalid URI: file URIs must not contain a query")]
    Query,
    #[error("invalid URI: file URIs must not contain a fragment")]
    Fragment,
    #[error("invalid URI: path contains an encoded NUL byte")]
    Nul,
    #[error("{REMOTE_HOST_PREFIX}{0}")]
    RemoteHost(String),
}

impl UriError {
    /// JSON-RPC error code the executor must answer with.
    pub fn code(&self) -> i64 {
        match self {
            UriError::RemoteHost(_) => INVALID_REQUEST,
            _ => INVALID_PARAMS,
        }
    }
}

/// Code for a params-decoding failure given only its message: a `PathUri` that
/// failed inside a larger struct reaches the caller as serde text, and the
/// non-local-host case must still map to -32600.
pub fn code_for_params_message(message: &str) -> i64 {
    if message.starts_with(REMOTE_HOST_PREFIX) {
        INVALID_REQUEST
    } else {
        INVALID_PARAMS
    }
}

/// Parses a `file:` URI into a native absolute path.
pub fn parse_file_uri(s: &str) -> Result<PathBuf, UriError> {
    let url = Url::parse(s)?;
    check_shape(&url)?;
    let bytes: Vec<u8> = percent_decode_str(url.path()).collect();
    if bytes.contains(&0) {
        return Err(UriError::Nul);
    }
    Ok(PathBuf::from(OsString::from_vec(bytes)))
}

fn check_shape(url: &Url) -> Result<(), UriError> {
    if url.scheme() != "file" {
        return Err(UriError::Scheme(url.scheme().to_string()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UriError::Credentials);
    }
    if url.port().is_some() {
        return Err(UriError::Port);
    }
    if url.query().is_some() {
        return Err(UriError::Query);
    }
    if url.fragment().is_some() {
        return Err(UriError::Fragment);
    }
    match url.host() {
        None => Ok(()),
        Some(Host::Domain(d)) if d.is_empty() || d.eq_ignore_ascii_case("localhost") => Ok(()),
        Some(h) => Err(UriError::RemoteHost(h.to_string())),
    }
}

/// Formats a native path as a `file:` URI, percent-encoding like
/// `Url::from_file_path` (raw non-UTF-8 bytes become `%XX`). Relative paths are
/// encoded as if they were rooted, since URIs have no relative form here.
pub fn path_to_uri(p: &Path) -> String {
    let mut out = String::from("file://");
    let mut empty = true;
    for component in p.components() {
        if matches!(component, std::path::Component::RootDir) {
            continue;
        }
        empty = false;
        out.push('/');
        out.extend(percent_encode(component.as_os_str().as_bytes(), SEGMENT));
    }
    if empty {
        out.push('/');
    }
    out
}

/// A path-typed protocol field: a `file:` URI on the wire, a native path in Rust.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathUri(pub PathBuf);

impl PathUri {
    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

impl fmt::Display for PathUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&path_to_uri(&self.0))
    }
}

impl From<PathBuf> for PathUri {
    fn from(p: PathBuf) -> Self {
        PathUri(p)
    }
}

impl<'de> Deserialize<'de> for PathUri {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_file_uri(&s).map(PathUri).map_err(serde::de::Error::custom)
    }
}

impl Serialize for PathUri {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&path_to_uri(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> UriError {
        parse_file_uri(s).unwrap_err()
    }

    #[test]
    fn plain_file_uri() {
        assert_eq!(parse_file_uri("file:///tmp/x").unwrap(), PathBuf::from("/tmp/x"));
    }

    #[test]
    fn native_path_rejected_with_reference_text() {
        let e = err("/tmp");
        assert_eq!(e.to_string(), "invalid URI: relative URL without a base");
        assert_eq!(e.code(), -32602);
    }

    #[test]
    fn other_scheme_rejected() {
        let e = err("http://example.com/x");
        assert!(matches!(e, UriError::Scheme(ref s) if s == "http"));
        assert_eq!(e.code(), -32602);
    }

    #[test]
    fn localhost_is_local() {
        assert_eq!(parse_file_uri("file://localhost/etc/x").unwrap(), PathBuf::from("/etc/x"));
        assert_eq!(parse_file_uri("file://LOCALHOST/etc").unwrap(), PathBuf::from("/etc"));
    }

    #[test]
    fn remote_host_is_invalid_request() {
        let e = err("file://otherhost/p");
        assert_eq!(e, UriError::RemoteHost("otherhost".into()));
        assert_eq!(e.code(), -32600);
        assert_eq!(code_for_params_message(&e.to_string()), -32600);
        assert_eq!(code_for_params_message("missing field `path`"), -32602);
    }

    #[test]
    fn credentials_port_query_fragment_rejected() {
        for s in ["file://user@host/p", "file://user:pw@localhost/p", "file://localhost:8080/p", "file:///p?q=1", "file:///p#frag"] {
            let e = err(s);
            assert_eq!(e.code(), -32602, "{s}: {e}");
        }
        assert_eq!(err("file:///p?q=1"), UriError::Query);
        assert_eq!(err("file:///p#frag"), UriError::Fragment);
    }

    #[test]
    fn encoded_nul_rejected() {
        assert_eq!(err("file:///tmp/a%00b"), UriError::Nul);
        assert_eq!(UriError::Nul.code(), -32602);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(parse_file_uri("file:///tmp/with%20space.txt").unwrap(), PathBuf::from("/tmp/with space.txt"));
        assert_eq!(parse_file_uri("file:///tmp/a%2Fb").unwrap(), PathBuf::from("/tmp/a/b"));
        assert_eq!(parse_file_uri("file:///tmp/x%2.txt").unwrap(), PathBuf::from("/tmp/x%2.txt"));
    }

    #[test]
    fn non_utf8_bytes_decoded_raw() {
        let p = parse_file_uri("file:///tmp/a%FFb").unwrap();
        assert_eq!(p.as_os_str().as_bytes(), b"/tmp/a\xffb");
    }

    #[test]
    fn dot_segments_removed() {
        assert_eq!(parse_file_uri("file:///tmp/../var").unwrap(), PathBuf::from("/var"));
        assert_eq!(parse_file_uri("file:///tmp/./a/%2e%2e/b").unwrap(), PathBuf::from("/tmp/b"));
    }

    #[test]
    fn output_encoding_matches_url_crate() {
        let cases: [&[u8]; 5] = [b"/tmp/with space.txt", b"/a/b#c?d%e", b"/x\xff\x01y", b"/", b"/t/\\q"];
        for raw in cases {
            let p = PathBuf::from(OsString::from_vec(raw.to_vec()));
            let ours = path_to_uri(&p);
            let theirs = Url::from_file_path(&p).unwrap().to_string();
            assert_eq!(ours, theirs);
        }
        assert_eq!(path_to_uri(Path::new("/tmp/with space.txt")), "file:///tmp/with%20space.txt");
    }

    #[test]
    fn round_trip_non_utf8() {
        let p = PathBuf::from(OsString::from_vec(b"/tmp/\xfe\xff name%2F".to_vec()));
        assert_eq!(parse_file_uri(&path_to_uri(&p)).unwrap(), p);
    }

    #[test]
    fn serde_newtype() {
        #[derive(Deserialize)]
        struct P {
            path: PathUri,
        }
        let p: P = serde_json::from_value(serde_json::json!({"path": "file:///a%20b"})).unwrap();
        assert_eq!(p.path.0, PathBuf::from("/a b"));
        let e = serde_json::from_value::<P>(serde_json::json!({"path": "/tmp"})).err().unwrap();
        assert_eq!(e.to_string(), "invalid URI: relative URL without a base");
        let v = serde_json::to_value(PathUri(PathBuf::from("/a b"))).unwrap();
        assert_eq!(v, serde_json::json!("file:///a%20b"));
    }
}
