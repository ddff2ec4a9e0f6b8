//! The gateway's own application certificate.
//!
//! The certificate and key live in `pki_dir` (`own/cert.der`, `private/private.pem`), made on
//! first start and kept: a server that trusts this gateway once keeps trusting it. Server
//! certificates are trusted when they are in `pki_dir/trusted`; an unknown one is written to
//! `pki_dir/rejected` by the store, and the driver's error says which file to move where.

use opcua::crypto::{CertificateStore, X509Data};
use opcua::types::{ApplicationDescription, ApplicationType};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The application URI of gateway `name`; it is also written into its certificate.
pub fn application_uri(name: &str) -> String {
    format!("urn:iqblvd:shopfloor:{name}")
}

/// The gateway's certificate could not be made or read.
#[derive(Debug, Error)]
#[error("OPC UA certificate in {dir}: {reason}")]
pub struct PkiError {
    /// The pki directory.
    pub dir: PathBuf,
    /// What failed.
    pub reason: String,
}

/// The gateway's own certificate, as [`prepare`] left it.
#[derive(Debug, Clone)]
pub struct OwnCertificate {
    /// Its SHA-1 thumbprint in hex, as OPC UA tools show it.
    pub thumbprint: String,
    /// Where it is, to copy into a server's trusted folder.
    pub path: PathBuf,
    /// True when it was made just now.
    pub created: bool,
}

/// Makes the folders of `dir` and the gateway's certificate and key if they are missing.
pub fn prepare(dir: &Path, gateway: &str) -> Result<OwnCertificate, PkiError> {
    let fail = |reason: String| PkiError {
        dir: dir.to_path_buf(),
        reason,
    };
    let store = CertificateStore::new(dir);
    store.ensure_pki_path().map_err(fail)?;
    let path = store.own_certificate_path();
    let existed = path.exists();
    let cert = match (existed, store.read_own_cert()) {
        (true, Ok(cert)) => cert,
        (true, Err(e)) => return Err(fail(e)),
        (false, _) => {
            let description = ApplicationDescription {
                application_uri: application_uri(gateway).into(),
                product_uri: "urn:iqblvd:shopfloor".into(),
                application_name: format!("shopfloor {gateway}").into(),
                application_type: ApplicationType::Client,
                ..Default::default()
            };
            let mut data = X509Data::from(description);
            data.certificate_duration_days = 5 * 365;
            store
                .create_and_store_application_instance_cert(&data, false)
                .map_err(fail)?
                .0
        }
    };
    Ok(OwnCertificate {
        thumbprint: cert.thumbprint().as_hex_string(),
        path,
        created: !existed,
    })
}
