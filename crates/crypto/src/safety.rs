//! Safety numbers: what two people compare (aloud or by QR code) to rule out a
//! man-in-the-middle on their relationship.
//!
//! The number is symmetric (both sides compute the same value) and bound to the handshake
//! transcript, so two relationships of the same person never share a safety number.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::primitives::{INFO_SAFETY, hkdf};

const GROUPS: usize = 12;
const BYTES_PER_GROUP: usize = 5;
/// Prefix of the QR form.
pub const QR_PREFIX: &str = "hush-sn:1:";

/// A relationship's safety number: 60 bytes shown as 12 groups of 5 digits.
#[derive(Clone, PartialEq, Eq)]
pub struct SafetyNumber([u8; GROUPS * BYTES_PER_GROUP]);

impl SafetyNumber {
    pub(crate) fn compute(own: &[u8; 32], peer: &[u8; 32], transcript: &[u8; 32]) -> Self {
        let (lo, hi) = if own <= peer {
            (own, peer)
        } else {
            (peer, own)
        };
        let mut ikm = [0u8; 96];
        ikm[..32].copy_from_slice(lo);
        ikm[32..64].copy_from_slice(hi);
        ikm[64..].copy_from_slice(transcript);
        Self(*hkdf::<60>(None, &ikm, &[INFO_SAFETY]))
    }

    /// Twelve groups of five digits separated by spaces, for reading aloud.
    pub fn digits(&self) -> String {
        self.0
            .chunks(BYTES_PER_GROUP)
            .map(|c| {
                let v = c.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
                format!("{:05}", v % 100_000)
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The string to put in a QR code: `hush-sn:1:` and base64url of the 60 bytes.
    pub fn qr_string(&self) -> String {
        format!("{QR_PREFIX}{}", URL_SAFE_NO_PAD.encode(self.0))
    }

    /// Compares with a scanned QR string, in constant time over the number.
    pub fn matches_qr(&self, scanned: &str) -> bool {
        let Some(b64) = scanned.trim().strip_prefix(QR_PREFIX) else {
            return false;
        };
        match URL_SAFE_NO_PAD.decode(b64) {
            Ok(v) if v.len() == self.0.len() => v.ct_eq(&self.0).into(),
            _ => false,
        }
    }
}

impl std::fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SafetyNumber(..)")
    }
}
