//! Per-contact isolation in normal mode (the profile's `isolation` setting), in the
//! simulated world: subscriptions, fetches, acknowledgements and deposits travel on one
//! connection per relationship and window of epochs, a long catch-up is spread in time,
//! and messages still arrive (pushed) both ways.
//!
//! Each property here was seen to fail: see the comment on each test for how.
#![cfg(test)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::World;
use super::tests::{link, ok, pair, received, send};
use super::traffic_tests::{presented_by_connection, set_high_risk};
use crate::api::{Command, Response, Status};
use crate::engine::{EPOCH_SECONDS, LANE_EPOCHS, Time};

fn set_isolation(w: &mut World, n: usize, on: bool) {
    ok(w.command(n, Command::SetIsolation { on }));
}

fn status(w: &mut World, n: usize) -> Status {
    match ok(w.command(n, Command::Status)) {
        Response::Status(s) => s,
        other => panic!("{other:?}"),
    }
}

/// What one run saw: the world, Carol's node, where the checked part of the log starts, the
/// epochs it covers, where Alice's restart starts in the log, and when.
struct Run {
    w: World,
    carol: usize,
    from: usize,
    /// Where the checked part of the deposits' record starts.
    deposited_from: usize,
    epochs: std::ops::Range<u64>,
    restart: usize,
    restart_at: Time,
    /// Messages Alice had from Carol [`CAUGHT_UP_WITHIN`] after her restart.
    caught_up: usize,
}

/// How soon after a restart the spread catch-up must be done.
const CAUGHT_UP_WITHIN: Duration = Duration::from_secs(300);

/// Alice with two contacts, Bob and Carol, in normal mode with isolation `on` for all
/// three: five hours of messages both ways (each checked to arrive, pushed, within the
/// world's settling time), then Alice off for 20 hours while Carol writes, and three hours
/// after Alice's restart.
fn run(on: bool) -> Run {
    let mut w = pair(67, 1, 0);
    let carol = w.add_node(0);
    let l = link(&mut w, 0, hush_crypto::InviteKind::OneTime, Some("carol"));
    ok(w.command(
        carol,
        Command::Accept {
            link: l,
            name: "alice".into(),
        },
    ));
    w.settle();
    for (n, to) in [(1, "alice"), (carol, "alice"), (0, "bob"), (0, "carol")] {
        send(&mut w, n, to, "first 👋");
    }
    w.settle();
    w.run_for(Duration::from_secs(120));
    let first_epoch = w.now.epoch();
    if on {
        for n in [0, 1, carol] {
            set_isolation(&mut w, n, true);
        }
        w.settle();
    }
    let from = w.presented.len();
    let deposited_from = w.deposited.len();
    for i in 0..10 {
        send(&mut w, 0, "bob", &format!("第{i}条 to bob 📨"));
        send(&mut w, 0, "carol", &format!("رسالة {i} إلى كارول"));
        send(&mut w, 1, "alice", &format!("bob {i} 🗞️"));
        w.settle();
        // Pushed on the lanes' subscriptions: nothing else fetches in normal mode.
        assert_eq!(received(&mut w, 1, "alice").len(), i + 2, "bob, round {i}");
        assert_eq!(
            received(&mut w, carol, "alice").len(),
            i + 2,
            "carol, round {i}"
        );
        assert_eq!(received(&mut w, 0, "bob").len(), i + 2, "alice, round {i}");
        w.run_for(Duration::from_secs(1800));
    }
    w.crash(0);
    for i in 0..4 {
        send(
            &mut w,
            carol,
            "alice",
            &format!("while you were away {i} — 不在"),
        );
        w.run_for(Duration::from_secs(5 * EPOCH_SECONDS));
    }
    let restart = w.log.len();
    let restart_at = w.now;
    w.start_node(0);
    w.run_for(CAUGHT_UP_WITHIN);
    let caught_up = received(&mut w, 0, "carol").len();
    w.run_for(Duration::from_secs(3 * EPOCH_SECONDS));
    let epochs = first_epoch.saturating_sub(2)..w.now.epoch() + 3;
    Run {
        w,
        carol,
        from,
        deposited_from,
        epochs,
        restart,
        restart_at,
        caught_up,
    }
}

/// With isolation on in normal mode, no connection of anyone ever presents (in a fetch, an
/// acknowledgement or a subscription) the mailboxes of two relationships, or of more than
/// `LANE_EPOCHS` (2) epochs of one, or deposits to two relationships' mailboxes, over five
/// hours of messages and a 20-hour catch-up;
/// messages are pushed both ways as without it; the catch-up is spread over steps seconds
/// apart and the lanes' connections do not open at one moment. With isolation off the
/// same check finds Alice's one connection presenting both relationships: it can fail.
///
/// Measured (seed 67): 68 connections presented secrets, 48 of them subscriptions, 16
/// deposited; within
/// 5 minutes of the restart Alice opened 30 connections, at most 4 in one second, the last
/// 51 s after the restart, and fetched in three steps (0.8-4.7 s, 25-30 s, 47-51 s).
///
/// Seen to fail: with `refresh_subscriptions` isolating only in high-risk mode (the lanes'
/// subscriptions left on the shared connection): "node 0, connection 1: {(1, ..), (2, ..)}";
/// with the catch-up's next step never scheduled (`catch_up_at` not set): 2 of Carol's 5
/// messages within 5 minutes of the restart; with `LANE_OPEN_JITTER` at zero: "13
/// connections opened in one second"; with normal mode's deposits given no lane: "connection
/// 1 deposited to {(1, 1), (2, 1)}" (Bob and Carol).
#[test]
fn normal_mode_isolation_keeps_relationships_apart_and_messages_flowing() {
    let Run {
        mut w,
        carol,
        from,
        deposited_from,
        epochs,
        restart,
        restart_at,
        caught_up,
    } = run(true);
    assert_eq!(
        caught_up, 5,
        "Carol's messages within 5 minutes of the restart"
    );
    let s = status(&mut w, 0);
    assert!(s.isolation && s.isolation_setting && !s.high_risk, "{s:?}");
    let mut checked = 0;
    let mut subscribed_lanes = 0;
    for n in [0, 1, carol] {
        for (conn, owners) in presented_by_connection(&w, n, from, epochs.clone()) {
            let contacts: BTreeSet<i64> = owners.iter().map(|o| o.0).collect();
            let windows: BTreeSet<u64> = owners.iter().map(|o| o.1).collect();
            assert_eq!(contacts.len(), 1, "node {n}, connection {conn}: {owners:?}");
            assert!(
                windows.len() as u64 <= LANE_EPOCHS,
                "node {n}, connection {conn}: {owners:?}"
            );
            checked += 1;
        }
        subscribed_lanes += w.log[from..]
            .iter()
            .filter(|o| o.kind == "subscribe" && w.connection_node.get(&o.connection) == Some(&n))
            .map(|o| o.connection)
            .collect::<BTreeSet<_>>()
            .len();
    }
    // Deposits: each connection deposits to one relationship's mailboxes only (whose they
    // are, the recipients' stores say).
    let deposit_lanes = deposits_by_connection(&w, &[0, 1, carol], deposited_from, epochs.clone());
    for (conn, to) in &deposit_lanes {
        assert_eq!(to.len(), 1, "connection {conn} deposited to {to:?}");
    }
    eprintln!(
        "connections that presented secrets: {checked}; that subscribed: {subscribed_lanes}; \
         that deposited: {}",
        deposit_lanes.len()
    );
    assert!(
        deposit_lanes.len() > 10,
        "{} deposit connections",
        deposit_lanes.len()
    );
    assert!(checked > 30, "{checked} connections presented secrets");
    assert!(
        subscribed_lanes > 20,
        "{subscribed_lanes} connections subscribed"
    );
    let got = received(&mut w, 0, "carol");
    assert_eq!(
        got[1..],
        (0..4)
            .map(|i| format!("while you were away {i} — 不在"))
            .collect::<Vec<_>>()
    );
    // After the restart: when each of Alice's connections opened, and when the old epochs
    // were fetched.
    let mut opened: BTreeMap<u64, u64> = BTreeMap::new();
    for o in &w.log[restart..] {
        if w.connection_node.get(&o.connection) == Some(&0) {
            opened.entry(o.connection).or_insert(o.at.unix_millis());
        }
    }
    let mut per_second: BTreeMap<u64, u64> = BTreeMap::new();
    for at in opened.values() {
        *per_second.entry(at / 1000).or_default() += 1;
    }
    let burst = per_second.values().max().copied().unwrap_or(0);
    let fetch_times: Vec<u64> = w.log[restart..]
        .iter()
        .filter(|o| o.kind == "fetch" && w.connection_node.get(&o.connection) == Some(&0))
        .map(|o| o.at.unix_millis() - restart_at.unix_millis())
        .filter(|ms| *ms < CAUGHT_UP_WITHIN.as_millis() as u64)
        .collect();
    let first_minutes: Vec<u64> = opened
        .values()
        .map(|at| at - restart_at.unix_millis())
        .filter(|ms| *ms < CAUGHT_UP_WITHIN.as_millis() as u64)
        .collect();
    eprintln!(
        "within 5 minutes of the restart: {} connections opened, at most {burst} in one second, \
         the last {} ms after the restart; {} fetches at (ms) {fetch_times:?}",
        first_minutes.len(),
        first_minutes.iter().max().unwrap(),
        fetch_times.len(),
    );
    assert!(burst <= 6, "{burst} connections opened in one second");
    // 20 epochs missed: three steps of at most 8 old epochs, 5 to 30 s apart.
    assert!(
        *fetch_times.iter().max().unwrap() >= 10_000,
        "the catch-up was not spread: {fetch_times:?}"
    );
    // Without isolation: one subscription connection holds both relationships.
    let Run {
        w,
        from,
        deposited_from,
        epochs,
        ..
    } = run(false);
    let widest = presented_by_connection(&w, 0, from, epochs.clone())
        .into_values()
        .map(|owners| owners.iter().map(|o| o.0).collect::<BTreeSet<_>>().len())
        .max()
        .unwrap();
    assert_eq!(
        widest, 2,
        "without isolation a connection presents both relationships"
    );
    let widest = deposits_by_connection(&w, &[0], deposited_from, epochs)
        .into_values()
        .map(|to| to.len())
        .max()
        .unwrap();
    assert_eq!(
        widest, 2,
        "without isolation one connection deposits to Bob and Carol"
    );
}

/// For the nodes `senders`: each connection's recipients (node, contact id there) among
/// the mailboxes it deposited to, over epochs `epochs`.
fn deposits_by_connection(
    w: &World,
    senders: &[usize],
    from: usize,
    epochs: std::ops::Range<u64>,
) -> BTreeMap<u64, BTreeSet<(usize, i64)>> {
    let mut whose = BTreeMap::new();
    for (n, node) in w.nodes.iter().enumerate() {
        let Some(engine) = node.engine.as_ref() else {
            continue;
        };
        let now = w.node_now(n).unix_secs();
        for (id, session, _) in engine.store().db().contact_sessions().unwrap() {
            for e in epochs.clone() {
                for (_, secret) in session.receive_mailboxes(e, now) {
                    whose.insert(secret.mailbox_id(), (n, id.0));
                }
            }
        }
    }
    let mut out: BTreeMap<u64, BTreeSet<(usize, i64)>> = BTreeMap::new();
    for (conn, mailbox) in &w.deposited[from..] {
        if w.connection_node
            .get(conn)
            .is_some_and(|n| senders.contains(n))
            && let Some(to) = whose.get(mailbox)
        {
            out.entry(*conn).or_default().insert(*to);
        }
    }
    out
}

/// The setting is stored (a restart keeps it), high-risk mode isolates whatever it says,
/// and turning it off while high-risk mode is on only changes what normal mode will do.
/// Seen to fail with `isolating` reading the setting alone (high-risk mode with the setting
/// off reported `isolation: false`).
#[test]
fn isolation_is_kept_and_high_risk_always_isolates() {
    let mut w = pair(5, 1, 0);
    let s = status(&mut w, 0);
    assert!(
        !s.isolation && !s.isolation_setting,
        "off by default: {s:?}"
    );
    set_isolation(&mut w, 0, true);
    w.crash(0);
    w.start_node(0);
    let s = status(&mut w, 0);
    assert!(s.isolation && s.isolation_setting, "kept: {s:?}");
    set_isolation(&mut w, 0, false);
    set_high_risk(&mut w, 0, true);
    let s = status(&mut w, 0);
    assert!(s.isolation && !s.isolation_setting && s.high_risk, "{s:?}");
    set_high_risk(&mut w, 0, false);
    let s = status(&mut w, 0);
    assert!(!s.isolation, "{s:?}");
    send(&mut w, 0, "bob", "still there? ✓");
    w.settle();
    assert_eq!(
        received(&mut w, 1, "alice").last().unwrap(),
        "still there? ✓"
    );
}

/// With isolation on in normal mode, a relay that goes down and comes back (forgetting every
/// subscription) loses nothing: what was queued meanwhile on both sides arrives once it is
/// back, through the lanes' new subscriptions and the catch-up the relay's return starts
/// (the profile's own connection reports it), and what is sent afterwards is pushed as
/// before. Seen to fail with the profile's own connection left out while lanes hold the
/// relationships: after the outage "and up again" found 0 relays up (nothing that
/// reports the relay was open).
#[test]
fn normal_mode_isolation_survives_a_relay_restart() {
    let mut w = pair(71, 1, 0);
    send(&mut w, 0, "bob", "早上好 ☀️");
    send(&mut w, 1, "alice", "صباح الخير");
    w.settle();
    for n in [0, 1] {
        set_isolation(&mut w, n, true);
        // A fresh run: it knows no relay yet, so only what isolation opens is open.
        w.crash(n);
        w.start_node(n);
    }
    w.settle();
    assert_eq!(
        status(&mut w, 0).relays_up,
        1,
        "the profile's own connection is up"
    );
    w.relay_down(0);
    w.settle();
    assert_eq!(status(&mut w, 1).relays_up, 0, "and reports the relay down");
    let during: Vec<String> = (0..3)
        .map(|i| format!("during the outage {i} — 停机"))
        .collect();
    for text in &during {
        send(&mut w, 1, "alice", text);
    }
    send(&mut w, 0, "bob", "are you there? 🤔");
    w.run_for(Duration::from_secs(120));
    w.relay_up(0);
    w.run_for(Duration::from_secs(600));
    assert_eq!(status(&mut w, 1).relays_up, 1, "and up again");
    assert_eq!(received(&mut w, 0, "bob")[1..], during[..]);
    assert_eq!(received(&mut w, 1, "alice")[1..], ["are you there? 🤔"]);
    send(&mut w, 1, "alice", "back 🔁");
    w.settle();
    assert_eq!(received(&mut w, 0, "bob").last().unwrap(), "back 🔁");
}
