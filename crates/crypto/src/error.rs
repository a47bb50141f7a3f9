//! The one error type of hush-crypto.
//!
//! Messages never contain key material, plaintext or identifiers: an error may be logged.

/// Everything that can go wrong in hush-crypto.
///
/// Variants in the first group mean the *peer or the network* produced bad input; the
/// second group means the *caller* misused the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- peer misbehaved, or data was corrupted in transit or storage ---
    /// An envelope was not exactly [`crate::ENVELOPE_LEN`] bytes.
    #[error("envelope must be exactly 4096 bytes, got {0}")]
    EnvelopeLength(usize),
    /// No known header key opens this envelope's header: it belongs to another session,
    /// its header was tampered with, or it is an old message whose keys were deleted.
    #[error("envelope header does not decrypt under any known header key")]
    HeaderUndecryptable,
    /// A header, handshake prefix or invite link carries a protocol version we do not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// The body failed authentication (tampered body or wrong message key).
    #[error("message body failed authentication")]
    BodyAuthFailed,
    /// A file chunk failed authentication (tampered, from another file, or at another
    /// index), or its padding after the file's end is not zero.
    #[error("file chunk failed authentication")]
    ChunkAuthFailed,
    /// This message was already decrypted once (its key is gone).
    #[error("message was already received (replay)")]
    MessageReplayed,
    /// The header asks to skip more message keys than MAX_SKIP allows.
    #[error("message skips {0} keys, more than the limit")]
    TooManySkipped(u64),
    /// The decrypted body is not well formed (bad length, non-zero padding, bad flags).
    #[error("malformed message body: {0}")]
    MalformedBody(&'static str),
    /// The peer's reply lacks the ML-KEM ciphertext the handshake requires.
    #[error("peer reply is missing the post-quantum key encapsulation")]
    MissingKemCiphertext,
    /// A public key received from the peer is invalid (ML-KEM key failing its check).
    #[error("invalid public key from peer")]
    InvalidPeerKey,
    /// An invite link could not be parsed.
    #[error("invalid invite: {0}")]
    InvalidInvite(&'static str),
    /// A relay address (in an invite, a mailbox move, or handed in by the caller) is not one
    /// a client can use: its host or port breaks the rules of the text form
    /// `hush://<pin>@host:port`, or its host is not written canonically. The message names
    /// the rule broken, never the address.
    #[error("relay address is not usable: {0}")]
    UnusableRelay(&'static str),
    /// An invite link's checksum does not match (typo or truncation).
    #[error("invite checksum mismatch (link damaged or mistyped)")]
    InviteChecksum,
    /// A one-time invite was used already by another party.
    #[error("one-time invite was already used")]
    InviteAlreadyUsed,
    /// A handshake message was made from a link that differs from the invite the inviter
    /// made (another relay, port, pin, key or kind): someone edited the link on its way.
    #[error("handshake was made from an edited invite link")]
    LinkMismatch,
    /// A handshake (first) message could not be opened with this invite's keys.
    #[error("handshake message does not belong to this invite")]
    HandshakeUndecryptable,
    /// A payload inside a decrypted body is malformed.
    #[error("malformed payload: {0}")]
    MalformedPayload(&'static str),
    /// Stored state could not be decoded.
    #[error("stored state is invalid: {0}")]
    InvalidState(&'static str),
    /// Stored state carries a version this build cannot read.
    #[error("stored state version {0} is not supported")]
    UnsupportedStateVersion(u8),

    // --- API misuse ---
    /// The payload is larger than the envelope can carry in the session's current state.
    #[error("payload of {len} bytes exceeds the envelope capacity of {capacity} bytes")]
    PayloadTooLong {
        /// Length that was passed.
        len: usize,
        /// What fits right now.
        capacity: usize,
    },
    /// The operation needs a state the session is not in (e.g. sending before any chain).
    #[error("operation not possible in the session's current state: {0}")]
    InvalidOperation(&'static str),
}
