//! Server certificate trust for QUIC: pinning by SHA-256 fingerprint, or a CA/root PEM.
//!
//! A broker deployed without a public CA typically runs with a self-signed certificate and publishes its
//! fingerprint. The pinning verifier trusts exactly the end-entity certificate whose DER hashes to the pinned
//! [`Fingerprint`]: name, validity period and issuer are not checked, because the pin *is* the identity
//! (the same model as SSH host keys). The TLS 1.3 handshake signature is still verified against that
//! certificate's key, so a peer that merely replays the certificate without its private key fails.

use crate::error::ClientError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

/// The SHA-256 digest of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Parses 64 hex digits, in either case, optionally separated by colons (`AB:CD:…` as printed by
/// `openssl x509 -fingerprint -sha256`). Surrounding whitespace is ignored.
impl FromStr for Fingerprint {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits: String = s.trim().chars().filter(|&c| c != ':').collect();
        let mut out = [0u8; 32];
        hex::decode_to_slice(&digits, &mut out)
            .map_err(|e| ClientError::Config(format!("SHA-256 fingerprint must be 64 hex digits: {e}")))?;
        Ok(Self(out))
    }
}

/// Lower-case hex without separators.
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Trusts exactly one server certificate, identified by its [`Fingerprint`]. A refused certificate's
/// fingerprint is kept so the connect error can say which one the server presented (rustls would report it
/// only as a debug-formatted certificate error).
#[derive(Debug)]
pub(crate) struct PinnedVerifier {
    pin: Fingerprint,
    provider: Arc<CryptoProvider>,
    refused: Arc<OnceLock<Fingerprint>>,
}

impl PinnedVerifier {
    pub(crate) fn new(pin: Fingerprint, provider: Arc<CryptoProvider>, refused: Arc<OnceLock<Fingerprint>>) -> Self {
        Self { pin, provider, refused }
    }
}

/// The plain-words error for a server whose certificate is not the pinned one.
pub(crate) fn pin_mismatch(pin: &Fingerprint, seen: &Fingerprint) -> ClientError {
    ClientError::Handshake(format!(
        "the server's QUIC certificate has SHA-256 fingerprint {seen}, not the pinned {pin}; \
         pin the fingerprint the broker printed at start (<data-dir>/quic-cert.sha256)"
    ))
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = Fingerprint::of_der(end_entity.as_ref());
        if seen == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            tracing::warn!(expected = %self.pin, seen = %seen, "server certificate does not match the pinned fingerprint");
            let _ = self.refused.set(seen);
            Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A root store holding every certificate in `pem`. At least one certificate is required.
pub(crate) fn root_store(pem: &[u8]) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| ClientError::Config(format!("CA PEM: {e}")))?;
        roots.add(cert).map_err(|e| ClientError::Config(format!("CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ClientError::Config("CA PEM holds no certificate".into()));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn parses_hex_in_any_case_with_or_without_colons() {
        let plain: Fingerprint = HEX.parse().unwrap();
        let upper: Fingerprint = HEX.to_uppercase().parse().unwrap();
        let colons = HEX.as_bytes().chunks(2).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(":");
        let colons: Fingerprint = format!(" {} \n", colons.to_uppercase()).parse().unwrap();
        assert_eq!(plain, upper);
        assert_eq!(plain, colons);
        assert_eq!(plain.to_string(), HEX);
        assert_eq!(plain.as_bytes()[1], 0x11);
    }

    #[test]
    fn refuses_wrong_length_or_digits() {
        for bad in ["", "abc", &HEX[..62], &format!("{HEX}00"), &HEX.replace('a', "g")] {
            assert!(matches!(bad.parse::<Fingerprint>(), Err(ClientError::Config(_))), "{bad:?}");
        }
    }

    #[test]
    fn fingerprint_of_der_is_sha256() {
        // SHA-256 of the empty string.
        assert_eq!(
            Fingerprint::of_der(b"").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn root_store_needs_a_certificate() {
        assert!(matches!(root_store(b"not a pem"), Err(ClientError::Config(_))));
        let cert = rcgen::generate_simple_self_signed(["localhost".to_owned()]).unwrap();
        assert_eq!(root_store(cert.cert.pem().as_bytes()).unwrap().len(), 1);
    }
}
