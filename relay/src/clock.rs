//! Wall-clock time for expiry, in whole seconds since the Unix epoch.
//!
//! Owns: the single place the relay reads the wall clock, and the test-only offset
//! `HUSH_RELAY_TEST_CLOCK_OFFSET_SECS` that lets end-to-end tests move time forward (expiry)
//! without sleeping. Must never be used for rate limiting or timeouts (those use the
//! monotonic clock) and never reaches hush-proto, which takes time as an argument.

use std::time::{SystemTime, UNIX_EPOCH};

/// Environment variable that shifts the relay's wall clock, for tests only.
pub const TEST_CLOCK_OFFSET_ENV: &str = "HUSH_RELAY_TEST_CLOCK_OFFSET_SECS";

/// A wall clock with an optional fixed offset.
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    offset_secs: i64,
}

impl Clock {
    /// The system clock shifted by [`TEST_CLOCK_OFFSET_ENV`] if that is set to an integer.
    #[must_use]
    pub fn from_env() -> Self {
        let offset_secs = std::env::var(TEST_CLOCK_OFFSET_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        Self { offset_secs }
    }

    /// Whether a test offset is active (logged once at startup so it is never silent).
    #[must_use]
    pub fn is_shifted(&self) -> bool {
        self.offset_secs != 0
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
