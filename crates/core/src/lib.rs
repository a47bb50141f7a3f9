//! hush-core: the client engine behind every hush front end (the TUI and the CLI).
//!
//! Principles:
//! - **One owner.** A single engine task owns the encrypted store and every session; front
//!   ends send typed commands and receive typed events, and never block on the network.
//! - **Commit before acknowledging.** An envelope is deleted from its relay only after what
//!   it carried is committed to the local store; an outgoing message is in the store's
//!   outbox before its first deposit. A crash at any point neither loses nor duplicates.
//! - **Nothing in the clear at rest.** The store is SQLCipher, keyed by Argon2id from the
//!   passphrase; logs carry no names, text, keys or mailbox ids.
//!
//! Map: [`profile`] (directories, config), [`store`] (encrypted database), [`engine`] (the
//! task, its commands and events), `transport` (relay links), [`embedded`] (the loopback
//! relay used when none is configured), `content` (text and receipts inside fragments).
#![forbid(unsafe_code)]

mod content;
pub mod embedded;
pub mod engine;
mod error;
pub mod passphrase;
pub mod profile;
pub mod store;
mod transport;

pub use engine::{
    ContactInfo, CrashPoint, Delivery, Event, Handle, MessageInfo, Options, SafetyInfo, Status,
};
pub use error::{Error, Result};
pub use passphrase::Passphrase;
pub use profile::{Config, Profile};
pub use store::Store;
