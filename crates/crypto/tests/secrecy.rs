//! Secrecy properties: forward secrecy of read and sent messages, recovery from a stolen
//! state after one ratchet round trip, no key bytes in `Debug` output, and envelopes that
//! look alike whatever they carry.
//!
//! Several tests play an attacker who holds a stolen serialised state. Where the public API
//! alone cannot show that a key is *gone* (rather than refused by a counter), the attacker
//! rewires the stolen bytes ([`RatchetFields`]) to try every key derivable from them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use common::*;
use hush_crypto::handshake::InitOutcome;
use hush_crypto::mailbox::epoch_of;
use hush_crypto::payload::{Payload, fragment};
use hush_crypto::{ENVELOPE_LEN, Envelope, Error, InviteKind, Session};

// --- a stolen state, taken apart ---------------------------------------------------------

/// A session's serialised state split at the ratchet's keys and counters (state version 1:
/// `Session::to_bytes` writes 130 bytes of role, transcript, ids and identity keys, then
/// `Ratchet::encode` writes the fields below, then the rest). `parse` checks that the
/// split reproduces the bytes, so a layout change fails loudly instead of testing nothing.
#[derive(Clone)]
struct RatchetFields {
    head: Vec<u8>,
    dhs: [u8; 32],
    dhr: Option<[u8; 32]>,
    rk: [u8; 32],
    cks: Option<[u8; 32]>,
    ckr: Option<[u8; 32]>,
    hks: Option<[u8; 32]>,
    hkr: Option<[u8; 32]>,
    nhks: [u8; 32],
    nhkr: [u8; 32],
    ns: u32,
    nr: u32,
    pn: u32,
    tail: Vec<u8>,
}

impl RatchetFields {
    const HEAD_LEN: usize = 1 + 1 + 32 + 32 + 32 + 32;

    fn parse(bytes: &[u8]) -> Self {
        assert_eq!(bytes[0], 2, "state version changed: update RatchetFields");
        let mut r = Cursor {
            bytes,
            at: Self::HEAD_LEN,
        };
        let fields = Self {
            head: bytes[..Self::HEAD_LEN].to_vec(),
            dhs: r.key(),
            dhr: r.opt(),
            rk: r.key(),
            cks: r.opt(),
            ckr: r.opt(),
            hks: r.opt(),
            hkr: r.opt(),
            nhks: r.key(),
            nhkr: r.key(),
            ns: r.u32(),
            nr: r.u32(),
            pn: r.u32(),
            tail: bytes[r.at..].to_vec(),
        };
        assert_eq!(
            fields.encode(),
            bytes,
            "layout changed: update RatchetFields"
        );
        fields
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = self.head.clone();
        out.extend(self.dhs);
        let opt = |out: &mut Vec<u8>, v: &Option<[u8; 32]>| match v {
            None => out.push(0),
            Some(k) => {
                out.push(1);
                out.extend(k);
            }
        };
        opt(&mut out, &self.dhr);
        out.extend(self.rk);
        for v in [&self.cks, &self.ckr, &self.hks, &self.hkr] {
            opt(&mut out, v);
        }
        out.extend(self.nhks);
        out.extend(self.nhkr);
        for n in [self.ns, self.nr, self.pn] {
            out.extend(n.to_be_bytes());
        }
        out.extend(&self.tail);
        out
    }

    fn session(&self) -> Session {
        Session::from_bytes(&self.encode()).unwrap()
    }

    /// The same keys with the receive counter set to `nr`: the attacker may start the
    /// stolen receiving chain key at any position.
    fn with_nr(&self, nr: u32) -> Session {
        let mut f = self.clone();
        f.nr = nr;
        f.session()
    }

    /// The sender's own chain rewired as a receiving chain: sending chain key, sending
    /// header key and own ratchet public key in the receiving slots, counter at `nr`.
    fn mirror(&self, nr: u32) -> Session {
        let mut f = self.clone();
        f.dhr = Some(x25519_dalek::x25519(
            self.dhs,
            x25519_dalek::X25519_BASEPOINT_BYTES,
        ));
        f.ckr = self.cks;
        f.hkr = self.hks;
        f.nr = nr;
        f.session()
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn key(&mut self) -> [u8; 32] {
        let k = self.bytes[self.at..self.at + 32].try_into().unwrap();
        self.at += 32;
        k
    }

    fn opt(&mut self) -> Option<[u8; 32]> {
        self.at += 1;
        match self.bytes[self.at - 1] {
            0 => None,
            1 => Some(self.key()),
            _ => panic!("bad option tag: update RatchetFields"),
        }
    }

    fn u32(&mut self) -> u32 {
        let v = u32::from_be_bytes(self.bytes[self.at..self.at + 4].try_into().unwrap());
        self.at += 4;
        v
    }
}

// --- forward secrecy ---------------------------------------------------------------------

/// A copy of the receiver's state taken after it read a message opens neither that message
/// nor an earlier one of the chain, not even when the attacker restarts the stolen chain
/// key at any position; the copy is otherwise a working receiver (it opens what was not
/// read yet), which shows the refusals are not an artefact of a broken copy.
#[test]
fn a_receiver_snapshot_cannot_read_what_was_read() {
    let mut p = established(30);
    let m = send_numbered(&mut p.inviter, 0, 6, &mut p.rng);
    let read = [0usize, 1, 3]; // m2 is late, m4 and m5 are not read yet
    for &i in &read {
        p.invitee.decrypt(&m[i], &mut p.rng).unwrap();
    }
    let stolen = p.invitee.to_bytes();
    let mut copy = Session::from_bytes(&stolen).unwrap();
    for &i in &read {
        assert_rejected(&mut copy, &m[i], Error::MessageReplayed, &mut p.rng);
    }
    // Not read yet: the copy opens them (m2 from its skipped key, m4 from the chain).
    for i in [2usize, 4] {
        let mut c = copy.clone();
        assert_eq!(
            c.decrypt(&m[i], &mut p.rng).unwrap(),
            (i as u32).to_be_bytes()
        );
    }
    // The counter is not what protects read messages: from the stolen chain key, every
    // position gives a key that fails to authenticate them.
    let fields = RatchetFields::parse(&stolen);
    assert_eq!(fields.nr, 4);
    for &j in &read {
        for nr in 0..=j as u32 {
            let mut s = fields.with_nr(nr);
            assert_eq!(
                s.decrypt(&m[j], &mut p.rng),
                Err(Error::BodyAuthFailed),
                "message {j} opened from position {nr}"
            );
        }
    }

    // m2 arrives late and is read from its skipped key: afterwards that key is gone too.
    p.invitee.decrypt(&m[2], &mut p.rng).unwrap();
    let stolen = p.invitee.to_bytes();
    let mut copy = Session::from_bytes(&stolen).unwrap();
    assert_eq!(copy.skipped_keys(), 0);
    assert_rejected(&mut copy, &m[2], Error::MessageReplayed, &mut p.rng);
    let fields = RatchetFields::parse(&stolen);
    for nr in 0..=2 {
        assert_eq!(
            fields.with_nr(nr).decrypt(&m[2], &mut p.rng),
            Err(Error::BodyAuthFailed)
        );
    }

    // After a DH ratchet step, the read messages of the old chain stay unreadable; the two
    // unread ones (m4, m5) are kept as skipped keys and open, once each.
    let back = send(&mut p.invitee, b"back", &mut p.rng);
    p.inviter.decrypt(&back, &mut p.rng).unwrap();
    let next = send(&mut p.inviter, b"next", &mut p.rng);
    p.invitee.decrypt(&next, &mut p.rng).unwrap();
    let mut copy = Session::from_bytes(&p.invitee.to_bytes()).unwrap();
    assert_eq!(copy.skipped_keys(), 2);
    for env in &m[..4] {
        assert_rejected(&mut copy, env, Error::MessageReplayed, &mut p.rng);
    }
    for i in [4u32, 5] {
        assert_eq!(
            copy.decrypt(&m[i as usize], &mut p.rng).unwrap(),
            i.to_be_bytes()
        );
    }
    // With the old chain's last key gone, so is its header key.
    for env in &m {
        assert_rejected(&mut copy, env, Error::HeaderUndecryptable, &mut p.rng);
    }
}

/// A copy of the sender's state taken after sending opens none of what it sent. As it
/// comes, a session never receives its own direction, so the attacker rewires the stolen
/// sending chain as a receiving chain: that rewiring opens the next message the sender
/// sends (control), but from no position the messages sent before the theft.
#[test]
fn a_sender_snapshot_cannot_read_what_it_sent() {
    for seed in [31, 32] {
        let mut p = established(seed);
        // Seed 32: the invitee is the sender, on a chain it already used.
        let (sender, receiver) = if seed == 31 {
            (&mut p.inviter, &mut p.invitee)
        } else {
            (&mut p.invitee, &mut p.inviter)
        };
        let sent = send_numbered(sender, 0, 4, &mut p.rng);
        let stolen = sender.to_bytes();
        let mut copy = Session::from_bytes(&stolen).unwrap();
        for env in &sent {
            assert_rejected(&mut copy, env, Error::HeaderUndecryptable, &mut p.rng);
        }
        let fields = RatchetFields::parse(&stolen);
        let later = send(sender, b"later", &mut p.rng);
        assert_eq!(
            fields
                .mirror(fields.ns)
                .decrypt(&later, &mut p.rng)
                .unwrap(),
            b"later",
            "the rewired copy must be a working receiver of the sender's chain"
        );
        let first_n = fields.ns - 4;
        for (j, env) in sent.iter().enumerate() {
            for nr in 0..=first_n + j as u32 {
                assert_eq!(
                    fields.mirror(nr).decrypt(env, &mut p.rng),
                    Err(Error::BodyAuthFailed),
                    "sent message {j} opened from position {nr}"
                );
            }
        }
        // They were genuine messages: the peer reads all of them.
        for (i, env) in sent.iter().enumerate() {
            assert_eq!(
                receiver.decrypt(env, &mut p.rng).unwrap(),
                (i as u32).to_be_bytes()
            );
        }
        assert_eq!(receiver.decrypt(&later, &mut p.rng).unwrap(), b"later");
    }
}

// --- post-compromise recovery ------------------------------------------------------------

/// The attacker's copy of `victim`, kept current with every envelope the peer sends.
struct Eavesdropper {
    copy: Session,
    rng: rand_chacha::ChaCha20Rng,
}

impl Eavesdropper {
    fn steal(victim: &Session, seed: u64) -> Self {
        Self {
            copy: Session::from_bytes(&victim.to_bytes()).unwrap(),
            rng: rng(seed),
        }
    }

    fn read(&mut self, env: &Envelope) -> Result<Vec<u8>, Error> {
        let before = self.copy.to_bytes();
        let got = self.copy.decrypt(env, &mut self.rng);
        if got.is_err() {
            assert_eq!(self.copy.to_bytes().as_slice(), before.as_slice());
        }
        got
    }
}

/// Steals the victim's state, then runs: peer sends (a new ratchet key), victim replies
/// with a ratchet key made after the theft, peer receives it and sends again. Before that
/// round trip closes, the copy reads everything the peer sends; afterwards nothing.
fn stolen_state_heals(
    victim: &mut Session,
    peer: &mut Session,
    rng: &mut rand_chacha::ChaCha20Rng,
) {
    let mut eve = Eavesdropper::steal(victim, 666);
    let m1 = send(peer, b"before 1", rng);
    assert_eq!(victim.decrypt(&m1, rng).unwrap(), b"before 1");
    assert_eq!(
        eve.read(&m1).unwrap(),
        b"before 1",
        "the theft gave nothing"
    );
    let reply = send(victim, b"reply", rng);
    // Sent before the reply arrived: still on the peer's old chain.
    let m2 = send(peer, b"before 2", rng);
    assert_eq!(victim.decrypt(&m2, rng).unwrap(), b"before 2");
    assert_eq!(eve.read(&m2).unwrap(), b"before 2");
    assert_eq!(peer.decrypt(&reply, rng).unwrap(), b"reply");

    // The round trip closed: the peer's new chain mixes in the victim's fresh key.
    let m3 = send(peer, b"after", rng);
    assert_eq!(victim.decrypt(&m3, rng).unwrap(), b"after");
    // The header key of the peer's new chain was derived one step earlier (as in Signal's
    // header encryption), so the copy still opens the header but no longer the body.
    assert_eq!(eve.read(&m3), Err(Error::BodyAuthFailed));
    for round in 0..3 {
        let text = format!("later {round}");
        let m = send(peer, text.as_bytes(), rng);
        assert_eq!(victim.decrypt(&m, rng).unwrap(), text.as_bytes());
        assert!(
            eve.read(&m).is_err(),
            "the copy read a message after healing"
        );
        let r = send(victim, b"ack", rng);
        peer.decrypt(&r, rng).unwrap();
    }
    // One step later even the headers are closed to the copy.
    let m = send(peer, b"last", rng);
    assert_eq!(victim.decrypt(&m, rng).unwrap(), b"last");
    assert_eq!(eve.read(&m), Err(Error::HeaderUndecryptable));
}

#[test]
fn a_stolen_invitee_state_heals_after_one_round_trip() {
    let mut p = established(33);
    // The inviter turned its ratchet on the invitee's last message: its next message
    // starts a new chain, so the invitee's reply will carry a key made after the theft.
    stolen_state_heals(&mut p.invitee, &mut p.inviter, &mut p.rng);
}

#[test]
fn a_stolen_inviter_state_heals_after_one_round_trip() {
    let mut p = established(34);
    // Make the invitee turn its ratchet, so that its next message starts a new chain.
    let x = send(&mut p.inviter, b"x", &mut p.rng);
    p.invitee.decrypt(&x, &mut p.rng).unwrap();
    stolen_state_heals(&mut p.inviter, &mut p.invitee, &mut p.rng);
}

/// Contrast that shows what heals: if the victim's reply carries a ratchet key it made
/// *before* the theft (here the inviter's key for its unused sending chain), the copy
/// keeps reading after the same sequence of messages.
#[test]
fn healing_needs_a_ratchet_key_made_after_the_theft() {
    let mut p = established(35);
    let mut eve = Eavesdropper::steal(&p.inviter, 667);
    let m1 = send(&mut p.invitee, b"same chain", &mut p.rng);
    p.inviter.decrypt(&m1, &mut p.rng).unwrap();
    assert_eq!(eve.read(&m1).unwrap(), b"same chain");
    let reply = send(&mut p.inviter, b"reply with an old key", &mut p.rng);
    p.invitee.decrypt(&reply, &mut p.rng).unwrap();
    let m3 = send(&mut p.invitee, b"after", &mut p.rng);
    assert_eq!(p.inviter.decrypt(&m3, &mut p.rng).unwrap(), b"after");
    assert_eq!(eve.read(&m3).unwrap(), b"after");
}

// --- no key bytes in Debug output --------------------------------------------------------

/// Finds secret bytes in text: as hex (any case), as Rust's decimal list (`[1, 2, 3` in
/// `{:?}` and `{:#?}` layout), and as base64 or base64url at any alignment.
struct LeakDetector {
    /// 8-byte windows of secret material.
    windows: HashSet<[u8; 8]>,
    /// Base64 (standard and url-safe) of every 6-byte run of secret material that starts a
    /// base64 group: any base64 text holding 8 secret bytes contains one of these.
    base64: HashSet<String>,
}

impl LeakDetector {
    fn new(secrets: &[Vec<u8>]) -> Self {
        // Structural bytes (tags, counters, zero padding) are not secret: skip windows
        // with fewer than 5 distinct values (a random 8-byte window has that with
        // probability below 1e-6).
        let distinct = |w: &[u8]| w.iter().collect::<HashSet<_>>().len();
        let mut windows = HashSet::new();
        let mut base64 = HashSet::new();
        for s in secrets {
            for w in s.windows(8).filter(|w| distinct(w) >= 5) {
                windows.insert(<[u8; 8]>::try_from(w).unwrap());
            }
            for shift in 0..3.min(s.len()) {
                for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                    let enc = engine.encode(&s[shift..]);
                    // Characters 4g..4g+8 encode exactly bytes 3g..3g+6 after the shift.
                    let mut g = 0;
                    while shift + 3 * g + 6 <= s.len() {
                        let six = &s[shift + 3 * g..shift + 3 * g + 6];
                        if distinct(six) >= 4 {
                            base64.insert(enc[4 * g..4 * g + 8].to_string());
                        }
                        g += 1;
                    }
                }
            }
        }
        Self { windows, base64 }
    }

    /// What leaked, if anything, described without repeating the secret.
    fn find(&self, text: &str) -> Option<&'static str> {
        let b = text.as_bytes();
        // Hex: any 16 hex digits decode to a window.
        for i in 0..b.len().saturating_sub(15) {
            let chunk = &text[i..];
            if chunk.len() >= 16 && chunk.as_bytes()[..16].iter().all(u8::is_ascii_hexdigit) {
                let w: [u8; 8] = hex::decode(chunk[..16].to_ascii_lowercase())
                    .unwrap()
                    .try_into()
                    .unwrap();
                if self.windows.contains(&w) {
                    return Some("hex");
                }
            }
        }
        // Decimal lists: numbers 0..=255 separated by a comma and white space.
        let mut run: Vec<u8> = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i].is_ascii_digit() {
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                match text[start..i].parse::<u8>() {
                    Ok(v) => run.push(v),
                    Err(_) => run.clear(),
                }
                if run.len() >= 8 {
                    let w: [u8; 8] = run[run.len() - 8..].try_into().unwrap();
                    if self.windows.contains(&w) {
                        return Some("decimal list");
                    }
                }
                let sep = b[i..]
                    .iter()
                    .take_while(|c| **c == b',' || c.is_ascii_whitespace())
                    .count();
                let comma = b[i..i + sep].iter().filter(|c| **c == b',').count();
                if comma != 1 {
                    run.clear();
                }
                i += sep;
            } else {
                run.clear();
                i += 1;
            }
        }
        // Base64 / base64url.
        if text.len() >= 8 {
            for i in 0..=text.len() - 8 {
                if text.is_char_boundary(i)
                    && text.is_char_boundary(i + 8)
                    && self.base64.contains(&text[i..i + 8])
                {
                    return Some("base64");
                }
            }
        }
        None
    }
}

/// The detector must be able to fail: it finds secrets printed in each form.
#[test]
fn the_leak_detector_finds_every_form() {
    let mut r = rng(41);
    let mut secret = vec![0u8; 64];
    rand_core::Rng::fill_bytes(&mut r, &mut secret);
    let d = LeakDetector::new(std::slice::from_ref(&secret));
    let leaks = [
        hex::encode(&secret[3..20]),
        hex::encode_upper(&secret[10..19]),
        format!("Key {{ k: {:?} }}", &secret[5..30]),
        format!("{:#?}", &secret[1..12]),
        format!("x={}", STANDARD_NO_PAD.encode(&secret[7..40])),
        format!("x={}y", URL_SAFE_NO_PAD.encode(&secret[2..11])),
        base64::engine::general_purpose::STANDARD.encode(&secret[30..39]),
    ];
    for (i, leak) in leaks.iter().enumerate() {
        assert!(d.find(leak).is_some(), "form {i} not detected: {leak}");
    }
    // No false alarm on what the crate prints, nor on neighbouring bytes that are not secret.
    let mut other = secret.clone();
    other.iter_mut().for_each(|b| *b ^= 0x5a);
    assert_eq!(
        d.find(&format!("{:?} {}", other, hex::encode(&other))),
        None
    );
    assert_eq!(
        d.find("Session { role: Inviter, identity: #1a2b3c4d, .. }"),
        None
    );
}

/// Every type a client might log prints no 8-byte window of any secret: serialised
/// session states (all keys, skipped keys, mailbox roots), inviter secrets, invite link
/// bytes (invite secret) and fetch secrets.
#[test]
fn debug_output_holds_no_key_bytes() {
    let mut rng = rng(42);
    let now = 1_800_000_000;
    let (mut secrets, invite) = new_inviter(InviteKind::OneTime, &mut rng);
    let (contact, contact_invite) = new_inviter(InviteKind::ContactAddress, &mut rng);
    let unused_secrets = secrets.clone();
    let mut invitee = invite.accept(&mut rng).unwrap();
    let awaiting = invitee.clone();
    let init_env = send(&mut invitee, b"hello", &mut rng);
    let outcome_new = secrets.handle_init(&init_env, &mut rng).unwrap();
    let InitOutcome::New { session, .. } = &outcome_new else {
        panic!("expected a new relationship")
    };
    let mut inviter = (**session).clone();
    let outcome_existing = secrets.handle_init(&init_env, &mut rng).unwrap();
    let InitOutcome::Existing(opened) = &outcome_existing else {
        panic!("expected the existing relationship")
    };
    let mut errors = vec![inviter.handle_init(opened, &mut rng).unwrap_err()];

    // Skipped keys on the invitee, a mailbox move with a retired root on the inviter.
    let m = send_numbered(&mut inviter, 0, 3, &mut rng);
    invitee.decrypt(&m[2], &mut rng).unwrap();
    let control = inviter.move_receive_mailbox(None, now, &mut rng).unwrap();
    let moved = send(&mut inviter, &control, &mut rng);
    let payload = Payload::decode(&invitee.decrypt(&moved, &mut rng).unwrap()).unwrap();
    let Payload::MailboxMove(mv) = &payload else {
        panic!("expected a mailbox move")
    };
    invitee.apply_peer_mailbox_move(mv);
    assert!(invitee.skipped_keys() > 0);

    let mut bad = init_env.as_bytes().to_vec();
    bad[100] ^= 1;
    let bad = Envelope::from_slice(&bad).unwrap();
    errors.push(invitee.decrypt(&bad, &mut rng).unwrap_err());
    errors.push(secrets.handle_init(&bad, &mut rng).unwrap_err());
    errors.push(hush_crypto::envelope::parse(&[1, 2, 3]).unwrap_err());
    errors.push(Session::from_bytes(&invitee.to_bytes()[..100]).unwrap_err());
    errors.push(hush_crypto::Invite::parse("hush:AAAA").unwrap_err());
    errors.push(inviter.encrypt(&vec![0; 5000], &mut rng).unwrap_err());
    errors.extend([
        Error::BodyAuthFailed,
        Error::MessageReplayed,
        Error::TooManySkipped(1001),
        Error::MalformedBody("x"),
        Error::MissingKemCiphertext,
        Error::InvalidPeerKey,
        Error::InviteChecksum,
        Error::InviteAlreadyUsed,
        Error::MalformedPayload("x"),
        Error::UnsupportedStateVersion(9),
        Error::UnsupportedVersion(9),
        Error::InvalidOperation("x"),
    ]);

    let epoch = epoch_of(now);
    let mut fetch = vec![
        secrets.drop_secret().clone(),
        contact.drop_secret().clone(),
        unused_secrets.drop_secret().clone(),
    ];
    for s in [&inviter, &invitee, &awaiting] {
        fetch.extend(s.receive_mailboxes(epoch, now).into_iter().map(|(_, f)| f));
    }

    // Secret material.
    let link_bytes = |link: String| {
        URL_SAFE_NO_PAD
            .decode(link.strip_prefix("hush:").unwrap())
            .unwrap()
    };
    let mut material: Vec<Vec<u8>> = [&inviter, &invitee, &awaiting, session.as_ref()]
        .iter()
        .map(|s| s.to_bytes().to_vec())
        .collect();
    material.extend(
        [&secrets, &unused_secrets, &contact]
            .iter()
            .map(|s| s.to_bytes().to_vec()),
    );
    material.push(link_bytes(invite.to_link()));
    material.push(link_bytes(contact_invite.to_link()));
    material.extend(fetch.iter().map(|f| f.as_bytes().to_vec()));
    material.push(control.clone());
    let detector = LeakDetector::new(&material);
    assert!(
        detector.windows.len() > 1000,
        "too little material to mean anything"
    );

    // What gets printed.
    let frags = fragment(7, &[0x42; 5000], 3996).unwrap();
    let frag_payload = Payload::decode(&frags[0]).unwrap();
    let Payload::Fragment(frag) = frag_payload.clone() else {
        panic!("expected a fragment")
    };
    let mut texts = Vec::new();
    macro_rules! print_all {
        ($($v:expr),* $(,)?) => {$(
            texts.push(format!("{:?}", $v));
            texts.push(format!("{:#?}", $v));
        )*};
    }
    print_all!(
        inviter,
        invitee,
        awaiting,
        secrets,
        unused_secrets,
        contact,
        invite,
        contact_invite,
        invite.relay(),
        init_env,
        moved,
        opened,
        outcome_existing,
        inviter.handshake_id(),
        inviter.safety_number(),
        invitee.deposit_target(now),
        fetch,
        fetch.iter().map(|f| f.mailbox_id()).collect::<Vec<_>>(),
        frag,
        frag_payload,
        payload,
        mv,
        errors,
        inviter.role(),
        invite.kind(),
    );
    texts.extend(errors.iter().map(ToString::to_string));
    for text in &texts {
        assert_eq!(detector.find(text), None, "secret bytes in: {text}");
    }
}

// --- uniform envelopes -------------------------------------------------------------------

const SAMPLES: usize = 64;
/// Bound for a chi-square statistic with 255 degrees of freedom (mean 255, standard
/// deviation 22.6): 400 is exceeded by chance with probability about 2e-8.
const CHI2_BOUND: f64 = 400.0;

fn histogram<'a>(bytes: impl IntoIterator<Item = &'a u8>) -> [u64; 256] {
    let mut h = [0u64; 256];
    for b in bytes {
        h[usize::from(*b)] += 1;
    }
    h
}

/// Chi-square of a histogram against the uniform distribution.
fn chi2_uniform(h: &[u64; 256]) -> f64 {
    let n: u64 = h.iter().sum();
    let e = n as f64 / 256.0;
    h.iter().map(|&o| (o as f64 - e).powi(2) / e).sum()
}

/// Chi-square test of homogeneity of two histograms (same total).
fn chi2_same(a: &[u64; 256], b: &[u64; 256]) -> f64 {
    a.iter()
        .zip(b)
        .filter(|(x, y)| **x + **y > 0)
        .map(|(&x, &y)| {
            let e = (x + y) as f64 / 2.0;
            ((x as f64 - e).powi(2) + (y as f64 - e).powi(2)) / e
        })
        .sum()
}

/// The largest chi-square over 256-byte blocks of the envelopes (same block, all samples):
/// catches structure confined to a region, such as a cleartext length field.
fn worst_block(envs: &[Envelope]) -> f64 {
    (0..ENVELOPE_LEN / 256)
        .map(|blk| {
            chi2_uniform(&histogram(
                envs.iter()
                    .flat_map(|e| &e.as_bytes()[blk * 256..(blk + 1) * 256]),
            ))
        })
        .fold(0.0, f64::max)
}

/// Positions that hold the same byte in every envelope.
fn fixed_positions(envs: &[Envelope]) -> Vec<usize> {
    (0..ENVELOPE_LEN)
        .filter(|&i| {
            envs.iter()
                .all(|e| e.as_bytes()[i] == envs[0].as_bytes()[i])
        })
        .collect()
}

/// Checks one class of envelopes; returns a description of the first failure.
fn looks_random(envs: &[Envelope]) -> Result<(), String> {
    let fixed = fixed_positions(envs);
    if !fixed.is_empty() {
        return Err(format!("fixed positions {fixed:?}"));
    }
    let all = chi2_uniform(&histogram(envs.iter().flat_map(|e| e.as_bytes())));
    if all > CHI2_BOUND {
        return Err(format!("byte histogram chi-square {all:.0}"));
    }
    let block = worst_block(envs);
    if block > CHI2_BOUND {
        return Err(format!("block chi-square {block:.0}"));
    }
    Ok(())
}

fn same_distribution(a: &[Envelope], b: &[Envelope]) -> f64 {
    chi2_same(
        &histogram(a.iter().flat_map(|e| e.as_bytes())),
        &histogram(b.iter().flat_map(|e| e.as_bytes())),
    )
}

/// Every envelope is 4096 bytes; envelopes of a 1-byte and of a full payload, init and
/// session kinds, all look like uniformly random bytes and like each other.
#[test]
fn envelopes_are_uniform_whatever_they_carry() {
    let mut p = established(44);
    let full = p.inviter.payload_capacity();
    assert_eq!(full, 1724);
    let mut session_kind = |len: usize| -> Vec<Envelope> {
        (0..SAMPLES)
            .map(|_| send(&mut p.inviter, &vec![b'A'; len], &mut p.rng))
            .collect()
    };
    let short = session_kind(1);
    let long = session_kind(full);

    let mut a = accepted(45);
    let init_full = a.invitee.payload_capacity();
    let mut init_kind = |len: usize| -> Vec<Envelope> {
        (0..SAMPLES)
            .map(|_| send(&mut a.invitee, &vec![b'A'; len], &mut a.rng))
            .collect()
    };
    let init_short = init_kind(1);
    let init_long = init_kind(init_full);
    assert!(a.invitee.awaiting_reply());

    let classes = [
        ("session, 1 byte", &short),
        ("session, full", &long),
        ("init, 1 byte", &init_short),
        ("init, full", &init_long),
    ];
    for (name, envs) in classes {
        assert!(envs.iter().all(|e| e.as_bytes().len() == ENVELOPE_LEN));
        if let Err(why) = looks_random(envs) {
            panic!("{name}: {why}");
        }
    }
    for (x, y) in [(0, 1), (2, 3), (0, 2), (1, 3)] {
        let chi2 = same_distribution(classes[x].1, classes[y].1);
        assert!(
            chi2 < CHI2_BOUND,
            "{} vs {}: chi-square {chi2:.0}",
            classes[x].0,
            classes[y].0
        );
    }

    // The checks can fail: envelopes with cleartext structure are caught.
    let tamper = |f: &dyn Fn(&mut [u8])| -> Vec<Envelope> {
        short
            .iter()
            .map(|e| {
                let mut b = e.as_bytes().to_vec();
                f(&mut b);
                Envelope::from_slice(&b).unwrap()
            })
            .collect()
    };
    let padding_in_clear = tamper(&|b| b[3000..].fill(0));
    assert!(looks_random(&padding_in_clear).is_err());
    assert!(same_distribution(&short, &padding_in_clear) > CHI2_BOUND);
    let length_in_clear = tamper(&|b| b[100..102].copy_from_slice(&1u16.to_be_bytes()));
    assert!(looks_random(&length_in_clear).is_err());
    let one_fixed = tamper(&|b| b[7] = 0x01);
    assert_eq!(fixed_positions(&one_fixed), vec![7]);
    // A tiny bias confined to a few bytes per envelope is found by the block test.
    let biased = tamper(&|b| b[1024..1040].fill(0xff));
    assert!(worst_block(&biased) > CHI2_BOUND);
}

/// `InitOutcome::New` carries the first payload; printing the outcome must not print it
/// (it may be a control message holding a mailbox root, or the user's words).
#[test]
fn init_outcome_debug_holds_no_payload() {
    let mut rng = rng(43);
    let (mut secrets, invite) = new_inviter(InviteKind::OneTime, &mut rng);
    let mut invitee = invite.accept(&mut rng).unwrap();
    // The invitee moves its receive mailbox before the inviter replied.
    let control = invitee
        .move_receive_mailbox(None, 1_800_000_000, &mut rng)
        .unwrap();
    let env = send(&mut invitee, &control, &mut rng);
    let outcome = secrets.handle_init(&env, &mut rng).unwrap();
    let detector = LeakDetector::new(&[invitee.to_bytes().to_vec(), control]);
    for text in [format!("{outcome:?}"), format!("{outcome:#?}")] {
        assert_eq!(detector.find(&text), None, "secret bytes in: {text}");
    }
}
