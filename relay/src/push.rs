//! Push: fan-out of committed deposits to subscribed connections.
//!
//! Owns: the in-memory map from mailbox id to live subscriptions, and the bounded queue per
//! subscription. Must never block the committer (a full queue marks the subscription lagged
//! instead of waiting), never persist anything, and never outlive the subscription that
//! registered (entries are removed when the [`Subscription`] drops).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use hush_proto::{Delivery, MailboxId};
use tokio::sync::{Notify, mpsc};

/// Pushes queued per subscription before it is declared lagged.
pub const QUEUE_LEN: usize = 256;

struct Subscriber {
    tx: mpsc::Sender<Delivery>,
    lagged: AtomicBool,
    lag: Notify,
}

/// Subscribers of one mailbox, by subscription id.
type Subscribers = Vec<(u64, Arc<Subscriber>)>;

/// The registry of live subscriptions.
#[derive(Default)]
pub struct Hub {
    map: Mutex<HashMap<MailboxId, Subscribers>>,
    next: AtomicU64,
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
    rx: mpsc::Receiver<Delivery>,
}

/// What a subscription yields next.
#[derive(Debug)]
pub enum Next {
    /// A committed deposit.
    Delivery(Delivery),
    /// The queue overflowed; the subscription must end with `Lagged`.
    Lagged,
}

impl Hub {
    /// Registers a subscription to `mailboxes`.
    pub fn subscribe(self: &Arc<Self>, mut mailboxes: Vec<MailboxId>) -> Subscription {
        mailboxes.sort();
        mailboxes.dedup();
        let (tx, rx) = mpsc::channel(QUEUE_LEN);
        let sub = Arc::new(Subscriber {
            tx,
            lagged: AtomicBool::new(false),
            lag: Notify::new(),
        });
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        {
            let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
            for mb in &mailboxes {
                map.entry(*mb).or_default().push((id, sub.clone()));
            }
        }
        Subscription {
            hub: self.clone(),
            id,
            mailboxes,
            sub,
            rx,
        }
    }

    /// Offers a committed deposit to every subscriber of its mailbox; returns how many got it.
    pub fn publish(&self, delivery: &Delivery) -> u64 {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(subs) = map.get(&delivery.mailbox) else {
            return 0;
        };
        let mut n = 0;
        for (_, s) in subs {
            match s.tx.try_send(delivery.clone()) {
                Ok(()) => n += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    s.lagged.store(true, Ordering::Release);
                    s.lag.notify_one();
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
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
            s.lagged.store(true, Ordering::Release);
            s.lag.notify_one();
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
                    Some(d) => return Next::Delivery(d),
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

    #[tokio::test]
    async fn publishes_to_subscribers_of_that_mailbox_only_and_unregisters_on_drop() {
        let hub = Arc::new(Hub::default());
        let mut a = hub.subscribe(vec![MailboxId([1; 32]), MailboxId([1; 32])]);
        assert_eq!(a.len(), 1, "duplicates collapse");
        let b = hub.subscribe(vec![MailboxId([2; 32])]);
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
    async fn a_full_queue_marks_the_subscription_lagged() {
        let hub = Arc::new(Hub::default());
        let mut a = hub.subscribe(vec![MailboxId([1; 32])]);
        for i in 0..QUEUE_LEN as u64 {
            assert_eq!(hub.publish(&delivery(1, i)), 1);
        }
        assert_eq!(hub.publish(&delivery(1, 999)), 0);
        assert!(matches!(a.next().await, Next::Lagged));
    }

    #[tokio::test]
    async fn lag_all_ends_every_subscription() {
        let hub = Arc::new(Hub::default());
        let mut a = hub.subscribe(vec![MailboxId([1; 32])]);
        let mut b = hub.subscribe(vec![MailboxId([2; 32])]);
        assert!(hub.has_subscribers(&MailboxId([2; 32])));
        assert!(!hub.has_subscribers(&MailboxId([3; 32])));
        hub.lag_all();
        assert!(matches!(a.next().await, Next::Lagged));
        assert!(matches!(b.next().await, Next::Lagged));
    }
}
