//! The slot allocator of the redb backend, without I/O: which slot of `envelopes.slots` a
//! deposit's body goes to, what a commit must write and zero before its index commit, and
//! what a restart must zero.
//!
//! Owns: the life of a slot. A slot is *live* (an index row names it), *to zero* (its
//! envelope was deleted or expired by a committed transaction; its bytes may still be on
//! disk), *free* (all zeros on disk, or a body no index row names that the next successful
//! round zeroes or overwrites) or past `end` (never used, or left by a crash). The persistent
//! part of that state (the free and to-zero sets and `end`) lives in the index's transaction,
//! seen through [`Ledger`]; this module holds the rules and the one in-memory set, the
//! *stale* slots: bodies a round wrote whose index commit failed.
//! A round ([`Round`]), inside one index transaction: takes every to-zero slot left by earlier
//! commits, allocates a slot per deposit (lowest free first, else `end`, so runs of a commit
//! are mostly contiguous and the file grows at its end), marks the slots its deletes free as
//! to zero, and on [`Round::finish`] moves the taken to-zero slots to free and returns the
//! [`Plan`]: bodies to write and slots to overwrite with zeros, all before one sync of the
//! slot file, which comes before the index commit.
//! Must never hand out a slot that is live or to zero, never zero a live slot, and never let a
//! deleted body survive a successful round that followed its delete (see the property test).

use std::collections::BTreeSet;
use std::ops::Range;

/// The allocator state stored in the index, as one open write transaction sees it.
pub(crate) trait Ledger {
    /// The error of the underlying storage.
    type Error;
    /// Removes and returns the lowest free slot.
    fn take_lowest_free(&mut self) -> Result<Option<u64>, Self::Error>;
    /// Whether `slot` is in the free set.
    fn is_free(&mut self, slot: u64) -> Result<bool, Self::Error>;
    /// Adds `slot` to the free set.
    fn add_free(&mut self, slot: u64) -> Result<(), Self::Error>;
    /// Adds `slot` to the to-zero set.
    fn add_to_zero(&mut self, slot: u64) -> Result<(), Self::Error>;
    /// Removes and returns every slot of the to-zero set.
    fn take_to_zero(&mut self) -> Result<Vec<u64>, Self::Error>;
    /// One past the highest slot ever allocated.
    fn end(&mut self) -> Result<u64, Self::Error>;
    /// Sets [`Ledger::end`].
    fn set_end(&mut self, end: u64) -> Result<(), Self::Error>;
}

/// The in-memory part: slots written by rounds whose index commit failed. They are free (or
/// past `end`) in the index but may hold a body; the next successful round zeroes those it
/// does not reuse. A crash loses this set: [`recovery_scan`] finds them again.
#[derive(Debug, Default)]
pub(crate) struct Book {
    stale: BTreeSet<u64>,
}

/// One commit's slot work, in progress inside its index transaction.
#[derive(Debug)]
#[must_use]
pub(crate) struct Round {
    /// To-zero slots of earlier commits, taken out of that set.
    settling: Vec<u64>,
    /// One slot per stored deposit, in deposit order.
    allocated: Vec<u64>,
}

/// What a round must do to the slot file before the index commits.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// One slot per stored deposit, in deposit order (the bodies go there).
    pub writes: Vec<u64>,
    /// Slots to overwrite with zeros, ascending, none of them in `writes`.
    pub zeros: Vec<u64>,
}

impl Book {
    /// Starts a round: takes the to-zero slots left by earlier commits (this round zeroes them
    /// and frees them, after its own allocations so that none is reused before it is zero).
    pub(crate) fn begin<L: Ledger>(&self, ledger: &mut L) -> Result<Round, L::Error> {
        Ok(Round {
            settling: ledger.take_to_zero()?,
            allocated: Vec::new(),
        })
    }

    /// The round's index transaction committed and its plan was written and synced before:
    /// no slot is stale any more (each was reused, zeroed, or found live and left alone).
    pub(crate) fn committed(&mut self) {
        self.stale.clear();
    }

    /// The round failed at some step after `plan` (its writes may be on disk, its index
    /// commit is not, or not known to be): its slots may hold bodies that nothing names.
    pub(crate) fn failed(&mut self, plan: &Plan) {
        self.stale.extend(plan.writes.iter().copied());
    }

    #[cfg(test)]
    pub(crate) fn stale(&self) -> &BTreeSet<u64> {
        &self.stale
    }
}

impl Round {
    /// A slot for one deposit: the lowest free one, else a new one at the end.
    pub(crate) fn allocate<L: Ledger>(&mut self, ledger: &mut L) -> Result<u64, L::Error> {
        let slot = if let Some(s) = ledger.take_lowest_free()? {
            s
        } else {
            let end = ledger.end()?;
            ledger.set_end(end + 1)?;
            end
        };
        self.allocated.push(slot);
        Ok(slot)
    }

    /// The envelope in `slot` was deleted or expired in this round's transaction.
    pub(crate) fn release<L: Ledger>(&mut self, ledger: &mut L, slot: u64) -> Result<(), L::Error> {
        ledger.add_to_zero(slot)
    }

    /// Ends the round: the taken to-zero slots become free (zeroed by this round's plan), and
    /// stale slots still free or past the end are zeroed too unless reused.
    pub(crate) fn finish<L: Ledger>(self, ledger: &mut L, book: &Book) -> Result<Plan, L::Error> {
        let reused: BTreeSet<u64> = self.allocated.iter().copied().collect();
        let mut zeros: BTreeSet<u64> = BTreeSet::new();
        for &s in &self.settling {
            ledger.add_free(s)?;
            zeros.insert(s);
        }
        let end = ledger.end()?;
        for &s in &book.stale {
            // A stale slot that is neither free nor past the end was named by an index
            // commit that reported failure but landed: it is live, never zeroed.
            if !reused.contains(&s) && (s >= end || ledger.is_free(s)?) {
                zeros.insert(s);
            }
        }
        Ok(Plan {
            writes: self.allocated,
            zeros: zeros.into_iter().collect(),
        })
    }
}

/// Consecutive free slots, all zero, after which [`recovery_scan`] stops.
pub(crate) const RECOVERY_ZERO_RUN: usize = 1024;

/// At open after a crash: which free slots may hold a body no index row names. A round that
/// failed took the lowest free slots, so such bodies sit at the start of the free set; the
/// scan reads free slots in ascending order and stops after [`RECOVERY_ZERO_RUN`] zero ones in
/// a row. `free` yields the free slots ascending, `is_zero` reads one. Slots past the end are
/// the caller's (it zeroes and truncates the file's tail).
///
/// Sound while a commit holds at most [`RECOVERY_ZERO_RUN`] deposits (the relay's default
/// `storage.max_commit_batch`): the bodies a crash can leave in free slots lie among the
/// first that many free slots, so no run of that many zero slots separates them. With larger
/// batches a body of an unacknowledged deposit may be missed; it stays in a free slot until
/// that slot is reused (lowest first: by the next deposits).
pub(crate) fn recovery_scan<E>(
    free: impl IntoIterator<Item = Result<u64, E>>,
    mut is_zero: impl FnMut(u64) -> Result<bool, E>,
) -> Result<Vec<u64>, E> {
    let mut dirty = Vec::new();
    let mut zero_run = 0usize;
    for s in free {
        let s = s?;
        if is_zero(s)? {
            zero_run += 1;
            if zero_run >= RECOVERY_ZERO_RUN {
                break;
            }
        } else {
            zero_run = 0;
            dirty.push(s);
        }
    }
    Ok(dirty)
}

/// Splits `slots` (in the order given) into runs of consecutive slot numbers, as index ranges
/// into `slots`: each run is one write at `slots[run.start] * SLOT_LEN`.
pub(crate) fn runs(slots: &[u64]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for (i, &s) in slots.iter().enumerate() {
        match out.last_mut() {
            Some(r) if slots[r.end - 1].checked_add(1) == Some(s) => r.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_testkit::SplitMix64;
    use std::collections::{BTreeMap, HashMap};
    use std::convert::Infallible;

    #[test]
    fn runs_split_at_gaps_and_backward_steps() {
        assert_eq!(runs(&[]), Vec::<Range<usize>>::new());
        assert_eq!(runs(&[7]), vec![0..1]);
        assert_eq!(runs(&[3, 4, 5, 9, 10, 2, 3]), vec![0..3, 3..5, 5..7]);
        assert_eq!(runs(&[4, 3]), vec![0..1, 1..2]);
        assert_eq!(runs(&[u64::MAX - 1, u64::MAX]), vec![0..2]);
    }

    /// The index's allocator tables, as a transaction sees them (cloned per round: dropping
    /// the clone is an abort).
    #[derive(Clone, Debug, Default, PartialEq)]
    struct Model {
        free: BTreeSet<u64>,
        to_zero: BTreeSet<u64>,
        end: u64,
    }

    impl Ledger for Model {
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
        fn add_to_zero(&mut self, slot: u64) -> Result<(), Infallible> {
            self.to_zero.insert(slot);
            Ok(())
        }
        fn take_to_zero(&mut self) -> Result<Vec<u64>, Infallible> {
            Ok(std::mem::take(&mut self.to_zero).into_iter().collect())
        }
        fn end(&mut self) -> Result<u64, Infallible> {
            Ok(self.end)
        }
        fn set_end(&mut self, end: u64) -> Result<(), Infallible> {
            self.end = end;
            Ok(())
        }
    }

    /// How a round ends.
    #[derive(Clone, Copy, Debug)]
    enum End {
        /// Everything succeeds.
        Ok,
        /// Some writes reach the file, then a write or the sync fails (disk full); the index
        /// transaction is dropped.
        WriteFails,
        /// Writes and sync succeed; the index commit fails.
        CommitFails,
        /// The index commit fails but was made durable anyway.
        CommitFailsButLands,
        /// The process dies after the sync, before the index commit.
        CrashBeforeCommit,
        /// The process dies after the index commit, before anything else.
        CrashAfterCommit,
        /// The process dies while writing: an arbitrary part of the writes reached the disk.
        CrashWhileWriting,
    }

    /// What the property test keeps: the durable index (live id -> slot, body tag), the
    /// durable allocator tables, the disk (slot -> body tag, absent = zeros), and the
    /// in-memory book of the running process.
    struct World {
        index: BTreeMap<u64, u64>,
        ledger: Model,
        disk: HashMap<u64, u64>,
        book: Book,
        next_tag: u64,
        /// Tags of deleted envelopes (no tag is reused).
        deleted: BTreeSet<u64>,
        /// Tags of deposits whose round did not report success.
        unacked: BTreeSet<u64>,
    }

    impl World {
        fn tag_of(&self, id: u64) -> u64 {
            id
        }

        /// One round: `deposits` new envelopes, deletes of the live ids `dels`, ending as `end`.
        fn round(&mut self, rng: &mut SplitMix64, deposits: usize, dels: &[u64], end: End) {
            let mut txn = self.ledger.clone();
            let mut index = self.index.clone();
            let round = self.book.begin(&mut txn).unwrap();
            let mut round = round;
            let mut tags = Vec::new();
            for _ in 0..deposits {
                let slot = round.allocate(&mut txn).unwrap();
                let tag = self.next_tag;
                self.next_tag += 1;
                index.insert(tag, slot);
                tags.push(tag);
            }
            for id in dels {
                if let Some(slot) = index.remove(id) {
                    round.release(&mut txn, slot).unwrap();
                }
            }
            let plan = round.finish(&mut txn, &self.book).unwrap();
            assert_eq!(plan.writes.len(), tags.len());
            let mut ops: Vec<(u64, u64)> = plan.writes.iter().copied().zip(tags.clone()).collect();
            ops.extend(plan.zeros.iter().map(|&s| (s, 0)));
            let apply = |disk: &mut HashMap<u64, u64>, ops: &[(u64, u64)]| {
                for &(s, t) in ops {
                    if t == 0 {
                        disk.remove(&s);
                    } else {
                        disk.insert(s, t);
                    }
                }
            };
            let partial = |rng: &mut SplitMix64, ops: &[(u64, u64)]| -> Vec<(u64, u64)> {
                ops.iter().copied().filter(|_| rng.below(2) == 0).collect()
            };
            let commit = |w: &mut World, txn: Model, index: BTreeMap<u64, u64>| {
                for id in dels {
                    if w.index.contains_key(id) && !index.contains_key(id) {
                        w.deleted.insert(w.tag_of(*id));
                    }
                }
                w.ledger = txn;
                w.index = index;
            };
            match end {
                End::Ok => {
                    apply(&mut self.disk, &ops);
                    commit(self, txn, index);
                    self.book.committed();
                }
                End::WriteFails => {
                    let some = partial(rng, &ops);
                    apply(&mut self.disk, &some);
                    self.book.failed(&plan);
                    self.unacked.extend(tags);
                }
                End::CommitFails => {
                    apply(&mut self.disk, &ops);
                    self.book.failed(&plan);
                    self.unacked.extend(tags);
                }
                End::CommitFailsButLands => {
                    apply(&mut self.disk, &ops);
                    commit(self, txn, index);
                    self.book.failed(&plan);
                    // Reported failed, yet stored: not acknowledged, but it must stay whole.
                }
                End::CrashBeforeCommit => {
                    apply(&mut self.disk, &ops);
                    self.unacked.extend(tags);
                    self.restart();
                }
                End::CrashAfterCommit => {
                    apply(&mut self.disk, &ops);
                    commit(self, txn, index);
                    self.restart();
                }
                End::CrashWhileWriting => {
                    let some = partial(rng, &ops);
                    apply(&mut self.disk, &some);
                    self.unacked.extend(tags);
                    self.restart();
                }
            }
        }

        /// What the store does at open: zero the to-zero slots, zero and cut the tail past
        /// `end`, scan the free set for bodies; the book starts empty.
        fn restart(&mut self) {
            self.book = Book::default();
            let end = self.ledger.end;
            self.disk.retain(|&s, _| s < end);
            for s in &self.ledger.to_zero {
                self.disk.remove(s);
            }
            let disk = &self.disk;
            let free = self.ledger.free.iter().map(|&s| Ok::<_, Infallible>(s));
            let dirty =
                recovery_scan(free, |s| Ok::<_, Infallible>(!disk.contains_key(&s))).unwrap();
            for s in dirty {
                self.disk.remove(&s);
            }
            self.check(true);
        }

        /// The invariants. `settled`: after a successful round or a restart, when no body of
        /// a deleted or unacknowledged envelope may sit in a free slot or past the end.
        fn check(&self, settled: bool) {
            let mut live = BTreeSet::new();
            for (&id, &slot) in &self.index {
                assert!(live.insert(slot), "slot {slot} named twice");
                assert!(slot < self.ledger.end);
                assert!(!self.ledger.free.contains(&slot), "live slot {slot} free");
                assert!(
                    !self.ledger.to_zero.contains(&slot),
                    "live slot {slot} to zero"
                );
                assert_eq!(
                    self.disk.get(&slot),
                    Some(&self.tag_of(id)),
                    "live body lost"
                );
            }
            assert!(self.ledger.free.is_disjoint(&self.ledger.to_zero));
            assert!(
                self.ledger
                    .free
                    .iter()
                    .chain(&self.ledger.to_zero)
                    .all(|&s| s < self.ledger.end)
            );
            // Every slot below the end is accounted for exactly once.
            assert_eq!(
                live.len() + self.ledger.free.len() + self.ledger.to_zero.len(),
                usize::try_from(self.ledger.end).unwrap()
            );
            if settled {
                for (&slot, &tag) in &self.disk {
                    let named = live.contains(&slot);
                    let pending = self.ledger.to_zero.contains(&slot);
                    assert!(
                        named || pending,
                        "slot {slot} holds body {tag} that nothing names (deleted: {}, unacked: {})",
                        self.deleted.contains(&tag),
                        self.unacked.contains(&tag)
                    );
                }
            }
        }
    }

    /// Random rounds of deposits and deletes, each ending well, in a failed write or sync, a
    /// failed index commit (reported failed but landed, too), or a crash at one of three
    /// points followed by the open's recovery. After every step: live bodies are intact and
    /// named once, the tables partition the slots below the end; after a success or a
    /// restart, no slot holds a body of a deleted or unacknowledged envelope unless it is to
    /// be zeroed by the next round. Seeded; the seed of a failure is in its message.
    ///
    /// Seen to fail: with `finish` not zeroing the stale slots (a failed commit's bodies then
    /// stay in free slots: "slot 14 holds body 34 that nothing names (deleted: false,
    /// unacked: true)"); with `begin` freeing the settling slots before the allocations (a
    /// slot is reused before it is zero, and the zeros then overwrite a live body: "live body
    /// lost");
    /// with `recovery_scan` stopping at the first zero slot (seed 0, after a crash while
    /// writing: "slot 19 holds body 121 that nothing names (deleted: false, unacked: true)").
    #[test]
    fn the_slot_state_machine_keeps_bodies_and_leaves_no_deleted_one() {
        for seed in 0..400u64 {
            let mut rng = SplitMix64(seed);
            let mut w = World {
                index: BTreeMap::new(),
                ledger: Model::default(),
                disk: HashMap::new(),
                book: Book::default(),
                next_tag: 1,
                deleted: BTreeSet::new(),
                unacked: BTreeSet::new(),
            };
            for _ in 0..60 {
                let deposits = usize::try_from(rng.below(6)).unwrap();
                let live: Vec<u64> = w.index.keys().copied().collect();
                let mut dels = Vec::new();
                for _ in 0..rng.below(4) {
                    if !live.is_empty() {
                        dels.push(live[usize::try_from(rng.below(live.len() as u64)).unwrap()]);
                    }
                }
                let end = match rng.below(20) {
                    0 => End::WriteFails,
                    1 => End::CommitFails,
                    2 => End::CommitFailsButLands,
                    3 => End::CrashBeforeCommit,
                    4 => End::CrashAfterCommit,
                    5 => End::CrashWhileWriting,
                    _ => End::Ok,
                };
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    w.round(&mut rng, deposits, &dels, end);
                    w.check(matches!(end, End::Ok));
                }));
                assert!(result.is_ok(), "seed {seed}, round ending {end:?}");
            }
            assert!(w.book.stale().len() <= w.ledger.end as usize);
        }
    }
}
