//! Signed bearer tokens (`--ws-auth signed-bearer-token`): the client's bearer is an HS256
//! JWT signed with a secret shared with whoever issues the tokens (protocol.md §13).
//!
//! The JOSE work is `jsonwebtoken`'s: it accepts only the algorithms it is told to (here
//! HS256 alone, so `alg: none`, `RS256` headers and every other alg are refused before any
//! key is used), and its HMAC check compares the MAC in constant time (`hmac`'s
//! `verify_slice`). What is ours: the secret file rules, the claims that must be present,
//! `iat` (which the crate does not look at) and the refusal texts, which are the
//! reference's so a client sees the same 401 bodies.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// The reference refuses shorter secrets: an HS256 key should carry at least the 256 bits
/// of the hash.
pub const MIN_SECRET_BYTES: usize = 32;
/// `--ws-max-clock-skew-seconds` when not given (the reference's default).
pub const DEFAULT_MAX_CLOCK_SKEW_SECONDS: u64 = 30;

/// Startup errors of `--ws-shared-secret-file` (exit status 2).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretFileError {
    #[error("--ws-shared-secret-file must be an absolute path, not `{0}`")]
    Relative(PathBuf),
    #[error("cannot read the websocket shared secret file `{path}`: {error}")]
    Unreadable { path: PathBuf, error: String },
    #[error(
        "the websocket shared secret file `{path}` is accessible by group or others (mode {mode:03o}); \
         it must be readable by its owner only: chmod 600 {path}"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("the websocket shared secret in `{0}` must be at least {MIN_SECRET_BYTES} bytes")]
    TooShort(PathBuf),
}

/// Why a JWT was refused; the text is the 401 body, worded as the reference words it.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum JwtFailure {
    #[error("invalid websocket jwt")]
    Invalid,
    #[error("expired websocket jwt")]
    Expired,
    #[error("websocket jwt is not valid yet")]
    NotYetValid,
    #[error("websocket jwt issuer mismatch")]
    IssuerMismatch,
    #[error("websocket jwt audience mismatch")]
    AudienceMismatch,
}

/// The claims the server looks at after the crate validated the token.
#[derive(Debug, serde::Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    iat: Option<serde_json::Value>,
}

/// Checks HS256 JWTs against the shared secret and the configured claims.
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    skew: u64,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("JwtVerifier").field("skew", &self.skew).finish_non_exhaustive()
    }
}

/// What a valid token says about its bearer (for logs and the audit trail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSubject {
    pub sub: Option<String>,
}

impl JwtVerifier {
    /// `secret` is the trimmed content of the secret file.
    pub fn new(secret: &[u8], issuer: Option<&str>, audience: Option<&str>, skew: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = skew;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        // The crate accepts a token without `iss`/`aud` even when they are configured; the
        // reference (and common sense) does not, so they become required claims.
        match issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // Without a configured audience the crate would refuse every token that names
            // one; the reference ignores `aud` then.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Self { key: DecodingKey::from_secret(secret), validation, skew }
    }

    /// Reads the secret file: absolute, owner-only, at least [`MIN_SECRET_BYTES`] after
    /// trimming (the reference trims it too, so a trailing newline does not count).
    pub fn read_secret(path: &Path) -> Result<Vec<u8>, SecretFileError> {
        if !path.is_absolute() {
            return Err(SecretFileError::Relative(path.to_owned()));
        }
        let unreadable = |e: std::io::Error| SecretFileError::Unreadable { path: path.to_owned(), error: e.to_string() };
        let file = std::fs::File::open(path).map_err(unreadable)?;
        // The mode of the file that is read, not of a path that could be swapped after.
        let mode = file.metadata().map_err(unreadable)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretFileError::TooOpen { path: path.to_owned(), mode });
        }
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut &file, &mut content).map_err(unreadable)?;
        let secret = content.trim_ascii().to_vec();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SecretFileError::TooShort(path.to_owned()));
        }
        Ok(secret)
    }

    /// Validates `token` (the bearer, without the scheme).
    pub fn verify(&self, token: &str) -> Result<JwtSubject, JwtFailure> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => JwtFailure::Expired,
            ErrorKind::ImmatureSignature => JwtFailure::NotYetValid,
            ErrorKind::InvalidIssuer => JwtFailure::IssuerMismatch,
            ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => JwtFailure::IssuerMismatch,
            ErrorKind::InvalidAudience => JwtFailure::AudienceMismatch,
            ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => JwtFailure::AudienceMismatch,
            _ => JwtFailure::Invalid,
        })?;
        // `iat` in the future (beyond the skew) means the issuer's clock or the token is
        // wrong; the reference ignores `iat`, this server refuses such a token. A
        // non-numeric `iat` is malformed.
        if let Some(iat) = &data.claims.iat {
            let iat = iat.as_f64().ok_or(JwtFailure::Invalid)?;
            if iat > (now_seconds().saturating_add(self.skew)) as f64 {
                return Err(JwtFailure::NotYetValid);
            }
        }
        Ok(JwtSubject { sub: data.claims.sub })
    }
}

fn now_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn token(claims: serde_json::Value) -> String {
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET)).expect("encode")
    }

    #[test]
    fn claims_matrix() {
        let now = now_seconds() as i64;
        let v = JwtVerifier::new(SECRET, Some("iss1"), Some("aud1"), 30);
        let ok = json!({"sub": "alice", "iss": "iss1", "aud": "aud1", "exp": now + 300, "iat": now});
        assert_eq!(v.verify(&token(ok.clone())), Ok(JwtSubject { sub: Some("alice".into()) }));
        let with = |k: &str, val: serde_json::Value| {
            let mut c = ok.clone();
            c[k] = val;
            v.verify(&token(c))
        };
        let without = |k: &str| {
            let mut c = ok.clone();
            c.as_object_mut().expect("object").remove(k);
            v.verify(&token(c))
        };
        assert_eq!(with("exp", json!(now - 120)), Err(JwtFailure::Expired));
        assert!(with("exp", json!(now - 10)).is_ok(), "within the skew");
        assert_eq!(with("nbf", json!(now + 120)), Err(JwtFailure::NotYetValid));
        assert!(with("nbf", json!(now + 10)).is_ok(), "within the skew");
        assert_eq!(with("iat", json!(now + 120)), Err(JwtFailure::NotYetValid));
        assert_eq!(with("iat", json!("yesterday")), Err(JwtFailure::Invalid));
        assert_eq!(without("exp"), Err(JwtFailure::Invalid));
        assert_eq!(with("iss", json!("other")), Err(JwtFailure::IssuerMismatch));
        assert_eq!(without("iss"), Err(JwtFailure::IssuerMismatch));
        assert_eq!(with("aud", json!("other")), Err(JwtFailure::AudienceMismatch));
        assert_eq!(without("aud"), Err(JwtFailure::AudienceMismatch));
        assert!(with("aud", json!(["x", "aud1"])).is_ok());
        assert_eq!(v.verify("not.a.jwt"), Err(JwtFailure::Invalid));
        assert_eq!(v.verify(""), Err(JwtFailure::Invalid));
        let hs512 = encode(&Header::new(Algorithm::HS512), &ok, &EncodingKey::from_secret(SECRET)).expect("encode");
        assert_eq!(v.verify(&hs512), Err(JwtFailure::Invalid));
    }

    #[test]
    fn unconfigured_iss_and_aud_are_not_checked() {
        let now = now_seconds() as i64;
        let v = JwtVerifier::new(SECRET, None, None, 0);
        assert!(v.verify(&token(json!({"iss": "any", "aud": "any", "exp": now + 60}))).is_ok());
        assert!(v.verify(&token(json!({"exp": now + 60}))).is_ok());
    }

    #[test]
    fn secret_file_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        std::fs::write(&path, [SECRET, b"\n"].concat()).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(JwtVerifier::read_secret(&path), Ok(SECRET.to_vec()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(matches!(JwtVerifier::read_secret(&path), Err(SecretFileError::TooOpen { mode: 0o640, .. })));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604)).expect("chmod");
        assert!(matches!(JwtVerifier::read_secret(&path), Err(SecretFileError::TooOpen { .. })));
        std::fs::write(&path, b"short\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        assert!(matches!(JwtVerifier::read_secret(&path), Err(SecretFileError::TooShort(_))));
        assert!(matches!(JwtVerifier::read_secret(Path::new("secret")), Err(SecretFileError::Relative(_))));
        assert!(matches!(JwtVerifier::read_secret(&dir.path().join("missing")), Err(SecretFileError::Unreadable { .. })));
    }
}
