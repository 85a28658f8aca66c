//! The QUIC server certificate: the configured one, or a self-signed one kept in the data dir so its
//! fingerprint stays stable across restarts (clients pin it by SHA-256).

use crate::config::Config;
use anyhow::{Context as _, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::Path;

/// File names inside the data dir.
pub const CERT_FILE: &str = "quic-cert.pem";
/// Private key of the generated certificate.
pub const KEY_FILE: &str = "quic-key.pem";
/// Hex SHA-256 fingerprint of the certificate in use.
pub const FINGERPRINT_FILE: &str = "quic-cert.sha256";

/// A certificate chain, its key, and the end-entity fingerprint.
pub struct QuicCert {
    /// Certificate chain, end-entity first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Private key.
    pub key: PrivateKeyDer<'static>,
    /// Lowercase hex SHA-256 of the end-entity certificate's DER.
    pub fingerprint: String,
}

/// SHA-256 fingerprint of a DER certificate, lowercase hex.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    hex::encode(Sha256::digest(cert.as_ref()))
}

fn read_pem(cert: &Path, key: &Path) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let cert_pem = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
    let key_pem = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificates in {}", cert.display()))?;
    if chain.is_empty() {
        bail!("{} holds no certificate", cert.display());
    }
    let key =
        PrivateKeyDer::from_pem_slice(&key_pem).with_context(|| format!("parsing private key {}", key.display()))?;
    Ok((chain, key))
}

/// Loads the configured certificate, or the one kept in the data dir, or generates and keeps a new one.
/// Writes the fingerprint to `<data dir>/quic-cert.sha256` either way.
pub fn load_or_generate(config: &Config) -> anyhow::Result<QuicCert> {
    let dir = &config.data_dir;
    let (chain, key) = match (&config.quic_cert, &config.quic_key) {
        (Some(cert), Some(key)) => read_pem(cert, key)?,
        _ => {
            let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
            if !cert_path.exists() || !key_path.exists() {
                let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
                    .context("generating a self-signed QUIC certificate")?;
                std::fs::write(&cert_path, generated.cert.pem())
                    .with_context(|| format!("writing {}", cert_path.display()))?;
                write_private(&key_path, generated.signing_key.serialize_pem().as_bytes())?;
                tracing::info!(path = %cert_path.display(), "generated a self-signed QUIC certificate for `localhost`");
            }
            read_pem(&cert_path, &key_path)?
        }
    };
    let fingerprint = fingerprint(&chain[0]);
    std::fs::write(dir.join(FINGERPRINT_FILE), format!("{fingerprint}\n")).context("writing the QUIC fingerprint")?;
    Ok(QuicCert { chain, key, fingerprint })
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificate_is_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load_from(["chorus", "--data-dir", dir.path().to_str().unwrap()]).unwrap();
        let first = load_or_generate(&config).unwrap();
        let second = load_or_generate(&config).unwrap();
        assert_eq!(first.fingerprint, second.fingerprint);
        assert_eq!(first.fingerprint.len(), 64);
        let written = std::fs::read_to_string(dir.path().join(FINGERPRINT_FILE)).unwrap();
        assert_eq!(written.trim(), first.fingerprint);
    }
}
