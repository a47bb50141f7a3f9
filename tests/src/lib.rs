//! hush's end-to-end test kit: the one harness every end-to-end suite uses (`relay/tests`,
//! `client/tests` and the cross-component suites in `tests/tests/`).
//!
//! It owns what running real processes over loopback needs: finding (or building) the
//! workspace binaries ([`hush_bin`], [`relay_bin`]), free loopback ports, `hush-relay`
//! processes in temporary directories ([`Relay`]: init, run with environment overrides,
//! wait until listening, SIGKILL, SIGTERM, restart on the same port and data, metrics,
//! logs), isolated client data roots ([`Home`]: the `hush` CLI with a passphrase from the
//! environment, `--json` helpers), a SOCKS5 proxy that records what it was asked
//! ([`socks`]), photos carrying metadata ([`photo`]), bounded waits ([`poll`], [`poll_async`]), a seeded generator ([`SplitMix64`]) and the names
//! of the binaries' test hooks ([`hooks`]).
//!
//! What it must never do: mock a component, or link hush-relay, hush-core or hush (each
//! takes this crate as a dev-dependency; the kit talks to them only as processes). Helpers
//! that need a component's types (raw frames, relay clients) stay in that suite's files.
//! Waiting is bounded polling for a state, never a fixed sleep or an assertion on speed; a
//! process that hangs is killed after a long guard so the test fails instead of hanging.
#![forbid(unsafe_code)]
// A harness for tests: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bins;
mod fs;
pub mod hooks;
pub mod photo;
mod profile;
mod relay;
mod rng;
pub mod socks;
mod wait;

pub use bins::{bin_dir, hush_bin, relay_bin};
pub use fs::{contains, files_under, snapshot, unix_now};
pub use profile::{Home, Hush, Out, Running, history_rows, messages, pair};
pub use relay::{Relay, free_udp_port, udp_port_bound};
pub use rng::SplitMix64;
pub use wait::{HANG_GUARD, output_guarded, poll, poll_async};
