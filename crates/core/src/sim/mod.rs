//! The simulated world: several engines, in-memory relays that implement the wire
//! semantics, a network between them and a simulated clock, all driven by one seeded
//! generator, so a run is fully deterministic and takes no real time (no sleeps, no
//! sockets). Stores are real SQLCipher files (with a cheap key derivation).
//!
//! The world runs in steps; each step is one thing happening: an engine's queued outputs
//! leave it, a message crosses the network and is handled, or a timeout fires. A test can
//! stop (crash) a node between any two steps: the engine is dropped with whatever it had
//! not sent, and so is every message on its way to or from it, as `kill -9` would.
//!
//! It records what a relay and a network observer would see ([`Observation`]: time,
//! connection, command, size), so traffic-shape properties can be proven here.
//!
//! Tests: `tests` (delivery, catch-up, crashes, faults), `lifecycle_tests` (links that
//! make no new relationship, invite retirement, deleting and blocking contacts, send order)
//! and `traffic_tests` (what an observer learns: high-risk slots and cover, pacing), with
//! the Kolmogorov–Smirnov test of `stats`, and `isolation_tests` (per-contact isolation in
//! normal mode: subscriptions and catch-up per lane).

mod isolation_tests;
mod lifecycle_tests;
mod net;
mod relay;
mod stats;
mod tests;
mod traffic_tests;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use hush_proto::{RelayAddress, SpkiPin};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use crate::api::{Command, Event, Response};
use crate::engine::{Engine, EngineConfig, Lane, LinkEvent, LinkOp, Ticket, Time};
use crate::error::Result;
use crate::profile::Profile;
use crate::store::{KdfCost, Store};

pub(crate) use relay::SimRelay;

const PASSPHRASE: &[u8] = "correct horse 电池 staple".as_bytes();

/// Faults the network and relays inject, each a probability in per mille.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Faults {
    /// A pushed envelope is lost (it stays stored and is fetched later).
    pub(crate) drop_push: u32,
    /// A pushed envelope arrives twice.
    pub(crate) duplicate_push: u32,
    /// A deposit is stored but its acknowledgement is lost (the client sees a transport
    /// failure and deposits again).
    pub(crate) drop_deposit_ack: u32,
    /// Extra one-way latency, uniform in 0..=this many ms (reorders messages).
    pub(crate) jitter_ms: u64,
}

/// Which way a frame went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Direction {
    ToRelay,
    ToClient,
}

/// One thing a relay operator or a network observer sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Observation {
    pub(crate) at: Time,
    /// The relay (index in the world).
    pub(crate) relay: usize,
    /// The connection: one per (node, relay) link and reconnect.
    pub(crate) connection: u64,
    pub(crate) direction: Direction,
    /// The command or response kind.
    pub(crate) kind: &'static str,
    /// Bytes on the wire (whole frames).
    pub(crate) bytes: usize,
}

/// A node's link to one relay, as the network sees it.
struct SimLink {
    connection: u64,
    up: bool,
    /// The mailboxes it asked to be pushed, kept across reconnects as a real link does.
    subscribed: Vec<crate::engine::Opener>,
}

pub(crate) struct Node {
    _dir: tempfile::TempDir,
    profile: Profile,
    engine: Option<Engine>,
    replies: BTreeMap<Ticket, Result<Response>>,
    pub(crate) events: Vec<Event>,
    next_ticket: u64,
    /// By relay and lane (per-contact isolation gives each lane a connection of its own).
    links: BTreeMap<(String, Option<Lane>), SimLink>,
    /// Seconds this node's clock is ahead of the world's (negative: behind).
    pub(crate) skew_secs: i64,
}

enum Msg {
    ToRelay {
        node: usize,
        relay: usize,
        connection: u64,
        op: LinkOp,
    },
    ToNode {
        node: usize,
        relay: RelayAddress,
        connection: u64,
        ev: LinkEvent,
    },
}

/// The world. See the module documentation.
pub(crate) struct World {
    pub(crate) now: Time,
    rng: ChaCha20Rng,
    pub(crate) relays: Vec<SimRelay>,
    pub(crate) nodes: Vec<Node>,
    net: BTreeMap<(Time, u64), Msg>,
    seq: u64,
    next_connection: u64,
    pub(crate) faults: Faults,
    pub(crate) log: Vec<Observation>,
    /// Steps taken so far.
    pub(crate) steps: u64,
    /// Every deposit a node's link was given: (world time, node).
    pub(crate) deposit_attempts: Vec<(Time, usize)>,
    /// Every request a node's engine emitted: (node, is a deposit, the contact it names).
    pub(crate) request_contacts: Vec<(usize, bool, Option<crate::store::ContactId>)>,
    /// Nodes whose engine has outputs waiting to leave it.
    unpumped: VecDeque<usize>,
    /// Which node opened each connection (for tests: an observer sees only connections).
    pub(crate) connection_node: BTreeMap<u64, usize>,
    /// Every mailbox id whose secret a connection presented (fetch, delete, subscribe).
    pub(crate) presented: Vec<(u64, hush_proto::MailboxId)>,
    /// Every mailbox id a connection deposited to (drops left out).
    pub(crate) deposited: Vec<(u64, hush_proto::MailboxId)>,
}

/// One-way network latency before jitter.
const LATENCY: Duration = Duration::from_millis(20);
/// How far ahead `settle` fires timeouts: past normal mode's pacing of a long message and a
/// receipt's delay.
const SETTLE_HORIZON: Duration = Duration::from_secs(30);
/// How long a link waits before reconnecting to a relay that came back.
const RECONNECT: Duration = Duration::from_millis(500);

impl World {
    /// A world at `start` with `relays` relays and nothing else.
    pub(crate) fn new(seed: u64, start: Time, relays: usize) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let relays = (0..relays)
            .map(|i| {
                let mut pin = [0u8; 32];
                rng.fill_bytes(&mut pin);
                let addr = RelayAddress {
                    pin: SpkiPin(pin),
                    host: hush_proto::Host::Name(format!("relay{i}.example")),
                    port: 4433,
                };
                SimRelay::new(addr)
            })
            .collect();
        Self {
            now: start,
            rng,
            relays,
            nodes: Vec::new(),
            net: BTreeMap::new(),
            seq: 0,
            next_connection: 1,
            faults: Faults::default(),
            log: Vec::new(),
            steps: 0,
            deposit_attempts: Vec::new(),
            request_contacts: Vec::new(),
            unpumped: VecDeque::new(),
            connection_node: BTreeMap::new(),
            presented: Vec::new(),
            deposited: Vec::new(),
        }
    }

    /// Adds a node with a new profile whose invites point to relay `home`.
    pub(crate) fn add_node(&mut self, home: usize) -> usize {
        let dir = tempfile::tempdir_in(scratch()).unwrap_or_else(|e| fail(&e));
        let profile = Profile::new(dir.path(), "sim").unwrap_or_else(|e| fail(&e));
        let store = Store::create_with_cost(&profile, PASSPHRASE, KdfCost::TEST)
            .unwrap_or_else(|e| fail(&e));
        store
            .db()
            .set_setting(
                crate::store::settings::Setting::Relay,
                &self.relays[home].address.to_string(),
            )
            .unwrap_or_else(|e| fail(&e));
        drop(store);
        self.nodes.push(Node {
            _dir: dir,
            profile,
            engine: None,
            replies: BTreeMap::new(),
            events: Vec::new(),
            next_ticket: 1,
            links: BTreeMap::new(),
            skew_secs: 0,
        });
        let n = self.nodes.len() - 1;
        self.start_node(n);
        n
    }

    /// Starts (or restarts) a node's engine from its store.
    pub(crate) fn start_node(&mut self, n: usize) {
        let store = Store::open(&self.nodes[n].profile, PASSPHRASE).unwrap_or_else(|e| fail(&e));
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let now = self.node_now(n);
        let engine =
            Engine::new(store, EngineConfig::default(), seed, now).unwrap_or_else(|e| fail(&e));
        self.nodes[n].engine = Some(engine);
        self.unpumped.push_back(n);
    }

    /// Stops a node as `kill -9` would: what its engine had not sent is lost, and so is
    /// every message on its way to or from it.
    pub(crate) fn crash(&mut self, n: usize) {
        self.nodes[n].engine = None;
        self.nodes[n].links.clear();
        self.nodes[n].replies.clear();
        self.net.retain(|_, m| match m {
            Msg::ToRelay { node, .. } | Msg::ToNode { node, .. } => *node != n,
        });
        for r in &mut self.relays {
            r.forget_node(n);
        }
        self.unpumped.retain(|x| *x != n);
    }

    /// Takes a relay down (its stored envelopes survive, as a durable store's do).
    pub(crate) fn relay_down(&mut self, r: usize) {
        self.relays[r].up = false;
        let key = self.relays[r].address.to_string();
        let addr = self.relays[r].address.clone();
        for n in 0..self.nodes.len() {
            let mut down = Vec::new();
            for ((k, lane), link) in &mut self.nodes[n].links {
                if *k == key && link.up {
                    link.up = false;
                    // Only the relay's shared link reports its state, as in the driver.
                    if lane.is_none() {
                        down.push(link.connection);
                    }
                }
            }
            for connection in down {
                self.send_to_node(n, &addr, connection, LinkEvent::Down);
            }
        }
        self.relays[r].forget_subscriptions();
    }

    /// Brings a relay back; links reconnect (and subscribe again) shortly after.
    pub(crate) fn relay_up(&mut self, r: usize) {
        self.relays[r].up = true;
        let key = self.relays[r].address.to_string();
        for n in 0..self.nodes.len() {
            let lanes: Vec<Option<Lane>> = self.nodes[n]
                .links
                .keys()
                .filter(|(k, _)| *k == key)
                .map(|(_, lane)| *lane)
                .collect();
            if self.nodes[n].engine.is_some() {
                for lane in lanes {
                    self.connect(n, r, lane, RECONNECT);
                }
            }
        }
    }

    /// Sends a command to a node and runs the world until it is answered (at most `within`
    /// of simulated time).
    pub(crate) fn command(&mut self, n: usize, cmd: Command) -> Result<Response> {
        let ticket = Ticket(self.nodes[n].next_ticket);
        self.nodes[n].next_ticket += 1;
        let now = self.node_now(n);
        self.engine(n).handle_command(now, ticket, cmd);
        self.unpumped.push_back(n);
        let deadline = self.now.plus(Duration::from_secs(120));
        loop {
            self.pump_all();
            if let Some(r) = self.nodes[n].replies.remove(&ticket) {
                return r;
            }
            if !self.step_until(deadline) {
                fail(&"a command was not answered in 120 simulated seconds");
            }
        }
    }

    /// Runs until nothing is on the network and no timeout is due within `d`, or `d` has
    /// passed.
    pub(crate) fn run_for(&mut self, d: Duration) {
        self.run_until(self.now.plus(d));
    }

    /// Runs every step due by `deadline`, then sets the clock to it (a deadline already
    /// passed only runs what is due now).
    pub(crate) fn run_until(&mut self, deadline: Time) {
        while self.step_until(deadline) {}
        self.now = self.now.max(deadline);
    }

    /// Runs until the network is quiet and no timeout is due within [`SETTLE_HORIZON`]
    /// (paced deposits and delayed receipts leave within it; epochs, retries and timers
    /// further off are left for later), at most 100 000 steps.
    pub(crate) fn settle(&mut self) {
        for _ in 0..100_000 {
            self.pump_all();
            let net = self.net.first_key_value().map(|(&(at, _), _)| at);
            let soon = self.now.plus(SETTLE_HORIZON);
            let timeout = (0..self.nodes.len())
                .filter_map(|n| self.timeout_of(n))
                .min()
                .filter(|t| *t <= soon);
            let Some(at) = [net, timeout].into_iter().flatten().min() else {
                return;
            };
            self.now = self.now.max(at);
            self.step();
        }
        fail(&"the world did not settle");
    }

    /// Takes one step if one is due by `deadline`; `false` if none is.
    pub(crate) fn step_until(&mut self, deadline: Time) -> bool {
        if !self.unpumped.is_empty() {
            self.step();
            return true;
        }
        match self.next_due() {
            Some(at) if at <= deadline => {
                self.now = self.now.max(at);
                self.step();
                true
            }
            _ => false,
        }
    }

    fn next_due(&self) -> Option<Time> {
        let net = self.net.first_key_value().map(|(&(at, _), _)| at);
        let timeouts = (0..self.nodes.len()).filter_map(|n| self.timeout_of(n));
        net.into_iter().chain(timeouts).min()
    }

    /// When node `n`'s engine wants its next timeout, in world time.
    fn timeout_of(&self, n: usize) -> Option<Time> {
        let at = self.nodes[n].engine.as_ref()?.poll_timeout().ok()?;
        let ms = at.unix_millis() as i128 - i128::from(self.nodes[n].skew_secs) * 1000;
        Some(Time::from_unix_millis(
            u64::try_from(ms.max(0)).unwrap_or(0),
        ))
    }

    /// One step: a node's outputs leave it, or the next message is handled, or the next
    /// timeout fires.
    pub(crate) fn step(&mut self) {
        self.steps += 1;
        if let Some(n) = self.unpumped.pop_front() {
            self.pump(n);
            return;
        }
        let net_at = self.net.first_key_value().map(|(&(at, _), _)| at);
        let timeout = (0..self.nodes.len())
            .filter_map(|n| Some((self.timeout_of(n)?, n)))
            .min();
        match (net_at, timeout) {
            (Some(at), Some((t, n))) if t < at && t <= self.now => self.fire_timeout(n),
            (Some(at), _) if at <= self.now => {
                if let Some((_, msg)) = self.net.pop_first() {
                    self.deliver(msg);
                }
            }
            (_, Some((t, n))) if t <= self.now => self.fire_timeout(n),
            _ => {}
        }
    }

    fn fire_timeout(&mut self, n: usize) {
        let now = self.node_now(n);
        self.engine(n)
            .handle_timeout(now)
            .unwrap_or_else(|e| fail(&e));
        self.unpumped.push_back(n);
    }

    fn pump_all(&mut self) {
        while let Some(n) = self.unpumped.pop_front() {
            self.pump(n);
        }
    }

    /// The time on node `n`'s clock.
    pub(crate) fn node_now(&self, n: usize) -> Time {
        let ms = self.now.unix_millis() as i128 + i128::from(self.nodes[n].skew_secs) * 1000;
        Time::from_unix_millis(u64::try_from(ms.max(0)).unwrap_or(u64::MAX))
    }

    fn engine(&mut self, n: usize) -> &mut Engine {
        self.nodes[n]
            .engine
            .as_mut()
            .unwrap_or_else(|| fail(&"the node is down"))
    }

    /// Moves a node's engine outputs: requests onto the network, events and replies to the
    /// node's record.
    fn pump(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        let Some(engine) = node.engine.as_mut() else {
            return;
        };
        let mut requests = Vec::new();
        while let Some(r) = engine.poll_link_request() {
            requests.push(r);
        }
        while let Some(ev) = engine.poll_event() {
            node.events.push(ev);
        }
        while let Some((ticket, r)) = engine.poll_reply() {
            node.replies.insert(ticket, r);
        }
        for req in requests {
            let deposit = matches!(req.op, LinkOp::Deposit { .. });
            self.request_contacts.push((n, deposit, req.contact));
            self.link_send(n, &req.relay, req.lane, req.op);
        }
    }
}

/// Where simulated stores live: memory-backed if this machine has it (many fsyncs).
fn scratch() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// The world's own failures are test failures.
#[allow(clippy::panic)] // the simulated world exists only in tests: a failure here fails the test
fn fail(e: &dyn std::fmt::Display) -> ! {
    panic!("simulated world: {e}")
}
