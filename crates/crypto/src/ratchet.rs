//! The Double Ratchet with header encryption (Signal's specification, section 4), extended
//! with a one-time ML-KEM-768 mix into the root key (see docs/PROTOCOL.md, "PQ mix").
//!
//! This module owns chain and header keys, skipped message keys and their bounds. It
//! produces and consumes *ratchet messages* (encrypted header + encrypted padded body) of a
//! length chosen by the caller; it knows nothing about invites, mailboxes or the relay.
//!
//! A failed decryption never changes state: all new keys are computed on the side and
//! committed only after the body authenticated and parsed.

use std::collections::VecDeque;

use rand_core::CryptoRng;

use crate::primitives::{
    DhKeyPair, Fingerprint, KEM_CT_LEN, KEM_SEED_LEN, KemSeed, Key32, TAG_LEN, XNONCE_LEN, kdf_ck,
    kdf_pq, kdf_rk, open_body, seal_body, xopen, xseal,
};
use zeroize::Zeroize;

use crate::wire::{Put, Reader};
use crate::{Error, PROTOCOL_VERSION};

/// Most message keys one header may make us skip within one chain.
pub const MAX_SKIP: u32 = 1000;
/// Most skipped message keys kept in total; the oldest are dropped first.
pub const MAX_STORED_SKIPPED: usize = 2000;

/// Plaintext header: version (1) || ratchet public key (32) || PN (4) || N (4).
pub(crate) const HEADER_PLAIN_LEN: usize = 1 + 32 + 4 + 4;
/// Header region of a ratchet message: nonce || encrypted header || tag.
pub(crate) const HEADER_REGION_LEN: usize = XNONCE_LEN + HEADER_PLAIN_LEN + TAG_LEN;
/// Body flag: the body carries an ML-KEM-768 ciphertext before the payload.
const FLAG_KEM_CT: u8 = 0x01;
/// Body bytes that are not payload: flags (1) and payload length (2).
pub(crate) const BODY_OVERHEAD: usize = 1 + 2;

/// Where the one-time post-quantum mix stands.
#[derive(Clone)]
pub(crate) enum PqState {
    /// Invitee: waiting for the inviter's KEM ciphertext; holds the decapsulation key seed.
    AwaitingCiphertext(KemSeed),
    /// Inviter, before processing the handshake message's header: the first receiving
    /// ratchet step must not mix yet.
    OfferPending { ct: Vec<u8>, ss: Key32 },
    /// Inviter: every body sent carries `ct`; `ss` is mixed in at the next receiving step.
    Offering { ct: Vec<u8>, ss: Key32 },
    /// The shared secret is part of the root key.
    Complete,
}

impl PqState {
    fn outgoing_ct(&self) -> Option<&[u8]> {
        match self {
            Self::OfferPending { ct, .. } | Self::Offering { ct, .. } => Some(ct),
            Self::AwaitingCiphertext(_) | Self::Complete => None,
        }
    }
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
    pq: PqState,
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
            .field("pq_complete", &matches!(self.pq, PqState::Complete))
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
    /// A message that started a new receiving chain (a DH ratchet step).
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
    pq: PqState,
}

impl Ratchet {
    /// RatchetInitAliceHE: the invitee knows the inviter's prekey as the first peer ratchet key.
    /// Draws 32 random bytes (the first own ratchet key).
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
            pq: PqState::AwaitingCiphertext(kem),
        })
    }

    /// RatchetInitBobHE: the inviter's prekey pair is its first ratchet key pair.
    pub(crate) fn new_inviter(
        sk: &Key32,
        prekey: DhKeyPair,
        shared_hka: Key32,
        shared_nhkb: Key32,
        kem_ct: Vec<u8>,
        kem_ss: Key32,
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
            pq: PqState::OfferPending {
                ct: kem_ct,
                ss: kem_ss,
            },
        }
    }

    /// Payload bytes that fit in a body of `body_len` bytes in the current state.
    pub(crate) fn payload_capacity(&self, body_len: usize) -> usize {
        let kem = if self.pq.outgoing_ct().is_some() {
            KEM_CT_LEN
        } else {
            0
        };
        body_len.saturating_sub(BODY_OVERHEAD + kem)
    }

    /// Whether the post-quantum shared secret is already part of the root key.
    pub(crate) fn pq_complete(&self) -> bool {
        matches!(self.pq, PqState::Complete)
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
        if let Some(ct) = self.pq.outgoing_ct() {
            body[0] = FLAG_KEM_CT;
            body[at..at + KEM_CT_LEN].copy_from_slice(ct);
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
    /// Draws 32 random bytes when the message starts a new receiving chain.
    pub(crate) fn decrypt(
        &mut self,
        msg: &[u8],
        ad: &[u8],
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, Error> {
        if msg.len() < HEADER_REGION_LEN + BODY_OVERHEAD + TAG_LEN {
            return Err(Error::MalformedBody("ratchet message too short"));
        }
        let pending = self.prepare(msg, ad, rng)?;
        Ok(self.commit(pending))
    }

    fn prepare(&self, msg: &[u8], ad: &[u8], rng: &mut impl CryptoRng) -> Result<Pending, Error> {
        let (region, rest) = msg.split_at(HEADER_REGION_LEN);
        let (body_ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let aad: [&[u8]; 2] = [ad, region];
        let mut salt = [0u8; XNONCE_LEN];
        salt.copy_from_slice(&region[..XNONCE_LEN]);

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
                let (payload, _) =
                    open_and_parse(&self.skipped[pos].mk, &salt, &aad, body_ct, tag)?;
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

        // 2. The current receiving chain.
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
            let (payload, _) = open_and_parse(&mk, &salt, &aad, body_ct, tag)?;
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
        let mut rk = self.rk.clone();
        let mut pq = self.pq.clone();
        match pq {
            PqState::OfferPending { ct, ss } => pq = PqState::Offering { ct, ss },
            PqState::Offering { ss, .. } => {
                rk = kdf_pq(&rk, &ss);
                pq = PqState::Complete;
            }
            PqState::AwaitingCiphertext(_) | PqState::Complete => {}
        }
        let [rk, ckr0, nhkr] = kdf_rk(&rk, &self.dhs.dh(&header.dh)?);
        let (ckr, mk, new_skipped) = skip_to(&ckr0, &self.nhkr, 0, header.n)?;
        let (payload, kem_ct) = open_and_parse(&mk, &salt, &aad, body_ct, tag)?;
        skipped.extend(new_skipped);

        let rk = match &pq {
            PqState::AwaitingCiphertext(seed) => {
                let ct = kem_ct.ok_or(Error::MissingKemCiphertext)?;
                let ss = seed.decapsulate(&ct)?;
                pq = PqState::Complete;
                kdf_pq(&rk, &ss)
            }
            _ => rk,
        };
        let dhs = DhKeyPair::generate(rng);
        let [rk, cks, nhks] = kdf_rk(&rk, &dhs.dh(&header.dh)?);
        Ok(Pending {
            payload,
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
                pq,
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
                    pq,
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
                self.pq = pq;
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
        match &self.pq {
            PqState::Complete => out.put_u8(0),
            PqState::AwaitingCiphertext(seed) => {
                out.put_u8(1);
                out.put(&seed.0);
            }
            PqState::OfferPending { ct, ss } => {
                out.put_u8(2);
                out.put(ct);
                out.put(ss.as_bytes());
            }
            PqState::Offering { ct, ss } => {
                out.put_u8(3);
                out.put(ct);
                out.put(ss.as_bytes());
            }
        }
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
        let pq = match r.u8().ok_or(E)? {
            0 => PqState::Complete,
            1 => PqState::AwaitingCiphertext(KemSeed(r.array::<KEM_SEED_LEN>().ok_or(E)?)),
            tag @ (2 | 3) => {
                let ct = r.take(KEM_CT_LEN).ok_or(E)?.to_vec();
                let ss = key(r)?;
                if tag == 2 {
                    PqState::OfferPending { ct, ss }
                } else {
                    PqState::Offering { ct, ss }
                }
            }
            _ => return Err(Error::InvalidState("unknown post-quantum state")),
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
            pq,
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

/// Authenticates and decrypts a body, then parses flags, optional KEM ciphertext, length,
/// payload and all-zero padding.
fn open_and_parse(
    mk: &Key32,
    salt: &[u8; XNONCE_LEN],
    aad: &[&[u8]],
    body_ct: &[u8],
    tag: &[u8],
) -> Result<(Vec<u8>, Option<Vec<u8>>), Error> {
    let mut body = zeroize::Zeroizing::new(body_ct.to_vec());
    open_body(mk, salt, aad, &mut body, tag)?;
    match parse_body(&body) {
        Ok((start, len, kem_ct)) => {
            // Reuse the buffer for the payload; wipe the rest of the plaintext.
            body.copy_within(start..start + len, 0);
            body[len..].zeroize();
            body.truncate(len);
            Ok((std::mem::take(&mut *body), kem_ct))
        }
        // `body` is wiped when dropped, here and when authentication failed.
        Err(e) => Err(e),
    }
}

/// Parses a decrypted body: the payload's offset and length, and the KEM ciphertext.
fn parse_body(body: &[u8]) -> Result<(usize, usize, Option<Vec<u8>>), Error> {
    let mut r = Reader::new(body);
    let flags = r.u8().ok_or(Error::MalformedBody("empty body"))?;
    if flags & !FLAG_KEM_CT != 0 {
        return Err(Error::MalformedBody("unknown body flags"));
    }
    let kem_ct = if flags & FLAG_KEM_CT != 0 {
        let ct = r
            .take(KEM_CT_LEN)
            .ok_or(Error::MalformedBody("truncated KEM ciphertext"))?;
        Some(ct.to_vec())
    } else {
        None
    };
    let payload = r
        .bytes16()
        .ok_or(Error::MalformedBody("payload length exceeds body"))?;
    if r.rest().iter().any(|b| *b != 0) {
        return Err(Error::MalformedBody("non-zero padding"));
    }
    let start = 1 + kem_ct.as_ref().map_or(0, Vec::len) + 2;
    Ok((start, payload.len(), kem_ct))
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
}
