//! HTTPS on authd's own listener: rustls on the ring provider, HTTP/1.1 only (ALPN), with a
//! certificate and key that `SIGHUP` can replace while connections stay open.
//!
//! One `ServerConfig` lives for the whole process; its certificate resolver hands each new
//! handshake the pair loaded last. A reload that fails leaves the previous pair in place.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, crypto::ring};
use tokio_rustls::TlsAcceptor;

/// Why a certificate and key could not be used; each names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("AUTHD_TLS_CERT_FILE: cannot read certificates from {}: {reason}", path.display())]
    Certificate { path: PathBuf, reason: String },
    #[error("AUTHD_TLS_KEY_FILE: cannot read a private key from {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error(
        "AUTHD_TLS_KEY_FILE: the key in {} does not fit the certificate in {} (AUTHD_TLS_CERT_FILE): {reason}",
        key.display(),
        certificate.display()
    )]
    Mismatch {
        certificate: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// The files a certificate and its key are read from, each time they are (re)loaded.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// The served TLS settings and the pair new handshakes get.
#[derive(Clone)]
pub struct Tls {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: Arc<CurrentPair>,
    acceptor: TlsAcceptor,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

impl Tls {
    /// Reads the pair and builds the acceptor; any problem names its setting.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let provider = Arc::new(ring::default_provider());
        let pair = read_pair(&files, &provider)?;
        let current = Arc::new(CurrentPair(RwLock::new(Arc::new(pair))));
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|err| TlsError::Setup(err.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        // HTTP/2 would share one connection between streams, past every per-request limit.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            files,
            provider,
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Reads the files again; on success new handshakes get the new pair (open connections
    /// keep theirs), on failure the previous pair stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = read_pair(&self.files, &self.provider)?;
        *self
            .current
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(pair);
        Ok(())
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    pub(super) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

/// The pair handed to every handshake that starts now.
struct CurrentPair(RwLock<Arc<CertifiedKey>>);

impl fmt::Debug for CurrentPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CurrentPair")
    }
}

impl ResolvesServerCert for CurrentPair {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let pair = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(Arc::clone(&pair))
    }
}

fn read_pair(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = read_chain(&files.certificate)?;
    let key_error = |reason: String| TlsError::Key {
        path: files.key.clone(),
        reason,
    };
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|err| key_error(err.to_string()))?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|err| key_error(err.to_string()))?;
    let pair = CertifiedKey::new(chain, signing_key);
    match pair.keys_match() {
        // A key that cannot tell its public half is let through, as rustls's own loader does.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(pair)
        }
        Err(err) => Err(TlsError::Mismatch {
            certificate: files.certificate.clone(),
            key: files.key.clone(),
            reason: err.to_string(),
        }),
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |reason: String| TlsError::Certificate {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|err| error(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| error(err.to_string()))?;
    if chain.is_empty() {
        return Err(error("no PEM certificate in the file".into()));
    }
    Ok(chain)
}
