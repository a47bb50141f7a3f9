//! Deterministic hush-crypto fixtures shared by the `crypto_*` fuzz targets: two sessions
//! in the middle of a conversation, the inviter secrets behind them, and envelopes that
//! each session can decrypt (current chain, skipped keys, a new ratchet step, an init).
//!
//! Built once per process from a fixed seed, so a crash input replays bit for bit. Never
//! used outside fuzzing: panics here mean the fixture itself is wrong, not the library.
#![allow(dead_code)] // each target uses a different subset

use std::sync::OnceLock;

use hush_crypto::handshake::InitOutcome;
use hush_crypto::{Envelope, Invite, InviteKind, InviterSecrets, RelayAddress, Session};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// A session snapshot and envelopes it decrypts from that snapshot.
pub struct Receiver {
    pub session: Session,
    pub valid: Vec<Envelope>,
}

/// Inviter secrets snapshot and an init envelope it accepts as a new relationship.
pub struct Inviter {
    pub secrets: InviterSecrets,
    pub init: Envelope,
}

pub struct Fixture {
    /// The invitee after sending two replies; valid: two skipped, one current, one new chain.
    pub invitee: Receiver,
    /// The inviter before reading those replies; valid: both (one starts a new chain).
    pub inviter: Receiver,
    /// The invitee before the inviter's first reply (state with a pending init).
    pub pending: Session,
    /// A one-time invite's secrets, unused.
    pub one_time: Inviter,
    /// A contact address's secrets that accepted one relationship already.
    pub contact: Inviter,
    /// The one-time invite's link.
    pub link: String,
}

/// A fresh generator for one fuzz input, so each run is deterministic.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn relay() -> RelayAddress {
    // Pin: 32 bytes of 9, in base64url.
    "hush://CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk@relay.example:4433"
        .parse()
        .unwrap()
}

fn new_session(outcome: InitOutcome) -> Session {
    match outcome {
        InitOutcome::New { session, .. } => *session,
        InitOutcome::Existing(_) => panic!("fixture: expected a new relationship"),
    }
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build)
}

fn build() -> Fixture {
    let mut rng = rng(0x6875_7368);
    let r = &mut rng;

    // Handshake and one round trip, as in crates/crypto/tests/common.
    let mut secrets = InviterSecrets::generate(InviteKind::OneTime, relay(), r).unwrap();
    let link = secrets.invite().unwrap().to_link();
    let invite = Invite::parse(&link).unwrap();
    let one_time_secrets = secrets.clone();
    let mut invitee = invite.accept(r).unwrap();
    let init = invitee.encrypt(b"hello", r).unwrap();
    let pending = invitee.clone();
    let mut inviter = new_session(secrets.handle_init(&init, r).unwrap());
    let e = inviter.encrypt(b"welcome", r).unwrap();
    invitee.decrypt(&e, r).unwrap();
    let e = invitee.encrypt(b"thanks", r).unwrap();
    inviter.decrypt(&e, r).unwrap();

    // Inviter sends m1..m4; the invitee reads only m3, keeping keys for m1 and m2.
    let m1 = inviter.encrypt(b"m1", r).unwrap();
    let m2 = inviter.encrypt(b"m2", r).unwrap();
    let m3 = inviter.encrypt(b"m3", r).unwrap();
    invitee.decrypt(&m3, r).unwrap();
    let m4 = inviter.encrypt(b"m4", r).unwrap();

    // Invitee replies twice (a new ratchet step for the inviter).
    let r1 = invitee.encrypt(b"r1", r).unwrap();
    let r2 = invitee.encrypt(b"r2", r).unwrap();
    let inviter_snapshot = inviter.clone();
    inviter.decrypt(&r2, r).unwrap();
    let m5 = inviter.encrypt(b"m5", r).unwrap();
    assert!(invitee.skipped_keys() == 2);

    // A contact address that already made one relationship, and a second invitee's init.
    let mut contact = InviterSecrets::generate(InviteKind::ContactAddress, relay(), r).unwrap();
    let contact_invite = contact.invite().unwrap();
    let mut first = contact_invite.accept(r).unwrap();
    let first_init = first.encrypt(b"first", r).unwrap();
    new_session(contact.handle_init(&first_init, r).unwrap());
    let mut second = contact_invite.accept(r).unwrap();
    let second_init = second.encrypt(b"second", r).unwrap();

    let fixture = Fixture {
        invitee: Receiver {
            session: invitee,
            valid: vec![m1, m2, m4, m5],
        },
        inviter: Receiver {
            session: inviter_snapshot,
            valid: vec![r1, r2],
        },
        pending,
        one_time: Inviter {
            secrets: one_time_secrets,
            init,
        },
        contact: Inviter {
            secrets: contact,
            init: second_init,
        },
        link,
    };
    fixture.self_check();
    fixture
}

impl Fixture {
    /// Every envelope the fixture calls valid decrypts from its snapshot.
    fn self_check(&self) {
        let mut r = rng(0);
        for recv in [&self.invitee, &self.inviter] {
            for env in &recv.valid {
                recv.session.clone().decrypt(env, &mut r).unwrap();
            }
        }
        for inv in [&self.one_time, &self.contact] {
            new_session(inv.secrets.clone().handle_init(&inv.init, &mut r).unwrap());
        }
    }

    pub fn receivers(&self) -> [&Receiver; 2] {
        [&self.invitee, &self.inviter]
    }

    pub fn inviters(&self) -> [&Inviter; 2] {
        [&self.one_time, &self.contact]
    }

    /// Every valid envelope in the fixture, sessions' and inits'.
    pub fn all_envelopes(&self) -> Vec<&Envelope> {
        let mut out: Vec<&Envelope> = self.receivers().iter().flat_map(|r| &r.valid).collect();
        out.extend(self.inviters().iter().map(|i| &i.init));
        out
    }
}
