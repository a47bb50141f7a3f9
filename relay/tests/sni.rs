//! What the client's TLS ClientHello names, as a network observer reads it in the QUIC
//! Initial: the server name (SNI) must be the relay's own host name when its address has one,
//! and absent when the address is an IP literal; never a hush-specific name. A server here
//! records the SNI of each handshake (through its certificate resolver) and otherwise is the
//! relay's own TLS configuration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hush_proto::{Host, RelayAddress};
use hush_relay::tls::Identity;
use hush_transport::RelayClient;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Delegates to the relay's resolver, and records the SNI of every ClientHello.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn ResolvesServerCert>,
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

impl ResolvesServerCert for Recording {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.seen
            .lock()
            .unwrap()
            .push(hello.server_name().map(str::to_owned));
        self.inner.resolve(hello)
    }
}

/// A QUIC endpoint with the relay's TLS configuration on 127.0.0.1, accepting handshakes.
fn recording_server(identity: &Identity) -> (quinn::Endpoint, Arc<Mutex<Vec<Option<String>>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut tls = identity.server_config().unwrap();
    tls.cert_resolver = Arc::new(Recording {
        inner: tls.cert_resolver.clone(),
        seen: seen.clone(),
    });
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let endpoint = quinn::Endpoint::server(config, SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let accept = endpoint.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accept.accept().await {
            tokio::spawn(async move {
                if let Ok(conn) = incoming.await {
                    conn.closed().await;
                }
            });
        }
    });
    (endpoint, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sends_the_host_name_or_no_sni_and_never_a_hush_name() {
    let identity = Identity::generate("relay.example.org").unwrap();
    let (server, seen) = recording_server(&identity);
    let port = server.local_addr().unwrap().port();
    let pin = identity.pin().unwrap();

    let by_ip = RelayAddress {
        pin,
        host: Host::Ip([127, 0, 0, 1].into()),
        port,
    };
    let c = RelayClient::connect(&by_ip).await.unwrap();
    c.close();
    // `localhost` is a name that resolves here without DNS.
    let by_name = RelayAddress {
        pin,
        host: Host::Name("localhost".into()),
        port,
    };
    let c = RelayClient::connect(&by_name).await.unwrap();
    c.close();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec![None, Some("localhost".to_owned())]);
}
