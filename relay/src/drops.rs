//! Drops, the handshake mailboxes of invites (docs/PROTOCOL.md, "Drops"): what a stamped
//! deposit must pay, which stamps were already spent, and which stored mailboxes a fetch
//! secret opens.
//!
//! Owns: the relay's side of the drop rules and the names mailboxes are stored under. An
//! ordinary mailbox `id` is stored under [`storage_key`]`(id)` and a drop under
//! [`DropAddress::storage_key`], so no plain deposit reaches a drop. A stamped deposit is
//! worth its work only once and only if it shows the owner's difficulty plus what the
//! drop's fill adds. A fetch secret `F` opens the mailbox `SHA-256(F)` in Fetch, Delete and
//! Subscribe, and the drop it owns in FetchDrops, DeleteDrop and SubscribeDrops; answers
//! name either by `SHA-256(F)`, so a client never sees a storage key. Must never keep a stamp beyond the bounded in-memory ledger, nor
//! anything about who deposited.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};

use hush_proto::drop::{STAMP_LEN, extra_bits, stamp_work, storage_key};

use crate::admission::Source;
use hush_proto::{DropAddress, Envelope, FetchSecret, MailboxId};
use sha2::{Digest, Sha256};

/// Stamps remembered as spent. A replay of a stamp older than this many deposits is
/// priced again (it still has to meet the drop's current difficulty and quota).
const SPENT_CAPACITY: usize = 1 << 16;

/// Why a stamped deposit is refused before it reaches storage.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooWeak {
    /// Leading zero bits a stamp must show now.
    pub(crate) required: u32,
}

/// The stamps of recent stamped deposits, so that one piece of work buys one deposit.
pub(crate) struct SpentStamps {
    inner: Mutex<Ledger>,
}

/// Spent stamp tags, and their order for forgetting the oldest.
#[derive(Default)]
struct Ledger {
    seen: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl SpentStamps {
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(Ledger::default()),
        }
    }

    /// Checks a stamp against the drop's price (`stored`: envelopes it holds now) and, if
    /// it pays, marks it spent. A stamp seen before shows no work.
    pub(crate) fn pay(
        &self,
        drop: &DropAddress,
        stamp: &[u8; STAMP_LEN],
        envelope: &Envelope,
        stored: u32,
    ) -> Result<(), TooWeak> {
        let key = drop.storage_key();
        let required = u32::from(drop.bits) + extra_bits(stored);
        if stamp_work(&key, envelope, stamp) < required {
            return Err(TooWeak { required });
        }
        // The work is bound to the envelope: the same stamp bytes on another envelope are
        // another proof. A replay is the same envelope with the same stamp.
        let mut h = Sha256::new();
        h.update(key.as_bytes());
        h.update(Sha256::digest(envelope.as_bytes()));
        h.update(stamp);
        let tag: [u8; 32] = h.finalize().into();
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Ledger { seen, order } = &mut *guard;
        if !seen.insert(tag) {
            return Err(TooWeak { required });
        }
        order.push_back(tag);
        if order.len() > SPENT_CAPACITY
            && let Some(old) = order.pop_front()
        {
            seen.remove(&old);
        }
        Ok(())
    }
}

/// Drop deposits per (source, drop) in the current window: one link holder, from one
/// address, cannot fill a drop however much work it pays. Memory only, forgotten when the
/// window ends; at most [`SHARES_CAPACITY`] pairs are kept.
pub(crate) struct DropShares {
    per_window: u32,
    window_ms: u64,
    epoch: std::time::Instant,
    inner: Mutex<HashMap<(Source, MailboxId), (u64, u32)>>,
}

/// Pairs of (source, drop) remembered at once; when full, those whose window ended are
/// forgotten, then the oldest window.
const SHARES_CAPACITY: usize = 1 << 16;

impl DropShares {
    pub(crate) fn new(per_window: u32, window_secs: u64) -> Self {
        Self {
            per_window,
            window_ms: window_secs.saturating_mul(1000),
            epoch: std::time::Instant::now(),
            inner: Mutex::new(HashMap::new()),
        }
    }

    /// [`Self::take`] now.
    pub(crate) fn take_now(&self, source: Option<Source>, key: MailboxId) -> Result<(), u64> {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.take(source, key, now)
    }

    /// Counts one deposit of `source` to the drop stored under `key` at `now_ms`; the
    /// milliseconds until its window ends if its share is spent. No source (a loopback
    /// peer while those are exempt): no limit.
    pub(crate) fn take(
        &self,
        source: Option<Source>,
        key: MailboxId,
        now_ms: u64,
    ) -> Result<(), u64> {
        let Some(source) = source else {
            return Ok(());
        };
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= SHARES_CAPACITY && !map.contains_key(&(source, key)) {
            let window = self.window_ms;
            map.retain(|_, (start, _)| now_ms < start.saturating_add(window));
            if map.len() >= SHARES_CAPACITY
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (start, _))| *start)
                    .map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        let entry = map.entry((source, key)).or_insert((now_ms, 0));
        if now_ms >= entry.0.saturating_add(self.window_ms) {
            *entry = (now_ms, 0);
        }
        if entry.1 >= self.per_window {
            return Err(entry.0.saturating_add(self.window_ms) - now_ms);
        }
        entry.1 += 1;
        Ok(())
    }
}

/// The stored mailboxes a batch of fetch secrets opens, and the name each is answered by.
pub(crate) struct Opened {
    /// The storage key of each secret's mailbox (or drop).
    pub(crate) keys: Vec<MailboxId>,
    back: HashMap<MailboxId, MailboxId>,
}

impl Opened {
    /// What `secrets` open: their ordinary mailboxes, or (`drops`) the drops they own.
    pub(crate) fn new<'a>(secrets: impl IntoIterator<Item = &'a FetchSecret>, drops: bool) -> Self {
        let mut keys = Vec::new();
        let mut back = HashMap::new();
        for s in secrets {
            let id = s.mailbox_id();
            let key = if drops {
                DropAddress::of_secret(s).storage_key()
            } else {
                storage_key(&id)
            };
            keys.push(key);
            back.insert(key, id);
        }
        Self { keys, back }
    }

    /// The mailbox id a client knows for the stored mailbox `key` (every key this batch
    /// opened has one).
    pub(crate) fn reported(&self, key: MailboxId) -> MailboxId {
        self.back.get(&key).copied().unwrap_or(key)
    }
}

#[cfg(test)]
mod tests {
    use hush_proto::ENVELOPE_LEN;
    use hush_proto::drop::mint_stamp;

    use super::*;

    fn env(b: u8) -> Envelope {
        Envelope::new(Box::new([b; ENVELOPE_LEN]))
    }

    #[test]
    fn a_stamp_pays_once_and_the_price_rises_with_the_fill() {
        let owner = FetchSecret::from_bytes([4; 32]);
        let drop = DropAddress::of_secret(&owner);
        let spent = SpentStamps::new();
        let stamp = mint_stamp(
            &drop.storage_key(),
            &env(1),
            4,
            [0xf0, 0x9f, 0x93, 0xb0, 0, 0, 0, 1],
        );
        assert_eq!(spent.pay(&drop, &stamp, &env(1), 0), Ok(()));
        // The same work again, or for another envelope, buys nothing.
        assert_eq!(
            spent.pay(&drop, &stamp, &env(1), 0),
            Err(TooWeak { required: 4 })
        );
        let weak = mint_stamp(&drop.storage_key(), &env(2), 4, [1; 8]);
        if stamp_work(&drop.storage_key(), &env(2), &weak) < 13 {
            // A full drop asks 12 bits more than its owner's 4.
            assert_eq!(
                spent.pay(&drop, &weak, &env(2), 255),
                Err(TooWeak { required: 16 })
            );
        }
    }

    #[test]
    fn one_source_gets_its_share_of_a_drop_per_window_and_no_more() {
        let shares = DropShares::new(2, 10);
        let a = Some(Source::of("192.0.2.1".parse().unwrap()));
        let b = Some(Source::of("2001:db8::1".parse().unwrap()));
        let drop = MailboxId([1; 32]);
        let other = MailboxId([2; 32]);
        assert_eq!(shares.take(a, drop, 0), Ok(()));
        assert_eq!(shares.take(a, drop, 1_000), Ok(()));
        assert_eq!(shares.take(a, drop, 2_000), Err(8_000));
        // Another source, or another drop, has its own share; a new window a new one.
        assert_eq!(shares.take(b, drop, 2_000), Ok(()));
        assert_eq!(shares.take(a, other, 2_000), Ok(()));
        assert_eq!(shares.take(a, drop, 10_000), Ok(()));
        // Exempt peers (no source) are not counted.
        for t in 0..10 {
            assert_eq!(shares.take(None, drop, t), Ok(()));
        }
    }

    #[test]
    fn a_secret_opens_its_mailbox_or_its_drop_under_one_name() {
        let s = FetchSecret::from_bytes([0xd8; 32]);
        let drop = DropAddress::of_secret(&s).storage_key();
        let own = storage_key(&s.mailbox_id());
        assert_ne!(own, drop);
        let mailboxes = Opened::new([&s], false);
        assert_eq!(mailboxes.keys, vec![own]);
        assert_eq!(mailboxes.reported(own), s.mailbox_id());
        let drops = Opened::new([&s], true);
        assert_eq!(drops.keys, vec![drop]);
        assert_eq!(drops.reported(drop), s.mailbox_id());
    }
}
