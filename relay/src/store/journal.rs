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
        // The open's scan for torn bodies assumes no commit stores more deposits than this.
        assert!(MAX_PUTS <= super::super::slots::RECOVERY_ZERO_RUN);
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
}
