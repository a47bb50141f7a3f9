//! Chunk storage of the redb backend: one file per chunk in `chunks/` beside `relay.redb`.
//!
//! Owns: the on-disk layout of file chunks (docs/PROTOCOL.md II.4.3), their quota (count, and
//! so bytes: every chunk is [`CHUNK_LEN`]), their expiry and their erasure.
//! A chunk is the file `chunks/<hex of its storage key>`: an 8-byte big-endian `stored_at`
//! (Unix seconds) then the `CHUNK_LEN` bytes. A put writes `chunks/.tmp-<n>`, syncs it,
//! renames it into place and syncs the directory, so a chunk is either whole or absent after a
//! crash; leftovers of interrupted puts are removed at open. A delete (or expiry) overwrites
//! the file with zeros, syncs and unlinks it, so a deleted chunk is not in the file system's
//! live data any more (what a copy-on-write or journaling file system or an SSD keeps of old
//! blocks is below this layer: docs/OPERATING.md).
//! Why files, not redb rows: the redb file is rewritten whole by its scrub; gigabytes of
//! chunks would make each scrub copy gigabytes, while a file per chunk is erased on its own.
//! Must never name a file after a chunk id (only after its storage key), and never keep any
//! record of which connection put or read a chunk.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use hush_proto::{CHUNK_LEN, ChunkId};

use crate::Error;

/// The directory of chunks inside the data directory.
pub const CHUNK_DIR: &str = "chunks";
/// Bytes of the header before a chunk's content.
const HEADER: usize = 8;
/// Prefix of a put's temporary file.
const TMP_PREFIX: &str = ".tmp-";

/// The outcome of a put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkPut {
    /// Stored now.
    Stored,
    /// A chunk under that id was already stored; nothing changed.
    AlreadyStored,
    /// The chunk store holds its quota.
    Full,
}

/// Aggregate figures of the chunk store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkStats {
    /// Chunks stored.
    pub chunks: u64,
}

/// The chunk files of one relay.
pub struct ChunkFiles {
    dir: PathBuf,
    max_chunks: u64,
    stored: AtomicU64,
    tmp_seq: AtomicU64,
    /// Serialises puts and deletes of the same name and the quota check. Chunk writes are
    /// 256 KiB each and already bounded by the in-flight limit, so one lock costs little.
    lock: Mutex<()>,
}

impl std::fmt::Debug for ChunkFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkFiles").finish_non_exhaustive()
    }
}

fn name_of(id: &ChunkId) -> String {
    hex_lower(&id.storage_key())
}

fn hex_lower(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(char::from(DIGITS[usize::from(x >> 4)]));
        s.push(char::from(DIGITS[usize::from(x & 0xf)]));
    }
    s
}

fn is_chunk_name(n: &str) -> bool {
    n.len() == 64
        && n.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl ChunkFiles {
    /// Opens (creating) `data_dir/chunks`, removes leftovers of interrupted puts and counts
    /// the chunks stored.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory cannot be created or read.
    pub fn open(data_dir: &Path, max_chunks: u64) -> Result<Self, Error> {
        let dir = data_dir.join(CHUNK_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let mut stored = 0u64;
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("reading the chunk directory", e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(TMP_PREFIX) {
                erase(&entry.path())?;
            } else if is_chunk_name(&name) {
                stored += 1;
            }
        }
        Ok(Self {
            dir,
            max_chunks,
            stored: AtomicU64::new(stored),
            tmp_seq: AtomicU64::new(0),
            lock: Mutex::new(()),
        })
    }

    /// Stores `data` (exactly [`CHUNK_LEN`] bytes) under `id` at time `now`, durably.
    ///
    /// # Errors
    /// [`Error::Storage`] for a wrong length, [`Error::Io`] if writing failed (nothing is
    /// then stored under `id`).
    pub fn put(&self, id: &ChunkId, data: &[u8], now: u64) -> Result<ChunkPut, Error> {
        if data.len() != CHUNK_LEN {
            return Err(Error::Storage(
                "a chunk must be exactly CHUNK_LEN bytes".into(),
            ));
        }
        let path = self.dir.join(name_of(id));
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        if path.exists() {
            return Ok(ChunkPut::AlreadyStored);
        }
        if self.stored.load(Ordering::Acquire) >= self.max_chunks {
            return Ok(ChunkPut::Full);
        }
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!("{TMP_PREFIX}{seq}"));
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&now.to_be_bytes())?;
            f.write_all(data)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io("writing a chunk", e));
        }
        self.stored.fetch_add(1, Ordering::AcqRel);
        Ok(ChunkPut::Stored)
    }

    /// The chunk stored under `id`, if any and not expired at `cutoff` (stored before it).
    ///
    /// # Errors
    /// [`Error::Io`] if reading failed.
    pub fn get(&self, id: &ChunkId, cutoff: u64) -> Result<Option<Vec<u8>>, Error> {
        let path = self.dir.join(name_of(id));
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("opening a chunk", e)),
        };
        let mut head = [0u8; HEADER];
        let mut data = vec![0u8; CHUNK_LEN];
        let read = f
            .read_exact(&mut head)
            .and_then(|()| f.read_exact(&mut data));
        if let Err(e) = read {
            return Err(Error::io("reading a chunk", e));
        }
        if u64::from_be_bytes(head) < cutoff {
            return Ok(None);
        }
        Ok(Some(data))
    }

    /// Erases the chunk stored under `id`; `false` if there was none.
    ///
    /// # Errors
    /// [`Error::Io`] if erasing failed.
    pub fn delete(&self, id: &ChunkId) -> Result<bool, Error> {
        let path = self.dir.join(name_of(id));
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        if !path.exists() {
            return Ok(false);
        }
        erase(&path)?;
        let _ = File::open(&self.dir).and_then(|d| d.sync_all());
        self.stored.fetch_sub(1, Ordering::AcqRel);
        Ok(true)
    }

    /// Erases up to `max` chunks stored before `cutoff`; returns how many.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory cannot be read or a chunk cannot be erased.
    pub fn sweep(&self, cutoff: u64, max: usize) -> Result<u64, Error> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| Error::io("reading the chunk directory", e))?;
        let mut expired: HashMap<PathBuf, ()> = HashMap::new();
        for entry in entries {
            if expired.len() >= max {
                break;
            }
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            if !is_chunk_name(&name.to_string_lossy()) {
                continue;
            }
            let mut head = [0u8; HEADER];
            let stored_at = File::open(entry.path())
                .and_then(|mut f| f.read_exact(&mut head))
                .map(|()| u64::from_be_bytes(head));
            if matches!(stored_at, Ok(t) if t < cutoff) {
                expired.insert(entry.path(), ());
            }
        }
        let mut n = 0;
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        for path in expired.into_keys() {
            if path.exists() {
                erase(&path)?;
                self.stored.fetch_sub(1, Ordering::AcqRel);
                n += 1;
            }
        }
        if n > 0 {
            let _ = File::open(&self.dir).and_then(|d| d.sync_all());
        }
        Ok(n)
    }

    /// Aggregate figures.
    pub fn stats(&self) -> ChunkStats {
        ChunkStats {
            chunks: self.stored.load(Ordering::Acquire),
        }
    }
}

/// Overwrites a file with zeros, syncs it and unlinks it.
fn erase(path: &Path) -> Result<(), Error> {
    let erased = (|| {
        let len = std::fs::metadata(path)?.len();
        let mut f = OpenOptions::new().write(true).open(path)?;
        let zeros = vec![0u8; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
            f.write_all(zeros.get(..n).unwrap_or(&zeros))?;
            left -= n as u64;
        }
        f.sync_all()?;
        std::fs::remove_file(path)
    })();
    erased.map_err(|e| Error::io("erasing a chunk", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(b: u8) -> Vec<u8> {
        vec![b; CHUNK_LEN]
    }

    fn raw_files(dir: &Path) -> Vec<u8> {
        let mut all = Vec::new();
        for e in std::fs::read_dir(dir.join(CHUNK_DIR)).unwrap() {
            all.extend(std::fs::read(e.unwrap().path()).unwrap());
        }
        all
    }

    #[test]
    fn put_is_idempotent_quota_holds_and_delete_erases() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ChunkFiles::open(tmp.path(), 2).unwrap();
        let (a, b, c) = (ChunkId([1; 32]), ChunkId([2; 32]), ChunkId([3; 32]));
        assert_eq!(store.put(&a, &chunk(0xa1), 100).unwrap(), ChunkPut::Stored);
        // The same id again, even with other bytes: stored once, the first bytes kept.
        assert_eq!(
            store.put(&a, &chunk(0xee), 101).unwrap(),
            ChunkPut::AlreadyStored
        );
        assert_eq!(store.stats().chunks, 1);
        assert_eq!(store.get(&a, 0).unwrap().unwrap(), chunk(0xa1));
        assert_eq!(store.put(&b, &chunk(0xb2), 100).unwrap(), ChunkPut::Stored);
        assert_eq!(store.put(&c, &chunk(0xc3), 100).unwrap(), ChunkPut::Full);
        assert!(store.get(&c, 0).unwrap().is_none());
        assert!(
            store.put(&c, &[0u8; 10], 100).is_err(),
            "a short chunk is refused"
        );
        // Files are named by storage key, never by id.
        for e in std::fs::read_dir(tmp.path().join(CHUNK_DIR)).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert_ne!(name, hex_lower(&a.0));
            assert_ne!(name, hex_lower(&b.0));
        }
        assert!(store.delete(&a).unwrap());
        assert!(!store.delete(&a).unwrap());
        assert!(store.get(&a, 0).unwrap().is_none());
        assert!(!raw_files(tmp.path()).windows(64).any(|w| w == [0xa1; 64]));
        // Reopened: the count is read back from the directory.
        drop(store);
        let store = ChunkFiles::open(tmp.path(), 2).unwrap();
        assert_eq!(store.stats().chunks, 1);
        assert_eq!(store.put(&c, &chunk(0xc3), 100).unwrap(), ChunkPut::Stored);
    }

    #[test]
    fn expired_chunks_are_unreadable_then_swept_and_leftovers_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ChunkFiles::open(tmp.path(), 10).unwrap();
        let (old, new) = (ChunkId([4; 32]), ChunkId([5; 32]));
        store.put(&old, &chunk(4), 1_000).unwrap();
        store.put(&new, &chunk(5), 2_000).unwrap();
        assert!(store.get(&old, 1_500).unwrap().is_none());
        assert!(store.get(&new, 1_500).unwrap().is_some());
        assert_eq!(store.sweep(1_500, 100).unwrap(), 1);
        assert_eq!(store.stats().chunks, 1);
        assert!(store.get(&old, 0).unwrap().is_none());
        // An interrupted put's temporary file is gone at the next open.
        std::fs::write(tmp.path().join(CHUNK_DIR).join(".tmp-9"), chunk(9)).unwrap();
        drop(store);
        let store = ChunkFiles::open(tmp.path(), 10).unwrap();
        assert_eq!(store.stats().chunks, 1);
        assert_eq!(
            std::fs::read_dir(tmp.path().join(CHUNK_DIR))
                .unwrap()
                .count(),
            1
        );
    }
}
