//! hush-transport: how a hush client reaches a relay.
//!
//! This crate owns the client side of the connection: the pinned TLS 1.3 client
//! configuration (a relay is identified by the SHA-256 of its SPKI, not by a CA), reading and
//! writing whole [`hush_proto::FRAME_LEN`] frames on QUIC streams (the relay server uses the
//! same [`stream`] functions) or on hush-proto's cell streams over TLS/TCP, and the relay
//! client with its typed requests and push
//! subscriptions. Wire bytes are hush-proto's; this crate only moves them.
//!
//! Principles:
//! - **The pin is the identity.** No connection is made without a verifier that compares the
//!   certificate's SPKI hash with the pin and checks the TLS 1.3 signature; TLS 1.2 and 0-RTT
//!   are never enabled.
//! - **A refusal is an error.** A relay error frame always surfaces as [`Error::Relay`], never
//!   as a success or an empty result.
//! - **Nothing identifying leaves.** Fetch secrets, mailbox ids and envelope bytes are never
//!   logged, printed or put in an error message; request frames holding fetch secrets are
//!   wiped once written or read.
//!
//! Modules: [`tls`] (pin verifier and client configuration), [`stream`] (frame I/O on QUIC
//! streams), `client` (the relay client, [`RelayClient`], re-exported at the root, over
//! QUIC or over the TCP transport of `tcp`, directly or through the SOCKS5 client of
//! `socks`). [`Error`]
//! separates what the relay or the network did from local failures and misuse.
#![forbid(unsafe_code)]

mod client;
mod error;
mod socks;
pub mod stream;
mod tcp;
pub mod tls;

pub use client::{
    DeleteOutcome, FetchPage, KEEP_ALIVE, RelayClient, Route, Subscription, client_endpoint,
    relay_error,
};
pub use error::Error;
pub use socks::Socks5;
pub use tls::spki_pin;
