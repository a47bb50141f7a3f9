//! The one error type of hush-proto.
//!
//! Owns: every way decoding bytes or parsing an address can fail, and the mapping from a
//! decoding failure to the wire [`ErrorCode`] a relay answers with. Must never carry the bytes
//! it rejected: messages name the field and the rule, never a secret, id or address.

use crate::frame::ErrorCode;

/// Everything that can go wrong in hush-proto. All variants describe input received from a
/// peer or a user (peer misbehaved); encoding a typed value cannot fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Fewer bytes than one frame.
    #[error("frame truncated: {0} bytes, expected {len}", len = crate::FRAME_LEN)]
    Truncated(usize),
    /// More bytes than one frame where one frame was expected.
    #[error("frame oversized: {0} bytes, expected {len}", len = crate::FRAME_LEN)]
    Oversized(usize),
    /// Byte 0 names a version this build does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// Byte 1 names no known frame kind.
    #[error("unknown frame kind 0x{0:02x}")]
    UnknownKind(u8),
    /// A known kind that is not valid in this direction (a response sent as a request).
    #[error("frame kind 0x{0:02x} not valid in this direction")]
    UnexpectedKind(u8),
    /// A reserved field is not zero.
    #[error("reserved field is not zero")]
    ReservedNotZero,
    /// Bytes after the used part of the body are not zero.
    #[error("padding is not zero")]
    PaddingNotZero,
    /// A count field is zero or above its maximum.
    #[error("count {count} out of range 1..={max}")]
    BadCount {
        /// The count found.
        count: usize,
        /// The largest count allowed.
        max: usize,
    },
    /// A field holds a value outside its domain (for example a boolean byte that is not 0 or 1).
    #[error("field {0} holds an invalid value")]
    BadField(&'static str),
    /// A relay address does not parse; the message names the part, never the input.
    #[error("invalid relay address: {0}")]
    BadAddress(&'static str),
    /// The bytes end inside a binary-form relay address.
    #[error("relay address truncated")]
    AddressTruncated,
    /// A cell of the TCP transport's stream layer breaks the named rule (docs/PROTOCOL.md
    /// II.1.2).
    #[error("invalid cell: {0}")]
    BadCell(&'static str),
    /// A forwarding-key statement failed the named check (docs/PROTOCOL.md II.4.2): the
    /// relay that sent it is not the pinned one, or a relay on the way substituted it.
    #[error("forwarding key statement refused: {0}")]
    KeyStatement(&'static str),
    /// A sealed forwarded request or answer did not open (wrong key, tampered, or an
    /// answer to another request).
    #[error("sealed forwarded request or answer does not open")]
    Unsealable,
    /// An envelope was not exactly [`crate::ENVELOPE_LEN`] bytes.
    #[error("envelope must be exactly {len} bytes, got {0}", len = crate::ENVELOPE_LEN)]
    EnvelopeLength(usize),
}

impl Error {
    /// The wire error code a relay answers with when a request fails to decode this way.
    /// `None` for errors that are not about frames (addresses, envelope lengths).
    #[must_use]
    pub fn code(&self) -> Option<ErrorCode> {
        Some(match self {
            Self::Truncated(_) => ErrorCode::Truncated,
            Self::Oversized(_) => ErrorCode::Oversized,
            Self::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            Self::UnknownKind(_) => ErrorCode::UnknownKind,
            Self::UnexpectedKind(_) => ErrorCode::UnexpectedKind,
            Self::ReservedNotZero => ErrorCode::ReservedNotZero,
            Self::PaddingNotZero => ErrorCode::PaddingNotZero,
            Self::BadCount { .. } => ErrorCode::BadCount,
            Self::BadField(_) => ErrorCode::BadField,
            Self::Unsealable => ErrorCode::ForwardUnsealable,
            Self::BadAddress(_)
            | Self::AddressTruncated
            | Self::EnvelopeLength(_)
            | Self::BadCell(_)
            | Self::KeyStatement(_) => return None,
        })
    }
}
