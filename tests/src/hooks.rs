//! Names of the environment variables the binaries read, in one place. The test hooks
//! (clock offsets, crash points) are honoured only by binaries built with the feature
//! [`CARGO_FEATURE`]; the rest are the ordinary configuration the kit sets or clears so a
//! test never inherits the developer's environment.

/// The cargo feature of `hush` and `hush-relay` that turns the test hooks on; the kit
/// builds the binaries it misses with it.
pub const CARGO_FEATURE: &str = "test-hooks";

/// Shifts the `hush` client's clock by this many seconds (test hook).
pub const CLIENT_CLOCK_OFFSET: &str = "HUSH_CLOCK_OFFSET_SECS";
/// Makes `hush` abort (SIGABRT) at a named point, e.g. `before-ack`, `before-commit`
/// (test hook).
pub const CLIENT_CRASH_AT: &str = "HUSH_TEST_CRASH_AT";
/// Shifts the relay's clock by this many seconds (test hook).
pub const RELAY_CLOCK_OFFSET: &str = "HUSH_RELAY_TEST_CLOCK_OFFSET_SECS";

/// Makes the relay write every peer address and request frame to this file (test hook).
pub const RELAY_TEST_RECORD: &str = "HUSH_RELAY_TEST_RECORD";
/// Makes the relay substitute its own forwarding key in statements it fetches for clients:
/// a hostile forwarding relay (test hook).
pub const RELAY_SUBSTITUTE_FORWARD_KEY: &str = "HUSH_RELAY_TEST_SUBSTITUTE_FORWARD_KEY";
/// Client (test-hooks): the mean of the high-risk deposit slots, in milliseconds.
pub const CLIENT_DEPOSIT_MEAN_MS: &str = "HUSH_TEST_DEPOSIT_MEAN_MS";
/// Client (test-hooks): the mean of the high-risk fetch slots, in milliseconds.
pub const CLIENT_FETCH_MEAN_MS: &str = "HUSH_TEST_FETCH_MEAN_MS";

/// The client's data root (all profiles).
pub const HUSH_HOME: &str = "HUSH_HOME";
/// The client's passphrase, read instead of prompting.
pub const HUSH_PASSPHRASE: &str = "HUSH_PASSPHRASE";
/// The client's log filter.
pub const HUSH_LOG: &str = "HUSH_LOG";
/// The relay's config file (a default for `--config`).
pub const RELAY_CONFIG: &str = "HUSH_RELAY_CONFIG";
/// The relay's metrics listener (config override).
pub const RELAY_METRICS_LISTEN: &str = "HUSH_RELAY_METRICS_LISTEN";
/// The relay's log level (config override).
pub const RELAY_LOG_LEVEL: &str = "HUSH_RELAY_LOG_LEVEL";
/// Read by both binaries' log setup; cleared so the configured levels apply.
pub const RUST_LOG: &str = "RUST_LOG";

/// Variables a test process may inherit that would change what a binary does; every
/// process the kit starts has them removed (and set again only where a test asks).
pub const CLEARED: &[&str] = &[
    CLIENT_CLOCK_OFFSET,
    CLIENT_CRASH_AT,
    RELAY_CLOCK_OFFSET,
    RELAY_TEST_RECORD,
    RELAY_SUBSTITUTE_FORWARD_KEY,
    CLIENT_DEPOSIT_MEAN_MS,
    CLIENT_FETCH_MEAN_MS,
    HUSH_LOG,
    RELAY_CONFIG,
    RUST_LOG,
];
