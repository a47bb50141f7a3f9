//! Drops against the real relay binary, from the side of whoever holds an invite link: it
//! names the drop (`D`, `bits`) and can deposit with a stamp, and nothing else. Only the
//! owner's secret `F` (`D = SHA-256(F)`, `bits = F[0]`) fetches, deletes or watches it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

mod common;

use common::{TestRelay, clients_from, lo, relay_error, sealed};
use hush_proto::drop::{STAMP_LEN, extra_bits, mint_stamp, stamp_work};
use hush_proto::{
    DeleteIds, DropAddress, Envelope, EnvelopeId, ErrorCode, FetchSecret, SecretBatch,
};

/// The owner's secret for a drop of difficulty `bits` (distinct per `tag`).
fn owner(bits: u8, tag: u8) -> FetchSecret {
    let mut f = [tag; 32];
    f[0] = bits;
    FetchSecret::from_bytes(f)
}

fn stamp_for(drop: &DropAddress, env: &Envelope, bits: u32, n: u64) -> [u8; STAMP_LEN] {
    mint_stamp(
        &drop.storage_key(),
        env,
        u8::try_from(bits).unwrap(),
        n.to_be_bytes(),
    )
}

/// A stamp showing at least `at_least` and less than `below` bits of work.
fn weaker_than(drop: &DropAddress, env: &Envelope, at_least: u32, below: u32) -> [u8; STAMP_LEN] {
    (0u64..)
        .map(|n| {
            let mut s = [0x77u8; STAMP_LEN];
            s[8..].copy_from_slice(&n.to_be_bytes());
            s
        })
        .find(|s| (at_least..below).contains(&stamp_work(&drop.storage_key(), env, s)))
        .unwrap()
}

fn batch(s: &FetchSecret) -> SecretBatch {
    SecretBatch::new(vec![s.clone()]).unwrap()
}

fn code(e: &hush_transport::Error) -> Option<(ErrorCode, u32)> {
    relay_error(e).map(|f| (f.code, f.arg))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_holder_can_deposit_to_a_drop_and_do_nothing_else() {
    let relay = TestRelay::start(&[]);
    let owner_secret = owner(6, 0xd1);
    let drop = DropAddress::of_secret(&owner_secret);
    let holder = relay.client().await;

    // A stamped deposit with the owner's difficulty is stored.
    let first = sealed("مرحبا، لدي وثائق 📄".as_bytes(), 1);
    let id = holder
        .deposit_stamped(drop, stamp_for(&drop, &first, 6, 1), first.clone())
        .await
        .unwrap();

    // Everything a holder can try with what the link gives it (D and bits): D as a fetch
    // secret, plain deposits to D and to the drop's storage key, deletes and subscriptions.
    let d_as_secret = FetchSecret::from_bytes(drop.id.0);
    assert!(
        holder
            .fetch_all(std::slice::from_ref(&d_as_secret))
            .await
            .unwrap()
            .is_empty()
    );
    let page = holder
        .fetch_drops(batch(&d_as_secret), EnvelopeId(0))
        .await
        .unwrap();
    assert!(page.deliveries.is_empty());
    for r in [
        holder
            .delete(d_as_secret.clone(), DeleteIds::new(vec![id]).unwrap())
            .await,
        holder
            .delete_drop(d_as_secret.clone(), DeleteIds::new(vec![id]).unwrap())
            .await,
    ] {
        assert_eq!(
            code(&r.unwrap_err()).map(|c| c.0),
            Some(ErrorCode::UnknownEnvelope)
        );
    }
    holder
        .deposit(drop.id, sealed(b"unstamped to D", 2))
        .await
        .unwrap();
    holder
        .deposit(
            drop.storage_key(),
            sealed(b"unstamped to the storage key", 3),
        )
        .await
        .unwrap();

    // The owner sees exactly the stamped envelope, under the drop's id, and can delete it.
    let owner_conn = relay.client().await;
    let page = owner_conn
        .fetch_drops(batch(&owner_secret), EnvelopeId(0))
        .await
        .unwrap();
    assert_eq!(
        page.deliveries.len(),
        1,
        "only the stamped deposit is in the drop"
    );
    assert_eq!(page.deliveries[0].mailbox, drop.id);
    assert_eq!(page.deliveries[0].envelope, first);
    // The plain deposit to D is in the ordinary mailbox D opens, which the owner never reads
    // as its drop.
    let out = owner_conn
        .delete_drop(owner_secret.clone(), DeleteIds::new(vec![id]).unwrap())
        .await
        .unwrap();
    assert_eq!(out.deleted, 1);
    assert!(
        owner_conn
            .fetch_drops(batch(&owner_secret), EnvelopeId(0))
            .await
            .unwrap()
            .deliveries
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stamp_is_spent_once_too_little_work_is_refused_and_pushes_reach_only_the_owner() {
    let relay = TestRelay::start(&[]);
    let owner_secret = owner(8, 0xd2);
    let drop = DropAddress::of_secret(&owner_secret);
    let owner_conn = relay.client().await;
    let mut sub = owner_conn
        .subscribe_drops(batch(&owner_secret))
        .await
        .unwrap();
    assert_eq!(sub.count(), 1);

    let holder = relay.client().await;
    let env = sealed("你好，我是线人".as_bytes(), 10);
    // A stamp with less work than the owner asked: refused with the bits required.
    let weak = weaker_than(&drop, &env, 0, 8);
    let e = holder
        .deposit_stamped(drop, weak, env.clone())
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some((ErrorCode::StampTooWeak, 8)));
    // Enough work: stored, and pushed to the owner under the drop's id.
    let good = stamp_for(&drop, &env, 8, 11);
    holder
        .deposit_stamped(drop, good, env.clone())
        .await
        .unwrap();
    let pushed = sub.next().await.unwrap();
    assert_eq!((pushed.mailbox, &pushed.envelope), (drop.id, &env));
    // The same stamp again (a replay by whoever saw it) buys nothing.
    let e = holder.deposit_stamped(drop, good, env).await.unwrap_err();
    assert_eq!(code(&e), Some((ErrorCode::StampTooWeak, 8)));
    // A subscription with D (what a holder has) gets nothing pushed; fetch shows one.
    let page = owner_conn
        .fetch_drops(batch(&owner_secret), EnvelopeId(0))
        .await
        .unwrap();
    assert_eq!(page.deliveries.len(), 1);
}

/// A flood from one holder makes every further deposit dearer, so a second holder's first
/// message still gets in while the drop has room; the price it is quoted is the fill's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_raises_the_price_and_another_source_still_gets_in() {
    let relay = TestRelay::start(&[]);
    let owner_secret = owner(1, 0xd3);
    let drop = DropAddress::of_secret(&owner_secret);
    let flooder = relay.client().await;
    // The flooder pays the going price for 100 envelopes (cheap at first: 1 bit).
    let mut paid = Vec::new();
    for i in 0..100u32 {
        let env = sealed(format!("flood {i} 🌊").as_bytes(), u64::from(i) + 100);
        let bits = 1 + extra_bits(i);
        flooder
            .deposit_stamped(drop, stamp_for(&drop, &env, bits, u64::from(i)), env)
            .await
            .unwrap();
        paid.push(bits);
    }
    assert_eq!(paid[0], 1);
    assert_eq!(*paid.last().unwrap(), 1 + extra_bits(99));
    // A source arriving now is quoted the price of a drop holding 100.
    let source = relay.client().await;
    let env = sealed("Ich habe Dokumente".as_bytes(), 9999);
    // A stamp enough for the empty drop (the owner's 1 bit) but not for this fill.
    let cheap = weaker_than(&drop, &env, 1, 1 + extra_bits(100));
    let e = source
        .deposit_stamped(drop, cheap, env.clone())
        .await
        .unwrap_err();
    assert_eq!(
        code(&e),
        Some((ErrorCode::StampTooWeak, 1 + extra_bits(100)))
    );
    let fair = stamp_for(&drop, &env, 1 + extra_bits(100), 8);
    source
        .deposit_stamped(drop, fair, env.clone())
        .await
        .unwrap();
    let all = relay
        .client()
        .await
        .fetch_drops(batch(&owner_secret), EnvelopeId(0))
        .await
        .unwrap();
    assert_eq!(all.deliveries.len(), 101);
    assert!(all.deliveries.iter().any(|d| d.envelope == env));
}

/// One link holder, from one address, gets its share of a drop per window (16 by default)
/// however much work it pays; another source still gets in. (Loopback peers are exempt by
/// default, as local forwarders; here each 127.0.0.x is its own source.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_cannot_fill_a_drop_for_the_others() {
    let relay = TestRelay::start(&[("HUSH_RELAY_LIMITS_LOOPBACK_EXEMPT", "false")]);
    let owner_secret = owner(0, 0xd4);
    let drop = DropAddress::of_secret(&owner_secret);
    let flooder = clients_from(&relay, lo(2), 2).await;
    let mut stored = 0;
    let mut refused = None;
    for i in 0..40u64 {
        let env = sealed(format!("رسالة {i} 🌊").as_bytes(), 500 + i);
        let bits = extra_bits(stored);
        let c = &flooder[usize::try_from(i % 2).unwrap()];
        match c
            .deposit_stamped(drop, stamp_for(&drop, &env, bits, i), env)
            .await
        {
            Ok(_) => stored += 1,
            Err(e) => {
                refused = code(&e);
                break;
            }
        }
    }
    assert_eq!(stored, 16, "the source's share, over both its connections");
    let (code_, wait) = refused.expect("the 17th deposit was refused");
    assert_eq!(code_, ErrorCode::RateLimited);
    assert!(wait > 0 && wait <= 3_600_000, "{wait}");
    let source = clients_from(&relay, lo(3), 1).await;
    let env = sealed("我有文件".as_bytes(), 9000);
    source[0]
        .deposit_stamped(drop, stamp_for(&drop, &env, extra_bits(16), 1), env)
        .await
        .unwrap();
}
