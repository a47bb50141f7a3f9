//! The async driver: runs an [`Engine`] for real. It owns the clock, the relay links and
//! the local relay, and moves inputs into the engine and outputs out of it; it decides
//! nothing itself.
//!
//! One task runs the loop; links and their requests are tasks it owns (dropped, and so
//! cancelled, with it). Channels from front ends and from links are bounded; the one to
//! each link is not, because the driver must never wait (see `link`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hush_proto::RelayAddress;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::api::{Event, Handle, Request, Response};
use crate::backoff::Backoff;
use crate::engine::{Engine, EngineConfig, Lane, LinkEvent, LinkOp, LinkRequest, Ticket, Time};
use crate::error::{Error, Result};
use crate::link::{Link, Reports};
use crate::local_relay::{LocalRelay, ServedRelay};
use crate::profile::{Network, Routing};
use crate::store::ContactId;
use crate::store::Store;
use crate::store::settings::Setting;

#[cfg(feature = "test-hooks")]
use crate::engine::CrashPoint;

/// How long shutdown waits for acknowledgements still on their way to a relay.
const SHUTDOWN_ACK_WAIT: Duration = Duration::from_secs(5);
/// How long shutdown waits for each relay link to close its connection.
const LINK_CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Longest sleep between timeouts, so a wall clock that jumps is noticed soon.
const MAX_SLEEP: Duration = Duration::from_secs(5);
/// Commands and link reports that may wait for the loop.
const CHANNEL_DEPTH: usize = 256;
/// Events that may wait for a front end; past that they are dropped (the store has all).
const EVENT_DEPTH: usize = 1024;

/// How the driver runs the engine.
#[derive(Clone, Default)]
pub struct Options {
    /// The relay to serve when the profile names none (`None`: a relay must be set).
    pub local_relay: Option<Arc<dyn LocalRelay>>,
    /// How relays are reached (the profile's `transport` and `socks5` settings).
    pub network: Network,
    /// The rates of high-risk mode's slots (defaults: [`crate::TrafficConfig`]).
    pub traffic: crate::engine::TrafficConfig,
    /// How deposits to other relays travel (the profile's `routing`).
    pub routing: Routing,
    /// The local address connections leave from (the profile's `bind`).
    pub bind: Option<std::net::IpAddr>,
    /// Test hook: seconds added to the system clock (epoch rotation and catch-up).
    #[cfg(feature = "test-hooks")]
    pub clock_offset_secs: i64,
    /// Test hook: abort the process at this point, as `kill -9` would.
    #[cfg(feature = "test-hooks")]
    pub crash_at: Option<CrashPoint>,
}

impl Options {
    /// Takes the profile's network settings: `transport`, `socks5`, `routing`, `bind`.
    pub fn configure(&mut self, config: &crate::profile::Config) {
        self.network = config.network();
        self.routing = config.routing();
        self.bind = config.bind;
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("local_relay", &self.local_relay.is_some())
            .field("network", &self.network)
            .field("routing", &self.routing)
            .finish_non_exhaustive()
    }
}

/// How long [`check_relay`] waits for the relay.
const CHECK_TIMEOUT: Duration = Duration::from_secs(8);

/// Connects to `address` once over `network` and pings it: [`Error::CertificateMismatch`]
/// if it presents a certificate that does not match the address's pin,
/// [`Error::ProxyFailed`] if the SOCKS5 proxy is unreachable or refuses,
/// [`Error::RelayUnreachable`] if it cannot be reached or does not answer. Sends nothing
/// else, and closes the connection before returning.
pub async fn check_relay(address: &RelayAddress, network: Network) -> Result<()> {
    check_relay_from(address, network, None).await
}

/// [`check_relay`] from the local address `bind` (the profile's `bind`), if given.
///
/// # Errors
/// As [`check_relay`].
pub async fn check_relay_from(
    address: &RelayAddress,
    network: Network,
    bind: Option<std::net::IpAddr>,
) -> Result<()> {
    let route = Isolation::new([0; 32]).route(network, None);
    let attempt = async {
        let client = hush_transport::RelayClient::connect_via_from(address, &route, bind).await?;
        let pong = client.ping().await;
        client.close_and_wait(LINK_CLOSE_WAIT).await;
        pong.map(|_| ())
    };
    match tokio::time::timeout(CHECK_TIMEOUT, attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(hush_transport::Error::PinMismatch)) => Err(Error::CertificateMismatch),
        Ok(Err(hush_transport::Error::VersionMismatch)) => Err(Error::RelayVersionMismatch),
        Ok(Err(hush_transport::Error::Proxy(_) | hush_transport::Error::ProxyUnreachable)) => {
            Err(Error::ProxyFailed)
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "relay check failed");
            Err(Error::RelayUnreachable)
        }
        Err(_) => Err(Error::RelayUnreachable),
    }
}

/// SOCKS5 usernames that isolate contacts: through Tor each gets its own circuit, so the
/// exit (and the relay) cannot tell from a shared circuit that two contacts' deposits come
/// from one person. A username is an opaque token derived from a secret drawn anew for each
/// engine run and the contact's row id: it names no contact, and runs cannot be linked by
/// it.
struct Isolation {
    secret: [u8; 32],
}

impl Isolation {
    fn new(secret: [u8; 32]) -> Self {
        Self { secret }
    }

    /// The username of `contact`'s deposits, or of the profile's own requests (`None`).
    fn username(&self, contact: Option<ContactId>) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"hush socks5 isolation v1");
        h.update(self.secret);
        match contact {
            Some(c) => {
                h.update([1]);
                h.update(c.0.to_be_bytes());
            }
            None => h.update([0]),
        }
        let digest = h.finalize();
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    fn route(&self, network: Network, contact: Option<ContactId>) -> hush_transport::Route {
        match network {
            Network::Quic => hush_transport::Route::Quic,
            Network::Tcp => hush_transport::Route::Tcp,
            Network::Socks5(proxy) => hush_transport::Route::Socks5(hush_transport::Socks5 {
                proxy,
                username: self.username(contact),
            }),
        }
    }

    /// The username of a lane's connection (per-contact isolation): its own, so that
    /// through Tor each lane is a circuit of its own.
    fn lane_username(&self, lane: Lane) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"hush socks5 isolation lane v1");
        h.update(self.secret);
        h.update(lane.contact.0.to_be_bytes());
        h.update(lane.window.to_be_bytes());
        h.update([u8::from(lane.fetch)]);
        let digest = h.finalize();
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }
}

/// Which link a request travels on: the relay's, a contact's (deposits through a proxy) or
/// a lane's (per-contact isolation).
type LinkKey = (String, Option<ContactId>, Option<Lane>);

/// 32 bytes from the operating system's generator.
pub(crate) fn os_seed() -> Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    crate::store::os_random(&mut seed)?;
    Ok(seed)
}

struct Clock {
    #[cfg(feature = "test-hooks")]
    offset_secs: i64,
}

impl Clock {
    fn now(&self) -> Time {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        #[cfg(feature = "test-hooks")]
        let ms = ms.saturating_add_signed(self.offset_secs.saturating_mul(1000));
        Time::from_unix_millis(ms)
    }
}

/// Starts the engine on an open store, serving the local relay if the profile names no
/// relay. Returns the handle front ends use and the engine's events.
pub async fn start(store: Store, opts: Options) -> Result<(Handle, mpsc::Receiver<Event>)> {
    let clock = Clock {
        #[cfg(feature = "test-hooks")]
        offset_secs: opts.clock_offset_secs,
    };
    let local_address = match (&opts.local_relay, store.db().setting(Setting::Relay)?) {
        (Some(local), None) => Some(local.address()?),
        _ => None,
    };
    let config = EngineConfig {
        local_relay: local_address.clone(),
        #[cfg(feature = "test-hooks")]
        crash_at: opts.crash_at,
        traffic: opts.traffic,
    };
    let engine = Engine::new(store, config, os_seed()?, clock.now())?;
    let served = match (&opts.local_relay, &local_address) {
        (Some(local), Some(_)) => local.serve().await?,
        _ => None,
    };
    let (tx, requests) = mpsc::channel(CHANNEL_DEPTH);
    let (events_tx, events) = mpsc::channel(EVENT_DEPTH);
    let (reports, link_events) = mpsc::channel(CHANNEL_DEPTH);
    let opts_network = opts.network;
    let mut driver = Driver {
        engine,
        clock,
        network: opts.network,
        routing: opts.routing,
        bind: opts.bind,
        isolation: Isolation::new(os_seed()?),
        links: HashMap::new(),
        reports,
        events: events_tx,
        replies: HashMap::new(),
        next_ticket: 1,
        local: opts.local_relay,
        local_address,
        served,
        takeover: None,
        rng: ChaCha20Rng::from_seed(os_seed()?),
    };
    driver.pump();
    tokio::spawn(driver.run(requests, link_events));
    Ok((
        Handle {
            tx,
            network: opts_network,
            routing: opts.routing,
            bind: opts.bind,
        },
        events,
    ))
}

struct Driver {
    engine: Engine,
    clock: Clock,
    network: Network,
    routing: Routing,
    bind: Option<std::net::IpAddr>,
    isolation: Isolation,
    /// Links by relay and, through a SOCKS5 proxy, by the contact a deposit goes to.
    links: HashMap<LinkKey, Link>,
    reports: Reports,
    events: mpsc::Sender<Event>,
    replies: HashMap<Ticket, oneshot::Sender<Result<Response>>>,
    next_ticket: u64,
    local: Option<Arc<dyn LocalRelay>>,
    local_address: Option<RelayAddress>,
    served: Option<Box<dyn ServedRelay>>,
    /// While the local relay is down and served by no one here: when to try serving it
    /// again, and how many tries failed.
    takeover: Option<(Instant, u32)>,
    /// Jitter for the takeover's backoff (never the engine's generator).
    rng: ChaCha20Rng,
}

impl Driver {
    async fn run(
        mut self,
        mut requests: mpsc::Receiver<Request>,
        mut link_events: mpsc::Receiver<(RelayAddress, LinkEvent)>,
    ) {
        loop {
            let sleep = self.sleep_time();
            tokio::select! {
                req = requests.recv() => match req {
                    None => break,
                    Some(Request::Shutdown(done)) => {
                        self.shutdown(&mut link_events).await;
                        // The engine, and with it the store and the profile's lock, is gone
                        // by the time the caller hears the shutdown is done.
                        drop(self);
                        let _ = done.send(());
                        return;
                    }
                    Some(Request::Command(cmd, reply)) => {
                        let ticket = Ticket(self.next_ticket);
                        self.next_ticket += 1;
                        self.replies.insert(ticket, reply);
                        self.engine.handle_command(self.clock.now(), ticket, cmd);
                    }
                },
                Some((relay, ev)) = link_events.recv() => {
                    match ev {
                        LinkEvent::Down => self.take_over_local_relay(&relay).await,
                        LinkEvent::Up if self.local_address.as_ref() == Some(&relay) => {
                            self.takeover = None;
                        }
                        _ => {}
                    }
                    if let Err(e) = self.engine.handle_link_event(self.clock.now(), &relay, ev) {
                        tracing::warn!(error = %e, "engine: handling a relay report failed");
                    }
                }
                () = Self::takeover_due(self.takeover) => {
                    if let Some(relay) = self.local_address.clone() {
                        self.take_over_local_relay(&relay).await;
                    }
                }
                () = tokio::time::sleep(sleep) => {
                    if let Err(e) = self.engine.handle_timeout(self.clock.now()) {
                        tracing::warn!(error = %e, "engine: periodic work failed");
                    }
                }
            }
            self.pump();
        }
        self.links.clear();
        if let Some(s) = self.served.take() {
            s.stop().await;
        }
    }

    fn sleep_time(&self) -> Duration {
        match self.engine.poll_timeout() {
            Ok(at) => {
                let now = self.clock.now();
                Duration::from_millis(at.unix_millis().saturating_sub(now.unix_millis()))
                    .min(MAX_SLEEP)
            }
            Err(e) => {
                tracing::warn!(error = %e, "engine: next timeout unknown");
                MAX_SLEEP
            }
        }
    }

    /// Moves the engine's outputs to links, front ends and callers.
    fn pump(&mut self) {
        while let Some(req) = self.engine.poll_link_request() {
            let reports = self.reports.clone();
            let (key, target) = self.link_for(&req);
            let contact = key.1;
            let op = match self.links.get(&key) {
                Some(link) => match link.send(req.op) {
                    Ok(()) => continue,
                    // A contact's link that ended once idle: start another.
                    Err(op) => op,
                },
                None => req.op,
            };
            // Ending the subscription of a lane whose link has ended (or never started):
            // nothing to end, and no connection to open for it.
            if key.2.is_some() && matches!(&op, LinkOp::Subscribe { secrets } if secrets.is_empty())
            {
                self.links.remove(&key);
                continue;
            }
            let link = Link::spawn(target, reports, contact.is_none());
            if link.send(op).is_err() {
                tracing::warn!("a new relay link refused its first request");
            }
            self.links.insert(key, link);
        }
        while let Some(ev) = self.engine.poll_event() {
            if self.events.try_send(ev).is_err() {
                tracing::debug!("event dropped: no front end is reading");
            }
        }
        while let Some((ticket, result)) = self.engine.poll_reply() {
            match self.replies.remove(&ticket) {
                Some(reply) => {
                    let _ = reply.send(result);
                }
                None => tracing::warn!("engine answered a command twice"),
            }
        }
    }

    /// The link a request takes and where it connects. Private routing: a deposit to any
    /// relay but the profile's own goes through the own relay, sealed to the destination
    /// (a cover deposit too: it is a deposit like any other); fetches, deletes and
    /// subscriptions stay direct (they go to the own relay anyway). The built-in relay is
    /// this machine's own loopback: nothing to hide from a network and nothing a proxy could
    /// reach, so it is always QUIC. A request with a lane (per-contact isolation) gets that
    /// lane's own connection, through a proxy its own username. Otherwise only a proxy can
    /// give contacts apart circuits; without one a connection per contact would hide
    /// nothing from the relay, which sees one address.
    fn link_for(&self, req: &LinkRequest) -> (LinkKey, crate::link::Target) {
        let via = match (&req.op, self.routing) {
            (LinkOp::Deposit { .. }, Routing::Private) => {
                // The pin is the relay's identity: the own relay under another name
                // (`localhost` and `127.0.0.1`, say) is no other relay.
                self.engine
                    .own_relay()
                    .filter(|own| own.pin != req.relay.pin)
            }
            _ => None,
        };
        let connect_to = via.as_ref().unwrap_or(&req.relay);
        let network = if self.local_address.as_ref() == Some(connect_to) {
            Network::Quic
        } else {
            self.network
        };
        let relay_key = match &via {
            Some(own) => format!("{own} > {}", req.relay),
            None => req.relay.to_string(),
        };
        let (contact, route) = match req.lane {
            Some(lane) => (
                Some(lane.contact),
                match network {
                    Network::Socks5(proxy) => {
                        hush_transport::Route::Socks5(hush_transport::Socks5 {
                            proxy,
                            username: self.isolation.lane_username(lane),
                        })
                    }
                    other => self.isolation.route(other, None),
                },
            ),
            None => {
                let contact = match network {
                    Network::Socks5(_) => req.contact,
                    Network::Quic | Network::Tcp => None,
                };
                (contact, self.isolation.route(network, contact))
            }
        };
        let target = crate::link::Target {
            connect: connect_to.clone(),
            forward: via.is_some().then(|| req.relay.clone()),
            route,
            bind: self.bind,
        };
        ((relay_key, contact, req.lane), target)
    }

    /// Resolves when the next takeover try is due (never while none is planned).
    async fn takeover_due(takeover: Option<(Instant, u32)>) {
        match takeover {
            Some((at, _)) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }

    /// If the local process serving the local relay went away, serve it here. That process
    /// may still hold the relay's lock for a while after its connections closed (it is
    /// shutting down): a failed try is repeated with backoff until this process serves the
    /// relay or its link is up again (another process took over).
    async fn take_over_local_relay(&mut self, relay: &RelayAddress) {
        if self.served.is_some() || self.local_address.as_ref() != Some(relay) {
            self.takeover = None;
            return;
        }
        let Some(local) = &self.local else {
            return;
        };
        match local.serve().await {
            Ok(Some(served)) => {
                self.served = Some(served);
                self.takeover = None;
                return;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "serving the local relay failed"),
        }
        let failures = self.takeover.map_or(0, |(_, f)| f.saturating_add(1));
        let delay = Backoff::RECONNECT.delay(failures, &mut self.rng);
        self.takeover = Some((Instant::now() + delay, failures));
    }

    /// Waits (bounded) until the acknowledgements sent so far have reached their relays. A
    /// short-lived process (a CLI command) would otherwise exit with them in flight, and the
    /// relay would keep, and deliver again, envelopes already committed here. Only
    /// acknowledgement and deposit reports are handled meanwhile: anything else is left for
    /// the next run (an envelope not acknowledged is delivered again). Then closes every
    /// link and stops the local relay.
    async fn shutdown(&mut self, link_events: &mut mpsc::Receiver<(RelayAddress, LinkEvent)>) {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_ACK_WAIT;
        self.pump();
        while self.engine.acks_in_flight() > 0 {
            match tokio::time::timeout_at(deadline, link_events.recv()).await {
                Ok(Some((relay, ev @ (LinkEvent::Deleted | LinkEvent::Deposited { .. })))) => {
                    if let Err(e) = self.engine.handle_link_event(self.clock.now(), &relay, ev) {
                        tracing::warn!(error = %e, "engine: recording a deposit failed");
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        // All at once: a profile with many contacts' links must not wait for each in turn.
        let mut closing = tokio::task::JoinSet::new();
        for (_, link) in self.links.drain() {
            closing.spawn(link.close(LINK_CLOSE_WAIT));
        }
        while closing.join_next().await.is_some() {}
        if let Some(s) = self.served.take() {
            s.stop().await;
        }
        for (_, reply) in self.replies.drain() {
            let _ = reply.send(Err(Error::EngineStopped));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

    use std::sync::atomic::{AtomicUsize, Ordering};

    use hush_crypto::InviteKind;

    use super::*;
    use crate::local_relay::BoxFuture;
    use crate::profile::Profile;
    use crate::store::KdfCost;

    /// A local relay at a loopback port nobody serves, whose lock stays "held by another
    /// process" for the first `busy` tries to serve it.
    struct Stubborn {
        port: u16,
        busy: usize,
        tries: Arc<AtomicUsize>,
    }

    struct Served;

    impl ServedRelay for Served {
        fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
            Box::pin(async {})
        }
    }

    impl LocalRelay for Stubborn {
        fn address(&self) -> Result<RelayAddress> {
            let pin = "A".repeat(43);
            format!("hush://{pin}@127.0.0.1:{}", self.port)
                .parse()
                .map_err(|_| Error::NoRelay)
        }
        fn serve(&self) -> BoxFuture<'_, Result<Option<Box<dyn ServedRelay>>>> {
            let n = self.tries.fetch_add(1, Ordering::SeqCst);
            let busy = n < self.busy;
            Box::pin(async move { Ok((!busy).then(|| Box::new(Served) as Box<dyn ServedRelay>)) })
        }
    }

    /// Through a proxy, each contact and the profile get their own opaque username, the
    /// same for the whole run; another run's usernames differ. Without a proxy there is
    /// nothing to isolate and no username.
    #[test]
    fn isolation_usernames_are_opaque_distinct_per_contact_and_per_run() {
        let run = Isolation::new([1; 32]);
        let proxy: std::net::SocketAddr = "127.0.0.1:9050".parse().unwrap();
        let name = |i: &Isolation, c: Option<i64>| match i
            .route(Network::Socks5(proxy), c.map(ContactId))
        {
            hush_transport::Route::Socks5(s) => {
                assert_eq!(s.proxy, proxy);
                s.username
            }
            other => panic!("expected SOCKS5, got {other:?}"),
        };
        let users: Vec<String> = [None, Some(1), Some(2), Some(3)]
            .iter()
            .map(|c| name(&run, *c))
            .collect();
        let distinct: std::collections::HashSet<_> = users.iter().collect();
        assert_eq!(distinct.len(), users.len(), "{users:?}");
        assert_eq!(name(&run, Some(2)), users[2], "stable within a run");
        for u in &users {
            assert_eq!(u.len(), 32);
            assert!(u.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        let next_run = Isolation::new([2; 32]);
        assert_ne!(name(&next_run, Some(1)), users[1], "runs cannot be linked");
        assert_eq!(
            run.route(Network::Quic, Some(ContactId(1))),
            hush_transport::Route::Quic
        );
        assert_eq!(
            run.route(Network::Tcp, Some(ContactId(1))),
            hush_transport::Route::Tcp
        );
    }

    /// Each lane (relationship, window of epochs, fetch or deposit) gets its own opaque
    /// username, unlike every contact's and the profile's. Seen to fail with the window left
    /// out of the hash (two windows of one contact shared a circuit).
    #[test]
    fn lane_usernames_are_distinct_per_relationship_window_and_use() {
        let run = Isolation::new([3; 32]);
        let lanes = [
            Lane::of(ContactId(1), 10, true),
            Lane::of(ContactId(1), 12, true),
            Lane::of(ContactId(1), 10, false),
            Lane::of(ContactId(2), 10, true),
        ];
        let mut names: Vec<String> = lanes.iter().map(|l| run.lane_username(*l)).collect();
        names.push(run.username(None));
        names.push(run.username(Some(ContactId(1))));
        let distinct: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
        assert_eq!(
            run.lane_username(Lane::of(ContactId(1), 11, true)),
            names[0],
            "epochs 10 and 11 share a window"
        );
    }

    /// The process serving the local relay quit but held its lock a little longer: the
    /// takeover is tried again, with backoff, until it succeeds. (Seen to fail before: it
    /// was tried once at start and once at the link's first `Down`, never again.)
    #[tokio::test]
    async fn the_local_relay_takeover_is_retried_while_its_lock_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let profile = Profile::new(dir.path(), "p").unwrap();
        let store = Store::create_with_cost(&profile, b"pass", KdfCost::TEST).unwrap();
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tries = Arc::new(AtomicUsize::new(0));
        let local = Stubborn {
            port,
            busy: 4,
            tries: tries.clone(),
        };
        // The other fields exist only with the test hooks; without them the update is empty.
        #[allow(clippy::needless_update)]
        let opts = Options {
            local_relay: Some(Arc::new(local)),
            ..Options::default()
        };
        let (handle, _events) = start(store, opts).await.unwrap();
        // An invite makes the engine watch a mailbox on the local relay: its link starts.
        handle
            .create_invite(InviteKind::ContactAddress, None)
            .await
            .unwrap();
        let served = tokio::time::timeout(Duration::from_secs(60), async {
            while tries.load(Ordering::SeqCst) <= 4 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        let n = tries.load(Ordering::SeqCst);
        handle.shutdown().await;
        assert!(
            served.is_ok(),
            "the takeover was tried {n} times, then no more"
        );
    }
}
