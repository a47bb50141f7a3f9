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
//! Must never keep a row for an empty mailbox (`counts` rows are removed at zero), so the
//! file holds no list of mailboxes that were once used.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use hush_proto::{ENVELOPE_LEN, Envelope, EnvelopeId, MailboxId};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Quotas, Store, StoreStats, Stored, WriteOp, WriteOutcome};
use crate::Error;

const ENVELOPES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("envelopes");
const BY_ID: TableDefinition<u64, &[u8]> = TableDefinition::new("by_id");
const COUNTS: TableDefinition<&[u8], u32> = TableDefinition::new("counts");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

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
        let (db, total) = open_db(&path, cache_bytes)?;
        Ok(Self {
            db: RwLock::new(Some(db)),
            path,
            cache_bytes,
            failed: AtomicBool::new(false),
            quotas,
            total: AtomicU64::new(total),
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
                                deleted = deleted.saturating_add(1);
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
        Ok(swept)
    }
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
}
