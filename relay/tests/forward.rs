//! Private routing between two real `hush-relay` processes (docs/PROTOCOL.md II.4.2): the
//! forwarding relay on 127.0.0.2, the destination on 127.0.0.3, clients on 127.0.0.4 and up,
//! so that each relay's test-hooks record of peer addresses and request frames shows who saw
//! what. Every attacker here is real: a hostile forwarding relay (the substitution hook), a
//! replaying one, a client sending garbage.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

mod common;

use common::{Error, RelayClient, client_at, lo, peers, record, relay_at, relay_error, sealed};
use hush_proto::drop::mint_stamp;
use hush_proto::forward::{self, Destination, InnerRequest, RequestId};
use hush_proto::{DropAddress, ErrorCode, FetchSecret, Request};
use hush_testkit::hooks;

const FORWARDER: &str = "127.0.0.2";
const DESTINATION: &str = "127.0.0.3";

fn text_envelope(text: &str, n: u64) -> hush_proto::Envelope {
    sealed(text.as_bytes(), n)
}

fn request_id(n: u8) -> RequestId {
    RequestId([n; 16])
}

/// The destination never sees a client's address; the forwarding relay never sees the
/// mailbox id, the drop id or a byte run of the envelopes; two clients' forwards share one
/// connection to the destination; the owner fetches what arrived.
/// Seen to fail with the client depositing to the destination directly (its address,
/// 127.0.0.4, in the destination's record). With the seal's ChaCha20 step skipped it
/// failed earlier, at the deposit (`ForwardUnsealable`), not at the leak check.
#[tokio::test(flavor = "multi_thread")]
async fn the_destination_never_sees_the_client_and_the_forwarder_never_sees_the_content() {
    let dir = tempfile::tempdir().unwrap();
    let (forwarder, fwd_record) = relay_at(FORWARDER, dir.path(), &[]);
    let (destination, dst_record) = relay_at(DESTINATION, dir.path(), &[]);
    let dest = Destination::new(destination.addr().clone()).unwrap();

    let alice = client_at(&forwarder, 4).await;
    let key = alice.fetch_forward_key(&dest).await.unwrap();
    let secret = common::secret("forward", 1);
    let mailbox = secret.mailbox_id();
    let env = text_envelope("新闻来源 مصدر سري 🕵️‍♀️ the meeting is at nine", 1);
    let id = alice
        .forward_deposit(
            &dest,
            &key,
            request_id(1),
            Request::Deposit {
                mailbox,
                envelope: env.clone(),
            },
        )
        .await
        .unwrap();

    // A first message to a tip line's drop, with its stamp, from another client.
    let owner = FetchSecret::from_bytes({
        let mut f = [0x3c; 32];
        f[0] = 6;
        f
    });
    let drop = DropAddress::of_secret(&owner);
    let first = text_envelope("ok", 2);
    let stamp = mint_stamp(&drop.storage_key(), &first, drop.bits, [1; 8]);
    let bob = client_at(&forwarder, 6).await;
    let bob_key = bob.fetch_forward_key(&dest).await.unwrap();
    bob.forward_deposit(
        &dest,
        &bob_key,
        request_id(2),
        Request::DepositStamped {
            drop,
            stamp,
            envelope: first.clone(),
        },
    )
    .await
    .unwrap();

    // The owner reads both directly from its own relay.
    let reader = client_at(&destination, 5).await;
    let got = reader.fetch_all(&[secret]).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, id);
    assert_eq!(got[0].envelope, env);
    let got = reader.fetch_all_drops(&[owner]).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].envelope, first);

    let dst = record(&dst_record);
    let fwd = record(&fwd_record);
    assert!(
        fwd.contains("conn 127.0.0.4") && fwd.contains("conn 127.0.0.6"),
        "{}",
        &fwd[..fwd.len().min(400)]
    );
    assert_eq!(
        peers(&dst),
        [FORWARDER, "127.0.0.5"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        "the destination saw only the forwarding relay and the owner"
    );
    assert_eq!(
        dst.lines()
            .filter(|l| *l == format!("conn {FORWARDER}"))
            .count(),
        1,
        "one connection from the forwarding relay, shared by both clients"
    );
    // What the forwarding relay read from its clients holds neither id nor content.
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    for needle in [
        hex(mailbox.as_bytes()),
        hex(drop.id.as_bytes()),
        hex(&env.as_bytes()[..16]),
        hex(&env.as_bytes()[2000..2016]),
        hex(&first.as_bytes()[4080..]),
    ] {
        assert!(!fwd.contains(&needle), "the forwarder saw {needle}");
    }
    // The record is real: the destination's own fetch frame carries the secret in clear.
    assert!(dst.contains(&hex(&common::secret("forward", 1).as_bytes()[..])));
}

/// A forwarding relay that puts its own key into the destination's statement is refused
/// by the client before anything is sealed to it. Seen to fail with the signature check
/// in `KeyStatement::verify` removed (the client accepted the forwarder's key).
#[tokio::test(flavor = "multi_thread")]
async fn a_forwarding_relay_that_substitutes_the_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (hostile, _) = relay_at(
        FORWARDER,
        dir.path(),
        &[(hooks::RELAY_SUBSTITUTE_FORWARD_KEY, "1")],
    );
    let (destination, _) = relay_at(DESTINATION, dir.path(), &[]);
    let dest = Destination::new(destination.addr().clone()).unwrap();
    let c = client_at(&hostile, 4).await;
    match c.fetch_forward_key(&dest).await {
        Err(Error::ForwardKeyRefused(why)) => assert_eq!(why, "bad signature"),
        other => panic!("expected ForwardKeyRefused, got {other:?}"),
    }
    // The statement the destination gives itself verifies: the refusal was the swap.
    let direct = RelayClient::connect_from(destination.addr(), Some(lo(5)))
        .await
        .unwrap();
    direct
        .forward_key()
        .await
        .unwrap()
        .verify(&destination.addr().pin)
        .unwrap();
}

/// A Forward replayed with the same ephemeral key is refused by the destination
/// (`ForwardReplay`) and stores nothing; a retry of the same message under a fresh key
/// (the client lost the answer) gets the first answer and is stored once; a tampered one
/// does not open. Seen to fail with the replay check removed (the replay was answered
/// `Forwarded`) and with the answer memory removed (the retry got a new envelope id).
#[tokio::test(flavor = "multi_thread")]
async fn replays_are_refused_and_a_retried_deposit_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let (forwarder, _) = relay_at(FORWARDER, dir.path(), &[]);
    let (destination, _) = relay_at(DESTINATION, dir.path(), &[]);
    let dest = Destination::new(destination.addr().clone()).unwrap();
    let c = client_at(&forwarder, 4).await;
    let key = c.fetch_forward_key(&dest).await.unwrap();
    let secret = common::secret("replay", 1);
    let inner = InnerRequest {
        id: request_id(7),
        request: Request::Deposit {
            mailbox: secret.mailbox_id(),
            envelope: text_envelope("重放 إعادة 🔁", 3),
        },
    };
    let (sealed, keys) = forward::seal_request(&key, [0x21; 32], &inner).unwrap();
    let answer = c.forward(&dest, sealed.clone()).await.unwrap();
    let first = forward::open_answer(&keys, &inner.id, &answer).unwrap();
    // The forwarding relay (or anyone on the way) replays the same bytes.
    let replay = c.forward(&dest, sealed.clone()).await.unwrap_err();
    assert_eq!(relay_error(&replay).unwrap().code, ErrorCode::ForwardReplay);
    // The client retries the message under a fresh key: the first answer, nothing new.
    let (again, keys2) = forward::seal_request(&key, [0x22; 32], &inner).unwrap();
    let answer2 = c.forward(&dest, again).await.unwrap();
    assert_eq!(
        forward::open_answer(&keys2, &inner.id, &answer2).unwrap(),
        first
    );
    // The answer is sealed to the command: the first command's keys do not open it.
    assert!(forward::open_answer(&keys, &inner.id, &answer2).is_err());
    let mut bent = sealed.clone();
    bent.ephemeral[0] ^= 0x40;
    let e = c.forward(&dest, bent).await.unwrap_err();
    assert_eq!(relay_error(&e).unwrap().code, ErrorCode::ForwardUnsealable);
    let stored = client_at(&destination, 5)
        .await
        .fetch_all(&[secret])
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "stored exactly once");
}

/// Each refusal is specific: a relay whose operator turned forwarding off, a destination
/// that is the relay itself, one that does not answer, one whose certificate is not its
/// pin. Nothing is sent on in any of them.
#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_specific() {
    let dir = tempfile::tempdir().unwrap();
    // A short wait for the destination that never answers below.
    let (forwarder, _) = relay_at(
        FORWARDER,
        dir.path(),
        &[("HUSH_RELAY_FORWARDING_TIMEOUT_SECS", "2")],
    );
    let (closed, _) = relay_at(
        DESTINATION,
        dir.path(),
        &[("HUSH_RELAY_FORWARDING_ENABLED", "false")],
    );
    let code = |r: Result<hush_proto::forward::VerifiedKey, Error>| {
        relay_error(&r.unwrap_err()).unwrap().code
    };
    // The relay with forwarding off refuses to forward, and still takes deliveries.
    let c = client_at(&closed, 4).await;
    let to_forwarder = Destination::new(forwarder.addr().clone()).unwrap();
    assert_eq!(
        code(c.fetch_forward_key(&to_forwarder).await),
        ErrorCode::ForwardingDisabled
    );
    let c = client_at(&forwarder, 4).await;
    let key = c
        .fetch_forward_key(&Destination::new(closed.addr().clone()).unwrap())
        .await
        .unwrap();
    let env = text_envelope("still delivered", 4);
    c.forward_deposit(
        &Destination::new(closed.addr().clone()).unwrap(),
        &key,
        request_id(1),
        Request::Deposit {
            mailbox: common::mailbox("closed", 1),
            envelope: env,
        },
    )
    .await
    .unwrap();
    // To itself.
    assert_eq!(
        code(c.fetch_forward_key(&to_forwarder).await),
        ErrorCode::ForwardToSelf
    );
    // Nobody listens there.
    let mut nowhere = closed.addr().clone();
    nowhere.port = hush_testkit::free_udp_port();
    nowhere.host = hush_proto::Host::Ip(lo(1));
    assert_eq!(
        code(
            c.fetch_forward_key(&Destination::new(nowhere).unwrap())
                .await
        ),
        ErrorCode::ForwardUnreachable
    );
    // The destination's host and port under another pin: interception, as the forwarding
    // relay sees it.
    let mut wrong_pin = closed.addr().clone();
    wrong_pin.pin.0[0] ^= 1;
    assert_eq!(
        code(
            c.fetch_forward_key(&Destination::new(wrong_pin).unwrap())
                .await
        ),
        ErrorCode::ForwardPinMismatch
    );
}

/// A forwarding relay carries many clients from one address, so the destination counts
/// the stamped deposits it delivers to a drop against a share of their own
/// (`forwarded_drop_deposits_per_source`), not the share of one direct source: one client
/// of a busy relay cannot keep that relay's other clients out of a tip line for the window.
/// Here the direct share is 2 and the forwarded one 5: a direct source gets 2, two clients
/// of the forwarder get 5 between them, the sixth is `RateLimited`. Seen to fail with
/// deliveries counted against the direct share: the forwarder's third deposit was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_first_messages_to_a_drop_have_a_share_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let (forwarder, _) = relay_at(FORWARDER, dir.path(), &[]);
    let (destination, _) = relay_at(
        DESTINATION,
        dir.path(),
        &[
            ("HUSH_RELAY_LIMITS_LOOPBACK_EXEMPT", "false"),
            ("HUSH_RELAY_LIMITS_DROP_DEPOSITS_PER_SOURCE", "2"),
            ("HUSH_RELAY_LIMITS_FORWARDED_DROP_DEPOSITS_PER_SOURCE", "5"),
        ],
    );
    let dest = Destination::new(destination.addr().clone()).unwrap();
    let owner = FetchSecret::from_bytes({
        let mut f = [0x5a; 32];
        f[0] = 4;
        f
    });
    let drop = DropAddress::of_secret(&owner);
    let stamped = |n: u64| {
        let envelope = text_envelope(&format!("线人 {n} — مصدر 🗞️"), n);
        let stamp = mint_stamp(&drop.storage_key(), &envelope, drop.bits, [n as u8; 8]);
        Request::DepositStamped {
            drop,
            stamp,
            envelope,
        }
    };
    let deposit_code = |r: Result<hush_proto::EnvelopeId, Error>| match r {
        Ok(_) => None,
        Err(e) => Some(relay_error(&e).unwrap().code),
    };

    // A direct source (no forwarder): its share is 2.
    let direct = client_at(&destination, 7).await;
    let mut codes = Vec::new();
    for n in 0..3 {
        let Request::DepositStamped {
            stamp, envelope, ..
        } = stamped(n)
        else {
            unreachable!()
        };
        codes.push(deposit_code(
            direct.deposit_stamped(drop, stamp, envelope).await,
        ));
    }
    assert_eq!(codes, [None, None, Some(ErrorCode::RateLimited)]);

    // Two clients of the forwarder: 5 between them, then the forwarder's share is spent.
    let alice = client_at(&forwarder, 4).await;
    let bob = client_at(&forwarder, 6).await;
    let key = alice.fetch_forward_key(&dest).await.unwrap();
    let mut codes = Vec::new();
    for n in 10..16u64 {
        let who = if n % 2 == 0 { &alice } else { &bob };
        let r = who
            .forward_deposit(&dest, &key, request_id(n as u8), stamped(n))
            .await;
        codes.push(deposit_code(r));
    }
    assert_eq!(
        codes,
        [None, None, None, None, None, Some(ErrorCode::RateLimited)]
    );
    let reader = client_at(&destination, 5).await;
    assert_eq!(reader.fetch_all_drops(&[owner]).await.unwrap().len(), 7);
}

/// Not a test: measures a forwarded deposit against a direct one, in the same run, for
/// docs/BENCHMARKS.md (`cargo test -p hush-relay --features test-hooks --test forward
/// --release -- --ignored --nocapture forwarded_against_direct`). Prints figures; asserts
/// nothing about speed.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, run by hand"]
async fn forwarded_against_direct() {
    let dir = tempfile::tempdir().unwrap();
    let (forwarder, _) = relay_at(FORWARDER, dir.path(), &[]);
    let (destination, _) = relay_at(DESTINATION, dir.path(), &[]);
    let dest = Destination::new(destination.addr().clone()).unwrap();
    let via = client_at(&forwarder, 4).await;
    let key = via.fetch_forward_key(&dest).await.unwrap();
    let direct = client_at(&destination, 5).await;
    let n = 300u64;
    let mut times = [Vec::new(), Vec::new()];
    for i in 0..n {
        let mailbox = common::mailbox("bench", i);
        let t = std::time::Instant::now();
        direct
            .deposit(mailbox, text_envelope("d", i))
            .await
            .unwrap();
        times[0].push(t.elapsed());
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&i.to_be_bytes());
        let t = std::time::Instant::now();
        via.forward_deposit(
            &dest,
            &key,
            RequestId(id),
            Request::Deposit {
                mailbox,
                envelope: text_envelope("f", i),
            },
        )
        .await
        .unwrap();
        times[1].push(t.elapsed());
    }
    for t in &mut times {
        t.sort();
    }
    let median = |t: &Vec<std::time::Duration>| t[t.len() / 2];
    let p99 = |t: &Vec<std::time::Duration>| t[t.len() * 99 / 100];
    println!(
        "direct deposit: median {:?} p99 {:?}; forwarded: median {:?} p99 {:?}; ratio of medians {:.2}",
        median(&times[0]),
        p99(&times[0]),
        median(&times[1]),
        p99(&times[1]),
        median(&times[1]).as_secs_f64() / median(&times[0]).as_secs_f64()
    );
}
