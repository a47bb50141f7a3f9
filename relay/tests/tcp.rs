//! The TCP transport end to end: the real `hush-relay` binary listening on TCP (init's
//! `tcp_listen = "same"`), the client module over TLS/TCP, directly and through the test
//! kit's SOCKS5 proxy, and hostile peers speaking raw TLS and raw cells.
//! No test depends on timing: waits are bounded polls for a state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::{Error, RelayClient, TestRelay, sealed, secret};
use hush_proto::mux::{CELL_LEN, Cell, StreamId, close_code, decode_cell, stream_code};
use hush_proto::{
    ALPN, DeleteIds, ErrorCode, FRAME_LEN, Host, RelayAddress, Request, Response, SecretBatch,
    decode_response,
};
use hush_testkit::socks::{Socks5Server, Target};
use hush_testkit::{HANG_GUARD, poll_async};
use hush_transport::{Route, Socks5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn tcp_client(addr: &RelayAddress) -> RelayClient {
    RelayClient::connect_via(addr, &Route::Tcp).await.unwrap()
}

fn texts() -> Vec<Vec<u8>> {
    vec![
        "مرحبا، هل وصلت الوثائق؟".as_bytes().to_vec(),
        "你好，文件已经收到了。".as_bytes().to_vec(),
        "🕵️‍♀️📨🔐".as_bytes().to_vec(),
        b"x".to_vec(),
        "长".repeat(1300).into_bytes(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_works_over_tcp_and_a_quic_client_sees_the_same_store() {
    let relay = TestRelay::start(&[]);
    let c = tcp_client(relay.addr()).await;
    assert!(c.is_tcp());
    let pong = c.ping().await.unwrap();
    assert_eq!(
        (pong.min_version, pong.max_version),
        (hush_proto::MIN_VERSION, hush_proto::MAX_VERSION)
    );

    let s = secret("tcp-all", 0);
    let mut sub = c
        .subscribe(SecretBatch::new(vec![s.clone()]).unwrap())
        .await
        .unwrap();
    assert_eq!(sub.count(), 1);
    let mut ids = Vec::new();
    for (n, t) in texts().iter().enumerate() {
        let id = c
            .deposit(s.mailbox_id(), sealed(t, n as u64))
            .await
            .unwrap();
        let pushed = sub.next().await.unwrap();
        assert_eq!(pushed.id, id);
        assert_eq!(pushed.envelope.as_bytes(), sealed(t, n as u64).as_bytes());
        ids.push(id);
    }
    // Cancelling the subscription (STOP) leaves the connection serving.
    drop(sub);
    let fetched = c.fetch_all(std::slice::from_ref(&s)).await.unwrap();
    assert_eq!(fetched.iter().map(|d| d.id).collect::<Vec<_>>(), ids);

    // Many requests at once on one connection, each its own stream.
    let c = Arc::new(c);
    let pings: Vec<_> = (0..40)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.ping().await.map(|_| ()) })
        })
        .collect();
    for p in pings {
        p.await.unwrap().unwrap();
    }

    let quic = relay.client().await;
    let seen = quic.fetch_all(std::slice::from_ref(&s)).await.unwrap();
    assert_eq!(seen.len(), ids.len());
    let out = c
        .delete(s.clone(), DeleteIds::new(ids).unwrap())
        .await
        .unwrap();
    assert_eq!(out.deleted, 5);
    assert!(quic.fetch_all(&[s]).await.unwrap().is_empty());
    assert!(relay.metric("hush_relay_tcp_connections_total") >= 1);

    // A client that closes is counted closed at once: nothing waits for an idle timeout.
    quic.close_and_wait(Duration::from_secs(3)).await;
    c.close_and_wait(Duration::from_secs(3)).await;
    let closed = poll_async(HANG_GUARD, Duration::from_millis(20), || async {
        (relay.metric("hush_relay_connections_open") == 0).then_some(())
    })
    .await;
    assert!(closed.is_some(), "connections still counted open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_the_same_errors_as_over_quic() {
    let relay = TestRelay::start(&[]);
    let c = tcp_client(relay.addr()).await;
    let code = |r: Vec<Response>| match r.as_slice() {
        [Response::Error(e)] => e.code,
        other => panic!("expected one error, got {other:?}"),
    };
    assert_eq!(
        code(c.raw_request(&[1, 1, 0, 0]).await.unwrap()),
        ErrorCode::Truncated
    );
    assert_eq!(
        code(c.raw_request(&vec![0u8; FRAME_LEN + 1]).await.unwrap()),
        ErrorCode::Oversized
    );
    let mut v9 = Request::Ping.encode();
    v9[0] = 9;
    assert_eq!(
        code(c.raw_request(&v9[..]).await.unwrap()),
        ErrorCode::UnsupportedVersion
    );
    // The connection still serves.
    c.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_over_tcp_is_the_same_error_as_over_quic() {
    let relay = TestRelay::start(&[]);
    let mut wrong = relay.addr().clone();
    wrong.pin.0[0] ^= 1;
    let e = RelayClient::connect_via(&wrong, &Route::Tcp)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::PinMismatch), "{e}");
    // Another ALPN: the handshake fails, and not as a pin mismatch.
    let e = RelayClient::connect_tcp(relay.addr(), None, b"hush/9")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Tls(_)), "{e}");
}

fn names(name: &str) -> HashMap<String, IpAddr> {
    HashMap::from([(name.to_owned(), IpAddr::V4(Ipv4Addr::LOCALHOST))])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_socks5_the_proxy_gets_the_name_or_the_address_it_was_given() {
    let relay = TestRelay::start(&[]);
    let proxy = Socks5Server::start(names("relay.invalid"), None);
    let port = relay.addr().port;
    // `.invalid` never resolves (RFC 6761): only the proxy's table knows it, so a client
    // that resolved locally could not connect at all.
    let by_name = RelayAddress {
        host: Host::Name("relay.invalid".into()),
        ..relay.addr().clone()
    };
    let route = |u: &str| {
        Route::Socks5(Socks5 {
            proxy: proxy.addr(),
            username: u.into(),
        })
    };
    let a = RelayClient::connect_via(&by_name, &route("k7Qz"))
        .await
        .unwrap();
    let s = secret("socks", 1);
    a.deposit(s.mailbox_id(), sealed("عبر تور".as_bytes(), 1))
        .await
        .unwrap();
    let b = RelayClient::connect_via(relay.addr(), &route("Wm2p"))
        .await
        .unwrap();
    assert_eq!(b.fetch_all(&[s]).await.unwrap().len(), 1);
    let asked = proxy.requests();
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[0].target, Target::Name("relay.invalid".into(), port));
    assert_eq!(asked[0].username, "k7Qz");
    assert_eq!(
        asked[1].target,
        Target::Addr(SocketAddr::from(([127, 0, 0, 1], port)))
    );
    assert_eq!(asked[1].username, "Wm2p");
    a.close_and_wait(Duration::from_secs(3)).await;
    b.close_and_wait(Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_or_absent_proxy_is_a_specific_error_and_no_direct_connection() {
    let relay = TestRelay::start(&[]);
    let refusing = Socks5Server::start(names("relay.invalid"), Some(5));
    let route = Route::Socks5(Socks5 {
        proxy: refusing.addr(),
        username: "u".into(),
    });
    let before = relay.metric("hush_relay_connections_total");
    let e = RelayClient::connect_via(relay.addr(), &route)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Proxy(_)), "{e}");
    // Nothing listens on a port just released.
    let absent = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let route = Route::Socks5(Socks5 {
        proxy: absent,
        username: "u".into(),
    });
    let e = RelayClient::connect_via(relay.addr(), &route)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ProxyUnreachable), "{e}");
    // Neither fell back to reaching the relay directly.
    assert_eq!(relay.metric("hush_relay_connections_total"), before);
}

// Hostile peers: raw TLS with hand-made cells.

async fn raw_tls(addr: &RelayAddress) -> Tls {
    let cfg = hush_transport::tls::client_config(addr.pin, ALPN).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(("127.0.0.1", addr.port)).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    connector.connect(name, tcp).await.unwrap()
}

async fn send(s: &mut Tls, cell: Cell<'_>) {
    s.write_all(&cell.encode().unwrap()[..]).await.unwrap();
    s.flush().await.unwrap();
}

/// The next cell, or `None` once the relay closed the connection.
async fn next_cell(s: &mut Tls) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; CELL_LEN];
    let r = tokio::time::timeout(HANG_GUARD, s.read_exact(&mut buf))
        .await
        .expect("the relay neither answered nor closed");
    r.ok().map(|_| buf)
}

fn data(stream: u32, bytes: &[u8], fin: bool) -> Cell<'_> {
    Cell::Data {
        stream: StreamId(stream),
        bytes,
        fin,
    }
}

/// Reads cells until the relay's CLOSE, returning its code, then checks the end of stream.
async fn close_code_of(s: &mut Tls) -> u32 {
    loop {
        let cell = next_cell(s).await.expect("closed without a CLOSE cell");
        if let Cell::Close { code } = decode_cell(&cell).unwrap() {
            assert!(next_cell(s).await.is_none(), "bytes after CLOSE");
            return code;
        }
    }
}

/// A Ping on `stream` and its answer: Pong, then FIN.
async fn ping_on(s: &mut Tls, stream: u32) {
    let ping = Request::Ping.encode();
    send(s, data(stream, &ping[..], true)).await;
    let cell = next_cell(s).await.unwrap();
    match decode_cell(&cell).unwrap() {
        Cell::Data {
            stream: id,
            bytes,
            fin: false,
        } => {
            assert_eq!(id, StreamId(stream));
            assert!(matches!(decode_response(bytes).unwrap(), Response::Pong(_)));
        }
        other => panic!("expected the Pong, got {other:?}"),
    }
    let cell = next_cell(s).await.unwrap();
    assert_eq!(decode_cell(&cell).unwrap(), data(stream, &[], true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_a_half_open_handshake_do_not_stop_the_relay_serving_others() {
    let relay = TestRelay::start(&[]);
    let port = relay.addr().port;
    // Bytes that are no TLS at all.
    let mut junk = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let garbage: Vec<u8> = (0..5000u32).map(|i| (i * 131 + 17) as u8).collect();
    let _ = junk.write_all(&garbage).await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(HANG_GUARD, junk.read(&mut buf))
        .await
        .unwrap();
    // A TLS alert at most, then the end.
    assert!(matches!(n, Ok(0..=7) | Err(_)), "{n:?}");
    // A handshake started and never finished holds its socket, not the relay.
    let mut half = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    let c = tcp_client(relay.addr()).await;
    c.ping().await.unwrap();
    // The relay drops it once the request timeout passes (bounded wait for the end).
    let end = tokio::time::timeout(HANG_GUARD, half.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
    c.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_or_skipped_stream_id_closes_that_connection_only() {
    let relay = TestRelay::start(&[]);
    let other = tcp_client(relay.addr()).await;

    let mut s = raw_tls(relay.addr()).await;
    ping_on(&mut s, 1).await;
    // Stream 1 ended on both sides; a second request on it is a reuse.
    send(&mut s, data(1, &Request::Ping.encode()[..], true)).await;
    assert_eq!(close_code_of(&mut s).await, close_code::STREAM_STATE);

    let mut s = raw_tls(relay.addr()).await;
    send(&mut s, data(5, &Request::Ping.encode()[..], true)).await;
    assert_eq!(close_code_of(&mut s).await, close_code::STREAM_STATE);

    // A cell that does not decode (kind 0x42).
    let mut s = raw_tls(relay.addr()).await;
    let mut bad = Cell::Pad.encode().unwrap();
    bad[0] = 0x42;
    s.write_all(&bad[..]).await.unwrap();
    assert_eq!(close_code_of(&mut s).await, close_code::MALFORMED_CELL);

    other.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_limit_are_refused_and_the_open_ones_still_answered() {
    let relay = TestRelay::start(&[("HUSH_RELAY_LIMITS_MAX_STREAMS_PER_CONNECTION", "3")]);
    let mut s = raw_tls(relay.addr()).await;
    let ping = Request::Ping.encode();
    // Three streams with half a request each: all served, none complete.
    for id in 1..=3 {
        send(&mut s, data(id, &ping[..100], false)).await;
    }
    // The fourth is refused at once: RESET and STOP, code REFUSED.
    send(&mut s, data(4, &ping[..100], false)).await;
    for _ in 0..2 {
        let cell = next_cell(&mut s).await.unwrap();
        match decode_cell(&cell).unwrap() {
            Cell::Reset { stream, code } | Cell::Stop { stream, code } => {
                assert_eq!((stream, code), (StreamId(4), stream_code::REFUSED));
            }
            other => panic!("expected the refusal, got {other:?}"),
        }
    }
    // Its later data is discarded without an error.
    send(&mut s, data(4, &ping[100..], true)).await;
    // Stream 2 completes and is answered.
    send(&mut s, data(2, &ping[100..], true)).await;
    let cell = next_cell(&mut s).await.unwrap();
    match decode_cell(&cell).unwrap() {
        Cell::Data { stream, bytes, .. } => {
            assert_eq!(stream, StreamId(2));
            assert!(matches!(decode_response(bytes).unwrap(), Response::Pong(_)));
        }
        other => panic!("expected stream 2's Pong, got {other:?}"),
    }
    // Refused streams left open are bounded too: three more half-open ones close it.
    let mut refused = 0;
    let mut closed = None;
    for id in 5..=9 {
        send(&mut s, data(id, &ping[..100], false)).await;
    }
    while closed.is_none() {
        let cell = next_cell(&mut s).await.unwrap();
        match decode_cell(&cell).unwrap() {
            Cell::Close { code } => closed = Some(code),
            Cell::Reset { code, .. } if code == stream_code::REFUSED => refused += 1,
            _ => {}
        }
    }
    assert_eq!(closed, Some(close_code::TOO_MANY_STREAMS));
    assert!(refused >= 1);
    // The relay serves a new connection.
    tcp_client(relay.addr()).await.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_a_tcp_subscription_with_shutting_down_and_a_close() {
    let relay = TestRelay::start(&[]);
    let c = tcp_client(relay.addr()).await;
    let s = secret("tcp-stop", 0);
    let mut sub = c
        .subscribe(SecretBatch::new(vec![s]).unwrap())
        .await
        .unwrap();
    let mut raw = raw_tls(relay.addr()).await;
    ping_on(&mut raw, 1).await;
    let stopping = tokio::task::spawn_blocking(move || {
        let mut relay = relay;
        let status = relay.terminate();
        (relay, status)
    });
    let e = sub.next().await.unwrap_err();
    assert_eq!(
        hush_transport::relay_error(&e).map(|f| f.code),
        Some(ErrorCode::ShuttingDown),
        "{e}"
    );
    // An idle connection is told why it ends: CLOSE with SHUTTING_DOWN.
    assert_eq!(close_code_of(&mut raw).await, close_code::SHUTTING_DOWN);
    let (relay, status) = stopping.await.unwrap();
    assert!(status.success(), "{status}");
    let log = relay.last_log();
    assert!(!log.contains("did not finish in time"), "{log}");
    c.closed().await;
}

/// A connection broken by its client while a subscription is open still ends at once: the
/// subscription is stopped, the relay sends CLOSE and frees the connection. Seen to fail
/// (no CLOSE, the connection held open) while the relay waited for the subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_connection_with_an_open_subscription_is_closed_and_freed() {
    let relay = TestRelay::start(&[]);
    let mut s = raw_tls(relay.addr()).await;
    let sub = Request::Subscribe {
        secrets: SecretBatch::new(vec![secret("tcp-broken", 0)]).unwrap(),
    }
    .encode();
    send(&mut s, data(1, &sub[..], true)).await;
    let cell = next_cell(&mut s).await.unwrap();
    match decode_cell(&cell).unwrap() {
        Cell::Data { bytes, .. } => assert!(matches!(
            decode_response(bytes).unwrap(),
            Response::Subscribed { count: 1 }
        )),
        other => panic!("expected Subscribed, got {other:?}"),
    }
    let mut bad = Cell::Pad.encode().unwrap();
    bad[1] = 1; // a flag on PAD
    s.write_all(&bad[..]).await.unwrap();
    assert_eq!(close_code_of(&mut s).await, close_code::MALFORMED_CELL);
    let freed = poll_async(HANG_GUARD, Duration::from_millis(20), || async {
        (relay.metric("hush_relay_connections_open") == 0).then_some(())
    })
    .await;
    assert!(freed.is_some());
    assert_eq!(
        relay.metric("hush_relay_connections_closed_total{how=\"lost\"}"),
        1
    );
}
