//! The self-signed certificate of `--tls`: generated at start for `localhost` and `127.0.0.1`,
//! served by rustls, and handed to clients as PEM so that they can trust it.
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A generated certificate: its PEM (the CA clients trust) and the server config serving it.
pub(crate) struct Generated {
    pub pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

/// Generates a self-signed certificate and a rustls server configuration (HTTP/1.1 only).
pub(crate) fn generate() -> anyhow::Result<Generated> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let certified =
        rcgen::generate_simple_self_signed(names).context("generating the certificate")?;
    let pem = certified.cert.pem();
    let cert_der: CertificateDer<'static> = certified.cert.der().clone();
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key_der)
        .context("TLS certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Generated {
        pem,
        server_config: Arc::new(config),
    })
}
