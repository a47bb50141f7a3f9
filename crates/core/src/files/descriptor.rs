//! The file descriptor: what a file message carries inside the encrypted conversation
//! (docs/PROTOCOL.md section 7a), and its one parser.
//!
//! Owns: the byte layout and every check a received descriptor must pass before anything is
//! stored or fetched for it: the name's bytes, the chunk size, the chunk count against the
//! size, the size against the format's ceiling, the relay address. The user's own size limit
//! and the name's neutralisation for the file system come later ([`super::name`], accept).
//! Must never print the file secret or the name through `Debug`.

use hush_crypto::file::{CHUNK_PAYLOAD, FileSecret, chunk_count};
use hush_proto::{CHUNK_LEN, RelayAddress};

/// Version byte of the descriptor layout.
pub const DESCRIPTOR_VERSION: u8 = 1;
/// Longest name a descriptor carries, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 255;
/// Largest file a descriptor may announce: 64 GiB. A chunk index is a `u32`; this keeps a
/// transfer's chunk count (262,144 at most) small enough to track per chunk.
pub const MAX_FILE_LEN: u64 = 64 << 30;

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

/// A parsed, checked file descriptor.
#[derive(Clone, PartialEq, Eq)]
pub struct FileDescriptor {
    /// The name the sender gave (raw: neutralise with [`super::name::safe_name`] before
    /// it touches a file system).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the whole file.
    pub digest: [u8; 32],
    /// The file's secret (chunk names and keys).
    pub secret: FileSecret,
    /// The relay holding the chunks.
    pub relay: RelayAddress,
}

impl std::fmt::Debug for FileDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            name: _,
            size,
            digest: _,
            secret: _,
            relay: _,
        } = self;
        f.debug_struct("FileDescriptor")
            .field("size", size)
            .finish_non_exhaustive()
    }
}

impl FileDescriptor {
    /// Chunks the file takes.
    #[must_use]
    pub fn chunk_count(&self) -> u32 {
        // Bounded by MAX_FILE_LEN / CHUNK_PAYLOAD, far below u32::MAX.
        u32::try_from(chunk_count(self.size)).unwrap_or(u32::MAX)
    }

    /// File bytes carried by chunk `index`.
    #[must_use]
    pub fn chunk_plain_len(&self, index: u32) -> usize {
        let start = u64::from(index) * CHUNK_PAYLOAD as u64;
        let len = self.size.saturating_sub(start).min(CHUNK_PAYLOAD as u64);
        usize::try_from(len).unwrap_or(CHUNK_PAYLOAD)
    }

    /// The layout of section 7a: `version (1) || u64 size || u32 chunk_len || u32 chunk_count
    /// || digest (32) || secret (32) || u8 name_len || name || binary relay address`.
    ///
    /// # Errors
    /// [`FileError::BadName`] or [`FileError::BadRelay`] if the descriptor could not be parsed
    /// back (an encoder never writes what the parser refuses).
    pub fn encode(&self) -> Result<Vec<u8>, FileError> {
        let name = self.name.as_bytes();
        let name_len = u8::try_from(name.len()).map_err(|_| FileError::BadName)?;
        if name.is_empty() {
            return Err(FileError::BadName);
        }
        let relay = self.relay.to_binary().map_err(|_| FileError::BadRelay)?;
        let mut out = Vec::with_capacity(82 + name.len() + relay.len());
        out.push(DESCRIPTOR_VERSION);
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&(CHUNK_LEN as u32).to_be_bytes());
        out.extend_from_slice(&self.chunk_count().to_be_bytes());
        out.extend_from_slice(&self.digest);
        out.extend_from_slice(self.secret.as_bytes());
        out.push(name_len);
        out.extend_from_slice(name);
        out.extend_from_slice(&relay);
        Ok(out)
    }

    /// Parses and checks a received descriptor, in this order: version and length
    /// (`Malformed`), size (`Oversized`), chunk size (`ChunkSize`), chunk count
    /// (`ChunkCountMismatch`), name (`BadName`), relay (`BadRelay`), trailing bytes
    /// (`Malformed`).
    ///
    /// # Errors
    /// The first [`FileError`] found.
    pub fn decode(b: &[u8]) -> Result<Self, FileError> {
        let mut r = Cursor(b);
        if r.take::<1>()?[0] != DESCRIPTOR_VERSION {
            return Err(FileError::Malformed);
        }
        let size = u64::from_be_bytes(r.take()?);
        let chunk_len = u32::from_be_bytes(r.take()?);
        let count = u32::from_be_bytes(r.take()?);
        let digest = r.take::<32>()?;
        let secret = FileSecret::from_bytes(r.take()?);
        if size > MAX_FILE_LEN {
            return Err(FileError::Oversized);
        }
        if usize::try_from(chunk_len).ok() != Some(CHUNK_LEN) {
            return Err(FileError::ChunkSize);
        }
        if u64::from(count) != chunk_count(size) {
            return Err(FileError::ChunkCountMismatch);
        }
        let name_len = usize::from(r.take::<1>()?[0]);
        let name = r.bytes(name_len)?;
        let name = std::str::from_utf8(name).map_err(|_| FileError::BadName)?;
        if name.is_empty() {
            return Err(FileError::BadName);
        }
        let (relay, rest) = RelayAddress::from_binary(r.0).map_err(|e| match e {
            hush_proto::Error::AddressTruncated => FileError::Malformed,
            _ => FileError::BadRelay,
        })?;
        if !rest.is_empty() {
            return Err(FileError::Malformed);
        }
        Ok(Self {
            name: name.to_owned(),
            size,
            digest,
            secret,
            relay,
        })
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], FileError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(FileError::Malformed)?;
        self.0 = rest;
        Ok(*head)
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], FileError> {
        if self.0.len() < n {
            return Err(FileError::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(name: &str, size: u64) -> FileDescriptor {
        FileDescriptor {
            name: name.into(),
            size,
            digest: [7; 32],
            secret: FileSecret::from_bytes([9; 32]),
            relay: "hush://AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8@relay.example.org:4433"
                .parse()
                .unwrap(),
        }
    }

    #[test]
    fn round_trip_in_the_worlds_names() {
        for (name, size) in [
            ("报告.pdf", 0),
            ("تقرير سري.docx", 1),
            ("📸🌍.jpg", 50_000_000),
            ("x", MAX_FILE_LEN),
            (&"長".repeat(85), 1 << 30),
        ] {
            let d = sample(name, size);
            let back = FileDescriptor::decode(&d.encode().unwrap()).unwrap();
            assert_eq!(back, d);
        }
    }

    #[test]
    fn hostile_descriptors_get_their_specific_error() {
        let good = sample("a.txt", 1_000_000).encode().unwrap();
        let with = |at: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            FileDescriptor::decode(&b)
        };
        // A huge chunk count for a small file (a receiver would fetch forever).
        assert_eq!(
            with(13, &u32::MAX.to_be_bytes()),
            Err(FileError::ChunkCountMismatch)
        );
        assert_eq!(
            with(13, &0u32.to_be_bytes()),
            Err(FileError::ChunkCountMismatch)
        );
        // A size beyond the format's ceiling.
        assert_eq!(with(1, &u64::MAX.to_be_bytes()), Err(FileError::Oversized));
        assert_eq!(with(9, &65536u32.to_be_bytes()), Err(FileError::ChunkSize));
        assert_eq!(with(0, &[2]), Err(FileError::Malformed));
        // Name: not UTF-8, empty.
        assert_eq!(with(82, &[0xff]), Err(FileError::BadName));
        let mut empty = good[..81].to_vec();
        empty.push(0);
        empty.extend_from_slice(&good[81 + 1 + 5..]);
        assert_eq!(FileDescriptor::decode(&empty), Err(FileError::BadName));
        let mut long = good.clone();
        long.push(0);
        assert_eq!(FileDescriptor::decode(&long), Err(FileError::Malformed));
        for n in 0..good.len() {
            assert!(
                FileDescriptor::decode(&good[..n]).is_err(),
                "prefix of {n} bytes"
            );
        }
        assert!(sample(&"x".repeat(256), 1).encode().is_err());
        assert!(sample("", 1).encode().is_err());
    }

    #[test]
    fn debug_leaves_the_secret_and_name_out() {
        let d = sample("秘密.pdf", 5);
        assert!(!format!("{d:?}").contains("秘密"));
    }
}
