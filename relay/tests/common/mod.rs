//! The relay suites' own helpers, over the shared test kit (`hush-testkit`, which runs the
//! `hush-relay` process): the relay client type (the one place these suites name it),
//! deterministic test mailboxes, stand-in ciphertext, concurrent deposit storms, and small
//! file systems (tmpfs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test
#![allow(dead_code, unused_imports)] // each test file uses a different subset (re-exports too)

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use hush_proto::{ENVELOPE_LEN, Envelope, EnvelopeId, FetchSecret, MailboxId, RelayAddress};
use hush_testkit::{Relay, hooks};
pub use hush_transport::{Error, RelayClient, client_endpoint, relay_error};
use sha2::{Digest, Sha256};

/// A kit [`Relay`] with its address parsed, and clients for it.
pub struct TestRelay {
    relay: Relay,
    addr: RelayAddress,
}

impl TestRelay {
    /// `init` a relay directory and start it with `env` overrides (kept across restarts).
    pub fn start(env: &[(&str, &str)]) -> Self {
        let relay = Relay::start_with(env);
        // Port and pin stay the same across restarts, so one parse serves every run.
        let addr = relay.address().parse().unwrap();
        Self { relay, addr }
    }

    /// As [`TestRelay::start`], listening on the loopback address `ip`.
    pub fn start_at(ip: &str, env: &[(&str, &str)]) -> Self {
        let relay = Relay::start_at(ip, env);
        let addr = relay.address().parse().unwrap();
        Self { relay, addr }
    }

    pub fn addr(&self) -> &RelayAddress {
        &self.addr
    }

    /// A new connection to the current run.
    pub async fn client(&self) -> RelayClient {
        RelayClient::connect(&self.addr).await.unwrap()
    }

    /// `n` connections to the current run, all from one client socket.
    pub async fn clients(&self, n: usize) -> Vec<Arc<RelayClient>> {
        let endpoint = client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut clients = Vec::new();
        for _ in 0..n {
            clients.push(Arc::new(
                RelayClient::connect_with(&endpoint, &self.addr)
                    .await
                    .unwrap(),
            ));
        }
        clients
    }
}

impl Deref for TestRelay {
    type Target = Relay;
    fn deref(&self) -> &Relay {
        &self.relay
    }
}

impl DerefMut for TestRelay {
    fn deref_mut(&mut self) -> &mut Relay {
        &mut self.relay
    }
}

/// A deterministic fetch secret for test mailbox `i` (distinct per `tag`).
pub fn secret(tag: &str, i: u64) -> FetchSecret {
    let mut h = Sha256::new();
    h.update(b"hush-relay test secret");
    h.update(tag.as_bytes());
    h.update(i.to_be_bytes());
    FetchSecret::from_bytes(h.finalize().into())
}

pub fn mailbox(tag: &str, i: u64) -> MailboxId {
    secret(tag, i).mailbox_id()
}

/// Stand-in ciphertext: `plaintext` XORed with a SHA-256 counter keystream keyed by `n`. The
/// relay must store these bytes as they are; tests check the plaintext never appears.
pub fn sealed(plaintext: &[u8], n: u64) -> Envelope {
    let mut out = [0u8; ENVELOPE_LEN];
    for (block, chunk) in out.chunks_mut(32).enumerate() {
        let mut h = Sha256::new();
        h.update(b"keystream");
        h.update(n.to_be_bytes());
        h.update((block as u64).to_be_bytes());
        let ks: [u8; 32] = h.finalize().into();
        for (j, b) in chunk.iter_mut().enumerate() {
            let p = plaintext.get(block * 32 + j).copied().unwrap_or(0);
            *b = p ^ ks[j];
        }
    }
    Envelope::new(Box::new(out))
}

/// A tmpfs mounted at a new directory, unmounted on drop. `None` where this process may not
/// mount (not root, or no mount namespace rights): the caller skips with a message.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(at: &Path, options: &str) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Deposits `0..total` at once, spread over `clients`: deposit `n` goes to mailbox
/// `n % count` of `tag` (`mailboxes = (tag, count)`) as `sealed(plaintext, n)`. Each
/// acknowledgement (n, id) arrives on the receiver; each failure goes to `on_error` (in the
/// deposit's task).
pub fn deposit_storm(
    clients: &[Arc<RelayClient>],
    total: u64,
    (tag, count): (&'static str, u64),
    plaintext: &'static [u8],
    on_error: fn(Error),
) -> (
    Vec<tokio::task::JoinHandle<()>>,
    tokio::sync::mpsc::UnboundedReceiver<(u64, EnvelopeId)>,
) {
    let (ack_tx, ack_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for n in 0..total {
        let c = clients[(n % clients.len() as u64) as usize].clone();
        let ack_tx = ack_tx.clone();
        tasks.push(tokio::spawn(async move {
            match c
                .deposit(mailbox(tag, n % count), sealed(plaintext, n))
                .await
            {
                Ok(id) => {
                    let _ = ack_tx.send((n, id));
                }
                Err(e) => on_error(e),
            }
        }));
    }
    (tasks, ack_rx)
}

/// Adds acknowledgements (deposit number, id) to `acked` until it holds `at_least` or
/// every sender is done.
pub async fn take_acks(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(u64, EnvelopeId)>,
    acked: &mut HashMap<u64, EnvelopeId>,
    at_least: usize,
) {
    while acked.len() < at_least {
        let Some((n, id)) = rx.recv().await else {
            break;
        };
        acked.insert(n, id);
    }
}

/// A deposit storm of `total` deposits from `clients`, with the relay killed (`kill -9`)
/// once a third are acknowledged: returns every deposit the relay acknowledged before it
/// died. Deposits still in flight then can never be acknowledged; the clients are closed so
/// they fail at once instead of waiting for the QUIC idle timeout.
pub async fn storm_and_kill9(
    relay: &mut TestRelay,
    clients: &[Arc<RelayClient>],
    total: u64,
    mailboxes: (&'static str, u64),
    plaintext: &'static [u8],
) -> HashMap<u64, EnvelopeId> {
    let (tasks, mut ack_rx) = deposit_storm(clients, total, mailboxes, plaintext, |_| {});
    let mut acked = HashMap::new();
    take_acks(&mut ack_rx, &mut acked, (total / 3) as usize).await;
    relay.kill9();
    for c in clients {
        c.close();
    }
    for t in tasks {
        let _ = t.await;
    }
    // Every task has ended: this takes the rest and stops.
    take_acks(&mut ack_rx, &mut acked, usize::MAX).await;
    acked
}

/// Fetches mailboxes `0..count` of `tag` through `client` and checks that every
/// acknowledged deposit of a [`deposit_storm`] is stored under its id, in its mailbox, with
/// its ciphertext. Returns how many envelopes those mailboxes hold.
pub async fn assert_acked_stored(
    client: &RelayClient,
    acked: &HashMap<u64, EnvelopeId>,
    mailboxes: (&'static str, u64),
    plaintext: &'static [u8],
) -> usize {
    assert_acked_stored_with(client, acked, mailboxes, |_| plaintext).await
}

/// [`assert_acked_stored`] for deposits whose plaintext depends on the deposit number:
/// deposit `n` went to mailbox `n % count` as `sealed(plaintext(n), n)`.
pub async fn assert_acked_stored_with(
    client: &RelayClient,
    acked: &HashMap<u64, EnvelopeId>,
    (tag, count): (&'static str, u64),
    plaintext: impl Fn(u64) -> &'static [u8],
) -> usize {
    // One mailbox a fetch: a fetch pages through its batch in id order, and the JetStream
    // backend reads every mailbox of the batch again for each page (its ids are permuted),
    // so one fetch of all of a 10,000-deposit storm would take tens of seconds.
    let mut stored: HashMap<EnvelopeId, _> = HashMap::new();
    for i in 0..count {
        let got = client.fetch_all(&[secret(tag, i)]).await.unwrap();
        stored.extend(got.into_iter().map(|d| (d.id, d)));
    }
    for (n, id) in acked {
        let d = stored
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged deposit {n} (id {}) lost", id.0));
        assert_eq!(d.mailbox, mailbox(tag, n % count));
        assert_eq!(d.envelope, sealed(plaintext(*n), *n));
    }
    stored.len()
}

/// The loopback address 127.0.0.`last`: each its own source to a relay that does not
/// exempt loopback peers.
pub fn lo(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// `n` connections to `relay` from a socket bound to `ip`.
pub async fn clients_from(relay: &TestRelay, ip: IpAddr, n: usize) -> Vec<Arc<RelayClient>> {
    let ep = client_endpoint((ip, 0).into()).unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Arc::new(
            RelayClient::connect_with(&ep, relay.addr()).await.unwrap(),
        ));
    }
    out
}

/// A relay at `ip` writing its test-hooks record (which peer sent what) to a file in `dir`.
pub fn relay_at(ip: &str, dir: &Path, extra: &[(&str, &str)]) -> (TestRelay, PathBuf) {
    let record = dir.join(format!("record-{ip}.txt"));
    let path = record.to_str().unwrap().to_owned();
    let mut env = vec![(hooks::RELAY_TEST_RECORD, path.as_str())];
    env.extend_from_slice(extra);
    (TestRelay::start_at(ip, &env), record)
}

/// A client of `relay` leaving from the loopback address `127.0.0.<last>`.
pub async fn client_at(relay: &TestRelay, last: u8) -> RelayClient {
    RelayClient::connect_from(relay.addr(), Some(lo(last)))
        .await
        .unwrap()
}

/// A relay's record so far (empty before its first line).
pub fn record(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The peers a relay's record names (connections and frames).
pub fn peers(record: &str) -> std::collections::BTreeSet<String> {
    record
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .map(str::to_owned)
        .collect()
}
