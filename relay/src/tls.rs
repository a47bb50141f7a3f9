//! The relay's TLS identity and server configuration.
//!
//! Owns: generating the relay's Ed25519 key and self-signed certificate, loading them, and
//! the TLS 1.3-only rustls server configuration (ALPN `hush/2`). The pin computation, the
//! crypto provider and the client's pin verifier are hush-transport's ([`hush_transport::tls`]).
//! Must never enable TLS 1.2 or 0-RTT, and never write or print the private key anywhere but
//! the key file.

use std::fmt;
use std::path::Path;

use hush_proto::{ALPN, SpkiPin};
use hush_transport::tls::crypto_provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::Error;

/// The relay's certificate and private key, as made by `init`.
pub struct Identity {
    /// DER certificate.
    pub cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { cert: _, key: _ } = self;
        f.write_str("Identity(<certificate and private key>)")
    }
}

impl Identity {
    /// Generates a fresh Ed25519 key and a self-signed certificate naming `host`.
    ///
    /// # Errors
    /// [`Error::Tls`] if generation fails.
    pub fn generate(host: &str) -> Result<Self, Error> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .map_err(|e| Error::Tls(format!("key generation: {e}")))?;
        let mut params = rcgen::CertificateParams::new(vec![host.to_owned()])
            .map_err(|e| Error::Tls(format!("certificate parameters: {e}")))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hush-relay");
        let cert = params
            .self_signed(&key)
            .map_err(|e| Error::Tls(format!("self-signing: {e}")))?;
        Ok(Self {
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }

    /// Certificate as PEM.
    #[must_use]
    pub fn cert_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.cert)
    }

    /// Private key as PEM (PKCS#8). Write it with mode 0600.
    #[must_use]
    pub fn key_pem(&self) -> String {
        pem_encode("PRIVATE KEY", self.key.secret_pkcs8_der())
    }

    /// Loads a PEM certificate and PEM PKCS#8 key.
    ///
    /// # Errors
    /// [`Error::Io`] if a file cannot be read, [`Error::Tls`] if it does not parse.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, Error> {
        let cert_text = std::fs::read_to_string(cert_path)
            .map_err(|e| Error::io(format!("reading {}", cert_path.display()), e))?;
        let key_text = std::fs::read_to_string(key_path)
            .map_err(|e| Error::io(format!("reading {}", key_path.display()), e))?;
        let cert = pem_decode("CERTIFICATE", &cert_text)
            .ok_or_else(|| Error::Tls(format!("{}: no PEM CERTIFICATE", cert_path.display())))?;
        let key = pem_decode("PRIVATE KEY", &key_text)
            .ok_or_else(|| Error::Tls(format!("{}: no PEM PRIVATE KEY", key_path.display())))?;
        let id = Self {
            cert: CertificateDer::from(cert),
            key: PrivatePkcs8KeyDer::from(key),
        };
        // Fail at startup, not at the first handshake.
        id.server_config()?;
        Ok(id)
    }

    /// The pin clients verify.
    ///
    /// # Errors
    /// [`Error::Tls`] if the certificate does not parse.
    pub fn pin(&self) -> Result<SpkiPin, Error> {
        hush_transport::spki_pin(&self.cert).map_err(|e| match e {
            hush_transport::Error::Tls(m) => Error::Tls(m),
            other => Error::Tls(other.to_string()),
        })
    }

    /// The DER SubjectPublicKeyInfo of the certificate (its SHA-256 is the pin).
    ///
    /// # Errors
    /// [`Error::Tls`] if the certificate does not parse.
    pub fn spki(&self) -> Result<Vec<u8>, Error> {
        hush_transport::tls::spki_der(&self.cert).map_err(|e| Error::Tls(e.to_string()))
    }

    /// Signs `message` with the certificate's Ed25519 key (the forwarding-key statement,
    /// docs/PROTOCOL.md II.4.2).
    ///
    /// # Errors
    /// [`Error::Tls`] if the key is not an Ed25519 PKCS#8 key.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(
            self.key.secret_pkcs8_der(),
        )
        .map_err(|_| Error::Tls("the relay key is not an Ed25519 PKCS#8 key".into()))?;
        Ok(pair.sign(message).as_ref().to_vec())
    }

    /// The rustls server configuration: TLS 1.3 only, ALPN `hush/2`, no 0-RTT.
    ///
    /// # Errors
    /// [`Error::Tls`] if the key does not match the certificate or is unsupported.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, Error> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .map_err(|e| Error::Tls(e.to_string()))?;
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        cfg.max_early_data_size = 0;
        Ok(cfg)
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_decode(label: &str, text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text.get(start..)?.find(&end)?;
    let body: String = text
        .get(start..stop)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identity_round_trips_through_pem() {
        let id = Identity::generate("relay.example.org").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, id.cert_pem()).unwrap();
        std::fs::write(&k, id.key_pem()).unwrap();
        let loaded = Identity::load(&c, &k).unwrap();
        assert_eq!(loaded.pin().unwrap(), id.pin().unwrap());
        assert_ne!(
            Identity::generate("x").unwrap().pin().unwrap(),
            id.pin().unwrap()
        );
    }
}
