//! TLS for `--listen wss://IP:PORT` (rustls, ring provider): the certificate chain and
//! key from PEM files, optional client certificates checked against `--tls-client-ca`
//! (mutual TLS), and a reload of all three files on SIGHUP.
//!
//! A reload swaps the acceptor used for *new* handshakes; connections already up keep
//! the session keys they negotiated, so nothing is dropped. A reload that fails (a
//! half-written file, a key that does not match) keeps the previous acceptor and is
//! logged: serving with the old certificate beats refusing every client.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// The PEM files given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS certificates from `{path}`: {error}")]
    Certificates { path: PathBuf, error: String },
    #[error("`{0}` holds no PEM certificate")]
    NoCertificate(PathBuf),
    #[error("cannot read a TLS private key from `{path}`: {error}")]
    Key { path: PathBuf, error: String },
    #[error("the client CA file `{path}` cannot be used: {error}")]
    ClientCa { path: PathBuf, error: String },
    #[error("the TLS certificate and key cannot be used together: {0}")]
    Config(#[from] rustls::Error),
}

/// Startup errors of the TLS flags (exit status 2).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsFlagsError {
    #[error("--listen wss://... requires --tls-cert and --tls-key")]
    MissingCertOrKey,
    #[error("--tls-cert, --tls-key and --tls-client-ca require --listen wss://IP:PORT")]
    TlsFlagsWithoutWss,
}

/// Which files a `wss://` listener needs; `Ok(None)` for a plain listener.
pub fn resolve_flags(
    wss: bool,
    cert: Option<&Path>,
    key: Option<&Path>,
    client_ca: Option<&Path>,
) -> Result<Option<TlsFiles>, TlsFlagsError> {
    if !wss {
        if cert.is_some() || key.is_some() || client_ca.is_some() {
            return Err(TlsFlagsError::TlsFlagsWithoutWss);
        }
        return Ok(None);
    }
    match (cert, key) {
        (Some(cert), Some(key)) => {
            Ok(Some(TlsFiles { cert: cert.to_owned(), key: key.to_owned(), client_ca: client_ca.map(Path::to_owned) }))
        }
        _ => Err(TlsFlagsError::MissingCertOrKey),
    }
}

/// The acceptor for new connections, rebuilt from the files on [`TlsReloader::reload`].
pub struct TlsReloader {
    files: TlsFiles,
    current: RwLock<TlsAcceptor>,
}

impl std::fmt::Debug for TlsReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsReloader").field("files", &self.files).finish_non_exhaustive()
    }
}

impl TlsReloader {
    /// Loads the files; an error here refuses to start.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let acceptor = TlsAcceptor::from(Arc::new(build_config(&files)?));
        Ok(Self { files, current: RwLock::new(acceptor) })
    }

    /// The acceptor for a connection that just arrived.
    pub fn acceptor(&self) -> TlsAcceptor {
        // A poisoned lock only means a writer panicked between two whole assignments.
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads the files; on error the previous acceptor stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let acceptor = TlsAcceptor::from(Arc::new(build_config(&self.files)?));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = acceptor;
        Ok(())
    }
}

/// Reloads `tls` on every SIGHUP (the server's hangup no longer stops it then).
pub async fn reload_on_sighup(tls: Arc<TlsReloader>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            tracing::warn!("cannot watch SIGHUP; TLS files will not be reloaded: {e}");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!(cert = %tls.files.cert.display(), "SIGHUP: TLS certificate and key reloaded"),
            Err(e) => tracing::error!("SIGHUP: TLS reload failed, still serving the previous certificate: {e}"),
        }
    }
}

fn build_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let certs =
        read_certificates(&files.cert).map_err(|error| TlsError::Certificates { path: files.cert.clone(), error: error.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(files.cert.clone()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Key { path: files.key.clone(), error: e.to_string() })?;
    // One provider, named explicitly, so that no process-wide default has to be installed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let ca_error = |error: String| TlsError::ClientCa { path: path.clone(), error };
            let mut roots = RootCertStore::empty();
            for ca in read_certificates(path).map_err(|e| ca_error(e.to_string()))? {
                roots.add(ca).map_err(|e| ca_error(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(ca_error("no PEM certificate in it".into()));
            }
            // Every client must present a certificate chaining to these roots.
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().map_err(|e| ca_error(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    Ok(builder.with_single_cert(certs, key)?)
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, rustls::pki_types::pem::Error> {
    CertificateDer::pem_file_iter(path)?.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_combinations() {
        let p = Path::new("/x");
        assert_eq!(resolve_flags(false, None, None, None), Ok(None));
        assert_eq!(resolve_flags(false, Some(p), None, None), Err(TlsFlagsError::TlsFlagsWithoutWss));
        assert_eq!(resolve_flags(false, None, None, Some(p)), Err(TlsFlagsError::TlsFlagsWithoutWss));
        assert_eq!(resolve_flags(true, Some(p), None, None), Err(TlsFlagsError::MissingCertOrKey));
        assert_eq!(resolve_flags(true, None, None, None), Err(TlsFlagsError::MissingCertOrKey));
        assert!(matches!(resolve_flags(true, Some(p), Some(p), None), Ok(Some(_))));
    }

    #[test]
    fn missing_files_are_reported_with_their_path() {
        let files = TlsFiles { cert: "/nonexistent/cert.pem".into(), key: "/nonexistent/key.pem".into(), client_ca: None };
        let error = TlsReloader::load(files).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("/nonexistent/cert.pem"), "{error}");
    }
}
