//! Per-contact isolation in normal mode (`hush isolation on`), with the real binary, a real
//! `hush-relay` (QUIC and TCP), real SQLCipher stores and the test kit's SOCKS5 proxy,
//! which records each connection it was asked for and its username (through Tor, a
//! username is a circuit).
//!
//! Waiting is bounded polling for a state, never a timing threshold.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use hush_testkit::socks::Socks5Server;
use hush_testkit::{HANG_GUARD, Home, Relay, messages, poll};

fn write_config(home: &Home, profile: &str, text: &str) {
    std::fs::write(home.profile_dir(profile).join("config.toml"), text).unwrap();
}

/// How many windows of two epochs (hours) the current and the next epoch fall in now.
fn windows_now() -> usize {
    let epoch = hush_testkit::unix_now() / 3600;
    // Epochs 2k and 2k + 1 share a window: an odd epoch's next is in the next window.
    if epoch.is_multiple_of(2) { 1 } else { 2 }
}

/// The usernames of the connections the proxy was asked for since request `from`.
fn usernames(proxy: &Socks5Server, from: usize) -> Vec<String> {
    proxy.requests()[from..]
        .iter()
        .map(|r| r.username.clone())
        .collect()
}

/// Polls until `profile`, held by a running process, shows a received `text` from
/// `contact` in its history; panics with `what` if it never does.
fn wait_pushed(home: &Home, profile: &str, contact: &str, text: &str, what: &str) {
    let got = poll(HANG_GUARD, Duration::from_millis(200), || {
        home.history(profile, contact)
            .iter()
            .any(|m| m["outgoing"] == false && m["text"] == text)
            .then_some(())
    });
    assert!(
        got.is_some(),
        "{what}: {:?}",
        home.history(profile, contact)
    );
}

/// Polls `hush recv` on `profile` until it received `text` from `contact`.
fn wait_recv(home: &Home, profile: &str, contact: &str, text: &str, what: &str) {
    let mut seen = Vec::new();
    let got = poll(HANG_GUARD, Duration::from_millis(200), || {
        seen.extend(home.recv(profile));
        seen.iter()
            .any(|(c, t)| c == contact && t == text)
            .then_some(())
    });
    assert!(got.is_some(), "{what}: {seen:?}");
}

/// anon (through SOCKS5) has two contacts, jo and ed (QUIC, directly). With isolation off a
/// `hush recv` of anon's opens one connection (one username); with it on, one per contact and
/// window of epochs, plus the profile's own (which holds no contact's mailbox), each with a
/// username of its own: 3 or 5. Then anon holds the profile (`recv --wait`) with isolation
/// on: messages in Arabic, Chinese and emoji arrive both ways while it runs (no `recv`
/// asked of it: pushed on the lanes' subscriptions, or fetched on the lanes when the relay
/// comes back), before and after the relay restarts, and the lanes come back with the same
/// usernames. In high-risk mode `hush isolation off` is kept for normal mode and
/// isolation stays on.
///
/// Measured: the isolated `recv` opened 3 connections (the current and the next epoch in
/// one window); the holder opened 5 (its own, a fetch lane and a deposit lane per contact)
/// and after the relay's restart 5 again, with the same usernames; jo's message reached
/// anon 0.6 s after the relay was back, ed's 1.0 s (printed, not asserted).
///
/// Seen to fail: with `Engine::isolating` ignoring the setting (high-risk mode only):
/// `hush status` said `"isolation": false` with the setting on; with the relay's shared
/// connection dropped while lanes hold the relationships: the isolated `recv` opened 2
/// connections, not 3 (and nothing would report the relay down or up to catch up on).
#[test]
fn isolation_in_normal_mode_gives_each_contact_its_own_connections() {
    let mut relay = Relay::start();
    let home = Home::new();
    home.init("jo", Some(&relay));
    home.init("ed", Some(&relay));
    let proxy = Socks5Server::start(
        HashMap::from([("localhost".to_owned(), IpAddr::V4(Ipv4Addr::LOCALHOST))]),
        None,
    );
    home.init("anon", None);
    write_config(&home, "anon", &format!("socks5 = \"{}\"\n", proxy.addr()));
    let v = home.hush("anon", &["relay", "set", relay.address()]).json();
    assert_eq!(v["relay"], relay.address(), "{v}");
    for inviter in ["jo", "ed"] {
        let link = home.invite(inviter, Some("anon"));
        assert_eq!(home.accept("anon", &link, inviter), "on-relay");
        assert_eq!(home.recv(inviter), vec![]);
        assert_eq!(home.recv("anon"), vec![]);
    }

    // Off (the default): one connection for the profile's own requests.
    let v = home.hush("anon", &["status"]).json();
    assert_eq!(
        (&v["isolation"], &v["isolation_setting"]),
        (&false.into(), &false.into()),
        "{v}"
    );
    let from = proxy.requests().len();
    assert_eq!(home.recv("anon"), vec![]);
    let off = usernames(&proxy, from);
    assert_eq!(off.len(), 1, "without isolation: {off:?}");

    // On: the profile's own connection and one per contact and window, each its username.
    let v = home.hush("anon", &["isolation", "on"]).json();
    assert_eq!(v["isolation"], true, "{v}");
    let v = home.hush("anon", &["status"]).json();
    assert_eq!(
        (&v["isolation"], &v["isolation_setting"]),
        (&true.into(), &true.into()),
        "{v}"
    );
    let windows = windows_now();
    let from = proxy.requests().len();
    assert_eq!(home.recv("anon"), vec![]);
    let on = usernames(&proxy, from);
    let distinct: HashSet<&String> = on.iter().collect();
    eprintln!(
        "isolated recv: {} connections ({windows} window(s) each)",
        on.len()
    );
    if windows == windows_now() {
        assert_eq!(on.len(), 1 + 2 * windows, "{on:?}");
    } else {
        assert!([3, 5].contains(&on.len()), "{on:?}");
    }
    assert_eq!(
        distinct.len(),
        on.len(),
        "one username per connection: {on:?}"
    );
    assert!(
        !distinct.contains(&off[0]),
        "usernames are drawn anew per run"
    );
    for u in &on {
        assert_eq!(u.len(), 32, "{u}");
        assert!(u.bytes().all(|b| b.is_ascii_hexdigit()), "{u}");
    }
    for p in ["jo", "ed"] {
        home.hush(p, &["isolation", "on"]).json();
    }

    // anon holds the profile: what arrives is pushed on the lanes' subscriptions.
    let socket = home.profile_dir("anon").join("control.sock");
    let from = proxy.requests().len();
    let holder = home
        .hush("anon", &["--json", "recv", "--wait", "600"])
        .spawn();
    let served = poll(Duration::from_secs(60), Duration::from_millis(50), || {
        UnixStream::connect(&socket).ok().map(drop)
    });
    if served.is_none() {
        panic!("the holder never served: {:?}", holder.finish());
    }
    let to_anon = [
        ("jo", "مرحبا — 你好 anon 🕵️‍♀️"),
        ("ed", "文件到了吗？ وصلت الوثائق؟ 📨"),
    ];
    for (from_who, text) in to_anon {
        assert_eq!(home.send(from_who, "anon", text), "on-relay");
        wait_pushed(
            &home,
            "anon",
            from_who,
            text,
            "pushed to anon before the restart",
        );
    }
    for (to, text) in [("jo", "شكرا jo ✓"), ("ed", "谢谢 ed 👍🏽")] {
        home.hush("anon", &["send", to, text]).json();
        wait_recv(&home, to, "anon", text, "anon's reply before the restart");
    }
    let before = usernames(&proxy, from);

    // The relay restarts; the lanes reconnect and subscribe again by themselves.
    relay.terminate();
    relay.run();
    let restarted = std::time::Instant::now();
    let after_restart = proxy.requests().len();
    for (from_who, text) in [("jo", "بعد إعادة التشغيل — 重启以后 🔁"), ("ed", "e")]
    {
        assert_eq!(home.send(from_who, "anon", text), "on-relay");
        wait_pushed(
            &home,
            "anon",
            from_who,
            text,
            "pushed to anon after the restart",
        );
        // Printed, not asserted: the machine's load decides it.
        eprintln!(
            "{from_who}'s message reached anon {:?} after the restart",
            restarted.elapsed()
        );
    }
    for (to, text) in [
        ("jo", "still here 仍在 ✓"),
        ("ed", "ا".repeat(3000).as_str()),
    ] {
        home.hush("anon", &["send", to, text]).json();
        wait_recv(&home, to, "anon", text, "anon's reply after the restart");
    }
    let reconnected = usernames(&proxy, after_restart);
    eprintln!(
        "holder: {} connections before the restart ({} usernames), {} after",
        before.len(),
        before.iter().collect::<HashSet<_>>().len(),
        reconnected.len()
    );
    let known: HashSet<&String> = before.iter().collect();
    assert!(
        // The profile's own and at least one lane per contact.
        reconnected.iter().filter(|u| known.contains(u)).count() >= 3,
        "the profile's and each contact's lanes came back: {before:?} then {reconnected:?}"
    );
    drop(holder);
    let jo = messages(&home.hush("jo", &["recv"]).json());
    assert_eq!(jo, vec![], "nothing delivered twice");
    let out = home.hush("anon", &["status"]).run().ok();
    assert!(
        out.stdout
            .contains("isolation: on: a connection per contact"),
        "{}",
        out.stdout
    );

    // High-risk mode isolates whatever the setting says: "off" is kept for normal mode.
    home.hush("ed", &["high-risk", "on"]).json();
    let v = home.hush("ed", &["isolation", "off"]).json();
    assert_eq!(
        (&v["isolation"], &v["isolation_setting"]),
        (&true.into(), &false.into()),
        "{v}"
    );
    let out = home.hush("ed", &["isolation", "off"]).run().ok();
    assert!(
        out.stdout.contains("on while high-risk mode is"),
        "{}",
        out.stdout
    );
    let v = home.hush("ed", &["high-risk", "off"]).json();
    assert_eq!(
        (&v["isolation"], &v["mode"]),
        (&false.into(), &"normal".into()),
        "{v}"
    );
}
