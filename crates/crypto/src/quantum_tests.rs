//! The post-quantum claim of docs/PROTOCOL.md section 10, played by an attacker.
//!
//! The attacker records every envelope, holds one full snapshot of the victim's state, and
//! has a quantum computer: it knows the private key of every X25519 public key it ever sees
//! (here: the test hands it the victim's new ratchet keys as they are made). It follows the
//! victim's ratchet with a copy of the snapshot whose X25519 keys it keeps patched. What it
//! does not hold is ML-KEM randomness drawn after the theft. The claim: once the victim has
//! turned its ratchet after the theft and the peer has answered, the attacker reads nothing
//! more. The contrast: with the ML-KEM mix disabled ([`PQ_MIX_DISABLED`]) the same attacker
//! reads the whole conversation, so the test measures the post-quantum ratchet and nothing
//! else. The attacker needs this crate's internals (the ratchet key of a state), so it lives
//! here rather than in `tests/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

use std::collections::VecDeque;
use std::convert::Infallible;

use rand_chacha::ChaCha20Rng;
use rand_core::{SeedableRng, TryCryptoRng, TryRng};

use crate::primitives::PQ_MIX_DISABLED;
use crate::{InitOutcome, InviteKind, InviterSecrets, Session};

/// Serves `prefix` first, then bytes of a seeded generator: how the attacker makes its copy
/// step with the victim's new X25519 key and its own guesses for everything else.
struct PrefixRng {
    prefix: VecDeque<u8>,
    rest: ChaCha20Rng,
}

impl TryRng for PrefixRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for b in dst.iter_mut() {
            *b = match self.prefix.pop_front() {
                Some(v) => v,
                None => {
                    let mut one = [0u8; 1];
                    rand_core::Rng::fill_bytes(&mut self.rest, &mut one);
                    one[0]
                }
            };
        }
        Ok(())
    }
}
impl TryCryptoRng for PrefixRng {}

/// Restores the ML-KEM mix when a test ends, also when it fails.
struct PqMix;

impl PqMix {
    fn set(enabled: bool) -> Self {
        PQ_MIX_DISABLED.with(|d| d.set(!enabled));
        Self
    }
}

impl Drop for PqMix {
    fn drop(&mut self) {
        PQ_MIX_DISABLED.with(|d| d.set(false));
    }
}

/// A relationship after the handshake and two round trips: (inviter, invitee, rng).
fn established(seed: u64) -> (Session, Session, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let relay = "hush://CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk@relay.example:4433"
        .parse()
        .unwrap();
    let mut secrets =
        InviterSecrets::generate(InviteKind::ContactAddress, relay, &mut rng).unwrap();
    let mut invitee = secrets.invite().unwrap().accept(&mut rng).unwrap();
    let env = invitee.encrypt("مرحبا".as_bytes(), &mut rng).unwrap();
    let mut inviter = match secrets.handle_init(&env, &mut rng).unwrap() {
        InitOutcome::New { session, .. } => *session,
        InitOutcome::Existing(_) => panic!("not new"),
    };
    for text in ["你好", "🔐"] {
        let env = inviter.encrypt(text.as_bytes(), &mut rng).unwrap();
        invitee.decrypt(&env, &mut rng).unwrap();
        let env = invitee.encrypt(text.as_bytes(), &mut rng).unwrap();
        inviter.decrypt(&env, &mut rng).unwrap();
    }
    (inviter, invitee, rng)
}

/// Steals the victim's state, then runs `rounds` rounds of: the peer writes, the victim
/// reads and answers, the peer reads. Returns, per round, whether the attacker read the
/// peer's message.
fn quantum_attacker_reads(victim_is_invitee: bool, rounds: usize, seed: u64) -> Vec<bool> {
    let (inviter, invitee, mut rng) = established(seed);
    let (mut victim, mut peer) = if victim_is_invitee {
        (invitee, inviter)
    } else {
        (inviter, invitee)
    };
    let mut copy = Session::from_bytes(&victim.to_bytes()).unwrap();
    let mut guesses = ChaCha20Rng::seed_from_u64(seed ^ 0xa77ac);
    let mut read = Vec::new();
    for round in 0..rounds {
        let text = format!("round {round}: مصدر 消息 🗝️");
        let m = peer.encrypt(text.as_bytes(), &mut rng).unwrap();
        let dh_before = victim.ratchet.dh_secret();
        assert_eq!(victim.decrypt(&m, &mut rng).unwrap(), text.as_bytes());
        let mut prefix = VecDeque::new();
        if victim.ratchet.dh_secret() != dh_before {
            // The victim turned its ratchet: its new public key is in every header it
            // sends, and a quantum computer gives the attacker the private key.
            prefix.extend(victim.ratchet.dh_secret().as_bytes());
        }
        let mut attacker_rng = PrefixRng {
            prefix,
            rest: ChaCha20Rng::from_rng(&mut guesses),
        };
        let got = copy.decrypt(&m, &mut attacker_rng);
        read.push(got.as_deref() == Ok(text.as_bytes()));
        let r = victim.encrypt(b"ack", &mut rng).unwrap();
        peer.decrypt(&r, &mut rng).unwrap();
    }
    read
}

/// With the post-quantum ratchet, the attacker reads what the stolen state already held
/// the keys for and one more step; from the peer's answer to the victim's first
/// post-theft step on, nothing: the victim's ML-KEM encapsulation of that step used
/// randomness drawn after the theft, to a key whose private half the attacker never had.
/// As the invitee the stolen state is at the start of a peer chain (1 message read); as
/// the inviter in the middle of one (2).
#[test]
fn a_quantum_attacker_with_a_snapshot_is_locked_out_after_one_pq_step() {
    let _mix = PqMix::set(true);
    for (victim_is_invitee, readable) in [(true, 1), (false, 2)] {
        for seed in 0..3 {
            let read = quantum_attacker_reads(victim_is_invitee, 8, 900 + seed);
            let want: Vec<bool> = (0..8).map(|i| i < readable).collect();
            assert_eq!(read, want, "victim is invitee: {victim_is_invitee}");
        }
    }
}

/// The same attacker, the same conversation, the ML-KEM mix turned off: X25519 alone
/// does not recover against a quantum computer, and the attacker reads every message.
#[test]
fn without_the_pq_mix_the_same_attacker_reads_everything() {
    let _mix = PqMix::set(false);
    for victim_is_invitee in [true, false] {
        let read = quantum_attacker_reads(victim_is_invitee, 8, 950);
        assert_eq!(
            read,
            vec![true; 8],
            "victim is invitee: {victim_is_invitee}"
        );
    }
}
