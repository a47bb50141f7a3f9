//! The Double Ratchet with header encryption (Signal's specification, section 4), with a
//! continuous ML-KEM-768 ratchet beside the X25519 one (docs/PROTOCOL.md section 5).
//!
//! Every DH ratchet step is also a KEM step: the party that turns the ratchet makes a fresh
//! ML-KEM-768 key pair with its fresh X25519 key, encapsulates to the encapsulation key of
//! the chain it just received, and mixes the shared secret into the root key right after
//! deriving its new sending chain. Every message of that chain carries the party's new
//! encapsulation key and the ciphertext (the *post-quantum block*, inside the authenticated
//! body); the peer decapsulates on the step that chain triggers and mixes the same secret
//! at the same point. So every chain key from the second step on depends on X25519 and on
//! ML-KEM secrets, and any message of a chain can be the first one to arrive.
//!
//! This module owns chain and header keys, skipped message keys and their bounds, and the
//! KEM keys of the ratchet. It produces and consumes *ratchet messages* (encrypted header +
//! encrypted padded body) of a length chosen by the caller; it knows nothing about invites,
//! mailboxes or the relay.
//!
//! A failed decryption never changes state: all new keys are computed on the side and
//! committed only after the body authenticated and parsed.

use std::collections::VecDeque;
use std::ops::Range;

use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

use crate::primitives::{
    DhKeyPair, Fingerprint, KEM_CT_LEN, KEM_EK_LEN, KEM_SEED_LEN, KemSeed, Key32, TAG_LEN,
    XNONCE_LEN, kdf_ck, kdf_pq, kdf_rk, kem_encapsulate, open_body, seal_body, xopen, xseal,
};
use crate::wire::{Put, Reader};
use crate::{Error, PROTOCOL_VERSION};

/// Most message keys one header may make us skip within one chain.
pub const MAX_SKIP: u32 = 1000;
/// Most skipped message keys kept in total; the oldest are dropped first.
pub const MAX_STORED_SKIPPED: usize = 2000;
/// Bytes of the post-quantum block every message of a sending chain carries: the sender's
/// ML-KEM-768 encapsulation key (1184) and its ciphertext to the peer's key (1088).
pub const PQ_BLOCK_LEN: usize = KEM_EK_LEN + KEM_CT_LEN;

/// Plaintext header: version (1) || ratchet public key (32) || PN (4) || N (4).
pub(crate) const HEADER_PLAIN_LEN: usize = 1 + 32 + 4 + 4;
/// Header region of a ratchet message: nonce || encrypted header || tag.
pub(crate) const HEADER_REGION_LEN: usize = XNONCE_LEN + HEADER_PLAIN_LEN + TAG_LEN;
/// Body flag: the body carries the post-quantum block before the payload.
const FLAG_PQ_BLOCK: u8 = 0x01;
/// Body bytes that are not payload: flags (1) and payload length (2).
pub(crate) const BODY_OVERHEAD: usize = 1 + 2;

/// What every message of the current sending chain carries: this party's encapsulation key
/// (of [`Ratchet::kem`]) and the ciphertext made on the step that opened the chain.
#[derive(Clone)]
struct PqBlock {
    ek: Vec<u8>,
    ct: Vec<u8>,
}

#[derive(Clone)]
struct SkippedKey {
    hk: Key32,
    n: u32,
    mk: Key32,
}

/// A decrypted header.
struct Header {
    dh: [u8; 32],
    pn: u32,
    n: u32,
}

/// Double Ratchet state of one party.
#[derive(Clone)]
pub(crate) struct Ratchet {
    dhs: DhKeyPair,
    dhr: Option<[u8; 32]>,
    rk: Key32,
    cks: Option<Key32>,
    ckr: Option<Key32>,
    hks: Option<Key32>,
    hkr: Option<Key32>,
    nhks: Key32,
    nhkr: Key32,
    ns: u32,
    nr: u32,
    pn: u32,
    skipped: VecDeque<SkippedKey>,
    /// The decapsulation key (seed) of the encapsulation key this party last sent: the
    /// peer's next chain encapsulates to it. None only for the inviter before its first
    /// step (the prekey has no KEM key: the link has no room for one).
    kem: Option<KemSeed>,
    /// The block of the current sending chain. None only for the invitee's first chain
    /// (init envelopes, whose handshake prefix carries its encapsulation key).
    out: Option<PqBlock>,
    /// Whether the current sending chain key was derived from a root key that holds an
    /// ML-KEM shared secret.
    pq_sending: bool,
}

impl std::fmt::Debug for Ratchet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only counters and public-key fingerprints: never key bytes.
        f.debug_struct("Ratchet")
            .field("dhs", &self.dhs)
            .field("dhr", &self.dhr.as_ref().map(|k| Fingerprint(k)))
            .field("ns", &self.ns)
            .field("nr", &self.nr)
            .field("pn", &self.pn)
            .field("skipped", &self.skipped.len())
            .field("pq_sending", &self.pq_sending)
            .finish_non_exhaustive()
    }
}

/// Keys and counters a successful decryption will commit.
struct Pending {
    payload: Vec<u8>,
    skipped: Vec<SkippedKey>,
    kind: PendingKind,
}

enum PendingKind {
    /// A message of a stored skipped key: remove that key.
    Skipped(usize),
    /// A message in the current receiving chain.
    Current { ckr: Key32, nr: u32 },
    /// A message that started a new receiving chain (a DH and KEM ratchet step).
    Step(Box<Step>),
}

struct Step {
    dhr: [u8; 32],
    rk: Key32,
    ckr: Key32,
    nhkr: Key32,
    dhs: DhKeyPair,
    cks: Key32,
    nhks: Key32,
    nr: u32,
    kem: KemSeed,
    out: PqBlock,
    pq_sending: bool,
}

/// A body that authenticated and parsed: the plaintext (wiped on drop), where the payload
/// is in it and whether it carries a post-quantum block.
struct OpenedBody {
    plain: Zeroizing<Vec<u8>>,
    payload: Range<usize>,
    pq_block: bool,
}

impl OpenedBody {
    /// (encapsulation key, ciphertext) of the block, if the body has one.
    fn pq_block(&self) -> Option<(&[u8], &[u8])> {
        self.pq_block.then(|| {
            let block = &self.plain[1..1 + PQ_BLOCK_LEN];
            block.split_at(KEM_EK_LEN)
        })
    }

    fn into_payload(mut self) -> Vec<u8> {
        // Reuse the buffer for the payload; wipe the rest of the plaintext.
        let Range { start, end } = self.payload;
        let len = end - start;
        self.plain.copy_within(start..end, 0);
        self.plain[len..].zeroize();
        self.plain.truncate(len);
        std::mem::take(&mut *self.plain)
    }
}

impl Ratchet {
    /// RatchetInitAliceHE: the invitee knows the inviter's prekey as the first peer ratchet
    /// key; `kem` is the seed of the encapsulation key in its handshake prefix. Draws 32
    /// random bytes (the first own ratchet key).
    pub(crate) fn new_invitee(
        sk: &Key32,
        peer_ratchet: &[u8; 32],
        shared_hka: Key32,
        shared_nhkb: Key32,
        kem: KemSeed,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, Error> {
        let dhs = DhKeyPair::generate(rng);
        let [rk, cks, nhks] = kdf_rk(sk, &dhs.dh(peer_ratchet)?);
        Ok(Self {
            dhs,
            dhr: Some(*peer_ratchet),
            rk,
            cks: Some(cks),
            ckr: None,
            hks: Some(shared_hka),
            hkr: None,
            nhks,
            nhkr: shared_nhkb,
            ns: 0,
            nr: 0,
            pn: 0,
            skipped: VecDeque::new(),
            kem: Some(kem),
            out: None,
            pq_sending: false,
        })
    }

    /// RatchetInitBobHE: the inviter's prekey pair is its first ratchet key pair. Its first
    /// step (on the invitee's first message) encapsulates to the key of the handshake
    /// prefix, handed to [`Self::decrypt`].
    pub(crate) fn new_inviter(
        sk: &Key32,
        prekey: DhKeyPair,
        shared_hka: Key32,
        shared_nhkb: Key32,
    ) -> Self {
        Self {
            dhs: prekey,
            dhr: None,
            rk: sk.clone(),
            cks: None,
            ckr: None,
            hks: None,
            hkr: None,
            nhks: shared_nhkb,
            nhkr: shared_hka,
            ns: 0,
            nr: 0,
            pn: 0,
            skipped: VecDeque::new(),
            kem: None,
            out: None,
            pq_sending: false,
        }
    }

    /// Payload bytes that fit in a body of `body_len` bytes in the current state.
    pub(crate) fn payload_capacity(&self, body_len: usize) -> usize {
        let pq = if self.out.is_some() { PQ_BLOCK_LEN } else { 0 };
        body_len.saturating_sub(BODY_OVERHEAD + pq)
    }

    /// Whether the current sending chain key depends on an ML-KEM shared secret.
    pub(crate) fn pq_sending(&self) -> bool {
        self.pq_sending
    }

    /// RatchetEncryptHE. Output: `HEADER_REGION_LEN + body_len + TAG_LEN` bytes.
    /// Draws 24 random bytes (the header nonce).
    pub(crate) fn encrypt(
        &mut self,
        payload: &[u8],
        body_len: usize,
        ad: &[u8],
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, Error> {
        self.encrypt_as(PROTOCOL_VERSION, payload, body_len, ad, rng)
    }

    /// [`Self::encrypt`] writing `version` in the header: only tests write another version.
    fn encrypt_as(
        &mut self,
        version: u8,
        payload: &[u8],
        body_len: usize,
        ad: &[u8],
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, Error> {
        let capacity = self.payload_capacity(body_len);
        if payload.len() > capacity {
            return Err(Error::PayloadTooLong {
                len: payload.len(),
                capacity,
            });
        }
        let (Some(cks), Some(hks)) = (&self.cks, &self.hks) else {
            return Err(Error::InvalidOperation("no sending chain yet"));
        };
        let next_ns = self
            .ns
            .checked_add(1)
            .ok_or(Error::InvalidOperation("sending chain exhausted"))?;
        let (next_ck, mk) = kdf_ck(cks);

        let mut out = Vec::with_capacity(HEADER_REGION_LEN + body_len + TAG_LEN);
        let mut nonce = [0u8; XNONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut header = Vec::with_capacity(HEADER_PLAIN_LEN);
        header.put_u8(version);
        header.put(&self.dhs.public());
        header.put_u32(self.pn);
        header.put_u32(self.ns);
        let tag = xseal(hks, &nonce, &mut header);
        out.put(&nonce);
        out.put(&header);
        out.put(&tag);

        // The body is built and sealed in place, right after the header region.
        out.resize(HEADER_REGION_LEN + body_len, 0);
        let (region, body) = out.split_at_mut(HEADER_REGION_LEN);
        let mut at = 1;
        if let Some(block) = &self.out {
            body[0] = FLAG_PQ_BLOCK;
            body[at..at + KEM_EK_LEN].copy_from_slice(&block.ek);
            at += KEM_EK_LEN;
            body[at..at + KEM_CT_LEN].copy_from_slice(&block.ct);
            at += KEM_CT_LEN;
        }
        // payload.len() <= capacity < 4096 fits in u16.
        body[at..at + 2].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        at += 2;
        body[at..at + payload.len()].copy_from_slice(payload);
        let tag = seal_body(&mk, &nonce, &[ad, region], body);
        out.put(&tag);

        self.cks = Some(next_ck);
        self.ns = next_ns;
        Ok(out)
    }

    /// RatchetDecryptHE. On success returns the payload; on failure nothing changed.
    /// `init_peer_ek` is the invitee's encapsulation key from the handshake prefix, given
    /// only for the inviter's first message. Draws 128 random bytes when the message starts
    /// a new receiving chain: the next ratchet key (32), the next ML-KEM seed (64) and the
    /// encapsulation randomness (32), after the body authenticated.
    pub(crate) fn decrypt(
        &mut self,
        msg: &[u8],
        ad: &[u8],
        init_peer_ek: Option<&[u8]>,
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, Error> {
        if msg.len() < HEADER_REGION_LEN + BODY_OVERHEAD + TAG_LEN {
            return Err(Error::MalformedBody("ratchet message too short"));
        }
        let pending = self.prepare(msg, ad, init_peer_ek, rng)?;
        Ok(self.commit(pending))
    }

    fn prepare(
        &self,
        msg: &[u8],
        ad: &[u8],
        init_peer_ek: Option<&[u8]>,
        rng: &mut impl CryptoRng,
    ) -> Result<Pending, Error> {
        let (region, rest) = msg.split_at(HEADER_REGION_LEN);
        let (body_ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let aad: [&[u8]; 2] = [ad, region];
        let mut salt = [0u8; XNONCE_LEN];
        salt.copy_from_slice(&region[..XNONCE_LEN]);
        let open = |mk: &Key32| open_and_parse(mk, &salt, &aad, body_ct, tag);

        // 1. Keys of skipped messages, one header decryption per distinct header key.
        let mut tried: Vec<&Key32> = Vec::new();
        for sk in &self.skipped {
            if tried.contains(&&sk.hk) {
                continue;
            }
            tried.push(&sk.hk);
            let Some(header) = open_header(&sk.hk, region).transpose()? else {
                continue;
            };
            if let Some(pos) = self
                .skipped
                .iter()
                .position(|s| s.hk == sk.hk && s.n == header.n)
            {
                let payload = open(&self.skipped[pos].mk)?.into_payload();
                return Ok(Pending {
                    payload,
                    skipped: Vec::new(),
                    kind: PendingKind::Skipped(pos),
                });
            }
            if self.hkr.as_ref() != Some(&sk.hk) {
                // An old chain's header key opened it, but its key is gone: seen before.
                return Err(Error::MessageReplayed);
            }
        }

        // 2. The current receiving chain. Its post-quantum block was used on the step
        // that opened the chain; later copies are not looked at.
        if let (Some(hkr), Some(ckr)) = (&self.hkr, &self.ckr)
            && let Some(header) = open_header(hkr, region).transpose()?
        {
            if Some(header.dh) != self.dhr {
                return Err(Error::MalformedBody("header key does not match chain"));
            }
            if header.n < self.nr {
                return Err(Error::MessageReplayed);
            }
            let (ckr, mk, skipped) = skip_to(ckr, hkr, self.nr, header.n)?;
            let payload = open(&mk)?.into_payload();
            return Ok(Pending {
                payload,
                skipped,
                kind: PendingKind::Current {
                    ckr,
                    nr: header.n + 1,
                },
            });
        }

        // 3. The next header key: the peer turned the ratchet.
        let Some(header) = open_header(&self.nhkr, region).transpose()? else {
            return Err(Error::HeaderUndecryptable);
        };
        let mut skipped = Vec::new();
        if let (Some(hkr), Some(ckr)) = (&self.hkr, &self.ckr)
            && header.pn > self.nr
        {
            // Messages nr..pn of the old chain were sent but not received yet. (The key
            // skip_to returns for index pn itself belongs to no message and is dropped.)
            let (_, _, old) = skip_to(ckr, hkr, self.nr, header.pn)?;
            skipped.extend(old);
        }
        let [rk, ckr0, nhkr] = kdf_rk(&self.rk, &self.dhs.dh(&header.dh)?);
        let (ckr, mk, new_skipped) = skip_to(&ckr0, &self.nhkr, 0, header.n)?;
        let body = open(&mk)?;
        skipped.extend(new_skipped);

        // KEM receive half: the peer's chain encapsulated to our last encapsulation key.
        let (rk, peer_ek, pq_sending) = match (&self.kem, body.pq_block()) {
            (Some(seed), Some((ek, ct))) => {
                let ss = seed.decapsulate(ct)?;
                (kdf_pq(&rk, &ss), ek, true)
            }
            (Some(_), None) => return Err(Error::MissingKemCiphertext),
            // The inviter's first step: the invitee's first chain has no block (no key of
            // the inviter's to encapsulate to); its key is in the handshake prefix.
            (None, None) => (rk, init_peer_ek.ok_or(Error::MissingKemCiphertext)?, false),
            (None, Some(_)) => {
                return Err(Error::MalformedBody("unexpected post-quantum block"));
            }
        };
        // KEM send half, with the new X25519 key: encapsulate to the key just received.
        let dhs = DhKeyPair::generate(rng);
        let kem = KemSeed::generate(rng);
        let (ct, ss) = kem_encapsulate(peer_ek, rng)?;
        let [rk, cks, nhks] = kdf_rk(&rk, &dhs.dh(&header.dh)?);
        let rk = kdf_pq(&rk, &ss);
        let out = PqBlock {
            ek: kem.encapsulation_key(),
            ct,
        };
        Ok(Pending {
            payload: body.into_payload(),
            skipped,
            kind: PendingKind::Step(Box::new(Step {
                dhr: header.dh,
                rk,
                ckr,
                nhkr,
                dhs,
                cks,
                nhks,
                nr: header.n + 1,
                kem,
                out,
                pq_sending,
            })),
        })
    }

    fn commit(&mut self, pending: Pending) -> Vec<u8> {
        let Pending {
            payload,
            skipped,
            kind,
        } = pending;
        match kind {
            PendingKind::Skipped(pos) => {
                self.skipped.remove(pos);
            }
            PendingKind::Current { ckr, nr } => {
                self.ckr = Some(ckr);
                self.nr = nr;
            }
            PendingKind::Step(step) => {
                let Step {
                    dhr,
                    rk,
                    ckr,
                    nhkr,
                    dhs,
                    cks,
                    nhks,
                    nr,
                    kem,
                    out,
                    pq_sending,
                } = *step;
                self.pn = self.ns;
                self.ns = 0;
                self.hks = Some(std::mem::replace(&mut self.nhks, nhks));
                self.hkr = Some(std::mem::replace(&mut self.nhkr, nhkr));
                self.dhr = Some(dhr);
                self.rk = rk;
                self.ckr = Some(ckr);
                self.dhs = dhs;
                self.cks = Some(cks);
                self.nr = nr;
                self.kem = Some(kem);
                self.out = Some(out);
                self.pq_sending = pq_sending;
            }
        }
        for key in skipped {
            self.skipped.push_back(key);
        }
        // Deterministic pruning: the oldest skipped keys go first.
        while self.skipped.len() > MAX_STORED_SKIPPED {
            self.skipped.pop_front();
        }
        payload
    }

    /// Tests only: the private X25519 key of this party's current ratchet key pair, which a
    /// quantum attacker computes from the public key every header carries.
    #[cfg(test)]
    pub(crate) fn dh_secret(&self) -> Key32 {
        self.dhs.secret_bytes()
    }

    /// Number of stored skipped message keys.
    pub(crate) fn skipped_len(&self) -> usize {
        self.skipped.len()
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put(self.dhs.secret_bytes().as_bytes());
        put_opt(out, self.dhr.as_ref());
        out.put(self.rk.as_bytes());
        put_opt(out, self.cks.as_ref().map(Key32::as_bytes));
        put_opt(out, self.ckr.as_ref().map(Key32::as_bytes));
        put_opt(out, self.hks.as_ref().map(Key32::as_bytes));
        put_opt(out, self.hkr.as_ref().map(Key32::as_bytes));
        out.put(self.nhks.as_bytes());
        out.put(self.nhkr.as_bytes());
        out.put_u32(self.ns);
        out.put_u32(self.nr);
        out.put_u32(self.pn);
        match &self.kem {
            None => out.put_u8(0),
            Some(seed) => {
                out.put_u8(1);
                out.put(&seed.0);
            }
        }
        match &self.out {
            None => out.put_u8(0),
            Some(block) => {
                out.put_u8(1);
                out.put(&block.ek);
                out.put(&block.ct);
            }
        }
        out.put_u8(u8::from(self.pq_sending));
        // At most MAX_STORED_SKIPPED (2000) entries: fits in u16.
        out.put_u16(self.skipped.len() as u16);
        for sk in &self.skipped {
            out.put(sk.hk.as_bytes());
            out.put_u32(sk.n);
            out.put(sk.mk.as_bytes());
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        const E: Error = Error::InvalidState("truncated ratchet state");
        let key = |r: &mut Reader<'_>| r.array::<32>().map(Key32).ok_or(E);
        let dhs = DhKeyPair::from_secret(&key(r)?);
        let dhr = get_opt(r)?;
        let rk = key(r)?;
        let cks = get_opt(r)?.map(Key32);
        let ckr = get_opt(r)?.map(Key32);
        let hks = get_opt(r)?.map(Key32);
        let hkr = get_opt(r)?.map(Key32);
        let nhks = key(r)?;
        let nhkr = key(r)?;
        let ns = r.u32().ok_or(E)?;
        let nr = r.u32().ok_or(E)?;
        let pn = r.u32().ok_or(E)?;
        let kem = match r.u8().ok_or(E)? {
            0 => None,
            1 => Some(KemSeed(r.array::<KEM_SEED_LEN>().ok_or(E)?)),
            _ => return Err(Error::InvalidState("bad option tag")),
        };
        let out = match r.u8().ok_or(E)? {
            0 => None,
            1 => Some(PqBlock {
                ek: r.take(KEM_EK_LEN).ok_or(E)?.to_vec(),
                ct: r.take(KEM_CT_LEN).ok_or(E)?.to_vec(),
            }),
            _ => return Err(Error::InvalidState("bad option tag")),
        };
        let pq_sending = match r.u8().ok_or(E)? {
            0 => false,
            1 => true,
            _ => return Err(Error::InvalidState("bad flag")),
        };
        let count = usize::from(r.u16().ok_or(E)?);
        if count > MAX_STORED_SKIPPED {
            return Err(Error::InvalidState("too many skipped keys"));
        }
        let mut skipped = VecDeque::with_capacity(count);
        for _ in 0..count {
            let hk = key(r)?;
            let n = r.u32().ok_or(E)?;
            let mk = key(r)?;
            skipped.push_back(SkippedKey { hk, n, mk });
        }
        Ok(Self {
            dhs,
            dhr,
            rk,
            cks,
            ckr,
            hks,
            hkr,
            nhks,
            nhkr,
            ns,
            nr,
            pn,
            skipped,
            kem,
            out,
            pq_sending,
        })
    }
}

fn put_opt(out: &mut Vec<u8>, v: Option<&[u8; 32]>) {
    match v {
        Some(v) => {
            out.put_u8(1);
            out.put(v);
        }
        None => out.put_u8(0),
    }
}

fn get_opt(r: &mut Reader<'_>) -> Result<Option<[u8; 32]>, Error> {
    const E: Error = Error::InvalidState("truncated ratchet state");
    match r.u8().ok_or(E)? {
        0 => Ok(None),
        1 => Ok(Some(r.array::<32>().ok_or(E)?)),
        _ => Err(Error::InvalidState("bad option tag")),
    }
}

/// Walks a receiving chain from message `from` to message `to`: returns the chain key after
/// `to`, the message key of `to`, and the keys of the messages in between (to be stored).
fn skip_to(
    ck: &Key32,
    hk: &Key32,
    from: u32,
    to: u32,
) -> Result<(Key32, Key32, Vec<SkippedKey>), Error> {
    let gap = u64::from(to).saturating_sub(u64::from(from));
    if gap > u64::from(MAX_SKIP) {
        return Err(Error::TooManySkipped(gap));
    }
    let mut ck = ck.clone();
    let mut skipped = Vec::with_capacity(gap as usize);
    for n in from..to {
        let (next, mk) = kdf_ck(&ck);
        skipped.push(SkippedKey {
            hk: hk.clone(),
            n,
            mk,
        });
        ck = next;
    }
    let (next, mk) = kdf_ck(&ck);
    Ok((next, mk, skipped))
}

/// Opens a header region: `None` if `hk` does not authenticate it, `Some(Err)` if it does
/// but the content is unacceptable.
fn open_header(hk: &Key32, region: &[u8]) -> Option<Result<Header, Error>> {
    let (nonce, rest) = region.split_at(XNONCE_LEN);
    let (ct, tag) = rest.split_at(HEADER_PLAIN_LEN);
    let mut plain = [0u8; HEADER_PLAIN_LEN];
    plain.copy_from_slice(ct);
    if !xopen(hk, nonce, &mut plain, tag) {
        return None;
    }
    let mut r = Reader::new(&plain);
    let version = r.u8()?;
    if version != PROTOCOL_VERSION {
        return Some(Err(Error::UnsupportedVersion(version)));
    }
    Some(Ok(Header {
        dh: r.array()?,
        pn: r.u32()?,
        n: r.u32()?,
    }))
}

/// Authenticates and decrypts a body, then parses flags, optional post-quantum block,
/// length, payload and all-zero padding.
fn open_and_parse(
    mk: &Key32,
    salt: &[u8; XNONCE_LEN],
    aad: &[&[u8]],
    body_ct: &[u8],
    tag: &[u8],
) -> Result<OpenedBody, Error> {
    // Wiped on drop: also when authentication fails (ring leaves the buffer unspecified).
    let mut plain = Zeroizing::new(body_ct.to_vec());
    open_body(mk, salt, aad, &mut plain, tag)?;
    let (payload, pq_block) = parse_body(&plain)?;
    Ok(OpenedBody {
        plain,
        payload,
        pq_block,
    })
}

/// Parses a decrypted body: where its payload is, and whether it carries the block.
fn parse_body(body: &[u8]) -> Result<(Range<usize>, bool), Error> {
    let mut r = Reader::new(body);
    let flags = r.u8().ok_or(Error::MalformedBody("empty body"))?;
    if flags & !FLAG_PQ_BLOCK != 0 {
        return Err(Error::MalformedBody("unknown body flags"));
    }
    let pq_block = flags & FLAG_PQ_BLOCK != 0;
    if pq_block {
        r.take(PQ_BLOCK_LEN)
            .ok_or(Error::MalformedBody("truncated post-quantum block"))?;
    }
    let payload = r
        .bytes16()
        .ok_or(Error::MalformedBody("payload length exceeds body"))?;
    if r.rest().iter().any(|b| *b != 0) {
        return Err(Error::MalformedBody("non-zero padding"));
    }
    let start = 1 + if pq_block { PQ_BLOCK_LEN } else { 0 } + 2;
    Ok((start..start + payload.len(), pq_block))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use crate::envelope::SESSION_BODY_LEN;
    use crate::{Error, InviteKind, InviterSecrets, Session};

    fn established(seed: u64) -> (Session, Session, ChaCha20Rng) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let relay = "hush://CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk@relay.example:4433"
            .parse()
            .unwrap();
        let mut secrets = InviterSecrets::generate(InviteKind::OneTime, relay, &mut rng).unwrap();
        let mut invitee = secrets.invite().unwrap().accept(&mut rng).unwrap();
        let env = invitee.encrypt(b"hello", &mut rng).unwrap();
        let mut inviter = match secrets.handle_init(&env, &mut rng).unwrap() {
            crate::InitOutcome::New { session, .. } => *session,
            crate::InitOutcome::Existing(_) => panic!("not new"),
        };
        let env = inviter.encrypt(b"welcome", &mut rng).unwrap();
        invitee.decrypt(&env, &mut rng).unwrap();
        (inviter, invitee, rng)
    }

    /// A header that authenticates under the right key but says version 1 is refused as
    /// such, in the current chain and on a ratchet step, and changes nothing.
    #[test]
    fn a_version_1_header_is_refused() {
        let (mut inviter, mut invitee, mut rng) = established(7);
        for _ in 0..2 {
            let t = &inviter.transcript.clone();
            let msg = inviter
                .ratchet
                .encrypt_as(1, "نسخة".as_bytes(), SESSION_BODY_LEN, t, &mut rng)
                .unwrap();
            let env = crate::envelope::from_vec(msg).unwrap();
            let before = invitee.to_bytes();
            assert_eq!(
                invitee.decrypt(&env, &mut rng),
                Err(Error::UnsupportedVersion(1))
            );
            assert_eq!(invitee.to_bytes().as_slice(), before.as_slice());
            // Turn the ratchet so that the second round is a new chain.
            let env = invitee.encrypt(b"turn", &mut rng).unwrap();
            inviter.decrypt(&env, &mut rng).unwrap();
        }
    }

    /// The step's KEM half refuses what a peer could get wrong: a new chain without the
    /// post-quantum block, and an encapsulation key that fails the FIPS 203 check. Neither
    /// changes the receiver, which still reads the genuine message afterwards.
    #[test]
    fn a_new_chain_without_a_valid_pq_block_is_refused() {
        let (mut inviter, mut invitee, mut rng) = established(8);
        // The invitee's next message opens a new chain at the inviter.
        /// Edits a sender's block; `false` removes it.
        type Tamper = fn(&mut super::PqBlock) -> bool;
        let cases: [(Tamper, Error); 2] = [
            (|_| false, Error::MissingKemCiphertext),
            (
                |b| {
                    b.ek.fill(0xff); // coefficients above q: not an ML-KEM-768 key
                    true
                },
                Error::InvalidPeerKey,
            ),
        ];
        for (tamper, want) in cases {
            let mut forger = invitee.clone();
            let mut block = forger.ratchet.out.take().unwrap();
            if tamper(&mut block) {
                forger.ratchet.out = Some(block);
            }
            let env = forger.encrypt("没有".as_bytes(), &mut rng).unwrap();
            let before = inviter.to_bytes();
            assert_eq!(inviter.decrypt(&env, &mut rng), Err(want));
            assert_eq!(inviter.to_bytes().as_slice(), before.as_slice());
        }
        let env = invitee.encrypt(b"genuine", &mut rng).unwrap();
        assert_eq!(inviter.decrypt(&env, &mut rng).unwrap(), b"genuine");
    }

    /// The invitee's first chain has nothing to encapsulate to; a block there is refused.
    #[test]
    fn a_pq_block_in_the_first_chain_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let relay = "hush://CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk@relay.example:4433"
            .parse()
            .unwrap();
        let mut secrets = InviterSecrets::generate(InviteKind::OneTime, relay, &mut rng).unwrap();
        let mut invitee = secrets.invite().unwrap().accept(&mut rng).unwrap();
        invitee.ratchet.out = Some(super::PqBlock {
            ek: vec![0; super::KEM_EK_LEN],
            ct: vec![0; super::KEM_CT_LEN],
        });
        let env = invitee.encrypt(b"x", &mut rng).unwrap();
        let before = secrets.to_bytes();
        assert_eq!(
            secrets.handle_init(&env, &mut rng).unwrap_err(),
            Error::MalformedBody("unexpected post-quantum block")
        );
        assert_eq!(secrets.to_bytes().as_slice(), before.as_slice());
    }
}
