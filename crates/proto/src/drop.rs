//! Drops: the handshake mailboxes of invites. Anyone holding an invite can deposit to its
//! drop, only the invite's owner can read, delete or subscribe to it, and every deposit
//! carries a proof-of-work stamp whose difficulty the owner chose and the relay checks.
//!
//! Owns: the names (the public [`DropAddress`] in a link, the relay's storage key for it),
//! the stamp (how it is minted and how much work it shows) and the difficulty the relay adds
//! as a drop fills ([`extra_bits`]). Sans-IO like the rest of the crate: minting takes a
//! caller-drawn prefix and never reads a clock.
//!
//! How it fits (docs/PROTOCOL.md, "Drops"): the owner draws a fetch secret `F` whose first
//! byte is the difficulty `bits`; the link carries `D = SHA-256(F)` and `bits`. Depositors
//! send `DepositStamped(D, bits, stamp, envelope)`; the relay stores it under
//! [`DropAddress::storage_key`], a name no plain `Deposit` can reach. Presenting `F` to
//! Fetch, Delete or Subscribe opens the ordinary mailbox `SHA-256(F)` and this drop too.

use sha2::{Digest, Sha256};

use crate::types::{Envelope, FetchSecret, MailboxId};

/// Domain separation of a drop's storage key.
const DOMAIN_DROP: &[u8] = b"hush/v2/drop";
/// Domain separation of an ordinary mailbox's storage key.
const DOMAIN_MAILBOX_KEY: &[u8] = b"hush/v2/mailbox-key";
/// Domain separation of a stamp's hash.
const DOMAIN_STAMP: &[u8] = b"hush/v2/stamp";
/// Length of a stamp.
pub const STAMP_LEN: usize = 16;
/// The largest difficulty a link or a deposit may name; above it is `BadField` (2^40
/// hashes is days of one core, so no real invite asks for more).
pub const MAX_STAMP_BITS: u8 = 40;
/// A drop holding fewer envelopes than this asks for no more work than its owner chose.
pub const EXTRA_BITS_FROM: u32 = 64;
/// Above [`EXTRA_BITS_FROM`], one more bit of work per this many stored envelopes.
pub const EXTRA_BITS_STEP: u32 = 16;

/// A drop as a depositor knows it: its public id `D` and the difficulty its owner chose.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DropAddress {
    /// `SHA-256(F)` of the owner's fetch secret `F`.
    pub id: MailboxId,
    /// Leading zero bits a stamp must show at least (the owner's choice, `F[0]`).
    pub bits: u8,
}

impl core::fmt::Debug for DropAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DropAddress")
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

impl DropAddress {
    /// The drop the owner's fetch secret `F` opens: `D = SHA-256(F)`, `bits = F[0]`.
    #[must_use]
    pub fn of_secret(secret: &FetchSecret) -> Self {
        Self {
            id: secret.mailbox_id(),
            bits: secret.as_bytes()[0],
        }
    }

    /// Where a relay stores the drop's envelopes:
    /// `SHA-256("hush/v2/drop" || bits || D)`. A relay stores ordinary mailboxes under
    /// [`storage_key`] of their id, whose preimage has another prefix and length, so a plain
    /// `Deposit` (to any id at all) cannot reach a drop short of a SHA-256 collision.
    #[must_use]
    pub fn storage_key(&self) -> MailboxId {
        let mut h = Sha256::new();
        h.update(DOMAIN_DROP);
        h.update([self.bits]);
        h.update(self.id.as_bytes());
        MailboxId(h.finalize().into())
    }
}

/// Where a relay stores the ordinary mailbox `id` (one a plain `Deposit` names):
/// `SHA-256("hush/v2/mailbox-key" || id)`.
#[must_use]
pub fn storage_key(id: &MailboxId) -> MailboxId {
    let mut h = Sha256::new();
    h.update(DOMAIN_MAILBOX_KEY);
    h.update(id.as_bytes());
    MailboxId(h.finalize().into())
}

/// The work a stamp shows for an envelope deposited to the drop stored under `key`: the
/// number of leading zero bits of `SHA-256("hush/v2/stamp" || key || SHA-256(envelope) ||
/// stamp)`, 0..=256.
#[must_use]
pub fn stamp_work(key: &MailboxId, envelope: &Envelope, stamp: &[u8; STAMP_LEN]) -> u32 {
    let body = Sha256::digest(envelope.as_bytes());
    stamp_work_of_digest(key, &body.into(), stamp)
}

fn stamp_work_of_digest(key: &MailboxId, body: &[u8; 32], stamp: &[u8; STAMP_LEN]) -> u32 {
    let mut h = Sha256::new();
    h.update(DOMAIN_STAMP);
    h.update(key.as_bytes());
    h.update(body);
    h.update(stamp);
    let digest: [u8; 32] = h.finalize().into();
    let mut zeros = 0;
    for b in digest {
        zeros += b.leading_zeros();
        if b != 0 {
            break;
        }
    }
    zeros
}

/// Finds a stamp showing at least `bits` of work: `prefix` (8 bytes the caller draws at
/// random, so two senders never search the same space) followed by a big-endian counter
/// from 0. Expected cost 2^bits hashes.
#[must_use]
pub fn mint_stamp(
    key: &MailboxId,
    envelope: &Envelope,
    bits: u8,
    prefix: [u8; 8],
) -> [u8; STAMP_LEN] {
    let body: [u8; 32] = Sha256::digest(envelope.as_bytes()).into();
    let mut stamp = [0u8; STAMP_LEN];
    stamp[..8].copy_from_slice(&prefix);
    for counter in 0u64.. {
        stamp[8..].copy_from_slice(&counter.to_be_bytes());
        if stamp_work_of_digest(key, &body, &stamp) >= u32::from(bits) {
            break;
        }
    }
    stamp
}

/// Extra bits of work a relay asks of a deposit to a drop already holding `stored`
/// envelopes: none below [`EXTRA_BITS_FROM`], then one more per [`EXTRA_BITS_STEP`]. A flood
/// from one link holder thus costs it twice as much every 16 envelopes, while a source that
/// arrives during the flood pays the current price once.
#[must_use]
pub fn extra_bits(stored: u32) -> u32 {
    if stored < EXTRA_BITS_FROM {
        0
    } else {
        (stored - EXTRA_BITS_FROM) / EXTRA_BITS_STEP + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ENVELOPE_LEN;

    fn env(b: u8) -> Envelope {
        Envelope::new(Box::new([b; ENVELOPE_LEN]))
    }

    #[test]
    fn a_minted_stamp_shows_its_work_for_that_envelope_and_drop_only() {
        let secret = FetchSecret::from_bytes([12; 32]);
        let drop = DropAddress::of_secret(&secret);
        assert_eq!(drop.bits, 12);
        let key = drop.storage_key();
        let stamp = mint_stamp(&key, &env(1), 12, *b"\xe4\xb8\xad\xe6\x96\x87\xf0\x9f");
        assert!(stamp_work(&key, &env(1), &stamp) >= 12);
        // Another envelope or another drop: the same stamp shows, almost surely, less.
        let other = DropAddress { bits: 13, ..drop }.storage_key();
        assert!(stamp_work(&key, &env(2), &stamp) < 12 || stamp_work(&other, &env(1), &stamp) < 12);
    }

    #[test]
    fn a_drop_key_is_never_the_plain_mailbox() {
        let secret = FetchSecret::from_bytes([0; 32]);
        let drop = DropAddress::of_secret(&secret);
        assert_ne!(drop.storage_key(), storage_key(&secret.mailbox_id()));
        // A plain deposit naming the drop's storage key lands elsewhere.
        assert_ne!(drop.storage_key(), storage_key(&drop.storage_key()));
        assert_ne!(
            drop.storage_key(),
            DropAddress { bits: 1, ..drop }.storage_key()
        );
    }

    #[test]
    fn difficulty_rises_with_the_fill() {
        assert_eq!(extra_bits(0), 0);
        assert_eq!(extra_bits(63), 0);
        assert_eq!(extra_bits(64), 1);
        assert_eq!(extra_bits(79), 1);
        assert_eq!(extra_bits(80), 2);
        assert_eq!(extra_bits(255), 12);
    }
}

/// How long minting takes on this machine (docs/BENCHMARKS.md, "Stamps"); prints, never
/// asserts: `cargo test -p hush-proto --release --lib -- --ignored --nocapture stamp_cost`.
#[cfg(test)]
mod cost {
    use super::*;
    use crate::ENVELOPE_LEN;

    #[test]
    #[ignore = "a measurement, run by hand in a release build"]
    fn stamp_cost() {
        let env = Envelope::new(Box::new([0x5a; ENVELOPE_LEN]));
        let key = DropAddress {
            id: MailboxId([7; 32]),
            bits: 16,
        }
        .storage_key();
        for bits in [12u8, 16, 20] {
            let runs = 24u64;
            let mut hashes = 0u64;
            let t = std::time::Instant::now();
            for r in 0..runs {
                let stamp = mint_stamp(&key, &env, bits, r.to_be_bytes());
                hashes += u64::from_be_bytes(stamp[8..].try_into().unwrap_or([0; 8])) + 1;
            }
            let per = t.elapsed() / u32::try_from(runs).unwrap_or(1);
            let rate = hashes as f64 / t.elapsed().as_secs_f64();
            println!("bits {bits}: {per:?} per stamp (mean of {runs}), {rate:.0} hashes/s");
        }
    }
}
