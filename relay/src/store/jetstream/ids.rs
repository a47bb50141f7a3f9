//! Envelope ids and idempotency ids of the JetStream backend.
//! Must never let an envelope id reveal its stream sequence without the key, and never give
//! two different deposits one idempotency id.

use hush_proto::{Envelope, EnvelopeId, MailboxId};
use ring::hmac;

/// The idempotency id of a deposit: a retry carries the same bytes to the same mailbox, so it
/// gets the same id and JetStream stores it once (within the duplicate window). Envelopes are
/// authenticated ciphertext under fresh nonces, so two different deposits never share one.
pub(super) fn msg_id(mailbox: &MailboxId, envelope: &Envelope) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"hush-relay deposit id v1");
    ctx.update(mailbox.as_bytes());
    ctx.update(envelope.as_bytes());
    hex::encode(ctx.finish().as_ref())
}

/// A keyed permutation of the non-zero 64-bit integers: stream sequence <-> envelope id.
/// Four Feistel rounds over 32-bit halves with HMAC-SHA256 round functions (Luby-Rackoff: a
/// pseudorandom permutation), cycle-walked so that 0 (`after = 0`, "from the start") is
/// never an id.
pub(super) struct IdCipher {
    key: hmac::Key,
}

impl IdCipher {
    const ROUNDS: u8 = 4;

    pub(super) fn new(key: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    fn f(&self, round: u8, half: u32) -> u32 {
        let mut input = [0u8; 5];
        input[0] = round;
        input[1..].copy_from_slice(&half.to_be_bytes());
        let tag = hmac::sign(&self.key, &input);
        let mut out = [0u8; 4];
        out.copy_from_slice(&tag.as_ref()[..4]);
        u32::from_be_bytes(out)
    }

    fn forward(&self, x: u64) -> u64 {
        let (mut l, mut r) = ((x >> 32) as u32, x as u32);
        for i in 0..Self::ROUNDS {
            let t = l ^ self.f(i, r);
            l = r;
            r = t;
        }
        (u64::from(l) << 32) | u64::from(r)
    }

    fn backward(&self, y: u64) -> u64 {
        let (mut l, mut r) = ((y >> 32) as u32, y as u32);
        for i in (0..Self::ROUNDS).rev() {
            let t = r ^ self.f(i, l);
            r = l;
            l = t;
        }
        (u64::from(l) << 32) | u64::from(r)
    }

    /// The id of stream sequence `seq` (>= 1).
    pub(super) fn id(&self, seq: u64) -> EnvelopeId {
        let mut x = self.forward(seq);
        while x == 0 {
            x = self.forward(x);
        }
        EnvelopeId(x)
    }

    /// The stream sequence of `id`, if `id` can be one.
    pub(super) fn seq(&self, id: EnvelopeId) -> Option<u64> {
        if id.0 == 0 {
            return None;
        }
        let mut x = self.backward(id.0);
        while x == 0 {
            x = self.backward(x);
        }
        Some(x)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_a_permutation_without_zero() {
        let c = IdCipher::new(&[7u8; 32]);
        let mut seen = std::collections::HashSet::new();
        for seq in 1..=10_000u64 {
            let id = c.id(seq);
            assert_ne!(id.0, 0);
            assert_eq!(c.seq(id), Some(seq));
            assert!(seen.insert(id.0));
        }
        for seq in [u64::MAX, u64::MAX - 1, 1 << 63] {
            assert_eq!(c.seq(c.id(seq)), Some(seq));
        }
        assert_eq!(c.seq(EnvelopeId(0)), None);
        // Consecutive sequences do not give neighbouring ids (the volume stays hidden).
        let (a, b) = (c.id(1).0, c.id(2).0);
        assert!(a.abs_diff(b) > 1 << 20, "{a} {b}");
        // Another key, other ids.
        assert_ne!(IdCipher::new(&[8u8; 32]).id(1), c.id(1));
    }

    #[test]
    fn a_retry_has_the_deposits_id_and_another_deposit_does_not() {
        let e1 = Envelope::from_slice(&[1u8; hush_proto::ENVELOPE_LEN]).unwrap();
        let e2 = Envelope::from_slice(&[2u8; hush_proto::ENVELOPE_LEN]).unwrap();
        let (a, b) = (MailboxId([1; 32]), MailboxId([2; 32]));
        assert_eq!(msg_id(&a, &e1), msg_id(&a, &e1));
        assert_ne!(msg_id(&a, &e1), msg_id(&a, &e2));
        assert_ne!(msg_id(&a, &e1), msg_id(&b, &e1));
    }
}
