//! The `settings` table: profile-wide values, one row per [`Setting`].

use rusqlite::{OptionalExtension, params};

use super::{Db, Store};
use crate::error::Result;

/// A profile-wide value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Setting {
    /// The relay new invites point to (`hush://` text form); unset: the local relay.
    Relay,
    /// High-risk traffic mode (`on`/`off`; unset: off). Kept in the encrypted store, not in
    /// `config.toml`, so that the profile's plaintext files do not say it is on.
    HighRisk,
    /// Per-contact isolation in normal mode (`on`/`off`; unset: off): a connection per
    /// relationship and window of epochs (see `engine::Lane`). High-risk mode isolates
    /// whatever this says. Kept beside `HighRisk`, for the same reason.
    Isolation,
    /// The limit on a received file's size, in bytes (unset: crate::files::DEFAULT_LIMIT_BYTES).
    FileLimit,
}

impl Setting {
    fn key(self) -> &'static str {
        match self {
            Self::Relay => "relay",
            Self::HighRisk => "high_risk",
            Self::Isolation => "isolation",
            Self::FileLimit => "file_limit_bytes",
        }
    }
}

impl Db<'_> {
    /// A setting's value, if set.
    pub(crate) fn setting(self, setting: Setting) -> Result<Option<String>> {
        Ok(self
            .0
            .query_row(
                "SELECT value FROM settings WHERE key = ?1",
                [setting.key()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Sets a setting.
    /// Unsets a setting (its default applies again).
    pub(crate) fn delete_setting(self, setting: Setting) -> Result<()> {
        self.0
            .execute("DELETE FROM settings WHERE key = ?1", [setting.key()])?;
        Ok(())
    }

    pub(crate) fn set_setting(self, setting: Setting, value: &str) -> Result<()> {
        self.0.execute(
            "INSERT INTO settings(key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![setting.key(), value],
        )?;
        Ok(())
    }
}

impl Store {
    /// Sets the relay new invites point to (`hush://` text; checked as the engine checks it).
    /// A front end that knows the relay before starting the engine sets it here, so the
    /// engine never serves the built-in relay for this profile.
    pub fn set_relay(&self, address: &str) -> Result<()> {
        let relay = crate::engine::relay_setting(address)?;
        self.db().set_setting(Setting::Relay, &relay.to_string())
    }
}
