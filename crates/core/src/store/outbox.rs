//! The `outbox` table: encrypted envelopes waiting for a relay's durable acknowledgement,
//! with their retry schedule.

use hush_crypto::Target;
use hush_proto::{DropAddress, Envelope, MailboxId, RelayAddress};
use rusqlite::{OptionalExtension, params};

use super::{ContactId, Db, signed, unsigned};
use crate::error::{Error, Result};

/// An outbox row id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutboxId(pub(crate) i64);

/// One envelope waiting to be deposited.
#[derive(Clone)]
pub struct OutboxEntry {
    /// Row id.
    pub id: OutboxId,
    /// The contact it goes to (never sent anywhere: it only keys per-contact connections).
    pub contact: super::ContactId,
    /// Where it goes.
    pub relay: RelayAddress,
    /// The mailbox or drop it goes to.
    pub target: Target,
    /// The envelope.
    pub envelope: Envelope,
}

impl std::fmt::Debug for OutboxEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            id,
            contact: _,
            relay: _,
            target: _,
            envelope: _,
        } = self;
        f.debug_struct("OutboxEntry")
            .field("id", id)
            .finish_non_exhaustive()
    }
}

impl Db<'_> {
    /// Queues an envelope; `message` is the message row it carries part of, if any.
    pub(crate) fn insert_outbox(
        self,
        contact: ContactId,
        message: Option<i64>,
        relay: &RelayAddress,
        target: &Target,
        envelope: &Envelope,
    ) -> Result<OutboxId> {
        let (mailbox, bits) = match target {
            Target::Mailbox(id) => (id, None),
            Target::Drop(drop) => (&drop.id, Some(drop.bits)),
        };
        self.0.execute(
            "INSERT INTO outbox(contact_id, message_id, relay, mailbox_id, envelope, next_attempt,
                                stamp_bits)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
            params![
                contact.0,
                message,
                relay.to_string(),
                &mailbox.as_bytes()[..],
                &envelope.as_bytes()[..],
                bits
            ],
        )?;
        Ok(OutboxId(self.0.last_insert_rowid()))
    }

    /// Entries due by `due_by` (Unix seconds), oldest first.
    pub(crate) fn due_outbox(self, due_by: u64) -> Result<Vec<OutboxEntry>> {
        let due_by = i64::try_from(due_by).unwrap_or(i64::MAX);
        let mut stmt = self.0.prepare(
            "SELECT id, relay, mailbox_id, envelope, stamp_bits, contact_id FROM outbox
             WHERE next_attempt <= ?1 ORDER BY id",
        )?;
        let raw = stmt.query_map([due_by], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in raw {
            let (id, relay, mailbox, envelope, bits, contact) = row?;
            let id_bytes = MailboxId(
                mailbox
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::StoreCorrupted("outbox mailbox id"))?,
            );
            let target = match bits {
                None => Target::Mailbox(id_bytes),
                Some(b) => Target::Drop(DropAddress {
                    id: id_bytes,
                    bits: u8::try_from(b)
                        .ok()
                        .filter(|b| *b <= hush_proto::drop::MAX_STAMP_BITS)
                        .ok_or(Error::StoreCorrupted("outbox stamp difficulty"))?,
                }),
            };
            out.push(OutboxEntry {
                id: OutboxId(id),
                contact: super::ContactId(contact),
                relay: relay
                    .parse()
                    .map_err(|_| Error::StoreCorrupted("outbox relay address"))?,
                target,
                envelope: Envelope::from_slice(&envelope)
                    .map_err(|_| Error::StoreCorrupted("outbox envelope"))?,
            });
        }
        Ok(out)
    }

    /// Every entry's next attempt, Unix seconds.
    pub(crate) fn outbox_schedule(self) -> Result<Vec<(OutboxId, u64)>> {
        let mut stmt = self.0.prepare("SELECT id, next_attempt FROM outbox")?;
        let raw = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = Vec::new();
        for row in raw {
            let (id, next) = row?;
            out.push((OutboxId(id), unsigned(next, "next attempt")?));
        }
        Ok(out)
    }

    /// Removes a deposited entry; returns the message row it carried part of. `None` if it
    /// was gone already (a duplicate acknowledgement).
    pub(crate) fn remove_outbox(self, id: OutboxId) -> Result<Option<Option<i64>>> {
        let message: Option<Option<i64>> = self
            .0
            .query_row("SELECT message_id FROM outbox WHERE id = ?1", [id.0], |r| {
                r.get(0)
            })
            .optional()?;
        if message.is_some() {
            self.0.execute("DELETE FROM outbox WHERE id = ?1", [id.0])?;
        }
        Ok(message)
    }

    /// Envelopes of a message still waiting.
    pub(crate) fn outbox_left_for_message(self, row: i64) -> Result<u64> {
        let n: i64 = self.0.query_row(
            "SELECT count(*) FROM outbox WHERE message_id = ?1",
            [row],
            |r| r.get(0),
        )?;
        unsigned(n, "outbox count")
    }

    /// Records a failed attempt and when to try next; returns the failures so far, or
    /// `None` if the entry is gone.
    pub(crate) fn outbox_failed(self, id: OutboxId, next_attempt_secs: u64) -> Result<Option<u64>> {
        let attempts: Option<i64> = self
            .0
            .query_row("SELECT attempts FROM outbox WHERE id = ?1", [id.0], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(attempts) = attempts else {
            return Ok(None);
        };
        self.0.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?1 WHERE id = ?2",
            params![signed(next_attempt_secs, "time")?, id.0],
        )?;
        Ok(Some(unsigned(attempts, "attempts")? + 1))
    }

    /// Failures so far of an entry (0 if it is gone).
    pub(crate) fn outbox_attempts(self, id: OutboxId) -> Result<u64> {
        let attempts: Option<i64> = self
            .0
            .query_row("SELECT attempts FROM outbox WHERE id = ?1", [id.0], |r| {
                r.get(0)
            })
            .optional()?;
        attempts.map_or(Ok(0), |a| unsigned(a, "attempts"))
    }

    /// Envelopes waiting, of one contact or of all.
    pub(crate) fn outbox_len(self, contact: Option<ContactId>) -> Result<u64> {
        let n: i64 = match contact {
            Some(c) => self.0.query_row(
                "SELECT count(*) FROM outbox WHERE contact_id = ?1",
                [c.0],
                |r| r.get(0),
            )?,
            None => self
                .0
                .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?,
        };
        unsigned(n, "outbox count")
    }
}
