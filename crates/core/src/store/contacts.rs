//! The `contacts` table: one row per relationship, holding its name, its session state and
//! its per-contact settings.

use hush_crypto::{HandshakeId, Session};
use rusqlite::{OptionalExtension, params};

use super::{Db, InviteId, signed, unsigned};
use crate::api::ContactInfo;
use crate::error::{Error, Result};

/// A contact's row id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContactId(pub(crate) i64);

/// What sending to a contact needs besides its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContactSettings {
    /// Disappearing-message timer of the conversation.
    pub disappear_secs: Option<u64>,
    /// Send delivery receipts.
    pub receipts: bool,
    /// The id the next outgoing content gets.
    pub next_msg_id: u64,
    /// Blocked: what it sends is dropped, nothing is sent to it.
    pub blocked: bool,
}

fn bool_of(v: i64, what: &'static str) -> Result<bool> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Error::StoreCorrupted(what)),
    }
}

fn timer_of(v: Option<i64>) -> Result<Option<u64>> {
    v.map(|t| unsigned(t, "disappearing timer")).transpose()
}

impl<'a> Db<'a> {
    /// Rows of `(id, blob, n)` from `sql`, the blob parsed by `parse` and `n` a
    /// non-negative integer (`what` names it if it is not).
    pub(super) fn rows_with_u64<T>(
        self,
        sql: &str,
        what: &'static str,
        parse: impl Fn(i64, &[u8]) -> Result<T>,
    ) -> Result<Vec<(T, u64)>> {
        let mut stmt = self.0.prepare(sql)?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, blob, n) = row?;
            out.push((parse(id, &blob)?, unsigned(n, what)?));
        }
        Ok(out)
    }

    /// The contact named `name`.
    pub(crate) fn contact_id(self, name: &str) -> Result<Option<ContactId>> {
        Ok(self
            .0
            .query_row("SELECT id FROM contacts WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?
            .map(ContactId))
    }

    /// The contact named `name`, or [`Error::UnknownContact`].
    pub(crate) fn existing_contact(self, name: &str) -> Result<ContactId> {
        self.contact_id(name)?.ok_or(Error::UnknownContact)
    }

    /// Every contact as front ends list it: the most recent conversation first (its last
    /// message sent or received, else when the contact was made), then by name.
    pub(crate) fn contact_list(self) -> Result<Vec<ContactInfo>> {
        let mut stmt = self.0.prepare(
            "SELECT c.id, c.name, c.verified, c.disappear_secs, c.session,
                    (SELECT count(*) FROM messages m
                     WHERE m.contact_id = c.id AND m.outgoing = 0 AND m.shown = 0),
                    (SELECT max(coalesce(m.received_at, m.sent_at)) FROM messages m
                     WHERE m.contact_id = c.id) AS activity
             FROM contacts c
             ORDER BY coalesce(activity, c.created) DESC, c.name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Vec<u8>>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<i64>>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (name, verified, disappear, session, unread, activity) = row?;
            out.push(ContactInfo {
                name,
                verified: bool_of(verified, "verified flag")?,
                disappear_secs: timer_of(disappear)?,
                unread: unsigned(unread, "unread count")?,
                pending: Session::from_bytes(&session)?.awaiting_reply(),
                last_activity: activity.map(|t| unsigned(t, "message time")).transpose()?,
            });
        }
        Ok(out)
    }

    /// Every contact with its session and the last receive epoch fetched.
    pub(crate) fn contact_sessions(self) -> Result<Vec<(ContactId, Session, u64)>> {
        self.rows_with_u64(
            "SELECT id, session, last_epoch FROM contacts ORDER BY id",
            "last epoch",
            |id, bytes| Ok((ContactId(id), Session::from_bytes(bytes)?)),
        )
        .map(|rows| rows.into_iter().map(|((id, s), e)| (id, s, e)).collect())
    }

    /// A contact's session state.
    pub(crate) fn session(self, id: ContactId) -> Result<Session> {
        let bytes: Vec<u8> =
            self.0
                .query_row("SELECT session FROM contacts WHERE id = ?1", [id.0], |r| {
                    r.get(0)
                })?;
        Ok(Session::from_bytes(&bytes)?)
    }

    /// The contact whose handshake has this id, with its session.
    pub(crate) fn contact_by_handshake(
        self,
        hid: &HandshakeId,
    ) -> Result<Option<(ContactId, Session)>> {
        let found: Option<(i64, Vec<u8>)> = self
            .0
            .query_row(
                "SELECT id, session FROM contacts WHERE handshake_id = ?1",
                [&hid.0[..]],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match found {
            Some((id, bytes)) => Ok(Some((ContactId(id), Session::from_bytes(&bytes)?))),
            None => Ok(None),
        }
    }

    /// Settings that shape what is sent to a contact.
    pub(crate) fn contact_settings(self, id: ContactId) -> Result<ContactSettings> {
        let (disappear, receipts, next, blocked): (Option<i64>, i64, i64, i64) = self.0.query_row(
            "SELECT disappear_secs, receipts, next_msg_id, blocked FROM contacts WHERE id = ?1",
            [id.0],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        Ok(ContactSettings {
            disappear_secs: timer_of(disappear)?,
            receipts: bool_of(receipts, "receipts flag")?,
            next_msg_id: unsigned(next, "next message id")?,
            blocked: bool_of(blocked, "blocked flag")?,
        })
    }

    /// Blocks or unblocks a contact.
    pub(crate) fn set_blocked(self, id: ContactId, blocked: bool) -> Result<()> {
        self.0.execute(
            "UPDATE contacts SET blocked = ?1 WHERE id = ?2",
            params![i64::from(blocked), id.0],
        )?;
        Ok(())
    }

    /// Deletes a contact with its session, history, pieces and outbox (they cascade).
    pub(crate) fn delete_contact(self, id: ContactId) -> Result<()> {
        self.0
            .execute("DELETE FROM contacts WHERE id = ?1", [id.0])?;
        Ok(())
    }

    /// Whether the user marked the contact verified.
    pub(crate) fn verified(self, id: ContactId) -> Result<bool> {
        let v: i64 =
            self.0
                .query_row("SELECT verified FROM contacts WHERE id = ?1", [id.0], |r| {
                    r.get(0)
                })?;
        bool_of(v, "verified flag")
    }

    /// Adds a contact; fails with [`Error::DuplicateContact`] if the name is taken.
    pub(crate) fn insert_contact(
        self,
        name: &str,
        session: &Session,
        invite: Option<InviteId>,
        epoch: u64,
        now_secs: u64,
    ) -> Result<ContactId> {
        if self.contact_id(name)?.is_some() {
            return Err(Error::DuplicateContact);
        }
        self.0.execute(
            "INSERT INTO contacts(name, handshake_id, session, invite_id, last_epoch, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                name,
                &session.handshake_id().0[..],
                session.to_bytes().as_slice(),
                invite.map(|i| i.0),
                signed(epoch, "epoch")?,
                signed(now_secs, "time")?
            ],
        )?;
        Ok(ContactId(self.0.last_insert_rowid()))
    }

    /// Stores a contact's session state.
    pub(crate) fn save_session(self, id: ContactId, session: &Session) -> Result<()> {
        self.0.execute(
            "UPDATE contacts SET session = ?1 WHERE id = ?2",
            params![session.to_bytes().as_slice(), id.0],
        )?;
        Ok(())
    }

    /// Stores a contact's session state and the id its next outgoing content gets.
    pub(crate) fn save_sending_session(
        self,
        id: ContactId,
        session: &Session,
        next_msg_id: u64,
    ) -> Result<()> {
        self.0.execute(
            "UPDATE contacts SET session = ?1, next_msg_id = ?2 WHERE id = ?3",
            params![
                session.to_bytes().as_slice(),
                signed(next_msg_id, "message id")?,
                id.0
            ],
        )?;
        Ok(())
    }

    /// Records that the receive mailboxes were fetched up to `epoch`.
    pub(crate) fn set_contact_epoch(self, id: ContactId, epoch: u64) -> Result<()> {
        self.0.execute(
            "UPDATE contacts SET last_epoch = ?1 WHERE id = ?2",
            params![signed(epoch, "epoch")?, id.0],
        )?;
        Ok(())
    }

    /// Marks a contact verified or not.
    pub(crate) fn set_verified(self, id: ContactId, verified: bool) -> Result<()> {
        self.0.execute(
            "UPDATE contacts SET verified = ?1 WHERE id = ?2",
            params![i64::from(verified), id.0],
        )?;
        Ok(())
    }

    /// Turns receipts to a contact on or off.
    pub(crate) fn set_receipts(self, id: ContactId, on: bool) -> Result<()> {
        self.0.execute(
            "UPDATE contacts SET receipts = ?1 WHERE id = ?2",
            params![i64::from(on), id.0],
        )?;
        Ok(())
    }

    /// Sets the conversation's disappearing timer (`None`: off).
    pub(crate) fn set_disappear(self, id: ContactId, secs: Option<u64>) -> Result<()> {
        let secs = secs.map(|s| signed(s, "timer")).transpose()?;
        self.0.execute(
            "UPDATE contacts SET disappear_secs = ?1 WHERE id = ?2",
            params![secs, id.0],
        )?;
        Ok(())
    }

    /// Renames a contact; fails with [`Error::DuplicateContact`] if the name is taken.
    pub(crate) fn rename_contact(self, id: ContactId, name: &str) -> Result<()> {
        if self.contact_id(name)?.is_some() {
            return Err(Error::DuplicateContact);
        }
        self.0.execute(
            "UPDATE contacts SET name = ?1 WHERE id = ?2",
            params![name, id.0],
        )?;
        Ok(())
    }
}
