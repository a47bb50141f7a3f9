//! hush-proto: the wire protocol between hush clients and a hush relay.
//!
//! This crate owns the exact bytes on the wire: the fixed-size [`FRAME_LEN`] frame that every
//! request and every response occupies, the command and response kinds, the error codes, the
//! protocol version, and the relay address format `hush://<pin>@host:port` with its binary
//! form (one parser for both). The normative description is `docs/PROTOCOL.md` (Part II);
//! test vectors live in `tests/vectors/`.
//!
//! Principles:
//! - **Sans-IO.** No sockets, no async runtime, no clock. Callers pass bytes in and get bytes
//!   out; time never enters this crate.
//! - **One size on the wire.** Every frame in both directions is exactly [`FRAME_LEN`] bytes,
//!   zero-padded, so the command cannot be told from the length.
//! - **Parse, don't validate.** Decoding returns typed values ([`Request`], [`Response`]) whose
//!   batches are already bounded; encoding a typed value cannot fail. Decoding never panics and
//!   maps every malformed input to a specific [`ErrorCode`].
//! - **Nothing identifying in `Debug`.** Mailbox ids, fetch secrets and envelopes print
//!   redacted, so a stray `{:?}` in a log cannot leak them.
//!
//! This crate must never depend on session cryptography: envelopes are opaque bytes here.
#![forbid(unsafe_code)]

mod address;
pub mod chunk;
pub mod drop;
mod error;
pub mod forward;
pub mod forward_chunk;
mod frame;
pub mod mux;
mod types;

pub use address::{Host, RelayAddress, SpkiPin};
pub use chunk::{CHUNK_LEN, ChunkId, ChunkSecret};
pub use drop::DropAddress;
pub use error::Error;
pub use frame::{ErrorCode, ErrorFrame, Pong, Request, Response, decode_request, decode_response};
pub use types::{
    DeleteIds, Delivery, ENVELOPE_LEN, Envelope, EnvelopeId, FetchSecret, MailboxId, SecretBatch,
};

/// The only protocol version this build speaks. Carried in byte 0 of every frame.
pub const VERSION: u8 = 2;
/// Oldest protocol version this build accepts.
pub const MIN_VERSION: u8 = 2;
/// Newest protocol version this build accepts.
pub const MAX_VERSION: u8 = 2;

/// TLS ALPN protocol id for protocol version 2. A relay that offers no matching ALPN fails
/// the TLS handshake (`no_application_protocol`), which is the first step of version
/// negotiation: a version-1 peer (`hush/1`) meets exactly that.
pub const ALPN: &[u8] = b"hush/2";

/// Size of the frame header: version, kind, two reserved bytes.
pub const HEADER_LEN: usize = 4;
/// Size of every frame on the wire, in both directions: the header and the body of the
/// largest request, a Forward carrying a sealed DepositStamped to the longest destination
/// address (docs/PROTOCOL.md II.2): 4 + 288 + 32 + 4181 = 4505.
pub const FRAME_LEN: usize =
    HEADER_LEN + forward::DESTINATION_LEN + forward::X25519_LEN + forward::SEALED_REQUEST_LEN;
/// Size of a frame body (everything after the header).
pub const BODY_LEN: usize = FRAME_LEN - HEADER_LEN;

/// Most fetch secrets one Fetch or Subscribe frame carries.
pub const MAX_SECRETS: usize = 128;
/// Most envelope ids one Delete frame carries.
pub const MAX_DELETE_IDS: usize = 512;
