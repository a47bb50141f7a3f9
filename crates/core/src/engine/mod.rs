//! The engine: hush's client logic as a deterministic state machine, in the style of
//! quinn-proto. It owns the store and every session and decides everything; it does no I/O
//! of its own. It is driven by three inputs and polled for three outputs:
//!
//! - inputs: [`Engine::handle_command`] (a front end's [`Command`]),
//!   [`Engine::handle_link_event`] (what a relay link reports) and
//!   [`Engine::handle_timeout`] (time passed);
//! - outputs: [`Engine::poll_link_request`] (what to ask a relay), [`Engine::poll_event`]
//!   (what to tell front ends), [`Engine::poll_reply`] (answers to commands), and
//!   [`Engine::poll_timeout`] (when to call `handle_timeout` next).
//!
//! It never reads the clock (time is an argument), never draws randomness but from the
//! generator it was seeded with, never spawns and never blocks on the network. The async
//! driver (`driver`) and the simulated world (`sim`, tests) both run it.
//!
//! Invariants it keeps:
//! - an envelope is acknowledged (deleted) on its relay only after what it carried was
//!   committed locally, together with the session state that decrypted it;
//! - an outgoing envelope is in the outbox, in the same transaction as the session state
//!   that produced it, before its first deposit; it leaves the outbox when the relay
//!   acknowledged a durable commit.
//!
//! Logs carry no names, text, keys or mailbox ids.
//!
//! Split by job: `commands` (front-end commands), `mailboxes` (which mailboxes to watch
//! and fetch), `outbox` (sending and retries), `inbound` (decrypting and committing),
//! `schedule` (when deposits and fetches happen: pacing, high-risk slots, cover).

mod commands;
mod files;
pub(crate) use commands::relay_setting;
mod inbound;
mod mailboxes;
mod outbox;
mod schedule;
pub(crate) use schedule::exponential;
pub use schedule::{TrafficConfig, TrafficCost};

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use hush_proto::{Envelope, EnvelopeId, ErrorCode, FetchSecret, MailboxId, RelayAddress};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::api::{Command, Event, Response};
use crate::error::Result;
use crate::store::{ContactId, InviteId, OutboxId, Store};
use mailboxes::PREVIOUS_EPOCH_GRACE;

pub use hush_crypto::Target;
pub use hush_crypto::mailbox::EPOCH_SECONDS;

/// A point in time: milliseconds since the Unix epoch. The engine only ever gets it as an
/// argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(u64);

impl Time {
    /// From milliseconds since the Unix epoch.
    pub const fn from_unix_millis(ms: u64) -> Self {
        Self(ms)
    }
    /// From whole seconds since the Unix epoch.
    pub const fn from_unix_secs(s: u64) -> Self {
        Self(s.saturating_mul(1000))
    }
    /// Milliseconds since the Unix epoch.
    pub const fn unix_millis(self) -> u64 {
        self.0
    }
    /// Whole seconds since the Unix epoch.
    pub const fn unix_secs(self) -> u64 {
        self.0 / 1000
    }
    /// The mailbox epoch this time falls in.
    pub const fn epoch(self) -> u64 {
        self.unix_secs() / EPOCH_SECONDS
    }
    /// This time plus `d`.
    pub fn plus(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }
}

/// Which command a reply answers; chosen by the caller of [`Engine::handle_command`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// Names one fetch, so its end can be matched to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FetchToken(pub u64);

/// A secret the engine presents to a relay: an ordinary mailbox's fetch secret, or the
/// secret of one of its invites' drops (docs/PROTOCOL.md, "Drops"), which relays take only
/// in the drop commands.
#[derive(Clone)]
pub enum Opener {
    /// Opens the mailbox `SHA-256(secret)`.
    Mailbox(FetchSecret),
    /// Opens the drop `SHA-256(secret)` of difficulty `secret[0]`.
    Drop(FetchSecret),
}

impl Opener {
    /// The id the relay reports this mailbox's envelopes under.
    pub fn mailbox_id(&self) -> MailboxId {
        match self {
            Self::Mailbox(s) | Self::Drop(s) => s.mailbox_id(),
        }
    }
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Mailbox(_) => "Mailbox(..)",
            Self::Drop(_) => "Drop(..)",
        })
    }
}

/// What the engine asks one relay link to do.
#[derive(Clone, Debug)]
pub enum LinkOp {
    /// Deposit one envelope; answered by [`LinkEvent::Deposited`]. To a drop, the link
    /// mints the stamp (and mints again at the price a relay quotes).
    Deposit {
        /// The outbox entry it comes from.
        outbox: OutboxId,
        /// Where: a mailbox, or an invite's drop.
        target: Target,
        /// What.
        envelope: Envelope,
    },
    /// Fetch every stored envelope of these mailboxes: each comes back as
    /// [`LinkEvent::Delivery`], then [`LinkEvent::FetchDone`] with `token`.
    Fetch {
        /// Names this fetch.
        token: FetchToken,
        /// The mailboxes and drops.
        secrets: Vec<Opener>,
    },
    /// Acknowledge (delete) envelopes of one mailbox; answered by [`LinkEvent::Deleted`]
    /// whatever the outcome (a failed delete only means the envelope comes again).
    Delete {
        /// The mailbox or drop.
        secret: Opener,
        /// The relay's ids of the envelopes.
        ids: Vec<EnvelopeId>,
    },
    /// Replace the set of mailboxes the relay pushes to us.
    Subscribe {
        /// The mailboxes and drops (possibly none).
        secrets: Vec<Opener>,
    },
}

impl LinkOp {
    /// What a link reports for this op when it could not reach its relay: a deposit that
    /// did not happen, a fetch that failed, a delete that is done as far as it can be.
    /// `None` for a subscription, which the link keeps for its next connection.
    pub fn unreachable(self) -> Option<LinkEvent> {
        self.not_sent(DepositFailure::Unreachable)
    }

    /// What a link reports for this op when it could not connect for `why` (unreachable,
    /// or a certificate that does not match the pin): as [`LinkOp::unreachable`], with
    /// `why` as a deposit's failure.
    pub fn not_sent(self, why: DepositFailure) -> Option<LinkEvent> {
        match self {
            Self::Deposit { outbox, .. } => Some(LinkEvent::Deposited {
                outbox,
                result: Err(why),
            }),
            Self::Fetch { token, .. } => Some(LinkEvent::FetchDone { token, ok: false }),
            Self::Delete { .. } => Some(LinkEvent::Deleted),
            Self::Subscribe { .. } => None,
        }
    }
}

/// How many epochs of one relationship one isolated connection may present: a [`Lane`]
/// covers an aligned window of this many epochs (the current and the next, at most).
pub const LANE_EPOCHS: u64 = 2;

/// The connection a request must travel on when contacts are kept apart (per-contact
/// isolation: always in high-risk mode, and in normal mode when the profile's `isolation`
/// setting is on): one relationship, one direction of use (its fetches, acknowledgements and
/// subscriptions, or the deposits to it) and one window of [`LANE_EPOCHS`] epochs. So no
/// connection presents the mailboxes of two relationships, nor more than [`LANE_EPOCHS`]
/// epochs of one: a relay cannot link a relationship's pseudonyms across epochs, or a
/// device's relationships together, by the connection they came on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lane {
    /// The relationship.
    pub contact: crate::store::ContactId,
    /// Epochs `window * LANE_EPOCHS .. (window + 1) * LANE_EPOCHS`.
    pub window: u64,
    /// Fetches and acknowledgements (`true`) or deposits.
    pub fetch: bool,
}

impl Lane {
    /// The lane of `contact`'s requests about `epoch`.
    pub fn of(contact: crate::store::ContactId, epoch: u64, fetch: bool) -> Self {
        Self {
            contact,
            window: epoch / LANE_EPOCHS,
            fetch,
        }
    }
}

/// A [`LinkOp`] for one relay.
#[derive(Clone)]
pub struct LinkRequest {
    /// The relay.
    pub relay: RelayAddress,
    /// For a deposit, the contact it goes to: a driver that isolates contacts (a Tor
    /// circuit per contact) sends it on that contact's own connection; for a request on a
    /// lane, the lane's contact. `None` for the profile's own requests (fetch, delete,
    /// subscribe on the relay's shared connection).
    pub contact: Option<crate::store::ContactId>,
    /// With per-contact isolation, the connection it must take (the driver gives each lane
    /// its own, and through SOCKS5 its own proxy username); `None`: the relay's shared one.
    pub lane: Option<Lane>,
    /// What to do there.
    pub op: LinkOp,
}

impl std::fmt::Debug for LinkRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkRequest")
            .field("op", &self.op)
            .finish_non_exhaustive()
    }
}

/// Why a deposit did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepositFailure {
    /// The relay could not be reached; nothing was sent.
    Unreachable,
    /// The relay refused with this code.
    Refused(ErrorCode),
    /// The connection failed mid-request: the envelope may or may not be stored.
    Transport,
    /// The relay presented a certificate that does not match the pin of its address
    /// (interception, or the relay's key changed); nothing was sent.
    CertificateMismatch,
    /// The profile's SOCKS5 proxy is unreachable or refused; nothing was sent (never
    /// directly instead).
    ProxyFailed,
    /// Private routing through the profile's own relay failed for the named reason (a
    /// stable name: `own_relay_unreachable`, `forward_key_refused`, an error code's name
    /// such as `forwarding_disabled`); the deposit waits, never sent directly instead.
    PrivateRoute(&'static str),
}

/// What a relay link reports.
#[derive(Clone, Debug)]
pub enum LinkEvent {
    /// The link connected.
    Up,
    /// The link lost its connection (or could not make one).
    Down,
    /// A deposit finished.
    Deposited {
        /// The outbox entry.
        outbox: OutboxId,
        /// Durably stored, or why not.
        result: std::result::Result<(), DepositFailure>,
    },
    /// An envelope arrived (fetched or pushed).
    Delivery {
        /// Its mailbox.
        mailbox: MailboxId,
        /// The relay's id for it.
        id: EnvelopeId,
        /// The envelope.
        envelope: Envelope,
    },
    /// A fetch ended; `ok` is false if it failed part way.
    FetchDone {
        /// The fetch.
        token: FetchToken,
        /// Every page was read.
        ok: bool,
    },
    /// A [`LinkOp::Delete`] finished (or failed).
    Deleted,
    /// A subscription ended (lagged or closed): fetch to catch up.
    Resync,
}

/// Where a test may stop the process as `kill -9` would (tests of crash safety).
#[cfg(feature = "test-hooks")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// After a received message was decrypted, before it is committed.
    BeforeCommit,
    /// After it was committed, before the relay is told to delete it.
    BeforeAck,
}

#[cfg(feature = "test-hooks")]
impl CrashPoint {
    /// Parses `before-commit` / `before-ack`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "before-commit" => Some(Self::BeforeCommit),
            "before-ack" => Some(Self::BeforeAck),
            _ => None,
        }
    }
}

/// How an engine is set up.
#[derive(Clone, Debug, Default)]
pub struct EngineConfig {
    /// The relay this device serves itself (used when the profile configures none).
    pub local_relay: Option<RelayAddress>,
    /// Test hook: abort the process at this point.
    #[cfg(feature = "test-hooks")]
    pub crash_at: Option<CrashPoint>,
    /// The rates of high-risk mode's slots.
    pub traffic: TrafficConfig,
}

/// Whose mailbox a fetch secret opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Contact(ContactId),
    Invite(InviteId),
}

/// A mailbox being watched or fetched.
#[derive(Clone)]
struct Route {
    owner: Owner,
    secret: Opener,
    relay: RelayAddress,
    /// The epoch the mailbox belongs to.
    epoch: u64,
}

struct FetchJob {
    relay: String,
    /// The contacts it fetches, each with the first epoch it fetches of them.
    contacts: Vec<(ContactId, u64)>,
    /// Used one-time invites to retire when this fetch completes.
    retire: Vec<InviteId>,
    /// The catch-up it is part of.
    round: u64,
}

/// One catch-up: its fetches (one per relay, or per lane with isolation), and when the
/// last has ended, where each contact's next catch-up starts.
struct Round {
    pending: usize,
    /// The epoch the round started in.
    epoch: u64,
    contacts: std::collections::BTreeSet<ContactId>,
    /// Per contact, the first epoch of a fetch of it that failed, or that this round left
    /// for the next (a catch-up spread over slots).
    failed_from: BTreeMap<ContactId, u64>,
}

struct SyncWaiter {
    tokens: HashSet<FetchToken>,
    ticket: Ticket,
    all_ok: bool,
}

struct FlushWaiter {
    waiting: HashSet<OutboxId>,
    ticket: Ticket,
}

/// What the engine knows of a relay it has talked to.
struct RelayState {
    address: RelayAddress,
    up: bool,
    /// It went down or failed a fetch since its last catch-up: fetch again when it is up.
    stale: bool,
    /// Its last connection attempt met a certificate that does not match its pin.
    pin_mismatch: bool,
    /// Its last connection attempt failed at the SOCKS5 proxy.
    proxy_failed: bool,
    /// Why its last private-routing deposit failed, if it did (cleared by a deposit that
    /// went through).
    private_route: Option<&'static str>,
}

/// The client engine. See the module documentation.
pub struct Engine {
    store: Store,
    config: EngineConfig,
    rng: ChaCha20Rng,
    now: Time,
    /// Mailboxes by id, for deliveries.
    routes: HashMap<MailboxId, Route>,
    /// Relays by address text (ordered, so outputs are deterministic).
    relays: BTreeMap<String, RelayState>,
    in_flight: HashSet<OutboxId>,
    fetches: HashMap<FetchToken, FetchJob>,
    rounds: HashMap<u64, Round>,
    next_token: u64,
    sync_waiters: Vec<SyncWaiter>,
    flush_waiters: Vec<FlushWaiter>,
    /// The epochs the subscriptions were last set for (see [`Engine::watched_epochs`]).
    subscribed: Option<Vec<u64>>,
    /// Used one-time invites whose contact was heard from on its own mailboxes (see
    /// `mailboxes`); not stored: after a restart the next message marks them again.
    used_invites: HashSet<InviteId>,
    acks_in_flight: usize,
    requests: VecDeque<LinkRequest>,
    events: VecDeque<Event>,
    replies: VecDeque<(Ticket, Result<Response>)>,
    /// When deposits and fetches happen (see `schedule`).
    schedule: schedule::Schedule,
    /// High-risk mode: `sync` commands answered after the next fetch slot.
    sync_at_slot: Vec<Ticket>,
    /// High-risk mode: the relays in use were told to push nothing.
    subscriptions_cleared: bool,
    /// The profile's `isolation` setting (normal mode follows it; high-risk mode isolates
    /// whatever it says).
    isolation_setting: bool,
    /// With isolation in normal mode, what each fetch lane is subscribed to (its
    /// relationship's mailboxes of the epochs of its window), by relay and lane.
    lane_subs: BTreeMap<(String, Lane), (RelayAddress, Vec<Opener>)>,
    /// Lanes whose first subscription waits until this time (a random delay, so that the
    /// connections of several relationships do not open at one moment); until then they
    /// are in `lane_subs` but nothing was sent on them.
    pending_subs: BTreeMap<(String, Lane), Time>,
    /// Requests held back until their time (isolated catch-up fetches, each after a random
    /// delay), in time order.
    later: BTreeMap<(Time, u64), LinkRequest>,
    later_seq: u64,
    /// With isolation in normal mode: when a catch-up cut short (or failed part way) goes
    /// on, after a random delay.
    catch_up_at: Option<Time>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("now", &self.now)
            .field("relays", &self.relays.len())
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine on an open store. `seed` seeds every random draw it makes; it starts
    /// working at once: it sweeps expired messages, subscribes, catches up on every
    /// mailbox and sends the whole outbox (the user just started hush).
    pub fn new(store: Store, config: EngineConfig, seed: [u8; 32], now: Time) -> Result<Self> {
        let mut rng = ChaCha20Rng::from_seed(seed);
        // The schedule's own generator: nothing the user does draws from it (see `schedule`).
        let mut schedule_seed = [0u8; 32];
        rand_core::Rng::fill_bytes(&mut rng, &mut schedule_seed);
        let high_risk = commands::stored_high_risk(&store)?;
        let isolation_setting = commands::stored_isolation(&store)?;
        let schedule = schedule::Schedule::new(config.traffic, high_risk, schedule_seed, now);
        let mut engine = Self {
            store,
            config,
            rng,
            now,
            routes: HashMap::new(),
            relays: BTreeMap::new(),
            in_flight: HashSet::new(),
            fetches: HashMap::new(),
            rounds: HashMap::new(),
            next_token: 1,
            sync_waiters: Vec::new(),
            flush_waiters: Vec::new(),
            subscribed: None,
            used_invites: HashSet::new(),
            acks_in_flight: 0,
            requests: VecDeque::new(),
            events: VecDeque::new(),
            replies: VecDeque::new(),
            schedule,
            sync_at_slot: Vec::new(),
            subscriptions_cleared: false,
            isolation_setting,
            lane_subs: BTreeMap::new(),
            pending_subs: BTreeMap::new(),
            later: BTreeMap::new(),
            later_seq: 0,
            catch_up_at: None,
        };
        engine.sweep_expired()?;
        engine.retire_expired_invites()?;
        engine.refresh_subscriptions()?;
        engine.catch_up(None)?;
        engine.flush_due_by(None, u64::MAX)?;
        Ok(engine)
    }

    /// The relay this device must serve itself: the configured local relay, unless the
    /// profile names a relay of its own.
    pub fn local_relay(&self) -> Result<Option<RelayAddress>> {
        if self.configured_relay()?.is_some() {
            return Ok(None);
        }
        Ok(self.config.local_relay.clone())
    }

    /// Handles a front end's command; its answer comes out of [`Engine::poll_reply`] with
    /// `ticket`, at once or when the relays have answered (sync, flush).
    pub fn handle_command(&mut self, now: Time, ticket: Ticket, cmd: Command) {
        self.now = now;
        if let Some(result) = self.command(ticket, cmd) {
            self.replies.push_back((ticket, result));
        }
    }

    /// Handles what a relay link reported.
    pub fn handle_link_event(
        &mut self,
        now: Time,
        relay: &RelayAddress,
        ev: LinkEvent,
    ) -> Result<()> {
        self.now = now;
        self.link_event(relay, ev)
    }

    /// Does what is due by `now`: deletes expired messages, follows an epoch change and
    /// retries deposits whose backoff has passed.
    pub fn handle_timeout(&mut self, now: Time) -> Result<()> {
        self.now = now;
        self.sweep_expired()?;
        let retired = self.retire_expired_invites()?;
        if retired || self.subscribed.as_ref() != Some(&self.watched_epochs()) {
            self.refresh_subscriptions()?;
        }
        self.release_held(now)?;
        self.flush_due(None)?;
        if self.schedule.take_deposit_slot(now) {
            self.deposit_slot()?;
        }
        if self.schedule.take_fetch_slot(now) {
            self.fetch_slot()?;
        }
        Ok(())
    }

    /// Why deposits to some relay wait under private routing, if they do.
    fn private_route_waiting(&self) -> Option<&'static str> {
        self.relays.values().find_map(|r| r.private_route)
    }

    /// The profile's own relay: the one it fetches from and its invites name (the
    /// configured relay, or the built-in one). Private routing forwards through it.
    #[must_use]
    pub fn own_relay(&self) -> Option<RelayAddress> {
        self.home_relay().ok()
    }

    /// The next request for a relay link.
    pub fn poll_link_request(&mut self) -> Option<LinkRequest> {
        self.requests.pop_front()
    }

    /// The next event for front ends.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next answer to a command.
    pub fn poll_reply(&mut self) -> Option<(Ticket, Result<Response>)> {
        self.replies.pop_front()
    }

    /// When [`Engine::handle_timeout`] must be called next: the next epoch (or, early in
    /// one, the end of its grace for the previous one), the next deposit retry or the next
    /// disappearing deadline, whichever is first.
    pub fn poll_timeout(&self) -> Result<Time> {
        let epoch_start = self.now.epoch() * EPOCH_SECONDS;
        let grace_end = Time::from_unix_secs(epoch_start + PREVIOUS_EPOCH_GRACE.as_secs());
        let mut next = Time::from_unix_secs(epoch_start + EPOCH_SECONDS);
        if self.now < grace_end {
            next = grace_end;
        }
        // In high-risk mode the outbox waits for slots; in normal mode an entry waits for its
        // paced release too.
        if !self.schedule.high_risk() {
            for (id, at) in self.store.db().outbox_schedule()? {
                if !self.in_flight.contains(&id) {
                    let at = Time::from_unix_secs(at).max(self.schedule.release_of(id));
                    next = next.min(at.max(self.now));
                }
            }
        }
        if let Some(at) = self.store.db().next_expiry()? {
            next = next.min(Time::from_unix_secs(at).max(self.now));
        }
        if let Some(at) = self.schedule.next_due() {
            next = next.min(at.max(self.now));
        }
        if let Some(at) = self.next_held() {
            next = next.min(at.max(self.now));
        }
        Ok(next)
    }

    /// The store (tests look at what a step left in it).
    #[cfg(test)]
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Acknowledgements sent to relays and not answered yet. A process about to exit waits
    /// for them (bounded): otherwise the relay keeps, and delivers again, what is committed.
    pub fn acks_in_flight(&self) -> usize {
        self.acks_in_flight
    }

    fn push_request(&mut self, relay: &RelayAddress, op: LinkOp) {
        self.push_request_on(relay, None, None, op);
    }

    /// Per-contact isolation is on: always in high-risk mode, and in normal mode when the
    /// profile's setting says so (then each fetch lane holds its own subscription).
    fn isolating(&self) -> bool {
        self.schedule.high_risk() || self.isolation_setting
    }

    /// Sends `req` at `at` (at once if that has passed).
    fn push_request_at(&mut self, at: Time, req: LinkRequest) {
        if at <= self.now {
            self.requests.push_back(req);
            return;
        }
        self.later_seq += 1;
        self.later.insert((at, self.later_seq), req);
    }

    fn push_request_on(
        &mut self,
        relay: &RelayAddress,
        contact: Option<crate::store::ContactId>,
        lane: Option<Lane>,
        op: LinkOp,
    ) {
        let req = self.request(relay, contact, lane, op);
        self.requests.push_back(req);
    }

    /// A request for `relay`, which is from now on a relay in use.
    fn request(
        &mut self,
        relay: &RelayAddress,
        contact: Option<crate::store::ContactId>,
        lane: Option<Lane>,
        op: LinkOp,
    ) -> LinkRequest {
        self.relays
            .entry(relay.to_string())
            .or_insert_with(|| RelayState {
                address: relay.clone(),
                up: false,
                stale: false,
                pin_mismatch: false,
                proxy_failed: false,
                private_route: None,
            });
        LinkRequest {
            relay: relay.clone(),
            contact,
            lane,
            op,
        }
    }

    fn emit(&mut self, event: Event) {
        self.events.push_back(event);
    }

    /// Deletes expired disappearing messages, with the file transfers they offered and the
    /// partial files of those not saved yet (a file the user saved is theirs and stays).
    /// secure_delete overwrites them; the checkpoint moves that into the main database file.
    fn sweep_expired(&mut self) -> Result<()> {
        let now = self.now.unix_secs();
        for (dir, name, id) in self.store.db().delete_expired_files(now)? {
            let part = crate::files::driver::part_path(std::path::Path::new(&dir), &name, id);
            // Absent when nothing was fetched yet.
            let _ = std::fs::remove_file(part);
        }
        if self.store.db().delete_expired(now)? > 0 {
            self.store.checkpoint()?;
        }
        Ok(())
    }

    fn link_event(&mut self, relay: &RelayAddress, ev: LinkEvent) -> Result<()> {
        match ev {
            LinkEvent::Deposited { outbox, result } => {
                let waited = self.private_route_waiting();
                if let Err(why) = result
                    && let Some(r) = self.relays.get_mut(&relay.to_string())
                {
                    match why {
                        DepositFailure::CertificateMismatch => r.pin_mismatch = true,
                        DepositFailure::ProxyFailed => r.proxy_failed = true,
                        DepositFailure::PrivateRoute(why) => r.private_route = Some(why),
                        _ => {}
                    }
                }
                if result.is_ok()
                    && let Some(r) = self.relays.get_mut(&relay.to_string())
                {
                    r.proxy_failed = false;
                    r.private_route = None;
                }
                let waiting = self.private_route_waiting();
                if waiting != waited {
                    self.emit(Event::PrivateRoute {
                        waiting: waiting.map(str::to_owned),
                    });
                }
                self.on_deposited(outbox, result)?;
            }
            LinkEvent::Delivery {
                mailbox,
                id,
                envelope,
            } => self.on_delivery(&mailbox, id, &envelope)?,
            LinkEvent::Deleted => {
                self.acks_in_flight = self.acks_in_flight.saturating_sub(1);
            }
            LinkEvent::FetchDone { token, ok } => self.on_fetch_done(token, ok)?,
            LinkEvent::Up => {
                let key = relay.to_string();
                let stale = match self.relays.get_mut(&key) {
                    Some(r) => {
                        r.up = true;
                        r.pin_mismatch = false;
                        r.proxy_failed = false;
                        std::mem::take(&mut r.stale)
                    }
                    None => false,
                };
                self.emit(Event::Relay { up: true });
                // Catch up on what arrived while this relay was away, and send what waited.
                // Fetches asked for while the link was still connecting were served by it:
                // only a relay that went down or failed a fetch needs another round.
                if stale {
                    self.catch_up(Some(relay))?;
                }
                self.flush_due_by(Some(relay), u64::MAX)?;
            }
            LinkEvent::Down => {
                if let Some(r) = self.relays.get_mut(&relay.to_string()) {
                    r.up = false;
                    r.stale = true;
                }
                self.emit(Event::Relay { up: false });
            }
            LinkEvent::Resync => {
                self.catch_up(None)?;
            }
        }
        Ok(())
    }
}
