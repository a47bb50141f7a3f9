//! Files: the secret of one transferred file and the encryption of its chunks.
//!
//! Owns: deriving, from a file's random 32-byte secret, each chunk's relay secret (which the
//! relay sees when the recipient fetches or deletes) and its content key (which it never
//! sees), and sealing/opening one chunk of exactly [`CHUNK_LEN`] bytes (docs/PROTOCOL.md 7a).
//! Must never reuse a nonce under a key: every seal draws a fresh 24-byte nonce, so a
//! resumed upload that re-encrypts a chunk (even from a file that changed meanwhile) never
//! repeats a keystream. Must never let a chunk open at another index or under another file.
//!
//! Layout of a chunk: `nonce (24) || XChaCha20-Poly1305(key_i, nonce, plaintext) (CHUNK_PAYLOAD)
//! || tag (16)`, the plaintext being the file's bytes `[i*P, (i+1)*P)` (P = [`CHUNK_PAYLOAD`]),
//! the last one zero-padded. `secret_i || key_i = HKDF-SHA256(salt none, ikm file secret,
//! info "hush/v2/chunk" || u32 i, 64)`; `id_i = SHA-256(secret_i)`.

use core::fmt;

use hush_proto::{CHUNK_LEN, ChunkId, ChunkSecret};
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Error;
use crate::primitives::{Key32, TAG_LEN, XNONCE_LEN, hkdf, xopen, xseal};

/// Domain separation of a chunk's secret and key.
const DOMAIN_CHUNK: &[u8] = b"hush/v2/chunk";
/// File bytes carried by one chunk.
pub const CHUNK_PAYLOAD: usize = CHUNK_LEN - XNONCE_LEN - TAG_LEN;

/// The chunks a file of `size` bytes takes: `ceil(size / CHUNK_PAYLOAD)`, and 1 for an empty
/// file (one chunk of padding, so that an empty file looks like any other small one).
#[must_use]
pub fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK_PAYLOAD as u64).max(1)
}

/// A file's secret: every chunk's name and key derive from it. Zeroized on drop, never
/// printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct FileSecret([u8; 32]);

impl fmt::Debug for FileSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileSecret(<redacted>)")
    }
}

/// What chunk `i` of a file needs: the secret the relay sees, and the content key it must not.
pub struct ChunkKeys {
    /// Opens the chunk on the relay (GetChunk, DeleteChunk).
    pub secret: ChunkSecret,
    key: Key32,
}

impl fmt::Debug for ChunkKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { secret: _, key: _ } = self;
        f.write_str("ChunkKeys(<redacted>)")
    }
}

impl ChunkKeys {
    /// The chunk's public id, `SHA-256(secret)`, named by PutChunk.
    #[must_use]
    pub fn id(&self) -> ChunkId {
        self.secret.id()
    }
}

impl FileSecret {
    /// Draws a fresh secret (32 bytes).
    pub fn random(rng: &mut impl CryptoRng) -> Self {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        Self(b)
    }

    /// Wraps 32 secret bytes (from a descriptor or the store).
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes (for the descriptor and the store).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The keys of chunk `index`.
    #[must_use]
    pub fn chunk(&self, index: u32) -> ChunkKeys {
        let okm = hkdf::<64>(None, &self.0, &[DOMAIN_CHUNK, &index.to_be_bytes()]);
        let mut secret = [0u8; 32];
        let mut key = [0u8; 32];
        secret.copy_from_slice(&okm[..32]);
        key.copy_from_slice(&okm[32..]);
        let keys = ChunkKeys {
            secret: ChunkSecret::from_bytes(secret),
            key: Key32(key),
        };
        secret.zeroize();
        key.zeroize();
        keys
    }

    /// Seals chunk `index` of the file: `plaintext` (at most [`CHUNK_PAYLOAD`] bytes, the
    /// rest is zero padding) into exactly [`CHUNK_LEN`] bytes. Draws the 24-byte nonce.
    ///
    /// # Errors
    /// [`Error::InvalidOperation`] if `plaintext` is longer than [`CHUNK_PAYLOAD`].
    pub fn seal_chunk(
        &self,
        index: u32,
        plaintext: &[u8],
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, Error> {
        if plaintext.len() > CHUNK_PAYLOAD {
            return Err(Error::InvalidOperation(
                "chunk plaintext longer than CHUNK_PAYLOAD",
            ));
        }
        let keys = self.chunk(index);
        let mut nonce = [0u8; XNONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut out = vec![0u8; CHUNK_LEN];
        out[..XNONCE_LEN].copy_from_slice(&nonce);
        let body = &mut out[XNONCE_LEN..XNONCE_LEN + CHUNK_PAYLOAD];
        body[..plaintext.len()].copy_from_slice(plaintext);
        let tag = xseal(&keys.key, &nonce, body);
        out[XNONCE_LEN + CHUNK_PAYLOAD..].copy_from_slice(&tag);
        Ok(out)
    }

    /// Opens chunk `index` and returns its first `len` plaintext bytes (the file's bytes in
    /// it), checking that the padding after them is zero.
    ///
    /// # Errors
    /// [`Error::ChunkAuthFailed`] if the chunk is not [`CHUNK_LEN`] bytes, does not
    /// authenticate under this file and index, or has non-zero padding;
    /// [`Error::InvalidOperation`] if `len` is above [`CHUNK_PAYLOAD`].
    pub fn open_chunk(&self, index: u32, chunk: &[u8], len: usize) -> Result<Vec<u8>, Error> {
        if len > CHUNK_PAYLOAD {
            return Err(Error::InvalidOperation("chunk length above CHUNK_PAYLOAD"));
        }
        if chunk.len() != CHUNK_LEN {
            return Err(Error::ChunkAuthFailed);
        }
        let keys = self.chunk(index);
        let (nonce, rest) = chunk.split_at(XNONCE_LEN);
        let (body, tag) = rest.split_at(CHUNK_PAYLOAD);
        let mut plain = body.to_vec();
        if !xopen(&keys.key, nonce, &mut plain, tag) {
            return Err(Error::ChunkAuthFailed);
        }
        if plain[len..].iter().any(|&b| b != 0) {
            return Err(Error::ChunkAuthFailed);
        }
        plain.truncate(len);
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn a_chunk_opens_only_at_its_index_under_its_file() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let file = FileSecret::random(&mut rng);
        let text = "报道 تقرير 📰".repeat(1000);
        let c = file.seal_chunk(3, text.as_bytes(), &mut rng).unwrap();
        assert_eq!(c.len(), CHUNK_LEN);
        assert_eq!(file.open_chunk(3, &c, text.len()).unwrap(), text.as_bytes());
        assert_eq!(
            file.open_chunk(2, &c, text.len()),
            Err(Error::ChunkAuthFailed)
        );
        let other = FileSecret::random(&mut rng);
        assert_eq!(
            other.open_chunk(3, &c, text.len()),
            Err(Error::ChunkAuthFailed)
        );
        let mut bad = c.clone();
        bad[1000] ^= 1;
        assert_eq!(
            file.open_chunk(3, &bad, text.len()),
            Err(Error::ChunkAuthFailed)
        );
        // Claiming fewer bytes than the chunk holds exposes non-zero "padding".
        assert_eq!(
            file.open_chunk(3, &c, text.len() - 1),
            Err(Error::ChunkAuthFailed)
        );
        // Two seals of the same bytes differ (fresh nonces), both open.
        let again = file.seal_chunk(3, text.as_bytes(), &mut rng).unwrap();
        assert_ne!(again, c);
        assert_eq!(
            file.open_chunk(3, &again, text.len()).unwrap(),
            text.as_bytes()
        );
    }

    #[test]
    fn names_differ_per_index_and_the_key_is_not_the_secret() {
        let file = FileSecret::from_bytes([5; 32]);
        let (a, b) = (file.chunk(0), file.chunk(1));
        assert_ne!(a.id(), b.id());
        assert_ne!(a.secret.as_bytes(), &a.key.0);
        assert!(!format!("{a:?}{file:?}").contains('5'));
    }

    #[test]
    fn chunk_counts() {
        let p = CHUNK_PAYLOAD as u64;
        assert_eq!(chunk_count(0), 1);
        assert_eq!(chunk_count(1), 1);
        assert_eq!(chunk_count(p), 1);
        assert_eq!(chunk_count(p + 1), 2);
        assert_eq!(chunk_count(1 << 30), 4097);
    }
}
