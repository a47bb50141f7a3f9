//! Health and Prometheus metrics on a separate loopback HTTP listener.
//!
//! Owns: the relay-wide aggregate counters and gauges, their Prometheus text rendering, and a
//! minimal HTTP/1.1 responder for `GET /health` and `GET /metrics`.
//! Must never expose a per-connection, per-mailbox or per-address figure: every value is a
//! sum over the whole relay. Must never listen on a non-loopback address (config enforces).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hush_proto::ErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::Error;

/// Relay-wide aggregates.
#[derive(Debug, Default)]
pub struct Metrics {
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    connections_refused: AtomicU64,
    tcp_connections_total: AtomicU64,
    /// One counter per entry of [`ConnectionEnd::ALL`].
    connections_closed: [AtomicU64; ConnectionEnd::ALL.len()],
    connections_evicted: AtomicU64,
    connection_slots: AtomicU64,
    scrubs: AtomicU64,
    scrub_micros: AtomicU64,
    requests: [AtomicU64; REQUEST_NAMES.len()],
    /// One counter per entry of [`ErrorCode::ALL`], the labels being their names.
    errors: [AtomicU64; ErrorCode::ALL.len()],
    deposits_stored: AtomicU64,
    deleted: AtomicU64,
    /// One counter per entry of [`DeleteOutcome::ALL`].
    deletes: [AtomicU64; DeleteOutcome::ALL.len()],
    fetched: AtomicU64,
    storage_reads: AtomicU64,
    pushed: AtomicU64,
    commits: AtomicU64,
    committed_ops: AtomicU64,
    commit_failures: AtomicU64,
    commit_buckets: [AtomicU64; COMMIT_BUCKETS_MS.len()],
    commit_micros: AtomicU64,
    expired: AtomicU64,
    stored_envelopes: AtomicU64,
    subscribed_mailboxes: AtomicU64,
    shutting_down: AtomicBool,
    /// Free space under data_dir is below the reserve: deposits are refused.
    disk_low: AtomicBool,
    /// The last commit failed (cleared by the next one that succeeds).
    storage_failing: AtomicBool,
    /// Set by a backend that lost its storage (a JetStream cluster without quorum).
    storage_unreachable: AtomicBool,
    /// File chunks (docs/PROTOCOL.md II.4.3): bytes of chunks newly stored and sent, chunks
    /// expired, chunks stored now. Relay-wide only, never per connection.
    chunk_bytes_received: AtomicU64,
    chunk_bytes_sent: AtomicU64,
    chunks_expired: AtomicU64,
    stored_chunks: AtomicU64,
}

/// Upper bounds (milliseconds) of the commit duration histogram; one more bucket is +Inf.
const COMMIT_BUCKETS_MS: [f64; 10] = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 250.0, 1000.0];

const REQUEST_NAMES: [&str; 10] = [
    "ping",
    "deposit",
    "fetch",
    "delete",
    "subscribe",
    "put_chunk",
    "get_chunk",
    "delete_chunk",
    "forward_chunk",
    "deliver_chunk",
];

/// How a delete request ended (`hush_relay_deletes_total{outcome}`). Finding nothing to
/// delete is normal (a client retrying after a lost answer, or expiry first), not an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// At least one envelope was deleted.
    Deleted,
    /// None was deleted; some had expired.
    Expired,
    /// None was found (already deleted, never stored, or another mailbox's).
    Unknown,
}

impl DeleteOutcome {
    /// Every outcome, in the order of their counters.
    pub const ALL: [Self; 3] = [Self::Deleted, Self::Expired, Self::Unknown];

    /// The metric label.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::Expired => "expired",
            Self::Unknown => "unknown",
        }
    }
}

/// How a connection ended (`hush_relay_connections_closed_total{how}`), QUIC or TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionEnd {
    /// The client closed it (QUIC CONNECTION_CLOSE, a TCP CLOSE cell).
    Client,
    /// Nothing arrived for the idle timeout.
    Idle,
    /// Lost or broken: a reset, a transport or cell error, TCP ended without CLOSE.
    Lost,
    /// The relay closed it for its shutdown.
    Shutdown,
    /// Idle, its slot went to a newcomer (admission).
    Evicted,
}

impl ConnectionEnd {
    /// Every way, in the order of their counters.
    pub const ALL: [Self; 5] = [
        Self::Client,
        Self::Idle,
        Self::Lost,
        Self::Shutdown,
        Self::Evicted,
    ];

    /// The metric label.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Idle => "idle",
            Self::Lost => "lost",
            Self::Shutdown => "shutdown",
            Self::Evicted => "evicted",
        }
    }

    /// How a QUIC connection ended, from the error that ended its accept loop.
    #[must_use]
    pub fn of_quic(e: &quinn::ConnectionError) -> Self {
        match e {
            quinn::ConnectionError::ApplicationClosed(_)
            | quinn::ConnectionError::ConnectionClosed(_) => Self::Client,
            quinn::ConnectionError::TimedOut => Self::Idle,
            _ => Self::Lost,
        }
    }
}

impl Metrics {
    pub(crate) fn connection_ended(&self, how: ConnectionEnd) {
        if let Some(i) = ConnectionEnd::ALL.iter().position(|o| *o == how)
            && let Some(c) = self.connections_closed.get(i)
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub(crate) fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
    pub(crate) fn tcp_connection_opened(&self) {
        self.tcp_connections_total.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn connection_evicted(&self) {
        self.connections_evicted.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn set_connection_slots(&self, slots: u64) {
        self.connection_slots.store(slots, Ordering::Relaxed);
    }
    pub(crate) fn scrubbed(&self, took: Duration) {
        self.scrubs.fetch_add(1, Ordering::Relaxed);
        self.scrub_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
    pub(crate) fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }
    /// Currently open connections.
    pub fn open_connections(&self) -> u64 {
        self.connections_open.load(Ordering::Relaxed)
    }
    pub(crate) fn request(&self, name: &str) {
        if let Some(i) = REQUEST_NAMES.iter().position(|n| *n == name)
            && let Some(c) = self.requests.get(i)
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub(crate) fn error(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code)
            && let Some(c) = self.errors.get(i)
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub(crate) fn stored(&self) {
        self.deposits_stored.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn deleted(&self, n: u64) {
        self.deleted.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn delete_outcome(&self, outcome: DeleteOutcome) {
        if let Some(i) = DeleteOutcome::ALL.iter().position(|o| *o == outcome)
            && let Some(c) = self.deletes.get(i)
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub(crate) fn fetched(&self, n: u64) {
        self.fetched.fetch_add(n, Ordering::Relaxed);
    }
    #[cfg_attr(not(feature = "jetstream"), allow(dead_code))] // only the JetStream backend reads one message at a time
    pub(crate) fn storage_reads(&self, n: u64) {
        self.storage_reads.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn pushed(&self, n: u64) {
        self.pushed.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn commit(&self, ops: usize, took: std::time::Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.storage_failing.store(false, Ordering::Relaxed);
        self.committed_ops.fetch_add(ops as u64, Ordering::Relaxed);
        let ms = took.as_secs_f64() * 1000.0;
        if let Some(b) = COMMIT_BUCKETS_MS
            .iter()
            .position(|le| ms <= *le)
            .and_then(|i| self.commit_buckets.get(i))
        {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.commit_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
    pub(crate) fn commit_failed(&self) {
        self.commit_failures.fetch_add(1, Ordering::Relaxed);
        self.storage_failing.store(true, Ordering::Relaxed);
    }
    pub(crate) fn set_disk_low(&self, low: bool) {
        self.disk_low.store(low, Ordering::Relaxed);
    }
    pub(crate) fn expired(&self, n: u64) {
        self.expired.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn set_gauges(&self, stored: u64, subscribed_mailboxes: u64) {
        self.stored_envelopes.store(stored, Ordering::Relaxed);
        self.subscribed_mailboxes
            .store(subscribed_mailboxes, Ordering::Relaxed);
    }
    /// Whether the storage backend reaches its store (`/health` answers 503 while not).
    pub fn set_storage_reachable(&self, reachable: bool) {
        self.storage_unreachable
            .store(!reachable, Ordering::Relaxed);
    }
    pub(crate) fn chunk_bytes_received(&self, n: usize) {
        self.chunk_bytes_received
            .fetch_add(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn chunk_bytes_sent(&self, n: usize) {
        self.chunk_bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn chunks_expired(&self, n: u64) {
        self.chunks_expired.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn set_stored_chunks(&self, n: u64) {
        self.stored_chunks.store(n, Ordering::Relaxed);
    }
    pub(crate) fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    /// `/health`: the HTTP status and the body. Not 200 while shutting down, while the last
    /// commit failed, or while deposits are refused for lack of disk space (fetches and
    /// deletes are still served then; the body says so).
    fn health(&self) -> (&'static str, String) {
        let unavailable = "503 Service Unavailable";
        if self.shutting_down.load(Ordering::Relaxed) {
            (unavailable, "shutting down\n".to_owned())
        } else if self.storage_unreachable.load(Ordering::Relaxed) {
            (unavailable, "storage unreachable\n".to_owned())
        } else if self.storage_failing.load(Ordering::Relaxed) {
            (
                unavailable,
                "storage failing: the last commit failed\n".to_owned(),
            )
        } else if self.disk_low.load(Ordering::Relaxed) {
            (
                unavailable,
                "disk full: deposits refused, fetches and deletes served\n".to_owned(),
            )
        } else {
            ("200 OK", "ok\n".to_owned())
        }
    }

    /// Prometheus text exposition format.
    #[must_use]
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, u64)>| {
            s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, v) in lines {
                s.push_str(&format!("{name}{labels} {v}\n"));
            }
        };
        metric(
            "hush_relay_build_info",
            "gauge",
            "Always 1; the label is the relay's version.",
            vec![(format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION")), 1)],
        );
        metric(
            "hush_relay_connections_open",
            "gauge",
            "Open connections (QUIC and TCP).",
            vec![(String::new(), g(&self.connections_open))],
        );
        metric(
            "hush_relay_connections_total",
            "counter",
            "Accepted connections (QUIC and TCP).",
            vec![(String::new(), g(&self.connections_total))],
        );
        metric(
            "hush_relay_connections_closed_total",
            "counter",
            "Connections ended (QUIC and TCP), by how.",
            ConnectionEnd::ALL
                .iter()
                .zip(&self.connections_closed)
                .map(|(o, c)| (format!("{{how=\"{}\"}}", o.name()), g(c)))
                .collect(),
        );
        metric(
            "hush_relay_tcp_connections_total",
            "counter",
            "Accepted connections over TCP (a part of hush_relay_connections_total).",
            vec![(String::new(), g(&self.tcp_connections_total))],
        );
        metric(
            "hush_relay_connections_refused_total",
            "counter",
            "Connections refused at the connection limit.",
            vec![(String::new(), g(&self.connections_refused))],
        );
        metric(
            "hush_relay_connections_evicted_total",
            "counter",
            "Idle connections closed to give their slot to a new connection.",
            vec![(String::new(), g(&self.connections_evicted))],
        );
        metric(
            "hush_relay_connection_slots",
            "gauge",
            "Connections admitted at most (limits.max_connections, or fewer by max_memory_mib).",
            vec![(String::new(), g(&self.connection_slots))],
        );
        let (resident, peak) = process_memory();
        metric(
            "hush_relay_memory_resident_bytes",
            "gauge",
            "Resident memory of the relay process (0 where unknown).",
            vec![(String::new(), resident)],
        );
        metric(
            "hush_relay_memory_peak_bytes",
            "gauge",
            "Highest resident memory of the relay process so far (0 where unknown).",
            vec![(String::new(), peak)],
        );
        metric(
            "hush_relay_scrubs_total",
            "counter",
            "redb rewrites that removed deleted envelopes from the relay's files.",
            vec![(String::new(), g(&self.scrubs))],
        );
        metric(
            "hush_relay_scrub_seconds_total",
            "counter",
            "Time spent in those rewrites (whole seconds).",
            vec![(String::new(), g(&self.scrub_micros) / 1_000_000)],
        );
        metric(
            "hush_relay_requests_total",
            "counter",
            "Decoded requests by command.",
            REQUEST_NAMES
                .iter()
                .zip(&self.requests)
                .map(|(n, c)| (format!("{{command=\"{n}\"}}"), g(c)))
                .collect(),
        );
        metric(
            "hush_relay_errors_total",
            "counter",
            "Error responses by code (a delete that finds nothing is in deletes_total).",
            ErrorCode::ALL
                .iter()
                .zip(&self.errors)
                .map(|(code, c)| (format!("{{code=\"{}\"}}", code.name()), g(c)))
                .collect(),
        );
        metric(
            "hush_relay_deposits_stored_total",
            "counter",
            "Deposits durably stored.",
            vec![(String::new(), g(&self.deposits_stored))],
        );
        metric(
            "hush_relay_envelopes_deleted_total",
            "counter",
            "Envelopes deleted by clients.",
            vec![(String::new(), g(&self.deleted))],
        );
        metric(
            "hush_relay_deletes_total",
            "counter",
            "Delete requests by outcome.",
            DeleteOutcome::ALL
                .iter()
                .zip(&self.deletes)
                .map(|(o, c)| (format!("{{outcome=\"{}\"}}", o.name()), g(c)))
                .collect(),
        );
        metric(
            "hush_relay_envelopes_expired_total",
            "counter",
            "Envelopes deleted by expiry.",
            vec![(String::new(), g(&self.expired))],
        );
        metric(
            "hush_relay_envelopes_fetched_total",
            "counter",
            "Envelopes sent by fetch.",
            vec![(String::new(), g(&self.fetched))],
        );
        metric(
            "hush_relay_storage_reads_total",
            "counter",
            "Messages the JetStream backend read from the cluster (direct gets; 0 with redb).",
            vec![(String::new(), g(&self.storage_reads))],
        );
        metric(
            "hush_relay_envelopes_pushed_total",
            "counter",
            "Envelopes pushed to subscribers.",
            vec![(String::new(), g(&self.pushed))],
        );
        metric(
            "hush_relay_commits_total",
            "counter",
            "Durable commits.",
            vec![(String::new(), g(&self.commits))],
        );
        metric(
            "hush_relay_committed_ops_total",
            "counter",
            "Writes in durable commits (ops/commits = batch size).",
            vec![(String::new(), g(&self.committed_ops))],
        );
        metric(
            "hush_relay_commit_failures_total",
            "counter",
            "Failed commits.",
            vec![(String::new(), g(&self.commit_failures))],
        );
        let flag = |b: &AtomicBool| u64::from(b.load(Ordering::Relaxed));
        metric(
            "hush_relay_disk_low",
            "gauge",
            "1 while free space under data_dir is below limits.min_free_disk_bytes (deposits refused).",
            vec![(String::new(), flag(&self.disk_low))],
        );
        metric(
            "hush_relay_storage_failing",
            "gauge",
            "1 after a failed commit, until one succeeds.",
            vec![(String::new(), flag(&self.storage_failing))],
        );
        metric(
            "hush_relay_stored_envelopes",
            "gauge",
            "Envelopes stored.",
            vec![(String::new(), g(&self.stored_envelopes))],
        );
        metric(
            "hush_relay_stored_chunks",
            "gauge",
            "File chunks stored (256 KiB each).",
            vec![(String::new(), g(&self.stored_chunks))],
        );
        metric(
            "hush_relay_chunk_bytes_received_total",
            "counter",
            "Bytes of file chunks newly stored (a repeated put is not counted).",
            vec![(String::new(), g(&self.chunk_bytes_received))],
        );
        metric(
            "hush_relay_chunk_bytes_sent_total",
            "counter",
            "Bytes of file chunks sent to downloaders.",
            vec![(String::new(), g(&self.chunk_bytes_sent))],
        );
        metric(
            "hush_relay_chunks_expired_total",
            "counter",
            "File chunks erased by expiry.",
            vec![(String::new(), g(&self.chunks_expired))],
        );
        metric(
            "hush_relay_subscribed_mailboxes",
            "gauge",
            "Mailboxes with at least one live subscription.",
            vec![(String::new(), g(&self.subscribed_mailboxes))],
        );
        // Histogram of durable commit durations (cumulative buckets, Prometheus convention).
        s.push_str(
            "# HELP hush_relay_commit_duration_seconds Durable commit durations (fsync included).\n\
             # TYPE hush_relay_commit_duration_seconds histogram\n",
        );
        let mut cumulative = 0;
        for (le, b) in COMMIT_BUCKETS_MS.iter().zip(&self.commit_buckets) {
            cumulative += g(b);
            s.push_str(&format!(
                "hush_relay_commit_duration_seconds_bucket{{le=\"{}\"}} {cumulative}\n",
                le / 1000.0
            ));
        }
        let count = g(&self.commits);
        s.push_str(&format!(
            "hush_relay_commit_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             hush_relay_commit_duration_seconds_sum {}\n\
             hush_relay_commit_duration_seconds_count {count}\n",
            g(&self.commit_micros) as f64 / 1e6
        ));
        s
    }
}

/// Serves `/health` and `/metrics` on `addr` until the task is dropped.
///
/// # Errors
/// [`Error::Io`] if the listener cannot bind.
/// Resident and peak resident memory of this process in bytes, from `/proc/self/status`
/// (Linux); zeros elsewhere.
fn process_memory() -> (u64, u64) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (0, 0);
    };
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |k| k * 1024)
    };
    (kib("VmRSS:"), kib("VmHWM:"))
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("binding the metrics listener on TCP {addr}"), e))
}

/// Accept loop for the metrics listener.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut sock, _peer)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let mut len = 0;
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while len < buf.len() {
                    match sock.read(&mut buf[len..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => len += n,
                    }
                    if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let req = String::from_utf8_lossy(&buf[..len]);
            let path = req
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("GET "))
                .and_then(|l| l.split(' ').next())
                .unwrap_or("");
            let (status, body) = match path {
                "/health" => metrics.health(),
                "/metrics" => ("200 OK", metrics.render()),
                _ => ("404 Not Found", "not found\n".to_owned()),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_histogram_is_cumulative() {
        let m = Metrics::default();
        m.commit(3, Duration::from_millis(3));
        m.commit(1, Duration::from_millis(30));
        m.commit(1, Duration::from_secs(5));
        let text = m.render();
        for line in [
            "hush_relay_commit_duration_seconds_bucket{le=\"0.002\"} 0",
            "hush_relay_commit_duration_seconds_bucket{le=\"0.005\"} 1",
            "hush_relay_commit_duration_seconds_bucket{le=\"0.05\"} 2",
            "hush_relay_commit_duration_seconds_bucket{le=\"1\"} 2",
            "hush_relay_commit_duration_seconds_bucket{le=\"+Inf\"} 3",
            "hush_relay_commit_duration_seconds_count 3",
            "hush_relay_committed_ops_total 5",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn every_error_code_has_a_labelled_counter() {
        let m = Metrics::default();
        m.error(ErrorCode::RateLimited);
        m.error(ErrorCode::RateLimited);
        let text = m.render();
        for code in ErrorCode::ALL {
            let want = if *code == ErrorCode::RateLimited {
                2
            } else {
                0
            };
            let line = format!("hush_relay_errors_total{{code=\"{}\"}} {want}", code.name());
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
