//! The machine's own limits, measured in the same run as the systems, so their figures can
//! be read as fractions of what the hardware allows.
//!
//! Owns: the synced-write rate of the disk under the data directory, and a QUIC-only
//! server: the relay's TLS identity, ALPN and frames, answering every deposit with
//! `Deposited` at once, storing nothing. Must never be mistaken for a relay: it keeps no
//! data and checks nothing beyond decoding the request.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hush_proto::{EnvelopeId, RelayAddress, Request, Response, decode_request};
use hush_transport::stream::{read_request, write_frame};

/// Synced writes per second: `size`-byte writes each followed by `fdatasync`, in a fresh
/// file under `dir`, for `secs` seconds (the way a commit ends).
pub fn fsyncs_per_sec(dir: &Path, size: usize, secs: f64) -> anyhow::Result<f64> {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path)?;
    let block = vec![0x5au8; size];
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed().as_secs_f64() < secs {
        f.write_all(&block)?;
        f.sync_data()?;
        n += 1;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(rate)
}

/// A QUIC-only stand-in for the relay on loopback; stops when dropped.
pub struct QuicOnly {
    pub addr: RelayAddress,
    endpoint: quinn::Endpoint,
}

impl Drop for QuicOnly {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"");
    }
}

impl QuicOnly {
    pub fn start() -> anyhow::Result<Self> {
        let id = hush_relay::tls::Identity::generate("127.0.0.1")?;
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(id.server_config()?)?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        // As many requests in flight per connection as the relay allows by default.
        transport.max_concurrent_bidi_streams(256u32.into());
        transport.max_concurrent_uni_streams(0u32.into());
        config.transport_config(Arc::new(transport));
        let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse()?)?;
        let port = endpoint.local_addr()?.port();
        let addr = format!("hush://{}@127.0.0.1:{port}", id.pin()?).parse()?;
        let ids = Arc::new(AtomicU64::new(1));
        let accept = endpoint.clone();
        tokio::spawn(async move {
            while let Some(incoming) = accept.accept().await {
                let ids = ids.clone();
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                        let ids = ids.clone();
                        tokio::spawn(async move {
                            let Ok(req) = read_request(&mut recv).await else {
                                return;
                            };
                            let answer = match decode_request(&req) {
                                Ok(Request::Deposit { .. }) => Response::Deposited(EnvelopeId(
                                    ids.fetch_add(1, Ordering::Relaxed),
                                )),
                                _ => return,
                            };
                            if write_frame(&mut send, &answer.encode()).await.is_ok() {
                                let _ = send.finish();
                                // Let the frame leave before the stream is dropped.
                                let _ =
                                    tokio::time::timeout(Duration::from_secs(5), send.stopped())
                                        .await;
                            }
                        });
                    }
                });
            }
        });
        Ok(Self { addr, endpoint })
    }
}
