//! Wall-clock time for expiry, in whole seconds since the Unix epoch.
//!
//! Owns: the single place the relay reads the wall clock, and the test-only offset
//! `HUSH_RELAY_TEST_CLOCK_OFFSET_SECS` that lets end-to-end tests move time forward (expiry)
//! without sleeping. The offset is honoured only in builds with the cargo feature
//! `test-hooks`; a production build ignores the variable (and says so in its log).
//! Must never be used for rate limiting or timeouts (those use the monotonic clock) and never
//! reaches hush-proto, which takes time as an argument.

use std::time::{SystemTime, UNIX_EPOCH};

/// Environment variable that shifts the relay's wall clock, for tests only (feature
/// `test-hooks`).
pub const TEST_CLOCK_OFFSET_ENV: &str = "HUSH_RELAY_TEST_CLOCK_OFFSET_SECS";

/// A wall clock with an optional fixed offset.
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    offset_secs: i64,
    offset_ignored: bool,
}

impl Clock {
    /// The system clock, shifted by [`TEST_CLOCK_OFFSET_ENV`] if that is set to an integer
    /// and this build has the feature `test-hooks`.
    #[must_use]
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// As [`Clock::from_env`], reading variables through `var`.
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let value = var(TEST_CLOCK_OFFSET_ENV);
        if cfg!(feature = "test-hooks") {
            let offset_secs = value.and_then(|v| v.trim().parse().ok()).unwrap_or(0);
            Self {
                offset_secs,
                offset_ignored: false,
            }
        } else {
            Self {
                offset_secs: 0,
                offset_ignored: value.is_some(),
            }
        }
    }

    /// Whether a test offset is active (logged once at startup so it is never silent).
    #[must_use]
    pub fn is_shifted(&self) -> bool {
        self.offset_secs != 0
    }

    /// Whether [`TEST_CLOCK_OFFSET_ENV`] is set but ignored because this build lacks the
    /// feature `test-hooks` (logged at startup: a test relying on it would otherwise fail
    /// without a clue).
    #[must_use]
    pub fn offset_ignored(&self) -> bool {
        self.offset_ignored
    }

    /// Seconds since the Unix epoch.
    #[must_use]
    pub fn now(&self) -> u64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        real.saturating_add_signed(self.offset_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_offset(value: &str) -> Clock {
        let value = value.to_owned();
        Clock::from_vars(move |name| (name == TEST_CLOCK_OFFSET_ENV).then(|| value.clone()))
    }

    #[cfg(not(feature = "test-hooks"))]
    #[test]
    fn without_test_hooks_the_offset_variable_has_no_effect() {
        let c = with_offset("691200");
        assert!(!c.is_shifted());
        assert!(c.offset_ignored());
        let real = Clock::default().now();
        assert!(c.now() >= real && c.now() - real < 60);
        assert!(!Clock::from_vars(|_| None).offset_ignored());
    }

    #[cfg(feature = "test-hooks")]
    #[test]
    fn with_test_hooks_the_offset_variable_shifts_the_clock() {
        let c = with_offset(" 691200 ");
        assert!(c.is_shifted());
        assert!(!c.offset_ignored());
        let real = Clock::default().now();
        assert!(c.now() >= real + 691_200 && c.now() - real - 691_200 < 60);
        assert!(with_offset("-86400").now() < real);
        assert!(
            !with_offset("soon").is_shifted(),
            "not an integer: no offset"
        );
        assert!(!Clock::from_vars(|_| None).is_shifted());
    }
}
