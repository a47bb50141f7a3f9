//! The TCP transport's client against a hostile relay: a bare TLS server on loopback stands
//! in for the relay and answers with cells of its choosing. Whatever it sends, a request
//! ends in an error (never a success, never a panic) and the client's connection ends
//! cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

use std::net::Ipv4Addr;
use std::sync::Arc;

use hush_proto::mux::{CELL_LEN, Cell, StreamId, close_code, decode_cell, stream_code};
use hush_proto::{ALPN, FRAME_LEN, Host, RelayAddress, Request, Response};
use hush_transport::{Error, RelayClient, Route, spki_pin, tls};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A TLS server over TCP with a fresh certificate; each connection reads one request cell
/// and answers with `answer(request cell)`, then keeps reading until the client closes.
async fn hostile(answer: fn(&[u8]) -> Vec<Vec<u8>>) -> RelayAddress {
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
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; CELL_LEN];
                if tls.read_exact(&mut buf).await.is_err() {
                    return;
                }
                for out in answer(&buf) {
                    if tls.write_all(&out).await.is_err() {
                        return;
                    }
                }
                let _ = tls.flush().await;
                while tls.read_exact(&mut buf).await.is_ok() {}
            });
        }
    });
    RelayAddress {
        pin,
        host: Host::Ip(Ipv4Addr::LOCALHOST.into()),
        port,
    }
}

fn stream_of(request: &[u8]) -> StreamId {
    match decode_cell(request).unwrap() {
        Cell::Data { stream, fin, .. } => {
            assert!(fin, "a request is one cell with FIN");
            stream
        }
        other => panic!("expected the request, got {other:?}"),
    }
}

fn cell(c: Cell<'_>) -> Vec<u8> {
    c.encode().unwrap().to_vec()
}

async fn ping(answer: fn(&[u8]) -> Vec<Vec<u8>>) -> Error {
    let addr = hostile(answer).await;
    let client = RelayClient::connect_via(&addr, &Route::Tcp).await.unwrap();
    let e = client.ping().await.unwrap_err();
    client.close();
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_answers_well_is_understood() {
    let addr = hostile(|req| {
        let stream = stream_of(req);
        let pong = Response::Pong(hush_proto::Pong {
            min_version: hush_proto::MIN_VERSION,
            max_version: hush_proto::MAX_VERSION,
            mailbox_quota: 256,
            expiry_secs: 604_800,
        })
        .encode();
        vec![
            cell(Cell::Data {
                stream,
                bytes: &pong[..],
                fin: false,
            }),
            cell(Cell::Data {
                stream,
                bytes: &[],
                fin: true,
            }),
        ]
    })
    .await;
    let client = RelayClient::connect_via(&addr, &Route::Tcp).await.unwrap();
    assert_eq!(client.ping().await.unwrap().mailbox_quota, 256);
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_answer_is_an_error() {
    // A cell that does not decode ends the connection.
    let e = ping(|_| {
        let mut bad = cell(Cell::Pad);
        bad[0] = 0x77;
        vec![bad]
    })
    .await;
    assert!(matches!(e, Error::Stream(_)), "{e}");
    // A refusal of the stream.
    let e = ping(|req| {
        let stream = stream_of(req);
        let code = stream_code::REFUSED;
        vec![cell(Cell::Reset { stream, code })]
    })
    .await;
    assert!(e.to_string().contains("refused"), "{e}");
    // A frame cut short, then FIN.
    let e = ping(|req| {
        let stream = stream_of(req);
        let pong = [0x01u8, 0x81, 0, 0];
        vec![cell(Cell::Data {
            stream,
            bytes: &pong,
            fin: true,
        })]
    })
    .await;
    assert!(matches!(e, Error::Protocol(_)), "{e}");
    // A whole frame that is a request, not a response.
    let e = ping(|req| {
        let stream = stream_of(req);
        let wrong = Request::Ping.encode();
        vec![cell(Cell::Data {
            stream,
            bytes: &wrong[..FRAME_LEN],
            fin: true,
        })]
    })
    .await;
    assert!(matches!(e, Error::Protocol(_)), "{e}");
    // FIN with no frame at all.
    let e = ping(|req| {
        let stream = stream_of(req);
        vec![cell(Cell::Data {
            stream,
            bytes: &[],
            fin: true,
        })]
    })
    .await;
    assert!(matches!(e, Error::UnexpectedResponse(_)), "{e}");
    // CLOSE instead of an answer.
    let e = ping(|_| {
        vec![cell(Cell::Close {
            code: close_code::SHUTTING_DOWN,
        })]
    })
    .await;
    assert!(matches!(e, Error::Stream(_)), "{e}");
    // An answer on another stream is not this request's; then the connection ends.
    let e = ping(|_| {
        let pong = Response::Deposited(hush_proto::EnvelopeId(1)).encode();
        vec![
            cell(Cell::Data {
                stream: StreamId(99),
                bytes: &pong[..],
                fin: true,
            }),
            cell(Cell::Close { code: 0 }),
        ]
    })
    .await;
    assert!(matches!(e, Error::Stream(_)), "{e}");
}
