//! Private routing through the `hush` CLI (docs/PROTOCOL.md II.4.2): two users on two real
//! relays, each relay on its own loopback address (127.0.0.2, 127.0.0.3) and each user's
//! connections leaving from their own (127.0.0.4, 127.0.0.5, `bind` in config.toml), so the
//! relays' test-hooks records show which addresses each relay saw. Real binaries, real
//! SQLCipher stores; waiting is bounded polling, never a timing threshold.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use hush_testkit::{Home, Hush, Relay, hooks};

const ALICE_IP: &str = "127.0.0.4";
const BOB_IP: &str = "127.0.0.5";

fn relay_at(ip: &str, dir: &Path) -> (Relay, PathBuf) {
    let record = dir.join(format!("record-{ip}.txt"));
    let relay = Relay::start_at(ip, &[(hooks::RELAY_TEST_RECORD, record.to_str().unwrap())]);
    (relay, record)
}

fn peers_seen(record: &Path) -> String {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
        .join(",")
}

/// The kinds of the request frames a relay's record shows from `peer` (byte 1 of each).
fn kinds_from(record: &Path, peer: &str) -> std::collections::BTreeSet<u8> {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("frame {peer} ")))
        .filter_map(|hex| u8::from_str_radix(hex.get(2..4)?, 16).ok())
        .collect()
}

/// Deposit, DepositStamped, Forward: the requests that carry an envelope.
const CARRIES_ENVELOPE: [u8; 3] = [0x02, 0x06, 0x0c];

fn deposited_from(record: &Path, peer: &str) -> bool {
    kinds_from(record, peer)
        .iter()
        .any(|k| CARRIES_ENVELOPE[..2].contains(k))
}

/// `profile` on `relay`, its connections from `ip`, with `routing` if given.
fn user(home: &Home, profile: &str, relay: &Relay, ip: &str, routing: Option<&str>) {
    home.hush(profile, &["init"]).json();
    let mut config = format!("bind = \"{ip}\"\n");
    if let Some(r) = routing {
        config.push_str(&format!("routing = \"{r}\"\n"));
    }
    std::fs::write(home.profile_dir(profile).join("config.toml"), config).unwrap();
    // `relay set` checks the relay, from `bind` too.
    let v = home
        .hush(profile, &["relay", "set", relay.address()])
        .json();
    assert_eq!(v["relay"], relay.address(), "{v}");
}

/// alice (on the first relay) invites bob (on the second); both handshake messages cross
/// relays.
fn pair_across(home: &Home) {
    let link = home.invite("alice", Some("bob"));
    assert_eq!(home.accept("bob", &link, "alice"), "on-relay");
    assert_eq!(home.recv("alice"), vec![]);
    assert_eq!(home.contacts("alice"), vec!["bob".to_owned()]);
    assert_eq!(home.recv("bob"), vec![]);
}

/// A message between users of two relays arrives end to end with private routing (the
/// default). The relationship's mailboxes start on the inviter's relay (PROTOCOL.md 8.1), so
/// bob (on the second relay) deposits to the first: every deposit of his, the handshake
/// included, reached it through his own relay, never from his address; alice's reply goes to
/// her own relay. alice never met bob's relay at all. Seen to fail with the driver never
/// choosing the private route (bob's address sent deposits to the first relay).
#[test]
fn messages_between_two_relays_go_through_the_senders_relay() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, rec1) = relay_at("127.0.0.2", dir.path());
    let (r2, rec2) = relay_at("127.0.0.3", dir.path());
    let home = Home::new();
    user(&home, "alice", &r1, ALICE_IP, None);
    user(&home, "bob", &r2, BOB_IP, None);
    pair_across(&home);

    assert_eq!(
        home.send("bob", "alice", "مرحبا يا أليس 🌍 消息"),
        "on-relay"
    );
    assert_eq!(
        home.recv("alice"),
        vec![("bob".to_owned(), "مرحبا يا أليس 🌍 消息".to_owned())]
    );
    assert_eq!(
        home.send("alice", "bob", "你好，鲍勃 — received"),
        "on-relay"
    );
    assert_eq!(
        home.recv("bob"),
        vec![("alice".to_owned(), "你好，鲍勃 — received".to_owned())]
    );
    assert!(
        !deposited_from(&rec1, BOB_IP),
        "{:?}",
        kinds_from(&rec1, BOB_IP)
    );
    assert!(
        kinds_from(&rec1, "127.0.0.3").contains(&0x0d),
        "bob's relay delivered his deposits"
    );
    assert!(kinds_from(&rec2, BOB_IP).contains(&0x0c), "bob forwarded");
    assert!(
        !peers_seen(&rec2).contains(ALICE_IP),
        "{}",
        peers_seen(&rec2)
    );
    // Every connection of both users left from its `bind` address, the relay checks of
    // `relay set` too.
    for rec in [&rec1, &rec2] {
        assert!(
            !peers_seen(rec).contains("127.0.0.1"),
            "{}",
            peers_seen(rec)
        );
    }
}

/// With the forwarding path down (bob's relay stops forwarding), bob's message waits in the
/// outbox with the reason, and nothing goes to alice's relay around it; when the path
/// returns, his next command delivers it. Seen to fail with the driver never choosing
/// the private route (the message was on the relay at once, deposited from bob's
/// address).
#[test]
fn with_the_path_down_a_message_waits_with_its_reason_and_goes_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, rec1) = relay_at("127.0.0.2", dir.path());
    let (mut r2, _) = relay_at("127.0.0.3", dir.path());
    let home = Home::new();
    user(&home, "alice", &r1, ALICE_IP, None);
    user(&home, "bob", &r2, BOB_IP, None);
    pair_across(&home);

    r2.terminate();
    r2.run_with(&[("HUSH_RELAY_FORWARDING_ENABLED", "false")]);
    let v = home
        .hush("bob", &["send", "alice", "等一下 انتظر ⏳"])
        .json();
    assert_eq!(v["state"], "queued", "{v}");
    assert_eq!(v["waiting"], "forwarding_disabled", "{v}");
    let text = home
        .hush("bob", &["send", "alice", "second"])
        .run()
        .ok()
        .stdout;
    assert!(text.contains("forwarding_disabled"), "{text}");
    assert!(text.starts_with("queued"), "{text}");
    assert_eq!(home.recv("alice"), vec![]);
    assert!(!deposited_from(&rec1, BOB_IP));

    r2.terminate();
    r2.run();
    // Any command flushes what waits; recv does, and reads nothing new for bob.
    assert_eq!(home.recv("bob"), vec![]);
    assert_eq!(
        home.recv("alice"),
        vec![
            ("bob".to_owned(), "等一下 انتظر ⏳".to_owned()),
            ("bob".to_owned(), "second".to_owned())
        ]
    );
    assert!(!deposited_from(&rec1, BOB_IP));
}

/// `routing = "direct"` deposits straight to the destination relay: its record then shows
/// deposits from the sender's address (what private routing exists to avoid), and the
/// sender's relay forwards nothing.
#[test]
fn direct_routing_goes_straight_to_the_destination() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, rec1) = relay_at("127.0.0.2", dir.path());
    let (r2, rec2) = relay_at("127.0.0.3", dir.path());
    let home = Home::new();
    user(&home, "alice", &r1, ALICE_IP, Some("direct"));
    user(&home, "bob", &r2, BOB_IP, Some("direct"));
    pair_across(&home);
    assert_eq!(home.send("bob", "alice", "direct"), "on-relay");
    assert_eq!(
        home.recv("alice"),
        vec![("bob".to_owned(), "direct".to_owned())]
    );
    assert!(deposited_from(&rec1, BOB_IP));
    assert!(!kinds_from(&rec2, BOB_IP).contains(&0x0c));
}

/// JSON lines of a `--json` file command.
fn events(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Chunk requests of any kind: PutChunk, GetChunk, DeleteChunk, ForwardChunk, DeliverChunk.
const CHUNK_KINDS: [u8; 5] = [0x10, 0x11, 0x12, 0x13, 0x14];

fn chunk_requests_from(record: &Path, peer: &str) -> Vec<u8> {
    kinds_from(record, peer)
        .into_iter()
        .filter(|k| CHUNK_KINDS.contains(k))
        .collect()
}

fn chunk_files(relay: &Relay) -> usize {
    std::fs::read_dir(relay.dir().join("data").join("chunks")).map_or(0, Iterator::count)
}

/// `hush --json get-file ID --dir DIR` as `profile`, to be run.
fn get_file<'a>(home: &'a Home, profile: &str, id: &str, dir: &Path) -> Hush<'a> {
    home.hush(
        profile,
        &["--json", "get-file", id, "--dir", dir.to_str().unwrap()],
    )
}

/// Sends `bytes` as a file named `name` from `from` to `to`; the receiver's file id.
fn send_file(home: &Home, from: &str, to: &str, name: &str, bytes: &[u8]) -> String {
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    home.hush(from, &["--json", "send-file", to, path.to_str().unwrap()])
        .run()
        .ok();
    let listed = home.hush(to, &["--json", "files"]).run().ok();
    let offer = events(&listed.stdout)
        .into_iter()
        .rfind(|f| f["name"] == name)
        .expect("the offer arrived");
    offer["id"].as_i64().unwrap().to_string()
}

/// A file from alice (chunks on her relay, the first) reaches bob (on the second) with
/// private routing, the default: bob's gets and deletes reach the first relay only
/// through his own relay, sealed (DeliverChunk from 127.0.0.3), never from his address,
/// and the file is bit-identical. With his relay's forwarding off, `get-file` stops with
/// the reason in a `waiting` progress event and exit code 5, sends nothing directly, and
/// resumes to completion once the path is back. Seen to fail with the chunk path built
/// without the private route (bob's GetChunk and DeleteChunk frames, 0x11 and 0x12, in the
/// first relay's record from 127.0.0.5).
#[test]
fn a_file_from_another_relay_is_fetched_only_through_the_own_relay() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, rec1) = relay_at("127.0.0.2", dir.path());
    let (mut r2, rec2) = relay_at("127.0.0.3", dir.path());
    let home = Home::new();
    user(&home, "alice", &r1, ALICE_IP, None);
    user(&home, "bob", &r2, BOB_IP, None);
    pair_across(&home);

    let data: Vec<u8> = (0..700_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let name = "线人的文件 ملف المصدر 🗂️.bin";
    let id = send_file(&home, "alice", "bob", name, &data);
    assert_eq!(chunk_files(&r1), 3, "alice's chunks are on her own relay");
    let out = tempfile::tempdir().unwrap();
    let got = get_file(&home, "bob", &id, out.path()).run().ok();
    let ev = events(&got.stdout);
    let saved = PathBuf::from(ev.last().unwrap()["path"].as_str().unwrap());
    assert!(std::fs::read(&saved).unwrap() == data, "bit-identical");
    assert!(ev.iter().all(|e| e["waiting"].is_null()), "{ev:?}");
    assert_eq!(chunk_files(&r1), 0, "deleted through bob's relay");
    assert_eq!(chunk_requests_from(&rec1, BOB_IP), Vec::<u8>::new());
    assert!(chunk_requests_from(&rec1, "127.0.0.3").contains(&0x14));
    assert_eq!(chunk_requests_from(&rec2, BOB_IP), vec![0x13]);
    assert_eq!(chunk_files(&r2), 0, "bob's relay stores none of it");

    // The path goes down: get-file waits with the reason and sends nothing directly.
    let second = "第二份 الثانية 📎.txt";
    let id = send_file(
        &home,
        "alice",
        "bob",
        second,
        "两个 اثنان".repeat(40_000).as_bytes(),
    );
    r2.terminate();
    r2.run_with(&[("HUSH_RELAY_FORWARDING_ENABLED", "false")]);
    let failed = get_file(&home, "bob", &id, out.path()).run().fails();
    assert_eq!(failed.status.code(), Some(5), "{}", failed.stderr);
    let ev = events(&failed.stdout);
    assert!(
        ev.iter()
            .any(|e| e["event"] == "progress" && e["waiting"] == "forwarding_disabled"),
        "{ev:?}"
    );
    assert!(
        failed.stderr.contains("private_route_waiting"),
        "{}",
        failed.stderr
    );
    assert_eq!(chunk_requests_from(&rec1, BOB_IP), Vec::<u8>::new());
    r2.terminate();
    r2.run();
    let got = get_file(&home, "bob", &id, out.path()).run().ok();
    let saved = PathBuf::from(
        events(&got.stdout).last().unwrap()["path"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        std::fs::read(&saved).unwrap(),
        "两个 اثنان".repeat(40_000).as_bytes()
    );
    assert_eq!(chunk_requests_from(&rec1, BOB_IP), Vec::<u8>::new());
    assert_eq!(chunk_files(&r1), 0);
}

/// In high-risk mode chunk requests are always privately routed, even for a profile set to
/// `routing = "direct"`: bob's gets and deletes reach the first relay only as DeliverChunk
/// from his relay. Prints how long the paced download of three chunks took (six requests,
/// each after a gap of mean 2 s). Seen to fail with high-risk mode left out of the choice
/// of route (bob's GetChunk and DeleteChunk, 0x11 and 0x12, from 127.0.0.5 at the first
/// relay).
#[test]
fn in_high_risk_mode_chunks_go_through_the_own_relay_whatever_routing_says() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, rec1) = relay_at("127.0.0.2", dir.path());
    let (r2, rec2) = relay_at("127.0.0.3", dir.path());
    let home = Home::new();
    user(&home, "alice", &r1, ALICE_IP, None);
    user(&home, "bob", &r2, BOB_IP, Some("direct"));
    pair_across(&home);
    let data: Vec<u8> = (0..600_000u32).map(|i| (i * 17 % 253) as u8).collect();
    let id = send_file(&home, "alice", "bob", "高风险 خطر 🛡️.bin", &data);
    home.hush("bob", &["high-risk", "on"]).run().ok();
    let out = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let got = get_file(&home, "bob", &id, out.path())
        .env(hooks::CLIENT_FETCH_MEAN_MS, 200)
        .env(hooks::CLIENT_DEPOSIT_MEAN_MS, 200)
        .run()
        .ok();
    eprintln!(
        "paced download and deletion of 3 chunks: {:?}",
        started.elapsed()
    );
    let saved = PathBuf::from(
        events(&got.stdout).last().unwrap()["path"]
            .as_str()
            .unwrap(),
    );
    assert!(std::fs::read(&saved).unwrap() == data, "bit-identical");
    assert_eq!(chunk_requests_from(&rec1, BOB_IP), Vec::<u8>::new());
    assert_eq!(chunk_requests_from(&rec2, BOB_IP), vec![0x13]);
    assert_eq!(chunk_files(&r1), 0);
}
