//! Receiving: an envelope is decrypted into a prepared session state, what it carried is
//! committed together with that state, and only then is the envelope acknowledged. What no
//! key opens, or what is malformed inside, is dropped (and acknowledged: it can never
//! become readable).

use hush_crypto::Session;
use hush_crypto::handshake::InitOutcome;
use hush_crypto::payload::Payload;
use hush_proto::{Envelope, EnvelopeId, MailboxId};

use super::schedule::Pace;
use super::{Engine, Lane, LinkOp, Owner};
use crate::api::{DeliveryState, Event};
use crate::content::Content;
use crate::error::{Error, Result};
use crate::store::{ContactId, FragmentOutcome, InviteId, NewReceived};

#[cfg(feature = "test-hooks")]
use super::CrashPoint;

/// What committing a payload led to, to act on after the commit.
#[derive(Default)]
struct Committed {
    received: Option<i64>,
    receipt_for: Option<u64>,
    delivered: Vec<i64>,
}

impl Engine {
    #[cfg(feature = "test-hooks")]
    fn crash_if(&self, point: CrashPoint) {
        if self.config.crash_at == Some(point) {
            std::process::abort();
        }
    }

    pub(super) fn on_delivery(
        &mut self,
        mailbox: &MailboxId,
        id: EnvelopeId,
        envelope: &Envelope,
    ) -> Result<()> {
        let Some(route) = self.routes.get(mailbox) else {
            return Ok(());
        };
        let (owner, secret, relay) = (route.owner, route.secret.clone(), route.relay.clone());
        // The acknowledgement presents the fetch secret again: with isolation, on the lane
        // it was fetched on.
        let lane = match owner {
            Owner::Contact(c) if self.isolating() => Some(Lane::of(c, route.epoch, true)),
            _ => None,
        };
        // Only a committed (or permanently unusable) envelope is acknowledged.
        self.process_envelope(owner, envelope)?;
        #[cfg(feature = "test-hooks")]
        self.crash_if(CrashPoint::BeforeAck);
        self.push_request_on(
            &relay,
            lane.map(|l| l.contact),
            lane,
            LinkOp::Delete {
                secret,
                ids: vec![id],
            },
        );
        self.acks_in_flight += 1;
        Ok(())
    }

    fn process_envelope(&mut self, owner: Owner, env: &Envelope) -> Result<()> {
        match owner {
            Owner::Contact(id) => {
                let mut session = self.store.db().session(id)?;
                match session.decrypt(env, &mut self.rng) {
                    Ok(payload) => {
                        self.commit_payload(id, session, &payload)?;
                        self.heard_from(id)
                    }
                    Err(e) => {
                        // A replay (already committed), an envelope no key opens, or a cover
                        // envelope (random bytes: docs/PROTOCOL.md section 10a), which is
                        // recognised exactly so: it is dropped (and acknowledged) and the
                        // session it was tried with is not saved, so it costs no state.
                        tracing::debug!(error = %e, "envelope not decrypted; dropped");
                        Ok(())
                    }
                }
            }
            Owner::Invite(invite) => self.process_init(invite, env),
        }
    }

    fn process_init(&mut self, invite: InviteId, env: &Envelope) -> Result<()> {
        let (mut secrets, name) = self.store.db().invite(invite)?;
        match secrets.handle_init(env, &mut self.rng) {
            Err(e) => {
                tracing::debug!(error = %e, "handshake envelope rejected; dropped");
                Ok(())
            }
            Ok(InitOutcome::New { session, payload }) => {
                let name = match name {
                    Some(n) if self.store.db().contact_id(&n)?.is_none() => n,
                    _ => self.fresh_contact_name()?,
                };
                let id = {
                    let tx = self.store.transaction()?;
                    let db = tx.db();
                    let id = db.insert_contact(
                        &name,
                        &session,
                        Some(invite),
                        self.now.epoch(),
                        self.now.unix_secs(),
                    )?;
                    db.save_invite_secrets(invite, &secrets)?;
                    tx.commit()?;
                    id
                };
                self.emit(Event::ContactAdded { name });
                self.commit_payload(id, *session, &payload)?;
                // Answer at once: the reply completes the handshake (the invitee leaves the
                // handshake mailbox and the post-quantum secret enters the root key).
                // It is paced as a receipt: leaving at once, it would tie the invitee's
                // deposit to this device's fetch in time.
                self.send_content(
                    id,
                    &Content::Receipt { ids: Vec::new() },
                    None,
                    Pace::Receipt,
                )?;
                self.refresh_subscriptions()?;
                self.flush_due(None)?;
                Ok(())
            }
            Ok(InitOutcome::Existing(opened)) => {
                let Some((id, mut session)) = self
                    .store
                    .db()
                    .contact_by_handshake(&opened.handshake_id())?
                else {
                    return Ok(());
                };
                match session.handle_init(&opened, &mut self.rng) {
                    Ok(payload) => self.commit_payload(id, session, &payload),
                    Err(e) => {
                        tracing::debug!(error = %e, "repeated handshake envelope dropped");
                        Ok(())
                    }
                }
            }
        }
    }

    /// Commits a decrypted payload and the session that produced it in one transaction,
    /// then does what follows (events, receipts).
    fn commit_payload(
        &mut self,
        contact: ContactId,
        mut session: Session,
        bytes: &[u8],
    ) -> Result<()> {
        let now = self.now.unix_secs();
        let payload = Payload::decode(bytes);
        #[cfg(feature = "test-hooks")]
        self.crash_if(CrashPoint::BeforeCommit);
        let mut done = Committed::default();
        let blocked = self.store.db().contact_settings(contact)?.blocked;
        let tx = self.store.transaction()?;
        let db = tx.db();
        match payload {
            Ok(Payload::MailboxMove(mv)) => session.apply_peer_mailbox_move(&mv),
            // A blocked contact's texts and receipts are dropped; its ratchet still moves
            // on, and the envelope is acknowledged, so nothing piles up on the relay.
            Ok(Payload::Fragment(_)) if blocked => {}
            Ok(Payload::Fragment(frag)) => match db.add_fragment(contact, &frag)? {
                FragmentOutcome::Complete(content) => match Content::decode(&content) {
                    Ok(Content::Text {
                        sent_at,
                        disappear_secs,
                        body,
                    }) => {
                        let timer = (disappear_secs > 0).then_some(u64::from(disappear_secs));
                        done.received = db.insert_received(
                            contact,
                            &NewReceived {
                                msg_id: frag.message_id,
                                body: &body,
                                sent_at,
                                received_at: now,
                                expires_at: timer.map(|t| now.saturating_add(t)),
                            },
                        )?;
                        // The peer's timer is the conversation's timer.
                        db.set_disappear(contact, timer)?;
                        if done.received.is_some() {
                            done.receipt_for = Some(frag.message_id);
                        }
                    }
                    Ok(Content::Receipt { ids }) => {
                        done.delivered = db.mark_delivered(contact, &ids)?;
                    }
                    // A file offer is a message (its name and size) and a files row; a
                    // refused one is a message naming the refusal, and nothing else. Both
                    // follow the conversation's timer, as text does.
                    Ok(
                        ref c @ (Content::File {
                            sent_at,
                            disappear_secs,
                            ..
                        }
                        | Content::BadFile {
                            sent_at,
                            disappear_secs,
                            ..
                        }),
                    ) => {
                        let body = c.file_text().unwrap_or_default();
                        let timer = (disappear_secs > 0).then_some(u64::from(disappear_secs));
                        done.received = db.insert_received(
                            contact,
                            &NewReceived {
                                msg_id: frag.message_id,
                                body: &body,
                                sent_at,
                                received_at: now,
                                expires_at: timer.map(|t| now.saturating_add(t)),
                            },
                        )?;
                        db.set_disappear(contact, timer)?;
                        if let (Some(row), Content::File { descriptor, .. }) = (done.received, c) {
                            db.insert_incoming_file(contact, row, descriptor, now)?;
                            done.receipt_for = Some(frag.message_id);
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "content dropped"),
                },
                FragmentOutcome::Pending => {}
                FragmentOutcome::Rejected(why) => tracing::debug!(why, "fragment dropped"),
            },
            Err(e) => tracing::debug!(error = %e, "payload dropped"),
        }
        db.save_session(contact, &session)?;
        tx.commit()?;

        for row in done.delivered {
            self.emit_delivery(row, DeliveryState::Delivered)?;
        }
        if let Some(row) = done.received {
            let m = self.store.db().message(row)?;
            self.emit(Event::Message(m));
        }
        if let Some(msg_id) = done.receipt_for
            && self.store.db().contact_settings(contact)?.receipts
        {
            self.send_content(
                contact,
                &Content::Receipt { ids: vec![msg_id] },
                None,
                Pace::Receipt,
            )?;
            self.flush_due(None)?;
        }
        Ok(())
    }

    fn fresh_contact_name(&self) -> Result<String> {
        for n in 1u64.. {
            let name = format!("contact-{n}");
            if self.store.db().contact_id(&name)?.is_none() {
                return Ok(name);
            }
        }
        Err(Error::DuplicateContact)
    }
}
