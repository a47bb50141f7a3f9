//! Sending: content is encrypted into the outbox in one transaction with the session that
//! produced it, deposited, and retried with backoff until a relay acknowledges a durable
//! commit.

use std::collections::HashSet;

use hush_crypto::Target;
use hush_crypto::{Session, payload};
use hush_proto::{Envelope, RelayAddress};

use super::{DepositFailure, Engine, FlushWaiter, LinkOp, Ticket};
use crate::api::{DeliveryState, Event, Response};
use crate::backoff::Backoff;
use crate::content::Content;
use crate::error::Result;
use crate::store::{ContactId, NewOutgoing, OutboxId};

impl Engine {
    /// Encrypts content for a contact into the outbox, in one transaction with the session
    /// state (and the message row, for text). Returns the message row id.
    pub(super) fn send_content(
        &mut self,
        contact: ContactId,
        content: &Content,
        text: Option<&str>,
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
        self.queue_payloads(contact, session, &pieces, message.as_ref(), msg_id + 1)
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
        for (relay, target, env) in &envelopes {
            db.insert_outbox(contact, row, relay, target, env)?;
        }
        db.save_sending_session(contact, &session, next_msg_id)?;
        tx.commit()?;
        Ok(row)
    }

    /// `flush`: send what is due and answer when every deposit on its way has finished.
    pub(super) fn flush(&mut self, ticket: Ticket) -> Option<Result<Response>> {
        match self.flush_due(None) {
            Ok(mut waiting) => {
                // Deposits already on their way count too.
                waiting.extend(self.in_flight.iter().copied());
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

    /// Sends every outbox entry due by `due_by` (Unix seconds) not already in flight.
    /// Backoff spaces out retries against a relay that is down; a new engine (the user ran a
    /// command) and a link that came back up retry everything at once.
    pub(super) fn flush_due_by(
        &mut self,
        only: Option<&RelayAddress>,
        due_by: u64,
    ) -> Result<HashSet<OutboxId>> {
        let mut sent = HashSet::new();
        for entry in self.store.db().due_outbox(due_by)? {
            if self.in_flight.contains(&entry.id) || only.is_some_and(|o| *o != entry.relay) {
                continue;
            }
            self.in_flight.insert(entry.id);
            sent.insert(entry.id);
            self.push_request_for(
                &entry.relay,
                Some(entry.contact),
                LinkOp::Deposit {
                    outbox: entry.id,
                    target: entry.target,
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
