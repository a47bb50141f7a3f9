//! End-to-end tests: the real `hush-relay` binary, real QUIC on loopback, the client module.
//! No test depends on timing: waits are bounded polls for a state, never assertions on speed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::{
    Error, RelayClient, TestRelay, assert_acked_stored, client_endpoint, deposit_storm, mailbox,
    relay_error, sealed, secret, storm_and_kill9, take_acks,
};
use hush_proto::{
    DeleteIds, ENVELOPE_LEN, EnvelopeId, ErrorCode, FRAME_LEN, MAX_SECRETS, Request, Response,
    SecretBatch,
};
use hush_testkit::{contains, hooks, poll_async, relay_bin};

fn code(e: &Error) -> ErrorCode {
    relay_error(e)
        .unwrap_or_else(|| panic!("expected a relay error, got {e}"))
        .code
}

fn batch(tag: &str, range: std::ops::Range<u64>) -> SecretBatch {
    SecretBatch::new(range.map(|i| secret(tag, i)).collect()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_round_trips() {
    let relay = TestRelay::start(&[]);
    let c = relay.client().await;

    let pong = c.ping().await.unwrap();
    assert_eq!((pong.min_version, pong.max_version), (2, 2));
    assert_eq!(pong.mailbox_quota, 256);
    assert_eq!(pong.expiry_secs, 7 * 24 * 3600);

    // Subscribe first, then deposit: the deposit is pushed after its commit.
    let mut sub = c.subscribe(batch("rt", 0..2)).await.unwrap();
    assert_eq!(sub.count(), 2);
    let other = relay.client().await;
    let id = other
        .deposit(mailbox("rt", 1), sealed(b"hello", 1))
        .await
        .unwrap();
    let pushed = sub.next().await.unwrap();
    assert_eq!(pushed.id, id);
    assert_eq!(pushed.mailbox, mailbox("rt", 1));
    assert_eq!(pushed.envelope, sealed(b"hello", 1));

    // Fetch serves catch-up; a fetch with the wrong secret sees nothing.
    let page = c.fetch(batch("rt", 1..2), EnvelopeId(0)).await.unwrap();
    assert!(!page.more);
    assert_eq!(page.deliveries.len(), 1);
    assert_eq!(page.deliveries[0].envelope, sealed(b"hello", 1));
    let page = c.fetch(batch("rt", 5..6), EnvelopeId(0)).await.unwrap();
    assert!(page.deliveries.is_empty());
    // Cursor: nothing after the last id.
    let page = c.fetch(batch("rt", 1..2), id).await.unwrap();
    assert!(page.deliveries.is_empty());

    // Delete needs the fetch secret of that mailbox.
    let wrong = c
        .delete(secret("rt", 0), DeleteIds::new(vec![id]).unwrap())
        .await
        .unwrap_err();
    assert_eq!(code(&wrong), ErrorCode::UnknownEnvelope);
    let out = c
        .delete(
            secret("rt", 1),
            DeleteIds::new(vec![id, EnvelopeId(999_999)]).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!((out.deleted, out.expired, out.unknown), (1, 0, 1));
    let again = c
        .delete(secret("rt", 1), DeleteIds::new(vec![id]).unwrap())
        .await
        .unwrap_err();
    assert_eq!(code(&again), ErrorCode::UnknownEnvelope);
    assert!(c.fetch_all(&[secret("rt", 1)]).await.unwrap().is_empty());

    // Paging: 300 envelopes in 2 mailboxes need two fetch pages of at most 256.
    let mut want = HashSet::new();
    let mut tasks = Vec::new();
    let c = Arc::new(c);
    for i in 0..300u64 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.deposit(mailbox("page", i % 2), sealed(b"p", i)).await
        }));
    }
    for t in tasks {
        want.insert(t.await.unwrap().unwrap());
    }
    let page = c.fetch(batch("page", 0..2), EnvelopeId(0)).await.unwrap();
    assert!(page.more);
    assert_eq!(page.deliveries.len(), 256);
    let all = c
        .fetch_all(&[secret("page", 0), secret("page", 1)])
        .await
        .unwrap();
    let got: HashSet<_> = all.iter().map(|d| d.id).collect();
    assert_eq!(got, want);
    assert!(
        all.windows(2).all(|w| w[0].id < w[1].id),
        "fetch is in id order"
    );

    // More subscriptions than the per-connection limit (16) are refused.
    let mut subs = Vec::new();
    // One subscription (`sub`) is already live on this connection.
    for i in 0..15u64 {
        subs.push(c.subscribe(batch("many", i..i + 1)).await.unwrap());
    }
    let e = c.subscribe(batch("many", 99..100)).await.unwrap_err();
    assert_eq!(code(&e), ErrorCode::TooManySubscriptions);
    drop(subs);

    assert_eq!(relay.metric("hush_relay_deposits_stored_total"), 301);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_messages_and_shutdown_is_graceful() {
    let mut relay = TestRelay::start(&[]);
    let c = relay.client().await;
    let mut ids = Vec::new();
    for i in 0..20u64 {
        ids.push(
            c.deposit(mailbox("keep", i % 3), sealed(b"kept", i))
                .await
                .unwrap(),
        );
    }
    let mut sub = c.subscribe(batch("keep", 0..1)).await.unwrap();

    let status = relay.terminate();
    assert!(status.success(), "graceful exit: {status}");
    // The subscriber is told why its stream ends.
    match sub.next().await {
        Err(e) => assert_eq!(
            relay_error(&e).map(|f| f.code),
            Some(ErrorCode::ShuttingDown),
            "{e}"
        ),
        Ok(_) => panic!("no push expected"),
    }
    assert!(relay.all_logs().contains("stopped"));

    relay.run();
    let c = relay.client().await;
    let secrets: Vec<_> = (0..3).map(|i| secret("keep", i)).collect();
    let all = c.fetch_all(&secrets).await.unwrap();
    assert_eq!(all.iter().map(|d| d.id).collect::<Vec<_>>(), ids);
    for (i, d) in all.iter().enumerate() {
        assert_eq!(d.envelope, sealed(b"kept", i as u64));
        assert_eq!(d.mailbox, mailbox("keep", i as u64 % 3));
    }
    // New ids continue after the old ones.
    let next = c
        .deposit(mailbox("keep", 0), sealed(b"x", 99))
        .await
        .unwrap();
    assert!(next > *ids.last().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_concurrent_deposits_loses_no_acknowledged_deposit() {
    const TOTAL: u64 = 10_000;
    const CONNS: u64 = 40;
    const MAILBOXES: u64 = 100;
    let mut relay = TestRelay::start(&[]);
    let clients = relay.clients(CONNS as usize).await;
    // Killed once a good share is acknowledged but (normally) many are still in flight.
    let acked = storm_and_kill9(&mut relay, &clients, TOTAL, ("k9", MAILBOXES), b"k9").await;
    assert!(!acked.is_empty());
    drop(clients);

    relay.run();
    let c = relay.client().await;
    let stored = assert_acked_stored(&c, &acked, ("k9", MAILBOXES), b"k9").await;
    eprintln!(
        "kill -9: {} acknowledged, {stored} stored after restart, {TOTAL} attempted",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_specific_errors_while_others_are_served() {
    let relay = TestRelay::start(&[]);
    let bad = relay.client().await;
    let good = relay.client().await;

    // A well-behaved client keeps depositing the whole time.
    let good = Arc::new(good);
    let g = good.clone();
    let background = tokio::spawn(async move {
        let mut n = 0u64;
        for i in 0..50u64 {
            g.deposit(mailbox("good", 0), sealed(b"g", i))
                .await
                .unwrap();
            g.ping().await.unwrap();
            n += 1;
        }
        n
    });

    let ping = Request::Ping.encode();
    let expect = |resps: Vec<Response>, want: ErrorCode| match resps.as_slice() {
        [Response::Error(e)] => {
            assert_eq!(e.code, want);
            e.arg
        }
        other => panic!("expected one {want:?} error, got {other:?}"),
    };
    expect(
        bad.raw_request(&ping[..100]).await.unwrap(),
        ErrorCode::Truncated,
    );
    expect(bad.raw_request(&[]).await.unwrap(), ErrorCode::Truncated);
    let mut over = ping.to_vec();
    over.push(0);
    expect(bad.raw_request(&over).await.unwrap(), ErrorCode::Oversized);
    expect(
        bad.raw_request(&vec![7u8; 1 << 20]).await.unwrap(),
        ErrorCode::Oversized,
    );
    let garbage: Vec<u8> = (0..FRAME_LEN).map(|i| (i * 131 + 17) as u8).collect();
    let arg = expect(
        bad.raw_request(&garbage).await.unwrap(),
        ErrorCode::UnsupportedVersion,
    );
    assert_eq!(
        arg, 0x0202,
        "version error advertises the relay's range 2..=2"
    );
    let mut f = ping.clone();
    f[1] = 0x42;
    expect(
        bad.raw_request(&f[..]).await.unwrap(),
        ErrorCode::UnknownKind,
    );
    let resp_kind = Response::Deposited(EnvelopeId(1)).encode();
    expect(
        bad.raw_request(&resp_kind[..]).await.unwrap(),
        ErrorCode::UnexpectedKind,
    );
    let mut f = ping.clone();
    f[2] = 1;
    expect(
        bad.raw_request(&f[..]).await.unwrap(),
        ErrorCode::ReservedNotZero,
    );
    let mut f = ping.clone();
    f[FRAME_LEN - 1] = 1;
    expect(
        bad.raw_request(&f[..]).await.unwrap(),
        ErrorCode::PaddingNotZero,
    );
    let mut f = Request::Subscribe {
        secrets: batch("x", 0..1),
    }
    .encode();
    f[4..6].copy_from_slice(&((MAX_SECRETS + 1) as u16).to_be_bytes());
    expect(bad.raw_request(&f[..]).await.unwrap(), ErrorCode::BadCount);

    // The misbehaving connection is still served normally.
    bad.ping().await.unwrap();

    // Wrong ALPN: the TLS handshake fails (the relay answers with the TLS alert
    // no_application_protocol), named as a version mismatch; a version-1 client (`hush/1`)
    // meets the same; a wrong pin fails too.
    let ep = client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    for alpn in [&b"hush/9"[..], b"hush/1"] {
        let e = RelayClient::connect_with_alpn(&ep, relay.addr(), alpn)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::VersionMismatch), "{e}");
    }
    let mut wrong = relay.addr().clone();
    wrong.pin.0[0] ^= 1;
    let e = RelayClient::connect_with(&ep, &wrong).await.unwrap_err();
    // The client refuses the relay's certificate: it does not match the pin.
    assert!(matches!(e, Error::PinMismatch), "{e}");

    assert_eq!(background.await.unwrap(), 50);
    good.ping().await.unwrap();
    assert!(relay.metric("hush_relay_errors_total{code=\"truncated\"}") >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_rate_limit_connection_limit_and_expiry_are_enforced() {
    let mut relay = TestRelay::start(&[
        ("HUSH_RELAY_LIMITS_MAILBOX_QUOTA", "3"),
        (
            "HUSH_RELAY_LIMITS_MAX_STORED_BYTES",
            &(5 * ENVELOPE_LEN).to_string(),
        ),
        ("HUSH_RELAY_LIMITS_MAX_CONNECTIONS", "2"),
    ]);
    let c = relay.client().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(c.deposit(mailbox("q", 0), sealed(b"q", i)).await.unwrap());
    }
    let e = c
        .deposit(mailbox("q", 0), sealed(b"q", 3))
        .await
        .unwrap_err();
    assert_eq!(code(&e), ErrorCode::MailboxFull);
    // Other mailboxes are not affected by one mailbox's quota...
    c.deposit(mailbox("q", 1), sealed(b"q", 4)).await.unwrap();
    c.deposit(mailbox("q", 1), sealed(b"q", 5)).await.unwrap();
    // ...but by the global one (5 envelopes).
    let e = c
        .deposit(mailbox("q", 2), sealed(b"q", 6))
        .await
        .unwrap_err();
    assert_eq!(code(&e), ErrorCode::RelayFull);
    // Deleting frees quota.
    c.delete(secret("q", 0), DeleteIds::new(vec![ids[0]]).unwrap())
        .await
        .unwrap();
    c.deposit(mailbox("q", 0), sealed(b"q", 7)).await.unwrap();

    // Connection limit: a second connection is fine, a third is refused.
    let c2 = relay.client().await;
    c2.ping().await.unwrap();
    let ep = client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let e = RelayClient::connect_with(&ep, relay.addr())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Connection(_)), "{e}");
    assert!(relay.metric("hush_relay_connections_refused_total") >= 1);
    drop(c2);

    // Expiry: restart 8 days later (shifted clock); the startup sweep removes everything.
    drop(c);
    assert!(relay.terminate().success());
    relay.set_env(hooks::RELAY_CLOCK_OFFSET, 8 * 24 * 3600);
    relay.run();
    let c = relay.client().await;
    let secrets: Vec<_> = (0..3).map(|i| secret("q", i)).collect();
    let mut left = usize::MAX;
    poll_async(
        Duration::from_secs(10),
        Duration::from_millis(20),
        async || {
            left = c.fetch_all(&secrets).await.unwrap().len();
            (left == 0).then_some(())
        },
    )
    .await;
    assert_eq!(left, 0, "expired envelopes are gone");
    let e = c
        .delete(secret("q", 0), DeleteIds::new(vec![ids[1]]).unwrap())
        .await
        .unwrap_err();
    assert_eq!(code(&e), ErrorCode::Expired);
    assert!(relay.metric("hush_relay_envelopes_expired_total") >= 5);
    // Deleting what expired is a normal outcome, not an error.
    assert_eq!(
        relay.metric("hush_relay_deletes_total{outcome=\"expired\"}"),
        1
    );
    assert_eq!(relay.metric("hush_relay_errors_total{code=\"expired\"}"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_rate_limited() {
    let relay = TestRelay::start(&[
        ("HUSH_RELAY_LIMITS_REQUESTS_PER_SEC", "1"),
        ("HUSH_RELAY_LIMITS_REQUEST_BURST", "5"),
    ]);
    let c = Arc::new(relay.client().await);
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { c.ping().await }));
    }
    let mut limited = 0;
    for t in tasks {
        if let Err(e) = t.await.unwrap() {
            let f = relay_error(&e).unwrap();
            assert_eq!(f.code, ErrorCode::RateLimited);
            assert!(f.arg >= 1, "retry-after is given");
            limited += 1;
        }
    }
    // 30 requests against a burst of 5 at 1/s: most must be refused unless >25 s passed.
    assert!(limited > 0);
    // Another connection has its own bucket.
    relay.client().await.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_connections_are_served() {
    const N: usize = 1000;
    let relay = TestRelay::start(&[]);
    // 10 client sockets, 100 connections each.
    let endpoints: Vec<_> = (0..10)
        .map(|_| client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap())
        .collect();
    // At most 100 handshakes at a time (all 1,000 connections stay open together): a
    // thundering herd of handshakes on a 2-core test machine tests the kernel's UDP buffers,
    // not the relay.
    let handshakes = Arc::new(tokio::sync::Semaphore::new(100));
    let mut tasks = Vec::new();
    for i in 0..N {
        let ep = endpoints[i % endpoints.len()].clone();
        let addr = relay.addr().clone();
        let handshakes = handshakes.clone();
        tasks.push(tokio::spawn(async move {
            let permit = handshakes.acquire_owned().await.unwrap();
            let c = RelayClient::connect_with(&ep, &addr).await.unwrap();
            drop(permit);
            let id = c
                .deposit(mailbox("thousand", i as u64), sealed(b"t", i as u64))
                .await
                .unwrap();
            (c, id)
        }));
    }
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    // All connections are open at the same time, and each one still works.
    assert_eq!(relay.metric("hush_relay_connections_open"), N as u64);
    let mut checks = Vec::new();
    for (i, (c, id)) in clients.into_iter().enumerate() {
        checks.push(tokio::spawn(async move {
            let page = c
                .fetch(
                    SecretBatch::new(vec![secret("thousand", i as u64)]).unwrap(),
                    EnvelopeId(0),
                )
                .await
                .unwrap();
            assert_eq!(page.deliveries.len(), 1);
            assert_eq!(page.deliveries[0].id, id);
            c
        }));
    }
    for t in checks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_logs_and_metrics_hold_no_plaintext_secret_or_address() {
    let mut relay = TestRelay::start(&[("HUSH_RELAY_LOG_LEVEL", "trace")]);
    let plaintext = b"MEET-AT-THE-OLD-BRIDGE-AT-NINE-PLAINTEXT-MARKER";
    let c = relay.client().await;
    let mut ids = Vec::new();
    for i in 0..10u64 {
        ids.push(
            c.deposit(mailbox("priv", i), sealed(plaintext, i))
                .await
                .unwrap(),
        );
    }
    let secrets: Vec<_> = (0..10).map(|i| secret("priv", i)).collect();
    assert_eq!(c.fetch_all(&secrets).await.unwrap().len(), 10);
    let mut sub = c.subscribe(batch("priv", 0..10)).await.unwrap();
    c.deposit(mailbox("priv", 3), sealed(plaintext, 77))
        .await
        .unwrap();
    sub.next().await.unwrap();
    c.delete(secret("priv", 0), DeleteIds::new(vec![ids[0]]).unwrap())
        .await
        .unwrap();
    // Malformed input is logged as nothing more than an aggregate.
    let _ = c.raw_request(&[1, 2, 3]).await.unwrap();
    let metrics = relay.http_get("/metrics");
    let health = relay.http_get("/health");
    assert!(
        health.contains("200 OK") && health.ends_with("ok\n"),
        "{health}"
    );
    drop(sub);
    drop(c);
    assert!(relay.terminate().success());

    // The store: the index and the slot file with the bodies.
    let mut db = std::fs::read(relay.dir().join("data/relay.redb")).unwrap();
    db.extend(std::fs::read(relay.dir().join("data").join(hush_relay::store::SLOT_FILE)).unwrap());
    let logs = relay.all_logs();
    assert!(logs.contains("relay listening"), "logs were captured");
    assert!(db.len() > 10 * ENVELOPE_LEN, "database holds the envelopes");
    // The stored bytes are exactly the sealed envelopes: present, and no plaintext.
    assert!(contains(&db, sealed(plaintext, 5).as_bytes()));
    assert!(!contains(&db, plaintext));
    assert!(!contains(logs.as_bytes(), plaintext));
    for s in &secrets {
        let hex_secret = hex(s.as_bytes());
        assert!(!contains(&db, s.as_bytes()), "fetch secret in database");
        assert!(!contains(logs.as_bytes(), s.as_bytes()));
        assert!(!logs.contains(&hex_secret), "fetch secret in logs");
        assert!(!metrics.contains(&hex_secret));
        let mb = s.mailbox_id();
        assert!(!logs.contains(&hex(mb.as_bytes())), "mailbox id in logs");
        assert!(
            !metrics.contains(&hex(mb.as_bytes())),
            "mailbox id in metrics"
        );
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(mb.as_bytes());
        assert!(!logs.contains(&b64[..20]));
    }
    // No IP address of any kind in the logs (loopback clients would be 127.0.0.1).
    assert!(
        !logs.contains("127.0.0.1") && !logs.contains("::1"),
        "{logs}"
    );
    // Deleted envelopes are gone from the live data (content check on a fetch after restart).
    relay.run();
    let c = relay.client().await;
    let left = c.fetch_all(&secrets).await.unwrap();
    assert_eq!(left.len(), 10);
    assert!(left.iter().all(|d| d.id != ids[0]));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn check_reports_line_precise_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("r");
    let out = std::process::Command::new(relay_bin())
        .args(["init", "--dir"])
        .arg(&d)
        .args(["--public-address", "relay.example.org:4433"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let cfg = d.join("config.toml");
    let ok = std::process::Command::new(relay_bin())
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("relay address: hush://"));
    // init refuses to overwrite.
    let again = std::process::Command::new(relay_bin())
        .args(["init", "--dir"])
        .arg(&d)
        .args(["--public-address", "relay.example.org:4433"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));

    let text = std::fs::read_to_string(&cfg).unwrap();
    let bad = text.replace("expiry_secs = 604800", "expiry_secs = \"a week\"");
    let line = bad
        .lines()
        .position(|l| l.starts_with("expiry_secs"))
        .unwrap()
        + 1;
    std::fs::write(&cfg, bad).unwrap();
    let out = std::process::Command::new(relay_bin())
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("line {line}")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_dropped() {
    let relay = TestRelay::start(&[("HUSH_RELAY_LIMITS_IDLE_TIMEOUT_SECS", "1")]);
    // The client's keep-alive (15 s) is longer than the relay's idle timeout (1 s), so the
    // connection goes silent and the relay drops it.
    let c = relay.client().await;
    c.ping().await.unwrap();
    let mut open = u64::MAX;
    poll_async(
        Duration::from_secs(30),
        Duration::from_millis(100),
        async || {
            open = relay.metric("hush_relay_connections_open");
            (open == 0).then_some(())
        },
    )
    .await;
    assert_eq!(open, 0, "the idle connection was dropped");
    assert!(c.ping().await.is_err());
    // New connections are still welcome.
    relay.client().await.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_concurrent_deposits_keeps_every_acknowledged_one() {
    const TOTAL: u64 = 2_000;
    const CONNS: u64 = 10;
    let mut relay = TestRelay::start(&[]);
    let clients = relay.clients(CONNS as usize).await;
    let (tasks, mut ack_rx) = deposit_storm(&clients, TOTAL, ("term", 10), b"t", |e| {
        // Refusals during shutdown are explicit, or the connection closes.
        if let Some(f) = relay_error(&e) {
            assert_eq!(f.code, ErrorCode::ShuttingDown, "{e}");
        }
    });
    let mut acked = HashMap::new();
    take_acks(&mut ack_rx, &mut acked, (TOTAL / 4) as usize).await;
    let status = relay.terminate();
    assert!(status.success(), "graceful exit: {status}");
    for t in tasks {
        t.await.unwrap();
    }
    // Every task has ended: this takes the rest and stops.
    take_acks(&mut ack_rx, &mut acked, usize::MAX).await;
    drop(clients);

    relay.run();
    let c = relay.client().await;
    let secrets: Vec<_> = (0..10).map(|i| secret("term", i)).collect();
    let stored: HashMap<EnvelopeId, _> = c
        .fetch_all(&secrets)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d))
        .collect();
    for (n, id) in &acked {
        let d = stored
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged deposit {n} lost in a graceful shutdown"));
        assert_eq!(d.envelope, sealed(b"t", *n));
    }
}
