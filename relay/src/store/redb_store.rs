//! The redb backend: one file, `relay.redb`, in the data directory.
//!
//! Owns: the table layout and its invariants. Tables:
//! - `envelopes`: key `mailbox_id (32) || id (u64 BE)`, value `stored_at (u64 BE) || envelope`.
//! - `by_id`: key `id`, value `mailbox_id || stored_at`: expiry order (ids grow with time).
//! - `counts`: key `mailbox_id`, value envelopes held (quota accounting).
//! - `meta`: `next_id`, `total`, `horizon` (ids below it that are missing have expired).
//!
//! Every commit uses redb's immediate durability (fsync before `commit` returns). After an
//! I/O error (a full disk) redb fails every later operation until the database is closed and
//! opened again, so a failed operation closes it and the next write opens it again: writes
//! resume once the disk has room, without a restart.
//! Deletion that deletes: redb is copy-on-write, so a deleted row stays whole in freed pages.
//! After anything was deleted or expired, [`RedbStore::scrub`] (called by the relay every
//! `storage.scrub_interval_secs`) rewrites the live rows into a fresh file, swaps it in
//! atomically, overwrites every byte of the old file with zeros, syncs, and unlinks it. A crash
//! at any step leaves `relay.redb` whole (old or new); the next open finishes the job on the
//! leftovers (`relay.redb.old` zeroed unless it is still `relay.redb` itself, a partial
//! `relay.redb.scrub` removed) and the first scrub after a start always rewrites.
//! Must never keep a row for an empty mailbox (`counts` rows are removed at zero), so the
//! file holds no list of mailboxes that were once used.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use hush_proto::{ENVELOPE_LEN, Envelope, EnvelopeId, MailboxId};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Quotas, Store, StoreStats, Stored, WriteOp, WriteOutcome};
use crate::Error;

const ENVELOPES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("envelopes");
const BY_ID: TableDefinition<u64, &[u8]> = TableDefinition::new("by_id");
const COUNTS: TableDefinition<&[u8], u32> = TableDefinition::new("counts");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The fresh file a scrub writes, beside `relay.redb`.
const SCRUB_NEW: &str = "relay.redb.scrub";
/// A second name for the file a scrub replaces, until it is overwritten and unlinked.
const SCRUB_OLD: &str = "relay.redb.old";
/// Rows copied per transaction of a scrub (bounds its write buffer).
pub(crate) const SCRUB_CHUNK: usize = 4096;

const NEXT_ID: &str = "next_id";
const TOTAL: &str = "total";
const HORIZON: &str = "horizon";

/// redb-backed [`Store`].
pub struct RedbStore {
    /// `None` only between closing after an I/O error and a successful reopen.
    db: RwLock<Option<Database>>,
    path: PathBuf,
    cache_bytes: usize,
    /// An operation failed: close and reopen before the next write.
    failed: AtomicBool,
    quotas: Quotas,
    /// Mirror of `meta.total` for stats without a transaction.
    total: AtomicU64,
    /// Something was deleted since the last scrub: freed pages may hold it.
    dirty: AtomicBool,
    /// While a scrub copies a snapshot: the rows deleted by commits since (it removes them
    /// from the copy before the swap).
    tracking: Mutex<Option<Vec<(MailboxId, u64)>>>,
    /// Bumped at every reopen: a scrub whose snapshot came from another open gives up.
    generation: AtomicU64,
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

impl RedbStore {
    /// Opens or creates `relay.redb` in `dir`.
    ///
    /// # Errors
    /// [`Error::Storage`] if the database cannot be opened or initialised.
    pub fn open(dir: &Path, quotas: Quotas, cache_bytes: usize) -> Result<Self, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let path = dir.join("relay.redb");
        finish_scrub(dir)?;
        let (db, total) = open_db(&path, cache_bytes)?;
        Ok(Self {
            db: RwLock::new(Some(db)),
            path,
            cache_bytes,
            failed: AtomicBool::new(false),
            quotas,
            total: AtomicU64::new(total),
            // A previous run may have stopped between a delete and its scrub.
            dirty: AtomicBool::new(true),
            tracking: Mutex::new(None),
            generation: AtomicU64::new(0),
        })
    }

    /// Runs `f` on the open database; a failure marks it for reopening. With `write`, first
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
        if r.is_err() {
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
        *guard = Some(db);
        self.total.store(total, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.failed.store(false, Ordering::Release);
        tracing::info!("database reopened after a failed operation");
        Ok(())
    }
}

/// Opens or creates the database at `path` and its tables; returns it with the stored total.
///
/// After a crash, redb must rebuild its allocator state. Every write transaction of this
/// store is begun by [`begin_write`] with quick repair on, so the last commit before a crash
/// recorded that state and the open loads it (a few pages) instead of walking and checksumming
/// every page of the file (24-28 s at a million envelopes). Only a file whose last commit was
/// made without it (by an older relay) is repaired in full; the log says so, as it may take
/// long.
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
        .map_err(Error::storage)?;
    let txn = begin_write(&db)?;
    let total;
    {
        txn.open_table(ENVELOPES).map_err(Error::storage)?;
        txn.open_table(BY_ID).map_err(Error::storage)?;
        txn.open_table(COUNTS).map_err(Error::storage)?;
        let mut meta = txn.open_table(META).map_err(Error::storage)?;
        let next = meta
            .get(NEXT_ID)
            .map_err(Error::storage)?
            .map(|g| g.value());
        if next.is_none() {
            // Ids start at 1 so that `after = 0` means "from the beginning".
            meta.insert(NEXT_ID, 1).map_err(Error::storage)?;
            meta.insert(TOTAL, 0).map_err(Error::storage)?;
            meta.insert(HORIZON, 0).map_err(Error::storage)?;
        }
        total = meta
            .get(TOTAL)
            .map_err(Error::storage)?
            .map_or(0, |g| g.value());
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
        self.with_db(false, |db| Self::fetch_in(db, mailboxes, after, limit))
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
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(false);
        }
        let r = self.rewrite();
        if r.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        r.map(|()| true)
    }
}

impl RedbStore {
    fn commit_in(
        &self,
        db: &Database,
        ops: &[WriteOp],
        now: u64,
    ) -> Result<Vec<WriteOutcome>, Error> {
        let txn = begin_write(db)?;
        let mut outcomes = Vec::with_capacity(ops.len());
        let mut removed_rows = Vec::new();
        let new_total;
        {
            let mut envelopes = txn.open_table(ENVELOPES).map_err(Error::storage)?;
            let mut by_id = txn.open_table(BY_ID).map_err(Error::storage)?;
            let mut counts = txn.open_table(COUNTS).map_err(Error::storage)?;
            let mut meta = txn.open_table(META).map_err(Error::storage)?;
            let get = |meta: &redb::Table<&str, u64>, k| -> Result<u64, Error> {
                Ok(meta
                    .get(k)
                    .map_err(Error::storage)?
                    .map_or(0, |g| g.value()))
            };
            let mut next_id = get(&meta, NEXT_ID)?;
            let mut total = get(&meta, TOTAL)?;
            let horizon = get(&meta, HORIZON)?;
            let mut value = vec![0u8; 8 + ENVELOPE_LEN];
            for op in ops {
                match op {
                    WriteOp::Deposit { mailbox, envelope } => {
                        let count = counts
                            .get(&mailbox.as_bytes()[..])
                            .map_err(Error::storage)?
                            .map_or(0, |g| g.value());
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
                        value[..8].copy_from_slice(&now.to_be_bytes());
                        value[8..].copy_from_slice(envelope.as_bytes());
                        envelopes
                            .insert(&env_key(mailbox, id)[..], &value[..])
                            .map_err(Error::storage)?;
                        let mut idx = [0u8; 40];
                        idx[..32].copy_from_slice(mailbox.as_bytes());
                        idx[32..].copy_from_slice(&now.to_be_bytes());
                        by_id.insert(id, &idx[..]).map_err(Error::storage)?;
                        counts
                            .insert(&mailbox.as_bytes()[..], count + 1)
                            .map_err(Error::storage)?;
                        total += 1;
                        outcomes.push(WriteOutcome::Stored(EnvelopeId(id)));
                    }
                    WriteOp::Delete { mailbox, ids } => {
                        let (mut deleted, mut expired, mut unknown) = (0u16, 0u16, 0u16);
                        for id in ids {
                            let removed = envelopes
                                .remove(&env_key(mailbox, id.0)[..])
                                .map_err(Error::storage)?
                                .is_some();
                            if removed {
                                by_id.remove(id.0).map_err(Error::storage)?;
                                removed_rows.push((*mailbox, id.0));
                                deleted = deleted.saturating_add(1);
                                self.dirty.store(true, Ordering::Release);
                            } else if id.0 < horizon {
                                expired = expired.saturating_add(1);
                            } else {
                                unknown = unknown.saturating_add(1);
                            }
                        }
                        if deleted > 0 {
                            let count = counts
                                .get(&mailbox.as_bytes()[..])
                                .map_err(Error::storage)?
                                .map_or(0, |g| g.value());
                            let left = count.saturating_sub(u32::from(deleted));
                            if left == 0 {
                                counts
                                    .remove(&mailbox.as_bytes()[..])
                                    .map_err(Error::storage)?;
                            } else {
                                counts
                                    .insert(&mailbox.as_bytes()[..], left)
                                    .map_err(Error::storage)?;
                            }
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
            meta.insert(NEXT_ID, next_id).map_err(Error::storage)?;
            meta.insert(TOTAL, total).map_err(Error::storage)?;
            new_total = total;
        }
        txn.commit().map_err(Error::storage)?;
        self.total.store(new_total, Ordering::Relaxed);
        self.track(removed_rows);
        Ok(outcomes)
    }

    fn fetch_in(
        db: &Database,
        mailboxes: &[MailboxId],
        after: EnvelopeId,
        limit: usize,
    ) -> Result<(Vec<Stored>, bool), Error> {
        let txn = db.begin_read().map_err(Error::storage)?;
        let envelopes = txn.open_table(ENVELOPES).map_err(Error::storage)?;
        let mut uniq: Vec<MailboxId> = mailboxes.to_vec();
        uniq.sort();
        uniq.dedup();
        // First the ids only (cheap), then the values of the `limit` smallest.
        let mut found: Vec<(u64, MailboxId)> = Vec::new();
        let start = after.0.saturating_add(1);
        for mb in &uniq {
            let lo = env_key(mb, start);
            let hi = env_key(mb, u64::MAX);
            let range = envelopes.range(&lo[..]..=&hi[..]).map_err(Error::storage)?;
            for item in range.take(limit.saturating_add(1)) {
                let (k, _) = item.map_err(Error::storage)?;
                found.push((split_u64(k.value(), 32), *mb));
            }
        }
        found.sort_unstable_by_key(|(id, _)| *id);
        let more = found.len() > limit;
        found.truncate(limit);
        let mut out = Vec::with_capacity(found.len());
        for (id, mb) in found {
            if let Some(v) = envelopes
                .get(&env_key(&mb, id)[..])
                .map_err(Error::storage)?
            {
                let bytes = v.value();
                let envelope = Envelope::from_slice(bytes.get(8..).unwrap_or(&[]))
                    .map_err(|_| Error::Storage("corrupt envelope row".into()))?;
                out.push(Stored {
                    mailbox: mb,
                    id: EnvelopeId(id),
                    envelope,
                });
            }
        }
        Ok((out, more))
    }

    fn sweep_in(&self, db: &Database, cutoff: u64, max: usize) -> Result<u64, Error> {
        let txn = begin_write(db)?;
        let mut swept = 0u64;
        let mut removed_rows = Vec::new();
        let new_total;
        {
            let mut envelopes = txn.open_table(ENVELOPES).map_err(Error::storage)?;
            let mut by_id = txn.open_table(BY_ID).map_err(Error::storage)?;
            let mut counts = txn.open_table(COUNTS).map_err(Error::storage)?;
            let mut meta = txn.open_table(META).map_err(Error::storage)?;
            let mut victims: Vec<(u64, MailboxId)> = Vec::new();
            for item in by_id.range(0..).map_err(Error::storage)?.take(max) {
                let (k, v) = item.map_err(Error::storage)?;
                let stored_at = split_u64(v.value(), 32);
                // Ids grow with commit time, so the first unexpired id ends the sweep.
                if stored_at >= cutoff {
                    break;
                }
                victims.push((k.value(), mailbox_of(v.value())));
            }
            let mut horizon = meta
                .get(HORIZON)
                .map_err(Error::storage)?
                .map_or(0, |g| g.value());
            for (id, mb) in &victims {
                by_id.remove(*id).map_err(Error::storage)?;
                envelopes
                    .remove(&env_key(mb, *id)[..])
                    .map_err(Error::storage)?;
                let count = counts
                    .get(&mb.as_bytes()[..])
                    .map_err(Error::storage)?
                    .map_or(0, |g| g.value());
                if count <= 1 {
                    counts.remove(&mb.as_bytes()[..]).map_err(Error::storage)?;
                } else {
                    counts
                        .insert(&mb.as_bytes()[..], count - 1)
                        .map_err(Error::storage)?;
                }
                horizon = horizon.max(id + 1);
                removed_rows.push((*mb, *id));
                swept += 1;
            }
            let total = meta
                .get(TOTAL)
                .map_err(Error::storage)?
                .map_or(0, |g| g.value())
                .saturating_sub(swept);
            meta.insert(TOTAL, total).map_err(Error::storage)?;
            meta.insert(HORIZON, horizon).map_err(Error::storage)?;
            new_total = total;
        }
        txn.commit().map_err(Error::storage)?;
        self.total.store(new_total, Ordering::Relaxed);
        if swept > 0 {
            self.dirty.store(true, Ordering::Release);
        }
        self.track(removed_rows);
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
    }
    txn.commit().map_err(Error::storage)?;
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
        // Copy-on-write: the deleted bytes are still in the file until the scrub.
        assert!(has(&raw_files(dir.path()), &[0xa1; 64]));
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
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("relay.redb")]);
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
