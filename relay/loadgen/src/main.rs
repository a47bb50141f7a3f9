//! hush-loadgen: measures hush-relay against the machine's limits and NATS JetStream on the
//! same machine, in one run, and prints the figures docs/BENCHMARKS.md records.
//!
//! Owns: starting every system it measures (a fresh `hush-relay` on redb; a single
//! `nats-server` or a 3-node cluster with JetStream file storage and `sync_interval: always`;
//! 1, 2 and 3 relay processes over that cluster), driving N connections that deposit
//! (publish) 4096-byte messages and receive them by push, and reporting durable throughput,
//! acknowledgement and deposit-to-push latency, CPU and peak RSS; beside them the floor:
//! the disk's synced-write rate and a QUIC-only server with the relay's frames.
//! Must never be run as a test or assert on timing: its figures go to docs/BENCHMARKS.md
//! together with the command line that produced them.
//!
//! Phases, for each system: `max` (closed loop, N connections x W requests in flight, after a
//! 1 s warm-up), `half` (open loop at half of that system's own `max` throughput) and, with
//! `--rates`, open loops at fixed rates (the CPU per message at low load). The
//! open loop is fair: each connection follows a schedule fixed in advance ([`schedule`]:
//! spread across the period, or Poisson), and every latency is measured from the *intended*
//! send time, so a sender held up by a slow system is charged for the delay (no coordinated
//! omission). Each message carries that time; the receiving connection (a different one, at
//! another relay process when there are several) records receive - intended. Throughput
//! counts durable acknowledgements (hush `Deposited`, JetStream publish ack) of messages
//! intended inside the measured window.
#![forbid(unsafe_code)]

mod floor;
mod schedule;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use futures_util::StreamExt as _;
use hush_proto::{ENVELOPE_LEN, Envelope, FetchSecret, MailboxId, RelayAddress, SecretBatch};
use hush_transport::{RelayClient, client_endpoint};
use schedule::{Arrivals, Schedule};
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;

#[derive(Parser, Clone)]
#[command(
    name = "hush-loadgen",
    about = "hush-relay load generator with the machine's floor and a NATS JetStream reference"
)]
struct Args {
    /// hush-relay binary (default: next to this executable).
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// nats-server binary (2.11 or newer).
    #[arg(long, default_value = "nats-server")]
    nats_server: PathBuf,
    /// Skip everything that needs nats-server.
    #[arg(long)]
    skip_nats: bool,
    /// The JetStream reference is a 3-node cluster (R3) on loopback instead of one node,
    /// and hush-relay is also measured with 1, 2 and 3 processes over that cluster
    /// (storage.backend = "jetstream").
    #[arg(long)]
    cluster: bool,
    /// Relay process counts measured over the cluster (with --cluster).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    relays: Vec<usize>,
    /// Connections per system.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Requests in flight per connection in the `max` phase.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Measured seconds per phase.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// How the open-loop (`half`) phase spaces each connection's sends.
    #[arg(long, value_enum, default_value_t = Arrivals::Spread)]
    arrivals: Arrivals,
    /// Extra open-loop phases at these total rates (messages per second), each with its
    /// server CPU per message: e.g. `--rates 2000` for the CPU at low load.
    #[arg(long, value_delimiter = ',')]
    rates: Vec<f64>,
    /// Seed of the Poisson schedules.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Idle connections for the memory measurement (0 to skip).
    #[arg(long, default_value_t = 0)]
    idle: usize,
    /// Where relay and NATS data go (default: a temporary directory; use a directory on the
    /// disk you want to measure).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Latencies of messages intended inside the measured window: deposit-to-push (at the
/// receiver) and deposit-to-acknowledgement (at the sender), both from the intended time.
struct Recorder {
    t0: Instant,
    from_ns: AtomicU64,
    to_ns: AtomicU64,
    push_us: Mutex<Vec<u32>>,
    ack_us: Mutex<Vec<u32>>,
    /// Subscriptions the relay ended with `Lagged` this phase (each subscribed again at
    /// once, as a client would after fetching what it missed: the pushes in between are
    /// not counted).
    lagged: AtomicU64,
}

impl Recorder {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
    fn in_window(&self, ts: u64) -> bool {
        ts >= self.from_ns.load(Ordering::Relaxed) && ts <= self.to_ns.load(Ordering::Relaxed)
    }
    fn since_us(&self, ts: u64) -> u32 {
        u32::try_from((self.now_ns().saturating_sub(ts) / 1000).min(u64::from(u32::MAX)))
            .unwrap_or(u32::MAX)
    }
    fn record_push(&self, payload: &[u8]) {
        let mut b = [0u8; 8];
        if let Some(s) = payload.get(..8) {
            b.copy_from_slice(s);
        }
        let ts = u64::from_be_bytes(b);
        if self.in_window(ts) {
            let us = self.since_us(ts);
            self.push_us
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(us);
        }
    }
    fn record_ack(&self, ts: u64) {
        let us = self.since_us(ts);
        self.ack_us
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(us);
    }
    fn take(v: &Mutex<Vec<u32>>) -> Vec<u32> {
        let mut out = std::mem::take(&mut *v.lock().unwrap_or_else(PoisonError::into_inner));
        out.sort_unstable();
        out
    }
}

fn payload(ts: u64, n: u64) -> Vec<u8> {
    let mut p = vec![0u8; ENVELOPE_LEN];
    p[..8].copy_from_slice(&ts.to_be_bytes());
    // Non-repeating filler so neither system can gain from compression.
    let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for chunk in p[8..].chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    p
}

fn secret(i: usize) -> FetchSecret {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&(i as u64).to_be_bytes());
    s[8] = 0x4c;
    FetchSecret::from_bytes(s)
}

enum Conn {
    Hush(Arc<RelayClient>),
    Nats(Box<async_nats::jetstream::Context>),
}

impl Conn {
    async fn send(&self, dest: usize, body: Vec<u8>) -> anyhow::Result<()> {
        match self {
            Self::Hush(c) => {
                let env = Envelope::from_slice(&body)?;
                let mb: MailboxId = secret(dest).mailbox_id();
                c.deposit(mb, env).await?;
            }
            Self::Nats(js) => {
                js.publish(format!("{RAW_PREFIX}.{dest}"), bytes::Bytes::from(body))
                    .await?
                    .await?;
            }
        }
        Ok(())
    }
}

/// The raw JetStream reference's stream and subjects (apart from the relays' `HUSH`).
const RAW_STREAM: &str = "RAW";
const RAW_PREFIX: &str = "raw";

/// How a phase sends.
#[derive(Clone, Copy, Debug)]
enum Load {
    /// `window` requests in flight per connection, each sent as the previous one returns.
    Closed { window: usize },
    /// `rate` messages per second in all, on fixed schedules.
    Open {
        rate: f64,
        arrivals: Arrivals,
        seed: u64,
    },
}

#[derive(Debug, Default, Clone)]
struct PhaseResult {
    offered: Option<f64>,
    per_sec: f64,
    acked: u64,
    /// Acknowledged sends of the whole phase (warm-up and drain included).
    all_acked: u64,
    errors: u64,
    /// Open loop: sends inside the window that began more than [`LATE_NS`] after their
    /// intended time (the connection had 64 in flight, or the generator fell behind); each
    /// is charged its delay all the same.
    late: u64,
    received: usize,
    /// Subscriptions ended with `Lagged` (and made again) in the phase.
    lagged: u64,
    push_p50_us: u32,
    push_p99_us: u32,
    push_max_us: u32,
    ack_p50_us: u32,
    ack_p99_us: u32,
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

/// Most sends one connection has in flight in an open-loop phase (the relay's default
/// streams per connection).
const OPEN_INFLIGHT: usize = 64;

/// A send this far behind its intended time counts as late: twice the timer's 1 ms
/// resolution, so that the wake-up of a timer alone never counts.
const LATE_NS: u64 = 2_000_000;

/// Counters shared by a phase's senders.
#[derive(Default)]
struct Tally {
    acked: AtomicU64,
    /// Every acknowledged send of the phase, warm-up and drain included: what the server's
    /// CPU over the whole phase is divided by.
    all_acked: AtomicU64,
    errors: AtomicU64,
    late: AtomicU64,
    seq: AtomicU64,
}

/// One send intended at `ts`: counted and timed if `ts` lies inside the window.
async fn send_one(conns: &[Conn], i: usize, dest: usize, ts: u64, rec: &Recorder, tally: &Tally) {
    let body = payload(ts, tally.seq.fetch_add(1, Ordering::Relaxed));
    match conns[i].send(dest, body).await {
        Ok(()) if rec.in_window(ts) => {
            rec.record_ack(ts);
            tally.acked.fetch_add(1, Ordering::Relaxed);
            tally.all_acked.fetch_add(1, Ordering::Relaxed);
        }
        Ok(()) => {
            tally.all_acked.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            if tally.errors.fetch_add(1, Ordering::Relaxed) == 0 {
                eprintln!("first failed send of the phase: {e:#}");
            }
        }
    }
}

/// Runs one phase over `conns` (connection `i` sends to the mailbox of `i + 1`).
async fn phase(conns: &Arc<Vec<Conn>>, rec: &Arc<Recorder>, load: Load, secs: f64) -> PhaseResult {
    let n = conns.len();
    let start = rec.now_ns();
    let from = start + 1_000_000_000;
    let to = from + (secs * 1e9) as u64;
    rec.push_us
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    rec.ack_us
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    rec.lagged.store(0, Ordering::Relaxed);
    rec.from_ns.store(from, Ordering::Relaxed);
    rec.to_ns.store(to, Ordering::Relaxed);
    let tally = Arc::new(Tally::default());
    let mut tasks = Vec::new();
    for i in 0..n {
        let dest = (i + 1) % n;
        let (conns, rec, tally) = (conns.clone(), rec.clone(), tally.clone());
        match load {
            Load::Closed { window } => {
                for _ in 0..window {
                    let (conns, rec, tally) = (conns.clone(), rec.clone(), tally.clone());
                    tasks.push(tokio::spawn(async move {
                        loop {
                            let ts = rec.now_ns();
                            if ts > to {
                                break;
                            }
                            send_one(&conns, i, dest, ts, &rec, &tally).await;
                        }
                    }));
                }
            }
            Load::Open {
                rate,
                arrivals,
                seed,
            } => {
                let period_ns = n as f64 / rate * 1e9;
                tasks.push(tokio::spawn(async move {
                    let mut plan = Schedule::new(arrivals, period_ns, (i, n), start, seed);
                    let inflight = Arc::new(Semaphore::new(OPEN_INFLIGHT));
                    let mut sends = Vec::new();
                    loop {
                        let ts = plan.next_send();
                        if ts > to {
                            break;
                        }
                        tokio::time::sleep_until(
                            tokio::time::Instant::from_std(rec.t0) + Duration::from_nanos(ts),
                        )
                        .await;
                        // Waiting for a slot delays this send but not its intended time.
                        let Ok(permit) = inflight.clone().acquire_owned().await else {
                            break;
                        };
                        if rec.in_window(ts) && rec.now_ns() > ts + LATE_NS {
                            tally.late.fetch_add(1, Ordering::Relaxed);
                        }
                        let (conns, rec, tally) = (conns.clone(), rec.clone(), tally.clone());
                        sends.push(tokio::spawn(async move {
                            send_one(&conns, i, dest, ts, &rec, &tally).await;
                            drop(permit);
                        }));
                    }
                    for s in sends {
                        let _ = s.await;
                    }
                }));
            }
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    // Let the last pushes arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let push = Recorder::take(&rec.push_us);
    let ack = Recorder::take(&rec.ack_us);
    let acked = tally.acked.load(Ordering::Relaxed);
    PhaseResult {
        offered: match load {
            Load::Open { rate, .. } => Some(rate),
            Load::Closed { .. } => None,
        },
        per_sec: acked as f64 / secs,
        acked,
        all_acked: tally.all_acked.load(Ordering::Relaxed),
        errors: tally.errors.load(Ordering::Relaxed),
        late: tally.late.load(Ordering::Relaxed),
        received: push.len(),
        lagged: rec.lagged.swap(0, Ordering::Relaxed),
        push_p50_us: percentile(&push, 0.50),
        push_p99_us: percentile(&push, 0.99),
        push_max_us: push.last().copied().unwrap_or(0),
        ack_p50_us: percentile(&ack, 0.50),
        ack_p99_us: percentile(&ack, 0.99),
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let ticks_per_sec = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which is in parentheses): state is field 3,
            // utime field 14, stime field 15.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks_per_sec)
        })
        .unwrap_or(0.0)
}

async fn wait_log(log: &Path, child: &mut Child, keys: &[&str]) -> anyhow::Result<Vec<u16>> {
    for _ in 0..1000 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let ports: Vec<Option<u16>> = keys
            .iter()
            .map(|k| {
                text.lines()
                    .find(|l| l.contains(k))
                    .and_then(|l| l.split("port=").nth(1))
                    .and_then(|p| p.trim().parse().ok())
            })
            .collect();
        if ports.iter().all(Option::is_some) {
            return Ok(ports.into_iter().flatten().collect());
        }
        if let Some(st) = child.try_wait()? {
            bail!("process exited early ({st}): {text}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!(
        "process did not start: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    )
}

struct RelayProc {
    child: Child,
    addr: RelayAddress,
    metrics_port: u16,
}

impl RelayProc {
    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

/// `init` and `run` a relay in `dir` with `env` overrides besides the benchmark's own.
async fn start_relay(bin: &Path, dir: &Path, env: &[(&str, String)]) -> anyhow::Result<RelayProc> {
    let rdir = dir.join("relay");
    let out = std::process::Command::new(bin)
        .args(["init", "--dir"])
        .arg(&rdir)
        .args([
            "--public-address",
            "127.0.0.1:4433",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .context("running hush-relay init")?;
    if !out.status.success() {
        bail!("init failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let log = dir.join("relay.log");
    let mut child = Command::new(bin)
        .arg("run")
        .arg("--config")
        .arg(rdir.join("config.toml"))
        // Limits that would otherwise cap the benchmark, not the relay: per-connection rate,
        // the per-mailbox quota (receivers here never delete, as JetStream consumers with
        // AckNone do not) and the global one.
        .env("HUSH_RELAY_LIMITS_REQUESTS_PER_SEC", "1000000")
        .env("HUSH_RELAY_LIMITS_REQUEST_BURST", "1000000")
        .env("HUSH_RELAY_LIMITS_MAILBOX_QUOTA", "4000000000")
        .env("HUSH_RELAY_LIMITS_MAX_STORED_BYTES", "1099511627776")
        .env("HUSH_RELAY_METRICS_LISTEN", "127.0.0.1:0")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true)
        .spawn()
        .context("starting hush-relay")?;
    let ports = wait_log(&log, &mut child, &["relay listening", "metrics listening"]).await?;
    let id = hush_relay::tls::Identity::load(&rdir.join("cert.pem"), &rdir.join("key.pem"))?;
    let addr = format!("hush://{}@127.0.0.1:{}", id.pin()?, ports[0]).parse()?;
    Ok(RelayProc {
        child,
        addr,
        metrics_port: ports[1],
    })
}

/// Connections spread over `addrs` (connection `i` at relay `i % k`), each subscribed to its
/// own mailbox at its relay, and the client sockets they use (keep both alive together).
/// `subscribe = false` for the QUIC-only floor, which pushes nothing.
async fn hush_conns(
    addrs: &[RelayAddress],
    n: usize,
    rec: &Arc<Recorder>,
    subscribe: bool,
) -> anyhow::Result<(Arc<Vec<Conn>>, Vec<quinn::Endpoint>)> {
    let endpoints: Vec<_> = (0..n.div_ceil(16))
        .map(|_| {
            client_endpoint("127.0.0.1:0".parse().map_err(anyhow::Error::from)?)
                .map_err(anyhow::Error::from)
        })
        .collect::<anyhow::Result<_>>()?;
    let mut conns = Vec::new();
    for i in 0..n {
        let c = Arc::new(
            RelayClient::connect_with(&endpoints[i % endpoints.len()], &addrs[i % addrs.len()])
                .await?,
        );
        if subscribe {
            let mut sub = c.subscribe(SecretBatch::new(vec![secret(i)])?).await?;
            let (rec, c) = (rec.clone(), c.clone());
            tokio::spawn(async move {
                // A subscription the relay ended with `Lagged` (this connection's push queue
                // was full) is made again, or the connection would count no push after it,
                // in this phase or any later one.
                loop {
                    match sub.next().await {
                        Ok(d) => rec.record_push(d.envelope.as_bytes()),
                        Err(e)
                            if hush_transport::relay_error(&e)
                                .is_some_and(|f| f.code == hush_proto::ErrorCode::Lagged) =>
                        {
                            rec.lagged.fetch_add(1, Ordering::Relaxed);
                            let Ok(batch) = SecretBatch::new(vec![secret(i)]) else {
                                break;
                            };
                            match c.subscribe(batch).await {
                                Ok(s) => sub = s,
                                Err(_) => break,
                            }
                        }
                        Err(_) => break,
                    }
                }
            });
        }
        conns.push(Conn::Hush(c));
    }
    Ok((Arc::new(conns), endpoints))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// NATS nodes on loopback with JetStream file storage and `sync_interval: always`: one
/// node, or a cluster of several with routes between all. Killed on drop.
struct Nats {
    nodes: Vec<Child>,
    ports: Vec<u16>,
}

impl Nats {
    async fn start(bin: &Path, dir: &Path, nodes: usize) -> anyhow::Result<Self> {
        let ports: Vec<u16> = (0..nodes).map(|_| free_port()).collect::<Result<_, _>>()?;
        let routes: Vec<u16> = (0..nodes).map(|_| free_port()).collect::<Result<_, _>>()?;
        let route_list = routes
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut children = Vec::new();
        let mut logs = Vec::new();
        for i in 0..nodes {
            let mut conf = format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{}\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n",
                ports[i],
                dir.join(format!("n{i}")).display()
            );
            if nodes > 1 {
                conf.push_str(&format!(
                    "cluster {{\n  name: hush-bench\n  listen: 127.0.0.1:{}\n  routes: [{route_list}]\n}}\n",
                    routes[i]
                ));
            }
            let path = dir.join(format!("n{i}.conf"));
            std::fs::write(&path, conf)?;
            let log = dir.join(format!("n{i}.log"));
            children.push(
                Command::new(bin)
                    .arg("-c")
                    .arg(&path)
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&log)?)
                    .kill_on_drop(true)
                    .spawn()
                    .with_context(|| format!("starting {}", bin.display()))?,
            );
            logs.push(log);
        }
        for (child, log) in children.iter_mut().zip(&logs) {
            let mut ready = false;
            for _ in 0..1500 {
                if std::fs::read_to_string(log)
                    .unwrap_or_default()
                    .contains("Server is ready")
                {
                    ready = true;
                    break;
                }
                if let Some(st) = child.try_wait()? {
                    bail!(
                        "nats-server exited ({st}): {}",
                        std::fs::read_to_string(log).unwrap_or_default()
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if !ready {
                bail!("nats-server did not start; see {}", log.display());
            }
        }
        Ok(Self {
            nodes: children,
            ports,
        })
    }

    fn urls(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(Child::id).collect()
    }

    async fn admin(&self) -> anyhow::Result<async_nats::jetstream::Context> {
        let urls: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        Ok(async_nats::jetstream::new(
            async_nats::connect(urls.as_slice()).await?,
        ))
    }
}

/// The raw JetStream reference on `nats`: stream `RAW` with `replicas` copies (file storage,
/// direct get, no limits in the way), `n` clients spread over the nodes, each with a push
/// consumer on its own subject.
async fn nats_conns(
    nats: &Nats,
    n: usize,
    replicas: usize,
    rec: &Arc<Recorder>,
) -> anyhow::Result<Arc<Vec<Conn>>> {
    use async_nats::jetstream::{self, consumer, stream};
    let admin = nats.admin().await?;
    let config = stream::Config {
        name: RAW_STREAM.into(),
        subjects: vec![format!("{RAW_PREFIX}.>")],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        allow_direct: true,
        ..Default::default()
    };
    // A new cluster elects its meta leader within seconds; until then creation fails.
    let mut tries = 0;
    while let Err(e) = admin.get_or_create_stream(config.clone()).await {
        tries += 1;
        if tries > 150 {
            bail!("creating the reference stream: {e}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut conns = Vec::new();
    for i in 0..n {
        let port = nats.ports[i % nats.ports.len()];
        let client = async_nats::connect(format!("127.0.0.1:{port}")).await?;
        let js = jetstream::new(client.clone());
        let stream = js.get_stream(RAW_STREAM).await?;
        // A push consumer: the server delivers as soon as a message is stored (a pull consumer
        // adds request round trips and batching to the latency).
        let inbox = client.new_inbox();
        let cons: consumer::PushConsumer = stream
            .create_consumer(consumer::push::Config {
                deliver_subject: inbox,
                filter_subject: format!("{RAW_PREFIX}.{i}"),
                deliver_policy: consumer::DeliverPolicy::New,
                ack_policy: consumer::AckPolicy::None,
                ..Default::default()
            })
            .await?;
        let mut msgs = cons.messages().await?;
        let rec = rec.clone();
        tokio::spawn(async move {
            while let Some(Ok(m)) = msgs.next().await {
                rec.record_push(&m.payload);
            }
        });
        conns.push(Conn::Nats(Box::new(js)));
    }
    Ok(Arc::new(conns))
}

/// The 1-, 5- and 15-minute load averages, as `/proc/loadavg` gives them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

async fn metrics_text(port: u16) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}

async fn metric(port: u16, name: &str) -> u64 {
    metrics_text(port)
        .await
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn idle_memory(bin: &Path, dir: &Path, m: usize) -> anyhow::Result<(u64, u64, u64, usize)> {
    let relay = start_relay(bin, dir, &[]).await?;
    let pid = relay.child.id().unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = proc_status_kib(pid, "VmRSS:");
    let endpoints: Vec<_> = (0..m.div_ceil(100))
        .map(|_| {
            client_endpoint("127.0.0.1:0".parse().map_err(anyhow::Error::from)?)
                .map_err(anyhow::Error::from)
        })
        .collect::<anyhow::Result<_>>()?;
    let gate = Arc::new(Semaphore::new(200));
    let mut tasks = Vec::new();
    for i in 0..m {
        let ep = endpoints[i % endpoints.len()].clone();
        let addr = relay.addr.clone();
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.ok()?;
            let c = RelayClient::connect_with(&ep, &addr).await.ok()?;
            c.ping().await.ok()?;
            Some(c)
        }));
    }
    let mut conns = Vec::new();
    for t in tasks {
        if let Ok(Some(c)) = t.await {
            conns.push(c);
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let open = metric(relay.metrics_port, "hush_relay_connections_open").await;
    let with = proc_status_kib(pid, "VmRSS:");
    let peak = proc_status_kib(pid, "VmHWM:");
    println!(
        "idle: {} connections established, relay reports {open} open; relay RSS {} MiB before, {} MiB with them (peak {} MiB)",
        conns.len(),
        before / 1024,
        with / 1024,
        peak / 1024
    );
    let established = conns.len();
    for c in &conns {
        c.close();
    }
    drop(relay);
    Ok((before, with, peak, established))
}

fn ms(us: u32) -> String {
    format!("{:.2}", f64::from(us) / 1000.0)
}

/// One measured line of the summary.
struct Row {
    system: String,
    phase: &'static str,
    r: PhaseResult,
    /// Server CPU (all processes of the system) per acknowledged message, `max` only.
    cpu_us: Option<f64>,
    load: String,
}

fn report(row: &Row) {
    let r = &row.r;
    println!(
        "{:28} {:5} {:>8.0} msg/s  acked {:>7}  err {:>4}  late {:>6}  pushes {:>7}  lagged {:>4}  push p50 {:>7} p99 {:>8} max {:>8} ms  ack p50 {:>7} p99 {:>8} ms{}  load {}",
        row.system,
        row.phase,
        r.per_sec,
        r.acked,
        r.errors,
        r.late,
        r.received,
        r.lagged,
        ms(r.push_p50_us),
        ms(r.push_p99_us),
        ms(r.push_max_us),
        ms(r.ack_p50_us),
        ms(r.ack_p99_us),
        row.cpu_us
            .map(|c| format!("  cpu {c:.0} us/msg"))
            .unwrap_or_default(),
        row.load
    );
}

/// `max`, then `half` at half of the `max` rate, then one open-loop phase per `--rates`
/// entry, of one system whose server processes are `pids`; each row is printed as it is
/// measured and added to `rows`. CPU per message is the servers' user+system time over the
/// whole phase (warm-up and drain included) divided by every message acknowledged in it.
async fn measure(
    name: &str,
    conns: &Arc<Vec<Conn>>,
    rec: &Arc<Recorder>,
    args: &Args,
    pids: &[u32],
    rows: &mut Vec<Row>,
) {
    let cpu = || pids.iter().map(|p| cpu_secs(*p)).sum::<f64>();
    let closed = Load::Closed {
        window: args.window,
    };
    let max_rate = timed(name, "max", conns, rec, args, closed, &cpu, pids, rows).await;
    let open = |rate| Load::Open {
        rate,
        arrivals: args.arrivals,
        seed: args.seed,
    };
    timed(
        name,
        "half",
        conns,
        rec,
        args,
        open(max_rate / 2.0),
        &cpu,
        pids,
        rows,
    )
    .await;
    for &rate in &args.rates {
        timed(name, "rate", conns, rec, args, open(rate), &cpu, pids, rows).await;
    }
}

/// One phase of [`measure`]: runs it, prints and keeps its row, returns its durable rate.
#[allow(clippy::too_many_arguments)]
async fn timed(
    name: &str,
    phase_name: &'static str,
    conns: &Arc<Vec<Conn>>,
    rec: &Arc<Recorder>,
    args: &Args,
    load: Load,
    cpu: &impl Fn() -> f64,
    pids: &[u32],
    rows: &mut Vec<Row>,
) -> f64 {
    let cpu0 = cpu();
    let r = phase(conns, rec, load, args.seconds).await;
    let cpu_us = (cpu() - cpu0) / r.all_acked.max(1) as f64 * 1e6;
    let row = Row {
        system: name.to_owned(),
        phase: phase_name,
        cpu_us: (!pids.is_empty()).then_some(cpu_us),
        r,
        load: load_average(),
    };
    report(&row);
    let rate = row.r.per_sec;
    rows.push(row);
    rate
}

fn rate_of(rows: &[Row], system: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.system == system && r.phase == "max")
        .map(|r| r.r.per_sec)
}

fn p99_of(rows: &[Row], system: &str) -> Option<u32> {
    rows.iter()
        .find(|r| r.system == system && r.phase == "half")
        .map(|r| r.r.push_p99_us)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let relay_bin = match &args.relay_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("executable has no directory")?
            .join("hush-relay"),
    };
    let tmp = tempfile::tempdir_in(args.data_dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let rec = Arc::new(Recorder {
        t0: Instant::now(),
        from_ns: AtomicU64::new(u64::MAX),
        to_ns: AtomicU64::new(0),
        push_us: Mutex::new(Vec::new()),
        ack_us: Mutex::new(Vec::new()),
        lagged: AtomicU64::new(0),
    });
    println!(
        "connections {}  window {}  seconds {}  arrivals {:?} (seed {})  message {} bytes  load average {}",
        args.connections,
        args.window,
        args.seconds,
        args.arrivals,
        args.seed,
        ENVELOPE_LEN,
        load_average()
    );
    let mut rows = Vec::new();

    // The floor: the disk, then QUIC with the relay's frames and no storage.
    let fsync_4k = floor::fsyncs_per_sec(tmp.path(), 4096, 2.0)?;
    let fsync_256k = floor::fsyncs_per_sec(tmp.path(), 256 << 10, 2.0)?;
    println!(
        "floor  disk under {}: {fsync_4k:.0} synced 4 KiB writes/s, {fsync_256k:.0} synced 256 KiB writes/s ({:.0} MiB/s)",
        tmp.path().display(),
        fsync_256k / 4.0
    );
    {
        let quic = floor::QuicOnly::start()?;
        let (conns, endpoints) = hush_conns(
            std::slice::from_ref(&quic.addr),
            args.connections,
            &rec,
            false,
        )
        .await?;
        let max = phase(
            &conns,
            &rec,
            Load::Closed {
                window: args.window,
            },
            args.seconds,
        )
        .await;
        let row = Row {
            system: "QUIC only (no storage)".into(),
            phase: "max",
            r: max,
            cpu_us: None,
            load: load_average(),
        };
        report(&row);
        rows.push(row);
        drop(conns);
        drop(endpoints);
    }

    // hush-relay on redb.
    let hdir = tmp.path().join("hush");
    std::fs::create_dir_all(&hdir)?;
    let relay = start_relay(&relay_bin, &hdir, &[]).await?;
    let (conns, endpoints) = hush_conns(
        std::slice::from_ref(&relay.addr),
        args.connections,
        &rec,
        true,
    )
    .await?;
    measure(
        "hush-relay, redb",
        &conns,
        &rec,
        &args,
        &[relay.pid()],
        &mut rows,
    )
    .await;
    let commits = metric(relay.metrics_port, "hush_relay_commits_total").await;
    let ops = metric(relay.metrics_port, "hush_relay_committed_ops_total").await;
    let hpeak = proc_status_kib(relay.pid(), "VmHWM:");
    println!(
        "hush   relay peak RSS {} MiB; {commits} commits, {:.1} writes per commit",
        hpeak / 1024,
        ops as f64 / commits.max(1) as f64
    );
    drop(conns);
    drop(endpoints);
    drop(relay);
    // Free the disk for the systems that follow.
    std::fs::remove_dir_all(&hdir)?;

    if !args.skip_nats {
        let nodes = if args.cluster { 3 } else { 1 };
        let ndir = tmp.path().join("nats");
        std::fs::create_dir_all(&ndir)?;
        let nats = Nats::start(&args.nats_server, &ndir, nodes).await?;
        let raw = format!("JetStream raw, R{nodes}");
        let conns = nats_conns(&nats, args.connections, nodes, &rec).await?;
        measure(&raw, &conns, &rec, &args, &nats.pids(), &mut rows).await;
        drop(conns);
        // Free the reference's disk space before the relays fill the cluster.
        let _ = nats.admin().await?.delete_stream(RAW_STREAM).await;

        if args.cluster {
            for &k in &args.relays {
                let mut relays = Vec::new();
                for j in 0..k {
                    let dir = tmp.path().join(format!("js{k}-{j}"));
                    std::fs::create_dir_all(&dir)?;
                    let env = [
                        ("HUSH_RELAY_STORAGE_BACKEND", "jetstream".to_owned()),
                        ("HUSH_RELAY_JETSTREAM_SERVERS", nats.urls()),
                    ];
                    relays.push(start_relay(&relay_bin, &dir, &env).await?);
                }
                // Each configuration starts from an empty stream.
                if let Ok(st) = nats.admin().await?.get_stream("HUSH").await {
                    st.purge().await?;
                }
                let addrs: Vec<RelayAddress> = relays.iter().map(|r| r.addr.clone()).collect();
                let (conns, endpoints) = hush_conns(&addrs, args.connections, &rec, true).await?;
                let mut pids: Vec<u32> = relays.iter().map(RelayProc::pid).collect();
                pids.extend(nats.pids());
                let name = format!("hush-relay x{k}, JetStream R3");
                measure(&name, &conns, &rec, &args, &pids, &mut rows).await;
                drop(conns);
                drop(endpoints);
                drop(relays);
                if let Ok(st) = nats.admin().await?.get_stream("HUSH").await {
                    st.purge().await?;
                }
            }
        }
        drop(nats);
    }

    let idle = if args.idle > 0 {
        let idir = tmp.path().join("idle");
        std::fs::create_dir_all(&idir)?;
        Some(idle_memory(&relay_bin, &idir, args.idle).await?)
    } else {
        None
    };

    // Markdown rows for docs/BENCHMARKS.md, with ratios against the references of this run.
    let quic = rate_of(&rows, "QUIC only (no storage)");
    let redb = rate_of(&rows, "hush-relay, redb");
    let raw_name = rows
        .iter()
        .map(|r| r.system.clone())
        .find(|s| s.starts_with("JetStream raw"));
    let raw = raw_name.as_deref().and_then(|n| rate_of(&rows, n));
    let raw_p99 = raw_name.as_deref().and_then(|n| p99_of(&rows, n));
    let ratio = |a: f64, b: Option<f64>| b.map_or("".into(), |b| format!("{:.2}", a / b.max(1e-9)));
    println!();
    println!("floor: {fsync_4k:.0} synced 4 KiB writes/s; {fsync_256k:.0} synced 256 KiB writes/s");
    println!(
        "| system | phase | offered msg/s | durable msg/s | / QUIC only | / redb | / raw JetStream | pushes | push p50 ms | push p99 ms | push p99 / raw JetStream | ack p99 ms | late sends | CPU µs/msg | load avg |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for row in &rows {
        let r = &row.r;
        let p99_ratio = match (row.phase, raw_p99) {
            ("half", Some(b)) if b > 0 => format!("{:.2}", f64::from(r.push_p99_us) / f64::from(b)),
            _ => String::new(),
        };
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {p99_ratio} | {} | {} | {} | {} |",
            row.system,
            row.phase,
            r.offered
                .map_or("closed loop".into(), |o| format!("{o:.0}")),
            r.per_sec,
            ratio(r.per_sec, quic),
            ratio(r.per_sec, redb),
            ratio(r.per_sec, raw),
            r.received,
            ms(r.push_p50_us),
            ms(r.push_p99_us),
            ms(r.ack_p99_us),
            r.late,
            row.cpu_us.map_or(String::new(), |c| format!("{c:.0}")),
            row.load
        );
    }
    if let Some((before, with, peak, n)) = idle {
        println!(
            "\nidle connections: {n}; relay RSS {} MiB before, {} MiB with them, peak {} MiB",
            before / 1024,
            with / 1024,
            peak / 1024
        );
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
