//! Engine behaviour of a relationship's life in the simulated world: accepting links that
//! cannot make a new relationship, retiring invites, deleting and blocking contacts, and the
//! order of what was queued. Each test says how it was seen to fail.
#![cfg(test)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

use std::time::Duration;

use hush_crypto::InviteKind;

use super::World;
use super::tests::{START, contacts, history, link, ok, pair, received, send};
use crate::api::Command;
use crate::error::Error;

fn accept(w: &mut World, n: usize, link: &str, name: &str) -> crate::Result<crate::Response> {
    w.command(
        n,
        Command::Accept {
            link: link.into(),
            name: name.into(),
        },
    )
}

/// A profile accepting its own invite, or a link it already accepted (the same one-time
/// link twice, the same contact address twice), gets a clear error and nothing is
/// committed. (Seen to fail before: each accept succeeded and made another contact.)
#[test]
fn own_invites_and_links_accepted_twice_are_refused() {
    let mut w = World::new(21, START, 1);
    let a = w.add_node(0);
    let b = w.add_node(0);
    let one_time = link(&mut w, a, InviteKind::OneTime, Some("bob"));
    let address = link(&mut w, a, InviteKind::ContactAddress, None);
    for l in [&one_time, &address] {
        match accept(&mut w, a, l, "me") {
            Err(Error::OwnInvite) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(contacts(&mut w, a).is_empty());

    ok(accept(&mut w, b, &one_time, "alice"));
    ok(accept(&mut w, b, &address, "alice-tips"));
    w.settle();
    for (l, name) in [(&one_time, "alice-2"), (&address, "alice-tips-2")] {
        match accept(&mut w, b, l, name) {
            Err(Error::AlreadyContact) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(contacts(&mut w, b), vec!["alice", "alice-tips"]);
    // Alice's own invite, even used, is still hers.
    match accept(&mut w, a, &one_time, "me") {
        Err(Error::OwnInvite) => {}
        other => panic!("{other:?}"),
    }
}

/// Messages queued during an outage show in the order they were sent, on both sides, even
/// when a message written after the relay came back overtakes them. (Seen to fail before:
/// Bob's history read D, A, B, C.)
#[test]
fn messages_queued_in_an_outage_show_in_send_order() {
    let mut w = pair(22, 1, 0);
    // Bob is away: he fetches everything at once when he comes back, in the relay's order.
    w.crash(1);
    w.relay_down(0);
    for text in ["A", "B", "C"] {
        send(&mut w, 0, "bob", text);
    }
    // Retries back off while the relay is away: the next one is minutes ahead when it
    // returns, and D, written then, goes out first.
    w.run_for(Duration::from_secs(1800));
    w.relay_up(0);
    send(&mut w, 0, "bob", "D");
    w.run_for(Duration::from_secs(600));
    w.start_node(1);
    w.settle();
    assert_eq!(received(&mut w, 1, "alice"), vec!["A", "B", "C", "D"]);
    let mine: Vec<String> = history(&mut w, 0, "bob")
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(mine, vec!["A", "B", "C", "D"]);
}
