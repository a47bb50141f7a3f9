//! Handshake and session behaviour end to end, without any network.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

mod common;

use common::*;
use hush_crypto::handshake::InitOutcome;
use hush_crypto::mailbox::epoch_of;
use hush_crypto::payload::Payload;
use hush_crypto::{Error, InviteKind, Session, Target};

#[test]
fn one_time_invite_full_flow_with_early_messages() {
    let mut rng = rng(1);
    let (mut secrets, invite) = new_inviter(InviteKind::OneTime, &mut rng);
    let mut alice = invite.accept(&mut rng).unwrap();
    assert!(alice.awaiting_reply());
    assert!(!alice.post_quantum());

    // The invitee writes three times before the inviter is online.
    let early: Vec<_> = (0..3)
        .map(|i| send(&mut alice, format!("early {i}").as_bytes(), &mut rng))
        .collect();
    // They arrive out of order.
    let (mut bob, first) = expect_new(secrets.handle_init(&early[2], &mut rng).unwrap());
    assert_eq!(first, b"early 2");
    for (i, env) in [(0, &early[0]), (1, &early[1])] {
        match secrets.handle_init(env, &mut rng).unwrap() {
            InitOutcome::Existing(opened) => {
                assert_eq!(opened.handshake_id(), bob.handshake_id());
                assert_eq!(
                    bob.handle_init(&opened, &mut rng).unwrap(),
                    format!("early {i}").as_bytes()
                );
            }
            InitOutcome::New { .. } => panic!("second relationship from one handshake"),
        }
    }
    assert_eq!(bob.handshake_id(), alice.handshake_id());
    assert_eq!(bob.safety_number(), alice.safety_number());

    // Reply; the invitee leaves the init phase and the PQ secret gets mixed in.
    let reply = send(&mut bob, b"reply", &mut rng);
    assert_eq!(alice.decrypt(&reply, &mut rng).unwrap(), b"reply");
    assert!(!alice.awaiting_reply());
    assert!(alice.post_quantum());
    assert!(!bob.post_quantum());
    let env = send(&mut alice, b"after", &mut rng);
    assert_eq!(bob.decrypt(&env, &mut rng).unwrap(), b"after");
    assert!(bob.post_quantum());

    for round in 0..5 {
        let e = send(&mut bob, format!("b{round}").as_bytes(), &mut rng);
        assert_eq!(
            alice.decrypt(&e, &mut rng).unwrap(),
            format!("b{round}").as_bytes()
        );
        let e = send(&mut alice, format!("a{round}").as_bytes(), &mut rng);
        assert_eq!(
            bob.decrypt(&e, &mut rng).unwrap(),
            format!("a{round}").as_bytes()
        );
    }
}

#[test]
fn replayed_first_message_never_creates_a_second_relationship() {
    let mut rng = rng(2);
    let (mut secrets, invite) = new_inviter(InviteKind::ContactAddress, &mut rng);
    let mut alice = invite.accept(&mut rng).unwrap();
    let env = send(&mut alice, b"hi", &mut rng);
    let (mut bob, _) = expect_new(secrets.handle_init(&env, &mut rng).unwrap());
    assert_eq!(secrets.accepted_count(), 1);
    for _ in 0..3 {
        match secrets.handle_init(&env, &mut rng).unwrap() {
            InitOutcome::Existing(opened) => {
                assert_eq!(
                    bob.handle_init(&opened, &mut rng),
                    Err(Error::MessageReplayed)
                );
            }
            InitOutcome::New { .. } => panic!("replay created a relationship"),
        }
    }
    assert_eq!(secrets.accepted_count(), 1);
    // Also after the inviter's secrets went through storage.
    let mut restored = hush_crypto::InviterSecrets::from_bytes(&secrets.to_bytes()).unwrap();
    assert!(matches!(
        restored.handle_init(&env, &mut rng).unwrap(),
        InitOutcome::Existing(_)
    ));
}

#[test]
fn one_time_invite_refuses_a_second_invitee() {
    let mut rng = rng(3);
    let (mut secrets, invite) = new_inviter(InviteKind::OneTime, &mut rng);
    let mut alice = invite.accept(&mut rng).unwrap();
    let mut carol = invite.accept(&mut rng).unwrap();
    let a = send(&mut alice, b"a", &mut rng);
    let c = send(&mut carol, b"c", &mut rng);
    expect_new(secrets.handle_init(&a, &mut rng).unwrap());
    assert_eq!(
        secrets.handle_init(&c, &mut rng).unwrap_err(),
        Error::InviteAlreadyUsed
    );
    assert_eq!(secrets.invite().unwrap_err(), Error::InviteAlreadyUsed);
}

#[test]
fn contact_address_makes_separate_unlinkable_relationships() {
    let mut rng = rng(4);
    let (mut secrets, invite) = new_inviter(InviteKind::ContactAddress, &mut rng);
    let mut s1 = invite.accept(&mut rng).unwrap();
    let mut s2 = invite.accept(&mut rng).unwrap();
    let e1 = send(&mut s1, b"one", &mut rng);
    let e2 = send(&mut s2, b"two", &mut rng);
    let (mut j1, p1) = expect_new(secrets.handle_init(&e1, &mut rng).unwrap());
    let (mut j2, p2) = expect_new(secrets.handle_init(&e2, &mut rng).unwrap());
    assert_eq!((p1.as_slice(), p2.as_slice()), (&b"one"[..], &b"two"[..]));
    assert_ne!(j1.handshake_id(), j2.handshake_id());
    assert_ne!(s1.safety_number(), s2.safety_number());
    let r1 = send(&mut j1, b"r1", &mut rng);
    let r2 = send(&mut j2, b"r2", &mut rng);
    assert_eq!(s1.decrypt(&r1, &mut rng).unwrap(), b"r1");
    assert_eq!(s2.decrypt(&r2, &mut rng).unwrap(), b"r2");
    // Each source's session cannot read the other's messages.
    assert_eq!(s1.decrypt(&r2, &mut rng), Err(Error::HeaderUndecryptable));
    let now = 1_800_000_000;
    let epoch = epoch_of(now);
    let m1 = s1.receive_mailboxes(epoch, now)[0].1.mailbox_id();
    let m2 = s2.receive_mailboxes(epoch, now)[0].1.mailbox_id();
    assert_ne!(m1, m2);
}

#[test]
fn mailboxes_match_between_the_two_sides_and_rotate() {
    let mut p = established(5);
    let now = 1_800_000_000;
    let e = epoch_of(now);
    let (_, to_inviter) = p.invitee.deposit_target(now);
    let fetch = &p.inviter.receive_mailboxes(e, now)[0].1;
    assert_eq!(Target::Mailbox(fetch.mailbox_id()), to_inviter);
    let (_, next_hour) = p.invitee.deposit_target(now + 3600);
    assert_ne!(to_inviter, next_hour);

    // Moving the inviter's receive direction.
    let control = p
        .inviter
        .move_receive_mailbox(None, now, &mut p.rng)
        .unwrap();
    let env = p.inviter.encrypt(&control, &mut p.rng).unwrap();
    let payload = p.invitee.decrypt(&env, &mut p.rng).unwrap();
    let Payload::MailboxMove(mv) = Payload::decode(&payload).unwrap() else {
        panic!("expected a mailbox move")
    };
    p.invitee.apply_peer_mailbox_move(&mv);
    let (_, moved) = p.invitee.deposit_target(now);
    assert_ne!(moved, to_inviter);
    let fetch = p.inviter.receive_mailboxes(e, now);
    assert_eq!(
        fetch.len(),
        2,
        "old root is still fetched for in-flight envelopes"
    );
    assert_eq!(Target::Mailbox(fetch[0].1.mailbox_id()), moved);
    assert_eq!(Target::Mailbox(fetch[1].1.mailbox_id()), to_inviter);
    let later = now + hush_crypto::session::RETIRED_ROOT_SECONDS + 1;
    assert_eq!(p.inviter.receive_mailboxes(epoch_of(later), later).len(), 1);
}

#[test]
fn state_survives_serialisation_mid_conversation() {
    let mut p = established(6);
    let e1 = send(&mut p.inviter, b"one", &mut p.rng);
    let e2 = send(&mut p.inviter, b"two", &mut p.rng);
    assert_eq!(p.invitee.decrypt(&e2, &mut p.rng).unwrap(), b"two");
    let bytes = p.invitee.to_bytes();
    let mut restored = Session::from_bytes(&bytes).unwrap();
    assert_eq!(restored.to_bytes().as_slice(), bytes.as_slice());
    assert_eq!(restored.skipped_keys(), 1);
    assert_eq!(restored.decrypt(&e1, &mut p.rng).unwrap(), b"one");
    let back = send(&mut restored, b"three", &mut p.rng);
    assert_eq!(p.inviter.decrypt(&back, &mut p.rng).unwrap(), b"three");
}

#[test]
fn damaged_state_is_rejected_not_misread() {
    let p = established(7);
    let bytes = p.invitee.to_bytes();
    for cut in [0, 1, 10, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            Session::from_bytes(&bytes[..cut]).is_err(),
            "truncated at {cut}"
        );
    }
    let mut v = bytes.to_vec();
    v[0] = 99;
    assert_eq!(
        Session::from_bytes(&v).unwrap_err(),
        Error::UnsupportedStateVersion(99)
    );
    let mut v = bytes.to_vec();
    v.push(0);
    assert!(Session::from_bytes(&v).is_err());
}

#[test]
fn failed_decryption_changes_nothing() {
    let mut p = established(8);
    let env = send(&mut p.inviter, b"x", &mut p.rng);
    let before = p.invitee.to_bytes();
    let mut bad = env.as_bytes().to_vec();
    bad[4000] ^= 1;
    let bad = hush_crypto::Envelope::from_slice(&bad).unwrap();
    assert_eq!(
        p.invitee.decrypt(&bad, &mut p.rng),
        Err(Error::BodyAuthFailed)
    );
    assert_eq!(p.invitee.to_bytes().as_slice(), before.as_slice());
    assert_eq!(p.invitee.decrypt(&env, &mut p.rng).unwrap(), b"x");
}

#[test]
fn capacity_is_enforced_and_reported() {
    let mut p = established(9);
    // 3999-byte body: flags, the post-quantum block (1184 + 1088), length, payload.
    let cap = p.inviter.payload_capacity();
    assert_eq!(cap, 1724);
    assert_eq!(p.invitee.payload_capacity(), 1724);
    assert_eq!(accepted(9).invitee.payload_capacity(), 2675);
    let err = p
        .inviter
        .encrypt(&vec![0; cap + 1], &mut p.rng)
        .unwrap_err();
    assert_eq!(
        err,
        Error::PayloadTooLong {
            len: cap + 1,
            capacity: cap
        }
    );
    let env = p.inviter.encrypt(&vec![7; cap], &mut p.rng).unwrap();
    assert_eq!(p.invitee.decrypt(&env, &mut p.rng).unwrap(), vec![7; cap]);
}

#[test]
fn late_messages_of_a_previous_chain_still_decrypt() {
    let mut p = established(10);
    let m: Vec<_> = (0..3)
        .map(|i| send(&mut p.invitee, format!("old {i}").as_bytes(), &mut p.rng))
        .collect();
    assert_eq!(p.inviter.decrypt(&m[0], &mut p.rng).unwrap(), b"old 0");
    let r = send(&mut p.inviter, b"turn", &mut p.rng);
    assert_eq!(p.invitee.decrypt(&r, &mut p.rng).unwrap(), b"turn");
    // The invitee's new chain announces PN = 3 (counting m[0..3] of its previous chain).
    let n = send(&mut p.invitee, b"new chain", &mut p.rng);
    assert_eq!(p.inviter.decrypt(&n, &mut p.rng).unwrap(), b"new chain");
    assert_eq!(p.inviter.skipped_keys(), 2);
    assert_eq!(p.inviter.decrypt(&m[2], &mut p.rng).unwrap(), b"old 2");
    assert_eq!(p.inviter.decrypt(&m[1], &mut p.rng).unwrap(), b"old 1");
    assert_eq!(p.inviter.skipped_keys(), 0);
}

/// An edit of a link body, and the error the inviter answers a handshake made from it.
type Edit = (fn(&mut Vec<u8>), Error);

/// Whoever carries a link (a messenger, a web page, a relay operator's mail) can edit it and
/// fix the unkeyed checksum: point it at another relay, port or pin, swap the inviter's key
/// or the kind. The invitee cannot tell; the inviter refuses the handshake with
/// `LinkMismatch`, keeps its invite unused, and the genuine link still works. Tested with
/// contact addresses (the published kind) and one-time invites.
#[test]
fn an_edited_link_fails_the_handshake_at_the_inviter() {
    let mut rng = rng(50);
    for kind in [InviteKind::ContactAddress, InviteKind::OneTime] {
        let (mut secrets, invite) = new_inviter(kind, &mut rng);
        let link = invite.to_link();
        // IK_B and SPK_B key the init seal (with D): an envelope made with an edited key does
        // not open (HandshakeUndecryptable); every other edit opens and fails the link hash.
        let edits: [Edit; 7] = [
            (|b| b[98] ^= 0x01, Error::LinkMismatch), // the drop's stamp difficulty
            (|b| b[99..131].fill(0x66), Error::LinkMismatch), // relay pin: another relay
            (
                |b| b[131..133].copy_from_slice(&443u16.to_be_bytes()),
                Error::LinkMismatch,
            ), // port
            (
                |b| {
                    // host: "relay.example" becomes "relay.exampla"
                    let last = b.len() - 1;
                    b[last] = b'a';
                },
                Error::LinkMismatch,
            ),
            (|b| b[1] ^= 0x03, Error::LinkMismatch), // kind: one-time <-> contact address
            (|b| b[20] ^= 0x80, Error::HandshakeUndecryptable), // IK_B
            (|b| b[50] ^= 0x01, Error::HandshakeUndecryptable), // SPK_B
        ];
        for (edit, refusal) in edits {
            let edited = edited_link(&link, edit);
            let parsed = hush_crypto::Invite::parse(&edited).unwrap();
            let mut invitee = parsed.accept(&mut rng).unwrap();
            for text in ["来源保护", "مرحبا", "🕵️‍♀️", ""] {
                let env = send(&mut invitee, text.as_bytes(), &mut rng);
                let before = secrets.to_bytes();
                assert_eq!(secrets.handle_init(&env, &mut rng).unwrap_err(), refusal);
                assert_eq!(secrets.to_bytes().as_slice(), before.as_slice());
            }
        }
        assert_eq!(secrets.accepted_count(), 0);
        let mut genuine = hush_crypto::Invite::parse(&link)
            .unwrap()
            .accept(&mut rng)
            .unwrap();
        let env = send(&mut genuine, "真的".as_bytes(), &mut rng);
        let (_, first) = expect_new(secrets.handle_init(&env, &mut rng).unwrap());
        assert_eq!(first, "真的".as_bytes());
    }
}

/// A version 1 link is named as such, whether or not its checksum is the version 1 one.
#[test]
fn a_version_1_link_is_refused_as_unsupported() {
    let mut rng = rng(51);
    let (_, invite) = new_inviter(InviteKind::OneTime, &mut rng);
    let link = invite.to_link();
    let v1 = {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use sha2::Digest;
        let bin = URL_SAFE_NO_PAD
            .decode(link.strip_prefix("hush:").unwrap())
            .unwrap();
        let mut body = bin[..bin.len() - 4].to_vec();
        body[0] = 1;
        let sum = sha2::Sha256::new()
            .chain_update(b"hush/v1/invite-checksum")
            .chain_update(&body)
            .finalize();
        body.extend_from_slice(&sum[..4]);
        format!("hush:{}", URL_SAFE_NO_PAD.encode(body))
    };
    assert_eq!(
        hush_crypto::Invite::parse(&v1).unwrap_err(),
        Error::UnsupportedVersion(1)
    );
    let v1_with_v2_sum = edited_link(&link, |b| b[0] = 1);
    assert_eq!(
        hush_crypto::Invite::parse(&v1_with_v2_sum).unwrap_err(),
        Error::UnsupportedVersion(1)
    );
}

/// A sending state restored from a snapshot (a backup, a VM image, a crash before the
/// store committed) encrypts the same payload twice: the two bodies never share a
/// keystream, because each message's fresh header nonce salts its key derivation. The
/// receiver reads the first and refuses the second as a replay, its state unchanged; in
/// either order. The padding at the end of a body is encrypted zeros, so its ciphertext
/// is the keystream itself.
#[test]
fn a_restored_sending_state_never_reuses_a_keystream() {
    for first_delivered in [0, 1] {
        let mut p = established(52 + first_delivered as u64);
        let snapshot = p.inviter.to_bytes();
        let text = "回滚 rollback ↩︎".as_bytes();
        let mut copies = Vec::new();
        for seed in [1000, 1001] {
            let mut restored = Session::from_bytes(&snapshot).unwrap();
            let pad = restored.payload_capacity() - text.len();
            let env = restored.encrypt(text, &mut rng(seed)).unwrap();
            copies.push((env, pad));
        }
        let keystream = |i: usize| {
            let (env, pad) = &copies[i];
            let end = hush_crypto::ENVELOPE_LEN - 16;
            env.as_bytes()[end - pad..end].to_vec()
        };
        let (a, b) = (keystream(0), keystream(1));
        assert!(a.len() > 1000);
        let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        // Independent keystreams agree on about 1 byte in 256.
        assert!(same < a.len() / 64, "{same} of {} bytes agree", a.len());
        let (first, second) = (&copies[first_delivered].0, &copies[1 - first_delivered].0);
        assert_eq!(p.invitee.decrypt(first, &mut p.rng).unwrap(), text);
        assert_rejected(&mut p.invitee, second, Error::MessageReplayed, &mut p.rng);
    }
}

#[test]
fn the_link_names_the_drop_only_the_inviter_can_open() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut rng = rng(77);
    let secrets = hush_crypto::InviterSecrets::generate_with_bits(
        InviteKind::ContactAddress,
        relay(),
        21,
        &mut rng,
    )
    .unwrap();
    let invite = secrets.invite().unwrap();
    // The link's drop is the one the inviter's secret opens, with the difficulty chosen.
    assert_eq!(invite.drop(), secrets.drop());
    assert_eq!(invite.drop().bits, 21);
    assert_eq!(secrets.drop_secret().mailbox_id(), invite.drop().id);
    // The secret itself is nowhere in the link.
    let link = invite.to_link();
    let bin = URL_SAFE_NO_PAD
        .decode(link.strip_prefix("hush:").unwrap())
        .unwrap();
    assert!(
        !bin.windows(32)
            .any(|w| w == secrets.drop_secret().as_bytes())
    );
    // The invitee deposits to the drop until the inviter replies.
    let session = invite.accept(&mut rng).unwrap();
    assert_eq!(session.deposit_target(0).1, Target::Drop(invite.drop()));
    // A link asking for more work than anyone can do is refused (checksum fixed up).
    let edited = edited_link(&link, |b| b[98] = 41);
    assert_eq!(
        hush_crypto::Invite::parse(&edited).unwrap_err(),
        Error::InvalidInvite("stamp difficulty above 40 bits")
    );
    assert!(
        hush_crypto::InviterSecrets::generate_with_bits(InviteKind::OneTime, relay(), 41, &mut rng)
            .is_err()
    );
}

/// The text rules of a link (PROTOCOL.md 3.1), each checked: surrounding white space is
/// trimmed; padding, white space inside, the standard alphabet, set unused bits and another
/// case of the prefix are refused; base64url is case-sensitive.
#[test]
fn link_text_rules() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut rng = rng(91);
    let (_secrets, invite) = new_inviter(InviteKind::OneTime, &mut rng);
    let link = invite.to_link();
    let body = link.strip_prefix("hush:").unwrap();
    let parse = |s: &str| hush_crypto::Invite::parse(s).map(|i| i.to_link());
    assert_eq!(parse(&format!(" \t{link}\r\n")).unwrap(), link, "trimmed");
    let bad_b64 = Error::InvalidInvite("not base64url");
    // The last character carries 2 or 4 unused bits (the body is not a multiple of 3 bytes).
    assert_ne!(body.len() % 4, 0);
    for (what, text) in [
        ("padding", format!("{link}=")),
        (
            "a space inside",
            format!("hush:{} {}", &body[..100], &body[100..]),
        ),
        (
            "a line break inside",
            format!("hush:{}\n{}", &body[..100], &body[100..]),
        ),
        (
            "standard alphabet",
            format!("hush:{}", body.replace('-', "+").replace('_', "/")),
        ),
    ] {
        let has_changed = text.trim() != link;
        assert!(has_changed, "{what}");
        let e = parse(&text).unwrap_err();
        assert!(e == bad_b64 || e == Error::InviteChecksum, "{what}: {e:?}");
    }
    // Set unused bits in the last character: another character, same bytes before it.
    let last = body.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let v = alphabet.find(last).unwrap();
    let flipped = alphabet.chars().nth(v ^ 1).unwrap();
    let unused = format!("hush:{}{flipped}", &body[..body.len() - 1]);
    assert!(
        URL_SAFE_NO_PAD
            .decode(unused.strip_prefix("hush:").unwrap())
            .is_err(),
        "the decoder refuses set unused bits"
    );
    assert_eq!(parse(&unused).unwrap_err(), bad_b64);
    // Case matters: the prefix, and the base64url itself.
    assert_eq!(
        parse(&format!("HUSH:{body}")).unwrap_err(),
        Error::InvalidInvite("missing hush: prefix")
    );
    assert_ne!(
        parse(&format!("hush:{}", body.to_ascii_uppercase())).ok(),
        Some(link)
    );
}
