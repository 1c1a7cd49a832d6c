//! TLS for the gateway (`--tls-cert FILE --tls-key FILE`): a rustls server configuration
//! with the `ring` provider (no cmake or nasm to build it) that offers HTTP/2 and
//! HTTP/1.1 by ALPN.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// ALPN protocols offered, in order of preference: a client that speaks HTTP/2 gets it.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A TLS acceptor for the certificate chain in `cert` and the private key in `key`
/// (both PEM). The error names the file and what was wrong with it.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| format!("--tls-cert {}: {err}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no CERTIFICATE in the file",
            cert.display()
        ));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|err| format!("--tls-key {}: {err}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS: {err}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|err| {
            format!(
                "--tls-cert {} / --tls-key {}: {err}",
                cert.display(),
                key.display()
            )
        })?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}
