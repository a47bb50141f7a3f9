//! hush-crypto: the cryptographic core of hush.
//!
//! Principles, in order of precedence:
//!
//! 1. **Sans-IO.** No sockets, no clock, no global randomness. Time arrives as an argument
//!    (`unix_seconds`), randomness as a `&mut impl CryptoRng`. Every random byte is drawn in
//!    an order fixed by docs/PROTOCOL.md, so test vectors replay bit for bit.
//! 2. **The relay is an adversary.** Everything that leaves this crate for a relay is an
//!    [`envelope`] of exactly [`ENVELOPE_LEN`] bytes that is indistinguishable from random:
//!    no length, type, version, sender or recipient is visible outside the encryption.
//! 3. **No global identity.** Each relationship has its own identity keys, made fresh for it.
//! 4. **Misuse resistance.** A failed decryption changes no state; secrets are zeroized on
//!    drop and no `Debug` output contains key bytes; one error enum, [`Error`], separates what
//!    a peer did wrong from what the caller did wrong.
//! 5. **Deniability.** Nothing is signed; peers authenticate each other through the
//!    Diffie-Hellman key agreement, as in X3DH.
//!
//! Map of the crate:
//! - [`invite`]: invite links (one-time and contact address) and the inviter's secrets.
//! - [`handshake`]: the hybrid X25519 + ML-KEM-768 key agreement that turns an invite into a
//!   [`Session`], and replay protection for first messages.
//! - [`ratchet`]: the Double Ratchet with header encryption, every step of which is also an
//!   ML-KEM-768 step (the continuous post-quantum ratchet).
//! - [`envelope`]: fixed-size envelope layouts and padding.
//! - [`payload`]: what travels inside an envelope: fragments of content and control messages.
//! - [`mailbox`]: epoch-rotating mailbox pseudonyms.
//! - [`file`]: file secrets and the encryption of file chunks (PROTOCOL.md 7a).
//!
//! The wire types ([`Envelope`], [`MailboxId`], [`FetchSecret`], [`RelayAddress`] and its
//! binary form) are hush-proto's, re-exported here: one definition, one parser.
//! - [`safety`]: safety numbers.
//! - [`session`]: a relationship's whole state, and its versioned serialisation.
#![forbid(unsafe_code)]

pub mod descriptor;
pub mod envelope;
mod error;
pub mod file;
pub mod handshake;
pub mod invite;
pub mod mailbox;
pub mod payload;
mod primitives;
#[cfg(test)]
mod quantum_tests;
pub mod ratchet;
pub mod safety;
pub mod session;
mod wire;

pub use error::Error;
pub use handshake::{HandshakeId, InitOutcome};
/// The wire types this crate shares with the relay and the client, defined once in hush-proto.
pub use hush_proto::{DropAddress, ENVELOPE_LEN, Envelope, FetchSecret, MailboxId, RelayAddress};
pub use invite::{DEFAULT_DROP_BITS, Invite, InviteKind, InviterSecrets};
pub use mailbox::{Direction, EPOCH_SECONDS};
pub use safety::SafetyNumber;
pub use session::{Role, Session, Target};

/// The protocol version carried inside every encrypted header, invite and stored state.
pub const PROTOCOL_VERSION: u8 = 2;

/// Randomness source accepted by this crate (a cryptographically secure generator).
pub use rand_core::CryptoRng;
