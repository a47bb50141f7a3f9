//! Open-loop send schedules: when each connection *intends* to send, decided before the run
//! and independent of how fast the system under test answers.
//!
//! Owns: the intended send times of one connection (evenly spread across connections, or
//! Poisson arrivals) and the seeded generator behind the Poisson gaps. Sans-IO: times are
//! nanoseconds on the caller's clock; nothing here sleeps or reads a clock.
//! Must never let the answer to one send move the intended time of the next: latency is
//! measured from these times, so a stalled system is charged for every send it delayed
//! (no coordinated omission).

/// How a connection's sends are spaced in an open-loop phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Arrivals {
    /// Every connection sends once a period; connection `i` of `n` starts `i/n` of a
    /// period in, so the connections' sends interleave instead of landing together.
    Spread,
    /// Exponentially distributed gaps with the period as their mean, independently per
    /// connection (seeded): the arrivals of many independent clients.
    Poisson,
}

/// SplitMix64: small, seedable, and good enough to draw exponential gaps.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1]: never 0, so its logarithm is finite.
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }
}

/// The intended send times of one connection, in increasing order.
#[derive(Clone, Debug)]
pub struct Schedule {
    arrivals: Arrivals,
    period_ns: f64,
    /// The next intended time, kept as a float so that rounding does not accumulate.
    next_ns: f64,
    rng: SplitMix64,
}

impl Schedule {
    /// Connection `conn` of `conns`, one send per `period_ns` on average, from `start_ns`.
    #[must_use]
    pub fn new(
        arrivals: Arrivals,
        period_ns: f64,
        (conn, conns): (usize, usize),
        start_ns: u64,
        seed: u64,
    ) -> Self {
        let mut rng = SplitMix64(seed ^ (conn as u64).wrapping_mul(0xa076_1d64_78bd_642f));
        let first = match arrivals {
            Arrivals::Spread => period_ns * conn as f64 / conns.max(1) as f64,
            Arrivals::Poisson => -rng.unit().ln() * period_ns,
        };
        Self {
            arrivals,
            period_ns,
            next_ns: start_ns as f64 + first,
            rng,
        }
    }

    /// The next intended send time.
    pub fn next_send(&mut self) -> u64 {
        let t = self.next_ns;
        self.next_ns += match self.arrivals {
            Arrivals::Spread => self.period_ns,
            Arrivals::Poisson => -self.rng.unit().ln() * self.period_ns,
        };
        t as u64
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
    use super::*;

    const PERIOD: f64 = 16_000_000.0; // 64 connections at 4,000 msg/s in total

    #[test]
    fn spread_connections_interleave_evenly_within_one_period() {
        let n = 64;
        let mut firsts: Vec<u64> = (0..n)
            .map(|i| Schedule::new(Arrivals::Spread, PERIOD, (i, n), 1_000, 7).next_send())
            .collect();
        firsts.sort_unstable();
        firsts.dedup();
        // Each connection has its own slot, one n-th of a period apart, all in the first
        // period: no two send together (the synchronised bursts of a shared start).
        assert_eq!(firsts.len(), n);
        let slot = (PERIOD / n as f64) as u64;
        for w in firsts.windows(2) {
            assert!(w[1] - w[0] + 1 >= slot && w[1] - w[0] <= slot + 1, "{w:?}");
        }
        assert!(*firsts.last().unwrap() < 1_000 + PERIOD as u64);
        // And then one send per period, without drift over a long run.
        let mut s = Schedule::new(Arrivals::Spread, PERIOD, (5, n), 0, 7);
        let times: Vec<u64> = (0..100_000).map(|_| s.next_send()).collect();
        let span = times[99_999] - times[0];
        assert!(span.abs_diff(99_999 * PERIOD as u64) <= 1, "{span}");
    }

    #[test]
    fn poisson_gaps_are_exponential_with_the_period_as_mean_and_seeded() {
        let mut s = Schedule::new(Arrivals::Poisson, PERIOD, (3, 64), 0, 42);
        let times: Vec<u64> = (0..200_000).map(|_| s.next_send()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        let gaps: Vec<f64> = times.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean / PERIOD - 1.0).abs() < 0.01, "mean gap {mean}");
        // Exponential: about e^-1 of the gaps exceed the mean, and the variance equals the
        // square of the mean (a fixed period would give 0 and 0).
        let above = gaps.iter().filter(|g| **g > PERIOD).count() as f64 / gaps.len() as f64;
        assert!((above - (-1.0f64).exp()).abs() < 0.01, "{above}");
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!(
            (var.sqrt() / mean - 1.0).abs() < 0.02,
            "{}",
            var.sqrt() / mean
        );
        // The same seed gives the same schedule; another connection another one.
        let mut again = Schedule::new(Arrivals::Poisson, PERIOD, (3, 64), 0, 42);
        assert_eq!(again.next_send(), times[0]);
        let mut other = Schedule::new(Arrivals::Poisson, PERIOD, (4, 64), 0, 42);
        assert_ne!(other.next_send(), times[0]);
    }
}
