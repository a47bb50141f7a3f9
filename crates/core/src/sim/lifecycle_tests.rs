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

fn invites(w: &mut World, n: usize) -> Vec<crate::api::InviteInfo> {
    match ok(w.command(n, Command::Invites)) {
        crate::Response::Invites(i) => i,
        other => panic!("{other:?}"),
    }
}

/// Whether node `n` still watches the handshake drop of `link` on relay 0.
fn watches_invite(w: &World, n: usize, link: &str) -> bool {
    let invite = hush_crypto::Invite::parse(link).unwrap();
    w.relays[0].watches(n, &invite.drop().id)
}

/// Invites are retired: a revoked one, a one-time invite once its contact wrote from its own
/// mailbox, and a one-time invite nobody used for 7 days stop being watched and leave the
/// list; a contact address stays until revoked. (Seen to fail before: every invite ever
/// made stayed in the subscriptions and there was no list or revoke.)
#[test]
fn used_revoked_and_expired_invites_stop_being_watched() {
    let mut w = World::new(23, START, 1);
    let a = w.add_node(0);
    let b = w.add_node(0);
    let used = link(&mut w, a, InviteKind::OneTime, Some("bob"));
    let revoked = link(&mut w, a, InviteKind::ContactAddress, None);
    let address = link(&mut w, a, InviteKind::ContactAddress, None);
    w.settle();
    let list = invites(&mut w, a);
    assert_eq!(list.len(), 3);
    assert_eq!(list[0].name.as_deref(), Some("bob"));
    assert_eq!(list[0].kind, InviteKind::OneTime);
    assert_eq!(list[0].expires(), Some(START.unix_secs() + 7 * 24 * 3600));
    assert_eq!(list[1].expires(), None);
    for l in [&used, &revoked, &address] {
        assert!(watches_invite(&w, a, l));
    }

    ok(w.command(a, Command::RevokeInvite { id: list[1].id }));
    w.settle();
    assert!(!watches_invite(&w, a, &revoked));
    match w.command(a, Command::RevokeInvite { id: list[1].id }) {
        Err(Error::UnknownInvite) => {}
        other => panic!("{other:?}"),
    }

    // Bob accepts the one-time invite and writes: Alice's next fetch retires it.
    ok(accept(&mut w, b, &used, "alice"));
    w.settle();
    assert_eq!(invites(&mut w, a)[0].uses, 1);
    send(&mut w, b, "alice", "hi");
    w.settle();
    ok(w.command(a, Command::Sync));
    w.settle();
    assert_eq!(received(&mut w, a, "bob"), vec!["hi"]);
    assert!(!watches_invite(&w, a, &used));
    let left: Vec<i64> = invites(&mut w, a).iter().map(|i| i.id).collect();
    assert_eq!(left, vec![list[2].id]);

    // A one-time invite nobody uses expires after 7 days; the contact address stays.
    let unused = link(&mut w, a, InviteKind::OneTime, None);
    w.settle();
    assert!(watches_invite(&w, a, &unused));
    w.run_for(std::time::Duration::from_secs(7 * 24 * 3600 + 3600));
    w.settle();
    assert!(!watches_invite(&w, a, &unused));
    assert!(watches_invite(&w, a, &address));
    let left: Vec<i64> = invites(&mut w, a).iter().map(|i| i.id).collect();
    assert_eq!(left, vec![list[2].id]);
}

/// Deleting a contact removes it, its history and its mailboxes: what it sends afterwards
/// is never fetched. (Seen to fail before: there was no such command.)
#[test]
fn a_deleted_contact_is_gone_with_its_history_and_mailboxes() {
    let mut w = pair(24, 1, 0);
    send(&mut w, 1, "alice", "before");
    w.settle();
    assert_eq!(received(&mut w, 0, "bob"), vec!["before"]);
    ok(w.command(
        0,
        Command::DeleteContact {
            contact: "bob".into(),
        },
    ));
    assert!(contacts(&mut w, 0).is_empty());
    match w.command(
        0,
        Command::Messages {
            contact: "bob".into(),
            limit: 10,
        },
    ) {
        Err(Error::UnknownContact) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(w.relays[0].stored(), 0);
    send(&mut w, 1, "alice", "after");
    w.settle();
    ok(w.command(0, Command::Sync));
    w.settle();
    assert_eq!(
        w.relays[0].stored(),
        1,
        "Alice fetched a deleted contact's mailbox"
    );
    // The name is free again.
    let l = link(&mut w, 0, InviteKind::OneTime, Some("bob"));
    assert!(l.starts_with("hush:"));
}

/// A blocked contact stays in the list; what it sends is dropped (and acknowledged, so the
/// relay keeps nothing), it gets no receipts, and nothing can be sent to it until it is
/// unblocked. (Seen to fail before: there was no such command.)
#[test]
fn a_blocked_contact_is_kept_but_not_heard() {
    let mut w = pair(25, 1, 0);
    let block = |blocked| Command::SetBlocked {
        contact: "bob".into(),
        blocked,
    };
    ok(w.command(0, block(true)));
    let id = send(&mut w, 1, "alice", "let me in");
    w.settle();
    w.run_for(Duration::from_secs(60));
    w.settle();
    assert_eq!(contacts(&mut w, 0), vec!["bob"]);
    assert!(received(&mut w, 0, "bob").is_empty());
    assert_eq!(
        w.relays[0].stored(),
        0,
        "the blocked contact's envelope was left"
    );
    assert_eq!(
        super::tests::state_of(&mut w, 1, "alice", id),
        crate::api::DeliveryState::OnRelay,
        "a blocked contact got a receipt"
    );
    match w.command(
        0,
        Command::Send {
            contact: "bob".into(),
            text: "no".into(),
        },
    ) {
        Err(Error::InvalidArgument(_)) => {}
        other => panic!("{other:?}"),
    }
    ok(w.command(0, block(false)));
    send(&mut w, 1, "alice", "again");
    w.settle();
    assert_eq!(received(&mut w, 0, "bob"), vec!["again"]);
}
