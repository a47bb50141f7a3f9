//! The client half of hush's TLS: a relay is accepted by its pin, not by a CA.
//!
//! Owns: computing the SPKI pin of a certificate, the ring crypto provider both ends use, the
//! TLS 1.3-only rustls client configuration, and the verifier that accepts exactly the
//! certificate whose SPKI hashes to the pin. The relay's own identity and server
//! configuration live in hush-relay.
//! Must never accept a certificate whose SPKI hash differs from the pin, never skip the
//! TLS 1.3 CertificateVerify signature check, and never enable TLS 1.2 or 0-RTT.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hush_proto::SpkiPin;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::Error;

/// The crypto provider of every hush TLS configuration, client and server: ring.
#[must_use]
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SHA-256 of the DER SubjectPublicKeyInfo of a DER certificate.
///
/// # Errors
/// [`Error::Tls`] if the certificate does not parse.
pub fn spki_pin(cert: &CertificateDer<'_>) -> Result<SpkiPin, Error> {
    Ok(SpkiPin::of_spki_der(&spki_der(cert)?))
}

/// The DER SubjectPublicKeyInfo of a certificate (what the pin hashes, and what a relay's
/// forwarding-key statement carries).
///
/// # Errors
/// [`Error::Tls`] if the certificate does not parse.
pub fn spki_der(cert: &CertificateDer<'_>) -> Result<Vec<u8>, Error> {
    let ee = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| Error::Tls(format!("certificate does not parse: {e}")))?;
    Ok(ee.subject_public_key_info().as_ref().to_vec())
}

/// The rustls client configuration for a relay pinned by `pin`: TLS 1.3 only, ALPN `alpn`,
/// no early data.
///
/// # Errors
/// [`Error::Tls`] if rustls rejects the configuration.
pub fn client_config(pin: SpkiPin, alpn: &[u8]) -> Result<rustls::ClientConfig, Error> {
    client_config_noting_mismatch(pin, alpn).map(|(cfg, _)| cfg)
}

/// [`client_config`], and a flag its verifier sets when the relay presented a certificate
/// whose SPKI does not hash to the pin (so the connection error can say so).
pub(crate) fn client_config_noting_mismatch(
    pin: SpkiPin,
    alpn: &[u8],
) -> Result<(rustls::ClientConfig, Arc<AtomicBool>), Error> {
    let provider = crypto_provider();
    let mismatch = Arc::new(AtomicBool::new(false));
    let verifier = Arc::new(PinVerifier {
        pin,
        provider: provider.clone(),
        mismatch: mismatch.clone(),
    });
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    cfg.enable_early_data = false;
    Ok((cfg, mismatch))
}

/// Accepts exactly the certificate whose SPKI hashes to the pin; names and dates are not
/// checked because the pin, not a CA, is the relay's identity.
#[derive(Debug)]
struct PinVerifier {
    pin: SpkiPin,
    provider: Arc<CryptoProvider>,
    /// Set when a certificate did not match the pin.
    mismatch: Arc<AtomicBool>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = spki_pin(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            self.mismatch.store(true, Ordering::SeqCst);
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // TLS 1.2 is disabled in the client configuration; refuse outright.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert() -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let params = rcgen::CertificateParams::new(vec!["relay.example".to_owned()]).unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    fn verify(pin: SpkiPin, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let mismatch = Arc::new(AtomicBool::new(false));
        let v = PinVerifier {
            pin,
            provider: crypto_provider(),
            mismatch: mismatch.clone(),
        };
        let name = ServerName::try_from("other.example").unwrap();
        let r = v
            .verify_server_cert(cert, &[], &name, &[], UnixTime::now())
            .map(|_| ());
        // The flag the connection error is told apart by is set exactly on a mismatch.
        assert_eq!(
            mismatch.load(Ordering::SeqCst),
            r == Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure
            ))
        );
        r
    }

    #[test]
    fn the_verifier_accepts_exactly_the_pinned_key_whatever_the_name() {
        let c = cert();
        let pin = spki_pin(&c).unwrap();
        assert!(verify(pin, &c).is_ok());
        let mut other = pin;
        other.0[31] ^= 1;
        assert_eq!(
            verify(other, &c),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure
            ))
        );
        assert_ne!(spki_pin(&cert()).unwrap(), pin, "fresh keys, fresh pins");
        let garbage = CertificateDer::from(vec![0x30, 0x03, 1, 2, 3]);
        assert!(spki_pin(&garbage).is_err());
        assert!(verify(pin, &garbage).is_err());
    }

    #[test]
    fn the_client_config_offers_one_alpn_and_no_early_data() {
        let cfg = client_config(SpkiPin([7; 32]), hush_proto::ALPN).unwrap();
        assert_eq!(cfg.alpn_protocols, vec![hush_proto::ALPN.to_vec()]);
        assert!(!cfg.enable_early_data);
    }
}
