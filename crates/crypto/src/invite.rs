//! Invites: how two people who share nothing but an out-of-band channel start a relationship.
//!
//! An [`Invite`] is the public half, carried as a short `hush:` link (and QR code). The
//! [`InviterSecrets`] are the inviter's private half. A one-time invite makes exactly one
//! relationship; a contact address (a published tip line) makes one per invitee.
//!
//! The ML-KEM-768 key (1184 bytes) is deliberately *not* in the link: the invitee sends its
//! own encapsulation key in the first message and the inviter encapsulates in its reply
//! (docs/PROTOCOL.md, "Why the link holds no ML-KEM key"). This module parses and prints
//! links and keeps the inviter's secrets; the key agreement is in [`crate::handshake`].

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hush_proto::{DropAddress, MailboxId, RelayAddress};
use rand_core::CryptoRng;

use crate::handshake::HandshakeId;
use crate::mailbox::FetchSecret;
use crate::primitives::{
    DOMAIN_INVITE_CHECKSUM, DOMAIN_INVITE_CHECKSUM_V1, DOMAIN_LINK, DhKeyPair, Fingerprint,
    INFO_INVITE_SEAL, Key32, hkdf, sha256,
};
use crate::wire::{Put, Reader, Relay, unusable};
use crate::{Error, PROTOCOL_VERSION};

/// The scheme prefix of invite links.
pub const LINK_PREFIX: &str = "hush:";
const CHECKSUM_LEN: usize = 4;
/// The shortest link body that can be an invite: version, kind, two keys, the drop (id and
/// difficulty), a relay with an empty host (pin, port, length), the checksum.
const MIN_LINK_BYTES: usize = 1 + 1 + 32 + 32 + 32 + 1 + (32 + 2 + 1) + CHECKSUM_LEN;
/// The stamp difficulty of a new invite's drop unless its owner chooses another: 2^16
/// hashes per first-contact deposit (milliseconds for a source, a price per envelope for a
/// flood; docs/PROTOCOL.md, "Drops").
pub const DEFAULT_DROP_BITS: u8 = 16;
/// How relay addresses start (`hush://PIN@HOST:PORT`): never an invite's start, whose
/// base64url has no `/`.
const RELAY_ADDRESS_PREFIX: &str = "hush://";

/// One-time invite or multi-use contact address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteKind {
    /// Creates exactly one relationship; its prekey is deleted after first use.
    OneTime,
    /// A published address; every invitee gets a separate relationship.
    ContactAddress,
}

impl InviteKind {
    fn byte(self) -> u8 {
        match self {
            Self::OneTime => 1,
            Self::ContactAddress => 2,
        }
    }

    fn from_byte(b: u8) -> Result<Self, Error> {
        match b {
            1 => Ok(Self::OneTime),
            2 => Ok(Self::ContactAddress),
            _ => Err(Error::InvalidInvite("unknown invite kind")),
        }
    }
}

/// The public half of an invite, as parsed from a link.
#[derive(Clone, PartialEq, Eq)]
pub struct Invite {
    pub(crate) kind: InviteKind,
    /// Inviter's identity key for relationships made through this invite (IK_B).
    pub(crate) identity: [u8; 32],
    /// Inviter's prekey (SPK_B): one-time for one-time invites.
    pub(crate) prekey: [u8; 32],
    /// The handshake mailbox: a drop anyone holding the link can deposit to (with a stamp
    /// of its difficulty) and only the inviter can read.
    pub(crate) drop: DropAddress,
    pub(crate) relay: Relay,
}

impl std::fmt::Debug for Invite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invite")
            .field("kind", &self.kind)
            .field("identity", &Fingerprint(&self.identity))
            .finish_non_exhaustive()
    }
}

impl Invite {
    /// One-time invite or contact address.
    pub fn kind(&self) -> InviteKind {
        self.kind
    }

    /// The inviter's relay, where the handshake message goes.
    pub fn relay(&self) -> &RelayAddress {
        self.relay.address()
    }

    /// Whether `session` is a relationship made by accepting this invite (or another link
    /// with the same inviter identity key: the same contact address): accepting it again
    /// would make a second relationship with the same person.
    pub fn accepted_in(&self, session: &crate::Session) -> bool {
        session.role == crate::session::Role::Invitee && session.peer_identity == self.identity
    }

    /// The handshake mailbox, a drop: the invitee deposits there with a stamp.
    pub fn drop(&self) -> DropAddress {
        self.drop
    }

    /// The binary form `B`, without checksum: everything the link says. All of it enters
    /// the handshake transcript, so an edited link (another relay, key or kind) gives
    /// another transcript and fails the handshake at the inviter.
    pub(crate) fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(200);
        out.put_u8(PROTOCOL_VERSION);
        out.put_u8(self.kind.byte());
        out.put(&self.identity);
        out.put(&self.prekey);
        out.put(self.drop.id.as_bytes());
        out.put_u8(self.drop.bits);
        self.relay.encode(&mut out);
        out
    }

    /// `LH = SHA-256("hush/v2/link" || B)`: the invitee's view of the link, sent in the
    /// handshake prefix so that the inviter can name an edited link as such.
    pub(crate) fn link_hash(&self) -> [u8; 32] {
        sha256(&[DOMAIN_LINK, &self.body()])
    }

    /// The `hush:` link.
    pub fn to_link(&self) -> String {
        let mut bin = self.body();
        let sum = sha256(&[DOMAIN_INVITE_CHECKSUM, &bin]);
        bin.put(&sum[..CHECKSUM_LEN]);
        format!("{LINK_PREFIX}{}", URL_SAFE_NO_PAD.encode(bin))
    }

    /// Parses a `hush:` link; surrounding white space is ignored. The checksum is checked
    /// before the body is decoded, so a typo anywhere in the link (near its end too, where
    /// the relay's host is) is [`Error::InviteChecksum`]. A relay address (`hush://...`)
    /// pasted instead of an invite is named as such. A relay address that a client could
    /// not connect to (docs/PROTOCOL.md, "Binary relay address") is
    /// [`Error::UnusableRelay`]: such a link is refused here, before anything is stored.
    pub fn parse(link: &str) -> Result<Self, Error> {
        let link = link.trim();
        if link.starts_with(RELAY_ADDRESS_PREFIX) {
            return Err(Error::InvalidInvite(
                "this is a relay address (hush://...), not an invite",
            ));
        }
        let b64 = link
            .strip_prefix(LINK_PREFIX)
            .ok_or(Error::InvalidInvite("missing hush: prefix"))?;
        let bin = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| Error::InvalidInvite("not base64url"))?;
        const TRUNC: Error = Error::InvalidInvite("truncated");
        if bin.len() < MIN_LINK_BYTES {
            return Err(TRUNC);
        }
        let (body, sum) = bin.split_at(bin.len() - CHECKSUM_LEN);
        let want = sha256(&[DOMAIN_INVITE_CHECKSUM, body]);
        if sum != &want[..CHECKSUM_LEN] {
            // A version 1 link has a checksum under the version 1 domain: name it as the
            // old version it is rather than as a typo.
            let v1 = sha256(&[DOMAIN_INVITE_CHECKSUM_V1, body]);
            if body.first() == Some(&1) && sum == &v1[..CHECKSUM_LEN] {
                return Err(Error::UnsupportedVersion(1));
            }
            return Err(Error::InviteChecksum);
        }
        let mut r = Reader::new(body);
        let version = r.u8().ok_or(TRUNC)?;
        if version != PROTOCOL_VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let kind = InviteKind::from_byte(r.u8().ok_or(TRUNC)?)?;
        let identity = r.array().ok_or(TRUNC)?;
        let prekey = r.array().ok_or(TRUNC)?;
        let id = MailboxId(r.array().ok_or(TRUNC)?);
        let bits = r.u8().ok_or(TRUNC)?;
        if bits > hush_proto::drop::MAX_STAMP_BITS {
            return Err(Error::InvalidInvite("stamp difficulty above 40 bits"));
        }
        let drop = DropAddress { id, bits };
        let relay = r.relay().map_err(|e| match e {
            hush_proto::Error::AddressTruncated => TRUNC,
            e => unusable(e),
        })?;
        if !r.is_empty() {
            return Err(Error::InvalidInvite("trailing bytes"));
        }
        Ok(Self {
            kind,
            identity,
            prekey,
            drop,
            relay,
        })
    }

    /// The key init envelopes to this invite are sealed with.
    pub(crate) fn seal_key(&self) -> Key32 {
        invite_seal_key(&self.drop, &self.identity, &self.prekey)
    }
}

/// `HKDF(none, D || IK_B || SPK_B, "hush/v2/invite-seal")`. A relay learns `D` from the
/// deposits; without the two keys, which only the link carries, it cannot open the seal.
pub(crate) fn invite_seal_key(drop: &DropAddress, identity: &[u8; 32], prekey: &[u8; 32]) -> Key32 {
    let mut ikm = zeroize::Zeroizing::new([0u8; 96]);
    ikm[..32].copy_from_slice(drop.id.as_bytes());
    ikm[32..64].copy_from_slice(identity);
    ikm[64..].copy_from_slice(prekey);
    Key32(*hkdf::<32>(None, &ikm[..], &[INFO_INVITE_SEAL]))
}

/// The inviter's private half of an invite. Store it (encrypted) until the invite is used
/// (one-time) or retired (contact address).
#[derive(Clone)]
pub struct InviterSecrets {
    pub(crate) kind: InviteKind,
    pub(crate) identity: DhKeyPair,
    /// `None` once a one-time invite has been used.
    pub(crate) prekey: Option<DhKeyPair>,
    /// SPK_B's public key, kept after the private key is deleted: it is part of the link
    /// body that every handshake of this invite is checked against, and of the seal key.
    pub(crate) prekey_public: [u8; 32],
    /// The drop's secret `F` (`F[0]` is the stamp difficulty): fetches the handshake drop.
    pub(crate) drop_secret: FetchSecret,
    pub(crate) relay: Relay,
    /// Handshakes already accepted through this invite: a replayed first message is
    /// recognised here and never creates a second relationship.
    pub(crate) accepted: Vec<HandshakeId>,
}

impl std::fmt::Debug for InviterSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InviterSecrets")
            .field("kind", &self.kind)
            .field("identity", &Fingerprint(&self.identity.public()))
            .field("used", &self.prekey.is_none())
            .field("accepted", &self.accepted.len())
            .finish_non_exhaustive()
    }
}

/// Version 2: the secrets of an invite whose link is a version 2 link.
const SECRETS_VERSION: u8 = 2;

impl InviterSecrets {
    /// Makes a new invite with the default stamp difficulty ([`DEFAULT_DROP_BITS`]).
    /// Draws 96 random bytes: identity key, prekey, drop secret.
    ///
    /// [`Error::UnusableRelay`] (drawing nothing) if `relay` has no binary form that decodes
    /// back to it: only a hand-built address can fail, never a parsed one.
    pub fn generate(
        kind: InviteKind,
        relay: RelayAddress,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, Error> {
        Self::generate_with_bits(kind, relay, DEFAULT_DROP_BITS, rng)
    }

    /// [`Self::generate`] with the stamp difficulty `bits` (at most 40) the invite's drop
    /// asks of each first-contact deposit. The drop secret's first drawn byte is replaced
    /// by `bits`.
    pub fn generate_with_bits(
        kind: InviteKind,
        relay: RelayAddress,
        bits: u8,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, Error> {
        if bits > hush_proto::drop::MAX_STAMP_BITS {
            return Err(Error::InvalidInvite("stamp difficulty above 40 bits"));
        }
        let relay = Relay::new(relay)?;
        let identity = DhKeyPair::generate(rng);
        let prekey = DhKeyPair::generate(rng);
        let mut f = Key32::random(rng);
        f.0[0] = bits;
        let drop_secret = FetchSecret::from_bytes(f.0);
        Ok(Self {
            kind,
            identity,
            prekey_public: prekey.public(),
            prekey: Some(prekey),
            drop_secret,
            relay,
            accepted: Vec::new(),
        })
    }

    /// One-time invite or contact address.
    pub fn kind(&self) -> InviteKind {
        self.kind
    }

    /// Whether `invite` is this invite (used or not): a profile accepting its own invite.
    pub fn made(&self, invite: &Invite) -> bool {
        self.identity.public() == invite.identity
    }

    /// The public invite to hand out; `InviteAlreadyUsed` once a one-time invite was used.
    pub fn invite(&self) -> Result<Invite, Error> {
        let prekey = self.prekey.as_ref().ok_or(Error::InviteAlreadyUsed)?;
        Ok(Invite {
            kind: self.kind,
            identity: self.identity.public(),
            prekey: prekey.public(),
            drop: self.drop(),
            relay: self.relay.clone(),
        })
    }

    /// The body `B` of this invite's link, also once a one-time invite was used.
    pub(crate) fn link_body(&self) -> Vec<u8> {
        Invite {
            kind: self.kind,
            identity: self.identity.public(),
            prekey: self.prekey_public,
            drop: self.drop(),
            relay: self.relay.clone(),
        }
        .body()
    }

    /// The drop's secret: presented to FetchDrops, DeleteDrop and SubscribeDrops, it opens
    /// the handshake drop (the same for every epoch).
    pub fn drop_secret(&self) -> &FetchSecret {
        &self.drop_secret
    }

    /// The drop as the link names it.
    pub fn drop(&self) -> DropAddress {
        DropAddress::of_secret(&self.drop_secret)
    }

    /// The key init envelopes to this invite are sealed with.
    pub(crate) fn seal_key(&self) -> Key32 {
        invite_seal_key(&self.drop(), &self.identity.public(), &self.prekey_public)
    }

    /// Relay this invite points to.
    pub fn relay(&self) -> &RelayAddress {
        self.relay.address()
    }

    /// Number of relationships made through this invite.
    pub fn accepted_count(&self) -> usize {
        self.accepted.len()
    }

    /// Versioned serialisation for the client's encrypted store.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(256));
        out.put_u8(SECRETS_VERSION);
        out.put_u8(self.kind.byte());
        out.put(self.identity.secret_bytes().as_bytes());
        match &self.prekey {
            Some(p) => {
                out.put_u8(1);
                out.put(p.secret_bytes().as_bytes());
            }
            None => out.put_u8(0),
        }
        out.put(&self.prekey_public);
        out.put(self.drop_secret.as_bytes());
        self.relay.encode(&mut out);
        out.put_u32(self.accepted.len() as u32);
        for id in &self.accepted {
            out.put(&id.0);
        }
        out
    }

    /// Inverse of [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        const E: Error = Error::InvalidState("truncated invite secrets");
        let mut r = Reader::new(bytes);
        let version = r.u8().ok_or(E)?;
        if version != SECRETS_VERSION {
            return Err(Error::UnsupportedStateVersion(version));
        }
        let kind = InviteKind::from_byte(r.u8().ok_or(E)?)
            .map_err(|_| Error::InvalidState("unknown invite kind"))?;
        let identity = DhKeyPair::from_secret(&Key32(r.array().ok_or(E)?));
        let prekey = match r.u8().ok_or(E)? {
            0 => None,
            1 => Some(DhKeyPair::from_secret(&Key32(r.array().ok_or(E)?))),
            _ => return Err(Error::InvalidState("bad option tag")),
        };
        let prekey_public: [u8; 32] = r.array().ok_or(E)?;
        if prekey.as_ref().is_some_and(|p| p.public() != prekey_public) {
            return Err(Error::InvalidState("prekey does not match its public key"));
        }
        let drop_secret = FetchSecret::from_bytes(r.array().ok_or(E)?);
        if drop_secret.as_bytes()[0] > hush_proto::drop::MAX_STAMP_BITS {
            return Err(Error::InvalidState("stamp difficulty above 40 bits"));
        }
        let relay = r.relay().map_err(|e| match e {
            hush_proto::Error::AddressTruncated => E,
            _ => Error::InvalidState("bad relay"),
        })?;
        let n = r.u32().ok_or(E)? as usize;
        if n > bytes.len() / 32 {
            return Err(E);
        }
        let mut accepted = Vec::with_capacity(n);
        for _ in 0..n {
            accepted.push(HandshakeId(r.array().ok_or(E)?));
        }
        if !r.is_empty() {
            return Err(Error::InvalidState("trailing bytes"));
        }
        Ok(Self {
            kind,
            identity,
            prekey,
            prekey_public,
            drop_secret,
            relay,
            accepted,
        })
    }
}
