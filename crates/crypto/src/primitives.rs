//! Thin, named wrappers over the primitives: X25519, ML-KEM-768, HKDF/HMAC-SHA256,
//! ChaCha20-Poly1305 and XChaCha20-Poly1305.
//!
//! Every KDF of the protocol lives here with its info string, so that docs/PROTOCOL.md and
//! the code can be compared line by line. Nothing here knows about sessions or the wire.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use libcrux_ml_kem::mlkem768;
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::Error;

/// Length of an AEAD tag (Poly1305).
pub(crate) const TAG_LEN: usize = 16;
/// Length of an XChaCha20-Poly1305 nonce.
pub(crate) const XNONCE_LEN: usize = 24;
/// ML-KEM-768 encapsulation key length (FIPS 203).
pub(crate) const KEM_EK_LEN: usize = 1184;
/// ML-KEM-768 ciphertext length (FIPS 203).
pub(crate) const KEM_CT_LEN: usize = 1088;
/// ML-KEM-768 seed (d || z) length, the form in which we store decapsulation keys.
pub(crate) const KEM_SEED_LEN: usize = 64;

// Info strings (domain separation). docs/PROTOCOL.md lists each with its use.
pub(crate) const INFO_X3DH: &[u8] = b"hush/v2/x3dh";
pub(crate) const INFO_RATCHET: &[u8] = b"hush/v2/ratchet";
pub(crate) const INFO_PQ_MIX: &[u8] = b"hush/v2/pq-mix";
pub(crate) const INFO_MESSAGE: &[u8] = b"hush/v2/message";
pub(crate) const INFO_INVITE_SEAL: &[u8] = b"hush/v2/invite-seal";
pub(crate) const INFO_MAILBOX: &[u8] = b"hush/v2/mailbox";
pub(crate) const INFO_SAFETY: &[u8] = b"hush/v2/safety-number";
pub(crate) const DOMAIN_TRANSCRIPT: &[u8] = b"hush/v2/transcript";
pub(crate) const DOMAIN_HANDSHAKE_ID: &[u8] = b"hush/v2/handshake-id";
pub(crate) const DOMAIN_INVITE_CHECKSUM: &[u8] = b"hush/v2/invite-checksum";
/// The version 1 checksum domain, kept only to name a version 1 link as such.
pub(crate) const DOMAIN_INVITE_CHECKSUM_V1: &[u8] = b"hush/v1/invite-checksum";
pub(crate) const DOMAIN_LINK: &[u8] = b"hush/v2/link";

/// 32 bytes of secret key material, zeroized on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Key32(pub(crate) [u8; 32]);

impl Key32 {
    pub(crate) fn random(rng: &mut impl CryptoRng) -> Self {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        Self(k)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for Key32 {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for Key32 {}

impl std::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key32(<redacted>)")
    }
}

/// An X25519 key pair whose secret is zeroized on drop.
#[derive(Clone)]
pub(crate) struct DhKeyPair {
    secret: x25519_dalek::StaticSecret,
    public: [u8; 32],
}

impl DhKeyPair {
    /// Draws 32 bytes from `rng` as the private scalar (clamped by X25519 itself).
    pub(crate) fn generate(rng: &mut impl CryptoRng) -> Self {
        let k = Key32::random(rng);
        Self::from_secret(&k)
    }

    pub(crate) fn from_secret(secret: &Key32) -> Self {
        let secret = x25519_dalek::StaticSecret::from(secret.0);
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        Self { secret, public }
    }

    pub(crate) fn public(&self) -> [u8; 32] {
        self.public
    }

    pub(crate) fn secret_bytes(&self) -> Key32 {
        Key32(self.secret.to_bytes())
    }

    /// X25519(own secret, peer public). The all-zero output of a low-order peer key is
    /// rejected: it would make the agreement independent of our secret.
    pub(crate) fn dh(&self, peer_public: &[u8; 32]) -> Result<Key32, Error> {
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(*peer_public));
        if !shared.was_contributory() {
            return Err(Error::InvalidPeerKey);
        }
        Ok(Key32(shared.to_bytes()))
    }
}

impl std::fmt::Debug for DhKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhKeyPair")
            .field("public", &Fingerprint(&self.public))
            .finish_non_exhaustive()
    }
}

/// Prints only "4 bytes of SHA-256" of a public value, enough to tell keys apart in debug
/// output without printing the key itself.
pub(crate) struct Fingerprint<'a>(pub(crate) &'a [u8]);

impl std::fmt::Debug for Fingerprint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = sha256(&[b"hush/v2/debug-fingerprint", self.0]);
        write!(f, "#{:02x}{:02x}{:02x}{:02x}", h[0], h[1], h[2], h[3])
    }
}

/// ML-KEM-768 decapsulation key, held as its 64-byte seed (FIPS 203 section 7.1 form).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct KemSeed(pub(crate) [u8; KEM_SEED_LEN]);

impl KemSeed {
    pub(crate) fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut s = [0u8; KEM_SEED_LEN];
        rng.fill_bytes(&mut s);
        Self(s)
    }

    /// The key pair the seed expands to (FIPS 203 ML-KEM.KeyGen_internal(d, z)), with the
    /// expanded decapsulation key wiped when it goes out of scope.
    fn key_pair(&self) -> (KemPrivateKey, mlkem768::MlKem768PublicKey) {
        let (sk, pk) = mlkem768::generate_key_pair(self.0).into_parts();
        (KemPrivateKey(sk), pk)
    }

    /// The encapsulation key (1184 bytes) to send to the peer.
    pub(crate) fn encapsulation_key(&self) -> Vec<u8> {
        self.key_pair().1.as_slice().to_vec()
    }

    pub(crate) fn decapsulate(&self, ct: &[u8]) -> Result<Key32, Error> {
        let ct = mlkem768::MlKem768Ciphertext::try_from(ct).map_err(|_| Error::InvalidPeerKey)?;
        let (sk, _) = self.key_pair();
        Ok(Key32(mlkem768::decapsulate(&sk.0, &ct)))
    }
}

/// An expanded ML-KEM-768 decapsulation key (2400 bytes), zeroed on drop: the library's own
/// type does not wipe itself.
struct KemPrivateKey(mlkem768::MlKem768PrivateKey);

impl Drop for KemPrivateKey {
    fn drop(&mut self) {
        self.0[0..].zeroize();
    }
}

impl std::fmt::Debug for KemSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KemSeed(<redacted>)")
    }
}

/// Encapsulates to a peer's ML-KEM-768 key with 32 bytes of randomness `m` from `rng`.
/// Returns (ciphertext, shared secret). The key is checked first (FIPS 203 section 7.2).
pub(crate) fn kem_encapsulate(
    ek: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<(Vec<u8>, Key32), Error> {
    let ek = checked_encapsulation_key(ek)?;
    let mut m = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(m.as_mut());
    let (ct, ss) = mlkem768::encapsulate(&ek, *m);
    Ok((ct.as_slice().to_vec(), Key32(ss)))
}

/// Checks that bytes form a valid ML-KEM-768 encapsulation key (FIPS 203 input check).
pub(crate) fn kem_check_encapsulation_key(ek: &[u8]) -> Result<(), Error> {
    checked_encapsulation_key(ek).map(drop)
}

/// The FIPS 203 encapsulation-key check: exactly 1184 bytes, and every coefficient of the
/// encoded vector below q (re-encoding gives the same bytes).
fn checked_encapsulation_key(ek: &[u8]) -> Result<mlkem768::MlKem768PublicKey, Error> {
    let ek = mlkem768::MlKem768PublicKey::try_from(ek).map_err(|_| Error::InvalidPeerKey)?;
    if !mlkem768::validate_public_key(&ek) {
        return Err(Error::InvalidPeerKey);
    }
    Ok(ek)
}

/// SHA-256 over the concatenation of `parts`.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// HKDF-SHA256 (RFC 5869): extract with `salt` (None = 32 zero bytes), expand with `info`.
pub(crate) fn hkdf<const N: usize>(
    salt: Option<&[u8]>,
    ikm: &[u8],
    info: &[&[u8]],
) -> Zeroizing<[u8; N]> {
    let hk = Hkdf::<Sha256>::new(salt, ikm);
    let mut okm = Zeroizing::new([0u8; N]);
    // N is at most a few hundred bytes at every call site, far below 255 * 32.
    let _ = hk.expand_multi_info(info, okm.as_mut());
    okm
}

/// Splits a buffer of 32-byte blocks into keys.
pub(crate) fn split32<const N: usize>(okm: &[u8]) -> [Key32; N] {
    std::array::from_fn(|i| {
        let mut k = [0u8; 32];
        k.copy_from_slice(&okm[i * 32..(i + 1) * 32]);
        Key32(k)
    })
}

/// KDF_RK (Double Ratchet, with header encryption): from root key and DH output to
/// (new root key, chain key, next header key).
pub(crate) fn kdf_rk(rk: &Key32, dh_out: &Key32) -> [Key32; 3] {
    let okm = hkdf::<96>(Some(rk.as_bytes()), dh_out.as_bytes(), &[INFO_RATCHET]);
    split32(okm.as_ref())
}

#[cfg(test)]
thread_local! {
    /// Tests only: turns [`kdf_pq`] into the identity, to show that what a test attributes
    /// to the post-quantum ratchet disappears without it.
    pub(crate) static PQ_MIX_DISABLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Mixes an ML-KEM shared secret into the root key.
pub(crate) fn kdf_pq(rk: &Key32, ss: &Key32) -> Key32 {
    #[cfg(test)]
    if PQ_MIX_DISABLED.with(std::cell::Cell::get) {
        return rk.clone();
    }
    let okm = hkdf::<32>(Some(rk.as_bytes()), ss.as_bytes(), &[INFO_PQ_MIX]);
    Key32(*okm)
}

/// KDF_CK: chain key to (next chain key, message key), HMAC-SHA256 with constants 0x02/0x01.
pub(crate) fn kdf_ck(ck: &Key32) -> (Key32, Key32) {
    let mk = hmac(ck, &[0x01]);
    let next = hmac(ck, &[0x02]);
    (next, mk)
}

fn hmac(key: &Key32, data: &[u8]) -> Key32 {
    // HMAC accepts keys of any length; 32 bytes can never fail.
    let mut mac = match <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key.as_bytes()) {
        Ok(m) => m,
        Err(_) => return Key32([0u8; 32]),
    };
    mac.update(data);
    Key32(mac.finalize().into_bytes().into())
}

/// Message key and the message's header nonce to (AEAD key, 12-byte nonce). The header
/// nonce is drawn fresh for every message and enters as the HKDF salt, so a sending state
/// restored from a snapshot never seals two bodies under one key and nonce.
fn message_key_material(mk: &Key32, salt: &[u8; XNONCE_LEN]) -> Zeroizing<[u8; 44]> {
    hkdf::<44>(Some(salt), mk.as_bytes(), &[INFO_MESSAGE])
}

/// The AEAD key and nonce of a message. ChaCha20-Poly1305 of RFC 8439 from ring: the same
/// function as RustCrypto's, in assembly chosen at run time for the CPU (AVX2, NEON...),
/// which the 4 KiB body of every message is worth.
fn body_cipher(
    mk: &Key32,
    salt: &[u8; XNONCE_LEN],
) -> (ring::aead::LessSafeKey, ring::aead::Nonce) {
    let km = message_key_material(mk, salt);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&km[32..44]);
    let mut key = [0u8; 32];
    key.copy_from_slice(&km[..32]);
    let key = Zeroizing::new(key);
    (
        chacha20_poly1305_key(&key),
        ring::aead::Nonce::assume_unique_for_key(nonce),
    )
}

/// ring's ChaCha20-Poly1305 (RFC 8439) under a 32-byte key.
fn chacha20_poly1305_key(key: &[u8; 32]) -> ring::aead::LessSafeKey {
    match ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, key) {
        Ok(k) => ring::aead::LessSafeKey::new(k),
        // ring refuses only a key of the wrong length; this one is 32 bytes by construction.
        #[allow(clippy::panic)] // a 32-byte array is always a ChaCha20 key: fail loudly if not
        Err(_) => panic!("ChaCha20-Poly1305 key of 32 bytes refused"),
    }
}

/// Concatenates associated data on the stack when it is small (it always is: transcript
/// hash and header region), to keep allocation off the per-message path.
fn with_ad<T>(parts: &[&[u8]], f: impl FnOnce(&[u8]) -> T) -> T {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut stack = [0u8; 160];
    if total <= stack.len() {
        let mut at = 0;
        for p in parts {
            stack[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        f(&stack[..total])
    } else {
        f(&parts.concat())
    }
}

/// ChaCha20-Poly1305 under a message key, in place; returns the tag.
pub(crate) fn seal_body(
    mk: &Key32,
    salt: &[u8; XNONCE_LEN],
    ad: &[&[u8]],
    buf: &mut [u8],
) -> [u8; TAG_LEN] {
    let (key, nonce) = body_cipher(mk, salt);
    match with_ad(ad, |ad| {
        key.seal_in_place_separate_tag(nonce, ring::aead::Aad::from(ad), buf)
    }) {
        Ok(tag) => {
            let mut out = [0u8; TAG_LEN];
            out.copy_from_slice(tag.as_ref());
            out
        }
        // Only possible for inputs beyond 256 GiB; envelopes are 4 KiB.
        Err(_) => [0u8; TAG_LEN],
    }
}

/// Inverse of [`seal_body`]. On failure the content of `buf` is unspecified (it may hold
/// unauthenticated plaintext): the caller wipes it.
pub(crate) fn open_body(
    mk: &Key32,
    salt: &[u8; XNONCE_LEN],
    ad: &[&[u8]],
    buf: &mut [u8],
    tag: &[u8],
) -> Result<(), Error> {
    let (key, nonce) = body_cipher(mk, salt);
    let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| Error::BodyAuthFailed)?;
    with_ad(ad, |ad| {
        key.open_in_place_separate_tag(
            nonce,
            ring::aead::Aad::from(ad),
            ring::aead::Tag::from(tag),
            buf,
            0..,
        )
        .map(|_| ())
    })
    .map_err(|_| Error::BodyAuthFailed)
}

/// XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha section 2.3) as its definition builds it:
/// the subkey is HChaCha20(key, nonce[0..16]), then ChaCha20-Poly1305 of RFC 8439 under it
/// with the 12-byte nonce `0x00000000 || nonce[16..24]`. HChaCha20 comes from RustCrypto's
/// `chacha20`, the AEAD from ring (as for bodies): the same bytes as RustCrypto's
/// XChaCha20-Poly1305, at a fraction of its per-call cost on 41-byte headers.
fn header_cipher(
    key: &Key32,
    nonce: &[u8; XNONCE_LEN],
) -> (ring::aead::LessSafeKey, ring::aead::Nonce) {
    let mut prefix = [0u8; 16];
    prefix.copy_from_slice(&nonce[..16]);
    let mut subkey = Zeroizing::new([0u8; 32]);
    subkey.copy_from_slice(&chacha20::hchacha::<chacha20::R20>(
        &chacha20::Key::from(key.0),
        &prefix.into(),
    ));
    let mut short = [0u8; 12];
    short[4..].copy_from_slice(&nonce[16..]);
    (
        chacha20_poly1305_key(&subkey),
        ring::aead::Nonce::assume_unique_for_key(short),
    )
}

/// XChaCha20-Poly1305 with an explicit 24-byte nonce, in place; returns the tag.
pub(crate) fn xseal(key: &Key32, nonce: &[u8; XNONCE_LEN], buf: &mut [u8]) -> [u8; TAG_LEN] {
    let (key, nonce) = header_cipher(key, nonce);
    match key.seal_in_place_separate_tag(nonce, ring::aead::Aad::empty(), buf) {
        Ok(tag) => {
            let mut out = [0u8; TAG_LEN];
            out.copy_from_slice(tag.as_ref());
            out
        }
        // Only possible for inputs beyond 256 GiB; headers and init bodies are small.
        Err(_) => [0u8; TAG_LEN],
    }
}

/// Inverse of [`xseal`]; `false` when authentication fails (buffer content is then garbage).
pub(crate) fn xopen(key: &Key32, nonce: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
    let Ok(tag) = <[u8; TAG_LEN]>::try_from(tag) else {
        return false;
    };
    let Ok(nonce) = <&[u8; XNONCE_LEN]>::try_from(nonce) else {
        return false;
    };
    let (key, nonce) = header_cipher(key, nonce);
    key.open_in_place_separate_tag(
        nonce,
        ring::aead::Aad::empty(),
        ring::aead::Tag::from(tag),
        buf,
        0..,
    )
    .is_ok()
}

#[cfg(test)]
mod kem_cross_check {
    //! ML-KEM-768 through libcrux-ml-kem (what hush uses) against the RustCrypto `ml-kem`
    //! crate (what it used before): both implement FIPS 203, so from the same seed and the
    //! same randomness they must give the same bytes, and both must refuse the same keys.
    use ml_kem::kem::{Decapsulate, KeyExport};
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn other_key(seed: &[u8; 64]) -> ml_kem::DecapsulationKey768 {
        ml_kem::DecapsulationKey768::from_seed(ml_kem::Seed::from(*seed))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn both_implementations_agree(seed in any::<[u8; 64]>(), rng_seed in any::<u64>()) {
            let ours = KemSeed(seed);
            let ek = ours.encapsulation_key();
            prop_assert_eq!(&ek, &other_key(&seed).encapsulation_key().to_bytes().to_vec());

            // Our encapsulation, their decapsulation; then the other way round.
            let mut rng = ChaCha20Rng::seed_from_u64(rng_seed);
            let (ct, ss) = kem_encapsulate(&ek, &mut rng).unwrap();
            let ct_theirs = ml_kem::ml_kem_768::Ciphertext::try_from(ct.as_slice()).unwrap();
            let theirs = other_key(&seed).decapsulate(&ct_theirs);
            prop_assert_eq!(theirs.as_slice(), ss.as_bytes());

            let m = [rng_seed as u8; 32];
            let (ct2, ss2) = other_key(&seed)
                .encapsulation_key()
                .encapsulate_deterministic(&ml_kem::B32::from(m));
            let ours_ss = ours.decapsulate(&ct2).unwrap();
            prop_assert_eq!(ours_ss.as_bytes(), ss2.as_slice());

            // A tampered ciphertext: both take the implicit-rejection path to the same key.
            let mut bad = ct.clone();
            bad[(rng_seed % KEM_CT_LEN as u64) as usize] ^= 1;
            let bad_theirs = ml_kem::ml_kem_768::Ciphertext::try_from(bad.as_slice()).unwrap();
            let rejected = ours.decapsulate(&bad).unwrap();
            prop_assert_ne!(rejected.as_bytes(), ss.as_bytes());
            let theirs_rejected = other_key(&seed).decapsulate(&bad_theirs);
            prop_assert_eq!(rejected.as_bytes(), theirs_rejected.as_slice());
        }

        #[test]
        fn both_refuse_an_unreduced_encapsulation_key(seed in any::<[u8; 64]>(), at in 0usize..768) {
            // Coefficient `at` of the encoded vector set to 4095 (>= q = 3329): 12-bit packing,
            // two coefficients in three bytes.
            let mut ek = KemSeed(seed).encapsulation_key();
            let byte = at / 2 * 3;
            if at % 2 == 0 {
                ek[byte] = 0xff;
                ek[byte + 1] |= 0x0f;
            } else {
                ek[byte + 1] |= 0xf0;
                ek[byte + 2] = 0xff;
            }
            prop_assert_eq!(kem_check_encapsulation_key(&ek), Err(Error::InvalidPeerKey));
            let key = ml_kem::kem::Key::<ml_kem::EncapsulationKey768>::try_from(ek.as_slice()).unwrap();
            prop_assert!(ml_kem::EncapsulationKey768::new(&key).is_err());
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            prop_assert!(kem_encapsulate(&ek, &mut rng).is_err());
        }
    }

    #[test]
    fn wrong_lengths_are_refused() {
        let seed = KemSeed([7; 64]);
        let ek = seed.encapsulation_key();
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        for len in [0, KEM_EK_LEN - 1, KEM_EK_LEN + 1] {
            let mut e = ek.clone();
            e.resize(len, 0);
            assert_eq!(kem_check_encapsulation_key(&e), Err(Error::InvalidPeerKey));
        }
        let (ct, _) = kem_encapsulate(&ek, &mut rng).unwrap();
        assert!(seed.decapsulate(&ct[..KEM_CT_LEN - 1]).is_err());
    }
}

#[cfg(test)]
mod xchacha_cross_check {
    //! hush's XChaCha20-Poly1305 (HChaCha20 + ring's ChaCha20-Poly1305) against RustCrypto's
    //! `chacha20poly1305::XChaCha20Poly1305`, which implements the draft as one function.
    use chacha20poly1305::XChaCha20Poly1305;
    use chacha20poly1305::aead::{AeadInOut, KeyInit};
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn same_bytes_as_the_one_function_implementation(
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; XNONCE_LEN]>(),
            plain in proptest::collection::vec(any::<u8>(), 0..300),
            flip in any::<prop::sample::Index>(),
        ) {
            let mut ours = plain.clone();
            let tag = xseal(&Key32(key), &nonce, &mut ours);

            let mut theirs = plain.clone();
            let their_tag = XChaCha20Poly1305::new(&chacha20poly1305::Key::from(key))
                .encrypt_inout_detached(&chacha20poly1305::XNonce::from(nonce), &[], theirs.as_mut_slice().into())
                .unwrap();
            prop_assert_eq!(&ours, &theirs);
            prop_assert_eq!(&tag[..], &their_tag[..]);

            let mut opened = ours.clone();
            prop_assert!(xopen(&Key32(key), &nonce, &mut opened, &tag));
            prop_assert_eq!(&opened, &plain);

            // One flipped bit anywhere in ciphertext || tag fails.
            let mut sealed = [ours, tag.to_vec()].concat();
            let at = flip.index(sealed.len());
            sealed[at] ^= 0x01;
            let (ct, t) = sealed.split_at_mut(plain.len());
            prop_assert!(!xopen(&Key32(key), &nonce, ct, t));
        }
    }

    #[test]
    fn wrong_lengths_fail() {
        let mut buf = [1u8; 8];
        let tag = xseal(&Key32([2; 32]), &[3; XNONCE_LEN], &mut buf);
        assert!(!xopen(
            &Key32([2; 32]),
            &[3; XNONCE_LEN - 1],
            &mut buf,
            &tag
        ));
        assert!(!xopen(
            &Key32([2; 32]),
            &[3; XNONCE_LEN],
            &mut buf,
            &tag[..TAG_LEN - 1]
        ));
        assert!(xopen(&Key32([2; 32]), &[3; XNONCE_LEN], &mut buf, &tag));
    }
}
