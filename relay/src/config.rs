//! Relay configuration: the TOML file, environment overrides, and validation.
//!
//! Owns: the schema (every key, its default and its bounds), parsing with line-precise errors,
//! `HUSH_RELAY_*` environment overrides, and the commented template written by `init`.
//! Must never read secrets from the config (the key lives in its own file) and never accept a
//! metrics listener that is not on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Error;

/// The whole configuration, as parsed and validated.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// UDP address the QUIC endpoint binds.
    pub listen: SocketAddr,
    /// The TLS-over-TCP listener for clients without UDP (Tor, UDP-blocked networks):
    /// `"same"` (the address and port of `listen`, which is where clients look for it) or
    /// an explicit address. Omit to turn it off.
    #[serde(default)]
    pub tcp_listen: Option<TcpListen>,
    /// Public `host:port` clients use; only used to print the relay address.
    #[serde(default)]
    pub public_address: Option<String>,
    /// Directory holding the database (`relay.redb`).
    pub data_dir: PathBuf,
    /// DER or PEM certificate made by `init`.
    pub cert: PathBuf,
    /// PEM PKCS#8 Ed25519 private key made by `init`.
    pub key: PathBuf,
    /// Health and Prometheus metrics listener (HTTP, loopback only). Omit to disable.
    #[serde(default)]
    pub metrics_listen: Option<LoopbackAddr>,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// Storage backend and tuning.
    #[serde(default)]
    pub storage: Storage,
    /// The NATS JetStream cluster, when `storage.backend = "jetstream"`.
    #[serde(default)]
    pub jetstream: Option<JetStream>,
    /// File chunks (docs/PROTOCOL.md II.4.3).
    #[serde(default)]
    pub chunks: Chunks,
    /// Logging.
    #[serde(default)]
    pub log: Log,
    /// Private routing: passing clients' sealed deposits on to other relays.
    #[serde(default)]
    pub forwarding: Forwarding,
}

/// Private routing (docs/PROTOCOL.md II.4.2). Every relay answers `Deliver` (forwarded
/// deposits sealed to its key); `enabled` decides whether it also forwards for its clients.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Forwarding {
    /// Whether this relay passes its clients' `Forward` commands on to other relays. Off,
    /// they are answered `ForwardingDisabled`, and clients with private routing keep their
    /// messages queued.
    pub enabled: bool,
    /// The X25519 forwarding key file, created on first start (mode 0600). Default:
    /// `forward.key` beside the TLS key.
    pub key: Option<PathBuf>,
    /// Forward commands one client connection may have in flight; more are answered
    /// `RateLimited`.
    pub max_in_flight_per_connection: Positive<u32>,
    /// Seconds a forward may wait for the destination relay (connecting included).
    pub timeout_secs: Positive<u64>,
    /// Forwarded requests whose ephemeral keys and answers this relay remembers as a
    /// destination, to refuse replays and store a retried deposit once (memory only).
    pub remembered_requests: Positive<u32>,
}

impl Default for Forwarding {
    fn default() -> Self {
        Self {
            enabled: true,
            key: None,
            max_in_flight_per_connection: Positive(8),
            timeout_secs: Positive(20),
            remembered_requests: Positive(65_536),
        }
    }
}

impl Forwarding {
    /// The key file: `key`, or `forward.key` beside `tls_key`.
    #[must_use]
    pub fn key_path(&self, tls_key: &Path) -> PathBuf {
        match &self.key {
            Some(k) => k.clone(),
            None => tls_key.with_file_name("forward.key"),
        }
    }
}

/// Resource limits.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Envelopes one mailbox may hold.
    pub mailbox_quota: Positive<u32>,
    /// Seconds an envelope is kept before the sweeper deletes it.
    pub expiry_secs: Positive<u64>,
    /// Bytes of envelopes the relay stores in total (counted as 4096 per envelope).
    pub max_stored_bytes: Positive<u64>,
    /// Free bytes the file system of `data_dir` keeps: below, deposits are refused
    /// (`RelayFull`) while fetches and deletes go on. 0 turns the check off.
    pub min_free_disk_bytes: u64,
    /// Concurrent QUIC connections.
    pub max_connections: Positive<u32>,
    /// Seconds of silence after which a connection is dropped.
    pub idle_timeout_secs: Positive<u64>,
    /// Requests per second each connection may make (token bucket refill rate).
    pub requests_per_sec: Positive<u32>,
    /// Requests a connection may burst above the rate.
    pub request_burst: Positive<u32>,
    /// Concurrent request streams per connection.
    pub max_streams_per_connection: Positive<u32>,
    /// Concurrent subscriptions per connection.
    pub max_subscriptions_per_connection: Positive<u32>,
    /// Live subscriptions that may cover one mailbox (all connections together).
    pub max_subscribers_per_mailbox: Positive<u32>,
    /// Pushes a connection may have waiting to be written (all its subscriptions together);
    /// beyond, its subscriptions end with `Lagged`.
    pub max_queued_pushes_per_connection: Positive<u32>,
    /// Memory ceiling of the relay process in MiB: connections are admitted only while the
    /// worst case of every admitted connection plus the fixed parts fits (docs/OPERATING.md).
    pub max_memory_mib: Positive<u64>,
    /// Concurrent connections from one source (an IPv4 address, or an IPv6 /64).
    pub max_connections_per_source: Positive<u32>,
    /// When every connection slot is taken, a new connection evicts the longest-idle one if
    /// that one has made no request for at least this many seconds.
    pub evict_idle_after_secs: Positive<u64>,
    /// Deposits one source may make per window (`source_window_secs`).
    pub source_deposits_per_window: Positive<u32>,
    /// Seconds of the per-source deposit window.
    pub source_window_secs: Positive<u64>,
    /// Stamped deposits one source may make to one drop (an invite's handshake mailbox) per
    /// window (`source_window_secs`), so that no single link holder fills a drop.
    pub drop_deposits_per_source: Positive<u32>,
    /// The same for stamped deposits that arrive through a forwarding relay (a Deliver,
    /// docs/PROTOCOL.md II.4.2): the source is then that relay, which carries all its
    /// clients, so one of them must not spend the share of the others. The stamp's price,
    /// which rises with the drop's fill, is what bounds a flood through a forwarder.
    pub forwarded_drop_deposits_per_source: Positive<u32>,
    /// Whether loopback peers (local forwarders: a Tor onion service, a forwarding relay)
    /// are exempt from the per-source limits.
    pub loopback_exempt: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            mailbox_quota: Positive(256),
            expiry_secs: Positive(7 * 24 * 3600),
            max_stored_bytes: Positive(10 * 1024 * 1024 * 1024),
            min_free_disk_bytes: 64 * 1024 * 1024,
            max_connections: Positive(20_000),
            idle_timeout_secs: Positive(60),
            requests_per_sec: Positive(500),
            request_burst: Positive(1000),
            max_streams_per_connection: Positive(64),
            max_subscriptions_per_connection: Positive(16),
            max_subscribers_per_mailbox: Positive(32),
            max_queued_pushes_per_connection: Positive(64),
            max_memory_mib: Positive(4096),
            max_connections_per_source: Positive(256),
            evict_idle_after_secs: Positive(30),
            source_deposits_per_window: Positive(4096),
            source_window_secs: Positive(3600),
            drop_deposits_per_source: Positive(16),
            forwarded_drop_deposits_per_source: Positive(256),
            loopback_exempt: true,
        }
    }
}

/// The longest `storage.commit_linger_us` accepted: a wait beyond it would cost more latency
/// than any batching saves.
pub const MAX_COMMIT_LINGER_US: u64 = 10_000;

/// Storage backend and tuning.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// Where envelopes are kept.
    pub backend: Backend,
    /// Most operations grouped into one durable commit.
    pub max_commit_batch: Positive<u32>,
    /// Most microseconds a lone write waits for others to share its commit (0: never; at
    /// most [`MAX_COMMIT_LINGER_US`]).
    pub commit_linger_us: u64,
    /// Seconds between expiry sweeps.
    pub sweep_interval_secs: Positive<u64>,
    /// Memory for the database page cache, in MiB.
    pub cache_mib: Positive<u64>,
    /// redb: most seconds between a delete (or expiry) and the rewrite of the database that
    /// leaves nothing of the deleted envelopes in the relay's files.
    pub scrub_interval_secs: Positive<u64>,
}

impl Default for Storage {
    fn default() -> Self {
        Self {
            backend: Backend::Redb,
            max_commit_batch: Positive(1024),
            commit_linger_us: 1000,
            sweep_interval_secs: Positive(60),
            cache_mib: Positive(64),
            scrub_interval_secs: Positive(600),
        }
    }
}

/// File chunk storage: its own quota and expiry, apart from envelopes'.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Chunks {
    /// Whether the relay stores chunks at all; off, chunk requests get `ChunksUnsupported`.
    pub enabled: bool,
    /// Bytes of chunks stored in total (a multiple of the 256 KiB chunk size is used; beyond,
    /// `ChunkStoreFull`).
    pub max_stored_bytes: Positive<u64>,
    /// Seconds a chunk is kept before it expires (fetched chunks are deleted sooner by their
    /// recipient).
    pub expiry_secs: Positive<u64>,
    /// Chunk requests one connection may have in flight; beyond, `ChunkBusy`.
    pub max_in_flight_per_connection: Positive<u32>,
    /// Chunk requests in flight over all connections (each holds 256 KiB of memory);
    /// beyond, `ChunkBusy`.
    pub max_in_flight: Positive<u32>,
}

impl Default for Chunks {
    fn default() -> Self {
        Self {
            enabled: true,
            max_stored_bytes: Positive(4 * 1024 * 1024 * 1024),
            expiry_secs: Positive(2 * 24 * 3600),
            max_in_flight_per_connection: Positive(4),
            max_in_flight: Positive(64),
        }
    }
}

impl Chunks {
    /// Most chunks stored: `max_stored_bytes` in whole chunks.
    #[must_use]
    pub fn max_chunks(&self) -> u64 {
        self.max_stored_bytes.0 / hush_proto::CHUNK_LEN as u64
    }

    fn validate(&self, origin: &str) -> Result<(), Error> {
        if self.enabled && self.max_chunks() == 0 {
            return Err(Error::Config(format!(
                "{origin}: chunks.max_stored_bytes must hold at least one chunk ({} bytes)",
                hush_proto::CHUNK_LEN
            )));
        }
        if self.max_in_flight_per_connection.0 > self.max_in_flight.0 {
            return Err(Error::Config(format!(
                "{origin}: chunks.max_in_flight_per_connection must not exceed chunks.max_in_flight"
            )));
        }
        Ok(())
    }
}

/// A storage backend.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `relay.redb` in `data_dir`: one machine, one relay process (the default).
    Redb,
    /// A replicated NATS JetStream cluster shared by several relay processes (`[jetstream]`).
    Jetstream,
}

/// The NATS JetStream cluster (see docs/OPERATING.md). The relay authenticates with a TLS
/// client certificate: credentials are files, never values in this file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JetStream {
    /// Comma-separated NATS URLs of the cluster's nodes (`nats://host:4222` or `tls://...`).
    pub servers: String,
    /// Name of the envelope stream (its id-key stream is `<stream>_META`).
    #[serde(default = "JetStream::default_stream")]
    pub stream: String,
    /// First token of every subject the relay uses (`<prefix>.mb.<mailbox>`).
    #[serde(default = "JetStream::default_prefix")]
    pub subject_prefix: String,
    /// Copies of each envelope in the cluster: 1, 3 or 5.
    #[serde(default = "JetStream::default_replicas")]
    pub replicas: Replicas,
    /// Seconds within which a retried deposit of the same bytes is stored once.
    #[serde(default = "JetStream::default_duplicate_window")]
    pub duplicate_window_secs: Positive<u64>,
    /// Milliseconds to wait for the cluster's answer to one request or publish.
    #[serde(default = "JetStream::default_request_timeout")]
    pub request_timeout_ms: Positive<u64>,
    /// CA certificate (PEM) that signs the cluster's client-facing certificates; setting it
    /// requires TLS.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS; both or neither.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// See `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
}

impl JetStream {
    fn default_stream() -> String {
        "HUSH".into()
    }
    fn default_prefix() -> String {
        "hush".into()
    }
    fn default_replicas() -> Replicas {
        Replicas(3)
    }
    fn default_duplicate_window() -> Positive<u64> {
        Positive(120)
    }
    fn default_request_timeout() -> Positive<u64> {
        Positive(5000)
    }

    /// The URLs of `servers`.
    #[must_use]
    pub fn server_list(&self) -> Vec<&str> {
        self.servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Checks what serde cannot: names NATS accepts, TLS files in pairs.
    fn validate(&self, origin: &str) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::Config(format!("{origin}: [jetstream] {m}")));
        if self.server_list().is_empty() {
            return bad("servers must name at least one NATS URL");
        }
        #[cfg(feature = "jetstream")]
        for url in self.server_list() {
            if url.parse::<async_nats::ServerAddr>().is_err() {
                return bad(&format!(
                    "servers: {url:?} is not a NATS URL (nats://host:port or tls://host:port)"
                ));
            }
        }
        let token_ok = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !token_ok(&self.stream) || self.stream.len() > 32 {
            return bad("stream must be 1..=32 characters of A-Z, a-z, 0-9, '_' or '-'");
        }
        if !token_ok(&self.subject_prefix) {
            return bad("subject_prefix must be one subject token (A-Z, a-z, 0-9, '_', '-')");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad("tls_cert and tls_key go together");
        }
        Ok(())
    }
}

/// JetStream replica count: 1, 3 or 5 (an even count adds no fault tolerance).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replicas(pub u8);

impl<'de> Deserialize<'de> for Replicas {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u8::deserialize(d)?;
        if !matches!(v, 1 | 3 | 5) {
            return Err(serde::de::Error::custom("replicas must be 1, 3 or 5"));
        }
        Ok(Self(v))
    }
}

/// Logging.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// One of error, warn, info, debug, trace.
    pub level: LogLevel,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            level: LogLevel::Info,
        }
    }
}

/// Log verbosity of the relay's own messages (dependencies are always silenced, because their
/// messages may carry peer addresses).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)] // the names are the documentation
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The `tracing` filter directive.
    #[must_use]
    pub fn directive(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// A number that must be at least 1 (a zero limit is always a mistake).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Positive<T>(pub T);

impl<'de, T> Deserialize<'de> for Positive<T>
where
    T: Deserialize<'de> + PartialOrd + From<u8>,
{
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = T::deserialize(d)?;
        if v < T::from(1) {
            return Err(serde::de::Error::custom("must be at least 1"));
        }
        Ok(Self(v))
    }
}

/// Where the TCP listener binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpListen {
    /// The IP and port of `listen` (TCP and UDP port spaces are separate). With port 0 the
    /// TCP listener takes the port the QUIC endpoint got.
    SameAsQuic,
    /// This address. Clients connect to the port of the relay address, so an operator who
    /// chooses another port forwards the published one to it.
    Addr(SocketAddr),
}

impl TcpListen {
    /// The address to bind, given the QUIC endpoint's bound address.
    #[must_use]
    pub fn resolve(self, quic: SocketAddr) -> SocketAddr {
        match self {
            Self::SameAsQuic => quic,
            Self::Addr(a) => a,
        }
    }
}

impl<'de> Deserialize<'de> for TcpListen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "same" {
            return Ok(Self::SameAsQuic);
        }
        s.parse().map(Self::Addr).map_err(|_| {
            serde::de::Error::custom(
                "tcp_listen must be \"same\" (the address of listen) or an address like \"0.0.0.0:4433\"",
            )
        })
    }
}

/// A socket address on a loopback interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopbackAddr(pub SocketAddr);

/// The metrics listener `init` writes into a new config.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

impl TryFrom<SocketAddr> for LoopbackAddr {
    type Error = &'static str;
    fn try_from(a: SocketAddr) -> Result<Self, Self::Error> {
        if !a.ip().is_loopback() {
            return Err(
                "metrics_listen must be a loopback address (127.0.0.1 or [::1]); \
                 expose it through a reverse proxy or SSH tunnel if needed",
            );
        }
        Ok(Self(a))
    }
}

impl std::str::FromStr for LoopbackAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let a: SocketAddr = s.parse().map_err(|e| format!("{s}: {e}"))?;
        Self::try_from(a).map_err(str::to_owned)
    }
}

impl<'de> Deserialize<'de> for LoopbackAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let a = SocketAddr::deserialize(d)?;
        Self::try_from(a).map_err(serde::de::Error::custom)
    }
}

/// Environment variables that override keys: (variable, section or "", key).
pub const ENV_OVERRIDES: &[(&str, &str, &str)] = &[
    ("HUSH_RELAY_LISTEN", "", "listen"),
    ("HUSH_RELAY_TCP_LISTEN", "", "tcp_listen"),
    ("HUSH_RELAY_PUBLIC_ADDRESS", "", "public_address"),
    ("HUSH_RELAY_DATA_DIR", "", "data_dir"),
    ("HUSH_RELAY_CERT", "", "cert"),
    ("HUSH_RELAY_KEY", "", "key"),
    ("HUSH_RELAY_METRICS_LISTEN", "", "metrics_listen"),
    ("HUSH_RELAY_LIMITS_MAILBOX_QUOTA", "limits", "mailbox_quota"),
    ("HUSH_RELAY_LIMITS_EXPIRY_SECS", "limits", "expiry_secs"),
    (
        "HUSH_RELAY_LIMITS_MAX_STORED_BYTES",
        "limits",
        "max_stored_bytes",
    ),
    (
        "HUSH_RELAY_LIMITS_MIN_FREE_DISK_BYTES",
        "limits",
        "min_free_disk_bytes",
    ),
    (
        "HUSH_RELAY_LIMITS_MAX_CONNECTIONS",
        "limits",
        "max_connections",
    ),
    (
        "HUSH_RELAY_LIMITS_IDLE_TIMEOUT_SECS",
        "limits",
        "idle_timeout_secs",
    ),
    (
        "HUSH_RELAY_LIMITS_REQUESTS_PER_SEC",
        "limits",
        "requests_per_sec",
    ),
    ("HUSH_RELAY_LIMITS_REQUEST_BURST", "limits", "request_burst"),
    (
        "HUSH_RELAY_LIMITS_MAX_STREAMS_PER_CONNECTION",
        "limits",
        "max_streams_per_connection",
    ),
    (
        "HUSH_RELAY_LIMITS_MAX_SUBSCRIPTIONS_PER_CONNECTION",
        "limits",
        "max_subscriptions_per_connection",
    ),
    (
        "HUSH_RELAY_LIMITS_MAX_SUBSCRIBERS_PER_MAILBOX",
        "limits",
        "max_subscribers_per_mailbox",
    ),
    (
        "HUSH_RELAY_LIMITS_MAX_QUEUED_PUSHES_PER_CONNECTION",
        "limits",
        "max_queued_pushes_per_connection",
    ),
    (
        "HUSH_RELAY_LIMITS_MAX_MEMORY_MIB",
        "limits",
        "max_memory_mib",
    ),
    (
        "HUSH_RELAY_LIMITS_MAX_CONNECTIONS_PER_SOURCE",
        "limits",
        "max_connections_per_source",
    ),
    (
        "HUSH_RELAY_LIMITS_EVICT_IDLE_AFTER_SECS",
        "limits",
        "evict_idle_after_secs",
    ),
    (
        "HUSH_RELAY_LIMITS_SOURCE_DEPOSITS_PER_WINDOW",
        "limits",
        "source_deposits_per_window",
    ),
    (
        "HUSH_RELAY_LIMITS_SOURCE_WINDOW_SECS",
        "limits",
        "source_window_secs",
    ),
    (
        "HUSH_RELAY_LIMITS_DROP_DEPOSITS_PER_SOURCE",
        "limits",
        "drop_deposits_per_source",
    ),
    (
        "HUSH_RELAY_LIMITS_FORWARDED_DROP_DEPOSITS_PER_SOURCE",
        "limits",
        "forwarded_drop_deposits_per_source",
    ),
    (
        "HUSH_RELAY_LIMITS_LOOPBACK_EXEMPT",
        "limits",
        "loopback_exempt",
    ),
    (
        "HUSH_RELAY_STORAGE_SCRUB_INTERVAL_SECS",
        "storage",
        "scrub_interval_secs",
    ),
    (
        "HUSH_RELAY_STORAGE_MAX_COMMIT_BATCH",
        "storage",
        "max_commit_batch",
    ),
    (
        "HUSH_RELAY_STORAGE_COMMIT_LINGER_US",
        "storage",
        "commit_linger_us",
    ),
    (
        "HUSH_RELAY_STORAGE_SWEEP_INTERVAL_SECS",
        "storage",
        "sweep_interval_secs",
    ),
    ("HUSH_RELAY_STORAGE_CACHE_MIB", "storage", "cache_mib"),
    ("HUSH_RELAY_STORAGE_BACKEND", "storage", "backend"),
    ("HUSH_RELAY_JETSTREAM_SERVERS", "jetstream", "servers"),
    ("HUSH_RELAY_JETSTREAM_STREAM", "jetstream", "stream"),
    (
        "HUSH_RELAY_JETSTREAM_SUBJECT_PREFIX",
        "jetstream",
        "subject_prefix",
    ),
    ("HUSH_RELAY_JETSTREAM_REPLICAS", "jetstream", "replicas"),
    (
        "HUSH_RELAY_JETSTREAM_DUPLICATE_WINDOW_SECS",
        "jetstream",
        "duplicate_window_secs",
    ),
    (
        "HUSH_RELAY_JETSTREAM_REQUEST_TIMEOUT_MS",
        "jetstream",
        "request_timeout_ms",
    ),
    ("HUSH_RELAY_LOG_LEVEL", "log", "level"),
    ("HUSH_RELAY_CHUNKS_ENABLED", "chunks", "enabled"),
    (
        "HUSH_RELAY_CHUNKS_MAX_STORED_BYTES",
        "chunks",
        "max_stored_bytes",
    ),
    ("HUSH_RELAY_CHUNKS_EXPIRY_SECS", "chunks", "expiry_secs"),
    (
        "HUSH_RELAY_CHUNKS_MAX_IN_FLIGHT_PER_CONNECTION",
        "chunks",
        "max_in_flight_per_connection",
    ),
    ("HUSH_RELAY_CHUNKS_MAX_IN_FLIGHT", "chunks", "max_in_flight"),
    ("HUSH_RELAY_FORWARDING_ENABLED", "forwarding", "enabled"),
    ("HUSH_RELAY_FORWARDING_KEY", "forwarding", "key"),
    (
        "HUSH_RELAY_FORWARDING_MAX_IN_FLIGHT_PER_CONNECTION",
        "forwarding",
        "max_in_flight_per_connection",
    ),
    (
        "HUSH_RELAY_FORWARDING_TIMEOUT_SECS",
        "forwarding",
        "timeout_secs",
    ),
    (
        "HUSH_RELAY_FORWARDING_REMEMBERED_REQUESTS",
        "forwarding",
        "remembered_requests",
    ),
];

impl Config {
    /// The configuration of a relay embedded in another program on this machine: every limit
    /// at its default, no metrics listener, no public address, log level `warn` (the host
    /// program's log is not the relay's). The same as parsing a file that sets only these
    /// four keys and `[log] level = "warn"`, without formatting one.
    #[must_use]
    pub fn loopback(listen: SocketAddr, data_dir: PathBuf, cert: PathBuf, key: PathBuf) -> Self {
        Self {
            listen,
            tcp_listen: None,
            public_address: None,
            data_dir,
            cert,
            key,
            metrics_listen: None,
            limits: Limits::default(),
            storage: Storage::default(),
            jetstream: None,
            chunks: Chunks::default(),
            log: Log {
                level: LogLevel::Warn,
            },
            forwarding: Forwarding::default(),
        }
    }

    /// Reads, parses and validates `path`, then applies environment overrides. Relative paths
    /// in the file are resolved against the file's directory.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file, line and column (or the environment variable).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let env: Vec<(String, String)> = ENV_OVERRIDES
            .iter()
            .filter_map(|(var, _, _)| std::env::var(var).ok().map(|v| ((*var).to_owned(), v)))
            .collect();
        let mut cfg = Self::parse(&text, &path.display().to_string(), &env)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let js_files = cfg.jetstream.iter_mut().flat_map(|j| {
            [&mut j.tls_ca, &mut j.tls_cert, &mut j.tls_key]
                .into_iter()
                .flatten()
        });
        for p in [&mut cfg.data_dir, &mut cfg.cert, &mut cfg.key]
            .into_iter()
            .chain(js_files)
            .chain(cfg.forwarding.key.iter_mut())
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(cfg)
    }

    /// Parses config text (named `origin` in errors) and applies `env` overrides given as
    /// (variable, value) pairs.
    ///
    /// # Errors
    /// [`Error::Config`] with line and column for file errors, or the variable name for
    /// override errors.
    pub fn parse(text: &str, origin: &str, env: &[(String, String)]) -> Result<Self, Error> {
        let cfg = Self::parse_unchecked(text, origin, env)?;
        cfg.chunks.validate(origin)?;
        if cfg.storage.commit_linger_us > MAX_COMMIT_LINGER_US {
            return Err(Error::Config(format!(
                "{origin}: storage.commit_linger_us must be at most {MAX_COMMIT_LINGER_US} (microseconds)"
            )));
        }
        crate::admission::connection_slots(&cfg)
            .map_err(|m| Error::Config(format!("{origin}: {m}")))?;
        match (cfg.storage.backend, &cfg.jetstream) {
            (Backend::Jetstream, None) => Err(Error::Config(format!(
                "{origin}: storage.backend = \"jetstream\" needs a [jetstream] section with servers"
            ))),
            (Backend::Jetstream, Some(js)) => js.validate(origin).map(|()| cfg),
            (Backend::Redb, _) => Ok(cfg),
        }
    }

    fn parse_unchecked(text: &str, origin: &str, env: &[(String, String)]) -> Result<Self, Error> {
        // First the file alone, so that its errors carry exact line and column.
        let cfg: Self =
            toml::from_str(text).map_err(|e| Error::Config(format!("{origin}: {e}")))?;
        if env.is_empty() {
            return Ok(cfg);
        }
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| Error::Config(format!("{origin}: {e}")))?;
        for (var, value) in env {
            let Some((_, section, key)) = ENV_OVERRIDES.iter().find(|(v, _, _)| v == var) else {
                continue;
            };
            // A value that parses as a TOML scalar (number, boolean) is taken as such;
            // anything else is a string.
            let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .filter(|v| !v.is_table() && !v.is_array())
                .unwrap_or_else(|| toml::Value::String(value.clone()));
            let target = if section.is_empty() {
                &mut table
            } else {
                let entry = table
                    .entry((*section).to_owned())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                match entry.as_table_mut() {
                    Some(t) => t,
                    None => {
                        return Err(Error::Config(format!(
                            "{origin}: [{section}] is not a table"
                        )));
                    }
                }
            };
            target.insert((*key).to_owned(), parsed);
        }
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| {
                let names: Vec<&str> = env.iter().map(|(v, _)| v.as_str()).collect();
                Error::Config(format!(
                    "{origin} with environment overrides {}: {}",
                    names.join(", "),
                    e.message()
                ))
            })
    }
}

impl Config {
    /// Tries what `run` needs from this machine, so that `check` fails where `run` would:
    /// binds the QUIC address (UDP) and the metrics address (TCP) and releases them at once,
    /// and checks that `data_dir` is a writable directory, or can be created as one (a probe
    /// file is created and removed; nothing else is written). Errors name the address or
    /// path: they are the operator's own settings.
    ///
    /// # Errors
    /// [`Error::Io`] naming the address or path that cannot be used, [`Error::Config`] if
    /// `data_dir` is, or lies under, something that is not a directory.
    pub fn check_resources(&self) -> Result<(), Error> {
        std::net::UdpSocket::bind(self.listen)
            .map_err(|e| Error::io(format!("binding listen = {} (UDP)", self.listen), e))?;
        if let Some(t) = self.tcp_listen {
            // With "same" and port 0 the real port is only known once QUIC is bound; any
            // free port stands for it here.
            let a = t.resolve(self.listen);
            std::net::TcpListener::bind(a)
                .map_err(|e| Error::io(format!("binding tcp_listen = {a} (TCP)"), e))?;
        }
        if let Some(m) = self.metrics_listen {
            std::net::TcpListener::bind(m.0)
                .map_err(|e| Error::io(format!("binding metrics_listen = {} (TCP)", m.0), e))?;
        }
        check_writable_dir(&self.data_dir)
    }
}

/// `dir` is a writable directory, or its nearest existing ancestor is one (`run` creates the
/// rest).
fn check_writable_dir(dir: &Path) -> Result<(), Error> {
    let mut existing = dir;
    while std::fs::symlink_metadata(existing).is_err() {
        match existing.parent() {
            Some(p) if !p.as_os_str().is_empty() => existing = p,
            _ => break,
        }
    }
    let meta = std::fs::metadata(existing)
        .map_err(|e| Error::io(format!("data_dir {}", existing.display()), e))?;
    if !meta.is_dir() {
        return Err(Error::Config(format!(
            "data_dir {}: {} is not a directory",
            dir.display(),
            existing.display()
        )));
    }
    // Permission bits do not tell (root, read-only mounts, ACLs): try what opening the
    // database does, creating a file.
    let probe = existing.join(format!(".hush-relay-check.{}", std::process::id()));
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe);
    match created {
        Ok(f) => {
            drop(f);
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(Error::io(
            format!(
                "data_dir {}: cannot write in {}",
                dir.display(),
                existing.display()
            ),
            e,
        )),
    }
}

/// The commented configuration file `init` writes.
#[must_use]
pub fn template(listen: SocketAddr, public_address: &str, metrics_listen: LoopbackAddr) -> String {
    let metrics_listen = metrics_listen.0;
    format!(
        r#"# hush-relay configuration. Every key is listed with its default; see docs/OPERATING.md.
# Each key can be overridden by an environment variable HUSH_RELAY_<SECTION>_<KEY>, for
# example HUSH_RELAY_LISTEN or HUSH_RELAY_LIMITS_MAILBOX_QUOTA. Check with `hush-relay check`.

# UDP address of the QUIC endpoint (init takes the port of public_address).
listen = "{listen}"
# TLS over TCP for clients without UDP (Tor, networks that block UDP): "same" listens on
# the address and port of `listen` (TCP), where clients look for it. Remove to turn off.
tcp_listen = "same"
# host:port clients connect to; only used to print the relay address.
public_address = "{public_address}"
# Database directory, certificate and private key (relative to this file).
data_dir = "data"
cert = "cert.pem"
key = "key.pem"
# Health (/health) and Prometheus metrics (/metrics) over HTTP. Loopback only; each relay
# on one machine needs its own port.
metrics_listen = "{metrics_listen}"

[limits]
# Envelopes (4096 bytes each) one mailbox may hold; a deposit beyond gets MailboxFull.
mailbox_quota = 256
# Seconds before a stored envelope expires (7 days).
expiry_secs = 604800
# Total bytes of envelopes stored; beyond, deposits get RelayFull (10 GiB).
max_stored_bytes = 10737418240
# Free bytes to keep on the file system of data_dir; below, deposits get RelayFull while
# fetches and deletes go on (64 MiB; 0 turns the check off).
min_free_disk_bytes = 67108864
# Concurrent connections; beyond, new connections are refused.
max_connections = 20000
# Seconds of silence before a connection is dropped.
idle_timeout_secs = 60
# Per-connection request rate (token bucket): sustained rate and burst.
requests_per_sec = 500
request_burst = 1000
# Concurrent request streams and subscriptions per connection.
max_streams_per_connection = 64
max_subscriptions_per_connection = 16
# Live subscriptions covering one mailbox, over all connections.
max_subscribers_per_mailbox = 32
# Pushes waiting to be written per connection; beyond, its subscriptions end with Lagged.
max_queued_pushes_per_connection = 64
# Memory ceiling in MiB: connections beyond what fits in the worst case are refused.
max_memory_mib = 4096
# Connections from one source (an IPv4 address or an IPv6 /64). Kept in memory only.
max_connections_per_source = 256
# With every slot taken, a new connection evicts the longest-idle one if it has been idle
# this many seconds.
evict_idle_after_secs = 30
# Deposits one source may make per window; beyond, RateLimited until the window ends.
source_deposits_per_window = 4096
source_window_secs = 3600
# Stamped deposits one source may make to one invite's drop per window (its first messages
# to a tip line, say); beyond, RateLimited until the window ends.
drop_deposits_per_source = 16
# The same for stamped deposits delivered by a forwarding relay (private routing): all its
# clients share its address, so its share is larger; the stamp's rising price bounds a flood.
forwarded_drop_deposits_per_source = 256
# Loopback peers are local forwarders carrying many clients (a Tor onion service): exempt
# them from the per-source limits (the global limits still apply).
loopback_exempt = true

[storage]
# Most deposits/deletes grouped into one durable commit.
max_commit_batch = 1024
# Most microseconds a lone deposit or delete waits for others to share its commit (0: never,
# at most 10000). Only while such waits gather writes: a lone client is not slowed.
commit_linger_us = 1000
# Seconds between expiry sweeps.
sweep_interval_secs = 60
# Memory for the database page cache, in MiB.
cache_mib = 64
# redb: most seconds before deleted and expired envelopes are gone from the files (the
# database is rewritten and the old file overwritten).
scrub_interval_secs = 600
# "redb" (relay.redb in data_dir, one machine) or "jetstream" (a replicated NATS JetStream
# cluster shared by several relays: fill in [jetstream] below; see docs/OPERATING.md).
backend = "redb"

# [jetstream]
# Comma-separated URLs of the cluster's nodes.
# servers = "tls://nats1.example.org:4222,tls://nats2.example.org:4222,tls://nats3.example.org:4222"
# stream = "HUSH"
# subject_prefix = "hush"
# Copies of each envelope: 1, 3 or 5.
# replicas = 3
# A retried deposit of the same bytes within this many seconds is stored once.
# duplicate_window_secs = 120
# request_timeout_ms = 5000
# tls_ca = "nats-ca.pem"
# tls_cert = "nats-client.pem"
# tls_key = "nats-client.key"

[chunks]
# File chunks (256 KiB each, docs/PROTOCOL.md II.4.3), kept apart from envelopes in
# data_dir/chunks. false answers every chunk request ChunksUnsupported.
enabled = true
# Total bytes of chunks stored; beyond, uploads get ChunkStoreFull (4 GiB).
max_stored_bytes = 4294967296
# Seconds before an unfetched chunk expires (2 days).
expiry_secs = 172800
# Chunk requests in flight per connection and over all connections (each holds 256 KiB of
# memory while it runs); beyond, ChunkBusy.
max_in_flight_per_connection = 4
max_in_flight = 64

[log]
# error, warn, info, debug or trace. Logs never contain addresses, mailbox ids or secrets.
level = "info"

[forwarding]
# Private routing: pass this relay's clients' sealed deposits on to other relays (one
# connection per destination, shared by all clients). Off, clients that route privately
# keep their messages for other relays queued. This relay accepts forwarded deposits for
# its own mailboxes either way.
enabled = true
# The X25519 forwarding key, made on first start; clients get it signed by the TLS key.
# Default: forward.key beside the TLS key.
# key = "forward.key"
# Forward commands one client connection may have in flight; more get RateLimited.
max_in_flight_per_connection = 8
# Seconds a forward may wait for the destination relay, connecting included.
timeout_secs = 20
# Forwarded requests remembered (memory only) to refuse replays and store a retried
# deposit once.
remembered_requests = 65536
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tpl() -> String {
        template(
            "0.0.0.0:4433".parse().unwrap(),
            "relay.example.org:4433",
            DEFAULT_METRICS_LISTEN.parse().unwrap(),
        )
    }

    #[test]
    fn template_parses_to_defaults() {
        let c = Config::parse(&tpl(), "t", &[]).unwrap();
        assert_eq!(c.limits.mailbox_quota.0, Limits::default().mailbox_quota.0);
        assert_eq!(c.limits.expiry_secs.0, 604_800);
        assert_eq!(c.storage.max_commit_batch.0, 1024);
        assert_eq!(c.storage.commit_linger_us, 1000);
        let long = Config::parse(
            &tpl().replace("commit_linger_us = 1000", "commit_linger_us = 10001"),
            "relay.toml",
            &[],
        );
        assert!(
            matches!(&long, Err(Error::Config(m)) if m.contains("commit_linger_us must be at most 10000")),
            "{long:?}"
        );
        assert_eq!(c.log.level, LogLevel::Info);
        assert_eq!(c.forwarding, Forwarding::default());
    }

    #[test]
    fn errors_name_the_line() {
        let text = tpl().replace("mailbox_quota = 256", "mailbox_quota = 0");
        let line = text
            .lines()
            .position(|l| l.starts_with("mailbox_quota"))
            .unwrap()
            + 1;
        let e = Config::parse(&text, "relay.toml", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("line {line}")), "{e}");
        assert!(e.contains("at least 1"), "{e}");

        let text = tpl().replace("idle_timeout_secs = 60", "idle_timeout = 60");
        let e = Config::parse(&text, "relay.toml", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");

        let text = tpl().replace("127.0.0.1:9464", "0.0.0.0:9464");
        let e = Config::parse(&text, "relay.toml", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("loopback"), "{e}");
    }

    #[test]
    fn the_tcp_listener_is_same_in_new_configs_off_without_the_key_and_checked() {
        let c = Config::parse(&tpl(), "t", &[]).unwrap();
        assert_eq!(c.tcp_listen, Some(TcpListen::SameAsQuic));
        let quic: SocketAddr = "0.0.0.0:4433".parse().unwrap();
        assert_eq!(TcpListen::SameAsQuic.resolve(quic), quic);
        let old = tpl().replace("tcp_listen = \"same\"\n", "");
        assert_eq!(Config::parse(&old, "t", &[]).unwrap().tcp_listen, None);
        let at = tpl().replace("tcp_listen = \"same\"", "tcp_listen = \"[::]:443\"");
        let c = Config::parse(&at, "t", &[]).unwrap();
        assert_eq!(
            c.tcp_listen.map(|t| t.resolve(quic)),
            Some("[::]:443".parse().unwrap())
        );
        for bad in ["\"yes\"", "\"443\"", "\"0.0.0.0\"", "true", "\"مرحبا\""] {
            let text = tpl().replace("tcp_listen = \"same\"", &format!("tcp_listen = {bad}"));
            let line = text
                .lines()
                .position(|l| l.starts_with("tcp_listen"))
                .unwrap()
                + 1;
            let e = Config::parse(&text, "relay.toml", &[])
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("line {line}")), "{bad}: {e}");
        }
        let env = vec![("HUSH_RELAY_TCP_LISTEN".to_owned(), "127.0.0.1:9".to_owned())];
        let c = Config::parse(&old, "t", &env).unwrap();
        assert_eq!(
            c.tcp_listen,
            Some(TcpListen::Addr("127.0.0.1:9".parse().unwrap()))
        );
    }

    #[test]
    fn a_memory_ceiling_without_room_for_a_connection_is_a_config_error() {
        let env = vec![(
            "HUSH_RELAY_LIMITS_MAX_MEMORY_MIB".to_owned(),
            "100".to_owned(),
        )];
        let e = Config::parse(&tpl(), "t", &env).unwrap_err().to_string();
        assert!(
            e.contains("t: limits.max_memory_mib = 100 leaves no room"),
            "{e}"
        );
        let env = vec![(
            "HUSH_RELAY_LIMITS_MAX_MEMORY_MIB".to_owned(),
            "512".to_owned(),
        )];
        assert!(Config::parse(&tpl(), "t", &env).is_ok());
    }

    #[test]
    fn env_overrides() {
        let env = vec![
            ("HUSH_RELAY_LIMITS_MAILBOX_QUOTA".to_owned(), "3".to_owned()),
            ("HUSH_RELAY_LISTEN".to_owned(), "127.0.0.1:9".to_owned()),
            ("HUSH_RELAY_LOG_LEVEL".to_owned(), "debug".to_owned()),
        ];
        let c = Config::parse(&tpl(), "t", &env).unwrap();
        assert_eq!(c.limits.mailbox_quota.0, 3);
        assert_eq!(c.listen, "127.0.0.1:9".parse().unwrap());
        assert_eq!(c.log.level, LogLevel::Debug);

        let env = vec![("HUSH_RELAY_LIMITS_MAILBOX_QUOTA".to_owned(), "x".to_owned())];
        let e = Config::parse(&tpl(), "t", &env).unwrap_err().to_string();
        assert!(e.contains("HUSH_RELAY_LIMITS_MAILBOX_QUOTA"), "{e}");
    }

    #[test]
    fn the_jetstream_backend_needs_a_valid_cluster_section() {
        let with = |extra: &str| tpl().replace("backend = \"redb\"", extra);
        let c = Config::parse(&tpl(), "t", &[]).unwrap();
        assert_eq!(c.storage.backend, Backend::Redb);
        assert_eq!(c.jetstream, None);

        let e = Config::parse(&with("backend = \"jetstream\""), "t", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs a [jetstream] section"), "{e}");

        let env = |servers: &str| {
            vec![
                (
                    "HUSH_RELAY_STORAGE_BACKEND".to_owned(),
                    "jetstream".to_owned(),
                ),
                (
                    "HUSH_RELAY_JETSTREAM_SERVERS".to_owned(),
                    servers.to_owned(),
                ),
            ]
        };
        let c = Config::parse(&tpl(), "t", &env("nats://a:4222, tls://b:4222")).unwrap();
        let js = c.jetstream.unwrap();
        assert_eq!(js.server_list(), ["nats://a:4222", "tls://b:4222"]);
        assert_eq!((js.replicas.0, js.stream.as_str()), (3, "HUSH"));
        assert_eq!(js.duplicate_window_secs.0, 120);

        let mut bad_servers = vec![(" , ", "at least one")];
        if cfg!(feature = "jetstream") {
            bad_servers.push(("nats://a:99999", "not a NATS URL"));
        }
        for (bad, says) in bad_servers {
            let e = Config::parse(&tpl(), "t", &env(bad))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let section = |body: &str| {
            format!(
                "{}\n[jetstream]\nservers = \"nats://a:4222\"\n{body}\n",
                with("backend = \"jetstream\"")
            )
        };
        for (body, says) in [
            ("replicas = 2", "1, 3 or 5"),
            ("stream = \"a.b\"", "stream must be"),
            ("subject_prefix = \"a.b\"", "one subject token"),
            ("tls_cert = \"c.pem\"", "go together"),
            ("password = \"x\"", "unknown field"),
        ] {
            let e = Config::parse(&section(body), "t", &[])
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{body}: {e}");
        }
        assert!(Config::parse(&section("replicas = 5"), "t", &[]).is_ok());
    }

    #[test]
    fn loopback_is_what_the_equivalent_file_parses_to() {
        let dir = PathBuf::from("/var/lib/hush \"embedded\"");
        let (data, cert, key) = (dir.join("data"), dir.join("cert.pem"), dir.join("key.pem"));
        let listen: SocketAddr = "127.0.0.1:4455".parse().unwrap();
        let quoted = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
        let text = format!(
            "listen = \"{listen}\"\ndata_dir = {}\ncert = {}\nkey = {}\n[log]\nlevel = \"warn\"\n",
            quoted(&data),
            quoted(&cert),
            quoted(&key),
        );
        let parsed = Config::parse(&text, "t", &[]).unwrap();
        assert_eq!(Config::loopback(listen, data, cert, key), parsed);
        // And its limits are the ones `init` writes out.
        let init = Config::parse(&tpl(), "t", &[]).unwrap();
        assert_eq!(parsed.limits, init.limits);
        assert_eq!(parsed.storage, init.storage);
    }
}
