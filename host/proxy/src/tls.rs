//! TLS for the proxy listener (`--ssl-key`, `--ssl-cert`), with the certificate re-read on SIGHUP so that renewed
//! certificates take effect without a restart (CHP cannot do this). A new pair that cannot be read, does not match or
//! has expired is refused and the old one stays in use.

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
    #[error("--ssl-cert {path}: the certificate expired on {not_after}; renew it")]
    Expired { path: PathBuf, not_after: String },
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
        // At start there is no older certificate to keep: an expired one is served (browsers warn) rather than
        // nothing at all, and said loudly.
        if let Err(error) = not_expired(files, &key) {
            tracing::error!(%error, "serving an expired TLS certificate until a renewed one is loaded");
        }
        Ok(ReloadableCert { files: files.clone(), current: ArcSwap::from_pointee(key) })
    }

    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let key = read_certified_key(&self.files)?;
        not_expired(&self.files, &key)?;
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

/// Refuses a chain whose leaf certificate's `notAfter` has passed.
fn not_expired(files: &TlsFiles, key: &CertifiedKey) -> Result<(), TlsError> {
    let cert_error = |message: String| TlsError::Cert { path: files.cert.clone(), message };
    let leaf = key.cert.first().ok_or_else(|| cert_error("no PEM certificate found".into()))?;
    let (_, leaf) = x509_parser::parse_x509_certificate(leaf).map_err(|error| cert_error(error.to_string()))?;
    let not_after = leaf.validity().not_after;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |now| now.as_secs());
    if not_after.timestamp() < i64::try_from(now).unwrap_or(i64::MAX) {
        return Err(TlsError::Expired { path: files.cert.clone(), not_after: not_after.to_string() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed pair for localhost valid from `from` to `until` (years), as PEM.
    fn pair(from: i32, until: i32) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn an_expired_or_unreadable_renewal_keeps_the_certificate_in_use_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles { cert: dir.path().join("tls.crt"), key: dir.path().join("tls.key") };
        let write = |(cert, key): (String, String)| {
            std::fs::write(&files.cert, cert).unwrap();
            std::fs::write(&files.key, key).unwrap();
        };
        write(pair(2020, 2100));
        let reloadable = ReloadableCert::load(&files).unwrap();
        let in_use = || reloadable.current.load().cert[0].clone();
        let first = in_use();

        write(pair(2020, 2021));
        let error = reloadable.reload().unwrap_err().to_string();
        assert!(error.contains("expired on") && error.contains("tls.crt"), "{error}");
        assert_eq!(in_use(), first, "an expired certificate replaced a valid one");

        std::fs::write(&files.cert, "not a certificate").unwrap();
        assert!(reloadable.reload().is_err());
        assert_eq!(in_use(), first, "an unreadable certificate replaced a valid one");

        write(pair(2020, 2101));
        reloadable.reload().unwrap();
        assert_ne!(in_use(), first, "a valid renewal is taken");
    }

    #[test]
    fn an_expired_certificate_at_start_is_served_rather_than_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles { cert: dir.path().join("tls.crt"), key: dir.path().join("tls.key") };
        let (cert, key) = pair(2020, 2021);
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        assert!(ReloadableCert::load(&files).is_ok());
    }
}
