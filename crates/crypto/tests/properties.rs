//! Properties of message delivery over an unreliable, adversarial network.
//!
//! A property test drives two parties through random interleavings of sends, in-order and
//! out-of-order deliveries, duplicates and losses, from right after the handshake (the
//! invitee still writing init envelopes) and from an established pair. Dedicated tests pin
//! the bounds on skipped message keys (MAX_SKIP per header, MAX_STORED_SKIPPED in total,
//! oldest dropped first) and which error a duplicate gets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

mod common;

use common::*;
use hush_crypto::handshake::InitOutcome;
use hush_crypto::ratchet::{MAX_SKIP, MAX_STORED_SKIPPED};
use hush_crypto::{Envelope, Error, InviterSecrets, Session};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Party {
    Invitee,
    Inviter,
}

impl Party {
    fn peer(self) -> Self {
        match self {
            Self::Invitee => Self::Inviter,
            Self::Inviter => Self::Invitee,
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Invitee => 0,
            Self::Inviter => 1,
        }
    }
}

/// One step of the network's and the parties' behaviour. Indices are taken modulo the
/// length of the list they select from.
#[derive(Clone, Debug)]
enum Op {
    /// The party encrypts a new message; the number selects its length.
    Send(Party, u16),
    /// The oldest pending envelope addressed to the party arrives.
    DeliverOldest(Party),
    /// Any pending envelope arrives, in either direction (out of order).
    DeliverAny(usize),
    /// The newest pending envelope overtakes all others.
    DeliverNewest,
    /// An envelope that arrived before arrives again.
    Redeliver(usize),
    /// A pending envelope is lost for good.
    Drop(usize),
    /// The party's state goes through storage (`from_bytes(to_bytes())`).
    Persist(Party),
}

#[derive(Clone)]
struct Msg {
    to: Party,
    /// Encrypted while the invitee awaited the reply: goes to the handshake mailbox.
    init: bool,
    env: Envelope,
    plaintext: Vec<u8>,
}

/// How often each kind of event happened, to show the generated runs reach every case.
#[derive(Default, Debug)]
struct Seen {
    new_relationship: usize,
    existing_init: usize,
    late_from_skipped_key: usize,
    replayed: usize,
    header_undecryptable: usize,
    dropped: usize,
    persisted: usize,
}

/// Both parties, the network between them, and what the test knows should happen.
struct World {
    /// `None` when the run starts from an established pair (no init envelope can occur).
    secrets: Option<InviterSecrets>,
    invitee: Session,
    /// `None` until the first init envelope reaches the inviter.
    inviter: Option<Session>,
    rng: ChaCha20Rng,
    pending: Vec<Msg>,
    delivered: Vec<Msg>,
    /// Dropped envelopes, per recipient.
    lost: [usize; 2],
    sent: u64,
    seen: Seen,
}

impl World {
    fn accepted(seed: u64) -> Self {
        let Accepted {
            secrets,
            invitee,
            rng,
        } = accepted(seed);
        Self {
            secrets: Some(secrets),
            invitee,
            inviter: None,
            rng,
            pending: Vec::new(),
            delivered: Vec::new(),
            lost: [0; 2],
            sent: 0,
            seen: Seen::default(),
        }
    }

    fn established(seed: u64) -> Self {
        let Pair {
            inviter,
            invitee,
            rng,
        } = established(seed);
        Self {
            secrets: None,
            invitee,
            inviter: Some(inviter),
            rng,
            pending: Vec::new(),
            delivered: Vec::new(),
            lost: [0; 2],
            sent: 0,
            seen: Seen::default(),
        }
    }

    fn session(&mut self, party: Party) -> Option<&mut Session> {
        match party {
            Party::Invitee => Some(&mut self.invitee),
            Party::Inviter => self.inviter.as_mut(),
        }
    }

    /// Everything a failed delivery must leave untouched.
    fn state(&self) -> Vec<Vec<u8>> {
        let mut out = vec![self.invitee.to_bytes().to_vec()];
        if let Some(s) = &self.inviter {
            out.push(s.to_bytes().to_vec());
        }
        if let Some(s) = &self.secrets {
            out.push(s.to_bytes().to_vec());
        }
        out
    }

    fn send(&mut self, from: Party, len_selector: u16) {
        let id = self.sent;
        let mut rng = self.rng.clone();
        let Some(session) = self.session(from) else {
            return; // the inviter cannot write before the first init envelope arrived
        };
        let init = from == Party::Invitee && session.awaiting_reply();
        let capacity = session.payload_capacity();
        // Mostly short messages; one in eight fills the envelope exactly.
        let len = if len_selector.is_multiple_of(8) {
            capacity
        } else {
            8 + usize::from(len_selector % 64)
        };
        let mut plaintext = id.to_be_bytes().to_vec();
        plaintext.extend((8..len).map(|i| (id as u8).wrapping_mul(31).wrapping_add(i as u8)));
        let env = session.encrypt(&plaintext, &mut rng).unwrap();
        self.rng = rng;
        self.sent += 1;
        self.pending.push(Msg {
            to: from.peer(),
            init,
            env,
            plaintext,
        });
    }

    /// Hands an envelope to its recipient the way a client would: init envelopes through
    /// the invite's secrets, session envelopes to the session.
    fn receive(&mut self, msg: &Msg) -> Result<Vec<u8>, Error> {
        match (msg.to, msg.init) {
            (Party::Invitee, _) => self.invitee.decrypt(&msg.env, &mut self.rng),
            (Party::Inviter, true) => {
                let secrets = self.secrets.as_mut().unwrap();
                match secrets.handle_init(&msg.env, &mut self.rng)? {
                    InitOutcome::New { session, payload } => {
                        assert!(
                            self.inviter.is_none(),
                            "one handshake made a second relationship"
                        );
                        assert_eq!(session.handshake_id(), self.invitee.handshake_id());
                        self.inviter = Some(*session);
                        self.seen.new_relationship += 1;
                        Ok(payload)
                    }
                    InitOutcome::Existing(opened) => {
                        let inviter = self.inviter.as_mut().expect("`Existing` before any `New`");
                        assert_eq!(opened.handshake_id(), inviter.handshake_id());
                        self.seen.existing_init += 1;
                        inviter.handle_init(&opened, &mut self.rng)
                    }
                }
            }
            (Party::Inviter, false) => self
                .inviter
                .as_mut()
                .expect("a session envelope cannot exist before the inviter's session")
                .decrypt(&msg.env, &mut self.rng),
        }
    }

    /// First arrival: must decrypt to exactly what was sent.
    fn deliver(&mut self, index: usize) {
        let msg = self.pending.remove(index);
        let skipped = |w: &mut Self| w.session(msg.to).map_or(0, |s| s.skipped_keys());
        let before = skipped(self);
        let got = self.receive(&msg);
        if skipped(self) < before {
            self.seen.late_from_skipped_key += 1;
        }
        assert_eq!(
            got.as_deref(),
            Ok(msg.plaintext.as_slice()),
            "an original envelope did not decrypt to its plaintext"
        );
        self.delivered.push(msg);
    }

    /// Second arrival: must be rejected (see `duplicates_are_rejected_with_a_reason`
    /// for which error when) and change nothing.
    fn redeliver(&mut self, index: usize) {
        let msg = self.delivered[index].clone();
        let before = self.state();
        let got = self.receive(&msg);
        assert!(
            matches!(
                got,
                Err(Error::MessageReplayed | Error::HeaderUndecryptable)
            ),
            "a duplicate gave {got:?}"
        );
        match got {
            Err(Error::MessageReplayed) => self.seen.replayed += 1,
            _ => self.seen.header_undecryptable += 1,
        }
        assert!(self.state() == before, "a failed decryption changed state");
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Send(from, len) => self.send(from, len),
            Op::DeliverOldest(to) => {
                if let Some(i) = self.pending.iter().position(|m| m.to == to) {
                    self.deliver(i);
                }
            }
            Op::DeliverAny(i) if !self.pending.is_empty() => self.deliver(i % self.pending.len()),
            Op::DeliverNewest if !self.pending.is_empty() => self.deliver(self.pending.len() - 1),
            Op::Redeliver(i) if !self.delivered.is_empty() => {
                self.redeliver(i % self.delivered.len());
            }
            Op::Drop(i) if !self.pending.is_empty() => {
                let msg = self.pending.remove(i % self.pending.len());
                self.lost[msg.to.index()] += 1;
                self.seen.dropped += 1;
            }
            Op::Persist(party) => {
                self.seen.persisted += 1;
                if let Some(session) = self.session(party) {
                    let bytes = session.to_bytes();
                    *session = Session::from_bytes(&bytes).unwrap();
                    assert_eq!(session.to_bytes().as_slice(), bytes.as_slice());
                }
                if party == Party::Inviter
                    && let Some(secrets) = &mut self.secrets
                {
                    *secrets = InviterSecrets::from_bytes(&secrets.to_bytes()).unwrap();
                }
            }
            Op::DeliverAny(_) | Op::DeliverNewest | Op::Redeliver(_) | Op::Drop(_) => {}
        }
        self.check_skipped_bounds();
    }

    /// A stored skipped key stands for a message that was sent and has not arrived yet:
    /// never more keys than such messages, and never more than the global cap.
    fn check_skipped_bounds(&mut self) {
        for party in [Party::Invitee, Party::Inviter] {
            let undelivered =
                self.pending.iter().filter(|m| m.to == party).count() + self.lost[party.index()];
            if let Some(session) = self.session(party) {
                let stored = session.skipped_keys();
                assert!(stored <= MAX_STORED_SKIPPED);
                assert!(
                    stored <= undelivered,
                    "{party:?} stores {stored} skipped keys for {undelivered} undelivered messages"
                );
            }
        }
    }

    /// Delivers what is still pending (newest first), then checks both parties can still
    /// talk in both directions.
    fn drain_and_converse(&mut self) {
        while !self.pending.is_empty() {
            self.deliver(self.pending.len() - 1);
            self.check_skipped_bounds();
        }
        for _ in 0..2 {
            for from in [Party::Invitee, Party::Inviter] {
                self.send(from, 1);
                if let Some(i) = self.pending.iter().position(|m| m.to == from.peer()) {
                    self.deliver(i);
                }
            }
        }
        assert!(self.pending.is_empty());
        assert!(self.inviter.is_some() && !self.invitee.awaiting_reply());
        // Once both have heard each other twice, the post-quantum secret is mixed in.
        assert!(self.invitee.post_quantum() && self.inviter.as_ref().unwrap().post_quantum());
        self.check_skipped_bounds();
    }
}

fn op() -> impl Strategy<Value = Op> {
    let party = prop_oneof![Just(Party::Invitee), Just(Party::Inviter)];
    prop_oneof![
        4 => (party.clone(), any::<u16>()).prop_map(|(p, len)| Op::Send(p, len)),
        2 => party.clone().prop_map(Op::DeliverOldest),
        3 => any::<usize>().prop_map(Op::DeliverAny),
        1 => Just(Op::DeliverNewest),
        2 => any::<usize>().prop_map(Op::Redeliver),
        1 => any::<usize>().prop_map(Op::Drop),
        1 => party.prop_map(Op::Persist),
    ]
}

fn run(mut world: World, ops: &[Op]) -> Seen {
    for op in ops {
        world.apply(op);
    }
    world.drain_and_converse();
    world.seen
}

proptest! {
    // 64 cases of up to 60 operations each, twice: about a second in a debug build.
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Starts right after `accept`: early envelopes are init envelopes that reach the
    /// inviter through `InviterSecrets::handle_init` and `Session::handle_init`, and the
    /// inviter's replies can race with them.
    #[test]
    fn interleavings_from_the_handshake(seed: u64, ops in prop::collection::vec(op(), 0..60)) {
        run(World::accepted(seed), &ops);
    }

    /// Starts from a pair that completed one round trip.
    #[test]
    fn interleavings_of_an_established_pair(seed: u64, ops in prop::collection::vec(op(), 0..60)) {
        run(World::established(seed), &ops);
    }
}

/// The generator is not vacuous: over the same number of runs as the property tests, every
/// kind of event the properties talk about happens.
#[test]
fn the_interleavings_reach_every_case() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let ops = prop::collection::vec(op(), 0..60);
    let mut total = Seen::default();
    for case in 0..128u64 {
        let ops = ops.new_tree(&mut runner).unwrap().current();
        let world = if case % 2 == 0 {
            World::accepted(case)
        } else {
            World::established(case)
        };
        let seen = run(world, &ops);
        total.new_relationship += seen.new_relationship;
        total.existing_init += seen.existing_init;
        total.late_from_skipped_key += seen.late_from_skipped_key;
        total.replayed += seen.replayed;
        total.header_undecryptable += seen.header_undecryptable;
        total.dropped += seen.dropped;
        total.persisted += seen.persisted;
    }
    let Seen {
        new_relationship,
        existing_init,
        late_from_skipped_key,
        replayed,
        header_undecryptable,
        dropped,
        persisted,
    } = total;
    // Every handshake run makes exactly one relationship (possibly only while draining).
    assert_eq!(new_relationship, 64, "{total:?}");
    for (what, n) in [
        ("init envelopes after the first", existing_init),
        (
            "late messages read from skipped keys",
            late_from_skipped_key,
        ),
        ("duplicates named as replays", replayed),
        ("duplicates with no header key left", header_undecryptable),
        ("lost envelopes", dropped),
        ("states through storage", persisted),
    ] {
        assert!(n >= 10, "only {n} {what}: {total:?}");
    }
}

/// A duplicate is rejected with the most precise error the receiver can still give:
/// `MessageReplayed` while it still holds the header key of the message's chain (the
/// current receiving chain, or an old chain with skipped keys left), `HeaderUndecryptable`
/// once that header key is gone with the chain's last skipped key: the receiver then keeps
/// nothing that could even tell the envelope belongs to this session.
#[test]
fn duplicates_are_rejected_with_a_reason() {
    let mut p = established(20);
    // Inviter -> invitee on one chain: m0 and m2 arrive, m1 is late.
    let m = send_numbered(&mut p.inviter, 0, 3, &mut p.rng);
    assert_eq!(
        p.invitee.decrypt(&m[0], &mut p.rng).unwrap(),
        0u32.to_be_bytes()
    );
    assert_eq!(
        p.invitee.decrypt(&m[2], &mut p.rng).unwrap(),
        2u32.to_be_bytes()
    );
    // Current chain: the counter says it was seen.
    assert_rejected(&mut p.invitee, &m[0], Error::MessageReplayed, &mut p.rng);
    assert_rejected(&mut p.invitee, &m[2], Error::MessageReplayed, &mut p.rng);

    // A round trip moves the invitee to a new receiving chain.
    let back = send(&mut p.invitee, b"back", &mut p.rng);
    p.inviter.decrypt(&back, &mut p.rng).unwrap();
    let next = send(&mut p.inviter, b"next", &mut p.rng);
    p.invitee.decrypt(&next, &mut p.rng).unwrap();
    // Old chain, m1's key still stored: its header key is known, so a replay is named.
    assert_eq!(p.invitee.skipped_keys(), 1);
    assert_rejected(&mut p.invitee, &m[0], Error::MessageReplayed, &mut p.rng);
    // m1 arrives late and uses up the old chain's last key...
    assert_eq!(
        p.invitee.decrypt(&m[1], &mut p.rng).unwrap(),
        1u32.to_be_bytes()
    );
    assert_eq!(p.invitee.skipped_keys(), 0);
    // ...after which nothing of that chain is left, not even its header key.
    for old in &m {
        assert_rejected(&mut p.invitee, old, Error::HeaderUndecryptable, &mut p.rng);
    }
    assert_rejected(&mut p.invitee, &next, Error::MessageReplayed, &mut p.rng);
}

/// A header may make the receiver skip at most MAX_SKIP keys, in the current chain and
/// in a new chain; one more is refused without any change.
#[test]
fn a_gap_of_max_skip_works_and_one_more_is_refused() {
    assert_eq!(MAX_SKIP, 1000);
    let mut p = established(21);
    let gap = MAX_SKIP;

    // Current chain (the inviter last received the invitee's message 0 of this chain).
    let m = send_numbered(&mut p.invitee, 1, gap + 1, &mut p.rng);
    assert_eq!(
        p.inviter.decrypt(&m[gap as usize], &mut p.rng).unwrap(),
        (gap + 1).to_be_bytes()
    );
    assert_eq!(p.inviter.skipped_keys(), gap as usize);
    let far = send_numbered(&mut p.invitee, gap + 2, gap + 2, &mut p.rng);
    assert_rejected(
        &mut p.inviter,
        &far[gap as usize + 1],
        Error::TooManySkipped(u64::from(gap) + 1),
        &mut p.rng,
    );
    assert_eq!(
        p.inviter.decrypt(&far[gap as usize], &mut p.rng).unwrap(),
        (2 * gap + 2).to_be_bytes()
    );
    assert_eq!(p.inviter.skipped_keys(), 2 * gap as usize);
    assert_eq!(
        p.inviter
            .decrypt(&far[gap as usize + 1], &mut p.rng)
            .unwrap(),
        (2 * gap + 3).to_be_bytes()
    );
    // Every skipped message still opens, once.
    let all: Vec<&Envelope> = m.iter().chain(&far).collect();
    for (i, env) in all.into_iter().enumerate().rev().skip(2) {
        if i == gap as usize {
            continue; // delivered above
        }
        assert_eq!(
            p.inviter.decrypt(env, &mut p.rng).unwrap(),
            (i as u32 + 1).to_be_bytes()
        );
    }
    assert_eq!(p.inviter.skipped_keys(), 0);

    // A new chain: the inviter's next sending chain has sent nothing yet.
    let m = send_numbered(&mut p.inviter, 0, gap + 2, &mut p.rng);
    assert_rejected(
        &mut p.invitee,
        &m[gap as usize + 1],
        Error::TooManySkipped(u64::from(gap) + 1),
        &mut p.rng,
    );
    assert_eq!(
        p.invitee.decrypt(&m[gap as usize], &mut p.rng).unwrap(),
        gap.to_be_bytes()
    );
    assert_eq!(p.invitee.skipped_keys(), gap as usize);
}

/// The previous-chain length (PN) in a new chain's header may also make the receiver
/// skip at most MAX_SKIP keys of the old chain.
#[test]
fn the_old_chain_tail_is_bounded_too() {
    for (tail, ok) in [(MAX_SKIP, true), (MAX_SKIP + 1, false)] {
        let mut p = established(22);
        // Invitee receives message 0 of the inviter's chain, then `tail` more are sent
        // and lost before the inviter turns its ratchet.
        let first = send(&mut p.inviter, b"first", &mut p.rng);
        p.invitee.decrypt(&first, &mut p.rng).unwrap();
        let lost = send_numbered(&mut p.inviter, 1, tail, &mut p.rng);
        let back = send(&mut p.invitee, b"back", &mut p.rng);
        p.inviter.decrypt(&back, &mut p.rng).unwrap();
        let next = send(&mut p.inviter, b"next", &mut p.rng);
        if ok {
            assert_eq!(p.invitee.decrypt(&next, &mut p.rng).unwrap(), b"next");
            assert_eq!(p.invitee.skipped_keys(), tail as usize);
            // The last message of the old chain is among the stored keys.
            assert_eq!(
                p.invitee.decrypt(lost.last().unwrap(), &mut p.rng).unwrap(),
                tail.to_be_bytes()
            );
        } else {
            assert_rejected(
                &mut p.invitee,
                &next,
                Error::TooManySkipped(u64::from(tail)),
                &mut p.rng,
            );
        }
    }
}

/// The store of skipped keys, filled through four chains, never exceeds
/// MAX_STORED_SKIPPED; the oldest keys go first, and a message whose key was pruned is
/// refused cleanly.
#[test]
fn the_skipped_key_store_is_capped_oldest_first() {
    assert_eq!(MAX_STORED_SKIPPED, 2000);
    let mut p = established(23);
    let mut chains: Vec<Vec<Envelope>> = Vec::new();
    // Skipped per chain: 600 + 1000 + 1000 = 2600 (the first chain's 600 are pruned),
    // then 100 more (the second chain's oldest 100 are pruned).
    let expected_stored = [600, 1600, 2000, 2000];
    for (skip, stored) in [600u32, 1000, 1000, 100].into_iter().zip(expected_stored) {
        let m = send_numbered(&mut p.inviter, 0, skip + 1, &mut p.rng);
        assert_eq!(
            p.invitee.decrypt(&m[skip as usize], &mut p.rng).unwrap(),
            skip.to_be_bytes()
        );
        assert_eq!(p.invitee.skipped_keys(), stored);
        chains.push(m);
        // A round trip turns the inviter's ratchet: its next messages start a new chain.
        let back = send(&mut p.invitee, b"back", &mut p.rng);
        p.inviter.decrypt(&back, &mut p.rng).unwrap();
    }
    // The state with a full store survives storage.
    let bytes = p.invitee.to_bytes();
    p.invitee = Session::from_bytes(&bytes).unwrap();
    assert_eq!(p.invitee.to_bytes().as_slice(), bytes.as_slice());

    // Chain 0: all keys pruned, and with them the chain's header key.
    for env in &chains[0][..600] {
        assert_rejected(&mut p.invitee, env, Error::HeaderUndecryptable, &mut p.rng);
    }
    // Chain 1: the oldest 100 pruned; the chain's header key is still known.
    for env in &chains[1][..100] {
        assert_rejected(&mut p.invitee, env, Error::MessageReplayed, &mut p.rng);
    }
    // Everything younger is still there, in any order.
    let mut kept = 0;
    for (c, chain) in chains.iter().enumerate().skip(1) {
        let first_kept = if c == 1 { 100 } else { 0 };
        // The last message of each chain was delivered in the loop above.
        for i in (first_kept..chain.len() - 1).rev() {
            assert_eq!(
                p.invitee.decrypt(&chain[i], &mut p.rng).unwrap(),
                (i as u32).to_be_bytes()
            );
            kept += 1;
        }
    }
    assert_eq!(kept, 2000);
    assert_eq!(p.invitee.skipped_keys(), 0);
}
