//! hush-relay: a relay that durably holds fixed-size ciphertext envelopes under rotating
//! mailbox pseudonyms and hands them to whoever presents the fetch secret.
//!
//! Principles:
//! - **Learn as little as possible.** The relay sees 4096-byte envelopes, mailbox ids
//!   (`SHA-256(fetch_secret)`) and fetch secrets in transit. It stores envelopes under mailbox
//!   ids only; it never stores a fetch secret, never logs an address, a mailbox id or a secret,
//!   and exposes only relay-wide aggregates as metrics.
//! - **Acknowledged means durable.** `Deposited` is sent only after the commit holding the
//!   envelope is on disk; concurrent deposits share one commit (group commit).
//! - **The protocol is elsewhere.** Bytes on the wire are defined and decoded by hush-proto
//!   (sans-IO); this crate is the driver: QUIC, storage, timers. It never links session
//!   cryptography.
//!
//! Modules: [`admission`] (connection slots, per-source limits and budgets, the memory
//! model), [`config`] (TOML + environment), [`tls`] (identity, server configuration),
//! [`store`] (trait; redb and JetStream backends), [`disk`] (free space under the data
//! directory), [`commit`] (group commit), [`push`] (subscriptions), [`server`] (endpoint,
//! requests, shutdown), `tcp` (TLS over TCP carrying hush-proto's cells), [`metrics`] (health and Prometheus), [`clock`] (wall clock for expiry), [`forward`] (private
//! routing: the forwarding key, forwarding to other relays, opening forwarded deposits and chunk requests), `chunks` (file chunk requests and their limits). The client side, and the frame I/O on streams both sides share,
//! are hush-transport's.
#![forbid(unsafe_code)]

pub mod admission;
mod chunks;
pub mod clock;
pub mod commit;
pub mod config;
pub mod disk;
mod drops;
mod error;
pub mod forward;
pub mod metrics;
pub mod push;
#[cfg(feature = "test-hooks")]
pub mod record;
pub mod server;
pub mod store;
mod tcp;
pub mod tls;

pub use error::Error;
