//! The hybrid key agreement that turns an invite into a [`Session`].
//!
//! X3DH-style triple Diffie-Hellman over X25519 gives the first keys at once, so the
//! invitee can write immediately, even while the inviter is offline. The invitee's first
//! message also carries an ML-KEM-768 encapsulation key; the inviter's first ratchet step
//! encapsulates to it, and from then on every ratchet step is also an ML-KEM step
//! ([`crate::ratchet`]).
//! Nothing is signed: authentication is implicit in the Diffie-Hellman values (deniable).
//!
//! This module owns the derivations of the first keys and the replay rule (a handshake id
//! seen before never makes a second relationship). It never touches a network or a clock.

use rand_core::CryptoRng;

use crate::envelope::{Envelope, INIT_INNER_LEN, INIT_PREFIX_LEN};
use crate::invite::{Invite, InviteKind, InviterSecrets};
use crate::primitives::{
    DOMAIN_HANDSHAKE_ID, DOMAIN_LINK, DOMAIN_TRANSCRIPT, DhKeyPair, INFO_X3DH, KEM_EK_LEN, KemSeed,
    Key32, TAG_LEN, XNONCE_LEN, hkdf, kem_check_encapsulation_key, sha256, split32, xopen,
};
use crate::ratchet::Ratchet;
use crate::session::{PendingInit, Role, Route, Session};
use crate::wire::{Put, Reader};
use crate::{Error, PROTOCOL_VERSION};

/// Names one handshake: SHA-256("hush/v2/handshake-id" || IK_A || EK_A). Not secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandshakeId(pub [u8; 32]);

impl std::fmt::Debug for HandshakeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandshakeId(..)")
    }
}

/// An init envelope whose seal was opened and whose prefix was parsed.
#[derive(Clone)]
pub struct OpenedInit {
    handshake_id: HandshakeId,
    message: Vec<u8>,
}

impl OpenedInit {
    /// The relationship this envelope belongs to.
    pub fn handshake_id(&self) -> HandshakeId {
        self.handshake_id
    }
}

impl std::fmt::Debug for OpenedInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpenedInit(..)")
    }
}

/// What an inviter learns from an envelope in its handshake mailbox.
pub enum InitOutcome {
    /// A new relationship, with the first payload it carried.
    New {
        /// The inviter's side of the new relationship.
        session: Box<Session>,
        /// The first payload.
        payload: Vec<u8>,
    },
    /// An envelope of a relationship made before (a later pre-reply message, or a replay):
    /// hand it to the session with this handshake id via [`Session::handle_init`].
    Existing(OpenedInit),
}

impl std::fmt::Debug for InitOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The payload may be text or a mailbox-move root: print its length only.
        match self {
            Self::New { session, payload } => f
                .debug_struct("New")
                .field("session", session)
                .field("payload_len", &payload.len())
                .finish(),
            Self::Existing(opened) => f.debug_tuple("Existing").field(opened).finish(),
        }
    }
}

struct X3dhOutput {
    sk: Key32,
    hka: Key32,
    nhkb: Key32,
    mailbox_root: Key32,
}

/// `TH = SHA-256("hush/v2/transcript" || B || IK_A || EK_A || ek_A)`, `B` being the whole
/// link body (relay included), so that the keys, and the safety number, cover every field
/// of the link the invitee used.
fn transcript(link_body: &[u8], ik_a: &[u8; 32], ek_a: &[u8; 32], kem_ek: &[u8]) -> [u8; 32] {
    sha256(&[DOMAIN_TRANSCRIPT, link_body, ik_a, ek_a, kem_ek])
}

fn handshake_id(ik_a: &[u8; 32], ek_a: &[u8; 32]) -> HandshakeId {
    HandshakeId(sha256(&[DOMAIN_HANDSHAKE_ID, ik_a, ek_a]))
}

fn x3dh(dh1: &Key32, dh2: &Key32, dh3: &Key32, transcript: &[u8; 32]) -> X3dhOutput {
    let mut ikm = zeroize::Zeroizing::new([0xFFu8; 128]);
    ikm[32..64].copy_from_slice(dh1.as_bytes());
    ikm[64..96].copy_from_slice(dh2.as_bytes());
    ikm[96..128].copy_from_slice(dh3.as_bytes());
    let okm = hkdf::<128>(None, ikm.as_ref(), &[INFO_X3DH, transcript]);
    let [sk, hka, nhkb, mailbox_root] = split32(okm.as_ref());
    X3dhOutput {
        sk,
        hka,
        nhkb,
        mailbox_root,
    }
}

impl Invite {
    /// Accepts this invite: makes fresh identity, ephemeral and ML-KEM keys for the new
    /// relationship. The returned session can encrypt at once; its envelopes go to the
    /// invite's handshake mailbox until the inviter's first reply arrives.
    ///
    /// Draws, in order: IK_A (32), EK_A (32), ML-KEM seed (64), first ratchet key (32).
    pub fn accept(&self, rng: &mut impl CryptoRng) -> Result<Session, Error> {
        let ik_a = DhKeyPair::generate(rng);
        let ek_a = DhKeyPair::generate(rng);
        let kem = KemSeed::generate(rng);
        let kem_ek = kem.encapsulation_key();
        let th = transcript(&self.body(), &ik_a.public(), &ek_a.public(), &kem_ek);
        let out = x3dh(
            &ik_a.dh(&self.prekey)?,
            &ek_a.dh(&self.identity)?,
            &ek_a.dh(&self.prekey)?,
            &th,
        );
        let ratchet = Ratchet::new_invitee(&out.sk, &self.prekey, out.hka, out.nhkb, kem, rng)?;

        let mut prefix = Vec::with_capacity(INIT_PREFIX_LEN);
        prefix.put_u8(PROTOCOL_VERSION);
        prefix.put(&self.link_hash());
        prefix.put(&ik_a.public());
        prefix.put(&ek_a.public());
        prefix.put(&kem_ek);
        let route = Route {
            root: out.mailbox_root,
            relay: self.relay.clone(),
        };
        Ok(Session {
            role: Role::Invitee,
            transcript: th,
            handshake_id: handshake_id(&ik_a.public(), &ek_a.public()),
            identity: ik_a,
            peer_identity: self.identity,
            ratchet,
            pending_init: Some(PendingInit {
                seal_key: self.seal_key(),
                drop: self.drop,
                prefix,
            }),
            send: route.clone(),
            recv: route,
            recv_retired: None,
        })
    }
}

impl InviterSecrets {
    /// Handles an envelope fetched from this invite's handshake mailbox.
    ///
    /// A handshake id seen before yields [`InitOutcome::Existing`], never a second
    /// relationship. A new one (while the invite is usable) yields [`InitOutcome::New`]
    /// and is recorded; a one-time invite then deletes its prekey. On error nothing changes.
    ///
    /// Draws, in order: the next ratchet key (32), the next ML-KEM seed (64) and the
    /// encapsulation randomness (32) of the ratchet step (docs/PROTOCOL.md section 5.4).
    pub fn handle_init(
        &mut self,
        envelope: &Envelope,
        rng: &mut impl CryptoRng,
    ) -> Result<InitOutcome, Error> {
        let bytes = envelope.as_bytes();
        let (nonce, rest) = bytes.split_at(XNONCE_LEN);
        let (ct, tag) = rest.split_at(INIT_INNER_LEN);
        let mut inner = zeroize::Zeroizing::new(ct.to_vec());
        if !xopen(&self.seal_key(), nonce, &mut inner, tag) {
            return Err(Error::HandshakeUndecryptable);
        }
        debug_assert_eq!(TAG_LEN, tag.len());
        let mut r = Reader::new(&inner);
        const E: Error = Error::MalformedBody("truncated handshake prefix");
        let version = r.u8().ok_or(E)?;
        if version != PROTOCOL_VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let link_hash: [u8; 32] = r.array().ok_or(E)?;
        // Checked first, for every envelope: the seal only shows the sender held the
        // invite secret, this shows it used the link as the inviter made it.
        let link_body = self.link_body();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            &link_hash[..],
            &sha256(&[DOMAIN_LINK, &link_body])[..],
        )) {
            return Err(Error::LinkMismatch);
        }
        let ik_a: [u8; 32] = r.array().ok_or(E)?;
        let ek_a: [u8; 32] = r.array().ok_or(E)?;
        let kem_ek = r.take(KEM_EK_LEN).ok_or(E)?;
        let message = r.rest().to_vec();
        let id = handshake_id(&ik_a, &ek_a);
        let opened = OpenedInit {
            handshake_id: id,
            message,
        };
        if self.accepted.contains(&id) {
            return Ok(InitOutcome::Existing(opened));
        }
        let prekey = self.prekey.as_ref().ok_or(Error::InviteAlreadyUsed)?;
        kem_check_encapsulation_key(kem_ek)?;
        let th = transcript(&link_body, &ik_a, &ek_a, kem_ek);
        let out = x3dh(
            &prekey.dh(&ik_a)?,
            &self.identity.dh(&ek_a)?,
            &prekey.dh(&ek_a)?,
            &th,
        );
        let mut ratchet = Ratchet::new_inviter(&out.sk, prekey.clone(), out.hka, out.nhkb);
        // The first step encapsulates to ek_A: the first post-quantum secret.
        let payload = ratchet.decrypt(&opened.message, &th, Some(kem_ek), rng)?;

        let route = Route {
            root: out.mailbox_root,
            relay: self.relay.clone(),
        };
        let session = Session {
            role: Role::Inviter,
            transcript: th,
            handshake_id: id,
            identity: self.identity.clone(),
            peer_identity: ik_a,
            ratchet,
            pending_init: None,
            send: route.clone(),
            recv: route,
            recv_retired: None,
        };
        self.accepted.push(id);
        if self.kind == InviteKind::OneTime {
            self.prekey = None;
        }
        Ok(InitOutcome::New {
            session: Box::new(session),
            payload,
        })
    }
}

impl Session {
    /// Decrypts a further init envelope of this relationship (see [`InitOutcome::Existing`]).
    pub fn handle_init(
        &mut self,
        opened: &OpenedInit,
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, Error> {
        if opened.handshake_id != self.handshake_id {
            return Err(Error::InvalidOperation(
                "init envelope belongs to another session",
            ));
        }
        self.ratchet
            .decrypt(&opened.message, &self.transcript, None, rng)
    }
}
