//! Private routing of file chunk requests (docs/PROTOCOL.md II.4.4): PutChunk, GetChunk and
//! DeleteChunk sealed to a destination relay's forwarding key, with the chunk that follows
//! a put, or a get's answer, sealed too.
//!
//! Owns: the inner chunk request (a chunk command and the tag of the sealed chunk after it)
//! and the inner chunk answer (a chunk answer and the tag of the sealed chunk after it), the
//! four keys of one exchange (`"hush/v2/forward-chunk"`), and the sealing and opening of
//! requests, answers and both trailers. The trailers are exactly [`CHUNK_LEN`] bytes of
//! ciphertext on the wire; their tags travel inside the sealed frames, so a relay on the way
//! that changes one bit of a chunk is caught at the other end. Sans-IO: the caller draws the
//! ephemeral secret and the answer nonce.
//!
//! Must never seal to a key that was not verified against the destination's pin (only a
//! [`VerifiedKey`] seals), never seal two plaintexts under one key and nonce (request and
//! request trailer under keys of a fresh ephemeral key, answer and answer trailer under keys
//! of their own and a nonce the destination draws), and never print a chunk id, secret, key
//! or chunk byte.

use ring::aead::{Aad, Nonce, Tag};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::chunk::{CHUNK_LEN, ChunkId, ChunkSecret};
use crate::forward::{ForwardSecret, NONCE_LEN, TAG_LEN, VerifiedKey, X25519_LEN, aead};
use crate::frame::ErrorCode;
use crate::{Error, ErrorFrame, Request, SpkiPin};

/// HKDF info of the four keys of one forwarded chunk command.
pub const INFO_FORWARD_CHUNK: &[u8] = b"hush/v2/forward-chunk";
/// Plaintext of an inner chunk request: kind, three zero bytes, chunk id or secret (32),
/// the tag of the sealed chunk that follows (16; zero without one).
pub const INNER_CHUNK_REQUEST_LEN: usize = 4 + 32 + TAG_LEN;
/// A sealed inner chunk request: ciphertext and tag.
pub const SEALED_CHUNK_REQUEST_LEN: usize = INNER_CHUNK_REQUEST_LEN + TAG_LEN;
/// Plaintext of an inner chunk answer: kind, three zero bytes, 8 bytes of body, the tag of
/// the sealed chunk that follows (16; zero without one).
pub const INNER_CHUNK_ANSWER_LEN: usize = 4 + 8 + TAG_LEN;
/// A sealed inner chunk answer: nonce, ciphertext, tag.
pub const SEALED_CHUNK_ANSWER_LEN: usize = NONCE_LEN + INNER_CHUNK_ANSWER_LEN + TAG_LEN;

const PUT: u8 = 0x10;
const GET: u8 = 0x11;
const DELETE: u8 = 0x12;
const STORED: u8 = 0x90;
const CHUNK: u8 = 0x91;
const DELETED: u8 = 0x92;
const ERROR: u8 = 0xff;

/// A sealed chunk request as it travels in ForwardChunk and DeliverChunk.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedChunkRequest {
    /// The client's fresh X25519 public key for this command.
    pub ephemeral: [u8; X25519_LEN],
    /// A sealed chunk of [`CHUNK_LEN`] bytes follows the frame on its stream (a put).
    pub trailer: bool,
    /// ChaCha20-Poly1305 ciphertext of the inner chunk request, then its tag.
    pub sealed: [u8; SEALED_CHUNK_REQUEST_LEN],
}

impl core::fmt::Debug for SealedChunkRequest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Self {
            ephemeral: _,
            trailer,
            sealed: _,
        } = self;
        f.debug_struct("SealedChunkRequest")
            .field("trailer", trailer)
            .finish_non_exhaustive()
    }
}

/// A sealed chunk answer as it travels in ChunkForwarded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SealedChunkAnswer {
    /// A sealed chunk of [`CHUNK_LEN`] bytes follows the frame on its stream (a get that
    /// found its chunk).
    pub trailer: bool,
    /// Nonce, ChaCha20-Poly1305 ciphertext of the inner answer, tag.
    pub sealed: [u8; SEALED_CHUNK_ANSWER_LEN],
}

impl core::fmt::Debug for SealedChunkAnswer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Self { trailer, sealed: _ } = self;
        f.debug_struct("SealedChunkAnswer")
            .field("trailer", trailer)
            .finish_non_exhaustive()
    }
}

/// What the destination answered a forwarded chunk request.
#[derive(Clone, PartialEq, Eq)]
pub enum ChunkAnswer {
    /// PutChunk: stored (`fresh = false`: it was already).
    Stored {
        /// Stored by this put.
        fresh: bool,
    },
    /// GetChunk: the chunk's [`CHUNK_LEN`] bytes.
    Chunk(Vec<u8>),
    /// DeleteChunk: deleted.
    Deleted,
    /// Refused (ChunkNotFound, ChunkStoreFull, Internal, ...).
    Error(ErrorFrame),
}

impl core::fmt::Debug for ChunkAnswer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Stored { fresh } => f.debug_struct("Stored").field("fresh", fresh).finish(),
            Self::Chunk(_) => f.write_str("Chunk(..)"),
            Self::Deleted => f.write_str("Deleted"),
            Self::Error(e) => f.debug_tuple("Error").field(e).finish(),
        }
    }
}

/// The four keys of one forwarded chunk command.
struct Keys {
    request: Zeroizing<[u8; 32]>,
    trailer: Zeroizing<[u8; 32]>,
    answer: Zeroizing<[u8; 32]>,
    answer_trailer: Zeroizing<[u8; 32]>,
}

/// `okm = HKDF-SHA256(salt = none, DH || E || K || pin, "hush/v2/forward-chunk", 128)`.
fn derive(
    dh: &[u8; 32],
    ephemeral: &[u8; X25519_LEN],
    key: &[u8; X25519_LEN],
    pin: &SpkiPin,
) -> Keys {
    let ikm = Zeroizing::new([&dh[..], ephemeral, key, &pin.0].concat());
    let hk = hkdf::Hkdf::<Sha256>::new(None, &ikm);
    let mut okm = Zeroizing::new([0u8; 128]);
    // 128 bytes is far below HKDF's limit of 255 * 32.
    let _ = hk.expand(INFO_FORWARD_CHUNK, okm.as_mut());
    let part = |i: usize| {
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(&okm[i * 32..(i + 1) * 32]);
        k
    };
    Keys {
        request: part(0),
        trailer: part(1),
        answer: part(2),
        answer_trailer: part(3),
    }
}

fn seal_detached(key: &[u8; 32], nonce: [u8; NONCE_LEN], data: &mut [u8]) -> [u8; TAG_LEN] {
    let mut out = [0u8; TAG_LEN];
    // Sealing fails only for inputs beyond 256 GiB; these are at most CHUNK_LEN bytes.
    if let Ok(tag) = aead(key).seal_in_place_separate_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::empty(),
        data,
    ) {
        out.copy_from_slice(tag.as_ref());
    }
    out
}

fn open_detached(
    key: &[u8; 32],
    nonce: [u8; NONCE_LEN],
    tag: [u8; TAG_LEN],
    data: &mut [u8],
) -> Result<(), Error> {
    aead(key)
        .open_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            Tag::from(tag),
            data,
            0..,
        )
        .map(|_| ())
        .map_err(|_| Error::Unsealable)
}

/// The kind byte and the 32-byte name of a chunk request.
fn parts(request: &Request) -> Result<(u8, [u8; 32]), Error> {
    match request {
        Request::PutChunk { id } => Ok((PUT, id.0)),
        Request::GetChunk { secret } => Ok((GET, *secret.as_bytes())),
        Request::DeleteChunk { secret } => Ok((DELETE, *secret.as_bytes())),
        _ => Err(Error::BadField("inner kind")),
    }
}

/// What the client keeps to open the answer to its forwarded chunk request.
pub struct PendingChunk {
    keys: Keys,
    kind: u8,
}

impl core::fmt::Debug for PendingChunk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PendingChunk(..)")
    }
}

/// Client: seals `request` (a PutChunk, GetChunk or DeleteChunk) to the verified `key` with
/// the fresh `ephemeral_secret` (32 random bytes, never reused). `chunk` is the put's
/// [`CHUNK_LEN`] bytes (and `None` for a get or delete). Returns what travels: the sealed
/// request, the sealed chunk to send after the frame (a put), and what opens the answer.
///
/// # Errors
/// [`Error::BadField`] if `request` is not a chunk request or `chunk` does not fit it
/// (API misuse); [`Error::Unsealable`] if the key is a low-order point.
pub fn seal_chunk_request(
    key: &VerifiedKey,
    ephemeral_secret: [u8; 32],
    request: &Request,
    chunk: Option<&[u8]>,
) -> Result<(SealedChunkRequest, Option<Vec<u8>>, PendingChunk), Error> {
    let (kind, name) = parts(request)?;
    let put = kind == PUT;
    if put != chunk.is_some() || chunk.is_some_and(|c| c.len() != CHUNK_LEN) {
        return Err(Error::BadField("chunk"));
    }
    let secret = x25519_dalek::StaticSecret::from(ephemeral_secret);
    let ephemeral = x25519_dalek::PublicKey::from(&secret).to_bytes();
    let target = key.key();
    let dh = secret.diffie_hellman(&x25519_dalek::PublicKey::from(target));
    if !dh.was_contributory() {
        return Err(Error::Unsealable);
    }
    let keys = derive(dh.as_bytes(), &ephemeral, &target, &key.pin());
    let mut inner = Zeroizing::new([0u8; INNER_CHUNK_REQUEST_LEN]);
    inner[0] = kind;
    inner[4..36].copy_from_slice(&name);
    let trailer = chunk.map(|c| {
        let mut data = c.to_vec();
        let tag = seal_detached(&keys.trailer, [0; NONCE_LEN], &mut data);
        inner[36..].copy_from_slice(&tag);
        data
    });
    let tag = seal_detached(&keys.request, [0; NONCE_LEN], inner.as_mut());
    let mut sealed = [0u8; SEALED_CHUNK_REQUEST_LEN];
    sealed[..INNER_CHUNK_REQUEST_LEN].copy_from_slice(inner.as_ref());
    sealed[INNER_CHUNK_REQUEST_LEN..].copy_from_slice(&tag);
    Ok((
        SealedChunkRequest {
            ephemeral,
            trailer: put,
            sealed,
        },
        trailer,
        PendingChunk { keys, kind },
    ))
}

/// A chunk request the destination opened: the request, and what opens its trailer and
/// seals its answer. Only [`open_chunk_request`] makes one.
pub struct OpenedChunk {
    request: Request,
    trailer_tag: [u8; TAG_LEN],
    keys: Keys,
}

impl core::fmt::Debug for OpenedChunk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpenedChunk")
            .field("request", &self.request.name())
            .finish_non_exhaustive()
    }
}

/// Destination: opens a sealed chunk request with its forwarding secret; `pin` is its own.
///
/// # Errors
/// [`Error::Unsealable`] if the ephemeral key is low-order, the ciphertext does not
/// authenticate, or the trailer flag does not match the inner kind (a trailer iff a put);
/// [`Error::BadField`] or [`Error::ReservedNotZero`] for a plaintext that breaks the layout.
pub fn open_chunk_request(
    secret: &ForwardSecret,
    pin: &SpkiPin,
    sealed: &SealedChunkRequest,
) -> Result<OpenedChunk, Error> {
    let s = x25519_dalek::StaticSecret::from(*secret.as_bytes());
    let public = x25519_dalek::PublicKey::from(&s).to_bytes();
    let dh = s.diffie_hellman(&x25519_dalek::PublicKey::from(sealed.ephemeral));
    if !dh.was_contributory() {
        return Err(Error::Unsealable);
    }
    let keys = derive(dh.as_bytes(), &sealed.ephemeral, &public, pin);
    let mut inner = Zeroizing::new([0u8; INNER_CHUNK_REQUEST_LEN]);
    inner.copy_from_slice(&sealed.sealed[..INNER_CHUNK_REQUEST_LEN]);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&sealed.sealed[INNER_CHUNK_REQUEST_LEN..]);
    open_detached(&keys.request, [0; NONCE_LEN], tag, inner.as_mut())?;
    if inner[1..4] != [0, 0, 0] {
        return Err(Error::ReservedNotZero);
    }
    let mut name = [0u8; 32];
    name.copy_from_slice(&inner[4..36]);
    let mut trailer_tag = [0u8; TAG_LEN];
    trailer_tag.copy_from_slice(&inner[36..]);
    let request = match inner[0] {
        PUT => Request::PutChunk { id: ChunkId(name) },
        GET => Request::GetChunk {
            secret: ChunkSecret::from_bytes(name),
        },
        DELETE => Request::DeleteChunk {
            secret: ChunkSecret::from_bytes(name),
        },
        _ => return Err(Error::BadField("inner kind")),
    };
    name.zeroize();
    let put = inner[0] == PUT;
    if sealed.trailer != put {
        return Err(Error::Unsealable);
    }
    if !put && trailer_tag != [0; TAG_LEN] {
        return Err(Error::PaddingNotZero);
    }
    Ok(OpenedChunk {
        request,
        trailer_tag,
        keys,
    })
}

impl OpenedChunk {
    /// The inner request: a PutChunk, GetChunk or DeleteChunk.
    #[must_use]
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// A put's chunk: opens the sealed trailer (exactly [`CHUNK_LEN`] bytes) in place.
    ///
    /// # Errors
    /// [`Error::Unsealable`] if it does not authenticate (a bit changed on the way) or the
    /// request is not a put; [`Error::Truncated`]/[`Error::Oversized`] for another length.
    pub fn open_trailer(&self, mut data: Vec<u8>) -> Result<Vec<u8>, Error> {
        if !matches!(self.request, Request::PutChunk { .. }) {
            return Err(Error::Unsealable);
        }
        match data.len().cmp(&CHUNK_LEN) {
            core::cmp::Ordering::Less => return Err(Error::Truncated(data.len())),
            core::cmp::Ordering::Greater => return Err(Error::Oversized(data.len())),
            core::cmp::Ordering::Equal => {}
        }
        open_detached(
            &self.keys.trailer,
            [0; NONCE_LEN],
            self.trailer_tag,
            &mut data,
        )?;
        Ok(data)
    }

    /// Seals the answer under the answer keys with `nonce` (drawn by the destination, 12
    /// random bytes); a [`ChunkAnswer::Chunk`]'s bytes are sealed into the trailer returned.
    /// An answer that does not fit the request (a chunk for a put, say, or a chunk of the
    /// wrong length) is sealed as `Internal`: the destination never answers otherwise.
    #[must_use]
    pub fn seal_answer(
        &self,
        nonce: [u8; NONCE_LEN],
        answer: ChunkAnswer,
    ) -> (SealedChunkAnswer, Option<Vec<u8>>) {
        let fits = match (&self.request, &answer) {
            (_, ChunkAnswer::Error(_)) => true,
            (Request::PutChunk { .. }, ChunkAnswer::Stored { .. })
            | (Request::DeleteChunk { .. }, ChunkAnswer::Deleted) => true,
            (Request::GetChunk { .. }, ChunkAnswer::Chunk(c)) => c.len() == CHUNK_LEN,
            _ => false,
        };
        let answer = if fits {
            answer
        } else {
            ChunkAnswer::Error(ErrorFrame::new(ErrorCode::Internal))
        };
        let mut plain = [0u8; INNER_CHUNK_ANSWER_LEN];
        let mut trailer = None;
        match answer {
            ChunkAnswer::Stored { fresh } => {
                plain[0] = STORED;
                plain[4] = u8::from(fresh);
            }
            ChunkAnswer::Chunk(mut data) => {
                plain[0] = CHUNK;
                let tag = seal_detached(&self.keys.answer_trailer, nonce, &mut data);
                plain[12..].copy_from_slice(&tag);
                trailer = Some(data);
            }
            ChunkAnswer::Deleted => plain[0] = DELETED,
            ChunkAnswer::Error(e) => {
                plain[0] = ERROR;
                plain[4..6].copy_from_slice(&e.code.to_u16().to_be_bytes());
                plain[8..12].copy_from_slice(&e.arg.to_be_bytes());
            }
        }
        let tag = seal_detached(&self.keys.answer, nonce, &mut plain);
        let mut sealed = [0u8; SEALED_CHUNK_ANSWER_LEN];
        sealed[..NONCE_LEN].copy_from_slice(&nonce);
        sealed[NONCE_LEN..NONCE_LEN + INNER_CHUNK_ANSWER_LEN].copy_from_slice(&plain);
        sealed[NONCE_LEN + INNER_CHUNK_ANSWER_LEN..].copy_from_slice(&tag);
        (
            SealedChunkAnswer {
                trailer: trailer.is_some(),
                sealed,
            },
            trailer,
        )
    }
}

impl PendingChunk {
    /// Opens the destination's answer and, for a get, the sealed chunk after it.
    ///
    /// # Errors
    /// [`Error::Unsealable`] if the answer or its chunk does not authenticate, or the answer
    /// does not fit the request (another kind, a trailer where none belongs or none where
    /// one does, non-zero reserved bytes).
    pub fn open_answer(
        &self,
        sealed: &SealedChunkAnswer,
        trailer: Option<Vec<u8>>,
    ) -> Result<ChunkAnswer, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed.sealed[..NONCE_LEN]);
        let mut plain = [0u8; INNER_CHUNK_ANSWER_LEN];
        plain.copy_from_slice(&sealed.sealed[NONCE_LEN..NONCE_LEN + INNER_CHUNK_ANSWER_LEN]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&sealed.sealed[NONCE_LEN + INNER_CHUNK_ANSWER_LEN..]);
        open_detached(&self.keys.answer, nonce, tag, &mut plain)?;
        let kind = plain[0];
        if plain[1..4] != [0, 0, 0] {
            return Err(Error::Unsealable);
        }
        let expected = match self.kind {
            PUT => STORED,
            GET => CHUNK,
            _ => DELETED,
        };
        if kind != expected && kind != ERROR {
            return Err(Error::Unsealable);
        }
        let has_trailer = kind == CHUNK;
        if sealed.trailer != has_trailer || trailer.is_some() != has_trailer {
            return Err(Error::Unsealable);
        }
        let body = &plain[4..12];
        let tail_zero = plain[12..] == [0; TAG_LEN];
        match kind {
            STORED if body[1..] == [0; 7] && body[0] <= 1 && tail_zero => Ok(ChunkAnswer::Stored {
                fresh: body[0] == 1,
            }),
            DELETED if body == [0; 8] && tail_zero => Ok(ChunkAnswer::Deleted),
            ERROR if body[2..4] == [0, 0] && tail_zero => Ok(ChunkAnswer::Error(ErrorFrame {
                code: ErrorCode::from_u16(u16::from_be_bytes([body[0], body[1]])),
                arg: u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
            })),
            CHUNK if body == [0; 8] => {
                let Some(mut data) = trailer else {
                    return Err(Error::Unsealable);
                };
                if data.len() != CHUNK_LEN {
                    return Err(Error::Unsealable);
                }
                let mut t = [0u8; TAG_LEN];
                t.copy_from_slice(&plain[12..]);
                open_detached(&self.keys.answer_trailer, nonce, t, &mut data)?;
                Ok(ChunkAnswer::Chunk(data))
            }
            _ => Err(Error::Unsealable),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

    use super::*;
    use crate::forward::KeyStatement;

    const SPKI_PREFIX: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];

    fn relay(seed: u8) -> (ForwardSecret, SpkiPin, VerifiedKey) {
        let pkcs8 =
            ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let spki = [
            &SPKI_PREFIX[..],
            ring::signature::KeyPair::public_key(&pair).as_ref(),
        ]
        .concat();
        let pin = SpkiPin::of_spki_der(&spki);
        let secret = ForwardSecret::from_bytes([seed; 32]);
        let key = secret.public();
        let signature = pair
            .sign(&crate::forward::statement_message(&pin, &key))
            .as_ref()
            .to_vec();
        let verified = KeyStatement {
            spki,
            key,
            signature,
        }
        .verify(&pin)
        .unwrap();
        (secret, pin, verified)
    }

    fn chunk(text: &str) -> Vec<u8> {
        let mut c = vec![0u8; CHUNK_LEN];
        for (i, b) in c.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        c[..text.len()].copy_from_slice(text.as_bytes());
        c
    }

    #[test]
    fn a_put_and_its_chunk_open_only_at_the_destination_and_a_flipped_bit_is_caught() {
        let (secret, pin, key) = relay(1);
        let data = chunk("文件 ملف 📎");
        let id = ChunkId([0x1d; 32]);
        let (sealed, trailer, pending) =
            seal_chunk_request(&key, [3; 32], &Request::PutChunk { id }, Some(&data)).unwrap();
        assert!(sealed.trailer);
        let trailer = trailer.unwrap();
        assert_eq!(
            trailer.len(),
            CHUNK_LEN,
            "the trailer keeps the one chunk size"
        );
        assert!(!trailer.windows(12).any(|w| w == &data[..12]));
        assert!(!sealed.sealed.windows(32).any(|w| w == id.0));
        let opened = open_chunk_request(&secret, &pin, &sealed).unwrap();
        assert_eq!(opened.request(), &Request::PutChunk { id });
        let mut bent = trailer.clone();
        bent[CHUNK_LEN / 2] ^= 0x08;
        assert_eq!(opened.open_trailer(bent), Err(Error::Unsealable));
        assert_eq!(
            opened.open_trailer(trailer[1..].to_vec()),
            Err(Error::Truncated(CHUNK_LEN - 1))
        );
        assert_eq!(opened.open_trailer(trailer.clone()).unwrap(), data);
        // Another relay, or this key under another pin, does not open the request.
        let (other, other_pin, _) = relay(2);
        assert!(open_chunk_request(&other, &other_pin, &sealed).is_err());
        assert!(open_chunk_request(&secret, &other_pin, &sealed).is_err());
        // A flag that lies about the trailer is refused.
        let mut liar = sealed.clone();
        liar.trailer = false;
        assert_eq!(
            open_chunk_request(&secret, &pin, &liar).map(|_| ()),
            Err(Error::Unsealable)
        );
        let (answer, none) = opened.seal_answer([9; 12], ChunkAnswer::Stored { fresh: true });
        assert!(none.is_none() && !answer.trailer);
        assert_eq!(
            pending.open_answer(&answer, None).unwrap(),
            ChunkAnswer::Stored { fresh: true }
        );
    }

    #[test]
    fn a_get_brings_its_chunk_back_sealed() {
        let (secret, pin, key) = relay(4);
        let s = ChunkSecret::from_bytes([0x5e; 32]);
        let req = Request::GetChunk { secret: s.clone() };
        let (sealed, trailer, pending) = seal_chunk_request(&key, [6; 32], &req, None).unwrap();
        assert!(trailer.is_none() && !sealed.trailer);
        let opened = open_chunk_request(&secret, &pin, &sealed).unwrap();
        assert_eq!(opened.request(), &req);
        let data = chunk("下载 تنزيل ⬇️");
        let (answer, back) = opened.seal_answer([7; 12], ChunkAnswer::Chunk(data.clone()));
        let back = back.unwrap();
        assert!(answer.trailer && back.len() == CHUNK_LEN);
        assert!(!back.windows(12).any(|w| w == &data[..12]));
        let mut bent = back.clone();
        bent[0] ^= 1;
        assert_eq!(
            pending.open_answer(&answer, Some(bent)),
            Err(Error::Unsealable)
        );
        assert_eq!(pending.open_answer(&answer, None), Err(Error::Unsealable));
        assert_eq!(
            pending.open_answer(&answer, Some(back)).unwrap(),
            ChunkAnswer::Chunk(data)
        );
        // Not found: no trailer, a sealed error.
        let (answer, none) = opened.seal_answer(
            [8; 12],
            ChunkAnswer::Error(ErrorFrame::new(ErrorCode::ChunkNotFound)),
        );
        assert!(none.is_none());
        assert_eq!(
            pending.open_answer(&answer, None).unwrap(),
            ChunkAnswer::Error(ErrorFrame::new(ErrorCode::ChunkNotFound))
        );
        // An answer of the wrong kind for the request is sealed as Internal.
        let (answer, _) = opened.seal_answer([8; 12], ChunkAnswer::Deleted);
        assert_eq!(
            pending.open_answer(&answer, None).unwrap(),
            ChunkAnswer::Error(ErrorFrame::new(ErrorCode::Internal))
        );
    }

    #[test]
    fn misuse_is_refused_and_nothing_prints() {
        let (_, _, key) = relay(5);
        let s = ChunkSecret::from_bytes([0xab; 32]);
        assert!(seal_chunk_request(&key, [1; 32], &Request::Ping, None).is_err());
        assert!(
            seal_chunk_request(
                &key,
                [1; 32],
                &Request::PutChunk {
                    id: ChunkId([1; 32])
                },
                None
            )
            .is_err()
        );
        assert!(
            seal_chunk_request(
                &key,
                [1; 32],
                &Request::DeleteChunk { secret: s.clone() },
                Some(&chunk("x"))
            )
            .is_err()
        );
        let (sealed, _, pending) =
            seal_chunk_request(&key, [1; 32], &Request::DeleteChunk { secret: s }, None).unwrap();
        assert!(!format!("{sealed:?}{pending:?}").contains("ab"));
    }
}
