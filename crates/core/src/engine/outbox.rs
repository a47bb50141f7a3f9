//! Sending: content is encrypted into the outbox in one transaction with the session that
//! produced it, deposited, and retried with backoff until a relay acknowledges a durable
//! commit. When an entry leaves is the schedule's to say (see `schedule`): paced in normal
//! mode, at a deposit slot in high-risk mode, where a slot with nothing waiting carries a
//! cover envelope.

use std::collections::{BTreeSet, HashMap, HashSet};

use hush_crypto::Target;
use hush_crypto::{Session, payload};
use hush_proto::{ENVELOPE_LEN, Envelope, MailboxId, RelayAddress};
use rand_core::Rng;

use super::schedule::Pace;
use super::{DepositFailure, Engine, FlushWaiter, Lane, LinkOp, Ticket};
use crate::api::{DeliveryState, Event, Response};
use crate::backoff::Backoff;
use crate::content::Content;
use crate::error::Result;
use crate::store::{ContactId, NewOutgoing, OutboxEntry, OutboxId};

impl Engine {
    /// Encrypts content for a contact into the outbox, in one transaction with the session
    /// state (and the message row, for text). Returns the message row id.
    pub(super) fn send_content(
        &mut self,
        contact: ContactId,
        content: &Content,
        text: Option<&str>,
        pace: Pace,
    ) -> Result<Option<i64>> {
        let now = self.now.unix_secs();
        let settings = self.store.db().contact_settings(contact)?;
        let msg_id = settings.next_msg_id;
        let session = self.store.db().session(contact)?;
        let pieces = payload::fragment(msg_id, &content.encode(), session.payload_capacity())?;
        let message = text.map(|body| NewOutgoing {
            msg_id,
            body,
            sent_at: now,
            expires_at: settings.disappear_secs.map(|d| now.saturating_add(d)),
        });
        self.queue_payloads(
            contact,
            session,
            &pieces,
            message.as_ref(),
            msg_id + 1,
            pace,
        )
    }

    /// Encrypts payloads with `session` into the outbox and stores the session, the id of
    /// the next content and the message row (if any) in one transaction.
    pub(super) fn queue_payloads(
        &mut self,
        contact: ContactId,
        mut session: Session,
        payloads: &[Vec<u8>],
        message: Option<&NewOutgoing<'_>>,
        next_msg_id: u64,
        pace: Pace,
    ) -> Result<Option<i64>> {
        let now = self.now.unix_secs();
        let mut envelopes: Vec<(RelayAddress, Target, Envelope)> =
            Vec::with_capacity(payloads.len());
        for piece in payloads {
            let env = session.encrypt(piece, &mut self.rng)?;
            let (relay, target) = session.deposit_target(now);
            envelopes.push((relay.clone(), target, env));
        }
        let tx = self.store.transaction()?;
        let db = tx.db();
        let row = message
            .map(|m| db.insert_outgoing(contact, m))
            .transpose()?;
        let mut ids = Vec::with_capacity(envelopes.len());
        for (relay, target, env) in &envelopes {
            ids.push(db.insert_outbox(contact, row, relay, target, env)?);
        }
        db.save_sending_session(contact, &session, next_msg_id)?;
        tx.commit()?;
        if !self.schedule.high_risk() {
            self.schedule.pace(&ids, pace, self.now, &mut self.rng);
        }
        Ok(row)
    }

    /// `flush`: send what is due and answer when every deposit on its way has finished,
    /// and in normal mode every paced one too (it leaves within seconds). In high-risk mode
    /// nothing leaves but at its slot: the answer is what waits, at once.
    pub(super) fn flush(&mut self, ticket: Ticket) -> Option<Result<Response>> {
        if self.schedule.high_risk() {
            return Some(self.store.db().outbox_len(None).map(Response::Count));
        }
        match self.flush_due(None) {
            Ok(mut waiting) => {
                // Deposits already on their way count too, and those held by pacing.
                waiting.extend(self.in_flight.iter().copied());
                match self.store.db().due_outbox(u64::MAX) {
                    Ok(entries) => waiting.extend(
                        entries
                            .into_iter()
                            .map(|e| e.id)
                            .filter(|id| self.schedule.release_of(*id) > self.now),
                    ),
                    Err(e) => return Some(Err(e)),
                }
                if waiting.is_empty() {
                    Some(self.store.db().outbox_len(None).map(Response::Count))
                } else {
                    self.flush_waiters.push(FlushWaiter { waiting, ticket });
                    None
                }
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// Sends every due outbox entry not already in flight; returns their ids.
    pub(super) fn flush_due(&mut self, only: Option<&RelayAddress>) -> Result<HashSet<OutboxId>> {
        self.flush_due_by(only, self.now.unix_secs())
    }

    /// Sends every outbox entry due by `due_by` (Unix seconds) not already in flight and
    /// released by pacing (normal mode; in high-risk mode only slots send). Backoff spaces
    /// out retries against a relay that is down; a new engine (the user ran a command) and a
    /// link that came back up retry everything at once.
    pub(super) fn flush_due_by(
        &mut self,
        only: Option<&RelayAddress>,
        due_by: u64,
    ) -> Result<HashSet<OutboxId>> {
        let mut sent = HashSet::new();
        if self.schedule.high_risk() {
            return Ok(sent);
        }
        let now = self.now.unix_secs();
        // Where each contact's deposits go now: one session read per contact and flush, and
        // none for entries pacing still holds.
        let mut current: HashMap<ContactId, (RelayAddress, Target)> = HashMap::new();
        for entry in self.store.db().due_outbox(due_by)? {
            if self.in_flight.contains(&entry.id) || self.schedule.release_of(entry.id) > self.now {
                continue;
            }
            let here = match current.entry(entry.contact) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let session = self.store.db().session(entry.contact)?;
                    let (relay, target) = session.deposit_target(now);
                    v.insert((relay.clone(), target))
                }
            };
            let (relay, target) = leaving_route(&entry, Some((&here.0, here.1)));
            if only.is_some_and(|o| *o != relay)
                || !self.schedule.released(entry.id, self.now, &mut self.rng)
            {
                continue;
            }
            self.in_flight.insert(entry.id);
            sent.insert(entry.id);
            // With isolation, on the contact's deposit lane of the current window.
            let lane = self
                .isolating()
                .then(|| Lane::of(entry.contact, self.now.epoch(), false));
            self.push_request_on(
                &relay,
                Some(entry.contact),
                lane,
                LinkOp::Deposit {
                    outbox: entry.id,
                    target,
                    envelope: entry.envelope,
                },
            );
        }
        Ok(sent)
    }

    pub(super) fn on_deposited(
        &mut self,
        outbox: OutboxId,
        result: std::result::Result<(), DepositFailure>,
    ) -> Result<()> {
        if self.schedule.take_cover(outbox) {
            // Cover is never retried: the next slot draws anew.
            return Ok(());
        }
        self.in_flight.remove(&outbox);
        match result {
            Ok(()) => {
                if let Some(Some(row)) = self.store.db().remove_outbox(outbox)?
                    && self.store.db().outbox_left_for_message(row)? == 0
                    && self.store.db().mark_on_relay(row)?
                {
                    self.emit_delivery(row, DeliveryState::OnRelay)?;
                }
            }
            Err(reason) => {
                tracing::info!(reason = ?reason, "deposit failed; will retry");
                let failures = self.store.db().outbox_attempts(outbox)?;
                let delay = Backoff::OUTBOX
                    .delay(u32::try_from(failures).unwrap_or(u32::MAX), &mut self.rng);
                let next = self.now.plus(delay).unix_secs();
                self.store.db().outbox_failed(outbox, next)?;
            }
        }
        let mut i = 0;
        while i < self.flush_waiters.len() {
            let w = &mut self.flush_waiters[i];
            w.waiting.remove(&outbox);
            if w.waiting.is_empty() {
                let w = self.flush_waiters.remove(i);
                let left = self.store.db().outbox_len(None).map(Response::Count);
                self.replies.push_back((w.ticket, left));
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    /// A high-risk deposit slot: it belongs to a contact drawn uniformly (the schedule's
    /// generator), so each relationship's mailbox gets deposits at the same rate whatever
    /// is said on it. It carries that contact's oldest waiting envelope, else a cover
    /// envelope to the mailbox a real one would go to.
    pub(super) fn deposit_slot(&mut self) -> Result<()> {
        let now = self.now.unix_secs();
        let waiting: Vec<_> = self
            .store
            .db()
            .due_outbox(u64::MAX)?
            .into_iter()
            .filter(|e| !self.in_flight.contains(&e.id))
            .collect();
        let mut contacts = BTreeSet::new();
        let mut sessions = Vec::new();
        for (id, session, _) in self.store.db().contact_sessions()? {
            if !self.store.db().contact_settings(id)?.blocked {
                contacts.insert(id);
                sessions.push((id, session));
            }
        }
        // A blocked contact's old entries still leave (as before they were blocked).
        contacts.extend(waiting.iter().map(|e| e.contact));
        let contacts: Vec<ContactId> = contacts.into_iter().collect();
        if contacts.is_empty() {
            // No relationship to hide yet: the rate is kept with cover to a mailbox id
            // nobody holds, on the relay new invites point to.
            if let Ok(relay) = self.home_relay() {
                let target = Target::Mailbox(self.random_mailbox());
                self.cover_deposit(&relay, None, target)?;
            }
            return Ok(());
        }
        let pick = contacts[self.schedule.pick(contacts.len())];
        let current = sessions
            .into_iter()
            .find(|(id, _)| *id == pick)
            .map(|(_, session)| {
                let (relay, target) = session.deposit_target(now);
                (relay.clone(), target)
            });
        if let Some(entry) = waiting.into_iter().find(|e| e.contact == pick) {
            // In high-risk mode an old epoch's mailbox getting a deposit would also mark it
            // as real to the relay: cover goes to the current one.
            let (relay, target) = leaving_route(&entry, current.as_ref().map(|(r, t)| (r, *t)));
            self.in_flight.insert(entry.id);
            let lane = Lane::of(entry.contact, self.now.epoch(), false);
            self.push_request_on(
                &relay,
                Some(entry.contact),
                Some(lane),
                LinkOp::Deposit {
                    outbox: entry.id,
                    target,
                    envelope: entry.envelope,
                },
            );
            return Ok(());
        }
        let Some((relay, target)) = current else {
            return Ok(());
        };
        // Until the inviter answered, a contact's real envelopes go to the invite's drop,
        // which takes only stamped deposits: cover goes to a mailbox id nobody holds instead.
        let target = match target {
            Target::Mailbox(_) => target,
            Target::Drop(_) => Target::Mailbox(self.random_mailbox()),
        };
        self.cover_deposit(&relay, Some(pick), target)
    }

    fn random_mailbox(&mut self) -> MailboxId {
        let mut id = [0u8; 32];
        self.rng.fill_bytes(&mut id);
        MailboxId(id)
    }

    /// Deposits a cover envelope: 4096 bytes from the engine's generator, which no key
    /// opens, so its recipient drops it (docs/PROTOCOL.md section 10a).
    fn cover_deposit(
        &mut self,
        relay: &RelayAddress,
        contact: Option<ContactId>,
        target: Target,
    ) -> Result<()> {
        let mut bytes = vec![0u8; ENVELOPE_LEN];
        self.rng.fill_bytes(&mut bytes);
        // ENVELOPE_LEN bytes always make an envelope.
        #[allow(clippy::expect_used)]
        let envelope = Envelope::from_vec(bytes).expect("an envelope of ENVELOPE_LEN bytes");
        let outbox = self.schedule.new_cover();
        let lane = contact.map(|c| Lane::of(c, self.now.epoch(), false));
        self.push_request_on(
            relay,
            contact,
            lane,
            LinkOp::Deposit {
                outbox,
                target,
                envelope,
            },
        );
        Ok(())
    }

    pub(super) fn emit_delivery(&mut self, row: i64, state: DeliveryState) -> Result<()> {
        let contact = self.store.db().message_contact(row)?;
        self.emit(Event::DeliveryChanged {
            contact,
            id: row,
            state,
        });
        Ok(())
    }
}

/// Where an outbox entry goes when it leaves, given where its contact's deposits go now:
/// an envelope for a mailbox that waited (pacing, backoff, a slot) into a later epoch goes
/// to the current epoch's mailbox, where its recipient looks (the old one may be watched no
/// more); a session envelope does not depend on the mailbox it travels in. One for a drop
/// stays for that drop.
fn leaving_route(
    entry: &OutboxEntry,
    current: Option<(&RelayAddress, Target)>,
) -> (RelayAddress, Target) {
    match (&entry.target, current) {
        (Target::Mailbox(_), Some((relay, target @ Target::Mailbox(_)))) => (relay.clone(), target),
        _ => (entry.relay.clone(), entry.target),
    }
}
