//! The `hush` CLI over the TCP transport and through SOCKS5 (the Tor path), and CLI commands
//! that close their connections: the real binary, a real `hush-relay` listening on QUIC and
//! TCP, real SQLCipher stores, and the test kit's SOCKS5 proxy, which records what it was
//! asked to connect to and with which username.
//!
//! Waiting is bounded polling for a state, never a timing threshold.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hush_testkit::socks::{Socks5Server, Target};
use hush_testkit::{HANG_GUARD, Home, Relay, messages, poll};

fn write_config(home: &Home, profile: &str, text: &str) {
    std::fs::write(home.profile_dir(profile).join("config.toml"), text).unwrap();
}

fn localhost() -> HashMap<String, IpAddr> {
    HashMap::from([("localhost".to_owned(), IpAddr::V4(Ipv4Addr::LOCALHOST))])
}

/// Polls the relay until it counts no open connection, then checks that every one was
/// closed by its client: none was left to the idle timeout or dropped without a close.
fn assert_all_closed(relay: &Relay, after: &str) {
    let none_open = poll(HANG_GUARD, Duration::from_millis(50), || {
        (relay.metric("hush_relay_connections_open") == 0).then_some(())
    });
    assert!(
        none_open.is_some(),
        "a connection stayed open after {after}"
    );
    for how in ["idle", "lost"] {
        let n = relay.metric(&format!(
            "hush_relay_connections_closed_total{{how=\"{how}\"}}"
        ));
        assert_eq!(n, 0, "connections ended {how} after {after}");
    }
    assert!(relay.metric("hush_relay_connections_closed_total{how=\"client\"}") > 0);
}

#[test]
fn messages_go_over_tcp_and_through_socks5_with_a_username_per_contact() {
    let relay = Relay::start();
    let port = relay.port();
    let home = Home::new();

    // jo (QUIC) and ed (TCP, directly) use the relay by its IP address.
    home.init("jo", Some(&relay));
    home.init("ed", None);
    write_config(&home, "ed", "transport = \"tcp\"\n");
    let v = home.hush("ed", &["relay", "set", relay.address()]).json();
    assert_eq!(v["relay"], relay.address(), "{v}");
    assert_all_closed(&relay, "relay set over TCP");

    // anon reaches everything through a SOCKS5 proxy and names its own relay by a host
    // name, which only the proxy resolves.
    let refusing = Socks5Server::start(localhost(), Some(5));
    let proxy = Socks5Server::start(localhost(), None);
    home.init("anon", None);
    write_config(&home, "anon", &format!("socks5 = \"{}\"\n", proxy.addr()));
    let by_name = relay.address().replace("127.0.0.1", "localhost");
    let v = home.hush("anon", &["relay", "set", &by_name]).json();
    assert_eq!(v["relay"], by_name.as_str(), "{v}");
    assert_eq!(
        proxy.requests().last().unwrap().target,
        Target::Name("localhost".into(), port),
        "the relay check sent the name to the proxy"
    );

    // jo and ed each invite anon.
    for inviter in ["jo", "ed"] {
        let link = home.invite(inviter, Some("anon"));
        assert_eq!(home.accept("anon", &link, inviter), "on-relay");
        assert_eq!(home.recv(inviter), vec![]);
        assert_eq!(home.recv("anon"), vec![]);
    }
    assert_eq!(
        home.send("ed", "anon", "وصلت الوثائق؟ 文件到了吗？"),
        "on-relay"
    );
    assert_all_closed(&relay, "hush send over TCP");
    assert_eq!(home.send("jo", "anon", "🕵️"), "on-relay");
    assert_all_closed(&relay, "hush send over QUIC");
    let got = home.recv("anon");
    assert!(
        got.contains(&("ed".into(), "وصلت الوثائق؟ 文件到了吗？".into())),
        "{got:?}"
    );
    assert!(got.contains(&("jo".into(), "🕵️".into())), "{got:?}");

    // With the proxy refusing, messages stay queued with a reason, and nothing reaches the
    // relay around the proxy.
    write_config(
        &home,
        "anon",
        &format!("socks5 = \"{}\"\n", refusing.addr()),
    );
    let before = relay.metric("hush_relay_connections_total");
    let long = "ا".repeat(3000);
    for (to, text) in [("jo", "x"), ("ed", long.as_str())] {
        let out = home.hush("anon", &["send", to, text]).run().ok();
        assert!(out.stdout.contains("SOCKS5 proxy"), "{}", out.stdout);
    }
    assert_eq!(relay.metric("hush_relay_connections_total"), before);
    let v = home.hush("anon", &["relay", "show"]).json();
    assert_eq!(v["state"], "proxy_failed", "{v}");

    // One run sends both: each contact's deposits on a connection with its own username,
    // the profile's own requests (fetch, acknowledge, subscribe) on another.
    write_config(&home, "anon", &format!("socks5 = \"{}\"\n", proxy.addr()));
    let seen = proxy.requests().len();
    assert_eq!(home.recv("anon"), vec![]);
    let run: Vec<_> = proxy.requests().split_off(seen);
    let users: HashSet<_> = run.iter().map(|r| r.username.clone()).collect();
    assert_eq!(run.len(), 3, "two contacts and the profile: {run:?}");
    assert_eq!(users.len(), 3, "one username per connection: {run:?}");
    for r in &run {
        // The relay's IP, as the invite gave it: sent as an address.
        assert_eq!(
            r.target,
            Target::Addr(SocketAddr::from(([127, 0, 0, 1], port)))
        );
        // An opaque token (32 hex digits), not a contact's name.
        assert!(
            r.username
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{r:?}"
        );
        assert_eq!(r.username.len(), 32, "{r:?}");
    }
    let jo = messages(&home.hush("jo", &["recv"]).json());
    assert_eq!(jo, vec![("anon".to_string(), "x".to_string())]);
    let ed = messages(&home.hush("ed", &["recv"]).json());
    assert_eq!(ed, vec![("anon".to_string(), long.clone())]);
    assert_all_closed(&relay, "hush recv");
}

/// The built-in relay is this machine's loopback: a profile set to TCP, or to a proxy that
/// is down, still reaches it (over QUIC), and two profiles talk at once. Seen to fail
/// (the handshake stayed queued) while the built-in relay was reached by the profile's
/// route.
#[test]
fn the_built_in_relay_is_reached_whatever_the_transport() {
    let home = Home::new();
    home.init("a", None);
    home.init("b", None);
    write_config(&home, "a", "transport = \"tcp\"\n");
    // A proxy nobody runs: the port was just released.
    let absent = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    write_config(&home, "b", &format!("socks5 = \"{absent}\"\n"));
    let link = home.invite("a", Some("b"));
    assert_eq!(home.accept("b", &link, "a"), "on-relay");
    assert_eq!(home.recv("a"), vec![]);
    assert_eq!(home.send("b", "a", "سلام 👋"), "on-relay");
    assert_eq!(
        home.recv("a"),
        vec![("b".to_string(), "سلام 👋".to_string())]
    );
}
