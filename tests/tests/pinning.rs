//! The relay pin is the relay's identity: a client given an address whose pin does not
//! match the relay's key must refuse to talk to it, keep the message queued, and deliver it
//! once the right address is used.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

use hush_testkit::{Home, Relay};

#[test]
fn a_wrong_pin_is_refused_and_nothing_is_lost() {
    let relay = Relay::start();
    let impostor = Relay::start();
    let home = Home::new();
    for p in ["alice", "bob"] {
        home.hush(p, &["init"]).json();
    }
    // Alice's invites point at the impostor's host and port but carry the real relay's pin:
    // that is what a man in the middle who took over the address would face.
    let (pin, _) = relay.address().split_once('@').unwrap();
    let (_, impostor_host) = impostor.address().split_once('@').unwrap();
    let forged = format!("{pin}@{impostor_host}");
    // `relay set` checks the relay and names the mismatch; --no-check sets it anyway.
    let out = home.hush("alice", &["relay", "set", &forged]).run().fails();
    assert_eq!(out.status.code(), Some(6), "{}", out.stderr);
    home.hush("alice", &["relay", "set", &forged, "--no-check"])
        .json();
    let link = home.hush("alice", &["invite", "--name", "bob"]).json()["link"]
        .as_str()
        .unwrap()
        .to_string();
    let accepted = home
        .hush("bob", &["accept", &link, "--name", "alice"])
        .json();
    assert_eq!(
        accepted["handshake"], "queued",
        "the client deposited to a relay whose key does not match the pin"
    );
    // Nothing reached Alice (whose commands warn that a relay could not be reached).
    let got = home.hush("alice", &["recv"]).json_allowing_warnings();
    assert_eq!(got, serde_json::json!([]));
    assert_eq!(
        home.hush("alice", &["contacts"]).json_allowing_warnings(),
        serde_json::json!([])
    );

    // With the right address the same invite flow works end to end.
    home.hush("alice", &["relay", "set", relay.address()])
        .json();
    let link = home.hush("alice", &["invite", "--name", "carol"]).json()["link"]
        .as_str()
        .unwrap()
        .to_string();
    home.hush("carol", &["init"]).json();
    let accepted = home
        .hush("carol", &["accept", &link, "--name", "alice"])
        .json();
    assert_eq!(accepted["handshake"], "on-relay");
    let sent = home
        .hush("carol", &["send", "alice", "through the right relay"])
        .json();
    assert_eq!(sent["state"], "on-relay");
    // (The invite to Bob still waits on the impostor's address: a warning again.)
    let got = home.hush("alice", &["recv"]).json_allowing_warnings();
    assert_eq!(got[0]["text"], "through the right relay");
    assert_eq!(got[0]["contact"], "carol");
}
