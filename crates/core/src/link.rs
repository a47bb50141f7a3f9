//! Relay links, the I/O half of the engine's [`LinkOp`]s: one task per relay (and, through a
//! SOCKS5 proxy, per contact that deposits there) keeps a pinned connection alive
//! (reconnecting with backoff) over the profile's [`Route`], and turns each op into relay
//! requests. A proxy that fails is reported as such; a link never falls back to another
//! route. A private-routing link (docs/PROTOCOL.md II.4.2) connects to the profile's own
//! relay and deposits to its destination through it: it fetches the destination's
//! forwarding key there, verifies it against the destination's pin, and seals every deposit
//! to it; it reports as the destination, and a failure on that path leaves the deposit
//! waiting ([`DepositFailure::PrivateRoute`]), never sent directly.
//!
//! A link never decides anything: it reports every result back to the driver as a
//! [`LinkEvent`], so the engine stays the only owner of state and never waits on the
//! network. Request tasks live in the link's `JoinSet` and end with it. Nothing here logs
//! mailbox ids, secrets or envelope bytes.

use std::sync::Arc;
use std::time::Duration;

use hush_crypto::Target as DepositTarget;
use hush_proto::drop::{STAMP_LEN, mint_stamp};
use hush_proto::forward::{Destination, RequestId, VerifiedKey};
use hush_proto::{
    DeleteIds, DropAddress, Envelope, ErrorCode, FetchSecret, MAX_SECRETS, RelayAddress,
    SecretBatch,
};
use hush_proto::{MailboxId, Request};
use hush_transport::{RelayClient, Route, relay_error};
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

/// Where a link connects and what it does there.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// The relay the link connects to.
    pub(crate) connect: RelayAddress,
    /// Private routing: the destination relay its deposits are forwarded to through
    /// `connect` (the profile's own relay). It reports as this relay.
    pub(crate) forward: Option<RelayAddress>,
    /// How `connect` is reached.
    pub(crate) route: Route,
    /// The local address to connect from.
    pub(crate) bind: Option<std::net::IpAddr>,
}

impl Link {
    /// A link to `target`. `announce`: it reports [`LinkEvent::Up`] and
    /// [`LinkEvent::Down`] (the profile's own link to a relay does; a contact's deposit link
    /// beside it reports only its deposits, so the relay's state has one source).
    pub(crate) fn spawn(target: Target, reports: Reports, announce: bool) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(target, rx, reports, announce));
        Self { tx, task }
    }

    /// Hands `op` to the link; gives it back if the link has ended (a contact's link ends
    /// once idle: start a new one).
    pub(crate) fn send(&self, op: LinkOp) -> Result<(), LinkOp> {
        self.tx.send(op).map_err(|e| e.0)
    }

    /// Ends the link gracefully, waiting at most `within`: its task closes the connection,
    /// so the relay frees it at once instead of after its idle timeout.
    pub(crate) async fn close(mut self, within: Duration) {
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.tx, closed));
        let _ = tokio::time::timeout(within, &mut self.task).await;
    }
}

/// How long one connection attempt may take (through Tor, CONNECT builds a circuit).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a link that ends waits for its connection's close to reach the relay.
const CLOSE_WAIT: Duration = Duration::from_millis(800);
/// How long a contact's link (through a proxy, or a lane's with isolation) stays with
/// nothing to do before it closes its connection, and with it a Tor circuit, and ends; the
/// next request starts a new one. The profile's own link stays, and so does a lane's link
/// while it holds a subscription (per-contact isolation in normal mode).
const CONTACT_LINK_IDLE: Duration = Duration::from_secs(60);

/// A connection, and for private routing the destination with its verified key.
struct Connected {
    client: Arc<RelayClient>,
    forward: Option<Arc<(Destination, VerifiedKey)>>,
}

/// Connects to the target (and, for private routing, fetches and verifies the
/// destination's forwarding key through it); what a deposit reports when that fails.
async fn connect(target: &Target) -> Result<Connected, DepositFailure> {
    let private = target.forward.is_some();
    let client = tokio::select! {
        c = RelayClient::connect_via_from(&target.connect, &target.route, target.bind) => c,
        () = tokio::time::sleep(CONNECT_TIMEOUT) => Err(hush_transport::Error::Timeout),
    };
    let client = match client {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::debug!(error = %e, "relay connect failed");
            return Err(match e {
                hush_transport::Error::Proxy(_) | hush_transport::Error::ProxyUnreachable => {
                    tracing::warn!(error = %e, "the SOCKS5 proxy failed; nothing sent");
                    DepositFailure::ProxyFailed
                }
                _ if private => DepositFailure::PrivateRoute("own_relay_unreachable"),
                hush_transport::Error::PinMismatch => DepositFailure::CertificateMismatch,
                _ => DepositFailure::Unreachable,
            });
        }
    };
    let Some(dest) = &target.forward else {
        return Ok(Connected {
            client,
            forward: None,
        });
    };
    let dest = Destination::new(dest.clone())
        .map_err(|_| DepositFailure::PrivateRoute("bad_destination"))?;
    let key = tokio::time::timeout(CONNECT_TIMEOUT, client.fetch_forward_key(&dest)).await;
    match key {
        Ok(Ok(key)) => Ok(Connected {
            client,
            forward: Some(Arc::new((dest, key))),
        }),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "private routing: no verified key for the destination");
            client.close_and_wait(CLOSE_WAIT).await;
            Err(route_failure(&e))
        }
        Err(_) => {
            client.close_and_wait(CLOSE_WAIT).await;
            Err(DepositFailure::PrivateRoute("forward_unreachable"))
        }
    }
}

/// The reason a private-routing step failed, by name.
fn route_failure(e: &hush_transport::Error) -> DepositFailure {
    match private_route_reason(e) {
        Some(why) => DepositFailure::PrivateRoute(why),
        None => DepositFailure::CertificateMismatch,
    }
}

/// The name of the reason a request through the own relay failed (deposits here, a file's
/// chunk requests in `crate::files`), or `None` when it is the destination's certificate
/// not matching its pin, as the forwarding relay found: the same finding as a direct
/// connection's, reported as that.
pub(crate) fn private_route_reason(e: &hush_transport::Error) -> Option<&'static str> {
    match e {
        hush_transport::Error::ForwardKeyRefused(_) => Some("forward_key_refused"),
        hush_transport::Error::ForwardAnswerUnsealable => Some("forward_answer_unsealable"),
        hush_transport::Error::Relay(f) if f.code == ErrorCode::ForwardPinMismatch => None,
        hush_transport::Error::Relay(f) => Some(f.code.name()),
        _ => Some("own_relay_unreachable"),
    }
}

async fn run(
    target: Target,
    mut rx: mpsc::UnboundedReceiver<LinkOp>,
    reports: Reports,
    announce: bool,
) {
    // A private link reports as its destination: that is the relay the engine asked for.
    let relay = target
        .forward
        .clone()
        .unwrap_or_else(|| target.connect.clone());
    let mut subscribed: Vec<Opener> = Vec::new();
    let mut failures = 0u32;
    let mut announced_down = false;
    let ends_when_idle = !announce;
    let mut last_op = tokio::time::Instant::now();
    // Jitter only spreads reconnects out; it protects nothing, so OS seeding is plenty.
    let mut rng = ChaCha20Rng::from_seed(crate::driver::os_seed().unwrap_or([7; 32]));
    loop {
        let Connected { client, forward } = match connect(&target).await {
            Ok(c) => c,
            Err(why) => {
                if announce && !announced_down {
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
                            Some(op) => {
                                last_op = tokio::time::Instant::now();
                                fail_offline(op, why, &relay, &reports, &mut subscribed).await;
                            }
                        },
                    }
                }
                if ends_when_idle && subscribed.is_empty() && last_op.elapsed() >= CONTACT_LINK_IDLE
                {
                    // Nothing to send for a while: stop retrying; ops that raced in fail now.
                    rx.close();
                    while let Ok(op) = rx.try_recv() {
                        fail_offline(op, why, &relay, &reports, &mut subscribed).await;
                    }
                    return;
                }
                failures = failures.saturating_add(1);
                continue;
            }
        };
        failures = 0;
        if announce {
            report(&reports, &relay, LinkEvent::Up).await;
        }
        let mut requests = JoinSet::new();
        let mut subs = JoinSet::new();
        start_subscriptions(&mut subs, &client, &relay, &subscribed, &reports);
        let idle = tokio::time::sleep(CONTACT_LINK_IDLE);
        tokio::pin!(idle);
        loop {
            tokio::select! {
                () = &mut idle, if ends_when_idle && requests.is_empty() && subscribed.is_empty() => {
                    // Ops that raced in are served on this connection before it closes; later
                    // sends fail, and the driver starts a new link.
                    rx.close();
                    while let Ok(op) = rx.try_recv() {
                        requests.spawn(serve(op, Arc::clone(&client), forward.clone(), relay.clone(), reports.clone()));
                    }
                    while requests.join_next().await.is_some() {}
                    client.close_and_wait(CLOSE_WAIT).await;
                    return;
                }
                op = rx.recv() => match op {
                    None => {
                        // Told at once, the relay frees the connection now rather than after
                        // its idle timeout (and its shutdown does not wait for it).
                        client.close_and_wait(CLOSE_WAIT).await;
                        return;
                    }
                    Some(LinkOp::Subscribe { secrets }) => {
                        idle.as_mut().reset(tokio::time::Instant::now() + CONTACT_LINK_IDLE);
                        subs.abort_all();
                        subscribed = secrets;
                        start_subscriptions(&mut subs, &client, &relay, &subscribed, &reports);
                    }
                    Some(op) => {
                        idle.as_mut().reset(tokio::time::Instant::now() + CONTACT_LINK_IDLE);
                        requests.spawn(serve(op, Arc::clone(&client), forward.clone(), relay.clone(), reports.clone()));
                    }
                },
                Some(_) = requests.join_next(), if !requests.is_empty() => {
                    idle.as_mut().reset(tokio::time::Instant::now() + CONTACT_LINK_IDLE);
                }
                () = client.closed() => break,
            }
        }
        subs.abort_all();
        // Requests still running fail on the closed connection and report it themselves.
        while requests.join_next().await.is_some() {}
        if announce {
            report(&reports, &relay, LinkEvent::Down).await;
        }
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

async fn serve(
    op: LinkOp,
    client: Arc<RelayClient>,
    forward: Option<Arc<(Destination, VerifiedKey)>>,
    relay: RelayAddress,
    reports: Reports,
) {
    match op {
        LinkOp::Deposit {
            outbox,
            target,
            envelope,
        } => {
            let via = Via {
                client: &client,
                forward: forward.as_deref(),
            };
            let result = match target {
                DepositTarget::Mailbox(mailbox) => via.deposit(mailbox, envelope).await,
                DepositTarget::Drop(drop) => deposit_stamped(&via, drop, envelope).await,
            }
            .map_err(|e| match (relay_error(&e), &forward) {
                // Refusals of the path (this relay's or the destination's forwarding) and a
                // refused key or answer leave the deposit waiting with the reason.
                (Some(f), Some(_)) if is_route_code(f.code) => route_failure(&e),
                (None, Some(_)) if e.is_peer_fault() => route_failure(&e),
                (Some(f), _) => DepositFailure::Refused(f.code),
                (None, _) => DepositFailure::Transport,
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

/// Whether a relay's error code is one of private routing's (0x0500..=0x05ff): a refusal
/// of the path, not of the deposit.
fn is_route_code(code: ErrorCode) -> bool {
    (0x0500..=0x05ff).contains(&code.to_u16())
}

/// How a deposit is made: directly on `client`, or forwarded through it.
struct Via<'a> {
    client: &'a RelayClient,
    forward: Option<&'a (Destination, VerifiedKey)>,
}

impl Via<'_> {
    async fn deposit(
        &self,
        mailbox: MailboxId,
        envelope: Envelope,
    ) -> Result<(), hush_transport::Error> {
        let Some((dest, key)) = self.forward else {
            return self.client.deposit(mailbox, envelope).await.map(|_| ());
        };
        let id = request_id(0x02, mailbox.as_bytes(), &envelope);
        let req = Request::Deposit { mailbox, envelope };
        self.client
            .forward_deposit(dest, key, id, req)
            .await
            .map(|_| ())
    }

    async fn deposit_stamped(
        &self,
        drop: DropAddress,
        stamp: [u8; STAMP_LEN],
        envelope: Envelope,
    ) -> Result<(), hush_transport::Error> {
        let Some((dest, key)) = self.forward else {
            return self
                .client
                .deposit_stamped(drop, stamp, envelope)
                .await
                .map(|_| ());
        };
        let id = request_id(0x06, drop.id.as_bytes(), &envelope);
        let req = Request::DepositStamped {
            drop,
            stamp,
            envelope,
        };
        self.client
            .forward_deposit(dest, key, id, req)
            .await
            .map(|_| ())
    }
}

/// The request id of a forwarded deposit: the same for every retry of one outbox entry (its
/// target and envelope do not change), so the destination stores it once, without a column
/// in the store. `SHA-256("hush/v2/forward-id" || kind || target || envelope)[..16]`; the
/// envelope is ciphertext nobody but the sender knows before it is deposited, so no one
/// else can name the id of a deposit to come.
fn request_id(kind: u8, target: &[u8; 32], envelope: &Envelope) -> RequestId {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"hush/v2/forward-id");
    h.update([kind]);
    h.update(target);
    h.update(envelope.as_bytes());
    let d = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&d[..16]);
    RequestId(id)
}

/// Deposits to an invite's drop: mints a stamp at the owner's difficulty (off the async
/// threads: it is CPU work) and, when the relay quotes a higher price, once more at that.
async fn deposit_stamped(
    via: &Via<'_>,
    drop: DropAddress,
    envelope: Envelope,
) -> Result<(), hush_transport::Error> {
    let mut bits = u32::from(drop.bits);
    let mut last = None;
    for _ in 0..STAMP_ATTEMPTS {
        let stamp = mint(drop, envelope.clone(), bits).await?;
        match via.deposit_stamped(drop, stamp, envelope.clone()).await {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

    use hush_proto::{ENVELOPE_LEN, Envelope, MailboxId};

    use super::*;
    use crate::store::OutboxId;

    fn deposit(n: i64) -> LinkOp {
        LinkOp::Deposit {
            outbox: OutboxId(n),
            target: DepositTarget::Mailbox(MailboxId([7; 32])),
            envelope: Envelope::new(Box::new([1; ENVELOPE_LEN])),
        }
    }

    /// A contact's link through a proxy that is down reports each deposit as a proxy
    /// failure, and ends once it has had nothing to do for its idle time, so that a
    /// profile with many contacts does not keep a connection (a Tor circuit) per contact
    /// retrying for ever; the profile's own link stays. Paused clock: no real waiting.
    /// Seen to fail with the idle end removed (the contact's link still took requests).
    #[tokio::test(start_paused = true)]
    async fn an_idle_contacts_link_ends_and_the_profiles_stays() {
        // Nothing listens on a port just released.
        let proxy = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let relay: RelayAddress = format!("hush://{}@relay.invalid:4433", "A".repeat(43))
            .parse()
            .unwrap();
        let route = Route::Socks5(hush_transport::Socks5 {
            proxy,
            username: "0123456789abcdef0123456789abcdef".into(),
        });
        let (reports, mut seen) = mpsc::channel(16);
        let target = Target {
            connect: relay,
            forward: None,
            route,
            bind: None,
        };
        let contact = Link::spawn(target.clone(), reports.clone(), false);
        let profile = Link::spawn(target, reports, true);
        assert!(contact.send(deposit(1)).is_ok());
        loop {
            match seen.recv().await.unwrap().1 {
                LinkEvent::Deposited { outbox, result } => {
                    assert_eq!(outbox, OutboxId(1));
                    assert_eq!(result, Err(DepositFailure::ProxyFailed));
                    break;
                }
                LinkEvent::Down => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        tokio::time::sleep(CONTACT_LINK_IDLE * 4).await;
        assert!(
            contact.send(deposit(2)).is_err(),
            "the idle contact's link ended"
        );
        assert!(profile.send(deposit(3)).is_ok(), "the profile's link stays");
    }

    /// A lane's link (per-contact isolation in normal mode) that holds a subscription does
    /// not end when idle, even while its relay cannot be reached: it keeps retrying, and
    /// subscribes again once it connects. Once its subscription is ended (an empty set) it
    /// ends when idle like any contact's link. Paused clock. Seen to fail with the
    /// `subscribed.is_empty()` guard of the reconnect loop removed ("the subscribed lane
    /// stays": its link had ended).
    #[tokio::test(start_paused = true)]
    async fn a_lane_holding_a_subscription_stays_until_it_is_ended() {
        let proxy = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let relay: RelayAddress = format!("hush://{}@relay.invalid:4433", "A".repeat(43))
            .parse()
            .unwrap();
        let route = Route::Socks5(hush_transport::Socks5 {
            proxy,
            username: "fedcba9876543210fedcba9876543210".into(),
        });
        let (reports, mut seen) = mpsc::channel(16);
        let lane = Link::spawn(
            Target {
                connect: relay,
                forward: None,
                route,
                bind: None,
            },
            reports,
            false,
        );
        let secret = Opener::Mailbox(hush_proto::FetchSecret::from_bytes([9; 32]));
        assert!(
            lane.send(LinkOp::Subscribe {
                secrets: vec![secret]
            })
            .is_ok()
        );
        tokio::time::sleep(CONTACT_LINK_IDLE * 4).await;
        assert!(lane.send(deposit(1)).is_ok(), "the subscribed lane stays");
        loop {
            if let LinkEvent::Deposited { .. } = seen.recv().await.unwrap().1 {
                break;
            }
        }
        assert!(
            lane.send(LinkOp::Subscribe {
                secrets: Vec::new()
            })
            .is_ok()
        );
        tokio::time::sleep(CONTACT_LINK_IDLE * 4).await;
        assert!(
            lane.send(deposit(2)).is_err(),
            "the lane's link ended once its subscription had"
        );
    }
}
