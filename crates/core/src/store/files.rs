//! The `files` table: file transfers sent and received, with the progress a resumed
//! transfer starts from (crate::files).

use rusqlite::{OptionalExtension, Row, params};

use super::{ContactId, Db};
use crate::error::{Error, Result};
use crate::files::{FileDescriptor, FileError};

/// Where a transfer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileState {
    /// Sender: chunks are being uploaded.
    Uploading,
    /// Sender: every chunk is on the relay and the descriptor was sent.
    Sent,
    /// Receiver: the descriptor arrived; nothing fetched yet.
    Offered,
    /// Receiver: accepted into a directory; chunks are being fetched.
    Downloading,
    /// Receiver: saved and verified.
    Complete,
    /// Gave up (the error says why); nothing of a failed download is left on disk.
    Failed,
}

impl FileState {
    /// Stable name (stored, and printed by the CLI).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uploading => "uploading",
            Self::Sent => "sent",
            Self::Offered => "offered",
            Self::Downloading => "downloading",
            Self::Complete => "complete",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "uploading" => Self::Uploading,
            "sent" => Self::Sent,
            "offered" => Self::Offered,
            "downloading" => Self::Downloading,
            "complete" => Self::Complete,
            "failed" => Self::Failed,
            _ => return Err(Error::StoreCorrupted("file state")),
        })
    }
}

/// One transfer.
#[derive(Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Row id (what `hush get-file` names).
    pub id: i64,
    /// The contact's name.
    pub contact: String,
    /// Sent by us.
    pub outgoing: bool,
    /// The descriptor (its secret included: never printed).
    pub descriptor: FileDescriptor,
    /// Sender: the source file; receiver: where it was saved.
    pub path: Option<String>,
    /// Receiver: the directory chosen.
    pub dir: Option<String>,
    /// Where it is.
    pub state: FileState,
    /// Chunks done (persisted).
    pub prefix: u32,
    /// Receiver: the relay's chunks were deleted after the download.
    pub cleaned: bool,
    /// Why it failed.
    pub error: Option<FileError>,
    /// Sender: the source's modification time (seconds) when it was offered.
    pub source_mtime: Option<u64>,
}

impl std::fmt::Debug for FileInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileInfo")
            .field("id", &self.id)
            .field("state", &self.state)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "f.id, c.name, f.outgoing, f.descriptor, f.path, f.dir, f.state, f.prefix, f.cleaned, f.error, f.source_mtime";

fn row(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

type RawRow = (
    i64,
    String,
    bool,
    Vec<u8>,
    Option<String>,
    Option<String>,
    String,
    i64,
    bool,
    Option<String>,
    Option<i64>,
);

fn info(raw: RawRow) -> Result<FileInfo> {
    let (id, contact, outgoing, descriptor, path, dir, state, prefix, cleaned, error, mtime) = raw;
    Ok(FileInfo {
        id,
        contact,
        outgoing,
        descriptor: FileDescriptor::decode(&descriptor)
            .map_err(|_| Error::StoreCorrupted("file descriptor"))?,
        path,
        dir,
        state: FileState::parse(&state)?,
        prefix: u32::try_from(prefix).map_err(|_| Error::StoreCorrupted("file progress"))?,
        cleaned,
        error: error.as_deref().and_then(FileError::from_name),
        source_mtime: mtime.and_then(|m| u64::try_from(m).ok()),
    })
}

impl Db<'_> {
    /// Records a file being sent (state `uploading`).
    pub(crate) fn insert_outgoing_file(
        self,
        contact: ContactId,
        descriptor: &FileDescriptor,
        path: &str,
        source_mtime: u64,
        now: u64,
    ) -> Result<i64> {
        let bytes = descriptor
            .encode()
            .map_err(|e| Error::InvalidArgument(e.name().into()))?;
        self.0.execute(
            "INSERT INTO files(contact_id, outgoing, descriptor, path, state, source_mtime, created)
             VALUES (?1, 1, ?2, ?3, 'uploading', ?4, ?5)",
            params![
                contact.0,
                bytes,
                path,
                super::signed(source_mtime, "time")?,
                super::signed(now, "time")?
            ],
        )?;
        Ok(self.0.last_insert_rowid())
    }

    /// Records a received descriptor (state `offered`) for the message row `message`.
    pub(crate) fn insert_incoming_file(
        self,
        contact: ContactId,
        message: i64,
        descriptor: &FileDescriptor,
        now: u64,
    ) -> Result<i64> {
        let bytes = descriptor
            .encode()
            .map_err(|e| Error::InvalidArgument(e.name().into()))?;
        self.0.execute(
            "INSERT INTO files(contact_id, message_id, outgoing, descriptor, state, created)
             VALUES (?1, ?2, 0, ?3, 'offered', ?4)",
            params![contact.0, message, bytes, super::signed(now, "time")?],
        )?;
        Ok(self.0.last_insert_rowid())
    }

    /// One transfer.
    pub(crate) fn file(self, id: i64) -> Result<FileInfo> {
        let raw = self
            .0
            .query_row(
                &format!("SELECT {COLUMNS} FROM files f JOIN contacts c ON c.id = f.contact_id WHERE f.id = ?1"),
                [id],
                row,
            )
            .optional()?
            .ok_or(Error::UnknownFile)?;
        info(raw)
    }

    /// Transfers, oldest first; of one contact if given.
    pub(crate) fn files(self, contact: Option<ContactId>) -> Result<Vec<FileInfo>> {
        let mut st = self.0.prepare(&format!(
            "SELECT {COLUMNS} FROM files f JOIN contacts c ON c.id = f.contact_id
             WHERE ?1 IS NULL OR f.contact_id = ?1 ORDER BY f.id"
        ))?;
        let rows = st.query_map([contact.map(|c| c.0)], row)?;
        rows.map(|r| info(r?)).collect()
    }

    /// Persists progress: chunks `0..prefix` are done. Never moves backwards.
    /// Deletes the transfers whose message has expired (a disappearing conversation) and
    /// returns, for the received ones not saved yet, their chosen directory, neutralised name
    /// and id: where a partial file may be. Runs before [`Db::delete_expired`], which would
    /// otherwise unlink the message and leave the row (and the file's key) behind.
    pub(crate) fn delete_expired_files(self, now_secs: u64) -> Result<Vec<(String, String, i64)>> {
        const EXPIRED: &str = "SELECT f.id FROM files f JOIN messages m ON m.id = f.message_id
             WHERE m.expires_at IS NOT NULL AND m.expires_at <= ?1";
        let now = super::signed(now_secs, "time")?;
        let mut partial = Vec::new();
        let mut stmt = self.0.prepare(&format!(
            "SELECT f.id, f.descriptor, f.dir FROM files f WHERE f.id IN ({EXPIRED})
             AND f.outgoing = 0 AND f.state != 'complete' AND f.dir IS NOT NULL"
        ))?;
        let rows = stmt.query_map([now], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (id, descriptor, dir) = row?;
            let d = FileDescriptor::decode(&descriptor)
                .map_err(|_| Error::StoreCorrupted("file descriptor"))?;
            partial.push((dir, crate::files::safe_name(&d.name), id));
        }
        self.0
            .execute(&format!("DELETE FROM files WHERE id IN ({EXPIRED})"), [now])?;
        Ok(partial)
    }

    pub(crate) fn set_file_prefix(self, id: i64, prefix: u32) -> Result<()> {
        self.0.execute(
            "UPDATE files SET prefix = max(prefix, ?2) WHERE id = ?1",
            params![id, i64::from(prefix)],
        )?;
        Ok(())
    }

    /// Moves a transfer to `state`, with the saved path, chosen directory and error if given.
    pub(crate) fn set_file_state(
        self,
        id: i64,
        state: super::files::FileState,
        path: Option<&str>,
        dir: Option<&str>,
        error: Option<FileError>,
    ) -> Result<()> {
        let n = self.0.execute(
            "UPDATE files SET state = ?2, path = coalesce(?3, path), dir = coalesce(?4, dir),
             error = ?5 WHERE id = ?1",
            params![id, state.as_str(), path, dir, error.map(FileError::name)],
        )?;
        if n == 0 {
            return Err(Error::UnknownFile);
        }
        Ok(())
    }

    /// Links an outgoing transfer to the message row that carried its descriptor.
    pub(crate) fn set_file_message(self, id: i64, message: i64) -> Result<()> {
        self.0.execute(
            "UPDATE files SET message_id = ?2 WHERE id = ?1",
            params![id, message],
        )?;
        Ok(())
    }

    /// Marks a received transfer's chunks deleted from the relay.
    pub(crate) fn set_file_cleaned(self, id: i64) -> Result<()> {
        self.0
            .execute("UPDATE files SET cleaned = 1 WHERE id = ?1", [id])?;
        Ok(())
    }
}
