//! The relay server: QUIC endpoint, connection and stream handling, sweeper, shutdown.
//!
//! Owns: accepting QUIC connections (each one admitted by the [`Gate`], which also evicts the
//! longest-idle connection when every slot is taken), one task per connection and per request
//! stream, the per-connection rate limit, subscription limit and push queue, the per-source
//! deposit budget (asked of the gate), dispatching decoded requests to the committer, the
//! store and the push hub, the expiry sweeper, the redb scrubber, and graceful shutdown (stop
//! accepting, finish in-flight requests, drain the committer, close).
//! Must never log a peer address, a mailbox id, a fetch secret or envelope bytes; must never
//! answer `Deposited` before the committer reports a durable commit.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hush_proto::{
    Envelope, ErrorCode, ErrorFrame, FRAME_LEN, Host, MAX_VERSION, MIN_VERSION, MailboxId, Pong,
    RelayAddress, Request, Response, decode_request,
};
use hush_transport::stream::{read_request_frame, read_trailer, write_frame};
use quinn::{RecvStream, SendStream, VarInt};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::Error;
use crate::admission::{
    FETCH_PAGE, Gate, Policy, RECEIVE_WINDOW_FRAMES, SEND_WINDOW_FRAMES, Ticket, connection_slots,
};
use crate::clock::Clock;
use crate::commit::Committer;
use crate::config::{Backend, Config, Limits, TcpListen};
use crate::disk::DiskSpace;
use crate::metrics::{ConnectionEnd, DeleteOutcome, Metrics};
use crate::push::{Fanout, Hub, Next, PushQueue};
use crate::store::{Quotas, RedbStore, Store, Stored, WriteOp, WriteOutcome};
use crate::tls::Identity;

/// QUIC application close code: relay shutting down.
pub const CLOSE_SHUTTING_DOWN: u32 = 0x2;
/// QUIC application close code: the connection was idle and its slot went to a newcomer.
pub const CLOSE_EVICTED: u32 = 0x3;
/// Most envelopes one Fetch returns before `more` is set.
pub const FETCH_LIMIT: usize = 256;
/// Time a client has to send its whole request frame on a new stream.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Envelopes removed per sweep transaction.
const SWEEP_CHUNK: usize = 10_000;
/// Time in-flight requests get to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Shared {
    store: Arc<dyn Store>,
    spent_stamps: crate::drops::SpentStamps,
    drop_shares: crate::drops::DropShares,
    /// The same for stamped deposits opened from a Deliver (the source is a forwarding relay).
    forwarded_drop_shares: crate::drops::DropShares,
    committer: Committer,
    hub: Arc<Hub>,
    pub(crate) gate: Arc<Gate>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) limits: Limits,
    disk: DiskSpace,
    pub(crate) shutdown: watch::Receiver<bool>,
    chunks: crate::chunks::ChunkService,
    forwarder: crate::forward::Forwarder,
    #[cfg(feature = "test-hooks")]
    record: Option<crate::record::Record>,
}

/// A running relay. Dropping it starts a graceful shutdown in the background; call
/// [`Relay::shutdown`] to wait for it to complete.
pub struct Relay {
    local_addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
    pin: hush_proto::SpkiPin,
    metrics_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<Result<(), Error>>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").finish_non_exhaustive()
    }
}

pub(crate) async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    // A dropped sender also means shutdown.
    let _ = rx.wait_for(|v| *v).await;
}

/// Per-connection token bucket.
struct RateLimiter {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
}

impl RateLimiter {
    fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst),
            last: now,
            rate: f64::from(rate),
            burst: f64::from(burst),
        }
    }
    /// Takes a token, or returns the milliseconds until one is available.
    fn take(&mut self, now: Instant) -> Result<(), u32> {
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = ((1.0 - self.tokens) / self.rate * 1000.0).ceil();
            // Bounded by 1000 / rate with rate >= 1, so it fits in u32.
            Err(wait_ms.clamp(1.0, 60_000.0) as u32)
        }
    }
}

pub(crate) struct ConnState {
    limiter: Mutex<RateLimiter>,
    subscriptions: AtomicUsize,
    pushes: Arc<PushQueue>,
    /// One fetch at a time per connection: a fetch holds a page of envelopes in memory.
    fetching: tokio::sync::Semaphore,
    /// Chunk requests of this connection in flight (docs/PROTOCOL.md II.4.3).
    chunk_slots: Arc<tokio::sync::Semaphore>,
    /// Forward and FetchForwardKey commands in flight on this connection.
    forwards: tokio::sync::Semaphore,
    ticket: Ticket,
    /// The peer's address, for the test-hooks record only (never logged, never kept
    /// otherwise).
    #[cfg(feature = "test-hooks")]
    pub(crate) peer: std::net::IpAddr,
}

fn transport(limits: &Limits) -> Result<quinn::TransportConfig, Error> {
    let mut t = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(Duration::from_secs(limits.idle_timeout_secs.0))
        .map_err(|_| Error::Config("limits.idle_timeout_secs is too large".into()))?;
    t.max_idle_timeout(Some(idle));
    t.max_concurrent_bidi_streams(VarInt::from_u32(limits.max_streams_per_connection.0));
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    t.datagram_receive_buffer_size(None);
    // A request stream carries one frame (plus one byte to detect an oversized one), so a
    // small per-stream window bounds the memory an idle or hostile connection can pin.
    // The connection window bounds unread request bytes over all streams (the memory model
    // in admission.rs counts it); the send window bounds unacknowledged answers and pushes.
    let frame = FRAME_LEN as u64;
    t.stream_receive_window(VarInt::from_u32(
        u32::try_from(2 * frame).unwrap_or(u32::MAX),
    ));
    t.receive_window(VarInt::from_u32(
        u32::try_from(RECEIVE_WINDOW_FRAMES * frame).unwrap_or(u32::MAX),
    ));
    t.send_window(SEND_WINDOW_FRAMES * frame);
    Ok(t)
}

/// UDP socket buffer the relay asks for. Bursts of handshakes (many clients reconnecting at
/// once) overflow the kernel default (~200 KiB) and then wait for retransmission timers; the
/// kernel caps the request at `net.core.rmem_max` (see docs/OPERATING.md).
const UDP_BUFFER: usize = 4 << 20;

fn udp_socket(addr: SocketAddr) -> Result<std::net::UdpSocket, Error> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| Error::io("creating the UDP socket", e))?;
    if addr.is_ipv6() {
        // `[::]:port` serves IPv4 clients too (as mapped addresses), whatever the sysctl says.
        let _ = socket.set_only_v6(false);
    }
    // Best effort: a smaller buffer still works, only less well under bursts.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    socket
        .bind(&addr.into())
        .map_err(|e| Error::io(format!("binding the QUIC endpoint on UDP {addr}"), e))?;
    Ok(socket.into())
}

impl Relay {
    /// Opens the store under `config.data_dir`, binds the QUIC endpoint (and the metrics
    /// listener if configured) and starts serving.
    ///
    /// # Errors
    /// [`Error`] if the store, TLS or a socket cannot be set up.
    pub async fn start(config: &Config, identity: &Identity) -> Result<Self, Error> {
        let clock = Clock::from_env();
        let limits = config.limits.clone();
        let quotas = Quotas::from_limits(&limits);
        let cache = usize::try_from(config.storage.cache_mib.0.saturating_mul(1 << 20))
            .unwrap_or(usize::MAX);
        let slots = connection_slots(config).map_err(Error::Config)?;
        let metrics = Arc::new(Metrics::default());
        metrics.set_connection_slots(u64::from(slots));
        let hub = Arc::new(Hub::new(
            usize::try_from(limits.max_subscribers_per_mailbox.0).unwrap_or(usize::MAX),
        ));
        // Chunks live where the envelopes do: files beside relay.redb, or a stream of their
        // own in the JetStream cluster.
        type Chunks = Option<Arc<dyn crate::store::ChunkStore>>;
        let (store, chunk_store): (Arc<dyn Store>, Chunks) =
            match (config.storage.backend, &config.jetstream) {
                #[cfg(feature = "jetstream")]
                (Backend::Jetstream, Some(js)) => {
                    let store = crate::store::JetStreamStore::connect(
                        js,
                        quotas,
                        limits.expiry_secs.0,
                        hub.clone(),
                        metrics.clone(),
                    )
                    .await?;
                    let chunks: Chunks = if config.chunks.enabled {
                        Some(Arc::new(store.chunks(js, &config.chunks).await?))
                    } else {
                        None
                    };
                    (Arc::new(store), chunks)
                }
                #[cfg(not(feature = "jetstream"))]
                (Backend::Jetstream, Some(_)) => {
                    return Err(Error::Config(
                        "storage.backend = \"jetstream\": this build has no JetStream backend \
                         (cargo feature jetstream)"
                            .into(),
                    ));
                }
                (Backend::Jetstream, None) => {
                    return Err(Error::Config(
                        "storage.backend = \"jetstream\" needs [jetstream]".into(),
                    ));
                }
                (Backend::Redb, _) => {
                    let store = Arc::new(RedbStore::open(&config.data_dir, quotas, cache)?);
                    let chunks: Chunks = if config.chunks.enabled {
                        Some(Arc::new(crate::store::ChunkFiles::open(
                            &config.data_dir,
                            config.chunks.max_chunks(),
                        )?))
                    } else {
                        None
                    };
                    (store, chunks)
                }
            };
        let chunks = crate::chunks::ChunkService::new(chunk_store, &config.chunks, clock);
        let fanout = Fanout::start(hub.clone(), metrics.clone())?;
        let (committer, writer) = Committer::start(
            store.clone(),
            fanout,
            metrics.clone(),
            clock,
            usize::try_from(config.storage.max_commit_batch.0).unwrap_or(1024),
            std::time::Duration::from_micros(config.storage.commit_linger_us),
        )?;

        let tls = identity.server_config()?;
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| Error::Tls(e.to_string()))?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server_config.transport_config(Arc::new(transport(&limits)?));
        let (socket, tcp_listener) = bind_listeners(config)?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server_config),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|e| Error::io("starting the QUIC endpoint", e))?;
        let local_addr = endpoint
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))?;
        let tcp = match tcp_listener {
            Some(l) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(identity.server_config()?));
                let l = tokio::net::TcpListener::from_std(l)
                    .map_err(|e| Error::io("registering the TCP listener", e))?;
                Some((l, acceptor))
            }
            None => None,
        };
        let tcp_addr = tcp.as_ref().and_then(|(l, _)| l.local_addr().ok());

        let metrics_listener = match &config.metrics_listen {
            Some(a) => Some(crate::metrics::bind(a.0).await?),
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());

        let forward_key =
            crate::forward::load_or_create_key(&config.forwarding.key_path(&config.key))?;
        let forwarder = crate::forward::Forwarder::new(
            &config.forwarding,
            identity,
            forward_key,
            endpoint.clone(),
        )?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            forwarder,
            #[cfg(feature = "test-hooks")]
            record: crate::record::Record::from_env(),
            store,
            spent_stamps: crate::drops::SpentStamps::new(),
            drop_shares: crate::drops::DropShares::new(
                limits.drop_deposits_per_source.0,
                limits.source_window_secs.0,
            ),
            forwarded_drop_shares: crate::drops::DropShares::new(
                limits.forwarded_drop_deposits_per_source.0,
                limits.source_window_secs.0,
            ),
            committer,
            hub,
            gate: Gate::new(Policy::new(&limits, slots), limits.loopback_exempt),
            metrics,
            disk: DiskSpace::new(config.data_dir.clone(), limits.min_free_disk_bytes),
            limits,
            shutdown: shutdown_rx,
            chunks,
        });
        if clock.is_shifted() {
            tracing::warn!("test clock offset is active; expiry uses shifted time");
        }
        if clock.offset_ignored() {
            tracing::warn!(
                "{} is set but ignored: this build lacks the feature test-hooks",
                crate::clock::TEST_CLOCK_OFFSET_ENV
            );
        }
        tracing::info!(port = local_addr.port(), "relay listening");
        if let Some(a) = tcp_addr {
            tracing::info!(port = a.port(), "relay listening on TCP");
        }
        if let Some(a) = metrics_addr {
            tracing::info!(port = a.port(), "metrics listening");
        }
        let every = Intervals {
            sweep: Duration::from_secs(config.storage.sweep_interval_secs.0),
            scrub: Duration::from_secs(config.storage.scrub_interval_secs.0),
        };
        let task = tokio::spawn(serve(
            endpoint,
            tcp,
            shared,
            writer,
            metrics_listener,
            clock,
            every,
        ));
        Ok(Self {
            local_addr,
            tcp_addr,
            pin: identity.pin()?,
            metrics_addr,
            shutdown: shutdown_tx,
            task: Some(task),
        })
    }

    /// The bound UDP address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound TCP address, if the TCP listener is on.
    #[must_use]
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The bound metrics address, if any.
    #[must_use]
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The relay address for clients on this machine (host = the bound IP, or loopback if
    /// bound to the unspecified address).
    #[must_use]
    pub fn local_relay_address(&self) -> RelayAddress {
        let ip = if self.local_addr.ip().is_unspecified() {
            match self.local_addr {
                SocketAddr::V4(_) => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                SocketAddr::V6(_) => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            }
        } else {
            self.local_addr.ip()
        };
        RelayAddress {
            pin: self.pin,
            host: Host::Ip(ip),
            port: self.local_addr.port(),
        }
    }

    /// Graceful shutdown: stop accepting, let in-flight requests finish (bounded), commit
    /// everything queued, close connections with [`CLOSE_SHUTTING_DOWN`], close the store.
    ///
    /// # Errors
    /// Whatever the serving task failed with.
    pub async fn shutdown(self) -> Result<(), Error> {
        let _ = self.shutdown.send(true);
        self.wait().await
    }

    /// Waits until the relay stops (after [`Relay::shutdown`] from another handle or a fatal
    /// error).
    ///
    /// # Errors
    /// Whatever the serving task failed with.
    pub async fn wait(mut self) -> Result<(), Error> {
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match task.await {
            Ok(r) => r,
            Err(e) => Err(Error::Io {
                what: "relay task".into(),
                source: std::io::Error::other(e.to_string()),
            }),
        }
    }

    /// A sender that triggers graceful shutdown when `true` is sent (for signal handlers).
    #[must_use]
    pub fn shutdown_trigger(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Tries this many UDP ports when `tcp_listen = "same"` and `listen` has port 0, until the
/// same TCP port is free too.
const SAME_PORT_TRIES: usize = 16;

/// Binds the QUIC socket and, if configured, the TCP listener (on the same port for "same").
fn bind_listeners(
    config: &Config,
) -> Result<(std::net::UdpSocket, Option<std::net::TcpListener>), Error> {
    let Some(tcp) = config.tcp_listen else {
        return Ok((udp_socket(config.listen)?, None));
    };
    let tries = match tcp {
        TcpListen::SameAsQuic if config.listen.port() == 0 => SAME_PORT_TRIES,
        _ => 1,
    };
    let mut last = None;
    for _ in 0..tries {
        let udp = udp_socket(config.listen)?;
        let quic = udp
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))?;
        let addr = tcp.resolve(quic);
        match tcp_socket(addr) {
            Ok(l) => return Ok((udp, Some(l))),
            Err(e) => last = Some(Error::io(format!("binding tcp_listen = {addr} (TCP)"), e)),
        }
    }
    Err(last.unwrap_or_else(|| Error::Config("tcp_listen could not be bound".into())))
}

fn tcp_socket(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        let _ = socket.set_only_v6(false);
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// The next TCP connection, or never if the TCP listener is off.
async fn accept_tcp(
    tcp: Option<&tokio::net::TcpListener>,
) -> std::io::Result<tokio::net::TcpStream> {
    match tcp {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

/// Periods of the background jobs.
struct Intervals {
    sweep: Duration,
    scrub: Duration,
}

async fn serve(
    endpoint: quinn::Endpoint,
    tcp: Option<(tokio::net::TcpListener, tokio_rustls::TlsAcceptor)>,
    shared: Arc<Shared>,
    writer: std::thread::JoinHandle<()>,
    metrics_listener: Option<tokio::net::TcpListener>,
    clock: Clock,
    every: Intervals,
) -> Result<(), Error> {
    let mut background = JoinSet::new();
    if let Some(l) = metrics_listener {
        background.spawn(crate::metrics::serve(l, shared.metrics.clone()));
    }
    background.spawn(sweeper(shared.clone(), clock, every.sweep));
    background.spawn(scrubber(shared.clone(), every.scrub));
    background.spawn(gauges(shared.clone()));
    background.spawn(disk_watch(shared.clone()));

    let mut shutdown = shared.shutdown.clone();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                // The address is used for admission only, and forgotten with the ticket.
                let Ok(ticket) = shared.gate.admit(incoming.remote_address().ip()) else {
                    shared.metrics.connection_refused();
                    incoming.refuse();
                    continue;
                };
                conns.spawn(handle_connection(incoming, shared.clone(), ticket));
            }
            accepted = accept_tcp(tcp.as_ref().map(|(l, _)| l)) => {
                // Accept errors (out of descriptors, a connection reset before accept) are
                // the kernel's; the listener goes on.
                let Ok(stream) = accepted else { continue };
                let Some((_, acceptor)) = &tcp else { continue };
                // The same admission as QUIC, by source over both: a refused connection is
                // closed before its handshake. The address is forgotten with the ticket.
                let Some(ticket) = stream
                    .peer_addr()
                    .ok()
                    .and_then(|a| shared.gate.admit(a.ip()).ok())
                else {
                    shared.metrics.connection_refused();
                    drop(stream);
                    continue;
                };
                conns.spawn(crate::tcp::handle_connection(stream, acceptor.clone(), shared.clone(), ticket));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            () = wait_shutdown(&mut shutdown) => break,
        }
    }

    tracing::info!(connections = conns.len(), "shutting down");
    shared.metrics.set_shutting_down();
    endpoint.set_server_config(None);
    drop(tcp);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = conns.len(),
            "in-flight requests did not finish in time; aborting them"
        );
        conns.shutdown().await;
    }
    endpoint.close(VarInt::from_u32(CLOSE_SHUTTING_DOWN), b"shutting down");
    background.shutdown().await;
    // Dropping the last committer handle lets the writer drain its queue and exit.
    drop(shared);
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    let _ = tokio::time::timeout(Duration::from_secs(3), endpoint.wait_idle()).await;
    tracing::info!("stopped");
    Ok(())
}

async fn sweeper(shared: Arc<Shared>, clock: Clock, every: Duration) {
    let expiry = shared.limits.expiry_secs.0;
    loop {
        let cutoff = clock.now().saturating_sub(expiry);
        loop {
            let store = shared.store.clone();
            let r = tokio::task::spawn_blocking(move || store.sweep(cutoff, SWEEP_CHUNK)).await;
            match r {
                Ok(Ok(n)) => {
                    shared.metrics.expired(n);
                    if n > 0 {
                        tracing::info!(envelopes = n, "expired");
                    }
                    if n < SWEEP_CHUNK as u64 {
                        break;
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "expiry sweep failed");
                    break;
                }
                Err(_) => break,
            }
        }
        let chunks = shared.chunks.sweep().await;
        shared.metrics.chunks_expired(chunks);
        if chunks > 0 {
            tracing::info!(chunks, "chunks expired");
        }
        tokio::time::sleep(every).await;
    }
}

/// Makes deleted and expired envelopes unrecoverable from the store's files, at most `every`
/// after they went (see `Store::scrub`). Skipped while the disk is low: the redb rewrite
/// needs room for a copy of the live data.
async fn scrubber(shared: Arc<Shared>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        if shared.disk.is_low() {
            continue;
        }
        let store = shared.store.clone();
        let started = std::time::Instant::now();
        match tokio::task::spawn_blocking(move || store.scrub()).await {
            Ok(Ok(true)) => shared.metrics.scrubbed(started.elapsed()),
            Ok(Ok(false)) | Err(_) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "scrub failed; retried next interval"),
        }
    }
}

async fn gauges(shared: Arc<Shared>) {
    loop {
        shared.gate.forget_ended_windows();
        shared.metrics.set_gauges(
            shared.store.stats().envelopes,
            shared.hub.mailbox_count() as u64,
        );
        shared.metrics.set_stored_chunks(shared.chunks.stored());
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// How often free space under data_dir is measured: often enough that the deposits of one
/// interval at full speed (about 16 MiB) stay well inside the default reserve (64 MiB).
const DISK_CHECK_EVERY: Duration = Duration::from_millis(250);

async fn disk_watch(shared: Arc<Shared>) {
    let mut was_low = false;
    loop {
        // Blocking: statvfs, and at times writing the ballast file.
        let s = shared.clone();
        let low = tokio::task::spawn_blocking(move || s.disk.refresh())
            .await
            .unwrap_or_else(|_| shared.disk.is_low());
        shared.metrics.set_disk_low(low);
        if low != was_low {
            if low {
                tracing::warn!(
                    "free disk space below limits.min_free_disk_bytes: refusing deposits"
                );
            } else {
                tracing::info!("free disk space back above the reserve: accepting deposits");
            }
            was_low = low;
        }
        tokio::time::sleep(DISK_CHECK_EVERY).await;
    }
}

pub(crate) struct OpenGuard(pub(crate) Arc<Metrics>);
impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.connection_closed();
    }
}

async fn handle_connection(incoming: quinn::Incoming, shared: Arc<Shared>, ticket: Ticket) {
    // The handshake is bounded by the QUIC idle timeout; no extra timer (a loaded relay
    // must not drop handshakes that are merely slow).
    let conn = match incoming.await {
        Ok(c) => c,
        // Failed handshakes (wrong ALPN, bad TLS) are the client's problem; never log who.
        _ => return,
    };
    shared.metrics.connection_opened();
    let _open = OpenGuard(shared.metrics.clone());
    let state = ConnState::new(&shared, ticket, conn.remote_address().ip());
    let mut shutdown = shared.shutdown.clone();
    let mut streams = JoinSet::new();
    let mut shutting_down = false;
    let ended = loop {
        tokio::select! {
            s = conn.accept_bi() => match s {
                Ok((send, recv)) => {
                    streams.spawn(handle_stream(send, recv, shared.clone(), state.clone()));
                }
                Err(e) => break ConnectionEnd::of_quic(&e),
            },
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
            () = state.ticket.evicted() => {
                // Idle long enough that a newcomer took the slot: nothing is in flight.
                shared.metrics.connection_evicted();
                shared.metrics.connection_ended(ConnectionEnd::Evicted);
                conn.close(VarInt::from_u32(CLOSE_EVICTED), b"idle");
                streams.shutdown().await;
                return;
            }
            () = wait_shutdown(&mut shutdown) => { shutting_down = true; break ConnectionEnd::Shutdown }
        }
    };
    shared.metrics.connection_ended(ended);
    while streams.join_next().await.is_some() {}
    if shutting_down {
        conn.close(VarInt::from_u32(CLOSE_SHUTTING_DOWN), b"shutting down");
    }
}

impl ConnState {
    /// The per-connection state of a new connection, QUIC or TCP, admitted with `ticket`.
    pub(crate) fn new(shared: &Shared, ticket: Ticket, peer: std::net::IpAddr) -> Arc<Self> {
        #[cfg(feature = "test-hooks")]
        if let Some(r) = &shared.record {
            r.connection(peer);
        }
        #[cfg(not(feature = "test-hooks"))]
        let _ = peer;
        Arc::new(Self {
            limiter: Mutex::new(RateLimiter::new(
                shared.limits.requests_per_sec.0,
                shared.limits.request_burst.0,
                Instant::now(),
            )),
            subscriptions: AtomicUsize::new(0),
            pushes: PushQueue::new(
                usize::try_from(shared.limits.max_queued_pushes_per_connection.0)
                    .unwrap_or(usize::MAX),
            ),
            fetching: tokio::sync::Semaphore::new(1),
            chunk_slots: shared.chunks.connection_limit(),
            forwards: tokio::sync::Semaphore::new(shared.forwarder.max_in_flight),
            ticket,
            #[cfg(feature = "test-hooks")]
            peer,
        })
    }

    /// Resolves when the admission gate gave this connection's slot to a newcomer.
    pub(crate) async fn evicted(&self) {
        self.ticket.evicted().await;
    }
}

/// The relay's reading half of one request stream, QUIC or TCP (`crate::tcp`).
pub(crate) trait RequestRecv: Send {
    /// The first frame of the stream: `FRAME_LEN` bytes, or fewer if the stream ends first
    /// (as [`hush_transport::stream::read_request_frame`]).
    fn read_frame(
        &mut self,
    ) -> impl Future<Output = Result<Zeroizing<Vec<u8>>, hush_transport::Error>> + Send;
    /// The rest of the stream after its first frame, which must be exactly `len` bytes and
    /// then its end (as [`hush_transport::stream::read_trailer`]).
    fn read_trailer(
        &mut self,
        len: usize,
    ) -> impl Future<Output = Result<Vec<u8>, hush_transport::Error>> + Send;
    /// Stops reading: the client is told to send no more.
    fn stop(&mut self);
}

/// The relay's writing half of one request stream, QUIC or TCP.
pub(crate) trait ResponseSend: Send {
    /// Writes one frame; `false` if the stream or the connection failed.
    fn write_frame(&mut self, frame: &[u8; FRAME_LEN]) -> impl Future<Output = bool> + Send;
    /// Writes raw bytes after a frame (a chunk after `Chunk`); `false` on failure.
    fn write_raw(&mut self, bytes: &[u8]) -> impl Future<Output = bool> + Send;
    /// Ends the stream and waits (bounded) until the client has every byte of it.
    fn finish(&mut self) -> impl Future<Output = ()> + Send;
    /// Resolves when the client stops reading the stream.
    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static;
}

impl RequestRecv for RecvStream {
    async fn read_frame(&mut self) -> Result<Zeroizing<Vec<u8>>, hush_transport::Error> {
        read_request_frame(self).await
    }
    async fn read_trailer(&mut self, len: usize) -> Result<Vec<u8>, hush_transport::Error> {
        read_trailer(self, len).await
    }
    fn stop(&mut self) {
        let _ = RecvStream::stop(self, VarInt::from_u32(0));
    }
}

impl ResponseSend for SendStream {
    async fn write_frame(&mut self, frame: &[u8; FRAME_LEN]) -> bool {
        write_frame(self, frame).await.is_ok()
    }
    async fn write_raw(&mut self, bytes: &[u8]) -> bool {
        self.write_all(bytes).await.is_ok()
    }
    /// Waits until the client has acknowledged every byte, so that a graceful shutdown
    /// closing the connection afterwards cannot discard an answer.
    async fn finish(&mut self) {
        if SendStream::finish(self).is_ok() {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, SendStream::stopped(self)).await;
        }
    }
    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let stopped = SendStream::stopped(self);
        async move {
            let _ = stopped.await;
        }
    }
}

async fn send_frame(send: &mut impl ResponseSend, resp: &Response) -> bool {
    send.write_frame(&resp.encode()).await
}

/// Answers `e` and counts it in `errors_total`.
async fn send_error(send: &mut impl ResponseSend, metrics: &Metrics, e: ErrorFrame) {
    metrics.error(e.code);
    answer_error(send, e).await;
}

/// Refuses a request without reading the rest of its stream (a chunk that may follow): stops
/// the stream, then counts and sends `e`.
async fn refuse(
    send: &mut impl ResponseSend,
    recv: &mut impl RequestRecv,
    metrics: &Metrics,
    e: ErrorFrame,
) {
    recv.stop();
    send_error(send, metrics, e).await;
}

/// Answers `e` without counting it as an error (the caller counts the outcome).
async fn answer_error(send: &mut impl ResponseSend, e: ErrorFrame) {
    let _ = send_frame(send, &Response::Error(e)).await;
    finish(send).await;
}

/// Finishes the stream and waits (bounded) until the client has every byte of it.
async fn finish(send: &mut impl ResponseSend) {
    send.finish().await;
}

/// Serves one request stream, QUIC or TCP.
pub(crate) async fn handle_stream(
    mut send: impl ResponseSend,
    mut recv: impl RequestRecv,
    shared: Arc<Shared>,
    state: Arc<ConnState>,
) {
    let metrics = &shared.metrics;
    // The frame may carry fetch secrets: `bytes` wipes itself when dropped (quinn's own
    // buffers are out of reach); the decoded values zeroize themselves.
    // A request is one frame and the end of its stream, except that PutChunk is followed by
    // its chunk (docs/PROTOCOL.md II.4.3), read only once the request is decoded and admitted.
    let read = async {
        let head = recv.read_frame().await?;
        let trailer = hush_proto::chunk::request_trailer_len(&head);
        if head.len() == FRAME_LEN && trailer == 0 {
            recv.read_trailer(0).await?;
        }
        Ok(head)
    };
    let bytes = match tokio::time::timeout(REQUEST_TIMEOUT, read).await {
        Ok(Ok(b)) => b,
        Ok(Err(hush_transport::Error::Protocol(e))) => {
            let code = e.code().unwrap_or(ErrorCode::Oversized);
            return refuse(&mut send, &mut recv, metrics, ErrorFrame::new(code)).await;
        }
        // The client reset the stream or the connection died: nobody to answer.
        Ok(Err(_)) => return,
        Err(_) => {
            let e = ErrorFrame::new(ErrorCode::Truncated);
            return refuse(&mut send, &mut recv, metrics, e).await;
        }
    };
    state.ticket.touch();
    let limited = state
        .limiter
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take(Instant::now());
    if let Err(wait_ms) = limited {
        let e = ErrorFrame {
            code: ErrorCode::RateLimited,
            arg: wait_ms,
        };
        return send_error(&mut send, metrics, e).await;
    }
    #[cfg(feature = "test-hooks")]
    if let Some(r) = &shared.record {
        r.frame(state.peer, &bytes);
    }
    let decoded = decode_request(&bytes);
    drop(bytes);
    let req = match decoded {
        Ok(r) => r,
        Err(e) => {
            let code = e.code().unwrap_or(ErrorCode::BadField);
            let frame = if code == ErrorCode::UnsupportedVersion {
                ErrorFrame::unsupported_version()
            } else {
                ErrorFrame::new(code)
            };
            return send_error(&mut send, metrics, frame).await;
        }
    };
    metrics.request(req.name());
    let req_kind = Kind::of(&req);
    match req {
        Request::PutChunk { .. } | Request::GetChunk { .. } | Request::DeleteChunk { .. } => {
            return chunk_request(req, send, recv, &shared, &state).await;
        }
        Request::ForwardChunk {
            destination,
            sealed,
        } => return forward_chunk(destination, sealed, send, recv, &shared, &state).await,
        Request::DeliverChunk { sealed } => {
            return deliver_chunk(sealed, send, recv, &shared, &state).await;
        }
        Request::Ping => {
            let pong = Pong {
                min_version: MIN_VERSION,
                max_version: MAX_VERSION,
                mailbox_quota: shared.limits.mailbox_quota.0,
                expiry_secs: shared.limits.expiry_secs.0,
            };
            let _ = send_frame(&mut send, &Response::Pong(pong)).await;
        }
        req @ (Request::Deposit { .. } | Request::DepositStamped { .. }) => {
            match deposit_request(&shared, &state, req, Via::Client).await {
                Ok(resp) => {
                    let _ = send_frame(&mut send, &resp).await;
                }
                Err(e) => return send_error(&mut send, metrics, e).await,
            }
        }
        Request::ForwardKey => {
            let resp = Response::ForwardKey(shared.forwarder.statement().clone());
            let _ = send_frame(&mut send, &resp).await;
        }
        Request::FetchForwardKey { destination } => {
            let Ok(_permit) = state.forwards.try_acquire() else {
                return send_error(&mut send, metrics, forwards_busy()).await;
            };
            match shared.forwarder.fetch_key(&destination).await {
                Ok(st) => {
                    let _ = send_frame(&mut send, &Response::ForwardKey(st)).await;
                }
                Err(e) => return send_error(&mut send, metrics, e).await,
            }
        }
        Request::Forward {
            destination,
            sealed,
        } => {
            let Ok(_permit) = state.forwards.try_acquire() else {
                return send_error(&mut send, metrics, forwards_busy()).await;
            };
            // A forward is a deposit somewhere: it is charged to the source's deposit budget
            // here, as the deposit is there (to this relay's source).
            if let Err(e) = charge_deposit(&state) {
                return send_error(&mut send, metrics, e).await;
            }
            match shared.forwarder.forward(&destination, sealed).await {
                Ok(answer) => {
                    let _ = send_frame(&mut send, &Response::Forwarded(answer)).await;
                }
                Err(e) => return send_error(&mut send, metrics, e).await,
            }
        }
        Request::Deliver { sealed } => {
            let (inner, keys) = match shared.forwarder.open(&sealed) {
                Ok(opened) => opened,
                Err(e) => return send_error(&mut send, metrics, e).await,
            };
            let digest = inner_digest(&inner.request);
            let resp = match shared.forwarder.remembered(&inner.id, &digest) {
                // A retry of a deposit stored before (its answer was lost on the way back).
                Some(id) => Response::Deposited(id),
                None => match deposit_request(&shared, &state, inner.request, Via::Forwarder).await
                {
                    Ok(Response::Deposited(id)) => {
                        shared.forwarder.remember(inner.id, digest, id);
                        Response::Deposited(id)
                    }
                    Ok(other) => other,
                    Err(e) => {
                        metrics.error(e.code);
                        Response::Error(e)
                    }
                },
            };
            let answer = hush_proto::forward::InnerAnswer::of(inner.id, &resp);
            let sealed = hush_proto::forward::seal_answer(
                &keys,
                crate::forward::Forwarder::nonce(),
                &answer,
            );
            let _ = send_frame(&mut send, &Response::Forwarded(sealed)).await;
        }
        Request::Fetch { after, secrets } | Request::FetchDrops { after, secrets } => {
            // Each secret opens its mailbox (or, in FetchDrops, its drop); answers name it by
            // the id the client knows.
            let drops = matches!(req_kind, Kind::Drops);
            let opened = crate::drops::Opened::new(secrets.secrets(), drops);
            drop(secrets);
            let mailboxes: Arc<[_]> = opened.keys.iter().copied().collect();
            // The semaphore is never closed; a failure would only mean no limit.
            let _one_at_a_time = state.fetching.acquire().await;
            // Read in pages so a fetch holds at most FETCH_PAGE envelopes at once (two with
            // the one being sent); the answer is the same as one read of FETCH_LIMIT.
            let (pages, mut next) = tokio::sync::mpsc::channel::<Vec<Stored>>(1);
            let store = shared.store.clone();
            let reading = tokio::task::spawn_blocking(move || {
                store.fetch_pages(&mailboxes, after, FETCH_LIMIT, FETCH_PAGE, &mut |items| {
                    pages.blocking_send(items).is_ok()
                })
            });
            let mut returned = 0usize;
            while let Some(items) = next.recv().await {
                returned += items.len();
                metrics.fetched(items.len() as u64);
                #[cfg(feature = "test-hooks")]
                if let Some(r) = &shared.record {
                    r.fetched(state.peer, items.len());
                }
                for s in items {
                    let d = hush_proto::Delivery {
                        mailbox: opened.reported(s.mailbox),
                        id: s.id,
                        envelope: s.envelope,
                    };
                    if !send_frame(&mut send, &Response::Envelope(d)).await {
                        // Dropping the receiver stops the reader at its next page.
                        return;
                    }
                }
            }
            let Ok(Ok(more)) = reading.await else {
                return send_error(&mut send, metrics, ErrorFrame::new(ErrorCode::Internal)).await;
            };
            let returned = u32::try_from(returned).unwrap_or(u32::MAX);
            let _ = send_frame(&mut send, &Response::FetchDone { returned, more }).await;
        }
        Request::Delete { secret, ids } | Request::DeleteDrop { secret, ids } => {
            let drops = matches!(req_kind, Kind::Drops);
            let opened = crate::drops::Opened::new([&secret], drops);
            drop(secret);
            let op = WriteOp::Delete {
                mailbox: opened.keys[0],
                ids: ids.ids().to_vec(),
            };
            let code = match shared.committer.submit(op).await {
                Ok(WriteOutcome::Deleted {
                    deleted,
                    expired,
                    unknown,
                }) => {
                    if deleted > 0 {
                        metrics.deleted(u64::from(deleted));
                        metrics.delete_outcome(DeleteOutcome::Deleted);
                        let resp = Response::Deleted {
                            deleted,
                            expired,
                            unknown,
                        };
                        let _ = send_frame(&mut send, &resp).await;
                        finish(&mut send).await;
                        return;
                    }
                    // A delete that finds nothing is a normal outcome (a retried delete, or
                    // one that expiry got to first): the answer is an error frame, as the
                    // protocol says, but it is counted apart from errors.
                    let (code, outcome) = if expired > 0 {
                        (ErrorCode::Expired, DeleteOutcome::Expired)
                    } else {
                        (ErrorCode::UnknownEnvelope, DeleteOutcome::Unknown)
                    };
                    metrics.delete_outcome(outcome);
                    return answer_error(&mut send, ErrorFrame::new(code)).await;
                }
                Ok(_) | Err(Error::Storage(_)) => ErrorCode::Internal,
                Err(_) => ErrorCode::ShuttingDown,
            };
            return send_error(&mut send, metrics, ErrorFrame::new(code)).await;
        }
        Request::Subscribe { secrets } | Request::SubscribeDrops { secrets } => {
            let max = usize::try_from(shared.limits.max_subscriptions_per_connection.0)
                .unwrap_or(usize::MAX);
            if state.subscriptions.fetch_add(1, Ordering::AcqRel) >= max {
                state.subscriptions.fetch_sub(1, Ordering::AcqRel);
                let e = ErrorFrame::new(ErrorCode::TooManySubscriptions);
                return send_error(&mut send, metrics, e).await;
            }
            let drops = matches!(req_kind, Kind::Drops);
            let opened = crate::drops::Opened::new(secrets.secrets(), drops);
            let count = u16::try_from(secrets.secrets().len()).unwrap_or(u16::MAX);
            drop(secrets);
            let Ok(mut sub) = shared
                .hub
                .subscribe(opened.keys.clone(), state.pushes.clone())
            else {
                // The mailbox has its most subscribers (only fetch-secret holders can
                // subscribe, so this refuses the holder's own extra subscriptions).
                state.subscriptions.fetch_sub(1, Ordering::AcqRel);
                let e = ErrorFrame::new(ErrorCode::TooManySubscriptions);
                return send_error(&mut send, metrics, e).await;
            };
            let mut shutdown = shared.shutdown.clone();
            let stopped = send.stopped();
            tokio::pin!(stopped);
            if send_frame(&mut send, &Response::Subscribed { count }).await {
                loop {
                    tokio::select! {
                        next = sub.next() => match next {
                            Next::Delivery(d) => {
                                let mut d = (*d).clone();
                                d.mailbox = opened.reported(d.mailbox);
                                if !send_frame(&mut send, &Response::Envelope(d)).await {
                                    break;
                                }
                            }
                            Next::Lagged => {
                                metrics.error(ErrorCode::Lagged);
                                let _ = send_frame(&mut send, &Response::Error(ErrorFrame::new(ErrorCode::Lagged))).await;
                                break;
                            }
                        },
                        _ = &mut stopped => break,
                        () = wait_shutdown(&mut shutdown) => {
                            metrics.error(ErrorCode::ShuttingDown);
                            let _ = send_frame(&mut send, &Response::Error(ErrorFrame::new(ErrorCode::ShuttingDown))).await;
                            break;
                        }
                    }
                }
            }
            drop(sub);
            state.subscriptions.fetch_sub(1, Ordering::AcqRel);
        }
        _ => {
            return send_error(&mut send, metrics, ErrorFrame::new(ErrorCode::UnknownKind)).await;
        }
    }
    finish(&mut send).await;
}

/// The answer to a Forward beyond the connection's forwards in flight.
fn forwards_busy() -> ErrorFrame {
    ErrorFrame {
        code: ErrorCode::RateLimited,
        arg: 1000,
    }
}

/// What a deposit stores, for a destination's memory of forwarded deposits: its storage key
/// and envelope (a retry carries a new stamp, so the stamp is left out).
fn inner_digest(req: &Request) -> [u8; 32] {
    match req {
        Request::Deposit { mailbox, envelope } => crate::forward::deposit_digest(
            &hush_proto::drop::storage_key(mailbox),
            envelope.as_bytes(),
        ),
        Request::DepositStamped { drop, envelope, .. } => {
            crate::forward::deposit_digest(&drop.storage_key(), envelope.as_bytes())
        }
        _ => [0; 32],
    }
}

/// Where a deposit came from: its connection's own client, or a forwarding relay (a Deliver).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Client,
    Forwarder,
}

/// A Deposit or DepositStamped, from a client or opened from a Deliver: the answer
/// (`Deposited`), or the error frame to send.
async fn deposit_request(
    shared: &Shared,
    state: &ConnState,
    req: Request,
    via: Via,
) -> Result<Response, ErrorFrame> {
    if shared.disk.is_low() {
        return Err(ErrorFrame::new(ErrorCode::RelayFull));
    }
    match req {
        Request::Deposit { mailbox, envelope } => {
            charge_deposit(state)?;
            let key = hush_proto::drop::storage_key(&mailbox);
            deposit(shared, key, envelope).await
        }
        Request::DepositStamped {
            drop,
            stamp,
            envelope,
        } => {
            charge_deposit(state)?;
            let key = drop.storage_key();
            let shares = match via {
                Via::Client => &shared.drop_shares,
                Via::Forwarder => &shared.forwarded_drop_shares,
            };
            if let Err(wait_ms) = shares.take_now(state.ticket.source(), key) {
                // This source's share of the drop for the window is spent: one link holder
                // cannot fill it for the others, whatever work it pays.
                return Err(ErrorFrame {
                    code: ErrorCode::RateLimited,
                    arg: u32::try_from(wait_ms).unwrap_or(u32::MAX),
                });
            }
            let store = shared.store.clone();
            let Ok(Ok(stored)) = tokio::task::spawn_blocking(move || store.count(&key)).await
            else {
                return Err(ErrorFrame::new(ErrorCode::Internal));
            };
            if let Err(weak) = shared.spent_stamps.pay(&drop, &stamp, &envelope, stored) {
                return Err(ErrorFrame {
                    code: ErrorCode::StampTooWeak,
                    arg: weak.required,
                });
            }
            deposit(shared, key, envelope).await
        }
        _ => Err(ErrorFrame::new(ErrorCode::UnknownKind)),
    }
}

/// Serves PutChunk, GetChunk and DeleteChunk (docs/PROTOCOL.md II.4.3).
async fn chunk_request(
    req: Request,
    mut send: impl ResponseSend,
    mut recv: impl RequestRecv,
    shared: &Shared,
    state: &ConnState,
) {
    let metrics = &shared.metrics;
    let svc = &shared.chunks;
    let _slot = match svc.admit(&state.chunk_slots) {
        Ok(s) => s,
        Err(e) => return refuse(&mut send, &mut recv, metrics, e).await,
    };
    if matches!(req, Request::PutChunk { .. }) && shared.disk.is_low() {
        let e = ErrorFrame::new(ErrorCode::ChunkStoreFull);
        return refuse(&mut send, &mut recv, metrics, e).await;
    }
    let answer = match req {
        Request::PutChunk { id } => crate::chunks::put(svc, id, &mut recv).await,
        Request::DeleteChunk { secret } => crate::chunks::delete(svc, secret.id()).await,
        Request::GetChunk { secret } => match crate::chunks::get(svc, secret.id()).await {
            Ok(data) => {
                if crate::chunks::send_chunk(&mut send, &data).await {
                    metrics.chunk_bytes_sent(data.len());
                }
                return finish(&mut send).await;
            }
            Err(e) => Err(e),
        },
        _ => Err(ErrorFrame::new(ErrorCode::UnexpectedKind)),
    };
    match answer {
        Ok(resp) => {
            if matches!(resp, Response::ChunkStored { fresh: true }) {
                metrics.chunk_bytes_received(hush_proto::CHUNK_LEN);
            }
            let _ = send_frame(&mut send, &resp).await;
            finish(&mut send).await;
        }
        Err(e) => send_error(&mut send, metrics, e).await,
    }
}

/// Sends a `ChunkForwarded` frame and the sealed chunk after it, if there is one.
async fn send_chunk_forwarded(
    send: &mut impl ResponseSend,
    answer: hush_proto::forward_chunk::SealedChunkAnswer,
    trailer: Option<&[u8]>,
) -> bool {
    send_frame(send, &Response::ChunkForwarded(answer)).await
        && match trailer {
            Some(data) => send.write_raw(data).await,
            None => true,
        }
}

/// ForwardChunk (docs/PROTOCOL.md II.4.4): passes a sealed chunk request, and a put's sealed
/// chunk, on to the destination as DeliverChunk and its sealed answer back. Each holds a
/// chunk in memory here, so it counts against the chunk limits; this relay needs no chunk
/// storage of its own for it.
async fn forward_chunk(
    destination: hush_proto::forward::Destination,
    sealed: hush_proto::forward_chunk::SealedChunkRequest,
    mut send: impl ResponseSend,
    mut recv: impl RequestRecv,
    shared: &Shared,
    state: &ConnState,
) {
    let metrics = &shared.metrics;
    if let Some(e) = shared.forwarder.refusal(&destination) {
        return refuse(&mut send, &mut recv, metrics, e).await;
    }
    let _slot = match shared.chunks.admit_forwarding(&state.chunk_slots) {
        Ok(s) => s,
        Err(e) => return refuse(&mut send, &mut recv, metrics, e).await,
    };
    let trailer = if sealed.trailer {
        match crate::chunks::read_chunk(&mut recv).await {
            Ok(d) => Some(d),
            Err(e) => return send_error(&mut send, metrics, e).await,
        }
    } else {
        None
    };
    match shared
        .forwarder
        .forward_chunk(&destination, sealed, trailer)
        .await
    {
        Ok((answer, data)) => {
            let _ = send_chunk_forwarded(&mut send, answer, data.as_deref()).await;
            finish(&mut send).await;
        }
        Err(e) => send_error(&mut send, metrics, e).await,
    }
}

/// DeliverChunk (docs/PROTOCOL.md II.4.4): opens a chunk request sealed to this relay,
/// refuses a replay, performs it as if it had come directly (same limits, storage and
/// answers) and answers it sealed, a get's chunk sealed after the answer.
async fn deliver_chunk(
    sealed: hush_proto::forward_chunk::SealedChunkRequest,
    mut send: impl ResponseSend,
    mut recv: impl RequestRecv,
    shared: &Shared,
    state: &ConnState,
) {
    use hush_proto::forward_chunk::ChunkAnswer;
    let metrics = &shared.metrics;
    let svc = &shared.chunks;
    let _slot = match svc.admit(&state.chunk_slots) {
        Ok(s) => s,
        Err(e) => return refuse(&mut send, &mut recv, metrics, e).await,
    };
    let opened = match shared.forwarder.open_chunk(&sealed) {
        Ok(o) => o,
        Err(e) => return refuse(&mut send, &mut recv, metrics, e).await,
    };
    let outcome = match opened.request() {
        Request::PutChunk { id } => {
            let id = *id;
            if shared.disk.is_low() {
                recv.stop();
                Err(ErrorFrame::new(ErrorCode::ChunkStoreFull))
            } else {
                let data = match crate::chunks::read_chunk(&mut recv).await {
                    Ok(d) => d,
                    Err(e) => return send_error(&mut send, metrics, e).await,
                };
                // A chunk changed on the way does not open: nothing is stored, and the
                // answer is plain (the request opened, so its key is used up: retries
                // seal anew).
                let Ok(data) = opened.open_trailer(data) else {
                    let e = ErrorFrame::new(ErrorCode::ForwardUnsealable);
                    return send_error(&mut send, metrics, e).await;
                };
                crate::chunks::store(svc, id, data).await.map(|r| match r {
                    Response::ChunkStored { fresh } => {
                        if fresh {
                            metrics.chunk_bytes_received(hush_proto::CHUNK_LEN);
                        }
                        ChunkAnswer::Stored { fresh }
                    }
                    _ => ChunkAnswer::Error(ErrorFrame::new(ErrorCode::Internal)),
                })
            }
        }
        Request::GetChunk { secret } => crate::chunks::get(svc, secret.id())
            .await
            .map(ChunkAnswer::Chunk),
        Request::DeleteChunk { secret } => crate::chunks::delete(svc, secret.id())
            .await
            .map(|_| ChunkAnswer::Deleted),
        _ => Err(ErrorFrame::new(ErrorCode::Internal)),
    };
    let answer = outcome.unwrap_or_else(|e| {
        metrics.error(e.code);
        ChunkAnswer::Error(e)
    });
    let (sealed_answer, trailer) = opened.seal_answer(crate::forward::Forwarder::nonce(), answer);
    if send_chunk_forwarded(&mut send, sealed_answer, trailer.as_deref()).await
        && let Some(data) = &trailer
    {
        metrics.chunk_bytes_sent(data.len());
    }
    finish(&mut send).await;
}

/// Charges one deposit to the connection's source; the error to send if its budget for the
/// window is spent (fairness without accounts: no one source fills the relay for everyone).
fn charge_deposit(state: &ConnState) -> Result<(), ErrorFrame> {
    state.ticket.charge_deposit().map_err(|wait_ms| ErrorFrame {
        code: ErrorCode::RateLimited,
        arg: u32::try_from(wait_ms).unwrap_or(u32::MAX),
    })
}

/// Whether a fetch secret in a request opens an ordinary mailbox or the drop it owns.
enum Kind {
    Mailboxes,
    Drops,
}

impl Kind {
    fn of(req: &Request) -> Self {
        match req {
            Request::FetchDrops { .. }
            | Request::DeleteDrop { .. }
            | Request::SubscribeDrops { .. } => Self::Drops,
            _ => Self::Mailboxes,
        }
    }
}

/// Commits one deposit under the storage key `mailbox` (of a mailbox or a drop) and gives
/// the answer: `Deposited`, or the error frame to send.
async fn deposit(
    shared: &Shared,
    mailbox: MailboxId,
    envelope: Envelope,
) -> Result<Response, ErrorFrame> {
    match shared
        .committer
        .submit(WriteOp::Deposit { mailbox, envelope })
        .await
    {
        Ok(WriteOutcome::Stored(id)) => {
            shared.metrics.stored();
            Ok(Response::Deposited(id))
        }
        Ok(WriteOutcome::MailboxFull) => Err(ErrorFrame::new(ErrorCode::MailboxFull)),
        Ok(WriteOutcome::RelayFull) => Err(ErrorFrame::new(ErrorCode::RelayFull)),
        Ok(WriteOutcome::Deleted { .. } | WriteOutcome::Unavailable) | Err(Error::Storage(_)) => {
            Err(ErrorFrame::new(ErrorCode::Internal))
        }
        Err(_) => Err(ErrorFrame::new(ErrorCode::ShuttingDown)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_allows_the_burst_then_refuses_with_a_wait() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(2, 3, t0);
        assert!(r.take(t0).is_ok());
        assert!(r.take(t0).is_ok());
        assert!(r.take(t0).is_ok());
        // At 2 requests/s the next token is 500 ms away.
        assert_eq!(r.take(t0), Err(500));
        assert_eq!(r.take(t0 + Duration::from_millis(250)), Err(250));
        assert!(r.take(t0 + Duration::from_millis(500)).is_ok());
        // Refill never exceeds the burst.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(r.take(later).is_ok());
        }
        assert!(r.take(later).is_err());
    }
}
