//! The commit journal of the redb backend, without I/O: the records a commit writes into the
//! ring at the front of `envelopes.slots`, and which of them an open after a crash applies to
//! the index.
//!
//! Owns: the record format and the replay decision. A commit's record names what the commit
//! did (for each stored deposit: slot, id, mailbox, a digest of the body; for each deleted
//! envelope: slot and id; the storage time, the next id and the expiry horizon after it) and
//! is synced with the commit's bodies by one `fdatasync`; the index commit that follows is
//! not made durable, so the record is what makes the commit durable. Every so often the index
//! is committed durably (a *checkpoint*) and the records up to it are no longer needed.
//! At open, the index stands at its last checkpoint, which names the last record it holds
//! (sequence number `A`) and where the next one starts; [`replay`] reads the records from
//! there, `A + 1`, `A + 2`, ..., and stops at the first that is missing, torn (checksum) or out
//! of sequence. Each record but the last of that chain was synced before its successor was
//! written, so its bodies are on disk; the last one may be an unacknowledged commit whose
//! sync never returned, so it is applied only if every body it stored (and did not delete
//! itself) matches its digest.
//! Records are written in 512-byte sectors, each commit into sectors no earlier record of the
//! ring since the last checkpoint occupies, so that a torn write cannot damage an
//! acknowledged record (disks write a sector whole). A record takes at most half the ring,
//! and a checkpoint comes before the ring since the last one would overflow.
//! Must never decide to apply a record after a gap, a record whose checksum fails, or a last
//! record with a torn body (see the property test).

use sha2::{Digest, Sha256};

/// Bytes per sector: the unit records are written in.
pub(crate) const SECTOR: usize = 512;
/// Pages of 4096 bytes the ring takes at the front of the slot file.
pub(crate) const RING_PAGES: usize = 16;
/// Bytes of the ring.
pub(crate) const RING_BYTES: usize = RING_PAGES * 4096;
/// Sectors of the ring.
pub(crate) const RING_SECTORS: u64 = (RING_BYTES / SECTOR) as u64;
/// The largest record: half the ring, so a checkpoint taken when half of it is used leaves
/// room for any record.
pub(crate) const MAX_RECORD_BYTES: usize = RING_BYTES / 2;

const MAGIC: [u8; 8] = *b"hushjrnl";
const HEADER_LEN: usize = 56;
const CHECKSUM_LEN: usize = 16;
/// Bytes per stored deposit in a record.
pub(crate) const PUT_LEN: usize = 64;
/// Bytes per deleted envelope in a record.
pub(crate) const DELETE_LEN: usize = 16;
/// Bytes a record has for puts and deletes.
pub(crate) const RECORD_ROOM: usize = MAX_RECORD_BYTES - HEADER_LEN - CHECKSUM_LEN;
/// The most deposits one record (one commit) can store.
pub(crate) const MAX_PUTS: usize = RECORD_ROOM / PUT_LEN;
/// The most envelopes one record (one commit) can delete.
pub(crate) const MAX_DELETES: usize = RECORD_ROOM / DELETE_LEN;
// The open's scan for torn bodies (`slots::recovery_scan`) is sound only while no round
// stores more deposits than it scans zero slots.
const _: () = assert!(MAX_PUTS <= super::slots::RECOVERY_ZERO_RUN);

/// A digest of an envelope body: SHA-256, first 16 bytes (it detects a torn write; nothing
/// relies on it against an adversary, who could write the file anyway).
pub(crate) fn body_digest(body: &[u8]) -> [u8; 16] {
    let full = Sha256::digest(body);
    let mut d = [0u8; 16];
    d.copy_from_slice(&full[..16]);
    d
}

/// A deposit a commit stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Put {
    /// The slot its body went to.
    pub slot: u64,
    /// Its id.
    pub id: u64,
    /// The mailbox (as stored).
    pub mailbox: [u8; 32],
    /// [`body_digest`] of its body.
    pub digest: [u8; 16],
}

/// An envelope a commit deleted (or expired).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Delete {
    /// The slot it held.
    pub slot: u64,
    /// Its id.
    pub id: u64,
}

/// What one commit did to the index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Record {
    /// Its sequence number: one more than the previous record's.
    pub seq: u64,
    /// The storage time of its deposits.
    pub stored_at: u64,
    /// `meta.next_id` after it.
    pub next_id: u64,
    /// `meta.horizon` after it.
    pub horizon: u64,
    /// Deposits stored, in id order.
    pub puts: Vec<Put>,
    /// Envelopes deleted, in order.
    pub deletes: Vec<Delete>,
}

/// Bytes of a record with `puts` deposits and `deletes` deletions, before sector padding.
pub(crate) fn record_len(puts: usize, deletes: usize) -> usize {
    HEADER_LEN + puts * PUT_LEN + deletes * DELETE_LEN + CHECKSUM_LEN
}

/// Whether a record with `puts` deposits and `deletes` deletions fits in one record.
pub(crate) fn fits(puts: usize, deletes: usize) -> bool {
    record_len(puts, deletes) <= MAX_RECORD_BYTES
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn checksum(b: &[u8]) -> [u8; CHECKSUM_LEN] {
    let full = Sha256::digest(b);
    let mut c = [0u8; CHECKSUM_LEN];
    c.copy_from_slice(&full[..CHECKSUM_LEN]);
    c
}

impl Record {
    /// Whether the record changes nothing (no record is written for it).
    pub(crate) fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }

    /// The record's bytes for store layout `layout`, padded with zeros to whole sectors.
    /// Layout: magic (8), layout (u32), puts (u32), deletes (u32), zero (u32), seq,
    /// stored_at, next_id, horizon (u64 each, little-endian), the puts (slot, id, mailbox,
    /// digest), the deletes (slot, id), then SHA-256 of all that, first 16 bytes.
    pub(crate) fn encode(&self, layout: u32) -> Vec<u8> {
        let len = record_len(self.puts.len(), self.deletes.len());
        let mut b = Vec::with_capacity(len.next_multiple_of(SECTOR));
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&layout.to_le_bytes());
        for n in [self.puts.len(), self.deletes.len()] {
            b.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
        }
        b.extend_from_slice(&0u32.to_le_bytes());
        for v in [self.seq, self.stored_at, self.next_id, self.horizon] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for p in &self.puts {
            b.extend_from_slice(&p.slot.to_le_bytes());
            b.extend_from_slice(&p.id.to_le_bytes());
            b.extend_from_slice(&p.mailbox);
            b.extend_from_slice(&p.digest);
        }
        for d in &self.deletes {
            b.extend_from_slice(&d.slot.to_le_bytes());
            b.extend_from_slice(&d.id.to_le_bytes());
        }
        let sum = checksum(&b);
        b.extend_from_slice(&sum);
        b.resize(len.next_multiple_of(SECTOR), 0);
        b
    }

    /// The record at the start of `bytes` if it is whole and of `layout`; with the number of
    /// bytes it takes (whole sectors). `bytes` may run past the record.
    pub(crate) fn decode(bytes: &[u8], layout: u32) -> Option<(Self, usize)> {
        let head = bytes.get(..HEADER_LEN)?;
        if head[..8] != MAGIC || u32_at(head, 8) != layout || u32_at(head, 20) != 0 {
            return None;
        }
        let puts = usize::try_from(u32_at(head, 12)).ok()?;
        let deletes = usize::try_from(u32_at(head, 16)).ok()?;
        if puts > MAX_PUTS || deletes > MAX_DELETES || !fits(puts, deletes) {
            return None;
        }
        let len = record_len(puts, deletes);
        let body = bytes.get(..len)?;
        let (signed, sum) = body.split_at(len - CHECKSUM_LEN);
        if checksum(signed) != sum {
            return None;
        }
        let mut r = Self {
            seq: u64_at(head, 24),
            stored_at: u64_at(head, 32),
            next_id: u64_at(head, 40),
            horizon: u64_at(head, 48),
            puts: Vec::with_capacity(puts),
            deletes: Vec::with_capacity(deletes),
        };
        let mut at = HEADER_LEN;
        for _ in 0..puts {
            let e = &signed[at..at + PUT_LEN];
            let mut mailbox = [0u8; 32];
            mailbox.copy_from_slice(&e[16..48]);
            let mut digest = [0u8; 16];
            digest.copy_from_slice(&e[48..64]);
            r.puts.push(Put {
                slot: u64_at(e, 0),
                id: u64_at(e, 8),
                mailbox,
                digest,
            });
            at += PUT_LEN;
        }
        for _ in 0..deletes {
            r.deletes.push(Delete {
                slot: u64_at(signed, at),
                id: u64_at(signed, at + 8),
            });
            at += DELETE_LEN;
        }
        Some((r, len.next_multiple_of(SECTOR)))
    }
}

/// Where a record of `len` bytes (whole sectors) starting at ring sector `at` goes: one or,
/// where it wraps, two pieces (ring byte offset, range of the record's bytes).
pub(crate) fn placement(at: u64, len: usize) -> Vec<(usize, std::ops::Range<usize>)> {
    let start = usize::try_from(at % RING_SECTORS).unwrap_or(0) * SECTOR;
    let first = len.min(RING_BYTES - start);
    let mut out = vec![(start, 0..first)];
    if first < len {
        out.push((0, first..len));
    }
    out
}

/// The ring sector after a record of `len` bytes (whole sectors) written at `at`.
pub(crate) fn advance(at: u64, len: usize) -> u64 {
    (at + (len / SECTOR) as u64) % RING_SECTORS
}

/// What an open applies: the records to replay, in order, and where the next record goes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Replay {
    /// The records after the checkpoint, in sequence.
    pub records: Vec<Record>,
    /// The ring sector where the record after them is to be written.
    pub next_at: u64,
}

/// The records of `ring` (the whole ring, [`RING_BYTES`]) to apply to an index whose last
/// applied record is `applied` and whose next record was to start at sector `at`:
/// `applied + 1`, `applied + 2`, ... as long as each is whole and in sequence, the last only
/// if `body_matches` says yes for each of its puts not deleted by itself (it is asked for no
/// other record's). `body_matches` reads the slot and compares its digest.
///
/// # Errors
/// What `body_matches` returns.
pub(crate) fn replay<E>(
    ring: &[u8],
    layout: u32,
    applied: u64,
    at: u64,
    mut body_matches: impl FnMut(&Put) -> Result<bool, E>,
) -> Result<Replay, E> {
    let mut out = Replay {
        records: Vec::new(),
        next_at: at % RING_SECTORS,
    };
    if ring.len() != RING_BYTES {
        return Ok(out);
    }
    let mut read = 0u64;
    let mut cursor = out.next_at;
    let mut window = vec![0u8; MAX_RECORD_BYTES];
    loop {
        // The ring from `cursor` on, wrapped: at most one record's worth.
        for (off, range) in placement(cursor, MAX_RECORD_BYTES) {
            window[range.clone()].copy_from_slice(&ring[off..off + range.len()]);
        }
        let Some((record, len)) = Record::decode(&window, layout) else {
            break;
        };
        let sectors = (len / SECTOR) as u64;
        let expected = applied + 1 + out.records.len() as u64;
        if record.seq != expected || read + sectors > RING_SECTORS {
            break;
        }
        read += sectors;
        cursor = advance(cursor, len);
        out.records.push(record);
        out.next_at = cursor;
    }
    // Only the last record may have been written without its sync returning.
    if let Some(last) = out.records.last() {
        let mut whole = true;
        for p in &last.puts {
            if last.deletes.iter().any(|d| d.slot == p.slot) {
                continue; // erased by its own commit after the sync
            }
            if !body_matches(p)? {
                whole = false;
                break;
            }
        }
        if !whole {
            out.records.pop();
            out.next_at = advance_back(&out, at);
        }
    }
    Ok(out)
}

/// The ring sector after the records of `r`, starting from `at`.
fn advance_back(r: &Replay, at: u64) -> u64 {
    r.records.iter().fold(at % RING_SECTORS, |cursor, rec| {
        advance(
            cursor,
            record_len(rec.puts.len(), rec.deletes.len()).next_multiple_of(SECTOR),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    fn rec(seq: u64, puts: usize, deletes: usize) -> Record {
        Record {
            seq,
            stored_at: 1_700_000_000 + seq,
            next_id: 100 + seq,
            horizon: seq / 2,
            puts: (0..puts as u64)
                .map(|i| Put {
                    slot: seq * 1000 + i,
                    id: seq * 100 + i,
                    mailbox: [i as u8; 32],
                    digest: body_digest(&[(seq + i) as u8; 4096]),
                })
                .collect(),
            deletes: (0..deletes as u64)
                .map(|i| Delete {
                    slot: 7 + i,
                    id: 3 + i,
                })
                .collect(),
        }
    }

    #[test]
    fn a_record_round_trips_and_any_flipped_byte_or_other_layout_is_refused() {
        let r = rec(9, 3, 2);
        let b = r.encode(3);
        assert_eq!(b.len() % SECTOR, 0);
        assert_eq!(Record::decode(&b, 3), Some((r.clone(), b.len())));
        assert_eq!(Record::decode(&b, 2), None);
        let len = record_len(3, 2);
        for i in 0..len {
            let mut c = b.clone();
            c[i] ^= 0x20;
            assert_eq!(Record::decode(&c, 3), None, "byte {i} flipped");
        }
        assert_eq!(Record::decode(&b[..len - 1], 3), None, "short");
        assert_eq!(Record::decode(&vec![0u8; SECTOR], 3), None, "zeros");
    }

    #[test]
    fn the_largest_records_fit_half_the_ring() {
        assert!(fits(MAX_PUTS, 0) && !fits(MAX_PUTS + 1, 0));
        assert!(fits(0, MAX_DELETES) && !fits(0, MAX_DELETES + 1));
        assert_eq!(rec(1, MAX_PUTS, 0).encode(3).len(), MAX_RECORD_BYTES);
    }

    fn write(ring: &mut [u8], at: u64, bytes: &[u8]) -> u64 {
        for (off, range) in placement(at, bytes.len()) {
            ring[off..off + range.len()].copy_from_slice(&bytes[range]);
        }
        advance(at, bytes.len())
    }

    #[test]
    fn replay_follows_the_sequence_across_the_wrap_and_stops_at_a_gap() {
        let mut ring = vec![0u8; RING_BYTES];
        let start = RING_SECTORS - 3;
        let mut at = start;
        for seq in 5..9 {
            at = write(&mut ring, at, &rec(seq, 20, 1).encode(3));
        }
        let all = replay(&ring, 3, 4, start, |_| Ok::<_, Infallible>(true)).unwrap();
        assert_eq!(
            all.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![5, 6, 7, 8]
        );
        assert_eq!(all.next_at, at);
        // Applied up to 6 already, but the records start elsewhere: nothing.
        let none = replay(&ring, 3, 6, start, |_| Ok::<_, Infallible>(true)).unwrap();
        assert!(none.records.is_empty());
        assert_eq!(none.next_at, start);
        // A stale record of a later sequence after the chain is not taken.
        let mut gap = ring.clone();
        write(&mut gap, at, &rec(10, 1, 0).encode(3));
        let r = replay(&gap, 3, 4, start, |_| Ok::<_, Infallible>(true)).unwrap();
        assert_eq!(r.records.len(), 4);
    }

    #[test]
    fn only_the_last_record_has_its_bodies_checked() {
        let mut ring = vec![0u8; RING_BYTES];
        let mut at = 0;
        for seq in 1..4 {
            at = write(&mut ring, at, &rec(seq, 2, 0).encode(3));
        }
        let mut asked = Vec::new();
        let r = replay(&ring, 3, 0, 0, |p| {
            asked.push(p.slot);
            Ok::<_, Infallible>(p.slot != 3001)
        })
        .unwrap();
        assert_eq!(asked, vec![3000, 3001]);
        assert_eq!(r.records.len(), 2, "the last record's torn body drops it");
        assert_eq!(r.next_at, 2);
        // A put its own record deletes is not checked (its commit erased it).
        let mut own = rec(1, 1, 1);
        own.deletes[0].slot = own.puts[0].slot;
        let mut ring = vec![0u8; RING_BYTES];
        write(&mut ring, 0, &own.encode(3));
        let r = replay(&ring, 3, 0, 0, |_| Ok::<_, Infallible>(false)).unwrap();
        assert_eq!(r.records, vec![own]);
    }

    mod crash {
        //! The whole commit path as a model (index, allocator, journal, a disk with a page
        //! cache), driven by the real `slots` rounds and the real record encoding and
        //! [`replay`], crashed at random points.
        use super::super::*;
        use crate::store::slots::{self, Book, Ledger};
        use hush_testkit::SplitMix64;
        use std::collections::{BTreeMap, BTreeSet, HashMap};
        use std::convert::Infallible;

        /// The allocator tables, as a transaction sees them.
        #[derive(Clone, Debug, Default, PartialEq)]
        struct Tables {
            free: BTreeSet<u64>,
            end: u64,
        }

        impl Ledger for Tables {
            type Error = Infallible;
            fn take_lowest_free(&mut self) -> Result<Option<u64>, Infallible> {
                Ok(self.free.pop_first())
            }
            fn is_free(&mut self, slot: u64) -> Result<bool, Infallible> {
                Ok(self.free.contains(&slot))
            }
            fn add_free(&mut self, slot: u64) -> Result<(), Infallible> {
                self.free.insert(slot);
                Ok(())
            }
            fn remove_free(&mut self, slot: u64) -> Result<(), Infallible> {
                self.free.remove(&slot);
                Ok(())
            }
            fn end(&mut self) -> Result<u64, Infallible> {
                Ok(self.end)
            }
            fn set_end(&mut self, end: u64) -> Result<(), Infallible> {
                self.end = end;
                Ok(())
            }
        }

        /// What redb holds: live id -> (slot, body tag), the tables, the journal's meta.
        #[derive(Clone, Debug, Default)]
        struct Index {
            rows: BTreeMap<u64, (u64, u64)>,
            tables: Tables,
            next_id: u64,
            seq: u64,
            at: u64,
        }

        #[derive(Clone, Debug)]
        enum Write {
            /// A slot gets a body (tag; 0 = zeros).
            Slot(u64, u64),
            /// A ring sector gets bytes.
            Sector(u64, Vec<u8>),
        }

        /// The slot file: what is durable, and the writes since the last sync (in the page
        /// cache, reaching the disk in any order and any subset).
        #[derive(Clone, Debug)]
        struct Disk {
            slots: HashMap<u64, u64>,
            ring: Vec<u8>,
            pending: Vec<Write>,
        }

        impl Disk {
            /// What a read sees now.
            fn slot(&self, s: u64) -> u64 {
                let pending = self.pending.iter().rev().find_map(|w| match w {
                    Write::Slot(x, t) if *x == s => Some(*t),
                    _ => None,
                });
                pending.unwrap_or_else(|| self.slots.get(&s).copied().unwrap_or(0))
            }
            fn ring(&self) -> Vec<u8> {
                let mut r = self.ring.clone();
                for w in &self.pending {
                    if let Write::Sector(n, b) = w {
                        let at = usize::try_from(*n).unwrap() * SECTOR;
                        r[at..at + SECTOR].copy_from_slice(b);
                    }
                }
                r
            }
            fn land(&mut self, w: &Write) {
                match w {
                    Write::Slot(s, 0) => {
                        self.slots.remove(s);
                    }
                    Write::Slot(s, t) => {
                        self.slots.insert(*s, *t);
                    }
                    Write::Sector(n, b) => {
                        let at = usize::try_from(*n).unwrap() * SECTOR;
                        self.ring[at..at + SECTOR].copy_from_slice(b);
                    }
                }
            }
            fn sync(&mut self) {
                for w in std::mem::take(&mut self.pending) {
                    self.land(&w);
                }
            }
            /// Power is lost: each written location keeps its durable bytes or any one of the
            /// versions written since (a sector is written whole); or, as after `kill -9`,
            /// everything written lands.
            fn crash(&mut self, rng: &mut SplitMix64) {
                let pending = std::mem::take(&mut self.pending);
                if rng.below(3) == 0 {
                    for w in &pending {
                        self.land(w);
                    }
                    return;
                }
                let key = |w: &Write| match w {
                    Write::Slot(s, _) => (0u8, *s),
                    Write::Sector(n, _) => (1u8, *n),
                };
                let mut versions: BTreeMap<(u8, u64), Vec<&Write>> = BTreeMap::new();
                for w in &pending {
                    versions.entry(key(w)).or_default().push(w);
                }
                for (_, vs) in versions {
                    let pick = usize::try_from(rng.below(vs.len() as u64 + 1)).unwrap();
                    if pick > 0 {
                        self.land(vs[pick - 1]);
                    }
                }
            }
        }

        /// How a round ends.
        #[derive(Clone, Copy, Debug)]
        enum End {
            Ok,
            /// A write fails (disk full) after some writes; the transaction is dropped.
            WriteFails,
            /// The sync fails; the transaction is dropped.
            SyncFails,
            /// The redb commit fails after the sync; the store reopens (and recovers) with redb
            /// at its last checkpoint or, if the close persisted them, at its last commit.
            CommitFails,
            /// Power is lost before the sync returns.
            CrashBeforeSync,
            /// Power is lost after the sync, before the redb commit.
            CrashAfterSync,
            /// Power is lost after the (non-durable) redb commit, before the erasure.
            CrashAfterCommit,
            /// Power is lost after the round was acknowledged.
            CrashAfterAck,
        }

        fn tag_digest(tag: u64) -> [u8; 16] {
            body_digest(&tag.to_le_bytes())
        }

        struct World {
            /// redb at its last durable commit (checkpoint).
            durable: Index,
            /// redb as the running process sees it.
            live: Index,
            disk: Disk,
            book: Book,
            used: u64,
            erased_unsynced: bool,
            next_tag: u64,
            /// Body tag of each digest written.
            tags: HashMap<[u8; 16], u64>,
            /// Acknowledged deposits still live: id -> tag.
            acked: BTreeMap<u64, u64>,
            /// Ids whose delete was acknowledged (ids are never reused once committed).
            acked_deleted: BTreeSet<u64>,
            /// Ids a round that did not report success deleted (that delete may land).
            maybe_deleted: BTreeSet<u64>,
            seen: Seen,
        }

        /// What the seeds exercised, so that a change to the generator cannot make the test
        /// vacuous.
        #[derive(Debug, Default)]
        struct Seen {
            wraps: u64,
            checkpoints: u64,
            records_replayed: u64,
            torn_last_dropped: u64,
        }

        impl World {
            fn new() -> Self {
                let index = Index {
                    next_id: 1,
                    ..Index::default()
                };
                Self {
                    durable: index.clone(),
                    live: index,
                    disk: Disk {
                        slots: HashMap::new(),
                        ring: vec![0; RING_BYTES],
                        pending: Vec::new(),
                    },
                    book: Book::default(),
                    used: 0,
                    erased_unsynced: false,
                    next_tag: 1,
                    tags: HashMap::new(),
                    acked: BTreeMap::new(),
                    acked_deleted: BTreeSet::new(),
                    maybe_deleted: BTreeSet::new(),
                    seen: Seen::default(),
                }
            }

            fn checkpoint(&mut self) {
                if self.erased_unsynced {
                    self.disk.sync();
                    self.erased_unsynced = false;
                }
                self.durable = self.live.clone();
                self.used = 0;
                self.seen.checkpoints += 1;
            }

            fn round(&mut self, rng: &mut SplitMix64, deposits: usize, dels: &[u64], end: End) {
                if self.used >= RING_SECTORS / 2 {
                    self.checkpoint();
                }
                let mut txn = self.live.clone();
                let mut round = self.book.begin();
                let mut record = Record::default();
                let mut bodies = Vec::new();
                for _ in 0..deposits {
                    let slot = round.allocate(&mut txn.tables).unwrap();
                    let (id, tag) = (txn.next_id, self.next_tag);
                    txn.next_id += 1;
                    self.next_tag += 1;
                    txn.rows.insert(id, (slot, tag));
                    self.tags.insert(tag_digest(tag), tag);
                    record.puts.push(Put {
                        slot,
                        id,
                        mailbox: [(id % 7) as u8; 32],
                        digest: tag_digest(tag),
                    });
                    bodies.push(tag);
                }
                for id in dels {
                    if let Some((slot, _)) = txn.rows.remove(id) {
                        round.release(slot);
                        record.deletes.push(Delete { slot, id: *id });
                    }
                }
                let plan = round.finish(&mut txn.tables, &self.book).unwrap();
                let mut writes: Vec<Write> = plan
                    .writes
                    .iter()
                    .zip(&bodies)
                    .map(|(&s, &t)| Write::Slot(s, t))
                    .collect();
                writes.extend(plan.zeros.iter().map(|&s| Write::Slot(s, 0)));
                let mut sectors = 0;
                if !record.is_empty() {
                    record.seq = txn.seq + 1;
                    record.next_id = txn.next_id;
                    let bytes = record.encode(3);
                    for (off, range) in placement(txn.at, bytes.len()) {
                        for (k, chunk) in bytes[range].chunks(SECTOR).enumerate() {
                            let n = (off / SECTOR + k) as u64;
                            writes.push(Write::Sector(n, chunk.to_vec()));
                        }
                    }
                    sectors = (bytes.len() / SECTOR) as u64;
                    self.seen.wraps += u64::from(txn.at + sectors > RING_SECTORS);
                    txn.seq = record.seq;
                    txn.at = advance(txn.at, bytes.len());
                }
                let acknowledge = |w: &mut World, txn: Index| {
                    for p in &record.puts {
                        w.acked.insert(p.id, txn.rows[&p.id].1);
                    }
                    for d in &record.deletes {
                        w.acked.remove(&d.id);
                        w.acked_deleted.insert(d.id);
                    }
                    w.live = txn;
                    w.book.committed();
                    w.used += sectors;
                    w.disk
                        .pending
                        .extend(plan.erase.iter().map(|&s| Write::Slot(s, 0)));
                    w.erased_unsynced |= !plan.erase.is_empty();
                };
                if !matches!(end, End::Ok | End::CrashAfterAck) {
                    self.maybe_deleted
                        .extend(record.deletes.iter().map(|d| d.id));
                }
                match end {
                    End::Ok => {
                        self.disk.pending.extend(writes);
                        self.disk.sync();
                        acknowledge(self, txn);
                    }
                    End::WriteFails => {
                        let n = usize::try_from(rng.below(writes.len() as u64 + 1)).unwrap();
                        self.disk.pending.extend(writes.into_iter().take(n));
                        self.book.failed(&plan);
                    }
                    End::SyncFails => {
                        self.disk.pending.extend(writes);
                        self.book.failed(&plan);
                    }
                    End::CommitFails => {
                        self.disk.pending.extend(writes);
                        self.disk.sync();
                        self.book.failed(&plan);
                        let at = if rng.below(2) == 0 {
                            self.durable.clone()
                        } else {
                            self.live.clone()
                        };
                        self.recover(at);
                    }
                    End::CrashBeforeSync => {
                        self.disk.pending.extend(writes);
                        self.restart(rng);
                    }
                    End::CrashAfterSync => {
                        self.disk.pending.extend(writes);
                        self.disk.sync();
                        self.restart(rng);
                    }
                    End::CrashAfterCommit => {
                        self.disk.pending.extend(writes);
                        self.disk.sync();
                        self.live = txn;
                        self.restart(rng);
                    }
                    End::CrashAfterAck => {
                        self.disk.pending.extend(writes);
                        self.disk.sync();
                        acknowledge(self, txn);
                        self.restart(rng);
                    }
                }
            }

            /// A crash, then the open: redb at its last checkpoint, the in-memory book gone.
            fn restart(&mut self, rng: &mut SplitMix64) {
                self.disk.crash(rng);
                self.book = Book::default();
                self.recover(self.durable.clone());
            }

            /// What `redb_store::recover` does, on this model.
            fn recover(&mut self, mut index: Index) {
                let disk = &self.disk;
                let ring = disk.ring();
                let applied = replay(&ring, 3, index.seq, index.at, |p| {
                    Ok::<_, Infallible>(tag_digest(disk.slot(p.slot)) == p.digest)
                })
                .unwrap();
                self.seen.records_replayed += applied.records.len() as u64;
                let whole = replay(&ring, 3, index.seq, index.at, |_| Ok::<_, Infallible>(true));
                self.seen.torn_last_dropped +=
                    u64::from(whole.unwrap().records.len() > applied.records.len());
                let mut deleted = Vec::new();
                for r in &applied.records {
                    for p in &r.puts {
                        if p.slot >= index.tables.end {
                            slots::extend_to(&mut index.tables, p.slot).unwrap();
                        } else {
                            assert!(
                                index.tables.free.remove(&p.slot),
                                "record {} puts into slot {} that is not free",
                                r.seq,
                                p.slot
                            );
                        }
                        let tag = self.tags[&p.digest];
                        assert!(
                            index.rows.insert(p.id, (p.slot, tag)).is_none(),
                            "record {} puts id {} twice",
                            r.seq,
                            p.id
                        );
                    }
                    for d in &r.deletes {
                        let row = index.rows.remove(&d.id);
                        assert_eq!(
                            row.map(|(s, _)| s),
                            Some(d.slot),
                            "record {} deletes what is not there",
                            r.seq
                        );
                        index.tables.free.insert(d.slot);
                        deleted.push(d.slot);
                    }
                    index.next_id = r.next_id;
                    index.seq = r.seq;
                }
                index.at = applied.next_at;
                let mut zero: BTreeSet<u64> = deleted
                    .into_iter()
                    .filter(|s| index.tables.free.contains(s))
                    .collect();
                let free = index.tables.free.iter().map(|&s| Ok::<_, Infallible>(s));
                zero.extend(
                    slots::recovery_scan(free, |s| Ok::<_, Infallible>(disk.slot(s) == 0)).unwrap(),
                );
                let mut tail: BTreeSet<u64> = disk
                    .slots
                    .keys()
                    .copied()
                    .filter(|&s| s >= index.tables.end)
                    .collect();
                for w in &disk.pending {
                    if let Write::Slot(s, _) = w
                        && *s >= index.tables.end
                    {
                        tail.insert(*s);
                    }
                }
                for s in zero.into_iter().chain(tail) {
                    self.disk.pending.push(Write::Slot(s, 0));
                }
                self.disk.sync();
                self.durable = index.clone();
                self.live = index;
                for n in 0..RING_SECTORS {
                    self.disk.pending.push(Write::Sector(n, vec![0; SECTOR]));
                }
                self.disk.sync();
                self.used = 0;
                self.erased_unsynced = false;
                // An unacknowledged delete that landed takes its envelope, acknowledged or not.
                let rows = &self.live.rows;
                let maybe = &self.maybe_deleted;
                self.acked
                    .retain(|id, _| rows.contains_key(id) || !maybe.contains(id));
                self.check(true);
            }

            /// The invariants, on what the running process sees. `settled`: after a
            /// successful round or an open, when no slot may hold a body nothing names.
            fn check(&self, settled: bool) {
                let t = &self.live.tables;
                let mut named = BTreeSet::new();
                for (&id, &(slot, tag)) in &self.live.rows {
                    assert!(named.insert(slot), "slot {slot} named twice");
                    assert!(
                        slot < t.end && !t.free.contains(&slot),
                        "live slot {slot} free"
                    );
                    assert_eq!(
                        self.disk.slot(slot),
                        tag,
                        "the body of id {id} is not its own"
                    );
                }
                assert_eq!(
                    named.len() + t.free.len(),
                    usize::try_from(t.end).unwrap(),
                    "the tables do not partition the slots"
                );
                assert!(t.free.iter().all(|&s| s < t.end));
                for (id, tag) in &self.acked {
                    assert_eq!(
                        self.live.rows.get(id).map(|r| r.1),
                        Some(*tag),
                        "acknowledged deposit {id} lost"
                    );
                }
                for id in &self.acked_deleted {
                    assert!(
                        !self.live.rows.contains_key(id),
                        "acknowledged delete of {id} undone"
                    );
                }
                if settled {
                    let mut seen: BTreeSet<u64> = self.disk.slots.keys().copied().collect();
                    seen.extend(self.disk.pending.iter().filter_map(|w| match w {
                        Write::Slot(s, _) => Some(*s),
                        Write::Sector(..) => None,
                    }));
                    for s in seen {
                        let tag = self.disk.slot(s);
                        assert!(
                            tag == 0 || named.contains(&s),
                            "slot {s} holds body {tag} that nothing names"
                        );
                    }
                }
            }
        }

        /// Random rounds of deposits and deletes (some commits larger than a sector's worth,
        /// so records span sectors and the ring wraps, with checkpoints when half of it is
        /// used), each ending well, in a failed write, sync or index commit (then a reopen),
        /// or in a power loss at one of four points, where any subset of the writes since the
        /// last sync reaches the disk, followed by the open's recovery. After every step:
        /// every acknowledged deposit is live with its own body, no acknowledged delete is
        /// undone, no slot is named twice, the tables partition the slots, every live slot
        /// holds its body; after a success or an open, no slot holds a body nothing names
        /// (no deleted or unacknowledged body is left). Freed slots are reused at once, before
        /// any checkpoint: the replay applies records in order, so a slot deleted by one
        /// record and filled by a later one ends filled. Seeded; the seed of a failure is in
        /// its message.
        ///
        /// Seen to fail: with [`replay`]'s digest check skipped ("the body of id 26 is not its
        /// own", seed 0: a torn last record applied); with its sequence check removed ("record
        /// 42 puts into slot 41 that is not free", seed 1: a record of the ring's previous lap
        /// applied); with `Round::finish` zeroing the deleted slots before the sync as well
        /// ("the body of id 3 is not its own", seed 0: a failed commit's zeros over an envelope
        /// whose delete never committed); with `Round::finish` not zeroing stale slots ("slot
        /// 79 holds body 334 that nothing names"); with `recovery_scan` stopping at the first
        /// zero slot ("slot 191 holds body 948 that nothing names", seed 22). Not seen to fail
        /// with the sequence check accepting a later number than the next (no reachable ring
        /// holds one after the chain: a record is written only after its predecessor's sync,
        /// and the open clears the ring).
        #[test]
        fn the_commit_path_survives_any_crash_and_leaves_no_deleted_body() {
            let mut seen = Seen::default();
            for seed in 0..40u64 {
                let mut rng = SplitMix64(seed);
                let mut w = World::new();
                // Half the seeds crash rarely, so that the ring laps between two opens.
                let ends = if seed % 2 == 0 { 64 } else { 640 };
                for step in 0..300 {
                    let deposits = usize::try_from(match rng.below(8) {
                        0 => rng.below(40),
                        _ => rng.below(5),
                    })
                    .unwrap();
                    let live: Vec<u64> = w.live.rows.keys().copied().collect();
                    let mut dels = Vec::new();
                    for _ in 0..rng.below(5) {
                        if !live.is_empty() {
                            dels.push(live[usize::try_from(rng.below(live.len() as u64)).unwrap()]);
                        }
                    }
                    let end = match rng.below(ends) {
                        0 => End::WriteFails,
                        1 => End::SyncFails,
                        2 => End::CommitFails,
                        3 => End::CrashBeforeSync,
                        4 => End::CrashAfterSync,
                        5 => End::CrashAfterCommit,
                        6 => End::CrashAfterAck,
                        _ => End::Ok,
                    };
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        w.round(&mut rng, deposits, &dels, end);
                        w.check(matches!(end, End::Ok));
                    }));
                    assert!(
                        result.is_ok(),
                        "seed {seed}, step {step}, round ending {end:?}"
                    );
                }
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    w.restart(&mut rng);
                }));
                assert!(result.is_ok(), "seed {seed}, the last crash");
                seen.wraps += w.seen.wraps;
                seen.checkpoints += w.seen.checkpoints;
                seen.records_replayed += w.seen.records_replayed;
                seen.torn_last_dropped += w.seen.torn_last_dropped;
            }
            eprintln!("{seen:?}");
            assert!(
                seen.wraps > 0
                    && seen.checkpoints > 0
                    && seen.records_replayed > 0
                    && seen.torn_last_dropped > 0,
                "{seen:?}"
            );
        }
    }
}
