//! The redb backend: in the data directory, `relay.redb` (the index) and `envelopes.slots`
//! (a journal ring, then the envelope bodies).
//!
//! Owns: the layout of both files and their invariants. `envelopes.slots` starts with the
//! journal ring (`journal::RING_BYTES`, records of commits, `journal.rs`), then an array of
//! 4096-byte slots, slot n at byte ring + n × 4096, each holding one envelope's ciphertext or
//! zeros: one disk page per envelope, where a redb row of 4104 bytes took two. Tables of
//! `relay.redb`:
//! - `envelopes`: key `mailbox_id (32) || id (u64 BE)`, value `stored_at (u64 BE) || slot
//!   (u64 BE)`.
//! - `by_id`: key `id`, value `mailbox_id || stored_at`: expiry order (ids grow with time).
//! - `counts`: key `mailbox_id`, value envelopes held (quota accounting).
//! - `free_slots`: slots no envelope uses (the rules are in `slots.rs`).
//! - `meta`: `layout` (3), `next_id`, `total`, `horizon` (ids below it that are missing have
//!   expired), `slot_end` (one past the highest slot used), `journal_seq` (the last journal
//!   record the index holds), `journal_at` (the ring sector of the next record).
//!
//! A store of another layout (the single-file layout 1 of earlier builds, which kept bodies
//! in redb rows; layout 2, the slot file without a journal, whose index commits were
//! durable) is refused at open with [`Error::StoreLayout`]; it is not migrated.
//!
//! One commit (a group of deposits and deletes, or an expiry sweep) is one round, or several
//! if its journal record would exceed half the ring: inside one redb write transaction it
//! allocates a slot per deposit (lowest free first, else the end) and frees the slots of the
//! envelopes it deletes (after its allocations). Then, in this order: the bodies are written
//! (one `pwrite` per run of consecutive slots), the round's record (each deposit's slot, id,
//! mailbox and body digest; each deleted envelope's slot and id; the next id and horizon)
//! into the ring after the previous record, and the slot file is `fdatasync`ed once: the
//! commit is durable. redb then commits without durability (`Durability::None`: no fsync; a
//! crash loses it and the open rebuilds it from the record), the deleted slots are
//! overwritten with zeros (synced by the next round's sync), and the commit returns, so the
//! committer acknowledges. One sync per commit on this path. A *checkpoint* commits redb with
//! immediate durability and quick repair (after syncing the slot file if zeros are pending):
//! before a round once half the ring was written since the last one, after an expiry sweep
//! if the last one is older than a second, at a scrub, and when the store is dropped (clean
//! shutdown).
//!
//! At open, redb stands at its last checkpoint (quick repair: it loads the allocator state,
//! never walks the file). The records after it are applied (`journal::replay`: in sequence,
//! whole by checksum, the last one only if its bodies match their digests, since its sync may
//! not have returned); the slots those records deleted that are still free, the free slots a
//! torn or failed round may have written (`slots::recovery_scan`) and the file past the slot
//! end are overwritten with zeros (the file is cut there) and synced; then redb commits
//! durably and the ring is overwritten with zeros. It reads the ring (64 KiB), the first free
//! slots and the last record's bodies, never the whole file.
//! After an I/O error (a full disk) redb fails every later operation until the database is
//! closed and opened again, so a failed redb operation closes it and the next write opens it
//! again, with the same recovery (the failed round's record may be synced: it is applied, as a
//! commit that reported failure but landed): writes resume once the disk has room, without a
//! restart. A failed write or sync of the slot file only aborts the round's transaction
//! (redb is untouched; the next record overwrites the failed one). A failed round's bodies
//! are remembered and zeroed by the next round that succeeds (inside the file only: zeros
//! past its end would need space a full disk lacks, and nothing is there).
//!
//! Deletion that deletes: a deleted or expired envelope's body is overwritten with zeros by
//! the commit that deletes it, before that commit returns, and again at open if the process
//! died before those zeros reached the disk. Readers that began before a delete finish before
//! its zeros are written (a lock), so a fetch never returns a zeroed body. The journal's
//! records (mailbox ids, storage times and digests of envelopes since deleted) stay in the
//! ring until it laps them or the next scrub clears it. redb is copy-on-write, so a deleted
//! index row (mailbox id, storage time) stays whole in freed pages: after anything was deleted
//! or expired, [`RedbStore::scrub`] (called by the relay every
//! `storage.scrub_interval_secs`) takes a checkpoint and overwrites the ring with zeros, then
//! rewrites the live rows of the index into a fresh file, swaps it in atomically, overwrites
//! every byte of the old file with zeros, syncs, and unlinks it. The index is about 220 bytes
//! per envelope, so this copies a small file. The copy sees the commits made without
//! durability; the fresh file is committed durably with all of them, so after a crash it
//! needs none of the records before its swap. A crash at any step leaves `relay.redb` whole
//! (old or new); the next open finishes the job on the leftovers (`relay.redb.old` zeroed
//! unless it is still `relay.redb` itself, a partial `relay.redb.scrub` removed) and the
//! first scrub after a start always rewrites.
//! Must never keep a row for an empty mailbox (`counts` rows are removed at zero), so the
//! file holds no list of mailboxes that were once used; must never return from a commit
//! before the sync of its record and bodies (the committer acknowledges on return); must
//! never write a record over one after the last checkpoint; must never zero or hand out a
//! slot that a committed index row names.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use hush_proto::{ENVELOPE_LEN, Envelope, EnvelopeId, MailboxId};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::journal::{self, Record};
use super::slots::{self, Book, Ledger, Plan, Round};
use super::{Quotas, Store, StoreStats, Stored, WriteOp, WriteOutcome};
use crate::Error;

const ENVELOPES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("envelopes");
const BY_ID: TableDefinition<u64, &[u8]> = TableDefinition::new("by_id");
const COUNTS: TableDefinition<&[u8], u32> = TableDefinition::new("counts");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const FREE_SLOTS: TableDefinition<u64, ()> = TableDefinition::new("free_slots");

/// The fresh file a scrub writes, beside `relay.redb`.
const SCRUB_NEW: &str = "relay.redb.scrub";
/// A second name for the file a scrub replaces, until it is overwritten and unlinked.
const SCRUB_OLD: &str = "relay.redb.old";
/// The envelope bodies, beside `relay.redb`.
pub const SLOT_FILE: &str = "envelopes.slots";
/// Rows copied per transaction of a scrub (bounds its write buffer).
pub(crate) const SCRUB_CHUNK: usize = 4096;

/// This layout: index in redb, a journal ring and the bodies in [`SLOT_FILE`].
pub const LAYOUT: u64 = 3;
/// [`LAYOUT`] as the journal records carry it.
const RECORD_LAYOUT: u32 = 3;
/// The layout of a store with no `layout` row: bodies in redb rows.
const LAYOUT_SINGLE_FILE: u64 = 1;
/// At a clean shutdown, an index file at most this long is compacted. Between checkpoints
/// redb keeps the pages its commits without durability replaced (they are reused after the
/// next checkpoint), so a small index holds up to about one more copy of the pages rewritten
/// since; compacting a file this small takes milliseconds.
const COMPACT_AT_STOP: u64 = 16 << 20;
/// Seconds after a checkpoint after which an expiry sweep makes another.
const CHECKPOINT_AGE: std::time::Duration = std::time::Duration::from_secs(1);

const NEXT_ID: &str = "next_id";
const TOTAL: &str = "total";
const HORIZON: &str = "horizon";
const LAYOUT_KEY: &str = "layout";
const SLOT_END: &str = "slot_end";
/// The sequence number of the last journal record the index holds.
const JOURNAL_SEQ: &str = "journal_seq";
/// The ring sector where the next journal record goes.
const JOURNAL_AT: &str = "journal_at";

/// Bytes per slot: one envelope.
const SLOT: usize = ENVELOPE_LEN;
/// Zeros written per `pwrite` when overwriting slots.
const ZERO_CHUNK: usize = 64 * SLOT;
static ZEROS: [u8; ZERO_CHUNK] = [0; ZERO_CHUNK];

/// Test hooks only (cargo feature `test-hooks`): names a point of the commit path where the
/// process aborts, as a crash would stop it there: `before-record` (a commit's bodies written,
/// its journal record not), `after-sync` (bodies and record synced, index not committed: the
/// commit is durable but unacknowledged), `after-delete-commit` (a commit that deleted
/// envelopes is durable, its slots not yet erased). Without the feature the variable is not
/// read.
pub const TEST_CRASH_AT_ENV: &str = "HUSH_RELAY_TEST_CRASH_AT";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CrashPoint {
    BeforeRecord,
    AfterSync,
    AfterDeleteCommit,
}

/// redb-backed [`Store`].
pub struct RedbStore {
    /// `None` only between closing after an I/O error and a successful reopen.
    db: RwLock<Option<Database>>,
    path: PathBuf,
    slots: SlotFile,
    /// The slot allocator's and the journal's in-memory part; held for a whole round (rounds
    /// are serial) and for a checkpoint.
    writer: Mutex<Writer>,
    /// Fetches hold it shared from before their index snapshot until their bodies are read;
    /// a round holds it exclusively while it overwrites slots with zeros.
    readers: RwLock<()>,
    cache_bytes: usize,
    /// An operation failed: close and reopen before the next write.
    failed: AtomicBool,
    quotas: Quotas,
    /// Mirror of `meta.total` for stats without a transaction.
    total: AtomicU64,
    /// Something was deleted since the last scrub: freed index pages may hold its row.
    dirty: AtomicBool,
    /// While a scrub copies a snapshot: the rows deleted by commits since (it removes them
    /// from the copy before the swap).
    tracking: Mutex<Option<Vec<(MailboxId, u64)>>>,
    /// Bumped at every reopen: a scrub whose snapshot came from another open gives up.
    generation: AtomicU64,
    crash_at: Option<CrashPoint>,
}

/// What the writer keeps between rounds.
struct Writer {
    book: Book,
    /// Ring sectors written since the last checkpoint.
    used: u64,
    /// Slots were erased since the slot file's last sync.
    erased_unsynced: bool,
    last_checkpoint: std::time::Instant,
}

impl Writer {
    fn new() -> Self {
        Self {
            book: Book::default(),
            used: 0,
            erased_unsynced: false,
            last_checkpoint: std::time::Instant::now(),
        }
    }
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").finish_non_exhaustive()
    }
}

fn env_key(mailbox: &MailboxId, id: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(mailbox.as_bytes());
    k[32..].copy_from_slice(&id.to_be_bytes());
    k
}

fn split_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_be_bytes(a)
}

fn mailbox_of(b: &[u8]) -> MailboxId {
    let mut m = [0u8; 32];
    if let Some(s) = b.get(..32) {
        m.copy_from_slice(s);
    }
    MailboxId(m)
}

fn crash_point_from_env() -> Option<CrashPoint> {
    if !cfg!(feature = "test-hooks") {
        return None;
    }
    match std::env::var(TEST_CRASH_AT_ENV).ok()?.as_str() {
        "before-record" => Some(CrashPoint::BeforeRecord),
        "after-sync" => Some(CrashPoint::AfterSync),
        "after-delete-commit" => Some(CrashPoint::AfterDeleteCommit),
        _ => None,
    }
}

/// The slot file: positioned reads and writes of whole slots.
struct SlotFile {
    file: std::fs::File,
}

impl SlotFile {
    fn open(path: &Path) -> Result<Self, Error> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        // Ciphertext, but also how much each slot holds: the operator's eyes only.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        Ok(Self { file })
    }

    /// Where `slot` starts: after the journal ring.
    fn offset(slot: u64) -> u64 {
        slot.saturating_mul(SLOT as u64)
            .saturating_add(journal::RING_BYTES as u64)
    }

    /// Writes `bytes` at byte `at` of the ring.
    fn write_ring(&self, bytes: &[u8], at: usize) -> std::io::Result<()> {
        write_all_at(&self.file, bytes, at as u64)
    }

    /// The whole ring (zeros where the file is shorter).
    fn read_ring(&self) -> std::io::Result<Vec<u8>> {
        let mut ring = vec![0u8; journal::RING_BYTES];
        let len = usize::try_from(self.len()?).unwrap_or(usize::MAX);
        let have = len.min(journal::RING_BYTES);
        read_exact_at(&self.file, &mut ring[..have], 0)?;
        Ok(ring)
    }

    /// Overwrites the pages of the ring that are not all zeros with zeros (`ring` is what it
    /// holds: [`Self::read_ring`]). Pages never written stay holes: a full disk could not
    /// allocate them.
    fn zero_ring(&self, ring: &[u8]) -> std::io::Result<()> {
        for (n, page) in ring.chunks(SLOT).enumerate() {
            if page.iter().any(|&b| b != 0) {
                write_all_at(&self.file, &ZEROS[..page.len()], (n * SLOT) as u64)?;
            }
        }
        Ok(())
    }

    fn write_at(&self, bytes: &[u8], slot: u64) -> std::io::Result<()> {
        write_all_at(&self.file, bytes, Self::offset(slot))
    }

    /// Overwrites `count` slots from `slot` with zeros.
    fn zero(&self, slot: u64, count: usize) -> std::io::Result<()> {
        let mut at = Self::offset(slot);
        let mut left = count.saturating_mul(SLOT);
        while left > 0 {
            let n = left.min(ZERO_CHUNK);
            write_all_at(&self.file, &ZEROS[..n], at)?;
            at += n as u64;
            left -= n;
        }
        Ok(())
    }

    /// The body in `slot`; `None` past the end of the file.
    fn read(&self, slot: u64) -> std::io::Result<Option<Box<[u8; SLOT]>>> {
        let mut buf = Box::new([0u8; SLOT]);
        match read_exact_at(&self.file, &mut buf[..], Self::offset(slot)) {
            Ok(()) => Ok(Some(buf)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn len(&self) -> std::io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

#[cfg(unix)]
fn write_all_at(f: &std::fs::File, bytes: &[u8], at: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, bytes, at)
}

#[cfg(unix)]
fn read_exact_at(f: &std::fs::File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, at)
}

#[cfg(windows)]
fn write_all_at(f: &std::fs::File, mut bytes: &[u8], mut at: u64) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(f, bytes, at)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
        at += n as u64;
    }
    Ok(())
}

#[cfg(windows)]
fn read_exact_at(f: &std::fs::File, mut buf: &mut [u8], mut at: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_read(f, buf, at)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        at += n as u64;
    }
    Ok(())
}

/// The allocator tables of one open write transaction.
struct TxnLedger<'t> {
    free: redb::Table<'t, u64, ()>,
    end: u64,
}

impl Ledger for TxnLedger<'_> {
    type Error = Error;
    fn take_lowest_free(&mut self) -> Result<Option<u64>, Error> {
        Ok(self
            .free
            .pop_first()
            .map_err(Error::storage)?
            .map(|(k, _)| k.value()))
    }
    fn is_free(&mut self, slot: u64) -> Result<bool, Error> {
        Ok(self.free.get(slot).map_err(Error::storage)?.is_some())
    }
    fn add_free(&mut self, slot: u64) -> Result<(), Error> {
        self.free.insert(slot, ()).map_err(Error::storage)?;
        Ok(())
    }
    fn remove_free(&mut self, slot: u64) -> Result<(), Error> {
        self.free.remove(slot).map_err(Error::storage)?;
        Ok(())
    }
    fn end(&mut self) -> Result<u64, Error> {
        Ok(self.end)
    }
    fn set_end(&mut self, end: u64) -> Result<(), Error> {
        self.end = end;
        Ok(())
    }
}

/// One round's open tables and slot work.
struct Tx<'t> {
    envelopes: redb::Table<'t, &'static [u8], &'static [u8]>,
    by_id: redb::Table<'t, u64, &'static [u8]>,
    counts: redb::Table<'t, &'static [u8], u32>,
    meta: redb::Table<'t, &'static str, u64>,
    ledger: TxnLedger<'t>,
    round: Round,
    /// The stored deposits' bodies, in allocation order.
    bodies: Vec<u8>,
    /// What the round's journal record names.
    record: Record,
    /// Index rows removed (for a scrub in progress).
    removed_rows: Vec<(MailboxId, u64)>,
}

impl<'t> Tx<'t> {
    fn open(txn: &'t redb::WriteTransaction, book: &Book) -> Result<Self, Error> {
        let mut meta = txn.open_table(META).map_err(Error::storage)?;
        let end = meta_get(&meta, SLOT_END)?;
        let ledger = TxnLedger {
            free: txn.open_table(FREE_SLOTS).map_err(Error::storage)?,
            end,
        };
        let round = book.begin();
        // Written back at the end of the round (the slot end may grow).
        meta.insert(SLOT_END, end).map_err(Error::storage)?;
        Ok(Self {
            envelopes: txn.open_table(ENVELOPES).map_err(Error::storage)?,
            by_id: txn.open_table(BY_ID).map_err(Error::storage)?,
            counts: txn.open_table(COUNTS).map_err(Error::storage)?,
            meta,
            ledger,
            round,
            bodies: Vec::new(),
            record: Record::default(),
            removed_rows: Vec::new(),
        })
    }

    fn count(&self, mailbox: &MailboxId) -> Result<u32, Error> {
        Ok(self
            .counts
            .get(&mailbox.as_bytes()[..])
            .map_err(Error::storage)?
            .map_or(0, |g| g.value()))
    }

    fn set_count(&mut self, mailbox: &MailboxId, n: u32) -> Result<(), Error> {
        if n == 0 {
            self.counts
                .remove(&mailbox.as_bytes()[..])
                .map_err(Error::storage)?;
        } else {
            self.counts
                .insert(&mailbox.as_bytes()[..], n)
                .map_err(Error::storage)?;
        }
        Ok(())
    }

    /// Stores `envelope` under `(mailbox, id)` in a new slot (counts are the caller's).
    fn store(
        &mut self,
        mailbox: &MailboxId,
        id: u64,
        envelope: &Envelope,
        now: u64,
    ) -> Result<(), Error> {
        let slot = self.round.allocate(&mut self.ledger)?;
        let mut value = [0u8; 16];
        value[..8].copy_from_slice(&now.to_be_bytes());
        value[8..].copy_from_slice(&slot.to_be_bytes());
        self.envelopes
            .insert(&env_key(mailbox, id)[..], &value[..])
            .map_err(Error::storage)?;
        let mut idx = [0u8; 40];
        idx[..32].copy_from_slice(mailbox.as_bytes());
        idx[32..].copy_from_slice(&now.to_be_bytes());
        self.by_id.insert(id, &idx[..]).map_err(Error::storage)?;
        self.bodies.extend_from_slice(envelope.as_bytes());
        self.record.puts.push(journal::Put {
            slot,
            id,
            mailbox: *mailbox.as_bytes(),
            digest: journal::body_digest(envelope.as_bytes()),
        });
        Ok(())
    }

    /// Removes `(mailbox, id)` and releases its slot; whether it was there (counts are the
    /// caller's).
    fn remove(&mut self, mailbox: &MailboxId, id: u64) -> Result<bool, Error> {
        let slot = match self
            .envelopes
            .remove(&env_key(mailbox, id)[..])
            .map_err(Error::storage)?
        {
            Some(v) => split_u64(v.value(), 8),
            None => return Ok(false),
        };
        self.by_id.remove(id).map_err(Error::storage)?;
        self.round.release(slot);
        self.record.deletes.push(journal::Delete { slot, id });
        self.removed_rows.push((*mailbox, id));
        Ok(true)
    }
}

fn meta_get(meta: &redb::Table<&str, u64>, k: &str) -> Result<u64, Error> {
    Ok(meta
        .get(k)
        .map_err(Error::storage)?
        .map_or(0, |g| g.value()))
}

impl RedbStore {
    /// Opens or creates the store in `dir` (`relay.redb` and `envelopes.slots`), zeroing
    /// what a crash may have left in the slot file (see the module doc).
    ///
    /// # Errors
    /// [`Error::StoreLayout`] if the store was written in another layout; [`Error::Storage`]
    /// or [`Error::Io`] if it cannot be opened or initialised.
    pub fn open(dir: &Path, quotas: Quotas, cache_bytes: usize) -> Result<Self, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let path = dir.join("relay.redb");
        finish_scrub(dir)?;
        let fresh = std::fs::symlink_metadata(&path).is_err();
        let (db, total) = open_db(&path, cache_bytes)?;
        let slots = SlotFile::open(&dir.join(SLOT_FILE))?;
        if fresh {
            // A new index owns nothing in a slot file left beside it: its ring's records
            // would otherwise be replayed into the new index.
            let io = |e| Error::io(format!("emptying {SLOT_FILE}"), e);
            slots.file.set_len(0).map_err(io)?;
            slots.file.sync_all().map_err(io)?;
        }
        let total = recover(&db, &slots).map(|t| t.unwrap_or(total))?;
        Ok(Self {
            db: RwLock::new(Some(db)),
            path,
            slots,
            writer: Mutex::new(Writer::new()),
            readers: RwLock::new(()),
            cache_bytes,
            failed: AtomicBool::new(false),
            quotas,
            total: AtomicU64::new(total),
            // A previous run may have stopped between a delete and its scrub.
            dirty: AtomicBool::new(true),
            tracking: Mutex::new(None),
            generation: AtomicU64::new(0),
            crash_at: crash_point_from_env(),
        })
    }

    fn crash_if(&self, point: CrashPoint) {
        if self.crash_at == Some(point) {
            tracing::error!(?point, "test hook: aborting the process at a crash point");
            std::process::abort();
        }
    }

    /// Runs `f` on the open database; a failure of redb marks it for reopening. With `write`, first
    /// reopens a database marked so (a read keeps what is open: reads still served from the
    /// cache are better than none while the disk is full).
    fn with_db<T>(
        &self,
        write: bool,
        f: impl FnOnce(&Database) -> Result<T, Error>,
    ) -> Result<T, Error> {
        if write && self.failed.load(Ordering::Acquire) {
            self.reopen()?;
        }
        let guard = self.db.read().unwrap_or_else(PoisonError::into_inner);
        let db = guard
            .as_ref()
            .ok_or_else(|| Error::Storage("database closed after an I/O error".into()))?;
        let r = f(db);
        // Only redb's own failures poison it; a failed write to the slot file (a full disk)
        // aborted the transaction and leaves the database as it was, serving reads and
        // deletes.
        if matches!(r, Err(Error::Storage(_))) {
            self.failed.store(true, Ordering::Release);
        }
        r
    }

    fn reopen(&self) -> Result<(), Error> {
        let mut guard = self.db.write().unwrap_or_else(PoisonError::into_inner);
        if !self.failed.load(Ordering::Acquire) {
            return Ok(()); // another thread did it while this one waited
        }
        // Close first: the open database holds the file lock. A failed open leaves it closed
        // and marked, and the next write tries again.
        *guard = None;
        let (db, total) = open_db(&self.path, self.cache_bytes)?;
        // A round whose index commit failed may have synced its record: applied now, as an
        // open after a crash would. No round runs meanwhile (they hold the database shared).
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let total = recover(&db, &self.slots)?.unwrap_or(total);
        *writer = Writer {
            book: std::mem::take(&mut writer.book),
            ..Writer::new()
        };
        drop(writer);
        *guard = Some(db);
        self.total.store(total, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.failed.store(false, Ordering::Release);
        tracing::info!("database reopened after a failed operation");
        Ok(())
    }

    /// One round (see the module doc): `body` stores and removes rows through the [`Tx`]
    /// (at most [`journal::MAX_PUTS`] deposits and [`journal::MAX_DELETES`] deletions); then
    /// the bodies and the journal record are written and synced, the index commits without
    /// durability, and the deleted slots are erased.
    fn round<T>(
        &self,
        db: &Database,
        now: u64,
        body: impl FnOnce(&mut Tx<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if writer.used >= journal::RING_SECTORS / 2 {
            // The next record could overwrite one the durable index does not hold yet.
            self.checkpoint(db, &mut writer)?;
        }
        let mut txn = begin_write(db)?;
        txn.set_durability(redb::Durability::None)
            .map_err(Error::storage)?;
        let (out, plan, bodies, encoded, at, removed_rows) = {
            let mut tx = Tx::open(&txn, &writer.book)?;
            let out = body(&mut tx)?;
            let Tx {
                mut meta,
                mut ledger,
                round,
                bodies,
                mut record,
                removed_rows,
                ..
            } = tx;
            let plan = round.finish(&mut ledger, &writer.book)?;
            meta.insert(SLOT_END, ledger.end).map_err(Error::storage)?;
            let at = meta_get(&meta, JOURNAL_AT)?;
            let mut encoded = Vec::new();
            if !record.is_empty() {
                record.seq = meta_get(&meta, JOURNAL_SEQ)? + 1;
                record.stored_at = now;
                record.next_id = meta_get(&meta, NEXT_ID)?;
                record.horizon = meta_get(&meta, HORIZON)?;
                encoded = record.encode(RECORD_LAYOUT);
                meta.insert(JOURNAL_SEQ, record.seq)
                    .map_err(Error::storage)?;
                meta.insert(JOURNAL_AT, journal::advance(at, encoded.len()))
                    .map_err(Error::storage)?;
            }
            (out, plan, bodies, encoded, at, removed_rows)
        };
        if let Err(e) = self.write_and_sync(&plan, &bodies, &encoded, at) {
            writer.book.failed(&plan);
            return Err(e);
        }
        if !encoded.is_empty() {
            self.crash_if(CrashPoint::AfterSync);
        }
        if let Err(e) = txn.commit() {
            // The record may be durable: the reopen that follows applies it (`recover`).
            writer.book.failed(&plan);
            return Err(Error::storage(e));
        }
        writer.book.committed();
        writer.used += (encoded.len() / journal::SECTOR) as u64;
        if !removed_rows.is_empty() {
            self.crash_if(CrashPoint::AfterDeleteCommit);
            self.dirty.store(true, Ordering::Release);
        }
        if !plan.erase.is_empty() {
            // The commit is durable (its record): the deleted bodies go now. These zeros are
            // synced by the next round's sync or checkpoint; a crash before that erases them
            // again at open (the record names them).
            if let Err(e) = self.erase(&plan.erase) {
                tracing::error!(error = %e, "erasing deleted slots failed; retried at open");
            } else {
                writer.erased_unsynced = true;
            }
        }
        drop(writer);
        self.track(removed_rows);
        Ok(out)
    }

    /// Overwrites `slots` (ascending) with zeros, once no fetch that could name one is
    /// reading. Slots past the file's end hold nothing.
    fn erase(&self, slots: &[u64]) -> Result<(), Error> {
        let what = |e| Error::io(format!("erasing in {SLOT_FILE}"), e);
        let len = self.slots.len().map_err(what)?;
        let inside: Vec<u64> = slots
            .iter()
            .copied()
            .filter(|&s| SlotFile::offset(s) < len)
            .collect();
        let _readers = self.readers.write().unwrap_or_else(PoisonError::into_inner);
        for run in slots::runs(&inside) {
            self.slots
                .zero(inside[run.start], run.len())
                .map_err(what)?;
        }
        Ok(())
    }

    /// Writes `plan`'s bodies (`bodies` holds one per written slot, in order) and zeros, and
    /// the journal record `encoded` at ring sector `at`, then syncs the slot file once.
    fn write_and_sync(
        &self,
        plan: &Plan,
        bodies: &[u8],
        encoded: &[u8],
        at: u64,
    ) -> Result<(), Error> {
        if plan.writes.is_empty() && plan.zeros.is_empty() && encoded.is_empty() {
            return Ok(());
        }
        let what = |e| Error::io(format!("writing {SLOT_FILE}"), e);
        for run in slots::runs(&plan.writes) {
            let bytes = bodies
                .get(run.start * SLOT..run.end * SLOT)
                .ok_or_else(|| Error::Storage("a round's bodies do not match its slots".into()))?;
            self.slots
                .write_at(bytes, plan.writes[run.start])
                .map_err(what)?;
        }
        if !plan.zeros.is_empty() {
            // Only slots inside the file: a failed round's slots past its end hold nothing
            // there, and zeros past the end would need space that a full disk lacks (deletes
            // must go on). Inside it, every slot lies in blocks already allocated. These are
            // free slots: no fetch reads them.
            let len = self.slots.len().map_err(what)?;
            let zeros: Vec<u64> = plan
                .zeros
                .iter()
                .copied()
                .filter(|&s| SlotFile::offset(s) < len)
                .collect();
            for run in slots::runs(&zeros) {
                self.slots.zero(zeros[run.start], run.len()).map_err(what)?;
            }
        }
        if !encoded.is_empty() {
            self.crash_if(CrashPoint::BeforeRecord);
            for (off, range) in journal::placement(at, encoded.len()) {
                self.slots.write_ring(&encoded[range], off).map_err(what)?;
            }
        }
        self.slots
            .file
            .sync_data()
            .map_err(|e| Error::io(format!("syncing {SLOT_FILE}"), e))
    }

    /// Makes the index durable up to the last record (a checkpoint): the slot file's erasures
    /// are synced first (the records naming them are no longer read after this), then redb
    /// commits with immediate durability.
    fn checkpoint(&self, db: &Database, writer: &mut Writer) -> Result<(), Error> {
        if writer.erased_unsynced {
            self.slots
                .file
                .sync_data()
                .map_err(|e| Error::io(format!("syncing {SLOT_FILE}"), e))?;
            writer.erased_unsynced = false;
        }
        let txn = begin_write(db)?;
        {
            let mut meta = txn.open_table(META).map_err(Error::storage)?;
            // Any write: a transaction that changes nothing may commit nothing.
            let seq = meta_get(&meta, JOURNAL_SEQ)?;
            meta.insert(JOURNAL_SEQ, seq).map_err(Error::storage)?;
        }
        txn.commit().map_err(Error::storage)?;
        writer.used = 0;
        writer.last_checkpoint = std::time::Instant::now();
        Ok(())
    }

    /// A checkpoint, then the ring overwritten with zeros and synced: the records (mailbox ids,
    /// storage times, digests of envelopes since deleted) leave the file.
    fn clear_journal(&self, db: &Database) -> Result<(), Error> {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.checkpoint(db, &mut writer)?;
        let io = |e| Error::io(format!("clearing the journal of {SLOT_FILE}"), e);
        let ring = self.slots.read_ring().map_err(io)?;
        self.slots.zero_ring(&ring).map_err(io)?;
        self.slots.file.sync_data().map_err(io)
    }
}

/// At open (and at a reopen after a failed operation): applies the journal records the index
/// lacks ([`journal::replay`]), overwrites with zeros the slots those records deleted that are
/// still free, the free slots a torn or failed round may have written
/// ([`slots::recovery_scan`]) and the file past the index's slot end (then cut there), syncs,
/// commits the index durably, and clears the ring. Reads the ring, the first free slots and
/// the bodies of the last record, never the whole file. Returns the new total if records
/// were applied.
fn recover(db: &Database, slots: &SlotFile) -> Result<Option<u64>, Error> {
    let io = |e| Error::io(format!("recovering {SLOT_FILE}"), e);
    let ring = slots.read_ring().map_err(io)?;
    let txn = begin_write(db)?;
    let applied;
    {
        let mut meta = txn.open_table(META).map_err(Error::storage)?;
        let seq = meta_get(&meta, JOURNAL_SEQ)?;
        let at = meta_get(&meta, JOURNAL_AT)?;
        let replay = journal::replay(&ring, RECORD_LAYOUT, seq, at, |put| {
            Ok::<_, Error>(
                slots
                    .read(put.slot)
                    .map_err(io)?
                    .is_some_and(|b| journal::body_digest(&b[..]) == put.digest),
            )
        })?;
        let mut ledger = TxnLedger {
            free: txn.open_table(FREE_SLOTS).map_err(Error::storage)?,
            end: meta_get(&meta, SLOT_END)?,
        };
        let mut envelopes = txn.open_table(ENVELOPES).map_err(Error::storage)?;
        let mut by_id = txn.open_table(BY_ID).map_err(Error::storage)?;
        let mut counts = txn.open_table(COUNTS).map_err(Error::storage)?;
        let mut total = meta_get(&meta, TOTAL)?;
        let mut deleted = Vec::new();
        for r in &replay.records {
            apply(
                r,
                &mut ledger,
                &mut envelopes,
                &mut by_id,
                &mut counts,
                &mut total,
            )?;
            deleted.extend(r.deletes.iter().map(|d| d.slot));
            meta.insert(NEXT_ID, r.next_id).map_err(Error::storage)?;
            meta.insert(HORIZON, r.horizon).map_err(Error::storage)?;
            meta.insert(JOURNAL_SEQ, r.seq).map_err(Error::storage)?;
        }
        meta.insert(JOURNAL_AT, replay.next_at)
            .map_err(Error::storage)?;
        meta.insert(TOTAL, total).map_err(Error::storage)?;
        meta.insert(SLOT_END, ledger.end).map_err(Error::storage)?;
        applied = (!replay.records.is_empty()).then_some(total);
        // What to zero: the replayed deletes' slots still free, then what a torn round left.
        let mut zero = Vec::new();
        for s in deleted {
            if ledger.is_free(s)? {
                zero.push(s);
            }
        }
        let free_iter = ledger
            .free
            .iter()
            .map_err(Error::storage)?
            .map(|item| item.map(|(k, _)| k.value()).map_err(Error::storage));
        let dirty = slots::recovery_scan(free_iter, |s| {
            Ok(slots
                .read(s)
                .map_err(io)?
                .is_none_or(|b| b.iter().all(|&x| x == 0)))
        })?;
        zero.extend(dirty);
        zero.sort_unstable();
        zero.dedup();
        for run in slots::runs(&zero) {
            slots.zero(zero[run.start], run.len()).map_err(io)?;
        }
        let len = slots.len().map_err(io)?;
        let end_bytes = SlotFile::offset(ledger.end);
        let tail = len.saturating_sub(end_bytes);
        if tail > 0 {
            let count = usize::try_from(tail.div_ceil(SLOT as u64)).unwrap_or(usize::MAX);
            slots.zero(ledger.end, count).map_err(io)?;
        }
        // The ring always exists, so that slot offsets are past it.
        slots.file.set_len(end_bytes).map_err(io)?;
        // Zeros before the index commit: an index that no longer names the records must
        // not meet the bodies they deleted.
        slots.file.sync_data().map_err(io)?;
        if !zero.is_empty() || tail > 0 || !replay.records.is_empty() {
            tracing::info!(
                records = replay.records.len(),
                slots = zero.len(),
                tail_bytes = tail,
                "journal applied; slots of deleted or unacknowledged envelopes overwritten at open"
            );
        }
    }
    txn.commit().map_err(Error::storage)?;
    slots.zero_ring(&ring).map_err(io)?;
    slots.file.sync_data().map_err(io)?;
    Ok(applied)
}

/// Applies one journal record to the index tables (the counterpart of a round's `Tx`).
fn apply(
    r: &Record,
    ledger: &mut TxnLedger<'_>,
    envelopes: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    by_id: &mut redb::Table<'_, u64, &'static [u8]>,
    counts: &mut redb::Table<'_, &'static [u8], u32>,
    total: &mut u64,
) -> Result<(), Error> {
    let mismatch = || Error::Storage("a journal record does not match the index".into());
    let mut adjust = |mb: &[u8], up: bool| -> Result<(), Error> {
        let n = counts
            .get(mb)
            .map_err(Error::storage)?
            .map_or(0, |g| g.value());
        let n = if up { n + 1 } else { n.saturating_sub(1) };
        if n == 0 {
            counts.remove(mb).map_err(Error::storage)?;
        } else {
            counts.insert(mb, n).map_err(Error::storage)?;
        }
        Ok(())
    };
    for p in &r.puts {
        let mailbox = MailboxId(p.mailbox);
        if p.slot >= ledger.end {
            slots::extend_to(ledger, p.slot)?;
        } else if ledger.is_free(p.slot)? {
            ledger.remove_free(p.slot)?;
        } else {
            return Err(mismatch());
        }
        let mut value = [0u8; 16];
        value[..8].copy_from_slice(&r.stored_at.to_be_bytes());
        value[8..].copy_from_slice(&p.slot.to_be_bytes());
        let key = env_key(&mailbox, p.id);
        if envelopes
            .insert(&key[..], &value[..])
            .map_err(Error::storage)?
            .is_some()
        {
            return Err(mismatch());
        }
        let mut idx = [0u8; 40];
        idx[..32].copy_from_slice(&p.mailbox);
        idx[32..].copy_from_slice(&r.stored_at.to_be_bytes());
        by_id.insert(p.id, &idx[..]).map_err(Error::storage)?;
        adjust(&p.mailbox, true)?;
        *total += 1;
    }
    for d in &r.deletes {
        let mailbox = match by_id.remove(d.id).map_err(Error::storage)? {
            Some(v) => mailbox_of(v.value()),
            None => return Err(mismatch()),
        };
        let slot = match envelopes
            .remove(&env_key(&mailbox, d.id)[..])
            .map_err(Error::storage)?
        {
            Some(v) => split_u64(v.value(), 8),
            None => return Err(mismatch()),
        };
        if slot != d.slot {
            return Err(mismatch());
        }
        ledger.add_free(slot)?;
        adjust(mailbox.as_bytes(), false)?;
        *total = total.saturating_sub(1);
    }
    Ok(())
}

/// Opens or creates the database at `path` and its tables; returns it with the stored total.
///
/// After a crash, redb must rebuild its allocator state. Every write transaction of this
/// store is begun by [`begin_write`] with quick repair on, so the last commit before a crash
/// recorded that state and the open loads it (a few pages) instead of walking and checksumming
/// every page of the file. Only a file whose last commit was made without it (by an older
/// relay) is repaired in full; the log says so, as it may take long.
fn open_db(path: &Path, cache_bytes: usize) -> Result<(Database, u64), Error> {
    let announced = std::sync::atomic::AtomicBool::new(false);
    // redb's default cache is 1 GiB; the relay's working set is the recent envelopes.
    let db = Database::builder()
        .set_cache_size(cache_bytes)
        .set_repair_callback(move |_| {
            if !announced.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "relay.redb was not shut down cleanly and records no allocator state: \
                     checking the whole file before serving (time grows with its size)"
                );
            }
        })
        .create(path)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::StoreInUse,
            e => Error::storage(e),
        })?;
    let txn = begin_write(&db)?;
    let total;
    {
        let mut meta = txn.open_table(META).map_err(Error::storage)?;
        let next = meta
            .get(NEXT_ID)
            .map_err(Error::storage)?
            .map(|g| g.value());
        let layout = meta
            .get(LAYOUT_KEY)
            .map_err(Error::storage)?
            .map(|g| g.value());
        match (next, layout) {
            (None, _) => {
                // Ids start at 1 so that `after = 0` means "from the beginning".
                meta.insert(NEXT_ID, 1).map_err(Error::storage)?;
                meta.insert(TOTAL, 0).map_err(Error::storage)?;
                meta.insert(HORIZON, 0).map_err(Error::storage)?;
                meta.insert(SLOT_END, 0).map_err(Error::storage)?;
                meta.insert(JOURNAL_SEQ, 0).map_err(Error::storage)?;
                meta.insert(JOURNAL_AT, 0).map_err(Error::storage)?;
                meta.insert(LAYOUT_KEY, LAYOUT).map_err(Error::storage)?;
            }
            (Some(_), Some(LAYOUT)) => {}
            (Some(_), other) => {
                return Err(Error::StoreLayout {
                    found: other.unwrap_or(LAYOUT_SINGLE_FILE),
                    expected: LAYOUT,
                });
            }
        }
        total = meta
            .get(TOTAL)
            .map_err(Error::storage)?
            .map_or(0, |g| g.value());
        drop(meta);
        txn.open_table(ENVELOPES).map_err(Error::storage)?;
        txn.open_table(BY_ID).map_err(Error::storage)?;
        txn.open_table(COUNTS).map_err(Error::storage)?;
        txn.open_table(FREE_SLOTS).map_err(Error::storage)?;
    }
    txn.commit().map_err(Error::storage)?;
    Ok((db, total))
}

/// A write transaction whose commit records the allocator state (redb's quick repair), so
/// that an open after a crash need not rebuild it ([`open_db`]). It makes each commit
/// two-phase: one more fsync and a few more pages per commit, shared by a whole group commit.
fn begin_write(db: &Database) -> Result<redb::WriteTransaction, Error> {
    let mut txn = db.begin_write().map_err(Error::storage)?;
    txn.set_quick_repair(true);
    Ok(txn)
}

impl Drop for RedbStore {
    /// A clean shutdown ends with a checkpoint, so the next open replays nothing; a small
    /// index is then compacted (see [`COMPACT_AT_STOP`]).
    fn drop(&mut self) {
        if self.failed.load(Ordering::Acquire) {
            return;
        }
        {
            let guard = self.db.read().unwrap_or_else(PoisonError::into_inner);
            let Some(db) = guard.as_ref() else { return };
            let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            if let Err(e) = self.checkpoint(db, &mut writer) {
                tracing::warn!(error = %e, "no checkpoint at shutdown; the next open replays");
                return;
            }
        }
        let db = self.db.get_mut().unwrap_or_else(PoisonError::into_inner);
        let Some(db) = db.as_mut() else { return };
        let len = std::fs::metadata(&self.path).map_or(u64::MAX, |m| m.len());
        if len <= COMPACT_AT_STOP
            && let Err(e) = db.compact()
        {
            tracing::warn!(error = %e, "compacting the index at shutdown failed");
        }
    }
}

impl Store for RedbStore {
    fn commit(&self, ops: &[WriteOp], now: u64) -> Result<Vec<WriteOutcome>, Error> {
        self.with_db(true, |db| self.commit_in(db, ops, now))
    }

    fn fetch(
        &self,
        mailboxes: &[MailboxId],
        after: EnvelopeId,
        limit: usize,
    ) -> Result<(Vec<Stored>, bool), Error> {
        self.with_db(false, |db| self.fetch_in(db, mailboxes, after, limit))
    }

    fn sweep(&self, cutoff: u64, max: usize) -> Result<u64, Error> {
        self.with_db(true, |db| self.sweep_in(db, cutoff, max))
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            envelopes: self.total.load(Ordering::Relaxed),
        }
    }

    fn count(&self, mailbox: &MailboxId) -> Result<u32, Error> {
        self.with_db(false, |db| {
            let txn = db.begin_read().map_err(Error::storage)?;
            let counts = txn.open_table(COUNTS).map_err(Error::storage)?;
            Ok(counts
                .get(&mailbox.as_bytes()[..])
                .map_err(Error::storage)?
                .map_or(0, |g| g.value()))
        })
    }

    fn scrub(&self) -> Result<bool, Error> {
        // The bodies were erased by the commits that deleted them; the journal's records and
        // the index rows (in freed pages of relay.redb) remain.
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(false);
        }
        let r = self
            .with_db(true, |db| self.clear_journal(db))
            .and_then(|()| self.rewrite());
        if r.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        r.map(|()| true)
    }
}

impl RedbStore {
    /// Commits `ops` in as few rounds as their journal records allow (one, unless the ops
    /// store more than [`journal::MAX_PUTS`] deposits or may delete more than
    /// [`journal::MAX_DELETES`] envelopes). If a later round fails, the ops of the rounds that
    /// committed keep their outcomes and the others are [`WriteOutcome::Unavailable`].
    fn commit_in(
        &self,
        db: &Database,
        ops: &[WriteOp],
        now: u64,
    ) -> Result<Vec<WriteOutcome>, Error> {
        let mut outcomes = Vec::with_capacity(ops.len());
        let mut rest = ops;
        while !rest.is_empty() {
            let (mut puts, mut dels, mut n) = (0usize, 0usize, 0usize);
            for op in rest {
                match op {
                    WriteOp::Deposit { .. } => puts += 1,
                    WriteOp::Delete { ids, .. } => dels += ids.len(),
                }
                if n > 0 && !journal::fits(puts, dels) {
                    break;
                }
                n += 1;
            }
            let (group, later) = rest.split_at(n);
            match self.commit_round(db, group, now) {
                Ok(o) => outcomes.extend(o),
                Err(e) if outcomes.is_empty() => return Err(e),
                Err(e) => {
                    tracing::error!(error = %e, "a commit's later round failed");
                    outcomes.resize(ops.len(), WriteOutcome::Unavailable);
                    return Ok(outcomes);
                }
            }
            rest = later;
        }
        Ok(outcomes)
    }

    fn commit_round(
        &self,
        db: &Database,
        ops: &[WriteOp],
        now: u64,
    ) -> Result<Vec<WriteOutcome>, Error> {
        let (outcomes, new_total) = self.round(db, now, |tx| {
            let mut outcomes = Vec::with_capacity(ops.len());
            let mut next_id = meta_get(&tx.meta, NEXT_ID)?;
            let mut total = meta_get(&tx.meta, TOTAL)?;
            let horizon = meta_get(&tx.meta, HORIZON)?;
            for op in ops {
                match op {
                    WriteOp::Deposit { mailbox, envelope } => {
                        let count = tx.count(mailbox)?;
                        if count >= self.quotas.mailbox {
                            outcomes.push(WriteOutcome::MailboxFull);
                            continue;
                        }
                        if total >= self.quotas.total {
                            outcomes.push(WriteOutcome::RelayFull);
                            continue;
                        }
                        let id = next_id;
                        next_id += 1;
                        tx.store(mailbox, id, envelope, now)?;
                        tx.set_count(mailbox, count + 1)?;
                        total += 1;
                        outcomes.push(WriteOutcome::Stored(EnvelopeId(id)));
                    }
                    WriteOp::Delete { mailbox, ids } => {
                        let (mut deleted, mut expired, mut unknown) = (0u16, 0u16, 0u16);
                        for id in ids {
                            if tx.remove(mailbox, id.0)? {
                                deleted = deleted.saturating_add(1);
                            } else if id.0 < horizon {
                                expired = expired.saturating_add(1);
                            } else {
                                unknown = unknown.saturating_add(1);
                            }
                        }
                        if deleted > 0 {
                            let left = tx.count(mailbox)?.saturating_sub(u32::from(deleted));
                            tx.set_count(mailbox, left)?;
                            total = total.saturating_sub(u64::from(deleted));
                        }
                        outcomes.push(WriteOutcome::Deleted {
                            deleted,
                            expired,
                            unknown,
                        });
                    }
                }
            }
            tx.meta.insert(NEXT_ID, next_id).map_err(Error::storage)?;
            tx.meta.insert(TOTAL, total).map_err(Error::storage)?;
            Ok((outcomes, total))
        })?;
        self.total.store(new_total, Ordering::Relaxed);
        Ok(outcomes)
    }

    fn fetch_in(
        &self,
        db: &Database,
        mailboxes: &[MailboxId],
        after: EnvelopeId,
        limit: usize,
    ) -> Result<(Vec<Stored>, bool), Error> {
        // Held until the bodies are read: no slot this snapshot names is zeroed meanwhile.
        let _readers = self.readers.read().unwrap_or_else(PoisonError::into_inner);
        let txn = db.begin_read().map_err(Error::storage)?;
        let envelopes = txn.open_table(ENVELOPES).map_err(Error::storage)?;
        let mut uniq: Vec<MailboxId> = mailboxes.to_vec();
        uniq.sort();
        uniq.dedup();
        // First the ids and slots of each mailbox (cheap), then the bodies of the `limit`
        // smallest.
        let mut found: Vec<(u64, MailboxId, u64)> = Vec::new();
        let start = after.0.saturating_add(1);
        for mb in &uniq {
            let lo = env_key(mb, start);
            let hi = env_key(mb, u64::MAX);
            let range = envelopes.range(&lo[..]..=&hi[..]).map_err(Error::storage)?;
            for item in range.take(limit.saturating_add(1)) {
                let (k, v) = item.map_err(Error::storage)?;
                found.push((split_u64(k.value(), 32), *mb, split_u64(v.value(), 8)));
            }
        }
        found.sort_unstable_by_key(|(id, _, _)| *id);
        let more = found.len() > limit;
        found.truncate(limit);
        let mut out = Vec::with_capacity(found.len());
        for (id, mb, slot) in found {
            let body = self
                .slots
                .read(slot)
                .map_err(|e| Error::io(format!("reading {SLOT_FILE}"), e))?
                .ok_or_else(|| Error::Storage("an envelope's slot is past the end".into()))?;
            out.push(Stored {
                mailbox: mb,
                id: EnvelopeId(id),
                envelope: Envelope::new(body),
            });
        }
        Ok((out, more))
    }

    /// Expires up to `max` envelopes in rounds of at most [`journal::MAX_DELETES`]; then, as
    /// the relay's timer for it, a checkpoint if the last one is older than
    /// [`CHECKPOINT_AGE`] and records were written since.
    fn sweep_in(&self, db: &Database, cutoff: u64, max: usize) -> Result<u64, Error> {
        let mut swept = 0u64;
        let mut left = max;
        while left > 0 {
            let chunk = left.min(journal::MAX_DELETES);
            let n = self.sweep_round(db, cutoff, chunk)?;
            swept += n;
            left -= chunk;
            if n < chunk as u64 {
                break;
            }
        }
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if writer.used > 0 && writer.last_checkpoint.elapsed() >= CHECKPOINT_AGE {
            self.checkpoint(db, &mut writer)?;
        }
        Ok(swept)
    }

    fn sweep_round(&self, db: &Database, cutoff: u64, max: usize) -> Result<u64, Error> {
        let (swept, new_total) = self.round(db, 0, |tx| {
            let mut victims: Vec<(u64, MailboxId)> = Vec::new();
            for item in tx.by_id.range(0..).map_err(Error::storage)?.take(max) {
                let (k, v) = item.map_err(Error::storage)?;
                let stored_at = split_u64(v.value(), 32);
                // Ids grow with commit time, so the first unexpired id ends the sweep.
                if stored_at >= cutoff {
                    break;
                }
                victims.push((k.value(), mailbox_of(v.value())));
            }
            let mut horizon = meta_get(&tx.meta, HORIZON)?;
            let mut swept = 0u64;
            for (id, mb) in &victims {
                if tx.remove(mb, *id)? {
                    let count = tx.count(mb)?;
                    tx.set_count(mb, count.saturating_sub(1))?;
                    swept += 1;
                }
                horizon = horizon.max(id + 1);
            }
            let total = meta_get(&tx.meta, TOTAL)?.saturating_sub(swept);
            tx.meta.insert(TOTAL, total).map_err(Error::storage)?;
            tx.meta.insert(HORIZON, horizon).map_err(Error::storage)?;
            Ok((swept, total))
        })?;
        self.total.store(new_total, Ordering::Relaxed);
        Ok(swept)
    }
}

impl RedbStore {
    /// Records rows a committed transaction removed, if a scrub is copying.
    fn track(&self, rows: Vec<(MailboxId, u64)>) {
        if rows.is_empty() {
            return;
        }
        let mut t = self.tracking.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = t.as_mut() {
            list.extend(rows);
        }
    }

    /// Rewrites the live rows into a fresh file that replaces `relay.redb`, then destroys the
    /// old file's bytes. The bulk copy reads a snapshot while requests go on; only the rows
    /// written since (and the swap) are done with the database held exclusively.
    fn rewrite(&self) -> Result<(), Error> {
        self.rewrite_with(|| {}).map(|_| ())
    }

    /// [`Self::rewrite`], running `between` after the snapshot copy and before the exclusive
    /// part (tests write there); returns how long requests had to wait.
    fn rewrite_with(&self, between: impl FnOnce()) -> Result<std::time::Duration, Error> {
        let started = std::time::Instant::now();
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let new_path = dir.join(SCRUB_NEW);
        remove_if_present(&new_path)?;
        let generation = self.generation.load(Ordering::Acquire);
        // Tracking starts before the snapshot: a delete between the two is recorded and finds
        // nothing to remove from the copy, which is harmless.
        *self.tracking.lock().unwrap_or_else(PoisonError::into_inner) = Some(Vec::new());
        let copied = {
            let guard = self.db.read().unwrap_or_else(PoisonError::into_inner);
            match guard.as_ref() {
                Some(old) => copy_snapshot(old, &new_path, self.cache_bytes),
                None => Err(Error::Storage("database closed after an I/O error".into())),
            }
        };
        between();
        let mut guard = self.db.write().unwrap_or_else(PoisonError::into_inner);
        let exclusive = std::time::Instant::now();
        let deleted = self
            .tracking
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default();
        let caught_up = copied.and_then(|(new, snapshot_next)| {
            if self.generation.load(Ordering::Acquire) != generation {
                return Err(Error::Storage(
                    "reopened during a scrub; retried later".into(),
                ));
            }
            let old = guard
                .as_ref()
                .ok_or_else(|| Error::Storage("database closed after an I/O error".into()))?;
            catch_up(old, &new, snapshot_next, &deleted)
        });
        if let Err(e) = caught_up {
            // The old file is untouched and still open; the fresh one holds only live rows.
            let _ = std::fs::remove_file(&new_path);
            return Err(e);
        }
        // From here the old database must be closed: it is replaced on disk.
        *guard = None;
        let swapped = swap_in(dir, &self.path, &new_path);
        if swapped.is_err() {
            let _ = std::fs::remove_file(&new_path);
        }
        let reopened = open_db(&self.path, self.cache_bytes);
        match reopened {
            Ok((db, total)) => {
                *guard = Some(db);
                self.total.store(total, Ordering::Relaxed);
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            Err(e) => {
                self.failed.store(true, Ordering::Release);
                return Err(e);
            }
        }
        drop(guard);
        let paused = exclusive.elapsed();
        // Requests go on while the old file is overwritten: it is no longer the database.
        destroy(&swapped?)?;
        sync_dir(dir)?;
        if !deleted.is_empty() {
            // Rows removed from the copy left their bytes in its freed pages: rewrite again.
            self.dirty.store(true, Ordering::Release);
        }
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        tracing::info!(
            ms = ms(started.elapsed()),
            paused_ms = ms(paused),
            "database rewritten: deleted envelopes overwritten"
        );
        Ok(paused)
    }
}

/// Applies to `new` (a copy of a snapshot of `old` taken when `meta.next_id` was
/// `snapshot_next`) what was committed to `old` since: the deposits with ids from
/// `snapshot_next` that are still there, the `deleted` rows, the counts and the meta rows.
/// One durable commit.
fn catch_up(
    old: &Database,
    new: &Database,
    snapshot_next: u64,
    deleted: &[(MailboxId, u64)],
) -> Result<(), Error> {
    let read = old.begin_read().map_err(Error::storage)?;
    let old_envelopes = read.open_table(ENVELOPES).map_err(Error::storage)?;
    let old_by_id = read.open_table(BY_ID).map_err(Error::storage)?;
    let old_meta = read.open_table(META).map_err(Error::storage)?;
    let txn = new.begin_write().map_err(Error::storage)?;
    {
        let mut envelopes = txn.open_table(ENVELOPES).map_err(Error::storage)?;
        let mut by_id = txn.open_table(BY_ID).map_err(Error::storage)?;
        let mut counts = txn.open_table(COUNTS).map_err(Error::storage)?;
        let mut meta = txn.open_table(META).map_err(Error::storage)?;
        let mut adjust = |mb: &MailboxId, up: bool| -> Result<(), Error> {
            let n = counts
                .get(&mb.as_bytes()[..])
                .map_err(Error::storage)?
                .map_or(0, |g| g.value());
            let n = if up { n + 1 } else { n.saturating_sub(1) };
            if n == 0 {
                counts.remove(&mb.as_bytes()[..]).map_err(Error::storage)?;
            } else {
                counts
                    .insert(&mb.as_bytes()[..], n)
                    .map_err(Error::storage)?;
            }
            Ok(())
        };
        for item in old_by_id.range(snapshot_next..).map_err(Error::storage)? {
            let (k, v) = item.map_err(Error::storage)?;
            let (id, idx) = (k.value(), v.value());
            let mb = mailbox_of(idx);
            let key = env_key(&mb, id);
            if let Some(row) = old_envelopes.get(&key[..]).map_err(Error::storage)? {
                envelopes
                    .insert(&key[..], row.value())
                    .map_err(Error::storage)?;
                by_id.insert(id, idx).map_err(Error::storage)?;
                adjust(&mb, true)?;
            }
        }
        for (mb, id) in deleted {
            if envelopes
                .remove(&env_key(mb, *id)[..])
                .map_err(Error::storage)?
                .is_some()
            {
                by_id.remove(*id).map_err(Error::storage)?;
                adjust(mb, false)?;
            }
        }
        for item in old_meta.iter().map_err(Error::storage)? {
            let (k, v) = item.map_err(Error::storage)?;
            meta.insert(k.value(), v.value()).map_err(Error::storage)?;
        }
        let from = read.open_table(FREE_SLOTS).map_err(Error::storage)?;
        let mut to = txn.open_table(FREE_SLOTS).map_err(Error::storage)?;
        sync_slot_set(&from, &mut to)?;
    }
    txn.commit().map_err(Error::storage)?;
    Ok(())
}

/// Makes the slot set `to` equal to `from`, writing only the difference (both are read in
/// order once; after a mass expiry the free set is large, while a catch-up changes little).
fn sync_slot_set(
    from: &redb::ReadOnlyTable<u64, ()>,
    to: &mut redb::Table<u64, ()>,
) -> Result<(), Error> {
    let keys = |it: redb::Range<'_, u64, ()>| -> Result<Vec<u64>, Error> {
        it.map(|item| item.map(|(k, _)| k.value()).map_err(Error::storage))
            .collect()
    };
    let want = keys(from.range(0..).map_err(Error::storage)?)?;
    let have = keys(to.range(0..).map_err(Error::storage)?)?;
    let (mut i, mut j) = (0, 0);
    while i < want.len() || j < have.len() {
        match (want.get(i), have.get(j)) {
            (Some(w), Some(h)) if w == h => {
                i += 1;
                j += 1;
            }
            (Some(w), h) if h.is_none_or(|h| w < h) => {
                to.insert(*w, ()).map_err(Error::storage)?;
                i += 1;
            }
            (_, Some(h)) => {
                to.remove(*h).map_err(Error::storage)?;
                j += 1;
            }
            (_, None) => break,
        }
    }
    Ok(())
}

/// Copies every row of a snapshot of `old` into a new database at `path`, durably; returns it
/// with the snapshot's `meta.next_id`.
fn copy_snapshot(
    old: &Database,
    path: &Path,
    cache_bytes: usize,
) -> Result<(Database, u64), Error> {
    let new = Database::builder()
        .set_cache_size(cache_bytes)
        .create(path)
        .map_err(Error::storage)?;
    let read = old.begin_read().map_err(Error::storage)?;
    // Each chunk is its own non-durable commit (bounding the write buffer); one durable
    // commit at the end makes them all durable.
    macro_rules! copy {
        ($def:expr, $own_k:expr, $own_v:expr, $view_k:expr, $view_v:expr) => {{
            let table = read.open_table($def).map_err(Error::storage)?;
            let mut rows = table.iter().map_err(Error::storage)?;
            loop {
                let mut chunk = Vec::with_capacity(SCRUB_CHUNK);
                for item in rows.by_ref().take(SCRUB_CHUNK) {
                    let (k, v) = item.map_err(Error::storage)?;
                    chunk.push(($own_k(k.value()), $own_v(v.value())));
                }
                if chunk.is_empty() {
                    break;
                }
                let mut txn = new.begin_write().map_err(Error::storage)?;
                txn.set_durability(redb::Durability::None)
                    .map_err(Error::storage)?;
                {
                    let mut t = txn.open_table($def).map_err(Error::storage)?;
                    for (k, v) in &chunk {
                        t.insert($view_k(k), $view_v(v)).map_err(Error::storage)?;
                    }
                }
                txn.commit().map_err(Error::storage)?;
            }
        }};
    }
    fn bytes(b: &Vec<u8>) -> &[u8] {
        b
    }
    let copied = |n: &u64| *n;
    copy!(ENVELOPES, <[u8]>::to_vec, <[u8]>::to_vec, bytes, bytes);
    copy!(BY_ID, std::convert::identity, <[u8]>::to_vec, copied, bytes);
    copy!(
        COUNTS,
        <[u8]>::to_vec,
        std::convert::identity,
        bytes,
        |n: &u32| *n
    );
    copy!(
        FREE_SLOTS,
        std::convert::identity,
        |()| (),
        copied,
        |(): &()| ()
    );
    copy!(
        META,
        str::to_owned,
        std::convert::identity,
        String::as_str,
        copied
    );
    // Durable now, outside the exclusive part: catch_up then syncs only its delta.
    let txn = new.begin_write().map_err(Error::storage)?;
    txn.open_table(META).map_err(Error::storage)?;
    txn.commit().map_err(Error::storage)?;
    let next = read
        .open_table(META)
        .map_err(Error::storage)?
        .get(NEXT_ID)
        .map_err(Error::storage)?
        .map_or(0, |g| g.value());
    drop(read);
    Ok((new, next))
}

/// Swaps the fresh file in for `live`: a second name for the old file first (so a crash never
/// leaves no `relay.redb`), then the atomic rename. Returns the old file's second name, for
/// [`destroy`].
fn swap_in(dir: &Path, live: &Path, fresh: &Path) -> Result<PathBuf, Error> {
    let old = dir.join(SCRUB_OLD);
    remove_if_present(&old)?;
    std::fs::hard_link(live, &old)
        .map_err(|e| Error::io(format!("linking {}", old.display()), e))?;
    if let Err(e) = std::fs::rename(fresh, live) {
        // `old` is still a second name of the live file: unlink it, never overwrite it.
        let _ = std::fs::remove_file(&old);
        return Err(Error::io(format!("renaming to {}", live.display()), e));
    }
    sync_dir(dir)?;
    Ok(old)
}

/// Finishes a scrub that a crash interrupted (see the module doc).
fn finish_scrub(dir: &Path) -> Result<(), Error> {
    let old = dir.join(SCRUB_OLD);
    if std::fs::symlink_metadata(&old).is_ok() {
        if same_file(&old, &dir.join("relay.redb")) {
            // The rename did not happen: `old` is just a second name of the live file.
            remove_if_present(&old)?;
        } else {
            destroy(&old)?;
        }
    }
    remove_if_present(&dir.join(SCRUB_NEW))?;
    sync_dir(dir)
}

fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

/// Overwrites every byte of the file at `path` with zeros, syncs it and unlinks it.
fn destroy(path: &Path) -> Result<(), Error> {
    let what = || format!("overwriting {}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(what(), e))?;
    let len = f.metadata().map_err(|e| Error::io(what(), e))?.len();
    let zeros = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
        f.write_all(&zeros[..n]).map_err(|e| Error::io(what(), e))?;
        left -= n as u64;
    }
    f.sync_all().map_err(|e| Error::io(what(), e))?;
    drop(f);
    remove_if_present(path)
}

fn remove_if_present(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", path.display()), e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(format!("syncing {}", dir.display()), e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_proto::FetchSecret;

    fn env(b: u8) -> Envelope {
        Envelope::new(Box::new([b; ENVELOPE_LEN]))
    }
    fn dep(mb: MailboxId, b: u8) -> WriteOp {
        WriteOp::Deposit {
            mailbox: mb,
            envelope: env(b),
        }
    }

    #[test]
    fn deposit_fetch_delete_quota_sweep_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let quotas = Quotas {
            mailbox: 3,
            total: 5,
        };
        let a = FetchSecret::from_bytes([1; 32]).mailbox_id();
        let b = FetchSecret::from_bytes([2; 32]).mailbox_id();
        let s = RedbStore::open(dir.path(), quotas, 1 << 20).unwrap();
        let out = s
            .commit(
                &[dep(a, 1), dep(a, 2), dep(b, 3), dep(a, 4), dep(a, 5)],
                100,
            )
            .unwrap();
        assert_eq!(
            out,
            vec![
                WriteOutcome::Stored(EnvelopeId(1)),
                WriteOutcome::Stored(EnvelopeId(2)),
                WriteOutcome::Stored(EnvelopeId(3)),
                WriteOutcome::Stored(EnvelopeId(4)),
                WriteOutcome::MailboxFull,
            ]
        );
        let out = s.commit(&[dep(b, 6), dep(b, 7)], 200).unwrap();
        assert_eq!(
            out,
            vec![WriteOutcome::Stored(EnvelopeId(5)), WriteOutcome::RelayFull]
        );
        assert_eq!(s.stats().envelopes, 5);

        let (got, more) = s.fetch(&[a, b], EnvelopeId(0), 10).unwrap();
        assert!(!more);
        let ids: Vec<u64> = got.iter().map(|x| x.id.0).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
        assert_eq!(got[2].envelope, env(3));
        assert_eq!(got[2].mailbox, b);
        let (got, more) = s.fetch(&[a], EnvelopeId(1), 1).unwrap();
        assert!(more);
        assert_eq!(got[0].id, EnvelopeId(2));

        // Deleting from the wrong mailbox does nothing.
        let out = s
            .commit(
                &[WriteOp::Delete {
                    mailbox: b,
                    ids: vec![EnvelopeId(1)],
                }],
                300,
            )
            .unwrap();
        assert_eq!(
            out[0],
            WriteOutcome::Deleted {
                deleted: 0,
                expired: 0,
                unknown: 1
            }
        );
        let out = s
            .commit(
                &[WriteOp::Delete {
                    mailbox: a,
                    ids: vec![EnvelopeId(1), EnvelopeId(99)],
                }],
                300,
            )
            .unwrap();
        assert_eq!(
            out[0],
            WriteOutcome::Deleted {
                deleted: 1,
                expired: 0,
                unknown: 1
            }
        );
        drop(s);

        // Reopen: state survives; sweep removes what was stored before the cutoff.
        let s = RedbStore::open(dir.path(), quotas, 1 << 20).unwrap();
        assert_eq!(s.stats().envelopes, 4);
        assert_eq!(s.sweep(150, 100).unwrap(), 3);
        let (got, _) = s.fetch(&[a, b], EnvelopeId(0), 10).unwrap();
        assert_eq!(got.iter().map(|x| x.id.0).collect::<Vec<_>>(), vec![5]);
        let out = s
            .commit(
                &[WriteOp::Delete {
                    mailbox: a,
                    ids: vec![EnvelopeId(2)],
                }],
                300,
            )
            .unwrap();
        assert_eq!(
            out[0],
            WriteOutcome::Deleted {
                deleted: 0,
                expired: 1,
                unknown: 0
            }
        );
        // Quota space is released: mailbox a is empty again.
        let out = s.commit(&[dep(a, 9)], 400).unwrap();
        assert_eq!(out[0], WriteOutcome::Stored(EnvelopeId(6)));
    }

    fn raw_files(dir: &Path) -> Vec<u8> {
        let mut all = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            all.extend(std::fs::read(e.unwrap().path()).unwrap());
        }
        all
    }

    fn has(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn a_scrub_leaves_nothing_of_deleted_envelopes_and_keeps_the_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let quotas = Quotas {
            mailbox: 100,
            total: 1000,
        };
        let gone = FetchSecret::from_bytes([7; 32]).mailbox_id();
        let kept = FetchSecret::from_bytes([8; 32]).mailbox_id();
        let s = RedbStore::open(dir.path(), quotas, 1 << 20).unwrap();
        // The first scrub after a start always rewrites; then only after a delete.
        assert!(s.scrub().unwrap());
        assert!(!s.scrub().unwrap());
        let (t_gone, t_kept) = (0x1234_5678_9abc_u64, 0x0fed_cba9_8765_u64);
        let ids: Vec<EnvelopeId> = s
            .commit(&[dep(gone, 0xa1), dep(gone, 0xa2)], t_gone)
            .unwrap()
            .into_iter()
            .map(|o| match o {
                WriteOutcome::Stored(id) => id,
                other => panic!("{other:?}"),
            })
            .collect();
        s.commit(&[dep(kept, 0xb1)], t_kept).unwrap();
        let before = raw_files(dir.path());
        assert!(has(&before, &[0xa1; 64]), "the deposit is in the file");
        s.commit(&[WriteOp::Delete { mailbox: gone, ids }], t_kept)
            .unwrap();
        // The bodies are erased by the delete's commit; the index rows (copy-on-write) and
        // the journal records still hold the mailbox id until the scrub.
        let raw = raw_files(dir.path());
        assert!(!has(&raw, &[0xa1; 64]) && !has(&raw, &[0xa2; 64]));
        assert!(has(&raw, gone.as_bytes()));
        assert!(s.scrub().unwrap());
        let after = raw_files(dir.path());
        for needle in [
            &[0xa1; 64][..],
            &[0xa2; 64],
            gone.as_bytes(),
            &t_gone.to_be_bytes(),
        ] {
            assert!(!has(&after, needle), "deleted data survived the scrub");
        }
        for needle in [&[0xb1; 64][..], kept.as_bytes(), &t_kept.to_be_bytes()] {
            assert!(has(&after, needle), "live data lost");
        }
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                std::ffi::OsString::from(SLOT_FILE),
                std::ffi::OsString::from("relay.redb")
            ]
        );
        // The store keeps working on the new file, and a reopen sees the same state.
        let (got, _) = s.fetch(&[kept, gone], EnvelopeId(0), 10).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].envelope, env(0xb1));
        let out = s.commit(&[dep(kept, 0xb2)], t_kept).unwrap();
        assert_eq!(out[0], WriteOutcome::Stored(EnvelopeId(4)));
        drop(s);
        let s = RedbStore::open(dir.path(), quotas, 1 << 20).unwrap();
        assert_eq!(s.stats().envelopes, 2);
    }

    #[test]
    fn writes_during_a_scrubs_copy_are_kept_and_its_deletes_scrubbed_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let quotas = Quotas {
            mailbox: 100,
            total: 1000,
        };
        let a = FetchSecret::from_bytes([3; 32]).mailbox_id();
        let b = FetchSecret::from_bytes([4; 32]).mailbox_id();
        let s = RedbStore::open(dir.path(), quotas, 1 << 20).unwrap();
        s.commit(&[dep(a, 0x11), dep(a, 0x12), dep(b, 0x13)], 10)
            .unwrap();
        assert!(s.dirty.swap(false, Ordering::AcqRel));
        // While the snapshot is copied: a deposit, a delete of a copied row, a deposit
        // deleted again, and an expiry sweep of nothing.
        s.rewrite_with(|| {
            s.commit(&[dep(b, 0x14), dep(a, 0x15)], 20).unwrap();
            let out = s
                .commit(
                    &[
                        WriteOp::Delete {
                            mailbox: a,
                            ids: vec![EnvelopeId(1), EnvelopeId(5)],
                        },
                        dep(b, 0x16),
                    ],
                    30,
                )
                .unwrap();
            assert_eq!(out[1], WriteOutcome::Stored(EnvelopeId(6)));
            assert_eq!(s.sweep(5, 10).unwrap(), 0);
        })
        .unwrap();
        // The new file has exactly what the old one had at the swap.
        let (got, _) = s.fetch(&[a, b], EnvelopeId(0), 10).unwrap();
        let ids: Vec<u64> = got.iter().map(|x| x.id.0).collect();
        assert_eq!(ids, vec![2, 3, 4, 6]);
        assert_eq!(got[2].envelope, env(0x14));
        assert_eq!(s.stats().envelopes, 4);
        assert!(
            s.dirty.load(Ordering::Acquire),
            "deletes during the copy ask for another scrub"
        );
        // Quota accounting came along: mailbox a holds one envelope, b three.
        let tight = Quotas {
            mailbox: 2,
            total: 1000,
        };
        drop(s);
        let s = RedbStore::open(dir.path(), tight, 1 << 20).unwrap();
        let out = s
            .commit(&[dep(a, 0x17), dep(a, 0x18), dep(b, 0x19)], 40)
            .unwrap();
        assert_eq!(
            out,
            vec![
                WriteOutcome::Stored(EnvelopeId(7)),
                WriteOutcome::MailboxFull,
                WriteOutcome::MailboxFull
            ]
        );
        // The rows deleted during the copy left bytes in the copy's freed pages; the store
        // asks for another scrub, and that one leaves nothing.
        assert!(s.scrub().unwrap());
        let raw = raw_files(dir.path());
        assert!(!has(&raw, &[0x11; 64]) && !has(&raw, &[0x15; 64]));
        assert!(has(&raw, &[0x12; 64]) && has(&raw, &[0x16; 64]));
    }

    #[test]
    fn an_interrupted_scrub_is_finished_at_open_without_touching_the_live_file() {
        let dir = tempfile::tempdir().unwrap();
        let quotas = Quotas {
            mailbox: 100,
            total: 1000,
        };
        let mb = FetchSecret::from_bytes([9; 32]).mailbox_id();
        let s = RedbStore::open(dir.path(), quotas, 1 << 20).unwrap();
        s.commit(&[dep(mb, 0xc1)], 5).unwrap();
        drop(s);
        let live = dir.path().join("relay.redb");
        // Crash before the rename: `.old` is a second name of the live file, and a partial
        // fresh file exists.
        std::fs::hard_link(&live, dir.path().join(SCRUB_OLD)).unwrap();
        std::fs::write(dir.path().join(SCRUB_NEW), [0xc1; 128]).unwrap();
        let s = RedbStore::open(dir.path(), quotas, 1 << 20).unwrap();
        assert_eq!(s.fetch(&[mb], EnvelopeId(0), 10).unwrap().0.len(), 1);
        drop(s);
        assert!(!dir.path().join(SCRUB_OLD).exists());
        assert!(!dir.path().join(SCRUB_NEW).exists());
        // Crash after the rename: `.old` is the replaced file and is destroyed.
        let old = dir.path().join(SCRUB_OLD);
        std::fs::write(&old, [0xd1; 4096]).unwrap();
        let f = std::fs::File::open(&old).unwrap();
        drop(RedbStore::open(dir.path(), quotas, 1 << 20).unwrap());
        assert!(!old.exists());
        // The inode that was `.old` now holds zeros only (read through the open handle).
        use std::io::Read;
        let mut bytes = Vec::new();
        (&f).read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes, vec![0; 4096]);
        assert!(has(&raw_files(dir.path()), &[0xc1; 64]));
    }

    fn stored_ids(out: Vec<WriteOutcome>) -> Vec<EnvelopeId> {
        out.into_iter()
            .map(|o| match o {
                WriteOutcome::Stored(id) => id,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    /// The journal's state in the index at `dir` (the store closed): the last applied
    /// record's sequence number, the next record's ring sector, the next id.
    fn journal_meta(dir: &Path) -> (u64, u64, u64) {
        let db = Database::open(dir.join("relay.redb")).unwrap();
        let txn = db.begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        let get = |k| meta.get(k).unwrap().unwrap().value();
        (get(JOURNAL_SEQ), get(JOURNAL_AT), get(NEXT_ID))
    }

    /// What a crash leaves in the slot file is zeroed by the open, and a record the index
    /// lacks is applied: a deleted body is gone when its commit returns; a body in a free slot
    /// (a failed round's) and bytes past the index's slot end are zeroed at open (the file cut
    /// there); a whole journal record after the checkpoint (here written by hand, as a crash
    /// after its sync leaves it) stores its deposit and deletes its envelope, erasing its
    /// body; a record after it whose body is torn is not applied and its body is zeroed.
    ///
    /// Seen to fail with the open skipping the free-slot scan ("a body in a free slot
    /// survived the open"), with `apply` not erasing the replayed delete's slot ("the
    /// replayed delete's body survived"), and with the digest check skipped (the torn
    /// deposit was then fetched: "a torn record was applied").
    #[test]
    fn an_open_zeroes_what_a_crash_left_and_applies_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let quotas = Quotas {
            mailbox: 100,
            total: 1000,
        };
        let mb = FetchSecret::from_bytes([0xee; 32]).mailbox_id();
        let s = RedbStore::open(dir.path(), quotas, 1 << 20).unwrap();
        let ids = stored_ids(
            s.commit(&[dep(mb, 0xe1), dep(mb, 0xe2), dep(mb, 0xe3)], 1)
                .unwrap(),
        );
        s.commit(
            &[WriteOp::Delete {
                mailbox: mb,
                ids: vec![ids[0]],
            }],
            2,
        )
        .unwrap();
        let slot_file = dir.path().join(SLOT_FILE);
        assert!(
            !has(&std::fs::read(&slot_file).unwrap(), &[0xe1; 64]),
            "the deleted body is erased by its commit"
        );
        drop(s);
        let offset = SlotFile::offset;
        {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&slot_file)
                .unwrap();
            write_all_at(&f, &[0xf1; SLOT], offset(0)).unwrap();
            write_all_at(&f, &[0xf2; SLOT], offset(3)).unwrap();
        }
        let s = RedbStore::open(dir.path(), quotas, 1 << 20).unwrap();
        let raw = std::fs::read(&slot_file).unwrap();
        assert!(
            !has(&raw, &[0xf1; 64]),
            "a body in a free slot survived the open"
        );
        assert!(!has(&raw, &[0xf2; 64]), "bytes past the end survived");
        assert_eq!(
            raw.len() as u64,
            offset(3),
            "the file is cut at the slot end"
        );
        drop(s);

        // A crash after a commit's sync: its record is in the ring, the index lacks it.
        let (seq, at, next_id) = journal_meta(dir.path());
        let body = [0xe5u8; SLOT];
        let applied = Record {
            seq: seq + 1,
            stored_at: 3,
            next_id: next_id + 1,
            horizon: 0,
            puts: vec![journal::Put {
                slot: 0,
                id: next_id,
                mailbox: *mb.as_bytes(),
                digest: journal::body_digest(&body),
            }],
            deletes: vec![journal::Delete {
                slot: 1,
                id: ids[1].0,
            }],
        };
        let torn = Record {
            seq: seq + 2,
            stored_at: 4,
            next_id: next_id + 2,
            horizon: 0,
            puts: vec![journal::Put {
                slot: 3,
                id: next_id + 1,
                mailbox: *mb.as_bytes(),
                digest: journal::body_digest(&[0xe6; SLOT]),
            }],
            deletes: Vec::new(),
        };
        {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&slot_file)
                .unwrap();
            write_all_at(&f, &body, offset(0)).unwrap();
            let mut half = [0xe6u8; SLOT];
            half[SLOT / 2..].fill(0);
            write_all_at(&f, &half, offset(3)).unwrap();
            let one = applied.encode(RECORD_LAYOUT);
            let next = journal::advance(at, one.len());
            for (rec, at) in [(one, at), (torn.encode(RECORD_LAYOUT), next)] {
                for (off, range) in journal::placement(at, rec.len()) {
                    write_all_at(&f, &rec[range], off as u64).unwrap();
                }
            }
        }
        let s = RedbStore::open(dir.path(), quotas, 1 << 20).unwrap();
        let (got, _) = s.fetch(&[mb], EnvelopeId(0), 10).unwrap();
        assert_eq!(
            got.iter()
                .map(|x| (x.id.0, x.envelope.clone()))
                .collect::<Vec<_>>(),
            vec![(ids[2].0, env(0xe3)), (next_id, env(0xe5))],
            "a torn record was applied, or the whole one was not"
        );
        assert_eq!(s.stats().envelopes, 2);
        let raw = std::fs::read(&slot_file).unwrap();
        assert!(
            !has(&raw, &[0xe2; 64]),
            "the replayed delete's body survived"
        );
        assert!(!has(&raw, &[0xe6; 64]), "the torn body survived");
        assert!(
            !has(&raw[..journal::RING_BYTES], mb.as_bytes()),
            "the ring is cleared once applied"
        );
        // The next deposit takes the lowest free slot (the replayed delete's) and the next id.
        let out = s.commit(&[dep(mb, 0xe7)], 5).unwrap();
        assert_eq!(out[0], WriteOutcome::Stored(EnvelopeId(next_id + 1)));
        assert_eq!(
            &std::fs::read(&slot_file).unwrap()[offset(1) as usize..offset(2) as usize],
            &[0xe7; SLOT][..]
        );
        drop(s);
        let s = RedbStore::open(dir.path(), quotas, 1 << 20).unwrap();
        assert_eq!(s.fetch(&[mb], EnvelopeId(0), 10).unwrap().0.len(), 3);
    }

    /// A store written by an older layout (the single-file layout 1, a `meta` table without
    /// `layout`; layout 2, the slot file without a journal) is refused with the named error,
    /// before anything is added beside it.
    ///
    /// Seen to fail with the layout check removed (the open then succeeds).
    #[test]
    fn a_store_of_an_old_layout_is_refused() {
        for (found, mark) in [(1u64, None), (2, Some(2u64))] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("relay.redb");
            {
                let db = Database::create(&path).unwrap();
                let txn = db.begin_write().unwrap();
                {
                    let mut meta = txn.open_table(META).unwrap();
                    meta.insert(NEXT_ID, 7).unwrap();
                    if let Some(l) = mark {
                        meta.insert(LAYOUT_KEY, l).unwrap();
                    }
                }
                txn.commit().unwrap();
            }
            let quotas = Quotas {
                mailbox: 1,
                total: 1,
            };
            let e = RedbStore::open(dir.path(), quotas, 1 << 20).unwrap_err();
            assert!(
                matches!(e, Error::StoreLayout { found: f, expected: 3 } if f == found),
                "{e:?}"
            );
            assert!(
                e.to_string()
                    .starts_with(&format!("store layout {found}, expected 3")),
                "{e}"
            );
            assert!(!dir.path().join(SLOT_FILE).exists());
            // And it stays refused.
            assert!(matches!(
                RedbStore::open(dir.path(), quotas, 1 << 20),
                Err(Error::StoreLayout { .. })
            ));
        }
    }

    /// The cost of a scrub against copying the same file (not a test: run with --ignored
    /// --nocapture; the figures go to docs/BENCHMARKS.md).
    #[test]
    #[ignore = "measurement"]
    fn scrub_cost_against_a_file_copy() {
        let dir = tempfile::tempdir().unwrap();
        let quotas = Quotas {
            mailbox: u32::MAX,
            total: u64::MAX,
        };
        let s = RedbStore::open(dir.path(), quotas, 64 << 20).unwrap();
        let n: u64 = std::env::var("HUSH_SCRUB_BENCH_ENVELOPES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000);
        let mut id = 0u64;
        while id < n {
            let ops: Vec<_> = (0..1000)
                .map(|k| {
                    dep(
                        FetchSecret::from_bytes([(k % 251) as u8; 32]).mailbox_id(),
                        k as u8,
                    )
                })
                .collect();
            s.commit(&ops, 1).unwrap();
            id += 1000;
        }
        s.commit(
            &[WriteOp::Delete {
                mailbox: FetchSecret::from_bytes([0; 32]).mailbox_id(),
                ids: vec![EnvelopeId(1)],
            }],
            1,
        )
        .unwrap();
        let size = std::fs::metadata(dir.path().join("relay.redb"))
            .unwrap()
            .len();
        let t = std::time::Instant::now();
        let copy = dir.path().join("copy");
        std::fs::copy(dir.path().join("relay.redb"), &copy).unwrap();
        std::fs::File::open(&copy).unwrap().sync_all().unwrap();
        let reference = t.elapsed();
        std::fs::remove_file(&copy).unwrap();
        let t = std::time::Instant::now();
        let paused = s.rewrite_with(|| {}).unwrap();
        let scrub = t.elapsed();
        let after = std::fs::metadata(dir.path().join("relay.redb"))
            .unwrap()
            .len();
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        println!(
            "{n} envelopes, relay.redb {:.1} MiB (after the scrub {:.1} MiB): file copy + fsync \
             {:.0} ms; scrub {:.0} ms in all (ratio {:.2}), requests paused {:.1} ms (ratio {:.3})",
            size as f64 / f64::from(1 << 20),
            after as f64 / f64::from(1 << 20),
            ms(reference),
            ms(scrub),
            scrub.as_secs_f64() / reference.as_secs_f64(),
            ms(paused),
            paused.as_secs_f64() / reference.as_secs_f64()
        );
    }
}
