//! Frame I/O and pinning over real QUIC on loopback: a bare quinn server stands in for the
//! relay, so each rule of `stream` and the pin check are exercised on their own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use hush_proto::{ALPN, EnvelopeId, FRAME_LEN, Host, RelayAddress, Request, Response, SpkiPin};
use hush_transport::stream::{read_request, read_response, write_frame};
use hush_transport::{Error, RelayClient, client_endpoint, spki_pin, tls};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A QUIC server with a fresh self-signed certificate, and the address that pins it.
fn server() -> (quinn::Endpoint, RelayAddress) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert: CertificateDer<'static> = params.self_signed(&key).unwrap().der().clone();
    let pin = spki_pin(&cert).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut cfg = rustls::ServerConfig::builder_with_provider(tls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(cfg).unwrap();
    let server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let ep = quinn::Endpoint::server(server, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
    let port = ep.local_addr().unwrap().port();
    let addr = RelayAddress {
        pin,
        host: Host::Ip(Ipv4Addr::LOCALHOST.into()),
        port,
    };
    (ep, addr)
}

async fn accept(ep: &quinn::Endpoint) -> quinn::Connection {
    ep.accept().await.unwrap().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_stream_carries_at_most_one_frame() {
    let (ep, addr) = server();
    let (client, conn) = tokio::join!(RelayClient::connect(&addr), accept(&ep));
    let client = client.unwrap();
    let ping = Request::Ping.encode();
    let mut over = ping.to_vec();
    over.push(0);
    for (sent, want) in [
        (ping.to_vec(), Some(FRAME_LEN)),
        (ping[..100].to_vec(), Some(100)),
        (vec![0], Some(1)),
        (over, None),
    ] {
        let c = client.quic_connection().unwrap().clone();
        let send = tokio::spawn(async move {
            let (mut s, _r) = c.open_bi().await.unwrap();
            s.write_all(&sent).await.unwrap();
            s.finish().unwrap();
            // Keep the stream open until the server has read it.
            let _ = s.stopped().await;
        });
        let (_s, mut r) = conn.accept_bi().await.unwrap();
        match (read_request(&mut r).await, want) {
            (Ok(bytes), Some(n)) => assert_eq!(bytes.len(), n),
            (Err(Error::Protocol(hush_proto::Error::Oversized(_))), None) => {}
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
        drop(r);
        send.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_read_whole_and_a_cut_one_is_an_error() {
    let (ep, addr) = server();
    let (client, conn) = tokio::join!(RelayClient::connect(&addr), accept(&ep));
    let client = client.unwrap();
    let done = Response::Deposited(EnvelopeId(9)).encode();
    let (mut s, mut r) = client.quic_connection().unwrap().open_bi().await.unwrap();
    // The server sees the stream only once data arrives on it.
    s.write_all(b"x").await.unwrap();
    let (mut ss, _sr) = conn.accept_bi().await.unwrap();
    write_frame(&mut ss, &done).await.unwrap();
    write_frame(&mut ss, &done).await.unwrap();
    ss.write_all(&done[..10]).await.unwrap();
    ss.finish().unwrap();
    for _ in 0..2 {
        assert_eq!(
            read_response(&mut r).await.unwrap(),
            Some(Response::Deposited(EnvelopeId(9)))
        );
    }
    assert!(matches!(
        read_response(&mut r).await,
        Err(Error::Protocol(hush_proto::Error::Truncated(10)))
    ));

    let (mut s2, mut r2) = client.quic_connection().unwrap().open_bi().await.unwrap();
    s2.write_all(b"x").await.unwrap();
    let (mut ss2, _sr2) = conn.accept_bi().await.unwrap();
    ss2.finish().unwrap();
    assert_eq!(read_response(&mut r2).await.unwrap(), None, "clean end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_with_another_key_is_refused() {
    let (ep, mut addr) = server();
    addr.pin = SpkiPin([0; 32]);
    let client_ep = client_endpoint(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
    let server = tokio::spawn(async move {
        // The handshake fails on the server side too; nothing to assert there.
        if let Some(incoming) = ep.accept().await {
            let _ = incoming.await;
        }
    });
    let e = RelayClient::connect_with(&client_ep, &addr)
        .await
        .unwrap_err();
    // Told apart from every other connection failure: interception, or a rotated key.
    assert!(matches!(e, Error::PinMismatch), "{e}");
    assert!(e.to_string().contains("does not match the pin"), "{e}");
    assert!(!e.is_peer_fault());
    server.abort();
}
