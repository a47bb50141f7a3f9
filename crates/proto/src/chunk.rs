//! File chunks: the opaque, equal-size units a relay stores for file transfer.
//!
//! Owns: the chunk size [`CHUNK_LEN`], the chunk names ([`ChunkSecret`], [`ChunkId`] and the
//! relay's storage key for an id) and the rule of which request or response kinds carry a
//! chunk's bytes after their frame on the same stream ([`request_trailer_len`],
//! [`request_max_trailer_len`], [`response_trailer_len`]). Sans-IO like the rest of the crate.
//! Must never know how a chunk's content is encrypted or how chunk secrets are derived from a
//! file (that is the client's business, docs/PROTOCOL.md II.4.3): to a relay, and to this
//! crate, a chunk is `CHUNK_LEN` opaque bytes named by an id.
//!
//! How it fits: the uploader sends `PutChunk(id)` followed by exactly `CHUNK_LEN` bytes; the
//! downloader sends `GetChunk(secret)` and receives `Chunk` followed by `CHUNK_LEN` bytes, and
//! `DeleteChunk(secret)` removes it. `id = SHA-256(secret)`, so only the holder of the secret
//! (the recipient, through the file descriptor) can read or delete a chunk, and the relay keeps
//! it under `SHA-256("hush/v2/chunk-key" || id)`, a name no mailbox or drop can reach.

use core::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Size of every chunk a relay stores, in bytes (256 KiB). One size only: every chunk stream
/// on the wire and every chunk on a relay's disk has this length, so the relay cannot tell
/// the chunks of a photo from those of a video, nor the last chunk of a file from the others.
/// Why 256 KiB: a 1 GiB file is 4,097 chunks (a few thousand requests, not hundreds of
/// thousands), a typical 2-5 MB phone photo or PDF pads to at most 256 KiB more, one chunk in
/// flight costs a relay and a client 256 KiB of memory, and a resumed transfer redoes at most
/// one chunk per connection. XFTP offers 64 KiB to 4 MiB; hush keeps a single size because
/// several sizes let a relay sort uploads by size class.
pub const CHUNK_LEN: usize = 256 * 1024;

/// Domain separation of a chunk's storage key on a relay.
const DOMAIN_CHUNK_KEY: &[u8] = b"hush/v2/chunk-key";

/// The public name of a chunk: `SHA-256(chunk secret)`. The uploader names it in `PutChunk`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 32]);

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChunkId(<redacted>)")
    }
}

impl ChunkId {
    /// The raw 32 bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Where a relay stores this chunk: `SHA-256("hush/v2/chunk-key" || id)` (49-byte
    /// preimage, unlike a mailbox's 47 or a drop's 45 bytes, so no deposit reaches a chunk).
    #[must_use]
    pub fn storage_key(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(DOMAIN_CHUNK_KEY);
        h.update(self.0);
        h.finalize().into()
    }
}

/// The secret that reads and deletes one chunk. Zeroized on drop, compared in constant time,
/// never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ChunkSecret([u8; 32]);

impl ChunkSecret {
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

    /// The chunk this secret opens: `SHA-256(secret)`.
    #[must_use]
    pub fn id(&self) -> ChunkId {
        ChunkId(Sha256::digest(self.0).into())
    }
}

impl PartialEq for ChunkSecret {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for ChunkSecret {}

impl fmt::Debug for ChunkSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChunkSecret(<redacted>)")
    }
}

/// The most bytes that may follow a request frame of kind `kind` on its stream:
/// [`CHUNK_LEN`] for `PutChunk`, `ForwardChunk` and `DeliverChunk` (the two forwarded kinds
/// carry one when their trailer flag says so, [`request_trailer_len`]), 0 for every other
/// kind (and for unknown kinds, which decoding rejects). A reader that has only byte 1 of
/// the stream bounds what it keeps with this.
#[must_use]
pub fn request_max_trailer_len(kind: u8) -> usize {
    if kind == crate::frame::PUT_CHUNK_KIND
        || crate::frame::FORWARD_CHUNK_KINDS
            .iter()
            .any(|&(k, _)| k == kind)
    {
        CHUNK_LEN
    } else {
        0
    }
}

/// How many bytes follow the request frame `frame` (its first bytes at least) on its
/// stream: [`CHUNK_LEN`] for `PutChunk`, and for `ForwardChunk` and `DeliverChunk` whose
/// trailer flag is 1; 0 otherwise (a flag other than 0 or 1 is refused by decoding, and
/// counts as 0 here, so a reader does not wait for bytes that may never come).
#[must_use]
pub fn request_trailer_len(frame: &[u8]) -> usize {
    let Some(&kind) = frame.get(1) else {
        return 0;
    };
    if kind == crate::frame::PUT_CHUNK_KIND {
        return CHUNK_LEN;
    }
    match crate::frame::FORWARD_CHUNK_KINDS
        .iter()
        .find(|&&(k, _)| k == kind)
    {
        Some(&(_, at)) if frame.get(at) == Some(&1) => CHUNK_LEN,
        _ => 0,
    }
}

/// How many bytes follow a response frame on its stream: [`CHUNK_LEN`] for `Chunk`, and for
/// `ChunkForwarded` whose trailer flag (the first byte of its body) is 1; 0 otherwise.
#[must_use]
pub fn response_trailer_len(frame: &[u8]) -> usize {
    match frame.get(1) {
        Some(&k) if k == crate::frame::CHUNK_KIND => CHUNK_LEN,
        Some(&k)
            if k == crate::frame::CHUNK_FORWARDED_KIND
                && frame.get(crate::HEADER_LEN) == Some(&1) =>
        {
            CHUNK_LEN
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FetchSecret;
    use crate::drop::{DropAddress, storage_key};

    #[test]
    fn a_chunk_key_is_never_a_mailbox_or_drop_key() {
        let s = [9u8; 32];
        let chunk = ChunkSecret::from_bytes(s).id();
        let fetch = FetchSecret::from_bytes(s);
        assert_eq!(
            chunk.0,
            fetch.mailbox_id().0,
            "both are SHA-256 of the secret"
        );
        assert_ne!(chunk.storage_key(), storage_key(&fetch.mailbox_id()).0);
        assert_ne!(
            chunk.storage_key(),
            DropAddress::of_secret(&fetch).storage_key().0
        );
    }

    #[test]
    fn only_chunk_kinds_carry_a_trailer() {
        for k in 0..=255u8 {
            let mut frame = vec![0u8; crate::FRAME_LEN];
            frame[1] = k;
            let req = request_trailer_len(&frame);
            let resp = response_trailer_len(&frame);
            assert_eq!(req == CHUNK_LEN, k == 0x10, "request kind {k:#x}");
            assert_eq!(resp == CHUNK_LEN, k == 0x91, "response kind {k:#x}");
            assert_eq!(
                request_max_trailer_len(k) == CHUNK_LEN,
                matches!(k, 0x10 | 0x13 | 0x14),
                "request kind {k:#x}"
            );
        }
        // The forwarded kinds carry one when their flag says so.
        let mut forward = vec![0u8; crate::FRAME_LEN];
        forward[1] = 0x13;
        forward[4 + 288 + 32] = 1;
        let mut deliver = vec![0u8; crate::FRAME_LEN];
        deliver[1] = 0x14;
        deliver[4 + 32] = 1;
        let mut answer = vec![0u8; crate::FRAME_LEN];
        answer[1] = 0x93;
        answer[4] = 1;
        assert_eq!(request_trailer_len(&forward), CHUNK_LEN);
        assert_eq!(request_trailer_len(&deliver), CHUNK_LEN);
        assert_eq!(response_trailer_len(&answer), CHUNK_LEN);
        deliver[4 + 32] = 2;
        assert_eq!(request_trailer_len(&deliver), 0);
    }

    #[test]
    fn debug_never_prints_chunk_names() {
        let s = ChunkSecret::from_bytes([0xab; 32]);
        assert!(!format!("{s:?}{:?}", s.id()).contains("ab"));
    }
}
