//! Value types carried in frames: mailbox ids, fetch secrets, envelope ids, envelopes, and
//! the bounded batches of them.
//!
//! Owns: the invariants of these values (sizes, batch bounds) and their redacted `Debug`.
//! Must never print a mailbox id, a fetch secret or envelope bytes through `Debug` or
//! `Display`, and must never compare fetch secrets in variable time.

use core::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::{Error, MAX_DELETE_IDS, MAX_SECRETS};

/// Size of an envelope: the opaque ciphertext unit a relay stores and forwards.
pub const ENVELOPE_LEN: usize = 4096;

/// The pseudonym a mailbox is stored under: `SHA-256(fetch_secret)`.
///
/// Senders know it; only the holder of the matching [`FetchSecret`] can read or delete.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxId(pub [u8; 32]);

impl fmt::Debug for MailboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Mailbox ids are pseudonyms; logs must never be able to correlate them.
        f.write_str("MailboxId(<redacted>)")
    }
}

impl MailboxId {
    /// The raw 32 bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A fetch secret: presenting it proves the right to read and delete the mailbox
/// `SHA-256(secret)`. Zeroized on drop, compared in constant time, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct FetchSecret([u8; 32]);

impl FetchSecret {
    /// Wraps 32 secret bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw secret bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The mailbox this secret opens: `SHA-256(secret)`.
    #[must_use]
    pub fn mailbox_id(&self) -> MailboxId {
        MailboxId(Sha256::digest(self.0).into())
    }
}

impl PartialEq for FetchSecret {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for FetchSecret {}

impl fmt::Debug for FetchSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FetchSecret(<redacted>)")
    }
}

/// The id a relay assigns to a stored envelope; used to acknowledge (delete) it and as the
/// fetch cursor. Ids grow in commit order on one relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnvelopeId(pub u64);

/// One envelope: exactly [`ENVELOPE_LEN`] opaque bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope(Box<[u8; ENVELOPE_LEN]>);

impl Envelope {
    /// Wraps exactly [`ENVELOPE_LEN`] bytes.
    #[must_use]
    pub fn new(bytes: Box<[u8; ENVELOPE_LEN]>) -> Self {
        Self(bytes)
    }

    /// Copies a slice that must be exactly [`ENVELOPE_LEN`] bytes long.
    ///
    /// # Errors
    /// [`Error::EnvelopeLength`] for any other length.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let arr: [u8; ENVELOPE_LEN] = bytes
            .try_into()
            .map_err(|_| Error::EnvelopeLength(bytes.len()))?;
        Ok(Self(Box::new(arr)))
    }

    /// Takes a vector that must be exactly [`ENVELOPE_LEN`] bytes long, reusing its
    /// allocation: no copy of the 4 KiB when its capacity is its length (as for a vector
    /// made with `Vec::with_capacity(ENVELOPE_LEN)`).
    ///
    /// # Errors
    /// [`Error::EnvelopeLength`] for any other length.
    pub fn from_vec(bytes: Vec<u8>) -> Result<Self, Error> {
        let len = bytes.len();
        bytes
            .into_boxed_slice()
            .try_into()
            .map(Self)
            .map_err(|_| Error::EnvelopeLength(len))
    }

    /// The envelope bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; ENVELOPE_LEN] {
        &self.0
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Envelope(<4096 bytes>)")
    }
}

/// A stored envelope as the relay hands it out, by fetch or by push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The mailbox it was deposited to (the client maps it back to its fetch secret).
    pub mailbox: MailboxId,
    /// The relay's id for it, used to delete it.
    pub id: EnvelopeId,
    /// The ciphertext.
    pub envelope: Envelope,
}

/// 1 to [`MAX_SECRETS`] fetch secrets: the argument of Fetch and Subscribe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretBatch(Vec<FetchSecret>);

impl SecretBatch {
    /// Checks the bound.
    ///
    /// # Errors
    /// [`Error::BadCount`] if `secrets` is empty or longer than [`MAX_SECRETS`].
    pub fn new(secrets: Vec<FetchSecret>) -> Result<Self, Error> {
        if secrets.is_empty() || secrets.len() > MAX_SECRETS {
            return Err(Error::BadCount {
                count: secrets.len(),
                max: MAX_SECRETS,
            });
        }
        Ok(Self(secrets))
    }

    /// The secrets, in wire order.
    #[must_use]
    pub fn secrets(&self) -> &[FetchSecret] {
        &self.0
    }
}

/// 1 to [`MAX_DELETE_IDS`] envelope ids: the argument of Delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteIds(Vec<EnvelopeId>);

impl DeleteIds {
    /// Checks the bound.
    ///
    /// # Errors
    /// [`Error::BadCount`] if `ids` is empty or longer than [`MAX_DELETE_IDS`].
    pub fn new(ids: Vec<EnvelopeId>) -> Result<Self, Error> {
        if ids.is_empty() || ids.len() > MAX_DELETE_IDS {
            return Err(Error::BadCount {
                count: ids.len(),
                max: MAX_DELETE_IDS,
            });
        }
        Ok(Self(ids))
    }

    /// The ids, in wire order.
    #[must_use]
    pub fn ids(&self) -> &[EnvelopeId] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_id_is_sha256_of_secret() {
        // SHA-256 of 32 zero bytes (FIPS 180-4), a well-known value.
        let id = FetchSecret::from_bytes([0; 32]).mailbox_id();
        assert_eq!(
            hex::encode(id.0),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
    }

    #[test]
    fn debug_is_redacted() {
        let s = format!(
            "{:?} {:?} {:?}",
            FetchSecret::from_bytes([0xab; 32]),
            MailboxId([0xcd; 32]),
            Envelope::new(Box::new([0xef; ENVELOPE_LEN]))
        );
        assert!(!s.contains("ab") && !s.contains("cd") && !s.contains("ef") && !s.contains("171"));
    }

    #[test]
    fn batches_are_bounded() {
        assert!(SecretBatch::new(vec![]).is_err());
        assert!(SecretBatch::new(vec![FetchSecret::from_bytes([1; 32]); MAX_SECRETS]).is_ok());
        assert!(SecretBatch::new(vec![FetchSecret::from_bytes([1; 32]); MAX_SECRETS + 1]).is_err());
        assert!(DeleteIds::new(vec![]).is_err());
        assert!(DeleteIds::new(vec![EnvelopeId(1); MAX_DELETE_IDS]).is_ok());
        assert!(DeleteIds::new(vec![EnvelopeId(1); MAX_DELETE_IDS + 1]).is_err());
        assert!(Envelope::from_slice(&[0; 10]).is_err());
        assert!(Envelope::from_slice(&[0; ENVELOPE_LEN + 1]).is_err());
    }

    #[test]
    fn envelope_lengths() {
        for n in [0, 1, ENVELOPE_LEN - 1, ENVELOPE_LEN + 1, 2 * ENVELOPE_LEN] {
            assert_eq!(
                Envelope::from_slice(&vec![7; n]),
                Err(Error::EnvelopeLength(n))
            );
            assert_eq!(
                Envelope::from_vec(vec![7; n]),
                Err(Error::EnvelopeLength(n))
            );
        }
        let v = vec![7u8; ENVELOPE_LEN];
        let at = v.as_ptr();
        let env = Envelope::from_vec(v).unwrap();
        assert_eq!(env.as_bytes().as_ptr(), at, "from_vec copied the bytes");
        assert_eq!(Envelope::from_slice(&[7; ENVELOPE_LEN]).unwrap(), env);
    }
}
