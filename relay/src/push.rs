//! Push: fan-out of committed deposits to subscribed connections.
//!
//! Owns: the in-memory map from mailbox id to live subscriptions, the bound on subscribers
//! per mailbox, the fan-out thread that takes committed batches off the commit path, and the
//! bounded push queue of each connection (shared by that connection's subscriptions).
//! Must never block the committer (it hands a batch over with a non-blocking send; a full
//! hand-off marks every subscription lagged instead of waiting), never let one connection's
//! slow reading hold memory beyond its queue bound (a full queue marks only that
//! subscription lagged), never persist anything, and never outlive the subscription that
//! registered (entries are removed when the [`Subscription`] drops).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc as std_mpsc};

use hush_proto::{Delivery, MailboxId};
use tokio::sync::{Notify, mpsc};

use crate::Error;
use crate::admission::FANOUT_BACKLOG;
use crate::metrics::Metrics;

/// The pushes a connection may have queued (sent by the fan-out, not yet written to its
/// streams), shared by all of that connection's subscriptions. Deliveries are shared between
/// queues, so a queued push costs a pointer plus, at worst, one envelope no other queue holds.
#[derive(Debug)]
pub struct PushQueue {
    queued: AtomicUsize,
    max: usize,
}

impl PushQueue {
    /// A queue for one connection holding at most `max` pushes.
    #[must_use]
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            queued: AtomicUsize::new(0),
            max: max.max(1),
        })
    }

    fn reserve(&self) -> bool {
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < self.max).then_some(q + 1)
            })
            .is_ok()
    }

    fn release(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Subscriber {
    tx: mpsc::UnboundedSender<Arc<Delivery>>,
    queue: Arc<PushQueue>,
    lagged: AtomicBool,
    lag: Notify,
}

impl Subscriber {
    fn mark_lagged(&self) {
        self.lagged.store(true, Ordering::Release);
        self.lag.notify_one();
    }
}

/// Subscribers of one mailbox, by subscription id.
type Subscribers = Vec<(u64, Arc<Subscriber>)>;

/// The registry of live subscriptions.
pub struct Hub {
    map: Mutex<HashMap<MailboxId, Subscribers>>,
    next: AtomicU64,
    max_per_mailbox: usize,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new(usize::MAX)
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

/// A live subscription; unregisters itself on drop.
pub struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    mailboxes: Vec<MailboxId>,
    sub: Arc<Subscriber>,
    rx: mpsc::UnboundedReceiver<Arc<Delivery>>,
}

/// What a subscription yields next.
#[derive(Debug)]
pub enum Next {
    /// A committed deposit (shared with the other subscribers it went to).
    Delivery(Arc<Delivery>),
    /// The queue overflowed; the subscription must end with `Lagged`.
    Lagged,
}

/// A subscription was refused: one of its mailboxes has the most subscribers allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxCrowded;

impl Hub {
    /// A hub allowing at most `max_per_mailbox` live subscriptions to cover one mailbox.
    #[must_use]
    pub fn new(max_per_mailbox: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            max_per_mailbox: max_per_mailbox.max(1),
        }
    }

    /// Registers a subscription to `mailboxes` whose pushes queue in `queue` (its
    /// connection's).
    ///
    /// # Errors
    /// [`MailboxCrowded`] if a mailbox already has the most subscribers allowed (nothing is
    /// registered then).
    pub fn subscribe(
        self: &Arc<Self>,
        mut mailboxes: Vec<MailboxId>,
        queue: Arc<PushQueue>,
    ) -> Result<Subscription, MailboxCrowded> {
        mailboxes.sort();
        mailboxes.dedup();
        let (tx, rx) = mpsc::unbounded_channel();
        let sub = Arc::new(Subscriber {
            tx,
            queue,
            lagged: AtomicBool::new(false),
            lag: Notify::new(),
        });
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        {
            let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
            let crowded = mailboxes
                .iter()
                .any(|mb| map.get(mb).is_some_and(|v| v.len() >= self.max_per_mailbox));
            if crowded {
                return Err(MailboxCrowded);
            }
            for mb in &mailboxes {
                map.entry(*mb).or_default().push((id, sub.clone()));
            }
        }
        Ok(Subscription {
            hub: self.clone(),
            id,
            mailboxes,
            sub,
            rx,
        })
    }

    /// Offers a committed deposit to every subscriber of its mailbox; returns how many got it.
    pub fn publish(&self, delivery: &Delivery) -> u64 {
        self.publish_shared(&Arc::new(delivery.clone()))
    }

    /// [`Hub::publish`] for a delivery already shared: every subscriber gets the same copy.
    pub fn publish_shared(&self, delivery: &Arc<Delivery>) -> u64 {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(subs) = map.get(&delivery.mailbox) else {
            return 0;
        };
        let mut n = 0;
        for (_, s) in subs {
            if s.lagged.load(Ordering::Acquire) {
                continue;
            }
            if !s.queue.reserve() {
                s.mark_lagged();
                continue;
            }
            if s.tx.send(delivery.clone()).is_ok() {
                n += 1;
            } else {
                s.queue.release();
            }
        }
        n
    }

    /// Whether any live subscription covers `mailbox` (a backend that learns of arrivals from
    /// elsewhere reads the envelope only when someone here waits for it).
    pub fn has_subscribers(&self, mailbox: &MailboxId) -> bool {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(mailbox)
    }

    /// Marks every live subscription lagged: pushes may have been missed (the backend's
    /// arrival feed dropped or lost messages), so each client must fetch again.
    pub fn lag_all(&self) {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, s) in map.values().flatten() {
            s.mark_lagged();
        }
    }

    /// Live subscriptions (aggregate, for metrics).
    pub fn mailbox_count(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Subscription {
    /// Number of distinct mailboxes subscribed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.mailboxes.len()
    }

    /// Whether no mailbox is subscribed (never true for a decoded Subscribe).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.mailboxes.is_empty()
    }

    /// Waits for the next push, or reports that the subscription lagged.
    pub async fn next(&mut self) -> Next {
        loop {
            if self.sub.lagged.load(Ordering::Acquire) {
                return Next::Lagged;
            }
            tokio::select! {
                d = self.rx.recv() => match d {
                    Some(d) => {
                        self.sub.queue.release();
                        return Next::Delivery(d);
                    }
                    // The hub holds a sender while we are registered; this cannot end first.
                    None => return Next::Lagged,
                },
                () = self.sub.lag.notified() => {}
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Pushes still queued give their room back to the connection's queue.
        self.rx.close();
        while self.rx.try_recv().is_ok() {
            self.sub.queue.release();
        }
        let mut map = self.hub.map.lock().unwrap_or_else(PoisonError::into_inner);
        for mb in &self.mailboxes {
            if let Some(v) = map.get_mut(mb) {
                v.retain(|(id, _)| *id != self.id);
                if v.is_empty() {
                    map.remove(mb);
                }
            }
        }
    }
}

/// The committer's end of the hand-off to the fan-out thread.
#[derive(Clone)]
pub struct Fanout {
    tx: std_mpsc::Sender<Vec<Delivery>>,
    /// Deliveries handed off and not yet published (at most [`FANOUT_BACKLOG`]).
    pending: Arc<AtomicUsize>,
    overflowed: Arc<AtomicBool>,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout").finish_non_exhaustive()
    }
}

impl Fanout {
    /// Starts the fan-out thread publishing handed-off batches to `hub`. It ends when every
    /// [`Fanout`] handle is dropped.
    ///
    /// # Errors
    /// [`Error::Io`] if the thread cannot be spawned.
    pub fn start(hub: Arc<Hub>, metrics: Arc<Metrics>) -> Result<Self, Error> {
        let (tx, rx) = std_mpsc::channel::<Vec<Delivery>>();
        let overflowed = Arc::new(AtomicBool::new(false));
        let pending = Arc::new(AtomicUsize::new(0));
        let (flag, left) = (overflowed.clone(), pending.clone());
        std::thread::Builder::new()
            .name("hush-fanout".into())
            .spawn(move || {
                while let Ok(batch) = rx.recv() {
                    if flag.swap(false, Ordering::AcqRel) {
                        // Some batch was dropped: nobody can tell which pushes it missed.
                        hub.lag_all();
                    }
                    let n = batch.len();
                    for d in batch {
                        metrics.pushed(hub.publish_shared(&Arc::new(d)));
                    }
                    left.fetch_sub(n, Ordering::AcqRel);
                }
            })
            .map_err(|e| Error::io("spawning the fan-out thread", e))?;
        Ok(Self {
            tx,
            pending,
            overflowed,
        })
    }

    /// Hands a committed batch over without blocking. If the fan-out would hold more than
    /// [`FANOUT_BACKLOG`] deliveries, the batch is dropped and every subscription will be
    /// told it lagged.
    pub fn hand_off(&self, batch: Vec<Delivery>) {
        let n = batch.len();
        if n == 0 {
            return;
        }
        let room = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                (p + n <= FANOUT_BACKLOG).then_some(p + n)
            })
            .is_ok();
        if !room {
            // One empty batch wakes the fan-out to tell everyone, even if no deposit follows.
            if !self.overflowed.swap(true, Ordering::AcqRel) {
                let _ = self.tx.send(Vec::new());
            }
            return;
        }
        if self.tx.send(batch).is_err() {
            self.pending.fetch_sub(n, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_proto::{ENVELOPE_LEN, Envelope, EnvelopeId};

    fn delivery(mb: u8, id: u64) -> Delivery {
        Delivery {
            mailbox: MailboxId([mb; 32]),
            id: EnvelopeId(id),
            envelope: Envelope::new(Box::new([0; ENVELOPE_LEN])),
        }
    }

    fn q() -> Arc<PushQueue> {
        PushQueue::new(256)
    }

    #[tokio::test]
    async fn publishes_to_subscribers_of_that_mailbox_only_and_unregisters_on_drop() {
        let hub = Arc::new(Hub::default());
        let mut a = hub
            .subscribe(vec![MailboxId([1; 32]), MailboxId([1; 32])], q())
            .unwrap();
        assert_eq!(a.len(), 1, "duplicates collapse");
        let b = hub.subscribe(vec![MailboxId([2; 32])], q()).unwrap();
        assert_eq!(hub.publish(&delivery(1, 7)), 1);
        match a.next().await {
            Next::Delivery(d) => assert_eq!(d.id, EnvelopeId(7)),
            Next::Lagged => panic!("not lagged"),
        }
        assert_eq!(hub.publish(&delivery(3, 8)), 0);
        drop(b);
        assert_eq!(hub.publish(&delivery(2, 9)), 0);
        assert_eq!(hub.mailbox_count(), 1);
        drop(a);
        assert_eq!(hub.mailbox_count(), 0);
    }

    #[tokio::test]
    async fn a_full_connection_queue_lags_only_that_connections_subscriptions() {
        let hub = Arc::new(Hub::default());
        // A slow connection with two subscriptions sharing a queue of 4, and a good one.
        let slow = PushQueue::new(4);
        let mut s1 = hub
            .subscribe(vec![MailboxId([1; 32])], slow.clone())
            .unwrap();
        let mut s2 = hub
            .subscribe(vec![MailboxId([1; 32])], slow.clone())
            .unwrap();
        let mut good = hub.subscribe(vec![MailboxId([1; 32])], q()).unwrap();
        // Two pushes fill the shared queue (two subscriptions each); the third overflows it.
        assert_eq!(hub.publish(&delivery(1, 1)), 3);
        assert_eq!(hub.publish(&delivery(1, 2)), 3);
        assert_eq!(hub.publish(&delivery(1, 3)), 1);
        assert!(matches!(s1.next().await, Next::Lagged));
        assert!(matches!(s2.next().await, Next::Lagged));
        for want in 1..=3 {
            match good.next().await {
                Next::Delivery(d) => assert_eq!(d.id, EnvelopeId(want)),
                Next::Lagged => panic!("the good connection lagged"),
            }
        }
        // Dropping the lagged subscriptions gives their queued room back.
        drop((s1, s2));
        assert_eq!(slow.queued.load(Ordering::Acquire), 0);
        let mut again = hub
            .subscribe(vec![MailboxId([1; 32])], slow.clone())
            .unwrap();
        assert_eq!(hub.publish(&delivery(1, 4)), 2);
        assert!(matches!(again.next().await, Next::Delivery(d) if d.id == EnvelopeId(4)));
        assert_eq!(slow.queued.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn subscribers_of_one_mailbox_are_bounded() {
        let hub = Arc::new(Hub::new(2));
        let a = hub.subscribe(vec![MailboxId([1; 32])], q()).unwrap();
        let _b = hub
            .subscribe(vec![MailboxId([2; 32]), MailboxId([1; 32])], q())
            .unwrap();
        // A third on mailbox 1 is refused whole: mailbox 3 is not registered either.
        let e = hub.subscribe(vec![MailboxId([3; 32]), MailboxId([1; 32])], q());
        assert_eq!(e.err(), Some(MailboxCrowded));
        assert!(!hub.has_subscribers(&MailboxId([3; 32])));
        drop(a);
        assert!(hub.subscribe(vec![MailboxId([1; 32])], q()).is_ok());
    }

    #[tokio::test]
    async fn one_delivery_is_shared_by_every_subscriber() {
        let hub = Arc::new(Hub::default());
        let mut subs: Vec<_> = (0..8)
            .map(|_| hub.subscribe(vec![MailboxId([1; 32])], q()).unwrap())
            .collect();
        assert_eq!(hub.publish(&delivery(1, 1)), 8);
        let mut got = Vec::new();
        for s in &mut subs {
            match s.next().await {
                Next::Delivery(d) => got.push(d),
                Next::Lagged => panic!("lagged"),
            }
        }
        // One envelope in memory, however many subscribers: the fan-out attack costs pointers.
        assert!(got.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])));
    }

    #[tokio::test]
    async fn the_fanout_thread_publishes_and_an_overflow_lags_everyone() {
        let hub = Arc::new(Hub::default());
        let mut a = hub.subscribe(vec![MailboxId([1; 32])], q()).unwrap();
        let fanout = Fanout::start(hub.clone(), Arc::new(Metrics::default())).unwrap();
        fanout.hand_off(vec![delivery(1, 1)]);
        assert!(matches!(a.next().await, Next::Delivery(d) if d.id == EnvelopeId(1)));
        // An overflowed hand-off (as the committer records it) lags every subscription at
        // the fan-out's next batch.
        fanout.overflowed.store(true, Ordering::Release);
        fanout.hand_off(vec![delivery(2, 2)]);
        assert!(matches!(a.next().await, Next::Lagged));
    }

    #[tokio::test]
    async fn lag_all_ends_every_subscription() {
        let hub = Arc::new(Hub::default());
        let mut a = hub.subscribe(vec![MailboxId([1; 32])], q()).unwrap();
        let mut b = hub.subscribe(vec![MailboxId([2; 32])], q()).unwrap();
        assert!(hub.has_subscribers(&MailboxId([2; 32])));
        assert!(!hub.has_subscribers(&MailboxId([3; 32])));
        hub.lag_all();
        assert!(matches!(a.next().await, Next::Lagged));
        assert!(matches!(b.next().await, Next::Lagged));
    }
}
