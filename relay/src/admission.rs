//! Admission: which connections the relay takes, and how much one source may deposit.
//!
//! Owns: the connection slots (a global count bounded by `limits.max_connections` and by the
//! memory ceiling), the per-source connection count, eviction of the longest-idle connection
//! when every slot is taken, the per-source deposit budget per time window, and the worst-case
//! memory model that turns `limits.max_memory_mib` into a connection count. A *source* is an
//! IPv4 address or an IPv6 /64 (a v4-mapped IPv6 address is its IPv4 address). Loopback
//! peers are, by default (`limits.loopback_exempt`), no source at all: on loopback come local
//! forwarders that carry many clients (a Tor onion service, a forwarding relay, the hush
//! client's own embedded relay), so per-source limits do not apply to them; the global slots,
//! eviction and the memory ceiling still do.
//!
//! The policy is the sans-IO [`Admission`] state machine (time is an argument, in
//! milliseconds); [`Gate`] is its thread-safe driver that any acceptor (QUIC, TCP) consults
//! with the peer's address and gets a [`Ticket`] that lives as long as the connection.
//! Must never log, persist or expose a source (not in errors, not in metrics: [`Source`]'s
//! `Debug` is redacted), and must forget a source once it has no live connection and its
//! budget window has ended (the server calls [`Gate::forget_ended_windows`] every 2 s).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use hush_proto::{ENVELOPE_LEN, FRAME_LEN, MAX_SECRETS};
use tokio::sync::Notify;

use crate::config::{Config, Limits};

/// Frames of unread request data a connection may have in flight (its QUIC receive window).
pub const RECEIVE_WINDOW_FRAMES: u64 = 16;
/// Frames of unacknowledged response data the relay buffers per connection (its send window).
pub const SEND_WINDOW_FRAMES: u64 = 16;
/// Envelopes one store read of a fetch holds; a fetch of up to 256 envelopes reads in pages.
pub const FETCH_PAGE: usize = 32;
/// Estimated fixed cost of one connection: QUIC and TLS state, its task, its rate limiter.
const CONNECTION_BASE_BYTES: u64 = 48 << 10;
/// Estimated cost of one request stream beyond its frame: task, buffers, decoded request.
const STREAM_BYTES: u64 = 4 << 10;
/// Estimated cost of one queued push beyond its envelope (pointer, channel node).
const PUSH_OVERHEAD_BYTES: u64 = 128;
/// Estimated cost of one subscribed mailbox in the push hub (map entry, subscriber handle).
const SUBSCRIBED_MAILBOX_BYTES: u64 = 96;
/// Estimated memory of the process before any connection: runtime, threads, tables.
const PROCESS_BASE_BYTES: u64 = 48 << 20;
/// Estimated cost of one remembered forwarded request at a destination (its ephemeral key
/// and its answer, each in a set or map and an order queue).
const FORWARD_MEMORY_BYTES: u64 = 160;
/// Deposits the fan-out may hold between the committer and the subscribers' queues.
pub const FANOUT_BACKLOG: usize = 4096;
/// At most this many sources are remembered for their deposit budget per connection slot
/// (sources without a live connection whose window has not ended).
const BUDGETS_PER_SLOT: usize = 2;

/// Worst-case memory of one connection under `limits`, in bytes: every window full, every
/// stream holding a frame, every subscription covering the most mailboxes a request names,
/// a full push queue of envelopes no other queue shares, and one fetch page.
#[must_use]
pub fn connection_bytes(limits: &Limits) -> u64 {
    let frame = FRAME_LEN as u64;
    let envelope = ENVELOPE_LEN as u64;
    CONNECTION_BASE_BYTES
        + (RECEIVE_WINDOW_FRAMES + SEND_WINDOW_FRAMES) * frame
        + u64::from(limits.max_streams_per_connection.0) * (frame + STREAM_BYTES)
        + u64::from(limits.max_subscriptions_per_connection.0)
            * MAX_SECRETS as u64
            * SUBSCRIBED_MAILBOX_BYTES
        + u64::from(limits.max_queued_pushes_per_connection.0) * (envelope + PUSH_OVERHEAD_BYTES)
        + FETCH_PAGE as u64 * envelope
}

/// Memory the relay needs before any connection, in bytes: the process, the database cache
/// (twice: a scrub opens a second database), the committer's queue, the fan-out backlog,
/// a scrub's copy buffer and the memory of forwarded requests.
#[must_use]
pub fn fixed_bytes(config: &Config) -> u64 {
    let envelope = ENVELOPE_LEN as u64;
    let commit_queue = u64::from(config.storage.max_commit_batch.0) * 4 * (envelope + 256);
    let scrub_buffer = 2 * crate::store::SCRUB_CHUNK as u64 * (envelope + 64);
    PROCESS_BASE_BYTES
        + 2 * config.storage.cache_mib.0.saturating_mul(1 << 20)
        + commit_queue
        + FANOUT_BACKLOG as u64 * envelope
        + scrub_buffer
        + u64::from(config.forwarding.remembered_requests.0) * FORWARD_MEMORY_BYTES
}

/// Connections the relay admits: `limits.max_connections`, or fewer if their worst case
/// would not fit under `limits.max_memory_mib` beside the fixed parts.
///
/// # Errors
/// A message for the operator if not even one connection fits.
pub fn connection_slots(config: &Config) -> Result<u32, String> {
    let ceiling = config.limits.max_memory_mib.0.saturating_mul(1 << 20);
    let fixed = fixed_bytes(config);
    let per = connection_bytes(&config.limits);
    let room = ceiling.saturating_sub(fixed) / per;
    if room == 0 {
        return Err(format!(
            "limits.max_memory_mib = {} leaves no room for a connection: the relay needs {} MiB \
             before any connection (storage.cache_mib, storage.max_commit_batch) and {} KiB per \
             connection (limits.max_streams_per_connection, \
             limits.max_queued_pushes_per_connection)",
            config.limits.max_memory_mib.0,
            fixed.div_ceil(1 << 20),
            per.div_ceil(1 << 10)
        ));
    }
    Ok(config
        .limits
        .max_connections
        .0
        .min(u32::try_from(room).unwrap_or(u32::MAX)))
}

/// Where a connection comes from, as far as fairness goes: an IPv4 address or an IPv6 /64.
/// Never logged: `Debug` shows nothing of it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source(u128);

impl Source {
    /// The source of a peer at `ip`.
    #[must_use]
    pub fn of(ip: IpAddr) -> Self {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        match ip {
            // Tagged apart from every IPv6 /64 prefix (which occupy the high 64 bits).
            IpAddr::V4(v4) => Self((1 << 32) | u128::from(u32::from(v4))),
            IpAddr::V6(v6) => Self((u128::from(v6) >> 64) << 64),
        }
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Source(..)")
    }
}

/// Identifies an admitted connection inside [`Admission`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its source has `max_connections_per_source` connections already.
    SourceFull,
    /// Every slot is taken and no connection has been idle long enough to evict.
    RelayFull,
}

/// An admitted connection, and the one it displaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// The new connection.
    pub id: ConnId,
    /// The longest-idle connection, to be closed now to free the slot.
    pub evict: Option<ConnId>,
}

/// The settings [`Admission`] enforces.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Connection slots in total.
    pub slots: u32,
    /// Connections per source.
    pub per_source: u32,
    /// Idle time (ms) after which a connection may be evicted for a newcomer.
    pub evict_after_ms: u64,
    /// Deposits per source per window.
    pub deposits_per_window: u32,
    /// Window length (ms).
    pub window_ms: u64,
}

impl Policy {
    /// The policy of `limits` with `slots` connection slots (see [`connection_slots`]).
    #[must_use]
    pub fn new(limits: &Limits, slots: u32) -> Self {
        Self {
            slots,
            per_source: limits.max_connections_per_source.0,
            evict_after_ms: limits.evict_idle_after_secs.0.saturating_mul(1000),
            deposits_per_window: limits.source_deposits_per_window.0,
            window_ms: limits.source_window_secs.0.saturating_mul(1000),
        }
    }
}

struct Conn {
    source: Option<Source>,
    last_active: u64,
}

/// A source's deposits in its current window.
struct Window {
    start: u64,
    used: u32,
}

/// The admission policy as a state machine. Time is milliseconds on any monotonic clock.
pub struct Admission {
    policy: Policy,
    conns: HashMap<ConnId, Conn>,
    /// (last_active, id): the first entry is the longest-idle connection.
    idle: BTreeSet<(u64, ConnId)>,
    per_source: HashMap<Source, u32>,
    windows: HashMap<Source, Window>,
    next: u64,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl Admission {
    /// An empty relay under `policy`.
    #[must_use]
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            conns: HashMap::new(),
            idle: BTreeSet::new(),
            per_source: HashMap::new(),
            windows: HashMap::new(),
            next: 0,
        }
    }

    /// Live connections.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Sources remembered (with a live connection or an open budget window).
    #[must_use]
    pub fn sources_remembered(&self) -> usize {
        let mut n = self.per_source.len();
        n += self
            .windows
            .keys()
            .filter(|s| !self.per_source.contains_key(s))
            .count();
        n
    }

    /// A connection from `source` (`None`: exempt from per-source limits) asks for a slot
    /// at `now`.
    ///
    /// # Errors
    /// [`Refusal`] if it is not admitted (nothing changes then).
    pub fn handle_open(&mut self, source: Option<Source>, now: u64) -> Result<Admitted, Refusal> {
        if let Some(src) = source {
            let from_source = self.per_source.get(&src).copied().unwrap_or(0);
            if from_source >= self.policy.per_source {
                return Err(Refusal::SourceFull);
            }
        }
        let mut evict = None;
        if self.conns.len() >= self.policy.slots as usize {
            let Some(&(last, victim)) = self.idle.first() else {
                return Err(Refusal::RelayFull);
            };
            if now.saturating_sub(last) < self.policy.evict_after_ms {
                return Err(Refusal::RelayFull);
            }
            self.handle_close(victim);
            evict = Some(victim);
        }
        let id = ConnId(self.next);
        self.next += 1;
        self.conns.insert(
            id,
            Conn {
                source,
                last_active: now,
            },
        );
        self.idle.insert((now, id));
        if let Some(src) = source {
            *self.per_source.entry(src).or_insert(0) += 1;
        }
        Ok(Admitted { id, evict })
    }

    /// Connection `id` made a request at `now`: it is not idle.
    pub fn handle_request(&mut self, id: ConnId, now: u64) {
        if let Some(c) = self.conns.get_mut(&id) {
            self.idle.remove(&(c.last_active, id));
            c.last_active = c.last_active.max(now);
            self.idle.insert((c.last_active, id));
        }
    }

    /// Connection `id` closed (or was evicted). Unknown ids are ignored.
    pub fn handle_close(&mut self, id: ConnId) {
        let Some(c) = self.conns.remove(&id) else {
            return;
        };
        self.idle.remove(&(c.last_active, id));
        if let Some(src) = c.source
            && let Some(n) = self.per_source.get_mut(&src)
        {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&src);
            }
        }
    }

    /// `source` wants to deposit at `now`: charges its window's budget.
    ///
    /// # Errors
    /// The milliseconds until its window ends, if the budget is spent.
    pub fn handle_deposit(&mut self, source: Source, now: u64) -> Result<(), u64> {
        let window_ms = self.policy.window_ms;
        if !self.windows.contains_key(&source) {
            let most = (self.policy.slots as usize).saturating_mul(BUDGETS_PER_SLOT);
            if self.windows.len() >= most {
                self.forget_ended_windows(now);
            }
            if self.windows.len() >= most {
                // Every remembered source is still inside its window: forgetting one would
                // hand it a fresh budget, so a newcomer waits for the oldest window to end.
                let oldest = self.windows.values().map(|w| w.start).min().unwrap_or(now);
                return Err((oldest + window_ms).saturating_sub(now).max(1));
            }
        }
        let w = self.windows.entry(source).or_insert(Window {
            start: now,
            used: 0,
        });
        if now.saturating_sub(w.start) >= window_ms {
            *w = Window {
                start: now,
                used: 0,
            };
        }
        if w.used >= self.policy.deposits_per_window {
            return Err((w.start + window_ms).saturating_sub(now).max(1));
        }
        w.used += 1;
        Ok(())
    }

    /// Forgets the budget windows that ended before `now` (their sources start afresh).
    pub fn forget_ended_windows(&mut self, now: u64) {
        let window_ms = self.policy.window_ms;
        self.windows
            .retain(|_, w| now.saturating_sub(w.start) < window_ms);
    }
}

/// Thread-safe driver of [`Admission`] for acceptors: maps its ids to live connections and
/// wakes the connection that is evicted.
pub struct Gate {
    state: Mutex<GateState>,
    epoch: Instant,
    loopback_exempt: bool,
}

struct GateState {
    admission: Admission,
    evictions: HashMap<ConnId, Arc<Notify>>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").finish_non_exhaustive()
    }
}

/// A connection's slot: dropping it frees the slot.
pub struct Ticket {
    gate: Arc<Gate>,
    id: ConnId,
    source: Option<Source>,
    evicted: Arc<Notify>,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate enforcing `policy`; with `loopback_exempt`, loopback peers are no source.
    #[must_use]
    pub fn new(policy: Policy, loopback_exempt: bool) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(GateState {
                admission: Admission::new(policy),
                evictions: HashMap::new(),
            }),
            epoch: Instant::now(),
            loopback_exempt,
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection from `ip` asks for a slot; if it takes an idle connection's slot, that
    /// connection's [`Ticket::evicted`] fires.
    ///
    /// # Errors
    /// [`Refusal`] if it is not admitted.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refusal> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        let source = (!(self.loopback_exempt && ip.is_loopback())).then(|| Source::of(ip));
        let now = self.now();
        let mut st = self.lock();
        let admitted = st.admission.handle_open(source, now)?;
        if let Some(victim) = admitted.evict
            && let Some(n) = st.evictions.remove(&victim)
        {
            // notify_one keeps the wake-up if the connection is not waiting right now.
            n.notify_one();
        }
        let evicted = Arc::new(Notify::new());
        st.evictions.insert(admitted.id, evicted.clone());
        Ok(Ticket {
            gate: self.clone(),
            id: admitted.id,
            source,
            evicted,
        })
    }

    /// Live connections.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.lock().admission.connections()
    }

    /// Forgets the sources whose budget window has ended (call it every few seconds: a
    /// source is then remembered at most that much longer than its window).
    pub fn forget_ended_windows(&self) {
        let now = self.now();
        self.lock().admission.forget_ended_windows(now);
    }
}

impl Ticket {
    /// The connection made a request: it is not idle.
    pub fn touch(&self) {
        let now = self.gate.now();
        self.gate.lock().admission.handle_request(self.id, now);
    }

    /// This connection's source, if the per-source limits apply to it (not a loopback peer
    /// while those are exempt).
    #[must_use]
    pub fn source(&self) -> Option<Source> {
        self.source
    }

    /// Charges one deposit to this connection's source.
    ///
    /// # Errors
    /// The milliseconds until the source's window ends, if its budget is spent.
    pub fn charge_deposit(&self) -> Result<(), u64> {
        let Some(source) = self.source else {
            return Ok(());
        };
        let now = self.gate.now();
        self.gate.lock().admission.handle_deposit(source, now)
    }

    /// Completes when a newcomer took this connection's slot: close it then.
    pub async fn evicted(&self) {
        self.evicted.notified().await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut st = self.gate.lock();
        st.admission.handle_close(self.id);
        st.evictions.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn policy() -> Policy {
        Policy {
            slots: 3,
            per_source: 2,
            evict_after_ms: 1000,
            deposits_per_window: 3,
            window_ms: 10_000,
        }
    }

    fn v4(last: u8) -> Source {
        Source::of(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)))
    }

    #[test]
    fn a_source_is_an_ipv4_address_or_an_ipv6_slash_64() {
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Source::of(a.into()), Source::of(b.into()));
        assert_ne!(Source::of(a.into()), Source::of(c.into()));
        let mapped: Ipv6Addr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(Source::of(mapped.into()), v4(7));
        assert_ne!(v4(7), v4(8));
        // An IPv4 address never shares a source with an IPv6 prefix.
        let low: Ipv6Addr = "::1:c000:207".parse().unwrap();
        assert_ne!(Source::of(low.into()), v4(7));
        assert_eq!(format!("{:?}", v4(7)), "Source(..)");
    }

    #[test]
    fn one_source_gets_at_most_its_share_of_connections() {
        let mut a = Admission::new(policy());
        let x = a.handle_open(Some(v4(1)), 0).unwrap();
        a.handle_open(Some(v4(1)), 0).unwrap();
        assert_eq!(a.handle_open(Some(v4(1)), 0), Err(Refusal::SourceFull));
        // Another source still gets in; a closed connection gives its source room again.
        a.handle_open(Some(v4(2)), 0).unwrap();
        a.handle_close(x.id);
        assert!(a.handle_open(Some(v4(1)), 0).is_ok());
    }

    #[test]
    fn a_full_relay_evicts_the_longest_idle_connection_only_once_it_is_idle_long_enough() {
        let mut a = Admission::new(policy());
        let c0 = a.handle_open(Some(v4(1)), 0).unwrap().id;
        let c1 = a.handle_open(Some(v4(2)), 0).unwrap().id;
        let c2 = a.handle_open(Some(v4(3)), 0).unwrap().id;
        // Nobody has been idle for a second yet: refused, nothing evicted.
        assert_eq!(a.handle_open(Some(v4(4)), 999), Err(Refusal::RelayFull));
        assert_eq!(a.connections(), 3);
        // c0 and c2 are active; c1 has been silent since 0.
        a.handle_request(c0, 1500);
        a.handle_request(c2, 1600);
        let n = a.handle_open(Some(v4(4)), 2000).unwrap();
        assert_eq!(n.evict, Some(c1));
        assert_eq!(a.connections(), 3);
        // Next the longest idle is c0 (1500), evictable from 2500 on.
        assert_eq!(a.handle_open(Some(v4(5)), 2499), Err(Refusal::RelayFull));
        assert_eq!(a.handle_open(Some(v4(5)), 2500).unwrap().evict, Some(c0));
        // Closing an evicted id again changes nothing.
        a.handle_close(c1);
        assert_eq!(a.connections(), 3);
    }

    #[test]
    fn deposits_per_source_are_budgeted_per_window() {
        let mut a = Admission::new(policy());
        for _ in 0..3 {
            a.handle_deposit(v4(1), 100).unwrap();
        }
        assert_eq!(a.handle_deposit(v4(1), 4000), Err(6100));
        // Another source has its own budget.
        a.handle_deposit(v4(2), 4000).unwrap();
        // The window ends: a fresh budget.
        a.handle_deposit(v4(1), 10_100).unwrap();
        a.forget_ended_windows(20_000);
        assert_eq!(a.sources_remembered(), 1, "only v4(1)'s window at 10_100");
        a.forget_ended_windows(20_100);
        assert_eq!(a.sources_remembered(), 0);
    }

    #[test]
    fn remembered_budgets_are_bounded_and_never_reset_early() {
        // 3 slots: at most 6 budget windows remembered.
        let mut a = Admission::new(policy());
        for i in 0..6 {
            a.handle_deposit(v4(i), 1000).unwrap();
        }
        // A seventh source must wait until the oldest window ends...
        assert_eq!(a.handle_deposit(v4(6), 2000), Err(9000));
        assert_eq!(a.sources_remembered(), 6);
        // ...and then gets in, the ended windows forgotten.
        a.handle_deposit(v4(6), 11_000).unwrap();
        assert_eq!(a.sources_remembered(), 1);
    }

    #[test]
    fn memory_ceiling_turns_into_connection_slots() {
        let mut c = Config::loopback(
            "127.0.0.1:0".parse().unwrap(),
            "d".into(),
            "c".into(),
            "k".into(),
        );
        let per = connection_bytes(&c.limits);
        let fixed = fixed_bytes(&c);
        c.limits.max_memory_mib = crate::config::Positive((fixed + 10 * per).div_ceil(1 << 20));
        let slots = connection_slots(&c).unwrap();
        assert!(slots >= 10, "{slots}");
        assert!(u64::from(slots) * per + fixed <= c.limits.max_memory_mib.0 << 20);
        c.limits.max_memory_mib = crate::config::Positive(1);
        assert!(connection_slots(&c).unwrap_err().contains("max_memory_mib"));
    }

    #[tokio::test]
    async fn the_gate_wakes_the_evicted_connection_and_frees_slots_on_drop() {
        let gate = Gate::new(
            Policy {
                slots: 1,
                per_source: 1,
                evict_after_ms: 0,
                deposits_per_window: 1,
                window_ms: 60_000,
            },
            false,
        );
        let first = gate.admit(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        assert_eq!(
            gate.admit(IpAddr::V4(Ipv4Addr::LOCALHOST)).err(),
            Some(Refusal::SourceFull)
        );
        let second = gate.admit(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))).unwrap();
        first.evicted().await;
        assert_eq!(gate.connections(), 1);
        assert!(second.charge_deposit().is_ok());
        assert!(second.charge_deposit().is_err());
        drop(first);
        assert_eq!(
            gate.connections(),
            1,
            "the evicted ticket was already released"
        );
        drop(second);
        assert_eq!(gate.connections(), 0);
    }

    #[tokio::test]
    async fn exempt_loopback_peers_skip_per_source_limits_but_not_the_slots() {
        let policy = Policy {
            slots: 3,
            per_source: 1,
            evict_after_ms: 60_000,
            deposits_per_window: 1,
            window_ms: 60_000,
        };
        let gate = Gate::new(policy, true);
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let a = gate.admit(lo).unwrap();
        let mapped: Ipv6Addr = "::ffff:127.0.0.1".parse().unwrap();
        let _b = gate.admit(mapped.into()).unwrap();
        let _c = gate.admit(Ipv6Addr::LOCALHOST.into()).unwrap();
        assert!(a.charge_deposit().is_ok() && a.charge_deposit().is_ok());
        assert_eq!(gate.admit(lo).err(), Some(Refusal::RelayFull));
        // Not exempt: loopback is one source like any other.
        let strict = Gate::new(policy, false);
        let _d = strict.admit(lo).unwrap();
        assert_eq!(strict.admit(lo).err(), Some(Refusal::SourceFull));
    }
}
