//! The slot allocator of the redb backend, without I/O: which slot of `envelopes.slots` a
//! deposit's body goes to, what a commit must write before its sync and erase after it, and
//! what a restart must zero.
//!
//! Owns: the life of a slot. A slot is *live* (an index row names it), *free* (all zeros on
//! disk, or a body no index row names that the next successful round or the next open zeroes
//! or overwrites) or past `end` (never used, or left by a crash). The persistent part of that
//! state (the free set and `end`) lives in the index's transaction, seen through [`Ledger`];
//! this module holds the rules and the one in-memory set, the *stale* slots: bodies a round
//! wrote whose commit failed.
//! A round ([`Round`]), inside one index transaction: allocates a slot per deposit (lowest
//! free first, else `end`, so runs of a commit are mostly contiguous and the file grows at its
//! end), and on [`Round::finish`] frees the slots of the envelopes it deleted (after its own
//! allocations, so that none is reused by the round that erases it) and returns the [`Plan`]:
//! bodies to write and stale slots to zero before the commit's one sync, and the slots it
//! deleted, to erase once the commit is durable (the commit's journal record names them, so
//! an open after a crash erases them again if those zeros did not reach the disk).
//! Must never hand out a slot that is live, never zero or erase a live slot, and never let a
//! deleted body survive a successful round that deleted it (see the property test in
//! `journal.rs`).

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
    /// Removes `slot` from the free set (a replayed deposit's).
    fn remove_free(&mut self, slot: u64) -> Result<(), Self::Error>;
    /// One past the highest slot ever allocated.
    fn end(&mut self) -> Result<u64, Self::Error>;
    /// Sets [`Ledger::end`].
    fn set_end(&mut self, end: u64) -> Result<(), Self::Error>;
}

/// The in-memory part: slots written by rounds whose commit failed. They are free (or past
/// `end`) in the index but may hold a body; the next successful round zeroes those it does
/// not reuse. A crash loses this set: [`recovery_scan`] finds them again.
#[derive(Debug, Default)]
pub(crate) struct Book {
    stale: BTreeSet<u64>,
}

/// One commit's slot work, in progress inside its index transaction.
#[derive(Debug, Default)]
#[must_use]
pub(crate) struct Round {
    /// One slot per stored deposit, in deposit order.
    allocated: Vec<u64>,
    /// Slots of the envelopes this round deleted.
    released: Vec<u64>,
}

/// What a round must do to the slot file around its sync.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// One slot per stored deposit, in deposit order (the bodies go there), before the sync.
    pub writes: Vec<u64>,
    /// Slots to overwrite with zeros before the sync (stale ones), ascending, none of them in
    /// `writes` or `erase`.
    pub zeros: Vec<u64>,
    /// Slots of the envelopes deleted, to overwrite with zeros once the commit is durable,
    /// ascending.
    pub erase: Vec<u64>,
}

impl Book {
    /// Starts a round.
    pub(crate) fn begin(&self) -> Round {
        Round::default()
    }

    /// The round committed and its plan was written and synced before: no slot is stale any
    /// more (each was reused, zeroed, or found live and left alone).
    pub(crate) fn committed(&mut self) {
        self.stale.clear();
    }

    /// The round failed at some step after `plan` (its writes may be on disk, its commit is
    /// not, or not known to be): its slots may hold bodies that nothing names.
    pub(crate) fn failed(&mut self, plan: &Plan) {
        self.stale.extend(plan.writes.iter().copied());
    }
}

/// Marks `slot`, at or past `end`, as used: the slots between become free.
pub(crate) fn extend_to<L: Ledger>(ledger: &mut L, slot: u64) -> Result<(), L::Error> {
    let end = ledger.end()?;
    for s in end..slot {
        ledger.add_free(s)?;
    }
    ledger.set_end(slot + 1)
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
    pub(crate) fn release(&mut self, slot: u64) {
        self.released.push(slot);
    }

    /// Ends the round: stale slots still free or past the end are zeroed unless reused, and
    /// the released slots become free (erased once the commit is durable).
    pub(crate) fn finish<L: Ledger>(self, ledger: &mut L, book: &Book) -> Result<Plan, L::Error> {
        let reused: BTreeSet<u64> = self.allocated.iter().copied().collect();
        let released: BTreeSet<u64> = self.released.iter().copied().collect();
        let mut zeros: BTreeSet<u64> = BTreeSet::new();
        let end = ledger.end()?;
        for &s in &book.stale {
            // A stale slot that is neither free nor past the end was named by a commit that
            // reported failure but landed: it is live, never zeroed before the sync (if this
            // round deleted it, it is erased after).
            if !reused.contains(&s) && !released.contains(&s) && (s >= end || ledger.is_free(s)?) {
                zeros.insert(s);
            }
        }
        for &s in &released {
            ledger.add_free(s)?;
        }
        Ok(Plan {
            writes: self.allocated,
            zeros: zeros.into_iter().collect(),
            erase: released.into_iter().collect(),
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
/// Sound because a round stores at most `journal::MAX_PUTS` deposits, fewer than
/// [`RECOVERY_ZERO_RUN`] (a larger commit is split into rounds; `storage.max_commit_batch`
/// may be set to anything): the bodies a crash can leave in free slots lie among the first
/// that many free slots, so no run of that many zero slots separates them.
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

    #[test]
    fn runs_split_at_gaps_and_backward_steps() {
        assert_eq!(runs(&[]), Vec::<Range<usize>>::new());
        assert_eq!(runs(&[7]), vec![0..1]);
        assert_eq!(runs(&[3, 4, 5, 9, 10, 2, 3]), vec![0..3, 3..5, 5..7]);
        assert_eq!(runs(&[4, 3]), vec![0..1, 1..2]);
        assert_eq!(runs(&[u64::MAX - 1, u64::MAX]), vec![0..2]);
    }
}
