//! hush-loadgen: measures hush-relay against NATS JetStream on the same machine, in one run.
//!
//! Owns: starting a fresh `hush-relay` (and a fresh `nats-server` with JetStream file storage
//! and `sync_interval: always`), driving N connections that deposit (publish) 4096-byte
//! messages and receive them by push (consumer), and reporting durable throughput,
//! deposit-to-push latency and peak RSS; then the relay's memory with many idle connections.
//! Must never be run as a test or assert on timing: its figures go to docs/BENCHMARKS.md
//! together with the command line that produced them.
//!
//! Phases, for each system: `max` (closed loop, N connections x W requests in flight, after a
//! 1 s warm-up) and `half` (open loop at half of that system's own `max` throughput). Each
//! message carries its send time; the receiving connection (a different one) records
//! receive - send. Throughput counts durable acknowledgements (hush `Deposited`, JetStream
//! publish ack) of messages sent inside the measured window.
#![forbid(unsafe_code)]

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
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;

#[derive(Parser, Clone)]
#[command(
    name = "hush-loadgen",
    about = "hush-relay load generator with a NATS JetStream reference"
)]
struct Args {
    /// hush-relay binary (default: next to this executable).
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// nats-server binary (2.10 or newer, for `sync_interval: always`).
    #[arg(long, default_value = "nats-server")]
    nats_server: PathBuf,
    /// Skip the NATS reference.
    #[arg(long)]
    skip_nats: bool,
    /// Connections per system.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Requests in flight per connection in the `max` phase.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Measured seconds per phase.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Idle connections for the memory measurement (0 to skip).
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// Where relay and NATS data go (default: a temporary directory; use a directory on the
    /// disk you want to measure).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Collects deposit-to-push latencies of messages sent inside the measured window.
struct Recorder {
    t0: Instant,
    from_ns: AtomicU64,
    to_ns: AtomicU64,
    lat_us: Mutex<Vec<u32>>,
}

impl Recorder {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
    fn in_window(&self, ts: u64) -> bool {
        ts >= self.from_ns.load(Ordering::Relaxed) && ts <= self.to_ns.load(Ordering::Relaxed)
    }
    fn record(&self, payload: &[u8]) {
        let mut b = [0u8; 8];
        if let Some(s) = payload.get(..8) {
            b.copy_from_slice(s);
        }
        let ts = u64::from_be_bytes(b);
        if self.in_window(ts) {
            let us = (self.now_ns().saturating_sub(ts) / 1000).min(u64::from(u32::MAX));
            self.lat_us
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(u32::try_from(us).unwrap_or(u32::MAX));
        }
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
    Hush(RelayClient),
    Nats(async_nats::jetstream::Context),
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
                js.publish(format!("hush.{dest}"), bytes::Bytes::from(body))
                    .await?
                    .await?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Default, Clone)]
struct PhaseResult {
    per_sec: f64,
    acked: u64,
    errors: u64,
    skipped: u64,
    received: usize,
    p50_us: u32,
    p99_us: u32,
    max_us: u32,
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

/// Runs one phase: `rate = None` is closed loop with `window` in flight per connection;
/// `Some(r)` is open loop at `r` messages per second in total.
async fn phase(
    conns: &Arc<Vec<Conn>>,
    rec: &Arc<Recorder>,
    window: usize,
    rate: Option<f64>,
    secs: f64,
) -> PhaseResult {
    let n = conns.len();
    let from = rec.now_ns() + 1_000_000_000;
    let to = from + (secs * 1e9) as u64;
    rec.lat_us
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    rec.from_ns.store(from, Ordering::Relaxed);
    rec.to_ns.store(to, Ordering::Relaxed);
    let acked = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let skipped = Arc::new(AtomicU64::new(0));
    let seq = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..n {
        let dest = (i + 1) % n;
        match rate {
            None => {
                for _ in 0..window {
                    let (conns, rec, acked, errors, seq) = (
                        conns.clone(),
                        rec.clone(),
                        acked.clone(),
                        errors.clone(),
                        seq.clone(),
                    );
                    tasks.push(tokio::spawn(async move {
                        loop {
                            let ts = rec.now_ns();
                            if ts > to {
                                break;
                            }
                            let body = payload(ts, seq.fetch_add(1, Ordering::Relaxed));
                            match conns[i].send(dest, body).await {
                                Ok(()) if ts >= from => {
                                    acked.fetch_add(1, Ordering::Relaxed);
                                }
                                Ok(()) => {}
                                Err(_) => {
                                    errors.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }));
                }
            }
            Some(r) => {
                let (conns, rec, acked, errors, skipped, seq) = (
                    conns.clone(),
                    rec.clone(),
                    acked.clone(),
                    errors.clone(),
                    skipped.clone(),
                    seq.clone(),
                );
                let period = Duration::from_secs_f64(n as f64 / r);
                tasks.push(tokio::spawn(async move {
                    // As many in flight as the relay allows streams per connection.
                    let inflight = Arc::new(Semaphore::new(64));
                    let mut tick = tokio::time::interval(period);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                    let mut sends = Vec::new();
                    loop {
                        tick.tick().await;
                        let ts = rec.now_ns();
                        if ts > to {
                            break;
                        }
                        let Ok(permit) = inflight.clone().try_acquire_owned() else {
                            skipped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        };
                        let (conns, acked, errors) = (conns.clone(), acked.clone(), errors.clone());
                        let body = payload(ts, seq.fetch_add(1, Ordering::Relaxed));
                        sends.push(tokio::spawn(async move {
                            match conns[i].send(dest, body).await {
                                Ok(()) if ts >= from => {
                                    acked.fetch_add(1, Ordering::Relaxed);
                                }
                                Ok(()) => {}
                                Err(_) => {
                                    errors.fetch_add(1, Ordering::Relaxed);
                                }
                            }
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
    let mut lat = std::mem::take(&mut *rec.lat_us.lock().unwrap_or_else(PoisonError::into_inner));
    lat.sort_unstable();
    let acked = acked.load(Ordering::Relaxed);
    PhaseResult {
        per_sec: acked as f64 / secs,
        acked,
        errors: errors.load(Ordering::Relaxed),
        skipped: skipped.load(Ordering::Relaxed),
        received: lat.len(),
        p50_us: percentile(&lat, 0.50),
        p99_us: percentile(&lat, 0.99),
        max_us: lat.last().copied().unwrap_or(0),
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

struct RelayProc {
    child: Child,
    addr: RelayAddress,
    metrics_port: u16,
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
    bail!("process did not start; see {}", log.display())
}

async fn start_relay(bin: &Path, dir: &Path) -> anyhow::Result<RelayProc> {
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
        // and the per-mailbox quota (receivers here never delete, as JetStream consumers
        // with AckNone do not).
        .env("HUSH_RELAY_LIMITS_REQUESTS_PER_SEC", "1000000")
        .env("HUSH_RELAY_LIMITS_REQUEST_BURST", "1000000")
        .env("HUSH_RELAY_LIMITS_MAILBOX_QUOTA", "4000000000")
        .env("HUSH_RELAY_METRICS_LISTEN", "127.0.0.1:0")
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

/// Connections and the client sockets they use (keep both alive together).
async fn hush_conns(
    addr: &RelayAddress,
    n: usize,
    rec: &Arc<Recorder>,
) -> anyhow::Result<(Arc<Vec<Conn>>, Vec<quinn::Endpoint>)> {
    let endpoints: Vec<_> = (0..n.div_ceil(16))
        .map(|_| {
            client_endpoint("127.0.0.1:0".parse().map_err(anyhow::Error::from)?)
                .map_err(anyhow::Error::from)
        })
        .collect::<anyhow::Result<_>>()?;
    let mut conns = Vec::new();
    for i in 0..n {
        let c = RelayClient::connect_with(&endpoints[i % endpoints.len()], addr).await?;
        let mut sub = c.subscribe(SecretBatch::new(vec![secret(i)])?).await?;
        let rec = rec.clone();
        tokio::spawn(async move {
            while let Ok(d) = sub.next().await {
                rec.record(d.envelope.as_bytes());
            }
        });
        conns.push(Conn::Hush(c));
    }
    Ok((Arc::new(conns), endpoints))
}

async fn start_nats(bin: &Path, dir: &Path) -> anyhow::Result<(Child, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let conf = dir.join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n",
            dir.join("js").display()
        ),
    )?;
    let log = dir.join("nats.log");
    let mut child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    for _ in 0..500 {
        if std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Server is ready")
        {
            return Ok((child, port));
        }
        if let Some(st) = child.try_wait()? {
            bail!(
                "nats-server exited ({st}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("nats-server did not start")
}

async fn nats_conns(port: u16, n: usize, rec: &Arc<Recorder>) -> anyhow::Result<Arc<Vec<Conn>>> {
    use async_nats::jetstream::{self, consumer, stream};
    let admin = jetstream::new(async_nats::connect(format!("127.0.0.1:{port}")).await?);
    let st = admin
        .get_or_create_stream(stream::Config {
            name: "HUSH".into(),
            subjects: vec!["hush.>".into()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let mut conns = Vec::new();
    for i in 0..n {
        let client = async_nats::connect(format!("127.0.0.1:{port}")).await?;
        let js = jetstream::new(client.clone());
        let stream = js.get_stream("HUSH").await?;
        // A push consumer: the server delivers as soon as a message is stored (a pull consumer
        // adds request round trips and batching to the latency).
        let inbox = client.new_inbox();
        let cons: consumer::PushConsumer = stream
            .create_consumer(consumer::push::Config {
                deliver_subject: inbox,
                filter_subject: format!("hush.{i}"),
                deliver_policy: consumer::DeliverPolicy::New,
                ack_policy: consumer::AckPolicy::None,
                ..Default::default()
            })
            .await?;
        let mut msgs = cons.messages().await?;
        let rec = rec.clone();
        tokio::spawn(async move {
            while let Some(Ok(m)) = msgs.next().await {
                rec.record(&m.payload);
            }
        });
        conns.push(Conn::Nats(js));
    }
    drop(st);
    Ok(Arc::new(conns))
}

fn ms(us: u32) -> String {
    format!("{:.2}", f64::from(us) / 1000.0)
}

fn report(name: &str, phase: &str, r: &PhaseResult) {
    println!(
        "{name:6} {phase:5} {:>9.0} msg/s  acked {:>8}  errors {:>4}  skipped {:>5}  pushes {:>8}  p50 {:>7} ms  p99 {:>7} ms  max {:>8} ms",
        r.per_sec,
        r.acked,
        r.errors,
        r.skipped,
        r.received,
        ms(r.p50_us),
        ms(r.p99_us),
        ms(r.max_us)
    );
}

async fn idle_memory(bin: &Path, dir: &Path, m: usize) -> anyhow::Result<(u64, u64, u64, usize)> {
    let relay = start_relay(bin, dir).await?;
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
        lat_us: Mutex::new(Vec::new()),
    });
    println!(
        "connections {}  window {}  seconds {}  message {} bytes",
        args.connections, args.window, args.seconds, ENVELOPE_LEN
    );

    // hush-relay.
    let hdir = tmp.path().join("hush");
    std::fs::create_dir_all(&hdir)?;
    let relay = start_relay(&relay_bin, &hdir).await?;
    let rpid = relay.child.id().unwrap_or(0);
    let (conns, endpoints) = hush_conns(&relay.addr, args.connections, &rec).await?;
    let cpu0 = cpu_secs(rpid);
    let hmax = phase(&conns, &rec, args.window, None, args.seconds).await;
    let hcpu = (cpu_secs(rpid) - cpu0) / hmax.acked.max(1) as f64 * 1e6;
    report("hush", "max", &hmax);
    println!("hush   relay CPU per acknowledged deposit in max phase: {hcpu:.0} us");
    let hhalf = phase(
        &conns,
        &rec,
        args.window,
        Some(hmax.per_sec / 2.0),
        args.seconds,
    )
    .await;
    report("hush", "half", &hhalf);
    let commits = metric(relay.metrics_port, "hush_relay_commits_total").await;
    let ops = metric(relay.metrics_port, "hush_relay_committed_ops_total").await;
    let hpeak = proc_status_kib(rpid, "VmHWM:");
    println!("hush   commit durations (cumulative count of commits at or under each bound):");
    for line in metrics_text(relay.metrics_port)
        .await
        .lines()
        .filter(|l| l.starts_with("hush_relay_commit_duration_seconds"))
    {
        println!("         {line}");
    }
    println!(
        "hush   relay peak RSS {} MiB; {commits} commits, {:.1} writes per commit",
        hpeak / 1024,
        ops as f64 / commits.max(1) as f64
    );
    drop(conns);
    drop(endpoints);
    drop(relay);

    // NATS JetStream reference.
    let mut nats = None;
    if !args.skip_nats {
        let ndir = tmp.path().join("nats");
        std::fs::create_dir_all(&ndir)?;
        let (child, port) = start_nats(&args.nats_server, &ndir).await?;
        let npid = child.id().unwrap_or(0);
        let conns = nats_conns(port, args.connections, &rec).await?;
        let cpu0 = cpu_secs(npid);
        let nmax = phase(&conns, &rec, args.window, None, args.seconds).await;
        let ncpu = (cpu_secs(npid) - cpu0) / nmax.acked.max(1) as f64 * 1e6;
        report("nats", "max", &nmax);
        println!("nats   server CPU per acknowledged publish in max phase: {ncpu:.0} us");
        let nhalf = phase(
            &conns,
            &rec,
            args.window,
            Some(nmax.per_sec / 2.0),
            args.seconds,
        )
        .await;
        report("nats", "half", &nhalf);
        let npeak = proc_status_kib(npid, "VmHWM:");
        println!("nats   server peak RSS {} MiB", npeak / 1024);
        drop(conns);
        drop(child);
        println!(
            "ratio  hush/nats durable throughput {:.2}x",
            hmax.per_sec / nmax.per_sec.max(1e-9)
        );
        nats = Some((nmax, nhalf, npeak));
    }

    let idle = if args.idle > 0 {
        let idir = tmp.path().join("idle");
        std::fs::create_dir_all(&idir)?;
        Some(idle_memory(&relay_bin, &idir, args.idle).await?)
    } else {
        None
    };

    // Markdown rows for docs/BENCHMARKS.md.
    println!();
    println!(
        "| system | phase | durable msg/s | push p50 ms | push p99 ms | push max ms | peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|");
    let row = |s: &str, p: &str, r: &PhaseResult, rss: u64| {
        println!(
            "| {s} | {p} | {:.0} | {} | {} | {} | {} |",
            r.per_sec,
            ms(r.p50_us),
            ms(r.p99_us),
            ms(r.max_us),
            rss / 1024
        );
    };
    row("hush-relay", "max", &hmax, hpeak);
    row("hush-relay", "half", &hhalf, hpeak);
    if let Some((nmax, nhalf, npeak)) = &nats {
        row("nats-server JetStream", "max", nmax, *npeak);
        row("nats-server JetStream", "half", nhalf, *npeak);
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
