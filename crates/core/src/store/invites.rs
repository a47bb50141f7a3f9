//! The `invites` table: invites this profile made (one-time links and contact addresses)
//! with the secrets that answer them.

use hush_crypto::{InviteKind, InviterSecrets};
use rusqlite::{OptionalExtension, params};

use super::{ContactId, Db, signed, unsigned};
use crate::api::InviteInfo;
use crate::error::{Error, Result};

/// An invite's row id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InviteId(pub(crate) i64);

/// An invite still answered, as the engine watches it.
pub(crate) struct ActiveInvite {
    pub(crate) id: InviteId,
    pub(crate) secrets: InviterSecrets,
    /// Unix seconds.
    pub(crate) created: u64,
}

fn kind_name(kind: InviteKind) -> &'static str {
    match kind {
        InviteKind::OneTime => "one-time",
        InviteKind::ContactAddress => "address",
    }
}

impl Db<'_> {
    /// Stores a new invite; `name` names the contact a one-time invite creates.
    pub(crate) fn insert_invite(
        self,
        secrets: &InviterSecrets,
        name: Option<&str>,
        epoch: u64,
        now_secs: u64,
    ) -> Result<InviteId> {
        self.0.execute(
            "INSERT INTO invites(kind, secrets, name, created, last_epoch)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                kind_name(secrets.kind()),
                secrets.to_bytes().as_slice(),
                name,
                signed(now_secs, "time")?,
                signed(epoch, "epoch")?
            ],
        )?;
        Ok(InviteId(self.0.last_insert_rowid()))
    }

    /// Every invite still answered (not retired).
    pub(crate) fn active_invites(self) -> Result<Vec<ActiveInvite>> {
        let rows = self.rows_with_u64(
            "SELECT id, secrets, created FROM invites WHERE active = 1 ORDER BY id",
            "time",
            |id, bytes| Ok((InviteId(id), InviterSecrets::from_bytes(bytes)?)),
        )?;
        Ok(rows
            .into_iter()
            .map(|((id, secrets), created)| ActiveInvite {
                id,
                secrets,
                created,
            })
            .collect())
    }

    /// Every invite still answered, for front ends, oldest first.
    pub(crate) fn invite_list(self) -> Result<Vec<InviteInfo>> {
        let mut stmt = self.0.prepare(
            "SELECT id, secrets, name, created FROM invites WHERE active = 1 ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, secrets, name, created) = row?;
            let secrets = InviterSecrets::from_bytes(&secrets)?;
            out.push(InviteInfo {
                id,
                kind: secrets.kind(),
                name,
                created: unsigned(created, "time")?,
                uses: secrets.accepted_count() as u64,
            });
        }
        Ok(out)
    }

    /// Stops answering an invite: its handshake mailboxes are no longer fetched or watched.
    /// [`Error::UnknownInvite`] if no invite still answered has that id.
    pub(crate) fn retire_invite(self, id: InviteId) -> Result<()> {
        let n = self.0.execute(
            "UPDATE invites SET active = 0 WHERE id = ?1 AND active = 1",
            [id.0],
        )?;
        if n == 0 {
            return Err(Error::UnknownInvite);
        }
        Ok(())
    }

    /// The one-time invite, still answered, that made this contact (inviter side).
    pub(crate) fn active_one_time_invite_of(self, contact: ContactId) -> Result<Option<InviteId>> {
        Ok(self
            .0
            .query_row(
                "SELECT i.id FROM contacts c JOIN invites i ON i.id = c.invite_id
                 WHERE c.id = ?1 AND i.kind = 'one-time' AND i.active = 1",
                [contact.0],
                |r| r.get(0),
            )
            .optional()?
            .map(InviteId))
    }

    /// The secrets of every invite this profile made, answered still or not.
    pub(crate) fn all_invite_secrets(self) -> Result<Vec<InviterSecrets>> {
        let mut stmt = self.0.prepare("SELECT secrets FROM invites ORDER BY id")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for bytes in rows {
            out.push(InviterSecrets::from_bytes(&bytes?)?);
        }
        Ok(out)
    }

    /// An invite's secrets and the name its contact gets.
    pub(crate) fn invite(self, id: InviteId) -> Result<(InviterSecrets, Option<String>)> {
        let (bytes, name): (Vec<u8>, Option<String>) = self.0.query_row(
            "SELECT secrets, name FROM invites WHERE id = ?1",
            [id.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((InviterSecrets::from_bytes(&bytes)?, name))
    }

    /// Stores an invite's secrets (after a handshake used them).
    pub(crate) fn save_invite_secrets(self, id: InviteId, secrets: &InviterSecrets) -> Result<()> {
        self.0.execute(
            "UPDATE invites SET secrets = ?1 WHERE id = ?2",
            params![secrets.to_bytes().as_slice(), id.0],
        )?;
        Ok(())
    }
}
