//! The sans-IO state of one chunked transfer (an upload or a download): which chunk to
//! start next, what is in flight, what is done, and what to persist so that a crash
//! resumes where it stopped.
//!
//! Owns: the scheduling policy (at most `window` chunks in flight, lowest index first,
//! failed chunks retried first, and no chunk started `2 * window` or more past the first
//! one not done) and the resume rule: the persisted progress is the length of the longest
//! run of done chunks from index 0 (`prefix`); after a crash the transfer starts again at
//! `prefix`, so it repeats fewer than `2 * window` chunks, and a repeated put is idempotent
//! on the relay (same id, stored once).
//! Must never do I/O, read a clock or start a chunk twice at once.

use std::collections::BTreeSet;

/// One transfer's chunk bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    count: u32,
    window: usize,
    /// Every chunk below it is done (and persisted by the caller).
    prefix: u32,
    /// Done chunks at or above `prefix`.
    done_above: BTreeSet<u32>,
    in_flight: BTreeSet<u32>,
    /// Failed chunks to start again before new ones.
    retry: BTreeSet<u32>,
    /// The next chunk never started in this run.
    next_new: u32,
}

impl Transfer {
    /// A transfer of `count` chunks resumed at `prefix` (0 for a new one), with at most
    /// `window` (at least 1) chunks in flight.
    #[must_use]
    pub fn resume(count: u32, prefix: u32, window: usize) -> Self {
        let prefix = prefix.min(count);
        Self {
            count,
            window: window.max(1),
            prefix,
            done_above: BTreeSet::new(),
            in_flight: BTreeSet::new(),
            retry: BTreeSet::new(),
            next_new: prefix,
        }
    }

    /// The next chunk to start, if the window has room and one is left.
    pub fn poll_next(&mut self) -> Option<u32> {
        if self.in_flight.len() >= self.window {
            return None;
        }
        // A chunk that keeps failing must not let the others run far ahead: what is done
        // above the prefix is lost to a crash.
        let span = u32::try_from(2 * self.window).unwrap_or(u32::MAX);
        let next = if let Some(i) = self.retry.pop_first() {
            i
        } else if self.next_new < self.count && self.next_new < self.prefix.saturating_add(span) {
            self.next_new += 1;
            self.next_new - 1
        } else {
            return None;
        };
        self.in_flight.insert(next);
        Some(next)
    }

    /// Chunk `index` finished. Returns the new prefix when it grew (what to persist).
    pub fn handle_done(&mut self, index: u32) -> Option<u32> {
        if !self.in_flight.remove(&index) {
            return None;
        }
        self.done_above.insert(index);
        let before = self.prefix;
        while self.done_above.remove(&self.prefix) {
            self.prefix += 1;
        }
        (self.prefix > before).then_some(self.prefix)
    }

    /// Chunk `index` failed (a dropped connection, a busy relay): it is started again first.
    pub fn handle_failed(&mut self, index: u32) {
        if self.in_flight.remove(&index) {
            self.retry.insert(index);
        }
    }

    /// Chunks done so far (in this run and before it).
    #[must_use]
    pub fn done(&self) -> u32 {
        self.prefix + u32::try_from(self.done_above.len()).unwrap_or(u32::MAX)
    }

    /// The persisted progress: every chunk below it is done.
    #[must_use]
    pub fn prefix(&self) -> u32 {
        self.prefix
    }

    /// Chunks in flight.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// All chunks done.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.prefix == self.count
    }

    /// Chunks in all.
    #[must_use]
    pub fn count(&self) -> u32 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng, SeedableRng};

    use super::*;

    /// A simulated transfer against an idempotent chunk store: chunks finish in random
    /// order, some fail, and the process "crashes" at random points, resuming from the last
    /// persisted prefix. Every seed must end complete, with every chunk stored exactly once,
    /// no chunk in flight twice, and fewer than `2 * window` repeats per crash.
    #[test]
    fn random_completion_failures_and_crashes_resume_to_completion_without_duplicates() {
        for seed in 0..200u64 {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let count = 1 + rng.next_u32() % 300;
            let window = 1 + (rng.next_u32() % 8) as usize;
            let mut stored: HashMap<u32, u32> = HashMap::new(); // index -> puts that stored
            let mut attempts: HashMap<u32, u32> = HashMap::new();
            let mut persisted = 0u32;
            let mut crashes = 0u32;
            let mut t = Transfer::resume(count, persisted, window);
            let mut flying: Vec<u32> = Vec::new();
            let mut steps = 0;
            while !t.is_complete() {
                steps += 1;
                assert!(steps < 1_000_000, "seed {seed}: no progress");
                while let Some(i) = t.poll_next() {
                    assert!(!flying.contains(&i), "seed {seed}: chunk {i} started twice");
                    flying.push(i);
                }
                assert!(t.in_flight() <= window);
                match rng.next_u32() % 100 {
                    // A crash: everything in memory is lost.
                    0..=1 => {
                        crashes += 1;
                        flying.clear();
                        t = Transfer::resume(count, persisted, window);
                    }
                    // A failure of one chunk in flight.
                    2..=9 if !flying.is_empty() => {
                        let k = (rng.next_u32() as usize) % flying.len();
                        t.handle_failed(flying.swap_remove(k));
                    }
                    _ if !flying.is_empty() => {
                        let k = (rng.next_u32() as usize) % flying.len();
                        let i = flying.swap_remove(k);
                        *attempts.entry(i).or_default() += 1;
                        // The relay stores a chunk id once, whatever the number of puts.
                        stored.entry(i).or_insert(1);
                        if let Some(p) = t.handle_done(i) {
                            persisted = p;
                        }
                    }
                    _ => {}
                }
            }
            assert_eq!(stored.len(), count as usize, "seed {seed}");
            assert!(stored.values().all(|&n| n == 1));
            let repeats: u32 = attempts.values().map(|n| n - 1).sum();
            assert!(
                repeats <= crashes * (2 * window as u32 - 1),
                "seed {seed}: {repeats} repeats after {crashes} crashes with window {window}"
            );
        }
    }

    #[test]
    fn a_resumed_transfer_starts_at_its_prefix_and_retries_failures_first() {
        let mut t = Transfer::resume(10, 4, 2);
        assert_eq!(
            (t.poll_next(), t.poll_next(), t.poll_next()),
            (Some(4), Some(5), None)
        );
        t.handle_failed(4);
        assert_eq!(t.poll_next(), Some(4));
        assert_eq!(t.handle_done(5), None, "5 done above an unfinished 4");
        assert_eq!(t.handle_done(4), Some(6));
        assert_eq!(
            t.handle_done(4),
            None,
            "a chunk not in flight changes nothing"
        );
        assert_eq!(t.done(), 6);
        let mut empty = Transfer::resume(1, 0, 4);
        assert_eq!(empty.poll_next(), Some(0));
        assert_eq!(empty.handle_done(0), Some(1));
        assert!(empty.is_complete());
        assert_eq!(empty.poll_next(), None);
    }
}
