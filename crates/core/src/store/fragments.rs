//! The `fragments` table: pieces of contents that arrived in several envelopes, kept until
//! the last piece is in. This is hush's one reassembly: durable (a piece is committed with
//! the session state that decrypted it, before its envelope is acknowledged) and bounded
//! per contact, so a hostile contact cannot make the store grow without limit.
//!
//! Bounds: a content has at most [`MAX_FRAGMENTS`] pieces; at most [`MAX_PARTIAL`]
//! contents of one contact are incomplete at once and they hold at most
//! [`MAX_PARTIAL_BYTES`]; past either bound the incomplete content with the smallest id
//! (the oldest, as a sender's ids increase) is dropped first.

use hush_crypto::payload::{Fragment, MAX_FRAGMENTS, MAX_PARTIAL};
use rusqlite::{OptionalExtension, params};

use super::{ContactId, Db, signed, unsigned};
use crate::error::{Error, Result};

/// Most bytes of incomplete contents kept per contact (16 MiB).
pub(crate) const MAX_PARTIAL_BYTES: u64 = 16 << 20;

/// What adding a piece did.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum FragmentOutcome {
    /// That was the last piece: here is the whole content (its pieces are deleted).
    Complete(Vec<u8>),
    /// Stored; more pieces are missing.
    Pending,
    /// Not kept: the piece contradicts the others or breaks a bound.
    Rejected(&'static str),
}

impl std::fmt::Debug for FragmentOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Complete(c) => write!(f, "Complete({} bytes)", c.len()),
            Self::Pending => f.write_str("Pending"),
            Self::Rejected(why) => write!(f, "Rejected({why})"),
        }
    }
}

impl Db<'_> {
    /// Adds one piece of a contact's content.
    pub(crate) fn add_fragment(
        self,
        contact: ContactId,
        frag: &Fragment,
    ) -> Result<FragmentOutcome> {
        if frag.count == 0 || frag.index >= frag.count || frag.count > MAX_FRAGMENTS {
            return Ok(FragmentOutcome::Rejected("bad fragment index or count"));
        }
        if frag.count == 1 {
            return Ok(FragmentOutcome::Complete(frag.data.clone()));
        }
        let msg = signed(frag.message_id, "message id")?;
        let known: Option<i64> = self
            .0
            .query_row(
                "SELECT count FROM fragments WHERE contact_id = ?1 AND msg_id = ?2 LIMIT 1",
                params![contact.0, msg],
                |r| r.get(0),
            )
            .optional()?;
        match known {
            Some(c) if c != i64::from(frag.count) => {
                return Ok(FragmentOutcome::Rejected("fragment count changed"));
            }
            Some(_) => {}
            None => {
                while self.partial_contents(contact)? >= MAX_PARTIAL as u64 {
                    self.drop_oldest_partial(contact, None)?;
                }
            }
        }
        self.0.execute(
            "INSERT OR IGNORE INTO fragments(contact_id, msg_id, idx, count, data)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                contact.0,
                msg,
                i64::from(frag.index),
                i64::from(frag.count),
                frag.data
            ],
        )?;
        while self.partial_bytes(contact)? > MAX_PARTIAL_BYTES {
            if !self.drop_oldest_partial(contact, Some(msg))? {
                self.drop_partial(contact, msg)?;
                return Ok(FragmentOutcome::Rejected("content too large"));
            }
        }
        let have: i64 = self.0.query_row(
            "SELECT count(*) FROM fragments WHERE contact_id = ?1 AND msg_id = ?2",
            params![contact.0, msg],
            |r| r.get(0),
        )?;
        if have < i64::from(frag.count) {
            return Ok(FragmentOutcome::Pending);
        }
        let mut stmt = self.0.prepare(
            "SELECT data FROM fragments WHERE contact_id = ?1 AND msg_id = ?2 ORDER BY idx",
        )?;
        let mut content = Vec::new();
        for piece in stmt.query_map(params![contact.0, msg], |r| r.get::<_, Vec<u8>>(0))? {
            content.extend_from_slice(&piece?);
        }
        self.drop_partial(contact, msg)?;
        Ok(FragmentOutcome::Complete(content))
    }

    /// Incomplete contents of a contact.
    pub(crate) fn partial_contents(self, contact: ContactId) -> Result<u64> {
        let n: i64 = self.0.query_row(
            "SELECT count(DISTINCT msg_id) FROM fragments WHERE contact_id = ?1",
            [contact.0],
            |r| r.get(0),
        )?;
        unsigned(n, "fragment count")
    }

    /// Bytes held for a contact's incomplete contents.
    pub(crate) fn partial_bytes(self, contact: ContactId) -> Result<u64> {
        let n: i64 = self.0.query_row(
            "SELECT coalesce(sum(length(data)), 0) FROM fragments WHERE contact_id = ?1",
            [contact.0],
            |r| r.get(0),
        )?;
        unsigned(n, "fragment bytes")
    }

    /// Drops the incomplete content with the smallest id other than `keep`; `false` if
    /// there is none.
    fn drop_oldest_partial(self, contact: ContactId, keep: Option<i64>) -> Result<bool> {
        let oldest: Option<i64> = self
            .0
            .query_row(
                "SELECT min(msg_id) FROM fragments WHERE contact_id = ?1 AND msg_id != ?2",
                params![contact.0, keep.unwrap_or(-1)],
                |r| r.get(0),
            )
            .map_err(Error::from)?;
        match oldest {
            Some(m) => {
                self.drop_partial(contact, m)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn drop_partial(self, contact: ContactId, msg: i64) -> Result<()> {
        self.0.execute(
            "DELETE FROM fragments WHERE contact_id = ?1 AND msg_id = ?2",
            params![contact.0, msg],
        )?;
        Ok(())
    }
}
