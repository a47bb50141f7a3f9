//! Private routing: the sealing of a forwarded request, and the forwarding key a relay
//! binds to its pinned address (docs/PROTOCOL.md II.4.2).
//!
//! Owns: the key statement a relay signs with its certificate key (`{SPKI, X25519 key,
//! signature}`) and its verification against a pin, which is the only way to get a
//! [`VerifiedKey`]; the inner request (a request id and a Deposit or DepositStamped body)
//! and the inner answer; their sealing with ChaCha20-Poly1305 under keys from one
//! X25519 exchange with a fresh ephemeral key per command. Sans-IO: the caller draws every
//! random value (ephemeral secret, request id, answer nonce) and passes it in.
//!
//! Must never let a request be sealed to a key that was not verified against the pin of the
//! address it is sent to (the type makes that path not compile), never reuse a key for two
//! plaintexts (each exchange's keys seal one request and one answer, the answer under a
//! nonce the destination draws), and never print key material, request ids or plaintext.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::frame::ErrorCode;
use crate::{ENVELOPE_LEN, Error, ErrorFrame, FRAME_LEN, HEADER_LEN, Request, Response, SpkiPin};

/// Domain separation of the message a relay signs to bind its forwarding key to its pin.
pub const DOMAIN_KEY_STATEMENT: &[u8] = b"hush/v2/forward-key";
/// HKDF info of the two keys of one forwarded command.
pub const INFO_FORWARD: &[u8] = b"hush/v2/forward";
/// Length of a request id, drawn by the client for each message it forwards.
pub const REQUEST_ID_LEN: usize = 16;
/// Length of an X25519 public key.
pub const X25519_LEN: usize = 32;
/// Length of a ChaCha20-Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Length of the answer's nonce.
pub const NONCE_LEN: usize = 12;
/// Body bytes an inner request carries: the longest forwardable body, DepositStamped's
/// (drop id 32, bits 1, stamp 16, envelope 4096). A Deposit body (4128) is followed by zeros.
pub const INNER_BODY_LEN: usize = 32 + 1 + crate::drop::STAMP_LEN + ENVELOPE_LEN;
/// Plaintext of an inner request: request id, kind, three zero bytes, body.
pub const INNER_REQUEST_LEN: usize = REQUEST_ID_LEN + 4 + INNER_BODY_LEN;
/// A sealed inner request: ciphertext and tag.
pub const SEALED_REQUEST_LEN: usize = INNER_REQUEST_LEN + TAG_LEN;
/// Plaintext of an inner answer: request id, kind, three zero bytes, an 8-byte body
/// (Deposited: envelope id; Error: code, zero, arg).
pub const INNER_ANSWER_LEN: usize = REQUEST_ID_LEN + 4 + 8;
/// A sealed inner answer: nonce, ciphertext and tag.
pub const SEALED_ANSWER_LEN: usize = NONCE_LEN + INNER_ANSWER_LEN + TAG_LEN;
/// The destination field of Forward and FetchForwardKey: the longest binary relay address
/// (pin 32, port 2, host length 1, host up to 253), then zeros.
pub const DESTINATION_LEN: usize = 32 + 2 + 1 + 253;
/// Longest SPKI a key statement may carry.
pub const MAX_SPKI_LEN: usize = 1024;
/// Longest signature a key statement may carry.
pub const MAX_SIGNATURE_LEN: usize = 512;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the only key type a hush relay
/// certificate has, so the only one a statement is verified with.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// A relay's answer to `ForwardKey`: its certificate's SPKI, its X25519 forwarding key and
/// a signature by the certificate key over [`statement_message`].
#[derive(Clone, PartialEq, Eq)]
pub struct KeyStatement {
    /// DER SubjectPublicKeyInfo of the relay's certificate (1..=[`MAX_SPKI_LEN`] bytes).
    pub spki: Vec<u8>,
    /// The X25519 forwarding key.
    pub key: [u8; X25519_LEN],
    /// Signature (1..=[`MAX_SIGNATURE_LEN`] bytes).
    pub signature: Vec<u8>,
}

impl core::fmt::Debug for KeyStatement {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Self {
            spki,
            key: _,
            signature,
        } = self;
        f.debug_struct("KeyStatement")
            .field("spki_len", &spki.len())
            .field("signature_len", &signature.len())
            .finish_non_exhaustive()
    }
}

/// The message a relay signs: `"hush/v2/forward-key" || pin || key`.
#[must_use]
pub fn statement_message(pin: &SpkiPin, key: &[u8; X25519_LEN]) -> Vec<u8> {
    [DOMAIN_KEY_STATEMENT, &pin.0, key].concat()
}

/// A forwarding key checked against the pin of the relay it belongs to. Only
/// [`KeyStatement::verify`] makes one, and only a verified key can seal a request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifiedKey {
    pin: SpkiPin,
    key: [u8; X25519_LEN],
}

impl core::fmt::Debug for VerifiedKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("VerifiedKey(..)")
    }
}

impl VerifiedKey {
    /// The pin the key was verified against.
    #[must_use]
    pub fn pin(&self) -> SpkiPin {
        self.pin
    }
    /// The X25519 key.
    #[must_use]
    pub fn key(&self) -> [u8; X25519_LEN] {
        self.key
    }
}

impl KeyStatement {
    /// Checks the statement for the relay pinned as `pin`: SHA-256 of `spki` is the pin,
    /// `spki` is an Ed25519 key, and the signature over [`statement_message`] verifies.
    ///
    /// # Errors
    /// [`Error::KeyStatement`] naming the failed check (`spki does not match the pin`,
    /// `unsupported key type`, `bad signature`). A forwarding relay that substituted the
    /// key (it cannot sign for the destination's pin) fails here.
    pub fn verify(&self, pin: &SpkiPin) -> Result<VerifiedKey, Error> {
        if SpkiPin::of_spki_der(&self.spki) != *pin {
            return Err(Error::KeyStatement("spki does not match the pin"));
        }
        let raw = match self.spki.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
            Some(raw) if raw.len() == 32 => raw,
            _ => return Err(Error::KeyStatement("unsupported key type")),
        };
        let msg = statement_message(pin, &self.key);
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, raw)
            .verify(&msg, &self.signature)
            .map_err(|_| Error::KeyStatement("bad signature"))?;
        Ok(VerifiedKey {
            pin: *pin,
            key: self.key,
        })
    }
}

/// A relay's static X25519 forwarding secret.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ForwardSecret([u8; 32]);

impl core::fmt::Debug for ForwardSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ForwardSecret(<redacted>)")
    }
}

impl ForwardSecret {
    /// Wraps 32 random bytes (X25519 clamps them).
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    /// The raw bytes (to persist them).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// The public key relays publish in their statement.
    #[must_use]
    pub fn public(&self) -> [u8; X25519_LEN] {
        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(self.0)).to_bytes()
    }
}

/// A sealed inner request as it travels: the client's ephemeral public key and the
/// ciphertext with its tag.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedRequest {
    /// The client's fresh X25519 public key for this command.
    pub ephemeral: [u8; X25519_LEN],
    /// ChaCha20-Poly1305 ciphertext of the inner request, then the tag.
    pub sealed: Box<[u8; SEALED_REQUEST_LEN]>,
}

impl core::fmt::Debug for SealedRequest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SealedRequest(..)")
    }
}

/// A sealed inner answer: nonce, ciphertext, tag.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SealedAnswer(pub [u8; SEALED_ANSWER_LEN]);

impl core::fmt::Debug for SealedAnswer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SealedAnswer(..)")
    }
}

/// What a client asks the destination to do: a request id (the same for every retry of one
/// message, so the destination stores it once) and a Deposit or DepositStamped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InnerRequest {
    /// Random, drawn once per message by the client.
    pub id: RequestId,
    /// A [`Request::Deposit`] or [`Request::DepositStamped`].
    pub request: Request,
}

/// A request id. Never printed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(pub [u8; REQUEST_ID_LEN]);

impl core::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RequestId(..)")
    }
}

/// What the destination answered: the request id and `Deposited` or `Error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InnerAnswer {
    /// The request id of the inner request.
    pub id: RequestId,
    /// `Response::Deposited` or `Response::Error`.
    pub response: InnerResponse,
}

/// The two answers a forwarded deposit can get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InnerResponse {
    /// Durably stored under this id.
    Deposited(crate::EnvelopeId),
    /// Refused (MailboxFull, StampTooWeak, RateLimited, ...).
    Error(ErrorFrame),
}

/// The keys of one forwarded command: one seals the request, the other the answer.
pub struct CommandKeys {
    request: Zeroizing<[u8; 32]>,
    answer: Zeroizing<[u8; 32]>,
}

impl core::fmt::Debug for CommandKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("CommandKeys(..)")
    }
}

/// `okm = HKDF-SHA256(salt = none, ikm = DH || ephemeral || key || pin, info, 64)`; request
/// key `okm[0..32]`, answer key `okm[32..64]`.
fn derive(
    dh: &[u8; 32],
    ephemeral: &[u8; X25519_LEN],
    key: &[u8; X25519_LEN],
    pin: &SpkiPin,
) -> CommandKeys {
    let ikm = Zeroizing::new([&dh[..], ephemeral, key, &pin.0].concat());
    let hk = hkdf::Hkdf::<Sha256>::new(None, &ikm);
    let mut okm = Zeroizing::new([0u8; 64]);
    // 64 bytes is far below HKDF's limit of 255 * 32.
    let _ = hk.expand(INFO_FORWARD, okm.as_mut());
    let mut request = Zeroizing::new([0u8; 32]);
    let mut answer = Zeroizing::new([0u8; 32]);
    request.copy_from_slice(&okm[..32]);
    answer.copy_from_slice(&okm[32..]);
    CommandKeys { request, answer }
}

pub(crate) fn aead(key: &[u8; 32]) -> LessSafeKey {
    match UnboundKey::new(&CHACHA20_POLY1305, key) {
        Ok(k) => LessSafeKey::new(k),
        // ring refuses only a key of the wrong length; this one is 32 bytes by construction.
        #[allow(clippy::panic)] // a 32-byte array is always a ChaCha20 key: fail loudly if not
        Err(_) => panic!("ChaCha20-Poly1305 key of 32 bytes refused"),
    }
}

impl InnerRequest {
    /// The plaintext: id, kind, three zero bytes, the kind's body padded to
    /// [`INNER_BODY_LEN`].
    ///
    /// # Errors
    /// [`Error::BadField`] if the request is not a Deposit or DepositStamped (API misuse).
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        if !matches!(
            self.request,
            Request::Deposit { .. } | Request::DepositStamped { .. }
        ) {
            return Err(Error::BadField("inner kind"));
        }
        let mut frame = self.request.encode();
        let mut out = Zeroizing::new(Vec::with_capacity(INNER_REQUEST_LEN));
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&[frame[1], 0, 0, 0]);
        out.extend_from_slice(&frame[HEADER_LEN..HEADER_LEN + INNER_BODY_LEN]);
        frame.zeroize();
        Ok(out)
    }

    /// Parses a plaintext made by [`InnerRequest::encode`].
    ///
    /// # Errors
    /// `BadField("inner kind")` for a kind other than 0x02 and 0x06, `ReservedNotZero`,
    /// `PaddingNotZero`, or the body's own error.
    pub fn decode(plain: &[u8]) -> Result<Self, Error> {
        if plain.len() != INNER_REQUEST_LEN {
            return Err(Error::Truncated(plain.len()));
        }
        let mut id = [0u8; REQUEST_ID_LEN];
        id.copy_from_slice(&plain[..REQUEST_ID_LEN]);
        let kind = plain[REQUEST_ID_LEN];
        if plain[REQUEST_ID_LEN + 1..REQUEST_ID_LEN + 4] != [0, 0, 0] {
            return Err(Error::ReservedNotZero);
        }
        if kind != 0x02 && kind != 0x06 {
            return Err(Error::BadField("inner kind"));
        }
        let mut frame = Zeroizing::new(vec![0u8; FRAME_LEN]);
        frame[0] = crate::VERSION;
        frame[1] = kind;
        frame[HEADER_LEN..HEADER_LEN + INNER_BODY_LEN]
            .copy_from_slice(&plain[REQUEST_ID_LEN + 4..]);
        let request = crate::decode_request(&frame)?;
        Ok(Self {
            id: RequestId(id),
            request,
        })
    }
}

impl InnerAnswer {
    fn encode(&self) -> [u8; INNER_ANSWER_LEN] {
        let mut out = [0u8; INNER_ANSWER_LEN];
        out[..REQUEST_ID_LEN].copy_from_slice(&self.id.0);
        let b = REQUEST_ID_LEN + 4;
        match self.response {
            InnerResponse::Deposited(id) => {
                out[REQUEST_ID_LEN] = 0x82;
                out[b..].copy_from_slice(&id.0.to_be_bytes());
            }
            InnerResponse::Error(e) => {
                out[REQUEST_ID_LEN] = 0xff;
                out[b..b + 2].copy_from_slice(&e.code.to_u16().to_be_bytes());
                out[b + 4..].copy_from_slice(&e.arg.to_be_bytes());
            }
        }
        out
    }

    fn decode(plain: &[u8; INNER_ANSWER_LEN]) -> Result<Self, Error> {
        let mut id = [0u8; REQUEST_ID_LEN];
        id.copy_from_slice(&plain[..REQUEST_ID_LEN]);
        if plain[REQUEST_ID_LEN + 1..REQUEST_ID_LEN + 4] != [0, 0, 0] {
            return Err(Error::ReservedNotZero);
        }
        let body = &plain[REQUEST_ID_LEN + 4..];
        let response = match plain[REQUEST_ID_LEN] {
            0x82 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(body);
                let id = u64::from_be_bytes(b);
                if id == 0 {
                    return Err(Error::BadField("envelope id"));
                }
                InnerResponse::Deposited(crate::EnvelopeId(id))
            }
            0xff => {
                if body[2..4] != [0, 0] {
                    return Err(Error::ReservedNotZero);
                }
                InnerResponse::Error(ErrorFrame {
                    code: ErrorCode::from_u16(u16::from_be_bytes([body[0], body[1]])),
                    arg: u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
                })
            }
            _ => return Err(Error::BadField("inner kind")),
        };
        Ok(Self {
            id: RequestId(id),
            response,
        })
    }

    /// The answer to a response of the destination: `Deposited` or an error; any other
    /// response is `Internal` (a destination never answers a deposit otherwise).
    #[must_use]
    pub fn of(id: RequestId, resp: &Response) -> Self {
        let response = match resp {
            Response::Deposited(e) => InnerResponse::Deposited(*e),
            Response::Error(e) => InnerResponse::Error(*e),
            _ => InnerResponse::Error(ErrorFrame::new(ErrorCode::Internal)),
        };
        Self { id, response }
    }
}

/// Client: seals `inner` to the verified `key` with the fresh ephemeral secret
/// `ephemeral_secret` (32 random bytes, never reused). Returns what travels and the keys to
/// open the answer with.
///
/// # Errors
/// [`Error::BadField`] if `inner` is not a deposit, [`Error::Unsealable`] if the key is a
/// low-order point (the DH output is zero).
pub fn seal_request(
    key: &VerifiedKey,
    ephemeral_secret: [u8; 32],
    inner: &InnerRequest,
) -> Result<(SealedRequest, CommandKeys), Error> {
    let secret = x25519_dalek::StaticSecret::from(ephemeral_secret);
    let ephemeral = x25519_dalek::PublicKey::from(&secret).to_bytes();
    let dh = secret.diffie_hellman(&x25519_dalek::PublicKey::from(key.key));
    if !dh.was_contributory() {
        return Err(Error::Unsealable);
    }
    let keys = derive(dh.as_bytes(), &ephemeral, &key.key, &key.pin);
    let mut buf = inner.encode()?;
    let tag = aead(&keys.request)
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key([0; NONCE_LEN]),
            Aad::empty(),
            &mut buf,
        )
        .map_err(|_| Error::Unsealable)?;
    let mut sealed = Box::new([0u8; SEALED_REQUEST_LEN]);
    sealed[..INNER_REQUEST_LEN].copy_from_slice(&buf);
    sealed[INNER_REQUEST_LEN..].copy_from_slice(tag.as_ref());
    Ok((SealedRequest { ephemeral, sealed }, keys))
}

/// Destination: opens a sealed request with its forwarding secret; `pin` is its own.
///
/// # Errors
/// [`Error::Unsealable`] if the ephemeral key is a low-order point or the ciphertext does
/// not authenticate; the inner request's own decoding error otherwise.
pub fn open_request(
    secret: &ForwardSecret,
    pin: &SpkiPin,
    sealed: &SealedRequest,
) -> Result<(InnerRequest, CommandKeys), Error> {
    let s = x25519_dalek::StaticSecret::from(secret.0);
    let public = x25519_dalek::PublicKey::from(&s).to_bytes();
    let dh = s.diffie_hellman(&x25519_dalek::PublicKey::from(sealed.ephemeral));
    if !dh.was_contributory() {
        return Err(Error::Unsealable);
    }
    let keys = derive(dh.as_bytes(), &sealed.ephemeral, &public, pin);
    let mut buf = Zeroizing::new(sealed.sealed[..INNER_REQUEST_LEN].to_vec());
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&sealed.sealed[INNER_REQUEST_LEN..]);
    aead(&keys.request)
        .open_in_place_separate_tag(
            Nonce::assume_unique_for_key([0; NONCE_LEN]),
            Aad::empty(),
            ring::aead::Tag::from(tag),
            &mut buf,
            0..,
        )
        .map_err(|_| Error::Unsealable)?;
    Ok((InnerRequest::decode(&buf)?, keys))
}

/// Destination: seals `answer` under the command's answer key with a nonce it drew.
#[must_use]
pub fn seal_answer(
    keys: &CommandKeys,
    nonce: [u8; NONCE_LEN],
    answer: &InnerAnswer,
) -> SealedAnswer {
    let mut buf = answer.encode();
    let mut out = [0u8; SEALED_ANSWER_LEN];
    out[..NONCE_LEN].copy_from_slice(&nonce);
    // Sealing fails only for inputs beyond 256 GiB; this one is 28 bytes.
    if let Ok(tag) = aead(&keys.answer).seal_in_place_separate_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::empty(),
        &mut buf,
    ) {
        out[NONCE_LEN..NONCE_LEN + INNER_ANSWER_LEN].copy_from_slice(&buf);
        out[NONCE_LEN + INNER_ANSWER_LEN..].copy_from_slice(tag.as_ref());
    }
    SealedAnswer(out)
}

/// Client: opens the answer to the command `keys` sealed, and checks it answers `id`.
///
/// # Errors
/// [`Error::Unsealable`] if it does not authenticate or answers another request;
/// a field error if its plaintext is malformed.
pub fn open_answer(
    keys: &CommandKeys,
    id: &RequestId,
    sealed: &SealedAnswer,
) -> Result<InnerResponse, Error> {
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&sealed.0[..NONCE_LEN]);
    let mut buf = [0u8; INNER_ANSWER_LEN];
    buf.copy_from_slice(&sealed.0[NONCE_LEN..NONCE_LEN + INNER_ANSWER_LEN]);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&sealed.0[NONCE_LEN + INNER_ANSWER_LEN..]);
    aead(&keys.answer)
        .open_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            ring::aead::Tag::from(tag),
            &mut buf,
            0..,
        )
        .map_err(|_| Error::Unsealable)?;
    let answer = InnerAnswer::decode(&buf)?;
    if answer.id != *id {
        return Err(Error::Unsealable);
    }
    Ok(answer.response)
}

/// A destination relay as Forward and FetchForwardKey name it: an address whose binary form
/// is known to encode (at most [`DESTINATION_LEN`] bytes), so encoding a frame cannot fail.
#[derive(Clone, PartialEq, Eq)]
pub struct Destination {
    address: crate::RelayAddress,
    binary: Vec<u8>,
}

impl core::fmt::Debug for Destination {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Destination(..)")
    }
}

impl Destination {
    /// Checks that `address` has a binary form.
    ///
    /// # Errors
    /// [`Error::BadAddress`] for a hand-built address the binary form cannot carry.
    pub fn new(address: crate::RelayAddress) -> Result<Self, Error> {
        let binary = address.to_binary()?;
        Ok(Self { address, binary })
    }
    /// The relay.
    #[must_use]
    pub fn address(&self) -> &crate::RelayAddress {
        &self.address
    }
    /// Its binary form (at most [`DESTINATION_LEN`] bytes).
    #[must_use]
    pub fn binary(&self) -> &[u8] {
        &self.binary
    }
    /// Reads the destination field: a binary address, then zeros to [`DESTINATION_LEN`].
    pub(crate) fn decode(field: &[u8; DESTINATION_LEN]) -> Result<Self, Error> {
        let (address, rest) =
            crate::RelayAddress::from_binary(field).map_err(|_| Error::BadField("destination"))?;
        if rest.iter().any(|&b| b != 0) {
            return Err(Error::PaddingNotZero);
        }
        let binary = field[..DESTINATION_LEN - rest.len()].to_vec();
        Ok(Self { address, binary })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

    use super::*;
    use crate::{Envelope, EnvelopeId, MailboxId};

    /// A relay's key and statement, signed with a real Ed25519 key whose SPKI is the pin.
    fn relay(seed: u8) -> (ForwardSecret, SpkiPin, KeyStatement) {
        let pkcs8 =
            ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let spki = [
            &ED25519_SPKI_PREFIX[..],
            ring::signature::KeyPair::public_key(&pair).as_ref(),
        ]
        .concat();
        let pin = SpkiPin::of_spki_der(&spki);
        let secret = ForwardSecret::from_bytes([seed; 32]);
        let key = secret.public();
        let signature = pair.sign(&statement_message(&pin, &key)).as_ref().to_vec();
        (
            secret,
            pin,
            KeyStatement {
                spki,
                key,
                signature,
            },
        )
    }

    fn deposit(text: &str) -> InnerRequest {
        let mut env = [0u8; ENVELOPE_LEN];
        let t = text.as_bytes();
        env[..t.len()].copy_from_slice(t);
        InnerRequest {
            id: RequestId([0x42; REQUEST_ID_LEN]),
            request: Request::Deposit {
                mailbox: MailboxId([7; 32]),
                envelope: Envelope::new(Box::new(env)),
            },
        }
    }

    #[test]
    fn a_sealed_deposit_opens_only_at_its_destination_and_the_answer_comes_back() {
        let (secret, pin, st) = relay(1);
        let key = st.verify(&pin).unwrap();
        let inner = deposit("消息 رسالة 📨");
        let (sealed, client_keys) = seal_request(&key, [3; 32], &inner).unwrap();
        // The sealed bytes hold nothing of the envelope or the mailbox id in clear.
        let wire = [&sealed.ephemeral[..], &sealed.sealed[..]].concat();
        assert!(!wire.windows(32).any(|w| w == [7; 32]));
        assert!(!wire.windows(8).any(|w| w == &"消息 ر".as_bytes()[..8]));
        let (opened, relay_keys) = open_request(&secret, &pin, &sealed).unwrap();
        assert_eq!(opened, inner);
        // Another relay's key does not open it.
        let (other, other_pin, _) = relay(2);
        assert!(matches!(
            open_request(&other, &other_pin, &sealed),
            Err(Error::Unsealable)
        ));
        // The right key under another pin does not open it either (the pin is in the KDF).
        assert!(matches!(
            open_request(&secret, &other_pin, &sealed),
            Err(Error::Unsealable)
        ));
        let answer = InnerAnswer {
            id: inner.id,
            response: InnerResponse::Deposited(EnvelopeId(99)),
        };
        let a = seal_answer(&relay_keys, [5; NONCE_LEN], &answer);
        assert_eq!(
            open_answer(&client_keys, &inner.id, &a).unwrap(),
            InnerResponse::Deposited(EnvelopeId(99))
        );
        // An answer to another request id is refused, and so is an altered one.
        assert_eq!(
            open_answer(&client_keys, &RequestId([1; 16]), &a),
            Err(Error::Unsealable)
        );
        let mut bent = a;
        bent.0[NONCE_LEN] ^= 1;
        assert_eq!(
            open_answer(&client_keys, &inner.id, &bent),
            Err(Error::Unsealable)
        );
    }

    /// Fresh key material per command: two seals of the same request share nothing.
    #[test]
    fn each_command_uses_fresh_keys() {
        let (_, pin, st) = relay(1);
        let key = st.verify(&pin).unwrap();
        let inner = deposit("same");
        let (a, _) = seal_request(&key, [3; 32], &inner).unwrap();
        let (b, _) = seal_request(&key, [4; 32], &inner).unwrap();
        assert_ne!(a.ephemeral, b.ephemeral);
        assert!(
            a.sealed
                .iter()
                .zip(b.sealed.iter())
                .filter(|(x, y)| x == y)
                .count()
                < 100
        );
    }

    /// A relay on the way that puts its own key into the destination's statement is
    /// refused; so is a statement of another relay for this pin.
    #[test]
    fn a_substituted_key_is_refused() {
        let (_, pin, st) = relay(1);
        let (_, _, theirs) = relay(9);
        let mut swapped = st.clone();
        swapped.key = theirs.key;
        assert_eq!(
            swapped.verify(&pin),
            Err(Error::KeyStatement("bad signature"))
        );
        assert_eq!(
            theirs.verify(&pin),
            Err(Error::KeyStatement("spki does not match the pin"))
        );
        let mut resigned = theirs;
        resigned.spki = st.spki.clone();
        assert_eq!(
            resigned.verify(&pin),
            Err(Error::KeyStatement("bad signature"))
        );
    }

    #[test]
    fn only_deposits_travel_and_their_plaintext_is_canonical() {
        let mut inner = deposit("x");
        inner.request = Request::Ping;
        assert_eq!(
            inner.encode().map(|_| ()),
            Err(Error::BadField("inner kind"))
        );
        let good = deposit("y").encode().unwrap();
        let mut bad = good.to_vec();
        bad[REQUEST_ID_LEN] = 0x01;
        assert_eq!(
            InnerRequest::decode(&bad),
            Err(Error::BadField("inner kind"))
        );
        let mut bad = good.to_vec();
        bad[REQUEST_ID_LEN + 2] = 1;
        assert_eq!(InnerRequest::decode(&bad), Err(Error::ReservedNotZero));
        let mut bad = good.to_vec();
        *bad.last_mut().unwrap() = 1;
        assert_eq!(InnerRequest::decode(&bad), Err(Error::PaddingNotZero));
    }
}
