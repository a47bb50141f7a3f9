//! hush-core: the client engine behind every hush front end (the TUI and the CLI).
//!
//! Principles:
//! - **Logic without I/O.** The [`engine`] is a deterministic state machine: commands, link
//!   events and timeouts in; link requests, events and replies out. It never reads the
//!   clock, draws randomness only from the generator it was seeded with, and never spawns.
//!   The [`driver`] runs it for real (clock, relay links, tasks); the simulated world in
//!   the tests runs it in simulated time.
//! - **Commit before acknowledging.** An envelope is deleted from its relay only after what
//!   it carried is committed to the local store; an outgoing message is in the store's
//!   outbox before its first deposit. A crash at any point neither loses nor duplicates.
//! - **Nothing in the clear at rest.** The [`store`] is SQLCipher, keyed by Argon2id from the
//!   passphrase; logs carry no names, text, keys or mailbox ids, and the `Debug` of every
//!   public type that holds them leaves them out.
//!
//! Map: [`api`] (the handle, commands, events and info types front ends use), [`engine`]
//! (the state machine), [`driver`] (runs it: clock, links, the local relay), `link` (one
//! relay connection), [`local_relay`] (the hook through which a binary that links a relay
//! serves one on loopback), [`store`] (the encrypted database, one module per table),
//! [`profile`] (directories, config), `content` (text, receipts and file descriptors inside fragments), [`files`] (file transfer),
//! `backoff` (retry spacing).
#![forbid(unsafe_code)]

pub mod api;
mod backoff;
mod content;
pub mod driver;
pub mod engine;
mod error;
pub mod files;
mod link;
pub mod local_relay;
pub mod passphrase;
pub mod profile;
#[cfg(test)]
mod sim;
pub mod store;

pub use api::{
    Command, ContactInfo, DeliveryState, Event, FileCommand, Handle, InviteInfo, InviteLink,
    MessageInfo, ONE_TIME_INVITE_LIFETIME_SECS, Response, SafetyInfo, Status,
};
pub use driver::{Options, check_relay, start};
#[cfg(feature = "test-hooks")]
pub use engine::CrashPoint;
pub use engine::{TrafficConfig, TrafficCost};
pub use error::{Error, Result};
pub use local_relay::{BoxFuture, LocalRelay, ServedRelay};
pub use passphrase::Passphrase;
pub use profile::{Config, Profile, Routing};
pub use store::Store;
