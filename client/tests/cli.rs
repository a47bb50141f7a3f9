//! End-to-end tests of the `hush` CLI (issue 4, item 7): the real binary, real `hush-relay`
//! processes on loopback and real SQLCipher stores in temporary directories.
//!
//! Waiting is bounded polling, never a timing threshold. Clocks are moved with
//! `HUSH_CLOCK_OFFSET_SECS` (client) and `HUSH_RELAY_TEST_CLOCK_OFFSET_SECS` (relay); crashes
//! with `HUSH_TEST_CRASH_AT` (the names live in `hush_testkit::hooks`). Run with
//! `cargo test -p hush --test cli`; the processes, data roots and waits come from the test
//! kit (`tests/`, crate `hush-testkit`), which builds `hush-relay` once if it is missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

use std::time::Duration;

use hush_testkit::{
    Home, Out, Relay, contains, files_under, history_rows, hooks, messages, pair, poll, snapshot,
    udp_port_bound, unix_now,
};

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
        .collect()
}

fn rows(v: &[(bool, &str, &str)]) -> Vec<(bool, String, String)> {
    v.iter()
        .map(|(o, t, s)| (*o, (*t).to_string(), (*s).to_string()))
        .collect()
}

/// `recv` on `profile` (clock shifted by `clock` seconds) until its history with `contact`
/// shows every outgoing message as delivered (receipts travel through the relay; bounded).
fn recv_until_delivered_at(
    home: &Home,
    profile: &str,
    contact: &str,
    clock: i64,
) -> Vec<(bool, String, String)> {
    let mut last = Vec::new();
    for _ in 0..10 {
        let extra = messages(&home.hush(profile, &["recv"]).clock(clock).json());
        assert!(extra.is_empty(), "unexpected messages: {extra:?}");
        let h = home
            .hush(profile, &["history", contact, "--limit", "1000"])
            .clock(clock)
            .json();
        last = history_rows(h.as_array().unwrap());
        if last
            .iter()
            .all(|(out, _, state)| !out || state == "delivered")
        {
            return last;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{profile}'s messages to {contact} never all reached delivered: {last:?}");
}

fn recv_until_delivered(home: &Home, profile: &str, contact: &str) -> Vec<(bool, String, String)> {
    recv_until_delivered_at(home, profile, contact, 0)
}

#[test]
fn two_and_three_profiles_through_a_real_relay() {
    let relay = Relay::start();
    let home = Home::new();
    pair(&home, Some(&relay), "alice", "bob");
    // Profiles with a relay of their own never serve (or even create) the built-in one.
    assert!(
        !home.root().join("embedded-relay").exists(),
        "a profile with its own relay set up the built-in relay"
    );
    let bob_contacts = home.hush("bob", &["contacts"]).json();
    assert_eq!(bob_contacts[0]["name"], "alice");
    assert_eq!(bob_contacts[0]["pending"], false, "{bob_contacts}");

    // Both ways; each `recv` shows exactly the new message.
    assert_eq!(home.send("bob", "alice", "hello alice"), "on-relay");
    assert_eq!(home.recv("alice"), pairs(&[("bob", "hello alice")]));
    assert_eq!(home.send("alice", "bob", "hello bob"), "on-relay");
    assert_eq!(home.recv("bob"), pairs(&[("alice", "hello bob")]));

    // Alice's receipt went out with her recv; Bob's with his. Each side's next recv takes
    // the receipt, and history shows `delivered`.
    assert_eq!(
        recv_until_delivered(&home, "alice", "bob"),
        rows(&[
            (false, "hello alice", "received"),
            (true, "hello bob", "delivered")
        ])
    );
    assert_eq!(
        recv_until_delivered(&home, "bob", "alice"),
        rows(&[
            (true, "hello alice", "delivered"),
            (false, "hello bob", "received")
        ])
    );

    // A third profile through a second one-time invite of Alice's.
    home.init("carol", Some(&relay));
    let link = home.invite("alice", Some("carol"));
    assert_eq!(home.accept("carol", &link, "alice"), "on-relay");
    assert_eq!(home.send("carol", "alice", "carol here"), "on-relay");
    assert_eq!(home.recv("alice"), pairs(&[("carol", "carol here")]));
    // Most recent conversation first: Carol just wrote.
    assert_eq!(home.contacts("alice"), vec!["carol", "bob"]);
    assert_eq!(home.send("alice", "carol", "for carol only"), "on-relay");
    assert_eq!(home.send("alice", "bob", "for bob only"), "on-relay");
    assert_eq!(home.recv("carol"), pairs(&[("alice", "for carol only")]));
    assert_eq!(home.recv("bob"), pairs(&[("alice", "for bob only")]));
    assert_eq!(home.send("bob", "alice", "bob again"), "on-relay");
    assert_eq!(home.recv("alice"), pairs(&[("bob", "bob again")]));
    assert_eq!(
        history_rows(&home.history("carol", "alice"))
            .into_iter()
            .map(|r| r.1)
            .collect::<Vec<_>>(),
        vec!["carol here", "for carol only"]
    );

    // A one-time invite is spent: a fourth person using Carol's link gets nowhere.
    home.init("mallory", Some(&relay));
    home.accept("mallory", &link, "alice");
    home.send("mallory", "alice", "let me in");
    assert_eq!(home.recv("alice"), vec![]);
    assert_eq!(home.contacts("alice"), vec!["bob", "carol"]);

    // Everything sent has been fetched by now (Bob's last receipt by this recv), and every
    // fetched envelope was acknowledged before its command exited: the relay holds nothing.
    // (The gauge is refreshed every two seconds; bounded polling.)
    assert_eq!(home.recv("bob"), vec![]);
    let mut stored = u64::MAX;
    poll(Duration::from_secs(10), Duration::from_millis(200), || {
        stored = relay.metric("hush_relay_stored_envelopes");
        (stored == 0).then_some(())
    });
    assert_eq!(
        stored, 0,
        "envelopes left on the relay after everyone fetched"
    );
}

#[test]
fn contact_address_used_by_two_sources() {
    let relay = Relay::start();
    let home = Home::new();
    for p in ["desk", "src1", "src2"] {
        home.init(p, Some(&relay));
    }
    let v = home.hush("desk", &["address"]).json();
    assert_eq!(v["kind"], "address", "{v}");
    let address = v["link"].as_str().unwrap().to_string();
    assert_eq!(home.accept("src1", &address, "tipline"), "on-relay");
    assert_eq!(home.accept("src2", &address, "tipline"), "on-relay");
    assert_eq!(home.send("src1", "tipline", "from source one"), "on-relay");
    assert_eq!(home.send("src2", "tipline", "from source two"), "on-relay");

    // The desk sees two separate contacts, each with its own message.
    let mut got = home.recv("desk");
    got.sort();
    // Listed by last activity: the order of arrival, which the test does not fix.
    let mut contacts = home.contacts("desk");
    contacts.sort();
    assert_eq!(contacts.len(), 2, "{contacts:?}");
    assert_ne!(
        got[0].0, got[1].0,
        "both messages went to one contact: {got:?}"
    );
    let by_text = |t: &str| got.iter().find(|m| m.1 == t).unwrap().0.clone();
    let c1 = by_text("from source one");
    let c2 = by_text("from source two");
    let mut names = vec![c1.clone(), c2.clone()];
    names.sort();
    assert_eq!(names, contacts);
    assert_eq!(
        history_rows(&home.history("desk", &c1)),
        rows(&[(false, "from source one", "received")])
    );
    assert_eq!(
        history_rows(&home.history("desk", &c2)),
        rows(&[(false, "from source two", "received")])
    );

    // Each relationship has its own safety number, agreed by both of its ends; the two
    // sources' numbers differ.
    let s1 = home.safety("src1", "tipline");
    let s2 = home.safety("src2", "tipline");
    assert_ne!(s1, s2);
    assert_eq!(home.safety("desk", &c1), s1);
    assert_eq!(home.safety("desk", &c2), s2);

    // Replies reach only their source.
    assert_eq!(home.send("desk", &c1, "reply to one"), "on-relay");
    assert_eq!(home.send("desk", &c2, "reply to two"), "on-relay");
    assert_eq!(home.recv("src1"), pairs(&[("tipline", "reply to one")]));
    assert_eq!(home.recv("src2"), pairs(&[("tipline", "reply to two")]));
}

#[test]
fn long_text_via_stdin_arrives_intact() {
    let relay = Relay::start();
    let home = Home::new();
    pair(&home, Some(&relay), "alice", "bob");
    // 20,000 characters, no two 40-character windows alike, with multi-byte characters that
    // a split at a byte boundary would break.
    let mut text = String::new();
    let mut i = 0;
    while text.chars().count() < 20_000 {
        text.push_str(&format!("line {i:05} ünïcödé ✓ "));
        i += 1;
    }
    let text: String = text.chars().take(20_000).collect();
    assert!(
        text.len() > 5 * 4096,
        "the text must need several envelopes"
    );
    let v = home
        .hush("alice", &["send", "bob"])
        .stdin(text.clone())
        .json();
    assert_eq!(v["state"], "on-relay", "{v}");
    let got = home.recv("bob");
    assert_eq!(got.len(), 1, "expected one message, got {}", got.len());
    assert_eq!(got[0].0, "alice");
    assert!(got[0].1 == text, "the long text changed in transit");
    assert_eq!(home.recv("bob"), vec![]);
    let h = history_rows(&home.history("alice", "bob"));
    assert_eq!(h.len(), 1);
    assert!(h[0].1 == text);
}

#[test]
fn catch_up_in_order_with_reorder_loss_and_receipts_off() {
    let mut relay = Relay::start();
    let home = Home::new();
    pair(&home, Some(&relay), "alice", "bob");
    // Bob keeps his reading private from Alice.
    let v = home.hush("bob", &["receipts", "alice", "off"]).json();
    assert_eq!(v["receipts"], false);

    // Several messages while Bob is away: one catch-up gets them all, in order.
    let batch: Vec<String> = (1..=6).map(|i| format!("batch message {i}")).collect();
    for t in &batch {
        assert_eq!(home.send("alice", "bob", t), "on-relay");
    }
    let got = home.recv("bob");
    assert_eq!(
        got.iter().map(|m| m.1.clone()).collect::<Vec<_>>(),
        batch,
        "missing, duplicated or out of order"
    );

    // Loss: "lost on the relay" expires there before Bob fetches it. It is stored while the
    // relay's clock is two days behind; the relay then restarts with a one-day expiry, which
    // sweeps it and nothing else.
    relay.kill9();
    relay.run_with(&[(hooks::RELAY_CLOCK_OFFSET, "-172800")]);
    assert_eq!(home.send("alice", "bob", "lost on the relay"), "on-relay");
    relay.kill9();
    relay.run_with(&[("HUSH_RELAY_LIMITS_EXPIRY_SECS", "86400")]);
    relay.wait_log("expired envelopes=1");
    assert_eq!(home.send("alice", "bob", "after the loss"), "on-relay");

    // Reorder: Alice's clock runs 150 hours ahead for one message, then is put right (one
    // hour ahead) for the next. They land in mailboxes 149 epochs apart; Bob, back after
    // 151 hours, fetches epochs oldest first (128 mailboxes per request), so his ratchet
    // meets the later message before the earlier one.
    let hour = 3600;
    let v = home
        .hush("alice", &["send", "bob", "sent first, 150 h ahead"])
        .clock(150 * hour)
        .json();
    assert_eq!(v["state"], "on-relay");
    let v = home
        .hush("alice", &["send", "bob", "sent second, 1 h ahead"])
        .clock(hour)
        .json();
    assert_eq!(v["state"], "on-relay");
    let back = 151 * hour;
    // They show in the order Alice sent them (docs/PROTOCOL.md, client behaviour 9).
    let got = messages(&home.hush("bob", &["recv"]).clock(back).json());
    assert_eq!(
        got,
        pairs(&[
            ("alice", "after the loss"),
            ("alice", "sent first, 150 h ahead"),
            ("alice", "sent second, 1 h ahead"),
        ]),
        "missing, duplicated or not in send order after loss and reordering"
    );
    // ... although the catch-up met the 150-hour message last: its row (ids grow in commit
    // order) is the later one.
    let h = home
        .hush("bob", &["history", "alice", "--limit", "100"])
        .clock(back)
        .json();
    let row = |text: &str| {
        h.as_array()
            .unwrap()
            .iter()
            .find(|m| m["text"] == text)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    assert!(
        row("sent first, 150 h ahead") > row("sent second, 1 h ahead"),
        "not reordered: the catch-up should meet the 150-hour message last"
    );
    assert_eq!(
        messages(&home.hush("bob", &["recv"]).clock(back).json()),
        vec![]
    );

    // The conversation still works both ways. Receipts off: Alice never sees `delivered`;
    // Bob's message to Alice (her receipts are on) does reach it.
    let v = home
        .hush("bob", &["send", "alice", "bob writes back"])
        .clock(back)
        .json();
    assert_eq!(v["state"], "on-relay");
    assert_eq!(
        messages(&home.hush("alice", &["recv"]).clock(back).json()),
        pairs(&[("bob", "bob writes back")])
    );
    assert_eq!(
        recv_until_delivered_at(&home, "bob", "alice", back)
            .last()
            .unwrap()
            .1,
        "bob writes back"
    );
    let alice = history_rows(
        home.hush("alice", &["history", "bob", "--limit", "100"])
            .clock(back)
            .json()
            .as_array()
            .unwrap(),
    );
    let outgoing: Vec<_> = alice.iter().filter(|r| r.0).collect();
    assert_eq!(outgoing.len(), 10, "{alice:?}");
    assert!(
        outgoing.iter().all(|r| r.2 == "on-relay"),
        "Bob turned receipts off, yet Alice saw: {alice:?}"
    );
}

#[test]
fn recipient_offline_across_many_epochs_catches_up() {
    let relay = Relay::start();
    let home = Home::new();
    pair(&home, Some(&relay), "alice", "bob");
    let hour = 3600;
    for (offset, text) in [
        (0, "at hour 0"),
        (5 * hour, "at hour 5"),
        (30 * hour, "at hour 30"),
    ] {
        let v = home
            .hush("alice", &["send", "bob", text])
            .clock(offset)
            .json();
        assert_eq!(v["state"], "on-relay", "{text}: {v}");
    }
    let got = messages(&home.hush("bob", &["recv"]).clock(31 * hour).json());
    assert_eq!(
        got,
        pairs(&[
            ("alice", "at hour 0"),
            ("alice", "at hour 5"),
            ("alice", "at hour 30")
        ])
    );
    // And the conversation goes on from there, both ways.
    let v = home
        .hush("bob", &["send", "alice", "back at hour 31"])
        .clock(31 * hour)
        .json();
    assert_eq!(v["state"], "on-relay");
    let got = messages(&home.hush("alice", &["recv"]).clock(31 * hour).json());
    assert_eq!(got, pairs(&[("bob", "back at hour 31")]));
}

#[test]
fn recipient_clock_put_back_still_catches_up() {
    // Bob's clock ran two days ahead when he last fetched, then was put right. Alice (right
    // clock) writes into the current epoch's mailbox, which Bob must still fetch.
    let relay = Relay::start();
    let home = Home::new();
    pair(&home, Some(&relay), "alice", "bob");
    assert_eq!(
        messages(&home.hush("bob", &["recv"]).clock(48 * 3600).json()),
        vec![]
    );
    assert_eq!(home.send("alice", "bob", "after the clock fix"), "on-relay");
    assert_eq!(home.recv("bob"), pairs(&[("alice", "after the clock fix")]));
    // And from then on as usual.
    assert_eq!(home.send("alice", "bob", "next one"), "on-relay");
    assert_eq!(home.recv("bob"), pairs(&[("alice", "next one")]));
}

/// Bob listens (`recv --wait`), his clock 30 s past an hour; Alice's clock is 90 s behind
/// his, still in the hour before, and she writes once Bob's process has subscribed and
/// done its catch-up fetch. Her deposit goes to the previous epoch's mailbox, which Bob
/// watches for the first 600 s of his epoch: it is pushed to him at once. (Seen to fail,
/// Bob's listening run printed nothing, with subscriptions to the current and next epoch
/// only.)
#[test]
fn a_listening_recipient_hears_a_sender_whose_clock_is_behind() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.txt");
    let relay = Relay::start_with(&[(hooks::RELAY_TEST_RECORD, record.to_str().unwrap())]);
    let home = Home::new();
    pair(&home, Some(&relay), "alice", "bob");
    let to_hour = 3600 - unix_now() % 3600;
    let bob_clock = i64::try_from(to_hour).unwrap() + 30;
    let alice_clock = bob_clock - 90;
    // What the relay was asked so far: a subscription (kind 05) and a fetch answer later in
    // the record are Bob's listening process.
    let seen = || std::fs::read_to_string(&record).unwrap_or_default();
    let before = seen().len();
    let listening = home
        .hush("bob", &["--json", "recv", "--wait", "12"])
        .clock(bob_clock)
        .spawn();
    let ready = poll(Duration::from_secs(15), Duration::from_millis(50), || {
        let text = seen();
        let new = text.get(before..).unwrap_or_default();
        let subscribed = new
            .lines()
            .any(|l| l.starts_with("at ") && l.ends_with(" 05"));
        let fetched = new.lines().any(|l| l.starts_with("fetched "));
        (subscribed && fetched).then_some(())
    });
    assert!(
        ready.is_some(),
        "Bob's listening run never subscribed and fetched"
    );
    let text = "ساعتي متأخرة — 我的钟慢了";
    let v = home
        .hush("alice", &["send", "bob", text])
        .clock(alice_clock)
        .json();
    assert!(v["state"] == "on-relay" || v["state"] == "delivered", "{v}");
    let out = listening.finish().ok();
    assert_eq!(messages(&out.json()), pairs(&[("alice", text)]));
}

#[test]
fn relay_restart_mid_conversation() {
    let mut relay = Relay::start();
    let home = Home::new();
    pair(&home, Some(&relay), "alice", "bob");
    assert_eq!(home.send("alice", "bob", "before the crash"), "on-relay");

    relay.kill9();
    // Alice's clock is five minutes ahead for this one command, so by the real clock its
    // retry is not due for five minutes, as after a long series of failed attempts.
    let out = home
        .hush(
            "alice",
            &["--json", "send", "bob", "while the relay is down"],
        )
        .clock(300)
        .run()
        .ok();
    let v = out.json();
    assert_eq!(v["state"], "queued", "{v}");
    let h = history_rows(&home.history("alice", "bob"));
    assert_eq!(h.last().unwrap().2, "queued", "{h:?}");

    relay.run();
    // The sender's next command (any command that waits for the outbox: recv does)
    // deposits what waited, backoff or not: a new run is a new attempt.
    assert_eq!(home.recv("alice"), vec![]);
    let h = history_rows(&home.history("alice", "bob"));
    assert_eq!(h.last().unwrap().2, "on-relay", "{h:?}");
    assert_eq!(
        home.recv("bob"),
        pairs(&[
            ("alice", "before the crash"),
            ("alice", "while the relay is down")
        ])
    );
    assert_eq!(home.recv("bob"), vec![]);
    let bob = history_rows(&home.history("bob", "alice"));
    assert_eq!(bob.len(), 2, "{bob:?}");
    assert_eq!(home.send("bob", "alice", "after the restart"), "on-relay");
    assert_eq!(home.recv("alice"), pairs(&[("bob", "after the restart")]));
}

fn assert_aborted(out: &Out) {
    use std::os::unix::process::ExitStatusExt;
    assert!(!out.status.success(), "the crash hook did not fire");
    assert_eq!(
        out.status.signal(),
        Some(6),
        "expected SIGABRT, got {}: {}",
        out.status,
        out.stderr
    );
    assert!(out.stdout.trim().is_empty() || out.stdout.trim() == "[]");
}

#[test]
fn client_killed_between_fetch_and_acknowledge() {
    let mut relay = Relay::start();
    let home = Home::new();
    pair(&home, Some(&relay), "alice", "bob");
    // What a crashed run committed is read with the relay down: any hush command fetches
    // at start, so with the relay up `history` itself would receive the message.
    let committed = |relay: &mut Relay| {
        relay.kill9();
        let h = history_rows(&home.history("bob", "alice"));
        relay.run();
        h
    };

    // Crash after the commit, before the relay is told to delete: the relay delivers the
    // envelope again, and it must be neither shown nor stored twice.
    assert_eq!(home.send("alice", "bob", "committed once"), "on-relay");
    let out = home
        .hush("bob", &["--json", "recv"])
        .crash_at("before-ack")
        .run();
    assert_aborted(&out);
    assert_eq!(
        committed(&mut relay),
        rows(&[(false, "committed once", "received")]),
        "the message was not committed before the crash"
    );
    assert_eq!(home.recv("bob"), pairs(&[("alice", "committed once")]));
    assert_eq!(home.recv("bob"), vec![]);
    assert_eq!(
        history_rows(&home.history("bob", "alice")),
        rows(&[(false, "committed once", "received")])
    );

    // Crash before the commit: nothing was stored; the next recv gets it exactly once.
    // (Bob's receipt went out with his last recv, so the first envelope his crashing run
    // meets is this message.)
    assert_eq!(
        home.send("alice", "bob", "fetched, not committed"),
        "on-relay"
    );
    let out = home
        .hush("bob", &["--json", "recv"])
        .crash_at("before-commit")
        .run();
    assert_aborted(&out);
    assert_eq!(
        committed(&mut relay),
        rows(&[(false, "committed once", "received")]),
        "the crashed run committed something"
    );
    assert_eq!(
        home.recv("bob"),
        pairs(&[("alice", "fetched, not committed")])
    );
    assert_eq!(home.recv("bob"), vec![]);
    assert_eq!(
        history_rows(&home.history("bob", "alice")),
        rows(&[
            (false, "committed once", "received"),
            (false, "fetched, not committed", "received")
        ])
    );
    // Both receipts got out in the end, and the session still works both ways.
    assert_eq!(
        recv_until_delivered(&home, "alice", "bob"),
        rows(&[
            (true, "committed once", "delivered"),
            (true, "fetched, not committed", "delivered")
        ])
    );
    assert_eq!(home.send("bob", "alice", "still in sync"), "on-relay");
    assert_eq!(home.recv("alice"), pairs(&[("bob", "still in sync")]));
}

#[test]
fn wrong_passphrase_changes_nothing() {
    let home = Home::new();
    home.init("alice", None);
    // Some content, so there is more than an empty database.
    let link = home.invite("alice", Some("bob"));
    assert!(link.starts_with("hush:"));
    let dir = home.profile_dir("alice");
    let before = snapshot(&dir);
    assert!(before.iter().any(|(p, _)| p.ends_with("store.db")));
    for args in [&["contacts"][..], &["send", "bob", "x"], &["recv"]] {
        let out = home
            .hush("alice", args)
            .passphrase("not the passphrase")
            .run()
            .fails();
        let line = out.error_line();
        assert!(line.contains("passphrase"), "{line}");
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        assert!(
            snapshot(&dir) == before,
            "a wrong passphrase changed the profile's files"
        );
    }
    // The right one still opens it.
    assert_eq!(home.contacts("alice"), Vec::<String>::new());
}

#[test]
fn corrupted_database_is_reported_and_left_alone() {
    let home = Home::new();
    home.init("alice", None);
    home.invite("alice", Some("bob"));
    let dir = home.profile_dir("alice");
    let db = dir.join("store.db");
    let good = std::fs::read(&db).unwrap();
    assert!(good.len() >= 2 * 4096, "{} bytes", good.len());
    // A damaged header page, then a damaged table page (the settings table's root).
    for (what, range) in [
        ("first page", 0..64),
        ("second page", 4096 + 1000..4096 + 1016),
    ] {
        let mut bad = good.clone();
        for b in &mut bad[range] {
            *b ^= 0x5A;
        }
        std::fs::write(&db, &bad).unwrap();
        let before = snapshot(&dir);
        let out = home.hush("alice", &["contacts"]).run().fails();
        let line = out.error_line();
        assert!(line.contains("damaged"), "{what}: {line}");
        assert!(
            !line.contains("passphrase"),
            "{what}: damage reported as a wrong passphrase: {line}"
        );
        assert!(
            std::fs::read(&db).unwrap() == bad,
            "{what}: store.db changed"
        );
        assert!(
            snapshot(&dir) == before,
            "{what}: the profile's files changed"
        );
    }
    std::fs::write(&db, &good).unwrap();
    assert_eq!(home.contacts("alice"), Vec::<String>::new());
}

#[test]
fn no_plaintext_at_rest_or_in_logs() {
    let mut relay = Relay::start();
    let home = Home::new();
    pair(&home, Some(&relay), "alice", "bob");
    // The most talkative logs on both sides.
    relay.kill9();
    relay.run_with(&[(hooks::RELAY_LOG_LEVEL, "trace")]);
    let secrets = [
        "Zanzibar-meeting-at-dawn-7731",
        "the-source-is-in-accounting-4419",
        "pallet-of-documents-by-the-dock-0096",
    ];
    let long = format!("{}{}", "Quixotic-longform-9250 ".repeat(600), secrets[2]);
    for (i, s) in secrets.iter().enumerate() {
        let (from, to) = if i % 2 == 0 {
            ("alice", "bob")
        } else {
            ("bob", "alice")
        };
        let text = if i == 2 {
            long.clone()
        } else {
            (*s).to_string()
        };
        let v = home
            .hush(from, &["send", to])
            .stdin(text)
            .env(hooks::HUSH_LOG, "trace")
            .json();
        assert_eq!(v["state"], "on-relay");
        let got = messages(
            &home
                .hush(to, &["recv"])
                .env(hooks::HUSH_LOG, "trace")
                .json(),
        );
        assert_eq!(got.len(), 1);
        assert!(got[0].1.contains(s), "the test message did not arrive");
    }
    // Some messages still sit on the relay (the last receipts), and logs exist.
    let mut files = files_under(&home.root());
    files.extend(files_under(&relay.dir()));
    files.extend(relay.log_files());
    for must in ["store.db", "hush.log", "relay-1.log"] {
        let f = files
            .iter()
            .find(|f| f.ends_with(must))
            .unwrap_or_else(|| panic!("{must} missing from {files:?}"));
        assert!(std::fs::metadata(f).unwrap().len() > 0, "{must} is empty");
    }
    let needles = secrets
        .iter()
        .map(|s| s.to_string())
        .chain(["Quixotic-longform-9250".to_string()]);
    let needles: Vec<String> = needles.collect();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for n in &needles {
            assert!(
                !contains(&bytes, n.as_bytes()),
                "{} contains message text {n:?}",
                f.display()
            );
        }
    }
}

#[test]
fn embedded_relay_by_default() {
    let home = Home::new();
    // No `relay set`: the first command serves the embedded relay; each later process
    // serves it again (sequentially) or uses the one another process serves.
    pair(&home, None, "alice", "bob");
    assert!(home.root().join("embedded-relay").is_dir());
    assert_eq!(home.send("bob", "alice", "over loopback"), "on-relay");
    assert_eq!(home.recv("alice"), pairs(&[("bob", "over loopback")]));
    assert_eq!(home.send("alice", "bob", "and back"), "on-relay");
    assert_eq!(home.recv("bob"), pairs(&[("alice", "and back")]));

    // Alice listens (her process serves the relay) while Bob sends from another process,
    // which uses the relay Alice's process serves. Bob starts once Alice's process has the
    // relay's port (bounded polling), so Alice's engine is running by then.
    let port: u16 = std::fs::read_to_string(home.root().join("embedded-relay/port"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !udp_port_bound(port),
        "the embedded relay's port is taken while no hush runs"
    );
    let listening = home
        .hush("alice", &["--json", "recv", "--wait", "12"])
        .spawn();
    let served = poll(Duration::from_secs(15), Duration::from_millis(50), || {
        udp_port_bound(port).then_some(())
    });
    assert!(
        served.is_some(),
        "Alice's recv never served the embedded relay"
    );
    // Alice is listening, so her receipt may reach Bob before his command exits: on the
    // relay at least, delivered if the receipt was quicker.
    let state = home.send("bob", "alice", "pushed while listening");
    assert!(
        state == "on-relay" || state == "delivered",
        "the message did not reach the relay: {state}"
    );
    // One process per profile at a time: a second one on Alice's is run by the listening
    // one, over its control socket (tests/cli_socket.rs).
    assert_eq!(home.contacts("alice"), vec!["bob"]);
    let out = listening.finish().ok();
    assert_eq!(
        messages(&out.json()),
        pairs(&[("bob", "pushed while listening")])
    );
    assert_eq!(home.recv("alice"), vec![]);
}

#[test]
fn disappearing_messages_leave_history_and_store() {
    let relay = Relay::start();
    let home = Home::new();
    pair(&home, Some(&relay), "alice", "bob");
    let v = home.hush("alice", &["disappear", "bob", "2s"]).json();
    assert_eq!(v["disappear_secs"], 2, "{v}");
    let text = "self-destructing-note-5521";
    assert_eq!(home.send("alice", "bob", text), "on-relay");
    let got = home.hush("bob", &["recv"]).json();
    assert_eq!(messages(&got), pairs(&[("alice", text)]));
    let expires = got[0]["expires_at"]
        .as_u64()
        .unwrap_or_else(|| panic!("the message arrived without its timer: {got}"));
    // The peer's timer became the conversation's on Bob's side too.
    let c = home.hush("bob", &["contacts"]).json();
    assert_eq!(c[0]["disappear_secs"], 2, "{c}");
    let sent_at = got[0]["sent_at"].as_u64().unwrap();
    assert!(expires >= sent_at + 2, "{got}");

    // Wait (bounded) until Bob's timer has passed on the real clock (Alice's, counted from
    // sending, passed no later); then any command's engine sweeps at start.
    poll(Duration::from_secs(10), Duration::from_millis(100), || {
        (unix_now() > expires).then_some(())
    });
    assert!(unix_now() > expires);
    assert_eq!(
        home.history("bob", "alice"),
        Vec::<serde_json::Value>::new()
    );
    assert_eq!(
        home.history("alice", "bob"),
        Vec::<serde_json::Value>::new()
    );
    for p in ["alice", "bob"] {
        for f in files_under(&home.profile_dir(p)) {
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !contains(&bytes, text.as_bytes()),
                "{} holds the text",
                f.display()
            );
        }
    }
    // Off again: new messages stay.
    home.hush("alice", &["disappear", "bob", "off"]).json();
    assert_eq!(home.send("alice", "bob", "this one stays"), "on-relay");
    let got = home.hush("bob", &["recv"]).json();
    assert_eq!(got[0]["expires_at"], serde_json::Value::Null, "{got}");
}

#[test]
fn wipe_needs_confirmation_and_destroys_the_profile() {
    let home = Home::new();
    home.init("alice", None);
    home.init("bob", None);
    let dir = home.profile_dir("alice");
    let before = snapshot(&dir);

    // Without --yes and without a terminal (stdin is not one here): refused, nothing changed.
    let out = home.hush("alice", &["wipe"]).run().fails();
    assert!(out.error_line().contains("--yes"), "{}", out.stderr);
    assert!(snapshot(&dir) == before);

    let v = home.hush("alice", &["wipe", "--yes"]).json();
    assert_eq!(v["wiped"], true, "{v}");
    assert!(!dir.exists(), "the profile directory is still there");
    for args in [&["contacts"][..], &["recv"], &["wipe", "--yes"]] {
        let out = home.hush("alice", args).run().fails();
        assert!(
            out.error_line().contains("no such profile"),
            "{}",
            out.stderr
        );
    }
    // Other profiles are untouched.
    assert_eq!(home.contacts("bob"), Vec::<String>::new());
}

#[test]
fn a_relay_down_holds_up_only_its_own_contacts() {
    // Alice invited Bob (her relay, R1) and accepted Dave's invite (his relay, R2).
    let r1 = Relay::start();
    let mut r2 = Relay::start();
    let home = Home::new();
    pair(&home, Some(&r1), "alice", "bob");
    home.init("dave", Some(&r2));
    let link = home.invite("dave", Some("alice"));
    assert_eq!(home.accept("alice", &link, "dave"), "on-relay");
    assert_eq!(home.recv("dave"), vec![]);
    assert_eq!(home.recv("alice"), vec![]);

    r2.kill9();
    assert_eq!(home.send("alice", "dave", "to dave, relay down"), "queued");
    // Dave's relay is still down: his message stays queued, Bob's reaches R1, and `send`
    // reports the state of the message it sent, not of the whole outbox.
    assert_eq!(home.send("alice", "bob", "to bob, relay up"), "on-relay");
    assert_eq!(home.recv("bob"), pairs(&[("alice", "to bob, relay up")]));
    let h = history_rows(&home.history("alice", "dave"));
    assert_eq!(h.last().unwrap().2, "queued", "{h:?}");

    r2.run();
    assert_eq!(home.recv("alice"), vec![]);
    assert_eq!(
        home.recv("dave"),
        pairs(&[("alice", "to dave, relay down")])
    );
    assert_eq!(home.send("dave", "alice", "dave answers"), "on-relay");
    assert_eq!(home.recv("alice"), pairs(&[("dave", "dave answers")]));
}

#[test]
fn errors_are_one_line_with_a_non_zero_exit() {
    let home = Home::new();
    home.init("alice", None);
    // (arguments, standard input, text the error contains, exit code, --json code)
    for (args, stdin, expect, exit, code) in [
        (
            &["send", "nobody", "hi"][..],
            None,
            "no contact",
            4,
            "not_found",
        ),
        (&["send", "nobody"], Some(""), "nothing to send", 2, "usage"),
        (
            &["accept", "hush:not-a-link", "--name", "x"],
            None,
            "invalid invite",
            2,
            "invalid_link",
        ),
        (&["history", "nobody"], None, "no contact", 4, "not_found"),
        (
            &["disappear", "nobody", "soon"],
            None,
            "not a duration",
            2,
            "usage",
        ),
        (
            &["relay", "set", "http://example.com"],
            None,
            "relay address",
            2,
            "usage",
        ),
        (&["send"], None, "", 2, "usage"),
        (&["no-such-command"], None, "", 2, "usage"),
    ] {
        let mut cmd = home.hush("alice", args);
        if let Some(s) = stdin {
            cmd = cmd.stdin(s);
        }
        let out = cmd.run().fails();
        assert_eq!(out.status.code(), Some(exit), "{args:?}: {}", out.stderr);
        if !expect.is_empty() {
            let line = out.error_line();
            assert!(line.starts_with("hush: "), "{args:?}: {line}");
            assert!(line.contains(expect), "{args:?}: {line}");
        }
        // Under --json: one JSON object on stderr, with its stable code.
        let mut cmd = home.hush("alice", &[&["--json"][..], args].concat());
        if let Some(s) = stdin {
            cmd = cmd.stdin(s);
        }
        let out = cmd.run().fails();
        assert_eq!(out.status.code(), Some(exit), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
        let v: serde_json::Value = serde_json::from_str(out.error_line())
            .unwrap_or_else(|e| panic!("{args:?}: stderr is not JSON ({e}): {}", out.stderr));
        assert_eq!(v["code"], code, "{args:?}: {v}");
        assert!(v["message"].as_str().unwrap().contains(expect), "{v}");
    }
    // An error prints its text once (it printed `not base64url: invalid invite: not
    // base64url`).
    let out = home
        .hush("alice", &["accept", "hush:not-a-link!", "--name", "x"])
        .run()
        .fails();
    assert_eq!(out.error_line(), "hush: invalid invite: not base64url");
    let out = home
        .hush("alice", &["contacts"])
        .passphrase("not the passphrase")
        .run()
        .fails();
    assert_eq!(out.status.code(), Some(3), "{}", out.stderr);
    assert_eq!(out.error_line(), "hush: wrong passphrase");
    let out = home.hush("nobody", &["--json", "contacts"]).run().fails();
    assert_eq!(out.status.code(), Some(4), "{}", out.stderr);
    assert!(out.error_line().contains("\"not_found\""), "{}", out.stderr);
    let out = home.hush("alice", &["init"]).run().fails();
    assert!(out.error_line().contains("exists"), "{}", out.stderr);
    let out = home.hush("../etc", &["contacts"]).run().fails();
    assert!(out.error_line().contains("profile name"), "{}", out.stderr);
}

/// What a terminal would act on: every control character but the line feed, and the bidi
/// embeddings, overrides and isolates.
fn terminal_active(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
        })
        .collect()
}

#[test]
fn peer_text_cannot_drive_the_terminal() {
    let relay = Relay::start();
    let home = Home::new();
    pair(&home, Some(&relay), "alice", "bob");
    // Title set, screen cleared, red, a carriage return over the prefix, a C1 CSI, a
    // right-to-left override and an isolate, and a second line forging another sender.
    let hostile = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31m\rcarol: fake\u{9b}1m\u{202e}gnp.exe\u{2066}\nme: forged";
    assert_eq!(home.send("bob", "alice", hostile), "on-relay");

    let out = home.hush("alice", &["recv"]).run().ok();
    assert_eq!(
        terminal_active(&out.stdout),
        Vec::<char>::new(),
        "{:?}",
        out.stdout
    );
    assert!(
        out.stdout
            .starts_with("bob: ␛]0;pwned␇␛[2J␛[31m␍carol: fake"),
        "{:?}",
        out.stdout
    );
    assert!(
        out.stdout.contains("\\u{9b}1m\\u{202e}gnp.exe\\u{2066}"),
        "{:?}",
        out.stdout
    );
    // The second line of the body cannot pass for a line of output.
    assert!(
        out.stdout.lines().skip(1).all(|l| l.starts_with("  ")),
        "{:?}",
        out.stdout
    );

    let out = home.hush("alice", &["history", "bob"]).run().ok();
    assert_eq!(
        terminal_active(&out.stdout),
        Vec::<char>::new(),
        "{:?}",
        out.stdout
    );
    assert!(out.stdout.contains("bob: ␛]0;pwned"), "{:?}", out.stdout);

    // --json keeps the exact text, in history and in recv.
    let h = home.history("alice", "bob");
    assert_eq!(h.last().unwrap()["text"], hostile);
    assert_eq!(home.send("bob", "alice", hostile), "on-relay");
    assert_eq!(home.recv("alice"), pairs(&[("bob", hostile)]));
}

#[test]
fn invites_are_listed_and_revoked() {
    let home = Home::new();
    home.init("alice", None);
    home.invite("alice", Some("bob"));
    home.hush("alice", &["address"]).json();
    let list = home.hush("alice", &["invites"]).json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["kind"], "one-time");
    assert_eq!(list[0]["name"], "bob");
    assert_eq!(list[0]["uses"], 0);
    assert_eq!(
        list[0]["expires"].as_u64().unwrap(),
        list[0]["created"].as_u64().unwrap() + 7 * 24 * 3600
    );
    assert_eq!(list[1]["kind"], "address");
    assert!(list[1]["expires"].is_null());
    let text = home.hush("alice", &["invites"]).run().ok().stdout;
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("one-time  bob  made "), "{text}");

    let id = list[0]["id"].as_i64().unwrap().to_string();
    let v = home.hush("alice", &["invites", "revoke", &id]).json();
    assert_eq!(v["revoked"].as_i64().unwrap().to_string(), id);
    let left = home.hush("alice", &["invites"]).json();
    assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
    let out = home
        .hush("alice", &["--json", "invites", "revoke", &id])
        .run()
        .fails();
    assert_eq!(out.status.code(), Some(4), "{}", out.stderr);
    assert!(out.error_line().contains("not_found"), "{}", out.stderr);
}

#[test]
fn contacts_are_blocked_and_deleted() {
    let relay = Relay::start();
    let home = Home::new();
    pair(&home, Some(&relay), "alice", "bob");
    let v = home.hush("alice", &["block", "bob"]).json();
    assert_eq!(v["blocked"], true, "{v}");
    assert_eq!(home.send("bob", "alice", "blocked words"), "on-relay");
    assert_eq!(home.recv("alice"), vec![]);
    assert_eq!(home.contacts("alice"), vec!["bob"]);
    let out = home.hush("alice", &["send", "bob", "x"]).run().fails();
    assert!(out.error_line().contains("blocked"), "{}", out.stderr);
    home.hush("alice", &["block", "bob", "--undo"]).json();
    assert_eq!(home.send("bob", "alice", "heard again"), "on-relay");
    assert_eq!(home.recv("alice"), pairs(&[("bob", "heard again")]));

    let v = home.hush("alice", &["delete", "bob"]).json();
    assert_eq!(v["deleted"], true, "{v}");
    assert_eq!(home.contacts("alice"), Vec::<String>::new());
    let out = home.hush("alice", &["history", "bob"]).run().fails();
    assert_eq!(out.status.code(), Some(4), "{}", out.stderr);
}

/// `relay set` connects once: a wrong pin is a certificate mismatch (exit 6), not
/// "unreachable"; a relay that does not answer is unreachable (exit 5); `--no-check` sets it
/// anyway. `relay show` says which relay and how it answers.
#[test]
fn relay_set_checks_the_relay_and_tells_a_wrong_pin_from_unreachable() {
    let relay = Relay::start();
    let home = Home::new();
    home.init("alice", Some(&relay));
    let v = home.hush("alice", &["relay", "show"]).json();
    assert_eq!(v["relay"], relay.address());
    assert_eq!(v["state"], "reachable");
    assert_eq!(v["built_in"], false);

    // The same host and port, another pin: what an interceptor (or a rotated key) shows.
    let (_, host) = relay.address().split_once('@').unwrap();
    let wrong = format!("hush://{}@{host}", "A".repeat(43));
    let out = home
        .hush("alice", &["--json", "relay", "set", &wrong])
        .run()
        .fails();
    assert_eq!(out.status.code(), Some(6), "{}", out.stderr);
    assert!(
        out.error_line().contains("\"certificate_mismatch\""),
        "{}",
        out.stderr
    );
    let out = home.hush("alice", &["relay", "set", &wrong]).run().fails();
    assert!(
        out.error_line().contains("does not match"),
        "{}",
        out.stderr
    );

    let nobody = format!(
        "hush://{}@127.0.0.1:{}",
        &relay.address()[7..50],
        hush_testkit::free_udp_port()
    );
    let out = home
        .hush("alice", &["--json", "relay", "set", &nobody])
        .run()
        .fails();
    assert_eq!(out.status.code(), Some(5), "{}", out.stderr);
    assert!(
        out.error_line().contains("\"relay_unreachable\""),
        "{}",
        out.stderr
    );

    // Nothing was changed by the failed checks; --no-check sets it.
    let v = home.hush("alice", &["relay", "show"]).json();
    assert_eq!(v["relay"], relay.address());
    home.hush("alice", &["relay", "set", &wrong, "--no-check"])
        .json();
    let v = home.hush("alice", &["relay", "show"]).json();
    assert_eq!(v["relay"], wrong);
    assert_eq!(v["state"], "certificate_mismatch");

    // Accepting a link whose relay shows another key: queued, and the reason is named.
    let link = home.invite("alice", Some("bob"));
    home.init("bob", Some(&relay));
    let out = home
        .hush("bob", &["accept", &link, "--name", "alice"])
        .run()
        .ok();
    assert!(
        out.stdout.contains("does not match the link's pin"),
        "{}",
        out.stdout
    );
    let out = home.hush("bob", &["send", "alice", "hello"]).run().ok();
    assert!(
        out.stdout.contains("queued: the relay's certificate"),
        "{}",
        out.stdout
    );
}

/// `wipe` refuses while another process holds the profile (that process would go on
/// decrypting), `--force` wipes anyway, and wiping the last profile removes the built-in
/// relay's directory too. (Seen to fail before: the wipe went through under a running
/// process, and the relay's directory stayed.)
#[test]
fn wipe_takes_the_profile_lock_and_the_last_one_removes_the_built_in_relay() {
    let home = Home::new();
    pair(&home, None, "alice", "bob");
    let relay_dir = home.root().join("embedded-relay");
    assert!(relay_dir.is_dir());
    // Listening long enough for any machine's load; stopped (killed) once the wipe is done.
    // It holds the profile once it serves the built-in relay (watched from outside: a
    // command polling the profile would take its lock and make the listener fail).
    let port: u16 = std::fs::read_to_string(relay_dir.join("port"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let listening = home.hush("alice", &["recv", "--wait", "120"]).spawn();
    let served = poll(Duration::from_secs(60), Duration::from_millis(50), || {
        udp_port_bound(port).then_some(())
    });
    if served.is_none() {
        let out = listening.finish();
        panic!("alice's recv never served the built-in relay: {out:?}");
    }
    let out = home
        .hush("alice", &["--json", "wipe", "--yes"])
        .run()
        .fails();
    assert_eq!(out.status.code(), Some(7), "{}", out.stderr);
    assert!(out.error_line().contains("profile_busy"), "{}", out.stderr);
    assert!(home.profile_dir("alice").join("store.key").exists());
    let v = home.hush("alice", &["wipe", "--yes", "--force"]).json();
    assert_eq!(v["wiped"], true);
    assert!(!home.profile_dir("alice").exists());
    drop(listening);
    assert!(relay_dir.is_dir(), "bob still uses the built-in relay");

    let v = home.hush("bob", &["profiles"]).json();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["name"], "bob");
    home.hush("bob", &["wipe", "--yes"]).json();
    assert!(
        !relay_dir.exists(),
        "the built-in relay's directory outlived every profile"
    );
    let v = home.hush("bob", &["profiles"]).json();
    assert_eq!(v, serde_json::json!([]));
}

#[test]
fn a_short_passphrase_is_warned_about_at_init() {
    let home = Home::new();
    let out = home.hush("alice", &["init"]).passphrase("short").run().ok();
    assert!(
        out.stderr
            .contains("warning: the passphrase is shorter than 12"),
        "{}",
        out.stderr
    );
    let v = home
        .hush("bob", &["init"])
        .passphrase("short")
        .json_allowing_warnings();
    assert!(v["warning"].as_str().unwrap().contains("shorter"), "{v}");
    let out = home
        .hush("carol", &["init"])
        .passphrase("a long enough passphrase")
        .run()
        .ok();
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

/// The owner of an invite chooses the work a source pays per first message: the link names
/// it (byte 98, docs/PROTOCOL.md 3.1), and a difficulty hush's own clients could not pay
/// is refused as a usage error before anything is stored.
#[test]
fn an_invite_names_the_stamp_difficulty_its_owner_chose() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let home = Home::new();
    home.init("khadija", None);
    for (args, bits) in [
        (
            vec!["invite", "--name", "مصدر 📰", "--stamp-bits", "20"],
            20u8,
        ),
        (vec!["address", "--stamp-bits", "0"], 0),
        (vec!["address"], 16),
    ] {
        let v = home.hush("khadija", &args).json();
        let link = v["link"].as_str().unwrap();
        let bin = URL_SAFE_NO_PAD
            .decode(link.strip_prefix("hush:").unwrap())
            .unwrap();
        assert_eq!(bin[98], bits, "{args:?}");
    }
    let out = home
        .hush("خديجة", &["--json", "address", "--stamp-bits", "29"])
        .run()
        .fails();
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    let list = home.hush("khadija", &["invites"]).json();
    assert_eq!(
        list.as_array().unwrap().len(),
        3,
        "the refused one was not stored"
    );
}
