//! A relationship's whole cryptographic state: identity keys, transcript, ratchet, where
//! to deposit and where to fetch, and its versioned serialisation.
//!
//! [`Session`] is what the client stores per contact. It turns payloads into envelopes and
//! back; it never performs I/O and never reads a clock (callers pass `unix_seconds`).

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::Error;
use crate::envelope::{
    self, ENVELOPE_LEN, Envelope, INIT_BODY_LEN, INIT_INNER_LEN, INIT_PREFIX_LEN, SESSION_BODY_LEN,
};
use crate::handshake::HandshakeId;
use crate::mailbox::{Direction, FetchSecret, MailboxId, epoch_of, fetch_secret};
use crate::payload::MailboxMove;
use crate::primitives::{DhKeyPair, Fingerprint, Key32, XNONCE_LEN, xseal};
use crate::ratchet::Ratchet;
use crate::safety::SafetyNumber;
use crate::wire::{Put, Reader, Relay};
use hush_proto::{DropAddress, RelayAddress};

/// How long a receiver keeps fetching its previous mailbox root after moving (7 days, the
/// relays' default expiry), so that envelopes already in flight are not lost.
pub const RETIRED_ROOT_SECONDS: u64 = 7 * 24 * 3600;

/// Version 2: the state of a protocol version 2 relationship.
const STATE_VERSION: u8 = 2;

/// Which side of the handshake this party was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Made the invite.
    Inviter,
    /// Accepted the invite.
    Invitee,
}

impl Role {
    fn send_direction(self) -> Direction {
        match self {
            Self::Inviter => Direction::ToInvitee,
            Self::Invitee => Direction::ToInviter,
        }
    }

    fn recv_direction(self) -> Direction {
        match self {
            Self::Inviter => Direction::ToInviter,
            Self::Invitee => Direction::ToInvitee,
        }
    }
}

/// A mailbox root and the relay that holds its mailboxes.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) root: Key32,
    pub(crate) relay: Relay,
}

/// Where an envelope goes on its relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// An ordinary mailbox (a plain deposit).
    Mailbox(MailboxId),
    /// An invite's drop (a stamped deposit).
    Drop(DropAddress),
}

/// The invitee's handshake data, repeated in each envelope until the inviter replies.
#[derive(Clone)]
pub(crate) struct PendingInit {
    pub(crate) seal_key: Key32,
    /// The invite's handshake mailbox.
    pub(crate) drop: DropAddress,
    pub(crate) prefix: Vec<u8>,
}

/// One relationship's cryptographic state.
#[derive(Clone)]
pub struct Session {
    pub(crate) role: Role,
    /// Transcript hash of the handshake: associated data of every message.
    pub(crate) transcript: [u8; 32],
    pub(crate) handshake_id: HandshakeId,
    pub(crate) identity: DhKeyPair,
    pub(crate) peer_identity: [u8; 32],
    pub(crate) ratchet: Ratchet,
    pub(crate) pending_init: Option<PendingInit>,
    pub(crate) send: Route,
    pub(crate) recv: Route,
    /// The receive route before the last move, and until when to keep fetching it.
    pub(crate) recv_retired: Option<(Route, u64)>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("identity", &Fingerprint(&self.identity.public()))
            .field("peer_identity", &Fingerprint(&self.peer_identity))
            .field("awaiting_reply", &self.pending_init.is_some())
            .field("ratchet", &self.ratchet)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Which side of the handshake this party was.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Names the relationship (the same value on both sides).
    pub fn handshake_id(&self) -> HandshakeId {
        self.handshake_id
    }

    /// True until the invitee has received the inviter's first reply.
    pub fn awaiting_reply(&self) -> bool {
        self.pending_init.is_some()
    }

    /// True once this party's sending chain key depends on an ML-KEM shared secret: from
    /// then on its messages resist an attacker who records them and later breaks X25519
    /// (docs/PROTOCOL.md section 10). The invitee is post-quantum from its first ratchet
    /// step, the inviter from its second.
    pub fn post_quantum(&self) -> bool {
        self.ratchet.pq_sending()
    }

    /// The relationship's safety number.
    pub fn safety_number(&self) -> SafetyNumber {
        SafetyNumber::compute(
            &self.identity.public(),
            &self.peer_identity,
            &self.transcript,
        )
    }

    /// Largest payload the next [`Self::encrypt`] accepts.
    pub fn payload_capacity(&self) -> usize {
        let body = if self.pending_init.is_some() {
            INIT_BODY_LEN
        } else {
            SESSION_BODY_LEN
        };
        self.ratchet.payload_capacity(body)
    }

    /// Number of stored skipped message keys (bounded by [`crate::ratchet::MAX_STORED_SKIPPED`]).
    pub fn skipped_keys(&self) -> usize {
        self.ratchet.skipped_len()
    }

    /// Encrypts one payload into one envelope.
    ///
    /// Draws 24 random bytes (header nonce), then, while awaiting the reply, 24 more (seal
    /// nonce).
    pub fn encrypt(&mut self, payload: &[u8], rng: &mut impl CryptoRng) -> Result<Envelope, Error> {
        match &self.pending_init {
            None => {
                let msg = self
                    .ratchet
                    .encrypt(payload, SESSION_BODY_LEN, &self.transcript, rng)?;
                envelope::from_vec(msg)
            }
            Some(init) => {
                let msg = self
                    .ratchet
                    .encrypt(payload, INIT_BODY_LEN, &self.transcript, rng)?;
                let mut inner = Vec::with_capacity(INIT_INNER_LEN);
                inner.put(&init.prefix);
                inner.put(&msg);
                debug_assert_eq!(inner.len(), INIT_INNER_LEN);
                let mut nonce = [0u8; XNONCE_LEN];
                rng.fill_bytes(&mut nonce);
                let tag = xseal(&init.seal_key, &nonce, &mut inner);
                let mut out = Vec::with_capacity(ENVELOPE_LEN);
                out.put(&nonce);
                out.put(&inner);
                out.put(&tag);
                envelope::from_vec(out)
            }
        }
    }

    /// Decrypts an envelope fetched from this session's receive mailbox. On error the
    /// session is unchanged. Draws 128 random bytes when the peer turned the ratchet (next
    /// X25519 key 32, next ML-KEM seed 64, encapsulation randomness 32).
    pub fn decrypt(
        &mut self,
        envelope: &Envelope,
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, Error> {
        let payload = self
            .ratchet
            .decrypt(envelope.as_bytes(), &self.transcript, None, rng)?;
        // The only chain an invitee can receive on is the one the inviter's reply opened.
        self.pending_init = None;
        Ok(payload)
    }

    /// Where an envelope encrypted now must be deposited: the relay, and the mailbox id or
    /// (until the inviter replied) the invite's drop.
    pub fn deposit_target(&self, unix_seconds: u64) -> (&RelayAddress, Target) {
        let target = match &self.pending_init {
            Some(init) => Target::Drop(init.drop),
            None => {
                let epoch = epoch_of(unix_seconds);
                let dir = self.role.send_direction();
                Target::Mailbox(fetch_secret(&self.send.root, dir, epoch).mailbox_id())
            }
        };
        (self.send.relay.address(), target)
    }

    /// The mailboxes to fetch for `epoch`: the current receive root and, while it is kept,
    /// the retired one.
    pub fn receive_mailboxes(
        &self,
        epoch: u64,
        unix_seconds: u64,
    ) -> Vec<(RelayAddress, FetchSecret)> {
        let dir = self.role.recv_direction();
        let mut out = vec![(
            self.recv.relay.address().clone(),
            fetch_secret(&self.recv.root, dir, epoch),
        )];
        if let Some((route, until)) = &self.recv_retired
            && unix_seconds < *until
        {
            out.push((
                route.relay.address().clone(),
                fetch_secret(&route.root, dir, epoch),
            ));
        }
        out
    }

    /// Starts moving this party's receive direction to a fresh root (and optionally a new
    /// relay). Returns the control message to send to the peer, as a payload. The old root
    /// stays fetchable for [`RETIRED_ROOT_SECONDS`]. Draws 32 random bytes (the new root).
    ///
    /// [`Error::UnusableRelay`] (drawing nothing, changing nothing) if `new_relay` has no
    /// binary form that decodes back to it: only a hand-built address can fail.
    pub fn move_receive_mailbox(
        &mut self,
        new_relay: Option<RelayAddress>,
        unix_seconds: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, Error> {
        let relay = match new_relay {
            Some(address) => Relay::new(address)?,
            None => self.recv.relay.clone(),
        };
        let root = Key32::random(rng);
        let old = std::mem::replace(
            &mut self.recv,
            Route {
                root: root.clone(),
                relay: relay.clone(),
            },
        );
        self.recv_retired = Some((old, unix_seconds.saturating_add(RETIRED_ROOT_SECONDS)));
        Ok(MailboxMove { root, relay }.encode())
    }

    /// Applies a peer's [`MailboxMove`]: from now on this party deposits there.
    pub fn apply_peer_mailbox_move(&mut self, mv: &MailboxMove) {
        self.send = Route {
            root: mv.root.clone(),
            relay: mv.relay.clone(),
        };
    }

    /// Versioned serialisation for the client's encrypted store (zeroized on drop).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(512));
        out.put_u8(STATE_VERSION);
        out.put_u8(match self.role {
            Role::Inviter => 1,
            Role::Invitee => 2,
        });
        out.put(&self.transcript);
        out.put(&self.handshake_id.0);
        out.put(self.identity.secret_bytes().as_bytes());
        out.put(&self.peer_identity);
        self.ratchet.encode(&mut out);
        match &self.pending_init {
            None => out.put_u8(0),
            Some(p) => {
                out.put_u8(1);
                out.put(p.seal_key.as_bytes());
                out.put(p.drop.id.as_bytes());
                out.put_u8(p.drop.bits);
                out.put(&p.prefix);
            }
        }
        encode_route(&mut out, &self.send);
        encode_route(&mut out, &self.recv);
        match &self.recv_retired {
            None => out.put_u8(0),
            Some((route, until)) => {
                out.put_u8(1);
                encode_route(&mut out, route);
                out.put_u64(*until);
            }
        }
        out
    }

    /// Inverse of [`Self::to_bytes`]; any damage gives a specific error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        const E: Error = Error::InvalidState("truncated session state");
        let mut r = Reader::new(bytes);
        let version = r.u8().ok_or(E)?;
        if version != STATE_VERSION {
            return Err(Error::UnsupportedStateVersion(version));
        }
        let role = match r.u8().ok_or(E)? {
            1 => Role::Inviter,
            2 => Role::Invitee,
            _ => return Err(Error::InvalidState("unknown role")),
        };
        let transcript = r.array().ok_or(E)?;
        let handshake_id = HandshakeId(r.array().ok_or(E)?);
        let identity = DhKeyPair::from_secret(&Key32(r.array().ok_or(E)?));
        let peer_identity = r.array().ok_or(E)?;
        let ratchet = Ratchet::decode(&mut r)?;
        let pending_init = match r.u8().ok_or(E)? {
            0 => None,
            1 => Some(PendingInit {
                seal_key: Key32(r.array().ok_or(E)?),
                drop: DropAddress {
                    id: MailboxId(r.array().ok_or(E)?),
                    bits: r.u8().ok_or(E)?,
                },
                prefix: r.take(INIT_PREFIX_LEN).ok_or(E)?.to_vec(),
            }),
            _ => return Err(Error::InvalidState("bad option tag")),
        };
        let send = decode_route(&mut r)?;
        let recv = decode_route(&mut r)?;
        let recv_retired = match r.u8().ok_or(E)? {
            0 => None,
            1 => {
                let route = decode_route(&mut r)?;
                Some((route, r.u64().ok_or(E)?))
            }
            _ => return Err(Error::InvalidState("bad option tag")),
        };
        if !r.is_empty() {
            return Err(Error::InvalidState("trailing bytes"));
        }
        Ok(Self {
            role,
            transcript,
            handshake_id,
            identity,
            peer_identity,
            ratchet,
            pending_init,
            send,
            recv,
            recv_retired,
        })
    }
}

fn encode_route(out: &mut Vec<u8>, route: &Route) {
    out.put(route.root.as_bytes());
    route.relay.encode(out);
}

fn decode_route(r: &mut Reader<'_>) -> Result<Route, Error> {
    const E: Error = Error::InvalidState("truncated route");
    let root = Key32(r.array().ok_or(E)?);
    let relay = r.relay().map_err(|e| match e {
        hush_proto::Error::AddressTruncated => E,
        _ => Error::InvalidState("bad relay"),
    })?;
    Ok(Route { root, relay })
}
