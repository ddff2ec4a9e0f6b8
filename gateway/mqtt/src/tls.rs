//! TLS for `mqtts://`: rustls with the system's roots or a configured CA, and an optional
//! client certificate.

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

/// TLS could not be set up.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the setup.
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    /// No trusted root at all.
    #[error("no trusted CA certificates: the system has none; set ca_file")]
    NoRoots,
}

fn file_err(path: &Path, message: impl ToString) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let f = File::open(path).map_err(|e| file_err(path, e))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let f = File::open(path).map_err(|e| file_err(path, e))?;
    rustls_pemfile::private_key(&mut BufReader::new(f))
        .map_err(|e| file_err(path, e))?
        .ok_or_else(|| file_err(path, "no PEM private key in the file"))
}

/// The files a TLS client is set up from (a config's `ca_file`, `client_cert`, `client_key`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TlsFiles<'a> {
    /// The CA to trust instead of the system's roots.
    pub ca_file: Option<&'a Path>,
    /// The client certificate, with its key.
    pub client_cert: Option<&'a Path>,
    /// The client certificate's key.
    pub client_key: Option<&'a Path>,
}

/// The rustls client configuration for `cfg`: its CA file or the system's roots, and its
/// client certificate when it has one.
pub fn client_config(cfg: TlsFiles<'_>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match cfg.ca_file {
        Some(ca) => {
            for c in certs(ca)? {
                roots.add(c)?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                // A system store may hold a certificate rustls cannot parse; skip it.
                let _ = roots.add(c);
            }
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match (cfg.client_cert, cfg.client_key) {
        (Some(c), Some(k)) => builder.with_client_auth_cert(certs(c)?, key(k)?)?,
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
