//! An in-memory relay with the wire semantics of hush-relay (docs/PROTOCOL.md Part II):
//! deposits under mailbox ids with a per-mailbox quota and an expiry, fetch and delete by
//! fetch secret, ids growing in commit order, and push to subscribers of a mailbox. Like a
//! real relay it keeps ordinary mailboxes and drops under storage keys that never meet
//! (a secret opens one or the other, never both); it takes a deposit to a drop as paid (the
//! real link mints its stamp, which the relay tests cover).

use std::collections::BTreeMap;

use hush_crypto::Target;
use hush_proto::drop::storage_key;
use hush_proto::{DropAddress, Envelope, EnvelopeId, ErrorCode, MailboxId, RelayAddress};

use crate::engine::{DepositFailure, LinkEvent, Opener, Time};

/// Where a relay stores what `opener` opens.
fn key_of(opener: &Opener) -> MailboxId {
    match opener {
        Opener::Mailbox(s) => storage_key(&s.mailbox_id()),
        Opener::Drop(s) => DropAddress::of_secret(s).storage_key(),
    }
}

/// The relays' default per-mailbox quota.
pub(crate) const MAILBOX_QUOTA: usize = 256;
/// The relays' default expiry: 7 days.
pub(crate) const EXPIRY_SECS: u64 = 7 * 24 * 3600;

pub(crate) struct SimRelay {
    pub(crate) address: RelayAddress,
    pub(crate) up: bool,
    next_id: u64,
    mailboxes: BTreeMap<MailboxId, BTreeMap<EnvelopeId, (Envelope, Time)>>,
    /// (node, connection) -> storage keys pushed to it, with the id each is reported by.
    subscriptions: BTreeMap<(usize, u64), BTreeMap<MailboxId, MailboxId>>,
}

/// A push: to node, on connection, this event.
pub(crate) type Push = (usize, u64, LinkEvent);

impl SimRelay {
    pub(crate) fn new(address: RelayAddress) -> Self {
        Self {
            address,
            up: true,
            next_id: 1,
            mailboxes: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
        }
    }

    /// Envelopes stored, in all mailboxes.
    pub(crate) fn stored(&self) -> usize {
        self.mailboxes.values().map(BTreeMap::len).sum()
    }

    fn expire(&mut self, now: Time) {
        for m in self.mailboxes.values_mut() {
            m.retain(|_, (_, at)| at.unix_secs().saturating_add(EXPIRY_SECS) > now.unix_secs());
        }
        self.mailboxes.retain(|_, m| !m.is_empty());
    }

    pub(crate) fn deposit(
        &mut self,
        target: Target,
        envelope: Envelope,
        now: Time,
    ) -> (Result<(), DepositFailure>, Vec<Push>) {
        self.expire(now);
        let key = match target {
            Target::Mailbox(id) => storage_key(&id),
            Target::Drop(drop) => drop.storage_key(),
        };
        let m = self.mailboxes.entry(key).or_default();
        if m.len() >= MAILBOX_QUOTA {
            return (
                Err(DepositFailure::Refused(ErrorCode::MailboxFull)),
                Vec::new(),
            );
        }
        let id = EnvelopeId(self.next_id);
        self.next_id += 1;
        m.insert(id, (envelope.clone(), now));
        let pushes = self
            .subscriptions
            .iter()
            .filter_map(|(&(node, conn), boxes)| {
                let mailbox = *boxes.get(&key)?;
                let ev = LinkEvent::Delivery {
                    mailbox,
                    id,
                    envelope: envelope.clone(),
                };
                Some((node, conn, ev))
            })
            .collect();
        (Ok(()), pushes)
    }

    pub(crate) fn fetch(&mut self, secrets: &[Opener], now: Time) -> Vec<LinkEvent> {
        self.expire(now);
        let mut out = Vec::new();
        for s in secrets {
            let mailbox = s.mailbox_id();
            if let Some(m) = self.mailboxes.get(&key_of(s)) {
                for (id, (env, _)) in m {
                    out.push(LinkEvent::Delivery {
                        mailbox,
                        id: *id,
                        envelope: env.clone(),
                    });
                }
            }
        }
        out
    }

    pub(crate) fn delete(&mut self, secret: &Opener, ids: &[EnvelopeId]) {
        if let Some(m) = self.mailboxes.get_mut(&key_of(secret)) {
            for id in ids {
                m.remove(id);
            }
        }
    }

    pub(crate) fn subscribe(&mut self, node: usize, connection: u64, secrets: &[Opener]) {
        // A subscription replaces the earlier one of its connection only: with isolation a
        // node holds one per lane, each on its own connection.
        self.subscriptions
            .retain(|(n, c), _| *n != node || *c != connection);
        self.subscriptions.insert(
            (node, connection),
            secrets
                .iter()
                .map(|s| (key_of(s), s.mailbox_id()))
                .collect(),
        );
    }

    /// Whether `node` asked to be pushed `mailbox` (by the id it knows, on any connection).
    pub(crate) fn watches(&self, node: usize, mailbox: &MailboxId) -> bool {
        self.subscriptions
            .iter()
            .any(|((n, _), set)| *n == node && set.values().any(|m| m == mailbox))
    }

    pub(crate) fn forget_node(&mut self, node: usize) {
        self.subscriptions.retain(|(n, _), _| *n != node);
    }

    pub(crate) fn forget_subscriptions(&mut self) {
        self.subscriptions.clear();
    }
}
