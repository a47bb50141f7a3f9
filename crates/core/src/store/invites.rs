//! The `invites` table: invites this profile made (one-time links and contact addresses)
//! with the secrets that answer them.

use hush_crypto::{InviteKind, InviterSecrets};
use rusqlite::params;

use super::{Db, signed};
use crate::error::Result;

/// An invite's row id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InviteId(pub(crate) i64);

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

    /// Every invite still answered, with the last handshake epoch fetched.
    pub(crate) fn active_invites(self) -> Result<Vec<(InviteId, InviterSecrets, u64)>> {
        self.rows_with_epoch(
            "SELECT id, secrets, last_epoch FROM invites WHERE active = 1 ORDER BY id",
            |id, bytes| Ok((InviteId(id), InviterSecrets::from_bytes(bytes)?)),
        )
        .map(|rows| rows.into_iter().map(|((id, s), e)| (id, s, e)).collect())
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

    /// Records that the handshake mailboxes were fetched up to `epoch`.
    pub(crate) fn set_invite_epoch(self, id: InviteId, epoch: u64) -> Result<()> {
        self.0.execute(
            "UPDATE invites SET last_epoch = ?1 WHERE id = ?2",
            params![signed(epoch, "epoch")?, id.0],
        )?;
        Ok(())
    }
}
