//! The server's HTTP clients (reqwest over hyper, rustls): built once, on the first
//! `http/request`, and shared by every connection, so connections to a server are reused
//! (HTTP/1.1 keep-alive, one HTTP/2 connection multiplexed).
//!
//! There are two, one per redirect policy, because reqwest fixes the policy per client;
//! both use the same resolver and TLS roots.

use std::sync::Arc;

use reqwest::redirect;

use super::egress::{EgressPolicy, PolicyResolver};

/// Redirects followed before the request fails (reqwest's own default).
pub const MAX_REDIRECTS: usize = 10;

pub struct Clients {
    pub follow: reqwest::Client,
    pub stop: reqwest::Client,
}

impl Clients {
    pub fn build(policy: &Arc<EgressPolicy>) -> Result<Self, String> {
        let roots = extra_roots()?;
        let follow = build_one(policy, follow_policy(policy.clone()), &roots)?;
        let stop = build_one(policy, redirect::Policy::none(), &roots)?;
        Ok(Self { follow, stop })
    }
}

fn build_one(policy: &Arc<EgressPolicy>, redirect: redirect::Policy, roots: &[reqwest::Certificate]) -> Result<reqwest::Client, String> {
    // Proxies: reqwest reads HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY (either case)
    // from the executor's environment by default. No decompression feature is enabled, so
    // bodies and `content-encoding` reach the client as the server sent them.
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_native_certs(true)
        .dns_resolver(Arc::new(PolicyResolver { policy: policy.clone() }))
        .redirect(redirect);
    for root in roots {
        builder = builder.add_root_certificate(root.clone());
    }
    builder.build().map_err(|e| e.to_string())
}

/// Certificates of `SSL_CERT_FILE` (a PEM bundle), trusted in addition to the system's:
/// the usual way to add a private CA for one process.
fn extra_roots() -> Result<Vec<reqwest::Certificate>, String> {
    let Some(path) = std::env::var_os("SSL_CERT_FILE").filter(|p| !p.is_empty()) else { return Ok(Vec::new()) };
    let shown = std::path::Path::new(&path).display().to_string();
    let pem = std::fs::read(&path).map_err(|e| format!("cannot read SSL_CERT_FILE {shown}: {e}"))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("SSL_CERT_FILE {shown} is not a PEM bundle: {e}"))?;
    if certs.is_empty() {
        return Err(format!("SSL_CERT_FILE {shown} holds no certificate"));
    }
    Ok(certs)
}

/// reqwest's following, with the egress policy applied to every hop before it is taken:
/// IP literals here, names again when the resolver sees them.
fn follow_policy(policy: Arc<EgressPolicy>) -> redirect::Policy {
    redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            let error = format!("too many redirects (more than {MAX_REDIRECTS})");
            return attempt.error(error);
        }
        if !matches!(attempt.url().scheme(), "http" | "https") {
            let error = format!("redirect to a `{}` URL", attempt.url().scheme());
            return attempt.error(error);
        }
        match policy.check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(denied) => attempt.error(denied),
        }
    })
}
