//! The `messages` table: the conversation history, incoming and outgoing, with delivery
//! states and disappearing deadlines.

use rusqlite::{OptionalExtension, params};

use super::{ContactId, Db, signed, unsigned};
use crate::api::{DeliveryState, MessageInfo};
use crate::error::{Error, Result};

/// An outgoing text message about to be queued.
pub struct NewOutgoing<'a> {
    /// The id the peer will see.
    pub msg_id: u64,
    /// The text.
    pub body: &'a str,
    /// Our clock, Unix seconds.
    pub sent_at: u64,
    /// When it disappears, Unix seconds.
    pub expires_at: Option<u64>,
}

/// A received text message about to be committed.
pub struct NewReceived<'a> {
    /// The sender's id for it.
    pub msg_id: u64,
    /// The text.
    pub body: &'a str,
    /// The sender's clock, Unix seconds.
    pub sent_at: u64,
    /// Our clock, Unix seconds.
    pub received_at: u64,
    /// When it disappears, Unix seconds.
    pub expires_at: Option<u64>,
}

/// Messages in conversation order, from the rows `filter` keeps (a `WHERE` clause on
/// `m`, the messages, and `c`, their contacts); the caller adds `ORDER BY` on `pos, msg_id`.
///
/// Conversation order is the order each side sent in (docs/PROTOCOL.md, "Behaviour"): a
/// message takes the place of the first-arrived of its sender's later messages, and messages
/// at one place follow the sender's message ids. So A, B, C queued during an outage and D
/// sent after it show A, B, C, D even though D arrived first. `pos` is that place: the
/// least row id among the messages of the same contact and direction with a message id at
/// least as high (our own ids grow with our row ids, so for outgoing messages it is their
/// own row id).
fn select(filter: &str) -> String {
    format!(
        "SELECT id, name, outgoing, body, sent_at, state, expires_at FROM (
             SELECT m.id, c.name, m.outgoing, m.body, m.sent_at, m.state, m.expires_at, m.msg_id,
                    min(m.id) OVER (PARTITION BY m.contact_id, m.outgoing ORDER BY m.msg_id DESC
                                    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS pos
             FROM messages m JOIN contacts c ON c.id = m.contact_id
             WHERE {filter})"
    )
}

fn rows(
    stmt: &mut rusqlite::Statement<'_>,
    args: impl rusqlite::Params,
) -> Result<Vec<MessageInfo>> {
    let raw = stmt.query_map(args, |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, Option<i64>>(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in raw {
        let (id, contact, outgoing, body, sent_at, state, expires_at) = row?;
        out.push(MessageInfo {
            id,
            contact,
            outgoing: match outgoing {
                0 => false,
                1 => true,
                _ => return Err(Error::StoreCorrupted("message direction")),
            },
            body,
            sent_at: unsigned(sent_at, "message time")?,
            state: DeliveryState::from_stored(&state)
                .ok_or(Error::StoreCorrupted("delivery state"))?,
            expires_at: expires_at
                .map(|t| unsigned(t, "disappearing deadline"))
                .transpose()?,
        });
    }
    Ok(out)
}

fn opt_time(t: Option<u64>) -> Result<Option<i64>> {
    t.map(|t| signed(t, "time")).transpose()
}

impl Db<'_> {
    /// Adds an outgoing message in state queued; returns its row id.
    pub(crate) fn insert_outgoing(self, contact: ContactId, m: &NewOutgoing<'_>) -> Result<i64> {
        self.0.execute(
            "INSERT INTO messages(contact_id, outgoing, msg_id, body, sent_at, state, expires_at, shown)
             VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6, 1)",
            params![
                contact.0,
                signed(m.msg_id, "message id")?,
                m.body,
                signed(m.sent_at, "time")?,
                DeliveryState::Queued.as_str(),
                opt_time(m.expires_at)?
            ],
        )?;
        Ok(self.0.last_insert_rowid())
    }

    /// Adds a received message; `None` if that message was already received.
    pub(crate) fn insert_received(
        self,
        contact: ContactId,
        m: &NewReceived<'_>,
    ) -> Result<Option<i64>> {
        let inserted = self.0.execute(
            "INSERT OR IGNORE INTO messages(contact_id, outgoing, msg_id, body, sent_at, received_at, state, expires_at)
             VALUES (?1, 0, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                contact.0,
                signed(m.msg_id, "message id")?,
                m.body,
                signed(m.sent_at, "time")?,
                signed(m.received_at, "time")?,
                DeliveryState::Received.as_str(),
                opt_time(m.expires_at)?
            ],
        )?;
        Ok((inserted > 0).then(|| self.0.last_insert_rowid()))
    }

    /// Marks our messages with these ids delivered; returns the rows that changed.
    pub(crate) fn mark_delivered(self, contact: ContactId, msg_ids: &[u64]) -> Result<Vec<i64>> {
        let mut changed = Vec::new();
        for &id in msg_ids {
            let row: Option<i64> = self
                .0
                .query_row(
                    "SELECT id FROM messages
                     WHERE contact_id = ?1 AND outgoing = 1 AND msg_id = ?2 AND state != ?3",
                    params![
                        contact.0,
                        signed(id, "message id")?,
                        DeliveryState::Delivered.as_str()
                    ],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(row) = row {
                self.0.execute(
                    "UPDATE messages SET state = ?1 WHERE id = ?2",
                    params![DeliveryState::Delivered.as_str(), row],
                )?;
                changed.push(row);
            }
        }
        Ok(changed)
    }

    /// Moves a queued message to on-relay; `false` if it was not queued any more.
    pub(crate) fn mark_on_relay(self, row: i64) -> Result<bool> {
        let n = self.0.execute(
            "UPDATE messages SET state = ?1 WHERE id = ?2 AND state = ?3",
            params![
                DeliveryState::OnRelay.as_str(),
                row,
                DeliveryState::Queued.as_str()
            ],
        )?;
        Ok(n > 0)
    }

    /// One message.
    pub(crate) fn message(self, row: i64) -> Result<MessageInfo> {
        let mut stmt = self.0.prepare(&select("m.id = ?1"))?;
        rows(&mut stmt, [row])?
            .pop()
            .ok_or(Error::StoreCorrupted("message row missing"))
    }

    /// The contact a message belongs to, by name.
    pub(crate) fn message_contact(self, row: i64) -> Result<String> {
        Ok(self.0.query_row(
            "SELECT c.name FROM messages m JOIN contacts c ON c.id = m.contact_id WHERE m.id = ?1",
            [row],
            |r| r.get(0),
        )?)
    }

    /// The last `limit` messages with a contact, in conversation order (see [`select`]).
    pub(crate) fn last_messages(
        self,
        contact: ContactId,
        limit: usize,
    ) -> Result<Vec<MessageInfo>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.0.prepare(&format!(
            "{} ORDER BY pos DESC, msg_id DESC LIMIT ?2",
            select("m.contact_id = ?1")
        ))?;
        let mut out = rows(&mut stmt, params![contact.0, limit])?;
        out.reverse();
        Ok(out)
    }

    /// Received messages not shown yet, in conversation order (see [`select`]).
    pub(crate) fn unshown(self) -> Result<Vec<MessageInfo>> {
        let mut stmt = self.0.prepare(&format!(
            "{} ORDER BY pos, msg_id",
            select("m.outgoing = 0 AND m.shown = 0")
        ))?;
        rows(&mut stmt, [])
    }

    /// Marks received messages shown: of one contact, or of all.
    pub(crate) fn mark_shown(self, contact: Option<ContactId>) -> Result<()> {
        match contact {
            Some(c) => self.0.execute(
                "UPDATE messages SET shown = 1 WHERE contact_id = ?1 AND outgoing = 0 AND shown = 0",
                [c.0],
            )?,
            None => self.0.execute(
                "UPDATE messages SET shown = 1 WHERE outgoing = 0 AND shown = 0",
                [],
            )?,
        };
        Ok(())
    }

    /// Deletes a contact's history; returns how many messages.
    pub(crate) fn delete_messages(self, contact: ContactId) -> Result<u64> {
        let n = self
            .0
            .execute("DELETE FROM messages WHERE contact_id = ?1", [contact.0])?;
        Ok(n as u64)
    }

    /// Deletes messages whose disappearing deadline has passed; returns how many.
    pub(crate) fn delete_expired(self, now_secs: u64) -> Result<u64> {
        let n = self.0.execute(
            "DELETE FROM messages WHERE expires_at IS NOT NULL AND expires_at <= ?1",
            [signed(now_secs, "time")?],
        )?;
        Ok(n as u64)
    }

    /// The earliest disappearing deadline, Unix seconds.
    pub(crate) fn next_expiry(self) -> Result<Option<u64>> {
        let t: Option<i64> = self.0.query_row(
            "SELECT min(expires_at) FROM messages WHERE expires_at IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        t.map(|t| unsigned(t, "disappearing deadline")).transpose()
    }
}
