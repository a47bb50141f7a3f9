//! Fixed-size envelopes: the only thing hush-crypto hands to a relay.
//!
//! Every envelope is exactly [`ENVELOPE_LEN`] bytes and, to anyone without the keys,
//! indistinguishable from uniformly random bytes: there is no cleartext version, type,
//! length or key. Two layouts exist and cannot be told apart from outside:
//!
//! - a **session envelope** is one ratchet message filling all 4096 bytes;
//! - an **init envelope** (the invitee's messages before the inviter's first reply) is an
//!   XChaCha20-Poly1305 box under the invite's seal key holding the handshake prefix and a
//!   shorter ratchet message.
//!
//! This module owns the byte layouts inside an envelope and their constants; it never
//! decides what to send. The envelope type itself is the relay's unit, [`Envelope`] of
//! hush-proto (one definition for the client, the relay and this crate).

pub use hush_proto::{ENVELOPE_LEN, Envelope};

use crate::Error;
use crate::primitives::{KEM_EK_LEN, TAG_LEN, XNONCE_LEN};
use crate::ratchet::HEADER_REGION_LEN;

// The layouts below are computed for 4096-byte envelopes.
const _: () = assert!(ENVELOPE_LEN == 4096);

/// Body length of the ratchet message in a session envelope.
pub(crate) const SESSION_BODY_LEN: usize = ENVELOPE_LEN - HEADER_REGION_LEN - TAG_LEN;

/// Plaintext length inside an init envelope's seal.
pub(crate) const INIT_INNER_LEN: usize = ENVELOPE_LEN - XNONCE_LEN - TAG_LEN;
/// Handshake prefix: version (1) || link hash LH (32) || IK_A (32) || EK_A (32) ||
/// ML-KEM-768 ek_A (1184).
pub(crate) const INIT_PREFIX_LEN: usize = 1 + 32 + 32 + 32 + KEM_EK_LEN;
/// Length of the ratchet message inside an init envelope.
pub(crate) const INIT_MESSAGE_LEN: usize = INIT_INNER_LEN - INIT_PREFIX_LEN;
/// Body length of the ratchet message inside an init envelope.
pub(crate) const INIT_BODY_LEN: usize = INIT_MESSAGE_LEN - HEADER_REGION_LEN - TAG_LEN;

/// Parses bytes received from a relay or a store; anything but 4096 bytes is
/// [`Error::EnvelopeLength`].
pub fn parse(bytes: &[u8]) -> Result<Envelope, Error> {
    Envelope::from_slice(bytes).map_err(|_| Error::EnvelopeLength(bytes.len()))
}

/// Wraps an envelope this crate built, reusing the allocation (no copy of the 4 KiB).
pub(crate) fn from_vec(v: Vec<u8>) -> Result<Envelope, Error> {
    let len = v.len();
    Envelope::from_vec(v).map_err(|_| Error::EnvelopeLength(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_constants_add_up() {
        assert_eq!(HEADER_REGION_LEN, 81);
        assert_eq!(SESSION_BODY_LEN, 3999);
        assert_eq!(INIT_INNER_LEN, 4056);
        assert_eq!(INIT_PREFIX_LEN, 1281);
        assert_eq!(INIT_BODY_LEN, 2678);
    }

    #[test]
    fn wrong_lengths_are_rejected() {
        for n in [0, 1, 4095, 4097, 8192] {
            assert_eq!(parse(&vec![0u8; n]), Err(Error::EnvelopeLength(n)));
            assert_eq!(from_vec(vec![0u8; n]), Err(Error::EnvelopeLength(n)));
        }
        assert!(parse(&[0u8; 4096]).is_ok());
        assert!(from_vec(vec![0u8; 4096]).is_ok());
    }
}
