//! TLS for the proxy listener (`--ssl-key`, `--ssl-cert`), with the certificate re-read on SIGHUP so that renewed
//! certificates take effect without a restart (CHP cannot do this).

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The PEM files of the proxy's certificate chain and private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--ssl-cert {path}: {message}")]
    Cert { path: PathBuf, message: String },
    #[error("--ssl-key {path}: {message}")]
    Key { path: PathBuf, message: String },
}

/// The current certificate, swapped atomically on reload.
#[derive(Debug)]
pub(crate) struct ReloadableCert {
    files: TlsFiles,
    current: ArcSwap<CertifiedKey>,
}

impl ReloadableCert {
    pub(crate) fn load(files: &TlsFiles) -> Result<ReloadableCert, TlsError> {
        let key = read_certified_key(files)?;
        Ok(ReloadableCert { files: files.clone(), current: ArcSwap::from_pointee(key) })
    }

    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let key = read_certified_key(&self.files)?;
        self.current.store(Arc::new(key));
        tracing::info!(cert = %self.files.cert.display(), "reloaded the TLS certificate");
        Ok(())
    }

    /// A server config (HTTP/1.1 only) that always presents the current certificate.
    pub(crate) fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder().with_no_client_auth().with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn read_certified_key(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let cert_error = |message: String| TlsError::Cert { path: files.cert.clone(), message };
    let key_error = |message: String| TlsError::Key { path: files.key.clone(), message };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|error| cert_error(error.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|error| cert_error(error.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no PEM certificate found".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|error| key_error(error.to_string()))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider).map_err(|error| key_error(error.to_string()))
}
