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
//! Map: [`profile`] (directories, config), [`store`] (encrypted database).
#![forbid(unsafe_code)]

mod error;
pub mod profile;
pub mod store;

pub use error::{Error, Result};
pub use profile::{Config, Profile};
pub use store::Store;
