//! Retry spacing: exponential backoff with jitter, the one policy behind outbox retries and
//! relay reconnects. Pure: randomness comes from the caller's generator.

use std::time::Duration;

use rand_core::Rng;

/// Exponential backoff between `min` and `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// Delay after the first failure (before jitter).
    pub(crate) min: Duration,
    /// Longest delay.
    pub(crate) max: Duration,
}

impl Backoff {
    /// Deposit retries: 1 s doubling to 5 minutes.
    pub(crate) const OUTBOX: Self = Self {
        min: Duration::from_secs(1),
        max: Duration::from_secs(300),
    };
    /// Relay reconnects: 250 ms doubling to 30 s.
    pub(crate) const RECONNECT: Self = Self {
        min: Duration::from_millis(250),
        max: Duration::from_secs(30),
    };

    /// The delay after `failures` failures in a row (0: the first retry): `min * 2^failures`
    /// capped at `max`, times a uniform factor in [0.5, 1.5] so that clients which failed
    /// together do not retry together, then kept within [`min`, `max`].
    pub(crate) fn delay(&self, failures: u32, rng: &mut impl Rng) -> Duration {
        let base = self
            .min
            .saturating_mul(1u32 << failures.min(20))
            .min(self.max);
        let permille = 500 + u64::from(rng.next_u32() % 1001);
        let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
        let ms = base_ms.saturating_mul(permille) / 1000;
        Duration::from_millis(ms).clamp(self.min, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn grows_jitters_and_stays_within_bounds() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let b = Backoff::OUTBOX;
        let mut seen_low = false;
        let mut seen_high = false;
        for failures in 0..40 {
            for _ in 0..50 {
                let d = b.delay(failures, &mut rng);
                assert!(d >= b.min && d <= b.max, "{d:?} after {failures}");
                let base = b.min.saturating_mul(1 << failures.min(20)).min(b.max);
                assert!(d >= base / 2 && d <= base * 3 / 2 || d == b.min || d == b.max);
                seen_low |= d < base;
                seen_high |= d > base;
            }
        }
        assert!(seen_low && seen_high, "jitter goes both ways");
        let mut a = ChaCha20Rng::seed_from_u64(1);
        let mut b = ChaCha20Rng::seed_from_u64(1);
        let r = Backoff::RECONNECT;
        let xs: Vec<_> = (0..10).map(|f| r.delay(f, &mut a)).collect();
        let ys: Vec<_> = (0..10).map(|f| r.delay(f, &mut b)).collect();
        assert_eq!(xs, ys, "the same seed gives the same delays");
    }
}
