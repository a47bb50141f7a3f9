//! A relay address a client cannot use is refused where it enters: in an invite link (at
//! parse time, before anything is stored), in stored state, in a peer's mailbox move, and
//! from the caller. Before hush-crypto used hush-proto's one relay-address parser, such a
//! link was accepted and every later command on the profile failed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

mod common;

use common::*;
use hush_crypto::payload::Payload;
use hush_crypto::{Error, Invite, InviteKind, InviterSecrets, RelayAddress, Session};

/// Host bytes and port of every kind of unusable relay, with the rule each one breaks.
fn unusable() -> Vec<(&'static str, Vec<u8>, u16, &'static str)> {
    const NAME: &str = "host is not a DNS name or IP literal";
    vec![
        ("underscore", b"a_b".to_vec(), 4433, NAME),
        ("five_numbers", b"1.2.3.4.5".to_vec(), 4433, NAME),
        ("colon", b"x:y".to_vec(), 4433, NAME),
        ("empty", b"".to_vec(), 4433, NAME),
        ("too_long", over_long().into_bytes(), 4433, NAME),
        ("long_label", "a".repeat(64).into_bytes(), 4433, NAME),
        ("leading_hyphen", b"-relay.example".to_vec(), 4433, NAME),
        ("trailing_hyphen", b"relay-.example".to_vec(), 4433, NAME),
        ("bad_ipv6", b"[::g]".to_vec(), 4433, "invalid IPv6 literal"),
        (
            "unterminated_ipv6",
            b"[::1".to_vec(),
            4433,
            "unterminated IPv6 literal",
        ),
        (
            "port_zero",
            b"relay.example".to_vec(),
            0,
            "port must be 1..=65535",
        ),
        (
            "uppercase",
            b"Relay.Example".to_vec(),
            4433,
            "host is not in canonical form",
        ),
    ]
}

/// 254 bytes: one more than a DNS name may have.
fn over_long() -> String {
    format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(62))
}

fn relay_binary(pin: &[u8; 32], host: &[u8], port: u16) -> Vec<u8> {
    let len = u8::try_from(host.len()).unwrap();
    [&pin[..], &port.to_be_bytes(), &[len], host].concat()
}

/// The binary form of the relay the common fixtures use.
fn fixture_relay() -> Vec<u8> {
    relay().to_binary().unwrap()
}

/// Replaces the one occurrence of `from` after `start` in `bytes` by `to`.
fn splice(bytes: &[u8], start: usize, from: &[u8], to: &[u8]) -> (Vec<u8>, usize) {
    let at = start
        + bytes[start..]
            .windows(from.len())
            .position(|w| w == from)
            .expect("relay bytes not found");
    ([&bytes[..at], to, &bytes[at + from.len()..]].concat(), at)
}

/// An invite link with a relay of our choosing and a correct checksum.
fn link_with_relay(link: &str, relay: &[u8]) -> String {
    // version, kind, IK_B, SPK_B, drop id, stamp bits: 99 bytes; then the relay.
    edited_link(link, |body| {
        body.truncate(99);
        body.extend_from_slice(relay);
    })
}

#[test]
fn a_link_with_an_unusable_relay_is_refused_at_parse_time() {
    let mut rng = rng(40);
    let (secrets, _) = new_inviter(InviteKind::OneTime, &mut rng);
    let link = secrets.invite().unwrap().to_link();
    // The hand-built link is right when its relay is: same link back.
    assert_eq!(link_with_relay(&link, &fixture_relay()), link);
    for (name, host, port, rule) in unusable() {
        let bad = link_with_relay(&link, &relay_binary(&[9; 32], &host, port));
        assert_eq!(
            Invite::parse(&bad).unwrap_err(),
            Error::UnusableRelay(rule),
            "{name}"
        );
    }
    // The message names the rule, never the host.
    let e = Invite::parse(&link_with_relay(&link, &relay_binary(&[9; 32], b"a_b", 1)));
    let text = e.unwrap_err().to_string();
    assert_eq!(
        text,
        "relay address is not usable: host is not a DNS name or IP literal"
    );
}

#[test]
fn stored_state_with_an_unusable_relay_is_refused() {
    let p = established(41);
    let relay = fixture_relay();
    for session in [&p.inviter, &p.invitee] {
        let state = session.to_bytes();
        assert!(Session::from_bytes(&state).is_ok());
        // The send route's relay, then the receive route's.
        let mut start = 0;
        for _route in 0..2 {
            for (name, host, port, _) in unusable() {
                let bad = relay_binary(&[9; 32], &host, port);
                let (bad_state, _) = splice(&state, start, &relay, &bad);
                assert_eq!(
                    Session::from_bytes(&bad_state).unwrap_err(),
                    Error::InvalidState("bad relay"),
                    "{name}"
                );
            }
            let (_, at) = splice(&state, start, &relay, &relay);
            start = at + relay.len();
        }
    }
    let mut rng = rng(42);
    let (secrets, _) = new_inviter(InviteKind::ContactAddress, &mut rng);
    let bytes = secrets.to_bytes();
    assert!(InviterSecrets::from_bytes(&bytes).is_ok());
    for (name, host, port, _) in unusable() {
        let (bad, _) = splice(&bytes, 0, &relay, &relay_binary(&[9; 32], &host, port));
        assert_eq!(
            InviterSecrets::from_bytes(&bad).unwrap_err(),
            Error::InvalidState("bad relay"),
            "{name}"
        );
    }
}

#[test]
fn a_mailbox_move_to_an_unusable_relay_is_refused() {
    let mut p = established(43);
    let control = p.inviter.move_receive_mailbox(None, 0, &mut p.rng).unwrap();
    assert!(matches!(
        Payload::decode(&control).unwrap(),
        Payload::MailboxMove(_)
    ));
    for (name, host, port, rule) in unusable() {
        let bad = relay_binary(&[9; 32], &host, port);
        let (bad_control, _) = splice(&control, 0, &fixture_relay(), &bad);
        // Sent through a real session, as a peer would.
        let env = p.inviter.encrypt(&bad_control, &mut p.rng).unwrap();
        let payload = p.invitee.decrypt(&env, &mut p.rng).unwrap();
        assert_eq!(
            Payload::decode(&payload).unwrap_err(),
            Error::UnusableRelay(rule),
            "{name}"
        );
    }
}

#[test]
fn the_caller_cannot_hand_in_an_unusable_relay() {
    let mut rng = rng(44);
    let good = relay();
    for (name, host, port, rule) in unusable() {
        let bad = RelayAddress {
            host: hand_built_host(&host),
            port,
            ..good.clone()
        };
        assert_eq!(
            InviterSecrets::generate(InviteKind::OneTime, bad.clone(), &mut rng).unwrap_err(),
            Error::UnusableRelay(rule),
            "{name}"
        );
        let mut p = established(45);
        let before = p.inviter.to_bytes();
        assert_eq!(
            p.inviter
                .move_receive_mailbox(Some(bad), 0, &mut p.rng)
                .unwrap_err(),
            Error::UnusableRelay(rule),
            "{name}"
        );
        assert_eq!(p.inviter.to_bytes().as_slice(), before.as_slice(), "{name}");
    }
}

/// A host as a caller might build it by hand (bypassing the parser).
fn hand_built_host(host: &[u8]) -> hush_proto::Host {
    let text = String::from_utf8(host.to_vec()).unwrap();
    match text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        Some(v6) => match v6.parse() {
            Ok(ip) => hush_proto::Host::Ip(ip),
            Err(_) => hush_proto::Host::Name(text),
        },
        None => hush_proto::Host::Name(text),
    }
}

#[test]
fn usable_relays_still_round_trip_everywhere() {
    let mut rng = rng(46);
    for text in [
        "hush://CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk@127.0.0.1:1",
        "hush://CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk@[2001:db8::1]:65535",
        "hush://CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk@RELAY.example:4433",
    ] {
        let addr: RelayAddress = text.parse().unwrap();
        let secrets =
            InviterSecrets::generate(InviteKind::OneTime, addr.clone(), &mut rng).unwrap();
        let invite = Invite::parse(&secrets.invite().unwrap().to_link()).unwrap();
        assert_eq!(invite.relay(), &addr);
        let session = invite.accept(&mut rng).unwrap();
        let session = Session::from_bytes(&session.to_bytes()).unwrap();
        assert_eq!(session.deposit_target(0).0, &addr);
        let again = InviterSecrets::from_bytes(&secrets.to_bytes()).unwrap();
        assert_eq!(again.relay(), &addr);
    }
}
