//! The relay pin is the relay's identity: a client given an address whose pin does not
//! match the relay's key must refuse to talk to it, keep the message queued, and deliver it
//! once the right address is used.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

use hush_e2e::{Home, Relay};

#[test]
fn a_wrong_pin_is_refused_and_nothing_is_lost() {
    let relay = Relay::start();
    let impostor = Relay::start();
    let home = Home::new();
    for p in ["alice", "bob"] {
        home.json(p, &["init"]);
    }
    // Alice's invites point at the impostor's host and port but carry the real relay's pin:
    // that is what a man in the middle who took over the address would face.
    let (pin, _) = relay.address.split_once('@').unwrap();
    let (_, impostor_host) = impostor.address.split_once('@').unwrap();
    let forged = format!("{pin}@{impostor_host}");
    home.json("alice", &["relay", "set", &forged]);
    let link = home.json("alice", &["invite", "--name", "bob"])["link"]
        .as_str()
        .unwrap()
        .to_string();
    let accepted = home.json("bob", &["accept", &link, "--name", "alice"]);
    assert_eq!(
        accepted["handshake"], "queued",
        "the client deposited to a relay whose key does not match the pin"
    );
    // Nothing reached Alice.
    let got = home.json("alice", &["recv"]);
    assert_eq!(got, serde_json::json!([]));
    assert_eq!(home.json("alice", &["contacts"]), serde_json::json!([]));

    // With the right address the same invite flow works end to end.
    home.json("alice", &["relay", "set", &relay.address]);
    let link = home.json("alice", &["invite", "--name", "carol"])["link"]
        .as_str()
        .unwrap()
        .to_string();
    home.json("carol", &["init"]);
    let accepted = home.json("carol", &["accept", &link, "--name", "alice"]);
    assert_eq!(accepted["handshake"], "on-relay");
    let sent = home.json("carol", &["send", "alice", "through the right relay"]);
    assert_eq!(sent["state"], "on-relay");
    let got = home.json("alice", &["recv"]);
    assert_eq!(got[0]["text"], "through the right relay");
    assert_eq!(got[0]["contact"], "carol");
}
