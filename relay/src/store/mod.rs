//! Storage: what a relay keeps, behind a trait, so that backends can be swapped.
//!
//! Owns: the [`Store`] trait (one durable commit for a batch of writes, fetch, expiry sweep)
//! and the backends (`redb`, the embedded default; `jetstream`, a replicated NATS JetStream
//! cluster shared by several relay processes). A backend stores envelopes under their
//! mailbox id with a relay-assigned id and a storage time, and enforces the per-mailbox and
//! global quotas inside the same commit as the write.
//! Must never store a fetch secret, a connection address or anything about who deposited;
//! must never report a deposit as stored before its commit is durable.

mod chunk_files;
#[cfg(feature = "jetstream")]
pub mod jetstream;
mod journal;
mod redb_store;
mod slots;

pub use chunk_files::{CHUNK_DIR, ChunkFiles, ChunkPut, ChunkStats};

#[cfg(feature = "jetstream")]
pub use jetstream::{JetStreamChunks, JetStreamStore};
pub(crate) use redb_store::SCRUB_CHUNK;
pub use redb_store::{LAYOUT, RedbStore, SLOT_FILE, TEST_CRASH_AT_ENV};

use hush_proto::{ChunkId, Envelope, EnvelopeId, MailboxId};

use crate::Error;

/// Quotas a backend enforces inside its commits.
#[derive(Clone, Copy, Debug)]
pub struct Quotas {
    /// Envelopes per mailbox.
    pub mailbox: u32,
    /// Envelopes in total.
    pub total: u64,
}

impl Quotas {
    /// The quotas `limits` set (the global one counted in 4096-byte envelopes).
    #[must_use]
    pub fn from_limits(limits: &crate::config::Limits) -> Self {
        Self {
            mailbox: limits.mailbox_quota.0,
            total: (limits.max_stored_bytes.0 / hush_proto::ENVELOPE_LEN as u64).max(1),
        }
    }
}

/// One write in a grouped commit.
#[derive(Debug)]
pub enum WriteOp {
    /// Store an envelope.
    Deposit {
        /// Destination mailbox.
        mailbox: MailboxId,
        /// The ciphertext.
        envelope: Envelope,
    },
    /// Delete envelopes of one mailbox (the caller proved the fetch secret).
    Delete {
        /// The mailbox (hash of the presented fetch secret).
        mailbox: MailboxId,
        /// Envelope ids to delete.
        ids: Vec<EnvelopeId>,
    },
}

/// The outcome of one [`WriteOp`] in a commit that succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Deposit stored durably under this id.
    Stored(EnvelopeId),
    /// Deposit refused: the mailbox is at its quota.
    MailboxFull,
    /// Deposit refused: the relay is at its global quota.
    RelayFull,
    /// The backend could not apply this op (the others of the commit may have been). A
    /// deposit may nevertheless be stored: the client retries, and a backend with
    /// idempotent deposits stores the retry once.
    Unavailable,
    /// Delete applied.
    Deleted {
        /// Ids deleted now.
        deleted: u16,
        /// Ids missing and below the expiry horizon.
        expired: u16,
        /// Ids missing otherwise.
        unknown: u16,
    },
}

/// One stored envelope.
#[derive(Clone, Debug)]
pub struct Stored {
    /// Its mailbox.
    pub mailbox: MailboxId,
    /// Its id.
    pub id: EnvelopeId,
    /// The ciphertext.
    pub envelope: Envelope,
}

/// Aggregate figures (never per mailbox).
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreStats {
    /// Envelopes stored.
    pub envelopes: u64,
}

/// A relay storage backend. Methods block; call them from a blocking context.
pub trait Store: Send + Sync + 'static {
    /// Applies `ops` in order in one durable commit at time `now` (Unix seconds) and returns
    /// one outcome per op. On `Err`, nothing was committed. A backend without multi-op
    /// transactions answers per op ([`WriteOutcome::Unavailable`] for those that failed).
    ///
    /// # Errors
    /// [`Error::Storage`] if the commit failed.
    fn commit(&self, ops: &[WriteOp], now: u64) -> Result<Vec<WriteOutcome>, Error>;

    /// Up to `limit` envelopes of `mailboxes` with id greater than `after`, in id order, and
    /// whether more remain.
    ///
    /// # Errors
    /// [`Error::Storage`] if reading failed.
    fn fetch(
        &self,
        mailboxes: &[MailboxId],
        after: EnvelopeId,
        limit: usize,
    ) -> Result<(Vec<Stored>, bool), Error>;

    /// One Fetch request: up to `total` envelopes of `mailboxes` with id greater than `after`,
    /// in id order, handed to `page` at most `page_len` at a time (so that a fetch holds one
    /// page of envelopes, not `total`), and whether more remain. `page` returns `false` to
    /// stop (the client is gone). The default asks [`Store::fetch`] for each page; a backend
    /// whose every read must list whole mailboxes lists them once per request instead.
    ///
    /// # Errors
    /// [`Error::Storage`] if reading failed (pages already handed over stay handed over).
    fn fetch_pages(
        &self,
        mailboxes: &[MailboxId],
        after: EnvelopeId,
        total: usize,
        page_len: usize,
        page: &mut dyn FnMut(Vec<Stored>) -> bool,
    ) -> Result<bool, Error> {
        let (mut cursor, mut returned) = (after, 0usize);
        loop {
            let want = page_len.min(total - returned);
            let (items, more) = self.fetch(mailboxes, cursor, want)?;
            returned += items.len();
            if let Some(last) = items.last() {
                cursor = last.id;
            }
            let done = !more || returned >= total || items.is_empty();
            if !page(items) || done {
                return Ok(more);
            }
        }
    }

    /// Deletes up to `max` envelopes stored before `cutoff` (Unix seconds); returns how many.
    ///
    /// # Errors
    /// [`Error::Storage`] if the commit failed.
    fn sweep(&self, cutoff: u64, max: usize) -> Result<u64, Error>;

    /// Aggregate figures.
    fn stats(&self) -> StoreStats;

    /// How many envelopes `mailbox` holds now (at most the mailbox quota). Used to price a
    /// stamped deposit to a drop; it may be stale by the commits in flight.
    ///
    /// # Errors
    /// [`Error::Storage`] if reading failed.
    fn count(&self, mailbox: &MailboxId) -> Result<u32, Error> {
        // Every backend can answer by fetching; ids only would do, but the quota bounds it.
        let mut n = 0u32;
        let mut after = EnvelopeId(0);
        loop {
            let (page, more) = self.fetch(&[*mailbox], after, 256)?;
            n = n.saturating_add(u32::try_from(page.len()).unwrap_or(u32::MAX));
            match page.last() {
                Some(last) if more => after = last.id,
                _ => return Ok(n),
            }
        }
    }

    /// Makes deleted and expired envelopes unrecoverable from the backend's files if anything
    /// was deleted since the last call; returns whether it did work. A backend that erases
    /// on delete has nothing to do.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Io`] if the work failed (it is retried by the next call).
    fn scrub(&self) -> Result<bool, Error> {
        Ok(false)
    }

    /// Whether the backend itself announces committed deposits to the push hub (so that
    /// relays sharing it push each other's deposits); if not, the committer does.
    fn announces_arrivals(&self) -> bool {
        false
    }
}

/// Storage of file chunks (docs/PROTOCOL.md II.4.3), apart from envelopes: its own quota and
/// expiry, erasure on delete. The redb backend keeps them in [`ChunkFiles`], the JetStream
/// backend in a stream of their own (`JetStreamChunks`).
/// Methods block; call them from a blocking context.
pub trait ChunkStore: Send + Sync + 'static {
    /// Stores `data` (exactly `CHUNK_LEN` bytes) under `id` durably at time `now`; the same
    /// id twice is stored once.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Storage`] if nothing was stored.
    fn put_chunk(&self, id: &ChunkId, data: &[u8], now: u64) -> Result<ChunkPut, Error>;
    /// The chunk stored under `id` at or after `cutoff`, if any.
    ///
    /// # Errors
    /// [`Error::Io`] if reading failed.
    fn get_chunk(&self, id: &ChunkId, cutoff: u64) -> Result<Option<Vec<u8>>, Error>;
    /// Erases the chunk under `id`; `false` if none was stored.
    ///
    /// # Errors
    /// [`Error::Io`] if erasing failed.
    fn delete_chunk(&self, id: &ChunkId) -> Result<bool, Error>;
    /// Erases up to `max` chunks stored before `cutoff`; returns how many.
    ///
    /// # Errors
    /// [`Error::Io`] if the sweep failed.
    fn sweep_chunks(&self, cutoff: u64, max: usize) -> Result<u64, Error>;
    /// Aggregate figures.
    fn chunk_stats(&self) -> ChunkStats;
}

impl ChunkStore for ChunkFiles {
    fn put_chunk(&self, id: &ChunkId, data: &[u8], now: u64) -> Result<ChunkPut, Error> {
        self.put(id, data, now)
    }
    fn get_chunk(&self, id: &ChunkId, cutoff: u64) -> Result<Option<Vec<u8>>, Error> {
        self.get(id, cutoff)
    }
    fn delete_chunk(&self, id: &ChunkId) -> Result<bool, Error> {
        self.delete(id)
    }
    fn sweep_chunks(&self, cutoff: u64, max: usize) -> Result<u64, Error> {
        self.sweep(cutoff, max)
    }
    fn chunk_stats(&self) -> ChunkStats {
        self.stats()
    }
}
