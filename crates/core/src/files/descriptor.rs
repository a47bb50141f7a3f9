//! The file descriptor (docs/PROTOCOL.md section 7a) as the client uses it, and every way a
//! file transfer can be refused or fail.
//!
//! The layout and its checks live in hush-crypto ([`hush_crypto::descriptor`], fuzzed there
//! without SQLCipher); this module names their faults among the client's own
//! ([`FileError`]): the user's size limit, missing chunks, a changed source, an image whose
//! metadata could not be removed. The name's neutralisation is [`super::name`].

pub use hush_crypto::descriptor::{
    DESCRIPTOR_VERSION, DescriptorFault, FileDescriptor, MAX_FILE_LEN, MAX_NAME_LEN,
};

/// Why a descriptor or a transfer was refused. Stable names (CLI codes, the file's state).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The descriptor does not parse (truncated, trailing bytes, unknown version).
    #[error("malformed file descriptor")]
    Malformed,
    /// The name is empty, longer than 255 bytes or not UTF-8.
    #[error("the file's name is empty, too long or not UTF-8")]
    BadName,
    /// The chunk size is not the one this protocol uses.
    #[error("the file uses a chunk size this hush does not know")]
    ChunkSize,
    /// The chunk count does not follow from the size (a count far above it would make the
    /// receiver fetch forever; one below would leave the file short).
    #[error("the file's chunk count does not match its size")]
    ChunkCountMismatch,
    /// The size is above what any descriptor may announce (64 GiB).
    #[error("the file is larger than hush transfers (64 GiB)")]
    Oversized,
    /// The size is above the limit the user set (`file_limit_bytes`).
    #[error("the file is larger than your limit for received files")]
    OverLimit,
    /// The relay address does not parse.
    #[error("the file's relay address is unusable")]
    BadRelay,
    /// A chunk failed authentication or carried non-zero padding.
    #[error("a chunk of the file failed authentication")]
    ChunkCorrupt,
    /// The whole file's SHA-256 differs from the descriptor's: nothing was kept.
    #[error("the received file's digest does not match: nothing was kept")]
    DigestMismatch,
    /// The relay no longer has a chunk (expired or deleted): the file cannot complete.
    #[error("the relay no longer has this file (expired or deleted)")]
    ChunkMissing,
    /// The relay stores no chunks or has no room.
    #[error("the relay refused the file's chunks (no chunk storage or full)")]
    RelayRefused,
    /// The file changed on disk while it was being sent.
    #[error("the file changed while it was being sent")]
    SourceChanged,
    /// A JPEG or PNG whose metadata could not be removed (malformed, larger than 64 MiB, or
    /// with metadata after its picture): refused rather than sent with it.
    #[error(
        "this image's metadata could not be removed: send it with --keep-metadata to send it as is"
    )]
    Unstrippable,
}

impl FileError {
    /// A short stable name (CLI `--json` codes, the stored state of a failed transfer).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Malformed => "file_malformed",
            Self::BadName => "file_bad_name",
            Self::ChunkSize => "file_chunk_size",
            Self::ChunkCountMismatch => "file_chunk_count_mismatch",
            Self::Oversized => "file_oversized",
            Self::OverLimit => "file_over_limit",
            Self::BadRelay => "file_bad_relay",
            Self::ChunkCorrupt => "file_chunk_corrupt",
            Self::DigestMismatch => "file_digest_mismatch",
            Self::ChunkMissing => "file_chunk_missing",
            Self::RelayRefused => "file_relay_refused",
            Self::SourceChanged => "file_source_changed",
            Self::Unstrippable => "file_unstrippable",
        }
    }

    /// The error named `name` (inverse of [`FileError::name`]).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Malformed,
            Self::BadName,
            Self::ChunkSize,
            Self::ChunkCountMismatch,
            Self::Oversized,
            Self::OverLimit,
            Self::BadRelay,
            Self::ChunkCorrupt,
            Self::DigestMismatch,
            Self::ChunkMissing,
            Self::RelayRefused,
            Self::SourceChanged,
            Self::Unstrippable,
        ]
        .into_iter()
        .find(|e| e.name() == name)
    }
}

impl From<DescriptorFault> for FileError {
    fn from(f: DescriptorFault) -> Self {
        match f {
            DescriptorFault::BadName => Self::BadName,
            DescriptorFault::ChunkSize => Self::ChunkSize,
            DescriptorFault::ChunkCountMismatch => Self::ChunkCountMismatch,
            DescriptorFault::Oversized => Self::Oversized,
            DescriptorFault::BadRelay => Self::BadRelay,
            // And any fault a newer hush-crypto adds.
            _ => Self::Malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_keeps_its_name() {
        for f in [
            DescriptorFault::Malformed,
            DescriptorFault::BadName,
            DescriptorFault::ChunkSize,
            DescriptorFault::ChunkCountMismatch,
            DescriptorFault::Oversized,
            DescriptorFault::BadRelay,
        ] {
            assert_eq!(FileError::from(f).name(), f.name());
            assert_eq!(FileError::from_name(f.name()), Some(FileError::from(f)));
        }
    }
}
