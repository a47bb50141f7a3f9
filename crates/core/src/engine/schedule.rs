//! When the engine talks to relays: the traffic schedule that keeps what a relay or a
//! network observer sees from following what the user does.
//!
//! Two modes, one per profile (the `high_risk` setting):
//!
//! - **Normal.** Deposits leave when they are queued, but never as a burst: the fragments of
//!   a message (and anything queued together) leave one after another with a random gap of
//!   [`FRAGMENT_GAP_MIN`]..=[`FRAGMENT_GAP_MAX`] (scaled down so that one batch spreads over
//!   at most [`BATCH_SPREAD_MAX`]), and a delivery receipt waits a random
//!   [`RECEIPT_DELAY_MIN`]..=[`RECEIPT_DELAY_MAX`] so that it does not follow the delivery
//!   it confirms at once. Fetches are pushed by the relay (subscriptions) and on demand.
//! - **High-risk.** Deposits happen only at *slots*: a Poisson process with mean
//!   [`TrafficConfig::deposit_mean`] (default 30 s). Each slot belongs to one contact drawn
//!   uniformly, so every relationship's mailbox receives deposits at the same rate whatever
//!   is said on it; the slot carries that contact's oldest waiting envelope (message
//!   fragment, receipt, handshake, control message) if there is one, otherwise a cover
//!   envelope (4096 random bytes to the same mailbox id, which its recipient drops:
//!   docs/PROTOCOL.md section 10a). Fetches happen only at their own Poisson slots (mean
//!   [`TrafficConfig::fetch_mean`], default 60 s); nothing is subscribed, so no relay pushes
//!   an arrival as it happens.
//!
//! The slots' times and their contacts are drawn from a generator of their own, seeded once
//! from the engine's seeded generator: nothing the user does (sending, receiving, the size
//! of a message) draws from it, so with the same seed an active and an idle profile have
//! the very same schedule. This module owns that policy; it never does I/O, never reads the
//! clock and never touches the store.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use super::Time;
use crate::store::OutboxId;

/// Normal mode: the shortest gap between two deposits queued together.
pub(crate) const FRAGMENT_GAP_MIN: Duration = Duration::from_millis(500);
/// Normal mode: the longest gap between two deposits queued together.
pub(crate) const FRAGMENT_GAP_MAX: Duration = Duration::from_millis(2_500);
/// Normal mode: the longest one batch (a long message's fragments) is spread over; its gaps
/// are scaled down to fit, so a one-shot `hush send` of a long text is on the relay soon.
pub(crate) const BATCH_SPREAD_MAX: Duration = Duration::from_secs(10);
/// Normal mode: the shortest wait of a delivery receipt.
pub(crate) const RECEIPT_DELAY_MIN: Duration = Duration::from_secs(1);
/// Normal mode: the longest wait of a delivery receipt.
pub(crate) const RECEIPT_DELAY_MAX: Duration = Duration::from_secs(8);
/// No exponential draw is longer than this many means (the tail beyond has probability
/// e^-20: it bounds latency without changing the distribution measurably).
const MAX_MEANS: f64 = 20.0;

/// The high-risk schedule's rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrafficConfig {
    /// Mean time between two deposit slots (exponential inter-arrival).
    pub deposit_mean: Duration,
    /// Mean time between two fetch slots (exponential inter-arrival).
    pub fetch_mean: Duration,
}

impl TrafficConfig {
    /// Default deposit slots: a mean of 30 s, 2880 deposits a day (13 MB of 4505-byte
    /// frames).
    pub const DEFAULT_DEPOSIT_MEAN: Duration = Duration::from_secs(30);
    /// Default fetch slots: a mean of 60 s.
    pub const DEFAULT_FETCH_MEAN: Duration = Duration::from_secs(60);
}

impl Default for TrafficConfig {
    fn default() -> Self {
        Self {
            deposit_mean: Self::DEFAULT_DEPOSIT_MEAN,
            fetch_mean: Self::DEFAULT_FETCH_MEAN,
        }
    }
}

/// How an envelope queued in normal mode is paced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pace {
    /// Message fragments, handshakes, control messages: one after another.
    Fragments,
    /// A delivery receipt: after a random wait.
    Receipt,
}

/// What a high-risk mode costs, from the rates and the number of contacts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TrafficCost {
    /// Bytes a day sent (frames of deposits and fetches; what is received adds its
    /// acknowledgements).
    pub up_bytes_per_day: u64,
    /// Bytes a day received (answers to those frames; envelopes received add theirs).
    pub down_bytes_per_day: u64,
    /// Mean wait of one envelope for its slot, seconds.
    pub send_latency_secs: u64,
    /// Mean wait of an arrived envelope for the next fetch, seconds.
    pub receive_latency_secs: u64,
}

impl TrafficConfig {
    /// The cost of high-risk mode with these rates for a profile with `contacts` contacts
    /// (each slot belongs to one contact, so an envelope waits about `contacts` slots) and
    /// `fetch_ops` fetch requests per fetch slot.
    pub fn cost(&self, contacts: u64, fetch_ops: u64) -> TrafficCost {
        let day_ms = 86_400_000u64;
        let frame = hush_proto::FRAME_LEN as u64;
        let per_day = |mean: Duration| {
            let ms = u64::try_from(mean.as_millis()).unwrap_or(u64::MAX).max(1);
            day_ms / ms
        };
        let deposits = per_day(self.deposit_mean);
        let fetches = per_day(self.fetch_mean).saturating_mul(fetch_ops.max(1));
        let frames = deposits.saturating_add(fetches).saturating_mul(frame);
        TrafficCost {
            up_bytes_per_day: frames,
            down_bytes_per_day: frames,
            send_latency_secs: self.deposit_mean.as_secs().saturating_mul(contacts.max(1)),
            receive_latency_secs: self.fetch_mean.as_secs(),
        }
    }
}

/// An exponential draw with mean `mean`: `-mean * ln(U)`, U uniform in (0, 1] at 53 bits,
/// capped at [`MAX_MEANS`] means. The slots here and the paced chunk requests of high-risk
/// mode (`crate::files`) draw their gaps with it.
pub(crate) fn exponential(rng: &mut ChaCha20Rng, mean: Duration) -> Duration {
    // 53 random bits, as an f64 in [0, 1); 1 - that is in (0, 1], so ln is finite.
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let factor = (-(1.0 - u).ln()).min(MAX_MEANS);
    mean.mul_f64(factor)
}

/// The schedule's state. See the module documentation.
pub(crate) struct Schedule {
    config: TrafficConfig,
    high_risk: bool,
    /// Draws only slot times and slot contacts.
    rng: ChaCha20Rng,
    next_deposit: Time,
    next_fetch: Time,
    /// Normal mode: when each envelope queued in this run may first leave. An entry found in
    /// the outbox without one (left by an earlier run) is paced when first seen.
    release: HashMap<OutboxId, Time>,
    /// Normal mode: the latest release time handed out, so that what is queued next
    /// follows it instead of leaving beside it.
    cursor: Time,
    /// Cover deposits on their way (ids below zero; outbox rows are above).
    covers: HashSet<OutboxId>,
    next_cover: i64,
}

impl Schedule {
    /// A schedule starting at `now`, its generator seeded from `seed`.
    pub(crate) fn new(config: TrafficConfig, high_risk: bool, seed: [u8; 32], now: Time) -> Self {
        let mut s = Self {
            config,
            high_risk,
            rng: ChaCha20Rng::from_seed(seed),
            next_deposit: now,
            next_fetch: now,
            release: HashMap::new(),
            cursor: now,
            covers: HashSet::new(),
            next_cover: -1,
        };
        s.next_deposit = now.plus(s.draw(config.deposit_mean));
        s.next_fetch = now.plus(s.draw(config.fetch_mean));
        s
    }

    pub(crate) fn high_risk(&self) -> bool {
        self.high_risk
    }

    pub(crate) fn config(&self) -> TrafficConfig {
        self.config
    }

    /// Turns high-risk mode on or off from `now`: the first slots are drawn afresh.
    pub(crate) fn set_high_risk(&mut self, on: bool, now: Time) {
        if on && !self.high_risk {
            self.next_deposit = now.plus(self.draw(self.config.deposit_mean));
            self.next_fetch = now.plus(self.draw(self.config.fetch_mean));
        }
        self.high_risk = on;
    }

    fn draw(&mut self, mean: Duration) -> Duration {
        exponential(&mut self.rng, mean)
    }

    /// A uniform index below `n` (`n > 0`) for the slot's contact.
    pub(crate) fn pick(&mut self, n: usize) -> usize {
        let n64 = u64::try_from(n).unwrap_or(u64::MAX).max(1);
        // Rejection sampling: no bias towards low indices.
        let zone = u64::MAX - (u64::MAX % n64);
        loop {
            let x = self.rng.next_u64();
            if x < zone {
                return usize::try_from(x % n64).unwrap_or(0);
            }
        }
    }

    /// When the schedule next needs the engine: the next slot in high-risk mode. (In normal
    /// mode the engine asks [`Schedule::release_of`] for each outbox entry it still holds:
    /// a paced entry that left the outbox some other way must not wake it.)
    pub(crate) fn next_due(&self) -> Option<Time> {
        self.high_risk
            .then(|| self.next_deposit.min(self.next_fetch))
    }

    /// Whether a deposit slot is due by `now`; if so the next one is drawn.
    pub(crate) fn take_deposit_slot(&mut self, now: Time) -> bool {
        if !self.high_risk || self.next_deposit > now {
            return false;
        }
        // From the slot's own time, not from `now`: a late wake-up does not stretch the
        // schedule. Slots missed by more than a mean (a suspended machine) are dropped, not
        // taken as a burst.
        let from = self.next_deposit.max(back(now, self.config.deposit_mean));
        self.next_deposit = from.plus(self.draw(self.config.deposit_mean));
        true
    }

    /// Whether a fetch slot is due by `now`; if so the next one is drawn.
    pub(crate) fn take_fetch_slot(&mut self, now: Time) -> bool {
        if !self.high_risk || self.next_fetch > now {
            return false;
        }
        let from = self.next_fetch.max(back(now, self.config.fetch_mean));
        self.next_fetch = from.plus(self.draw(self.config.fetch_mean));
        true
    }

    /// Normal mode: paces `ids`, just queued together, from `now`; `uniform` draws the
    /// random gaps (from the engine's generator: pacing times follow what is sent anyway).
    pub(crate) fn pace(&mut self, ids: &[OutboxId], how: Pace, now: Time, rng: &mut impl Rng) {
        let mut at = match how {
            Pace::Fragments if self.cursor <= now => now,
            Pace::Fragments => self
                .cursor
                .plus(uniform(FRAGMENT_GAP_MIN, FRAGMENT_GAP_MAX, rng)),
            Pace::Receipt => now
                .plus(uniform(RECEIPT_DELAY_MIN, RECEIPT_DELAY_MAX, rng))
                .max(self.cursor.plus(FRAGMENT_GAP_MIN)),
        };
        let gaps: Vec<Duration> = (1..ids.len())
            .map(|_| uniform(FRAGMENT_GAP_MIN, FRAGMENT_GAP_MAX, rng))
            .collect();
        let total: Duration = gaps.iter().sum();
        let scale = if total > BATCH_SPREAD_MAX {
            BATCH_SPREAD_MAX.as_secs_f64() / total.as_secs_f64()
        } else {
            1.0
        };
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                at = at.plus(gaps[i - 1].mul_f64(scale));
            }
            self.release.insert(*id, at);
            self.cursor = self.cursor.max(at);
        }
    }

    /// Normal mode: whether outbox entry `id` may leave at `now`. An entry this run has not
    /// paced yet is paced now, after whatever was paced before it.
    pub(crate) fn released(&mut self, id: OutboxId, now: Time, rng: &mut impl Rng) -> bool {
        if !self.release.contains_key(&id) {
            self.pace(&[id], Pace::Fragments, now, rng);
        }
        match self.release.get(&id) {
            Some(at) if *at <= now => {
                self.release.remove(&id);
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// When entry `id` may first leave (the epoch of time if it is not held back).
    pub(crate) fn release_of(&self, id: OutboxId) -> Time {
        self.release.get(&id).copied().unwrap_or_default()
    }

    /// A fresh id for a cover deposit, recorded as on its way.
    pub(crate) fn new_cover(&mut self) -> OutboxId {
        let id = OutboxId(self.next_cover);
        self.next_cover -= 1;
        self.covers.insert(id);
        id
    }

    /// Whether `id` was a cover deposit (which is then forgotten: nothing retries cover).
    pub(crate) fn take_cover(&mut self, id: OutboxId) -> bool {
        self.covers.remove(&id)
    }
}

/// `now` less `d`.
fn back(now: Time, d: Duration) -> Time {
    Time::from_unix_millis(
        now.unix_millis()
            .saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    )
}

/// A uniform duration in `min..=max`, at millisecond resolution.
pub(crate) fn uniform(min: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let lo = u64::try_from(min.as_millis()).unwrap_or(0);
    let hi = u64::try_from(max.as_millis()).unwrap_or(lo).max(lo);
    Duration::from_millis(lo + rng.next_u64() % (hi - lo + 1))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

    use super::*;

    const T0: Time = Time::from_unix_secs(1_796_083_200);

    fn slots(seed: u8, n: usize) -> Vec<u64> {
        let cfg = TrafficConfig::default();
        let mut s = Schedule::new(cfg, true, [seed; 32], T0);
        let mut out = Vec::new();
        let mut now = T0;
        while out.len() < n {
            now = s.next_due().unwrap();
            if s.take_deposit_slot(now) {
                out.push(now.unix_millis() - T0.unix_millis());
            }
            s.take_fetch_slot(now);
        }
        let _ = now;
        out
    }

    /// The deposit slots' gaps have the stated mean (30 s within 5% over 4000 gaps) and an
    /// exponential shape (about e^-1 of the gaps are longer than the mean). Seen to fail
    /// with a constant gap of the mean (the shape check: none longer than the mean) and with
    /// the mean's seconds taken as milliseconds (the mean check: 29.991 ms).
    #[test]
    fn deposit_slots_are_exponential_with_the_stated_mean() {
        let times = slots(3, 4001);
        let gaps: Vec<f64> = times.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 30_000.0).abs() < 1_500.0, "mean gap {mean} ms");
        let longer = gaps.iter().filter(|g| **g > 30_000.0).count() as f64 / gaps.len() as f64;
        assert!((longer - (-1f64).exp()).abs() < 0.03, "{longer}");
        assert_ne!(slots(4, 50), slots(3, 50), "another seed, another schedule");
        assert_eq!(
            slots(3, 50),
            slots(3, 50),
            "the same seed, the same schedule"
        );
    }

    /// Normal mode: what is queued together leaves 0.5 to 2.5 s apart, a receipt 1 to 8 s
    /// late, and a message queued while another is still leaving waits behind it.
    #[test]
    fn normal_mode_paces_fragments_and_delays_receipts() {
        let mut s = Schedule::new(TrafficConfig::default(), false, [1; 32], T0);
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let ids: Vec<OutboxId> = (1..=8).map(OutboxId).collect();
        s.pace(&ids, Pace::Fragments, T0, &mut rng);
        let at: Vec<u64> = ids.iter().map(|i| s.release[i].unix_millis()).collect();
        assert_eq!(at[0], T0.unix_millis(), "the first leaves at once");
        for w in at.windows(2) {
            let gap = w[1] - w[0];
            assert!((250..=2_500).contains(&gap), "gap {gap}");
        }
        assert!(at[7] - at[0] <= 10_000, "spread over at most 10 s");
        s.pace(&[OutboxId(9)], Pace::Fragments, T0, &mut rng);
        assert!(
            s.release[&OutboxId(9)].unix_millis() > at[7],
            "behind the last"
        );
        let later = T0.plus(Duration::from_secs(600));
        s.pace(&[OutboxId(10)], Pace::Receipt, later, &mut rng);
        let wait = s.release[&OutboxId(10)].unix_millis() - later.unix_millis();
        assert!((1_000..=8_000).contains(&wait), "receipt waits {wait}");
        assert!(!s.released(OutboxId(10), later, &mut rng));
        assert!(s.released(OutboxId(10), s.release[&OutboxId(10)], &mut rng));
        // Sixty fragments (a 100 KB text) still leave within 10 s, one after another.
        let mut s = Schedule::new(TrafficConfig::default(), false, [1; 32], T0);
        let many: Vec<OutboxId> = (100..160).map(OutboxId).collect();
        s.pace(&many, Pace::Fragments, T0, &mut rng);
        let times: Vec<u64> = many.iter().map(|i| s.release[i].unix_millis()).collect();
        assert!(times.windows(2).all(|w| w[1] > w[0] + 50), "{times:?}");
        assert!(times[59] - times[0] <= 10_000, "{times:?}");
    }

    #[test]
    fn the_cost_of_the_defaults() {
        let c = TrafficConfig::default().cost(1, 1);
        let frame = hush_proto::FRAME_LEN as u64;
        assert_eq!(c.up_bytes_per_day, (2880 + 1440) * frame);
        assert_eq!(c.down_bytes_per_day, c.up_bytes_per_day);
        assert_eq!(c.send_latency_secs, 30);
        assert_eq!(TrafficConfig::default().cost(4, 1).send_latency_secs, 120);
    }
}
