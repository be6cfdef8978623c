//! Authentication of websocket upgrades (protocol.md §13): capability tokens, and signed
//! bearer tokens (HS256 JWTs, [`super::jwt`]).
//!
//! Capability token: the operator gives the token itself (`--ws-token-file`, content
//! trimmed) or its SHA-256 (`--ws-token-sha256`); only the digest is kept. A client sends
//! `Authorization: Bearer <token>`; the server hashes the token and compares the digests in
//! constant time, so neither the token nor the timing of a mismatch leaks.
//!
//! Either bearer may also come as `?token=` on the upgrade URL when the operator allows it
//! (`--ws-allow-query-token`); the header is preferred because URLs end up in proxy and
//! access logs. The token is never logged by this server.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::jwt::{JwtFailure, JwtSubject, JwtVerifier, SecretFileError, DEFAULT_MAX_CLOCK_SKEW_SECONDS};

/// Startup errors of the ws auth flags; each makes the executor exit with status 1.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthConfigError {
    #[error("WebSocket auth requires a WebSocket listener, not stdio")]
    AuthWithStdio,
    #[error("--ws-token-file and --ws-token-sha256 require --ws-auth capability-token")]
    TokenWithoutAuth,
    #[error("--ws-auth capability-token requires exactly one of --ws-token-file or --ws-token-sha256")]
    NotExactlyOneToken,
    #[error("--ws-token-sha256 must be 64 hexadecimal digits (the SHA-256 of the token)")]
    BadDigest,
    #[error("--ws-token-file must be an absolute path, not `{0}`")]
    RelativeTokenFile(PathBuf),
    #[error("cannot read the websocket token file `{path}`: {error}")]
    UnreadableTokenFile { path: PathBuf, error: String },
    #[error("the websocket token file `{0}` is empty")]
    EmptyTokenFile(PathBuf),
    #[error("--ws-shared-secret-file, --ws-issuer, --ws-audience and --ws-max-clock-skew-seconds require --ws-auth signed-bearer-token")]
    JwtFlagsWithoutSignedAuth,
    #[error("`--ws-shared-secret-file` is required when `--ws-auth signed-bearer-token` is set")]
    MissingSecretFile,
    #[error(transparent)]
    SecretFile(#[from] SecretFileError),
}

/// Why an upgrade was refused; the text is the 401 response body.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum AuthFailure {
    #[error("missing websocket bearer token")]
    Missing,
    #[error("invalid websocket bearer token")]
    Invalid,
    #[error("invalid authorization header")]
    BadHeader,
    #[error(transparent)]
    Jwt(#[from] JwtFailure),
}

/// The bearer of `Authorization: Bearer <token>` (scheme case-insensitive), or of the
/// query parameter when the header is absent and the operator allowed it.
fn bearer<'a>(authorization: Option<&'a [u8]>, query_token: Option<&'a str>) -> Result<&'a str, AuthFailure> {
    let value = match (authorization, query_token) {
        (Some(value), _) => value,
        (None, Some(token)) if !token.is_empty() => return Ok(token),
        (None, _) => return Err(AuthFailure::Missing),
    };
    let value = std::str::from_utf8(value).map_err(|_| AuthFailure::BadHeader)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(AuthFailure::BadHeader)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthFailure::BadHeader);
    }
    Ok(token)
}

/// Which `--ws-auth` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// A shared secret token; the server keeps only its SHA-256.
    CapabilityToken,
    /// An HS256 JWT signed with the secret of `--ws-shared-secret-file`.
    SignedBearerToken,
}

/// How upgrades are authenticated.
#[derive(Debug, Clone)]
pub enum Authenticator {
    CapabilityToken(TokenDigest),
    // Boxed: the verifier's validation settings dwarf a digest.
    SignedBearerToken(Box<JwtVerifier>),
}

/// Who an accepted upgrade authenticated as (for logs and the audit trail; never the
/// token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The first 8 hex digits of the token's SHA-256: enough to tell tokens apart in an
    /// audit trail after a rotation, useless for guessing the token.
    CapabilityToken {
        digest_prefix: String,
    },
    Jwt(JwtSubject),
}

impl Authenticator {
    /// Checks an upgrade's `Authorization` header value, or the `?token=` value when the
    /// header is absent (`query_token` is `None` unless the operator allowed the form).
    pub fn check(&self, authorization: Option<&[u8]>, query_token: Option<&str>) -> Result<Principal, AuthFailure> {
        let token = bearer(authorization, query_token)?;
        match self {
            Authenticator::CapabilityToken(digest) => {
                digest.check_token(token).map(|()| Principal::CapabilityToken { digest_prefix: digest.prefix() })
            }
            Authenticator::SignedBearerToken(verifier) => verifier.verify(token).map(Principal::Jwt).map_err(AuthFailure::from),
        }
    }
}

/// The SHA-256 of the capability token.
#[derive(Clone)]
pub struct TokenDigest([u8; 32]);

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDigest(..)")
    }
}

impl TokenDigest {
    fn prefix(&self) -> String {
        self.0[..4].iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn of_token(token: &[u8]) -> Self {
        Self(Sha256::digest(token).into())
    }

    /// From `--ws-token-sha256`: exactly 64 hex digits, either case.
    pub fn from_hex(hex: &str) -> Result<Self, AuthConfigError> {
        let hex = hex.as_bytes();
        if hex.len() != 64 {
            return Err(AuthConfigError::BadDigest);
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(hex.chunks_exact(2)) {
            let (Some(high), Some(low)) = (hex_value(pair[0]), hex_value(pair[1])) else {
                return Err(AuthConfigError::BadDigest);
            };
            *byte = high << 4 | low;
        }
        Ok(Self(digest))
    }

    /// From `--ws-token-file`: an absolute path whose content, trimmed, is the token.
    pub fn from_file(path: &Path) -> Result<Self, AuthConfigError> {
        if !path.is_absolute() {
            return Err(AuthConfigError::RelativeTokenFile(path.to_owned()));
        }
        let content =
            std::fs::read(path).map_err(|e| AuthConfigError::UnreadableTokenFile { path: path.to_owned(), error: e.to_string() })?;
        let token = content.trim_ascii();
        if token.is_empty() {
            return Err(AuthConfigError::EmptyTokenFile(path.to_owned()));
        }
        Ok(Self::of_token(token))
    }

    /// Checks the value of the upgrade's `Authorization` header, if it had one.
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<(), AuthFailure> {
        self.check_token(bearer(authorization, None)?)
    }

    /// Checks a presented token.
    fn check_token(&self, token: &str) -> Result<(), AuthFailure> {
        let presented = Self::of_token(token.as_bytes());
        if bool::from(presented.0.ct_eq(&self.0)) {
            Ok(())
        } else {
            Err(AuthFailure::Invalid)
        }
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The ws auth flags as given on the command line.
#[derive(Debug, Default, Clone)]
pub struct AuthFlags {
    /// `--ws-auth`.
    pub mode: Option<AuthMode>,
    pub token_file: Option<PathBuf>,
    pub token_sha256: Option<String>,
    pub shared_secret_file: Option<PathBuf>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub max_clock_skew_seconds: Option<u64>,
}

impl AuthFlags {
    /// Validates the flags for a listener; `None` when auth is off.
    pub fn resolve(&self, listener_is_stdio: bool) -> Result<Option<Authenticator>, AuthConfigError> {
        let token_flags = self.token_file.is_some() || self.token_sha256.is_some();
        let jwt_flags =
            self.shared_secret_file.is_some() || self.issuer.is_some() || self.audience.is_some() || self.max_clock_skew_seconds.is_some();
        if token_flags && self.mode != Some(AuthMode::CapabilityToken) {
            return Err(AuthConfigError::TokenWithoutAuth);
        }
        if jwt_flags && self.mode != Some(AuthMode::SignedBearerToken) {
            return Err(AuthConfigError::JwtFlagsWithoutSignedAuth);
        }
        let Some(mode) = self.mode else { return Ok(None) };
        if listener_is_stdio {
            return Err(AuthConfigError::AuthWithStdio);
        }
        match mode {
            AuthMode::CapabilityToken => match (&self.token_file, &self.token_sha256) {
                (Some(path), None) => TokenDigest::from_file(path).map(|d| Some(Authenticator::CapabilityToken(d))),
                (None, Some(hex)) => TokenDigest::from_hex(hex).map(|d| Some(Authenticator::CapabilityToken(d))),
                _ => Err(AuthConfigError::NotExactlyOneToken),
            },
            AuthMode::SignedBearerToken => {
                let path = self.shared_secret_file.as_deref().ok_or(AuthConfigError::MissingSecretFile)?;
                let secret = JwtVerifier::read_secret(path)?;
                let skew = self.max_clock_skew_seconds.unwrap_or(DEFAULT_MAX_CLOCK_SKEW_SECONDS);
                let verifier = JwtVerifier::new(&secret, self.issuer.as_deref(), self.audience.as_deref(), skew);
                Ok(Some(Authenticator::SignedBearerToken(Box::new(verifier))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // sha256("driver-token-123"), from protocol-transcripts.md §13.
    const DIGEST: &str = "1ad7841e6c92c99fa7689513fea063ad0006a8d67ba1f68c7d54e4ffee59e784";

    #[test]
    fn header_forms_match_the_reference() {
        let digest = TokenDigest::from_hex(DIGEST).expect("valid hex");
        assert_eq!(digest.check(None), Err(AuthFailure::Missing));
        assert_eq!(digest.check(Some(b"Bearer wrong")), Err(AuthFailure::Invalid));
        assert_eq!(digest.check(Some(b"driver-token-123")), Err(AuthFailure::BadHeader));
        assert_eq!(digest.check(Some(b"Basic driver-token-123")), Err(AuthFailure::BadHeader));
        assert_eq!(digest.check(Some(b"bearer driver-token-123")), Ok(()));
        assert_eq!(digest.check(Some(b"BEARER driver-token-123")), Ok(()));
        assert_eq!(TokenDigest::from_hex(&DIGEST.to_uppercase()).map(|d| d.check(Some(b"Bearer driver-token-123"))), Ok(Ok(())));
    }

    #[test]
    fn digest_flag_must_be_64_hex_digits() {
        assert_eq!(TokenDigest::from_hex("abc").err(), Some(AuthConfigError::BadDigest));
        let bad = format!("{}g", &DIGEST[..63]);
        assert_eq!(TokenDigest::from_hex(&bad).err(), Some(AuthConfigError::BadDigest));
    }

    #[test]
    fn flag_combinations() {
        let none = AuthFlags::default();
        assert!(matches!(none.resolve(true), Ok(None)));
        let token_only = AuthFlags { token_sha256: Some(DIGEST.into()), ..AuthFlags::default() };
        assert_eq!(token_only.resolve(false).err(), Some(AuthConfigError::TokenWithoutAuth));
        let both = AuthFlags {
            mode: Some(AuthMode::CapabilityToken),
            token_file: Some("/x".into()),
            token_sha256: Some(DIGEST.into()),
            ..AuthFlags::default()
        };
        assert_eq!(both.resolve(false).err(), Some(AuthConfigError::NotExactlyOneToken));
        let neither = AuthFlags { mode: Some(AuthMode::CapabilityToken), ..AuthFlags::default() };
        assert_eq!(neither.resolve(false).err(), Some(AuthConfigError::NotExactlyOneToken));
        let stdio = AuthFlags { mode: Some(AuthMode::CapabilityToken), token_sha256: Some(DIGEST.into()), ..AuthFlags::default() };
        assert_eq!(stdio.resolve(true).err(), Some(AuthConfigError::AuthWithStdio));
        assert!(matches!(stdio.resolve(false), Ok(Some(_))));
        let relative = AuthFlags { mode: Some(AuthMode::CapabilityToken), token_file: Some("token".into()), ..AuthFlags::default() };
        assert!(matches!(relative.resolve(false), Err(AuthConfigError::RelativeTokenFile(_))));
        let issuer_only = AuthFlags { issuer: Some("i".into()), ..AuthFlags::default() };
        assert_eq!(issuer_only.resolve(false).err(), Some(AuthConfigError::JwtFlagsWithoutSignedAuth));
        let jwt_with_token =
            AuthFlags { mode: Some(AuthMode::SignedBearerToken), token_sha256: Some(DIGEST.into()), ..AuthFlags::default() };
        assert_eq!(jwt_with_token.resolve(false).err(), Some(AuthConfigError::TokenWithoutAuth));
        let no_secret = AuthFlags { mode: Some(AuthMode::SignedBearerToken), ..AuthFlags::default() };
        assert_eq!(no_secret.resolve(false).err(), Some(AuthConfigError::MissingSecretFile));
    }

    #[test]
    fn query_token_is_used_only_without_a_header() {
        let auth = Authenticator::CapabilityToken(TokenDigest::of_token(b"t0k"));
        assert!(matches!(auth.check(None, Some("t0k")), Ok(Principal::CapabilityToken { .. })));
        assert_eq!(auth.check(None, Some("wrong")), Err(AuthFailure::Invalid));
        assert_eq!(auth.check(None, Some("")), Err(AuthFailure::Missing));
        assert_eq!(auth.check(Some(b"Bearer wrong"), Some("t0k")), Err(AuthFailure::Invalid));
        assert_eq!(auth.check(None, None), Err(AuthFailure::Missing));
    }
}
