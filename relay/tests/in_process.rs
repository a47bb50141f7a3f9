//! The library API an application embeds (the hush client's loopback relay): start a relay
//! in process from a typed loopback config and a generated identity, use it, shut it down,
//! restart it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

mod common;

use common::RelayClient;
use hush_proto::{ENVELOPE_LEN, Envelope, FetchSecret};
use hush_relay::config::Config;
use hush_relay::server::Relay;
use hush_relay::tls::Identity;

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::loopback(
        "127.0.0.1:0".parse().unwrap(),
        dir.join("data"),
        "unused".into(),
        "unused".into(),
    );
    // The identity is in memory; the forwarding key file goes in the test's directory (it
    // would go beside `key`, here the current directory).
    c.forwarding.key = Some(dir.join("forward.key"));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_use_shutdown_restart() {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::generate("localhost").unwrap();
    let relay = Relay::start(&config(dir.path()), &id).await.unwrap();
    assert!(relay.metrics_addr().is_none());
    let addr = relay.local_relay_address();
    assert_eq!(addr.pin, id.pin().unwrap());
    let c = RelayClient::connect(&addr).await.unwrap();
    let secret = FetchSecret::from_bytes([5; 32]);
    let env = Envelope::new(Box::new([9; ENVELOPE_LEN]));
    let eid = c.deposit(secret.mailbox_id(), env.clone()).await.unwrap();
    relay.shutdown().await.unwrap();
    assert!(
        c.ping().await.is_err(),
        "connections are closed by the shutdown"
    );

    // Same directory, same identity: the deposit is still there.
    let relay = Relay::start(&config(dir.path()), &id).await.unwrap();
    let c = RelayClient::connect(&relay.local_relay_address())
        .await
        .unwrap();
    let got = c.fetch_all(&[secret]).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].id, &got[0].envelope), (eid, &env));
    relay.shutdown().await.unwrap();
}
