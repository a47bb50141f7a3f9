//! The file descriptor: what a file message carries inside the encrypted conversation
//! (docs/PROTOCOL.md section 7a), and its one parser. Here, beside the chunks' encryption and
//! without the client's store, so that it can be fuzzed (fuzz/fuzz_targets/file_descriptor.rs).
//!
//! Owns: the byte layout and every check a received descriptor must pass before anything is
//! stored or fetched for it: the name's bytes, the chunk size, the chunk count against the
//! size, the size against the format's ceiling, the relay address. The user's own size limit
//! and the name's neutralisation for the file system come later, in hush-core.
//! Must never print the file secret or the name through `Debug`.

use hush_proto::{CHUNK_LEN, RelayAddress};

use crate::file::{CHUNK_PAYLOAD, FileSecret, chunk_count};

/// Version byte of the descriptor layout.
pub const DESCRIPTOR_VERSION: u8 = 1;
/// Longest name a descriptor carries, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 255;
/// Largest file a descriptor may announce: 64 GiB. A chunk index is a `u32`; this keeps a
/// transfer's chunk count (262,144 at most) small enough to track per chunk.
pub const MAX_FILE_LEN: u64 = 64 << 30;

/// Which check of docs/PROTOCOL.md 7a a descriptor failed (the peer misbehaved). Its
/// [`name`](Self::name) is the stable code hush-core stores and the CLI prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DescriptorFault {
    /// It does not parse (truncated, trailing bytes, unknown version).
    Malformed,
    /// The name is empty, longer than 255 bytes or not UTF-8.
    BadName,
    /// The chunk size is not the one this protocol uses.
    ChunkSize,
    /// The chunk count does not follow from the size (a count far above it would make the
    /// receiver fetch forever; one below would leave the file short).
    ChunkCountMismatch,
    /// The size is above what any descriptor may announce (64 GiB).
    Oversized,
    /// The relay address does not parse.
    BadRelay,
}

impl DescriptorFault {
    /// A short stable name (`file_malformed`, ...), as the vectors list it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Malformed => "file_malformed",
            Self::BadName => "file_bad_name",
            Self::ChunkSize => "file_chunk_size",
            Self::ChunkCountMismatch => "file_chunk_count_mismatch",
            Self::Oversized => "file_oversized",
            Self::BadRelay => "file_bad_relay",
        }
    }
}

/// A parsed, checked file descriptor.
#[derive(Clone, PartialEq, Eq)]
pub struct FileDescriptor {
    /// The name the sender gave (raw: neutralise before it touches a file system
    /// (hush-core's `files::safe_name`)).
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
    /// [`DescriptorFault::BadName`] or [`DescriptorFault::BadRelay`] if the descriptor could not be parsed
    /// back (an encoder never writes what the parser refuses).
    pub fn encode(&self) -> Result<Vec<u8>, DescriptorFault> {
        let name = self.name.as_bytes();
        let name_len = u8::try_from(name.len()).map_err(|_| DescriptorFault::BadName)?;
        if name.is_empty() {
            return Err(DescriptorFault::BadName);
        }
        let relay = self
            .relay
            .to_binary()
            .map_err(|_| DescriptorFault::BadRelay)?;
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
    /// The first [`DescriptorFault`] found.
    pub fn decode(b: &[u8]) -> Result<Self, DescriptorFault> {
        let mut r = Cursor(b);
        if r.take::<1>()?[0] != DESCRIPTOR_VERSION {
            return Err(DescriptorFault::Malformed);
        }
        let size = u64::from_be_bytes(r.take()?);
        let chunk_len = u32::from_be_bytes(r.take()?);
        let count = u32::from_be_bytes(r.take()?);
        let digest = r.take::<32>()?;
        let secret = FileSecret::from_bytes(r.take()?);
        if size > MAX_FILE_LEN {
            return Err(DescriptorFault::Oversized);
        }
        if usize::try_from(chunk_len).ok() != Some(CHUNK_LEN) {
            return Err(DescriptorFault::ChunkSize);
        }
        if u64::from(count) != chunk_count(size) {
            return Err(DescriptorFault::ChunkCountMismatch);
        }
        let name_len = usize::from(r.take::<1>()?[0]);
        let name = r.bytes(name_len)?;
        let name = std::str::from_utf8(name).map_err(|_| DescriptorFault::BadName)?;
        if name.is_empty() {
            return Err(DescriptorFault::BadName);
        }
        let (relay, rest) = RelayAddress::from_binary(r.0).map_err(|e| match e {
            hush_proto::Error::AddressTruncated => DescriptorFault::Malformed,
            _ => DescriptorFault::BadRelay,
        })?;
        if !rest.is_empty() {
            return Err(DescriptorFault::Malformed);
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
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DescriptorFault> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(DescriptorFault::Malformed)?;
        self.0 = rest;
        Ok(*head)
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DescriptorFault> {
        if self.0.len() < n {
            return Err(DescriptorFault::Malformed);
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
            Err(DescriptorFault::ChunkCountMismatch)
        );
        assert_eq!(
            with(13, &0u32.to_be_bytes()),
            Err(DescriptorFault::ChunkCountMismatch)
        );
        // A size beyond the format's ceiling.
        assert_eq!(
            with(1, &u64::MAX.to_be_bytes()),
            Err(DescriptorFault::Oversized)
        );
        assert_eq!(
            with(9, &65536u32.to_be_bytes()),
            Err(DescriptorFault::ChunkSize)
        );
        assert_eq!(with(0, &[2]), Err(DescriptorFault::Malformed));
        // Name: not UTF-8, empty.
        assert_eq!(with(82, &[0xff]), Err(DescriptorFault::BadName));
        let mut empty = good[..81].to_vec();
        empty.push(0);
        empty.extend_from_slice(&good[81 + 1 + 5..]);
        assert_eq!(
            FileDescriptor::decode(&empty),
            Err(DescriptorFault::BadName)
        );
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            FileDescriptor::decode(&long),
            Err(DescriptorFault::Malformed)
        );
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
