//! Relay links, the I/O half of the engine's [`LinkOp`]s: one task per relay keeps a pinned
//! QUIC connection alive (reconnecting with backoff) and turns each op into relay requests.
//!
//! A link never decides anything: it reports every result back to the driver as a
//! [`LinkEvent`], so the engine stays the only owner of state and never waits on the
//! network. Request tasks live in the link's `JoinSet` and end with it. Nothing here logs
//! mailbox ids, secrets or envelope bytes.

use std::sync::Arc;
use std::time::Duration;

use hush_crypto::Target;
use hush_proto::drop::{STAMP_LEN, mint_stamp};
use hush_proto::{
    DeleteIds, DropAddress, Envelope, ErrorCode, FetchSecret, MAX_SECRETS, RelayAddress,
    SecretBatch,
};
use hush_transport::{RelayClient, relay_error};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::backoff::Backoff;
use crate::engine::{DepositFailure, LinkEvent, LinkOp, Opener};

/// Where links report: the relay and what happened there.
pub(crate) type Reports = mpsc::Sender<(RelayAddress, LinkEvent)>;

/// Handle to a link task. Dropping it stops the task and every request it runs.
pub(crate) struct Link {
    // Unbounded on purpose: the driver must never wait, and what it sends is the engine's
    // own output, bounded by the engine's state (outbox, mailboxes), not by a peer.
    tx: mpsc::UnboundedSender<LinkOp>,
    task: JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Link {
    pub(crate) fn spawn(relay: RelayAddress, reports: Reports) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(relay, rx, reports));
        Self { tx, task }
    }

    pub(crate) fn send(&self, op: LinkOp) -> bool {
        self.tx.send(op).is_ok()
    }

    /// Ends the link gracefully, waiting at most `within`: its task closes the connection,
    /// so the relay frees it at once instead of after its idle timeout.
    pub(crate) async fn close(mut self, within: Duration) {
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.tx, closed));
        let _ = tokio::time::timeout(within, &mut self.task).await;
    }
}

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

async fn run(relay: RelayAddress, mut rx: mpsc::UnboundedReceiver<LinkOp>, reports: Reports) {
    let mut subscribed: Vec<Opener> = Vec::new();
    let mut failures = 0u32;
    let mut announced_down = false;
    // Jitter only spreads reconnects out; it protects nothing, so OS seeding is plenty.
    let mut rng = ChaCha20Rng::from_seed(crate::driver::os_seed().unwrap_or([7; 32]));
    loop {
        let client = tokio::select! {
            c = RelayClient::connect(&relay) => c,
            () = tokio::time::sleep(CONNECT_TIMEOUT) => Err(hush_transport::Error::Timeout),
        };
        let client = match client {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::debug!(error = %e, "relay connect failed");
                let why = if matches!(e, hush_transport::Error::PinMismatch) {
                    DepositFailure::CertificateMismatch
                } else {
                    DepositFailure::Unreachable
                };
                if !announced_down {
                    announced_down = true;
                    report(&reports, &relay, LinkEvent::Down).await;
                }
                // While down, fail requests at once so the engine can schedule retries.
                let wait = tokio::time::sleep(Backoff::RECONNECT.delay(failures, &mut rng));
                tokio::pin!(wait);
                loop {
                    tokio::select! {
                        () = &mut wait => break,
                        op = rx.recv() => match op {
                            None => return,
                            Some(op) => fail_offline(op, why, &relay, &reports, &mut subscribed).await,
                        },
                    }
                }
                failures = failures.saturating_add(1);
                continue;
            }
        };
        failures = 0;
        report(&reports, &relay, LinkEvent::Up).await;
        let mut requests = JoinSet::new();
        let mut subs = JoinSet::new();
        start_subscriptions(&mut subs, &client, &relay, &subscribed, &reports);
        loop {
            tokio::select! {
                op = rx.recv() => match op {
                    None => {
                        client.close();
                        return;
                    }
                    Some(LinkOp::Subscribe { secrets }) => {
                        subs.abort_all();
                        subscribed = secrets;
                        start_subscriptions(&mut subs, &client, &relay, &subscribed, &reports);
                    }
                    Some(op) => {
                        requests.spawn(serve(op, Arc::clone(&client), relay.clone(), reports.clone()));
                    }
                },
                Some(_) = requests.join_next(), if !requests.is_empty() => {}
                _ = client.connection().closed() => break,
            }
        }
        subs.abort_all();
        // Requests still running fail on the closed connection and report it themselves.
        while requests.join_next().await.is_some() {}
        report(&reports, &relay, LinkEvent::Down).await;
        announced_down = true;
    }
}

async fn report(reports: &Reports, relay: &RelayAddress, ev: LinkEvent) {
    // The driver is gone only when the engine stopped: nothing to report to then.
    let _ = reports.send((relay.clone(), ev)).await;
}

async fn fail_offline(
    op: LinkOp,
    why: DepositFailure,
    relay: &RelayAddress,
    reports: &Reports,
    subscribed: &mut Vec<Opener>,
) {
    if let LinkOp::Subscribe { secrets } = &op {
        subscribed.clone_from(secrets);
    }
    if let Some(ev) = op.not_sent(why) {
        report(reports, relay, ev).await;
    }
}

async fn serve(op: LinkOp, client: Arc<RelayClient>, relay: RelayAddress, reports: Reports) {
    match op {
        LinkOp::Deposit {
            outbox,
            target,
            envelope,
        } => {
            let result = match target {
                Target::Mailbox(mailbox) => client.deposit(mailbox, envelope).await.map(|_| ()),
                Target::Drop(drop) => deposit_stamped(&client, drop, envelope).await,
            }
            .map_err(|e| match relay_error(&e) {
                Some(f) => DepositFailure::Refused(f.code),
                None => DepositFailure::Transport,
            });
            report(&reports, &relay, LinkEvent::Deposited { outbox, result }).await;
        }
        LinkOp::Fetch { token, secrets } => {
            let (mailboxes, drops) = split(&secrets);
            let fetched = match client.fetch_all(&mailboxes).await {
                Ok(mut deliveries) => client.fetch_all_drops(&drops).await.map(|more| {
                    deliveries.extend(more);
                    deliveries
                }),
                Err(e) => Err(e),
            };
            let ok = match fetched {
                Ok(deliveries) => {
                    for d in deliveries {
                        let ev = LinkEvent::Delivery {
                            mailbox: d.mailbox,
                            id: d.id,
                            envelope: d.envelope,
                        };
                        report(&reports, &relay, ev).await;
                    }
                    true
                }
                Err(e) => {
                    tracing::debug!(error = %e, "fetch failed");
                    false
                }
            };
            report(&reports, &relay, LinkEvent::FetchDone { token, ok }).await;
        }
        LinkOp::Delete { secret, ids } => {
            for chunk in ids.chunks(hush_proto::MAX_DELETE_IDS) {
                if let Ok(ids) = DeleteIds::new(chunk.to_vec()) {
                    // UnknownEnvelope / Expired mean it is gone already: fine.
                    let _ = match &secret {
                        Opener::Mailbox(s) => client.delete(s.clone(), ids).await,
                        Opener::Drop(s) => client.delete_drop(s.clone(), ids).await,
                    };
                }
            }
            report(&reports, &relay, LinkEvent::Deleted).await;
        }
        LinkOp::Subscribe { .. } => {}
    }
}

/// The ordinary mailboxes' secrets and the drops' secrets of `openers`.
fn split(openers: &[Opener]) -> (Vec<FetchSecret>, Vec<FetchSecret>) {
    let mut mailboxes = Vec::new();
    let mut drops = Vec::new();
    for o in openers {
        match o {
            Opener::Mailbox(s) => mailboxes.push(s.clone()),
            Opener::Drop(s) => drops.push(s.clone()),
        }
    }
    (mailboxes, drops)
}

/// The most work this client does for one stamped deposit: a relay quoting more (a drop
/// under a flood, near its quota) is refused, and the deposit is retried later.
const MAX_STAMP_BITS: u32 = 28;
/// Prices a relay may quote for one deposit before it is left to the outbox's backoff.
const STAMP_ATTEMPTS: usize = 4;

/// Deposits to an invite's drop: mints a stamp at the owner's difficulty (off the async
/// threads: it is CPU work) and, when the relay quotes a higher price, once more at that.
async fn deposit_stamped(
    client: &RelayClient,
    drop: DropAddress,
    envelope: Envelope,
) -> Result<(), hush_transport::Error> {
    let mut bits = u32::from(drop.bits);
    let mut last = None;
    for _ in 0..STAMP_ATTEMPTS {
        let stamp = mint(drop, envelope.clone(), bits).await?;
        match client.deposit_stamped(drop, stamp, envelope.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) => match relay_error(&e) {
                Some(f) if f.code == ErrorCode::StampTooWeak && f.arg <= MAX_STAMP_BITS => {
                    // A price at or below what was paid means the stamp was spent already
                    // (a retry of a deposit that went through): a fresh one is needed.
                    bits = f.arg.max(bits);
                    last = Some(e);
                }
                _ => return Err(e),
            },
        }
    }
    Err(last.unwrap_or(hush_transport::Error::Timeout))
}

async fn mint(
    drop: DropAddress,
    envelope: Envelope,
    bits: u32,
) -> Result<[u8; STAMP_LEN], hush_transport::Error> {
    let bits = u8::try_from(bits).unwrap_or(u8::MAX);
    // A random start, so a stamp spent already is never found again.
    let mut prefix = [0u8; 8];
    let seed = crate::driver::os_seed().unwrap_or([7; 32]);
    prefix.copy_from_slice(&seed[..8]);
    tokio::task::spawn_blocking(move || mint_stamp(&drop.storage_key(), &envelope, bits, prefix))
        .await
        .map_err(|_| hush_transport::Error::Timeout)
}

fn start_subscriptions(
    subs: &mut JoinSet<()>,
    client: &Arc<RelayClient>,
    relay: &RelayAddress,
    openers: &[Opener],
    reports: &Reports,
) {
    let (mailboxes, drops) = split(openers);
    let batches = mailboxes
        .chunks(MAX_SECRETS)
        .map(|c| (false, c.to_vec()))
        .chain(drops.chunks(MAX_SECRETS).map(|c| (true, c.to_vec())));
    for (drops, batch) in batches {
        let client = Arc::clone(client);
        let reports = reports.clone();
        let relay = relay.clone();
        subs.spawn(async move {
            let Ok(batch) = SecretBatch::new(batch) else {
                return;
            };
            let subscribed = if drops {
                client.subscribe_drops(batch).await
            } else {
                client.subscribe(batch).await
            };
            let mut sub = match subscribed {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "subscribe failed");
                    report(&reports, &relay, LinkEvent::Resync).await;
                    return;
                }
            };
            loop {
                match sub.next().await {
                    Ok(d) => {
                        let ev = LinkEvent::Delivery {
                            mailbox: d.mailbox,
                            id: d.id,
                            envelope: d.envelope,
                        };
                        report(&reports, &relay, ev).await;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "subscription ended");
                        report(&reports, &relay, LinkEvent::Resync).await;
                        return;
                    }
                }
            }
        });
    }
}
