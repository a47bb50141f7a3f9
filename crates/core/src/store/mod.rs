//! The encrypted local store: one SQLCipher database per profile, keyed from the passphrase
//! with Argon2id.
//!
//! `store.key` holds the Argon2id parameters, the salt and a key check value (an HMAC under
//! the derived key), so that a wrong passphrase is told apart from a damaged database and
//! neither changes anything. Deleting `store.key` makes the database unreadable even with
//! the passphrase, which is what a panic wipe does first. Its cost parameters are bounded
//! on open (a key file asking for more is damaged, refused before deriving).
//!
//! Opening checks before it writes: the schema version and an integrity check run before the
//! connection may checkpoint a write-ahead log a crash left into the database file, and a
//! store of the previous schema version is migrated only once it passed them.
//!
//! This module owns the schema (`schema`) and every SQL statement, split by table:
//! `contacts`, `messages`, `outbox`, `invites`, `fragments` and `settings`; `key` owns
//! `store.key` and the key derivation. Nothing outside it
//! sees a connection: callers get typed methods on `Db` (one statement at a time) or on a
//! `Tx` (several, committed together). Values read back are checked: a value the schema
//! does not allow is [`Error::StoreCorrupted`], never a silent default. It never talks to the
//! network and never sees plaintext outside the encrypted database.

use std::io::Write;
use std::path::Path;

use rusqlite::Connection;
use rusqlite::config::DbConfig;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::profile::Profile;

mod contacts;
mod files;
mod fragments;
mod invites;
mod key;
mod messages;
mod outbox;
mod schema;
pub(crate) mod settings;

pub use contacts::{ContactId, ContactSettings};
pub use files::{FileInfo, FileState};
pub(crate) use fragments::FragmentOutcome;
pub(crate) use invites::ActiveInvite;
pub use invites::InviteId;
pub use key::KdfCost;
pub(crate) use key::os_random;
use key::{KeyFile, P_COST, derive_key, key_check, write_durably};
pub use messages::{NewOutgoing, NewReceived};
pub use outbox::{OutboxEntry, OutboxId};
use schema::{MIGRATE_FROM_1, MIGRATE_FROM_2, MIGRATE_FROM_3, SCHEMA_VERSION, full_schema};

/// An open, unlocked store.
pub struct Store {
    conn: Connection,
    /// Exclusive lock on the profile: two processes using one profile at once could encrypt
    /// two messages with the same ratchet key.
    _lock: std::fs::File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store(..)")
    }
}

impl Store {
    /// Creates the profile directory and a new store keyed from `passphrase`.
    pub fn create(profile: &Profile, passphrase: &[u8]) -> Result<Self> {
        Self::create_with_cost(profile, passphrase, KdfCost::DEFAULT)
    }

    /// [`Store::create`] with another key-derivation cost (recorded in `store.key`, so
    /// [`Store::open`] needs nothing more).
    pub fn create_with_cost(profile: &Profile, passphrase: &[u8], cost: KdfCost) -> Result<Self> {
        if profile.exists() {
            return Err(Error::ProfileExists);
        }
        if passphrase.is_empty() {
            return Err(Error::InvalidArgument("the passphrase is empty".into()));
        }
        std::fs::create_dir_all(profile.dir())?;
        restrict_permissions(profile.dir());
        let mut salt = [0u8; 16];
        os_random(&mut salt)?;
        let mut kf = KeyFile {
            m_cost: cost.m_cost_kib,
            t_cost: cost.t_cost,
            p_cost: P_COST,
            salt,
            check: [0u8; 32],
        };
        let lock = Self::lock(profile)?;
        let key = derive_key(passphrase, &kf)?;
        kf.check = key_check(&key);
        // A leftover database from an interrupted init or wipe is unreadable: replace it.
        let _ = std::fs::remove_file(profile.db_path());
        let store = Self::open_db(&profile.db_path(), &key, lock, false)?;
        store.writable_on_close()?;
        store.migrate()?;
        write_durably(&profile.key_path(), &kf.encode())?;
        Ok(store)
    }

    /// Opens an existing store. A wrong passphrase gives [`Error::WrongPassphrase`], damage
    /// gives [`Error::StoreCorrupted`]; neither writes anything.
    pub fn open(profile: &Profile, passphrase: &[u8]) -> Result<Self> {
        let kf_bytes = match std::fs::read(profile.key_path()) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NoProfile),
            Err(e) => return Err(e.into()),
        };
        let kf = KeyFile::decode(&kf_bytes)?;
        let key = derive_key(passphrase, &kf)?;
        if !bool::from(key_check(&key).ct_eq(&kf.check)) {
            return Err(Error::WrongPassphrase);
        }
        if !profile.db_path().exists() {
            return Err(Error::StoreCorrupted("database missing"));
        }
        let lock = Self::lock(profile)?;
        // A log a crash left behind must not be checkpointed into a database found damaged.
        let wal = profile.db_path().with_extension("db-wal");
        let has_log = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
        let store = Self::open_db(&profile.db_path(), &key, lock, has_log)
            .map_err(|_| Error::StoreCorrupted("database unreadable"))?;
        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|_| Error::StoreCorrupted("database unreadable"))?;
        if !(1..=SCHEMA_VERSION).contains(&version) {
            return Err(Error::StoreCorrupted("unknown schema version"));
        }
        let ok: String = store
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|_| Error::StoreCorrupted("database unreadable"))?;
        if ok != "ok" {
            return Err(Error::StoreCorrupted("integrity check failed"));
        }
        // Schemas 1 and 2 were written by hush before protocol version 2, whose sessions and
        // invites this hush cannot use (PROTOCOL.md II.6): refuse the profile by name and
        // leave it untouched (the older hush still opens it), unless it holds neither.
        if version < 3 {
            let held: i64 = store.conn.query_row(
                "SELECT (SELECT count(*) FROM contacts) + (SELECT count(*) FROM invites)",
                [],
                |r| r.get(0),
            )?;
            if held > 0 {
                return Err(Error::ProfileFromProtocol1);
            }
        }
        store.writable_on_close()?;
        if version < SCHEMA_VERSION {
            // Checked intact above: only now may the store be written.
            let steps = [MIGRATE_FROM_1, MIGRATE_FROM_2, MIGRATE_FROM_3];
            let todo = steps
                .get(usize::try_from(version - 1).unwrap_or(0)..)
                .unwrap_or(&[])
                .concat();
            store.conn.execute_batch(&format!(
                "BEGIN; {todo} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))?;
        }
        Ok(store)
    }

    /// Takes the profile's lock, or fails with [`Error::ProfileBusy`].
    fn lock(profile: &Profile) -> Result<std::fs::File> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(profile.dir().join("lock"))?;
        match f.try_lock() {
            Ok(()) => Ok(f),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::ProfileBusy),
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }

    /// Opens the database. With `keep_log`, closing it does not write until
    /// [`Store::writable_on_close`]: by default the last connection to close checkpoints
    /// the write-ahead log (a crash leaves one) into the database file, which would change a
    /// store reported damaged and unchanged. (Without a log there is nothing to checkpoint,
    /// and a normal close removes the empty log it made.)
    fn open_db(path: &Path, key: &[u8; 32], lock: std::fs::File, keep_log: bool) -> Result<Self> {
        let conn = Connection::open(path)?;
        if keep_log {
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        }
        // SQLCipher would print decryption failures to stderr, i.e. onto the user's screen.
        let _ = conn.execute_batch("PRAGMA cipher_log_level = NONE;");
        let pragma = Zeroizing::new(format!("PRAGMA key = \"x'{}'\";", hex::encode(key)));
        conn.execute_batch(&pragma)?;
        // Deleted rows are overwritten, so disappearing messages leave no residue in free pages.
        conn.execute_batch(
            "PRAGMA secure_delete = ON; PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;",
        )?;
        // Touch the database so a wrong key or a damaged file fails here.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })?;
        Ok(Self { conn, _lock: lock })
    }

    /// The store is known intact: closing it checkpoints the log again (so a clean exit
    /// leaves only the database file).
    fn writable_on_close(&self) -> Result<()> {
        self.conn
            .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)?;
        Ok(())
    }

    fn migrate(&self) -> Result<()> {
        self.conn.execute_batch(&full_schema())?;
        self.conn
            .execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))?;
        Ok(())
    }

    /// [`Store::wipe`], only while no other process holds the profile: a process that has
    /// it open keeps its key in memory and would go on decrypting ([`Error::ProfileBusy`],
    /// nothing destroyed).
    pub fn wipe_unused(profile: &Profile) -> Result<()> {
        if !profile.exists() {
            return Err(Error::NoProfile);
        }
        let lock = Self::lock(profile)?;
        let r = Self::wipe(profile);
        drop(lock);
        r
    }

    /// Panic wipe: destroys the key file first (so the database is unreadable even with the
    /// passphrase), then the database, its journals, the log and the profile directory. It
    /// does not wait for the profile's lock (see [`Store::wipe_unused`]).
    pub fn wipe(profile: &Profile) -> Result<()> {
        let key_path = profile.key_path();
        if let Ok(meta) = std::fs::metadata(&key_path) {
            let mut noise = vec![0u8; meta.len() as usize];
            os_random(&mut noise)?;
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&key_path) {
                let _ = f.write_all(&noise);
                let _ = f.sync_all();
            }
        }
        if profile.dir().exists() {
            std::fs::remove_dir_all(profile.dir())?;
        }
        Ok(())
    }

    /// Typed statements, each its own transaction.
    pub(crate) fn db(&self) -> Db<'_> {
        Db(&self.conn)
    }

    /// Starts a transaction: its statements take effect together at [`Tx::commit`], or not
    /// at all if it is dropped (as a crash would).
    pub(crate) fn transaction(&mut self) -> Result<Tx<'_>> {
        Ok(Tx(self.conn.transaction()?))
    }

    /// Moves what secure_delete overwrote in the write-ahead log into the main file, so
    /// deleted rows leave no copy behind in the log.
    pub(crate) fn checkpoint(&self) -> Result<()> {
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }
}

/// Typed statements on the store; the table modules add their methods to it.
#[derive(Clone, Copy)]
pub(crate) struct Db<'a>(&'a Connection);

/// A transaction; [`Tx::db`] runs statements inside it.
pub(crate) struct Tx<'a>(rusqlite::Transaction<'a>);

impl Tx<'_> {
    /// Statements inside this transaction.
    pub(crate) fn db(&self) -> Db<'_> {
        Db(&self.0)
    }

    /// Makes every statement of the transaction durable at once.
    pub(crate) fn commit(self) -> Result<()> {
        self.0.commit()?;
        Ok(())
    }
}

/// Converts a stored integer that must not be negative.
fn unsigned(v: i64, what: &'static str) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::StoreCorrupted(what))
}

/// Converts an integer for storage; SQLite integers are signed 64-bit.
fn signed(v: u64, what: &'static str) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::InvalidArgument(format!("{what} out of range")))
}

#[cfg(unix)]
fn restrict_permissions(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}

#[cfg(not(unix))]
fn restrict_permissions(_dir: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(dir: &tempfile::TempDir) -> Profile {
        Profile::new(dir.path(), "t").unwrap()
    }

    /// Cost parameters past the bounds are a damaged key file, refused before deriving
    /// (seen to fail before: t_cost = 2^32-1 hung the open, m_cost = 4 GiB took seconds).
    #[test]
    fn key_file_costs_are_bounded_before_deriving() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(&dir);
        drop(Store::create_with_cost(&p, b"pw", KdfCost::TEST).unwrap());
        let good = std::fs::read(p.key_path()).unwrap();
        for (at, value) in [
            (12, u32::MAX),
            (12, 11),
            (12, 0),
            (8, 4 * 1024 * 1024),
            (16, 17),
            (16, 0),
        ] {
            let mut bad = good.clone();
            bad[at..at + 4].copy_from_slice(&value.to_be_bytes());
            std::fs::write(p.key_path(), &bad).unwrap();
            let started = std::time::Instant::now();
            match Store::open(&p, b"pw") {
                Err(Error::StoreCorrupted(_)) => {}
                Err(e) => panic!("offset {at} = {value}: {e}"),
                Ok(_) => panic!("offset {at} = {value}: opened"),
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
        }
        std::fs::write(p.key_path(), &good).unwrap();
        drop(Store::open(&p, b"pw").unwrap());
    }

    /// A damaged store is reported and left byte for byte as it was, also when a crash left
    /// its write-ahead log behind: closing the connection that found the damage used to
    /// checkpoint the log into the damaged file, both when the damage made the database
    /// unreadable (page 1) and when only the integrity check found it (page 3).
    #[test]
    fn a_damaged_store_left_by_a_crash_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let live = Profile::new(dir.path(), "live").unwrap();
        let s = Store::create_with_cost(&live, b"pw", KdfCost::TEST).unwrap();
        for i in 0..200 {
            s.db()
                .set_setting(
                    settings::Setting::Relay,
                    &format!("value {i} {}", "x".repeat(500)),
                )
                .unwrap();
            if i == 150 {
                s.checkpoint().unwrap();
            }
        }
        // What a crash leaves: the database and its log as they are while it is open.
        let files =
            |p: &Profile| ["store.key", "store.db", "store.db-wal"].map(|f| p.dir().join(f));
        let crashed = Profile::new(dir.path(), "crashed").unwrap();
        std::fs::create_dir_all(crashed.dir()).unwrap();
        for (from, to) in files(&live).iter().zip(files(&crashed)) {
            std::fs::copy(from, to).unwrap();
        }
        drop(s);
        let wal = crashed.dir().join("store.db-wal");
        assert!(
            std::fs::metadata(&wal).unwrap().len() > 0,
            "no log was left"
        );
        let good_db = std::fs::read(crashed.db_path()).unwrap();
        let good_wal = std::fs::read(&wal).unwrap();
        for (what, file, at) in [
            ("database page 3", crashed.db_path(), 2 * 4096 + 1000),
            ("database page 1", crashed.db_path(), 1000),
        ] {
            std::fs::write(crashed.db_path(), &good_db).unwrap();
            std::fs::write(&wal, &good_wal).unwrap();
            let mut bad = std::fs::read(&file).unwrap();
            for b in &mut bad[at..at + 16] {
                *b ^= 0x5A;
            }
            std::fs::write(&file, &bad).unwrap();
            let before: Vec<_> = files(&crashed)
                .iter()
                .map(|f| std::fs::read(f).ok())
                .collect();
            let r = Store::open(&crashed, b"pw");
            let after: Vec<_> = files(&crashed)
                .iter()
                .map(|f| std::fs::read(f).ok())
                .collect();
            match r {
                Err(Error::StoreCorrupted(_)) => {}
                Err(e) => panic!("{what}: {e}"),
                Ok(_) => panic!("{what}: opened"),
            }
            assert!(before == after, "{what}: the files changed");
        }
    }

    /// A profile made by a hush of protocol version 1 (schema 2) that holds an invite is
    /// refused by name, and its files are left as they were; the older hush can still open
    /// it. (Seen to fail with the check removed: it opened, and every invite failed to load.)
    #[test]
    fn a_profile_of_protocol_version_1_is_refused_by_name_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(&dir);
        {
            let s = Store::create_with_cost(&p, b"pw", KdfCost::TEST).unwrap();
            let relay: hush_proto::RelayAddress =
                "hush://AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8@relay.example.org:4433"
                    .parse()
                    .unwrap();
            let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(5);
            let secrets = hush_crypto::InviterSecrets::generate(
                hush_crypto::InviteKind::OneTime,
                relay,
                &mut rng,
            )
            .unwrap();
            s.db()
                .insert_invite(&secrets, Some("источник"), 1, 3600)
                .unwrap();
            s.conn
                .execute_batch(
                    "ALTER TABLE outbox DROP COLUMN stamp_bits; PRAGMA user_version = 2;",
                )
                .unwrap();
        }
        let files = |d: &std::path::Path| -> Vec<(String, Vec<u8>)> {
            let mut v: Vec<_> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|f| f.is_file())
                .map(|f| (f.display().to_string(), std::fs::read(&f).unwrap()))
                .collect();
            v.sort();
            v
        };
        let before = files(dir.path());
        match Store::open(&p, b"pw") {
            Err(Error::ProfileFromProtocol1) => {}
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened"),
        }
        assert!(before == files(dir.path()), "the files changed");
    }

    /// A version-1 store (before the blocked flag and the stamp difficulty of outbox
    /// entries) opens and is brought up to date.
    #[test]
    fn a_version_3_store_gains_the_files_table_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(&dir);
        {
            let s = Store::create_with_cost(&p, b"pw", KdfCost::TEST).unwrap();
            s.db()
                .set_setting(settings::Setting::Relay, "kept")
                .unwrap();
            s.conn
                .execute_batch("DROP TABLE files; PRAGMA user_version = 3;")
                .unwrap();
        }
        let s = Store::open(&p, b"pw").unwrap();
        let v: i64 = s
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 4);
        assert_eq!(
            s.db().setting(settings::Setting::Relay).unwrap().as_deref(),
            Some("kept")
        );
        assert!(s.db().files(None).unwrap().is_empty());
    }

    #[test]
    fn a_version_1_store_is_migrated_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(&dir);
        {
            let s = Store::create_with_cost(&p, b"pw", KdfCost::TEST).unwrap();
            s.conn
                .execute_batch(
                    "ALTER TABLE contacts DROP COLUMN blocked;
                     ALTER TABLE outbox DROP COLUMN stamp_bits; DROP TABLE files;
                     PRAGMA user_version = 1;",
                )
                .unwrap();
        }
        let s = Store::open(&p, b"pw").unwrap();
        let v: i64 = s
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let n: i64 = s
            .conn
            .query_row("SELECT count(blocked) FROM contacts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn create_open_wrong_passphrase_and_wipe() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(&dir);
        {
            let s = Store::create(&p, b"correct horse").unwrap();
            s.db().set_setting(settings::Setting::Relay, "x").unwrap();
        }
        assert!(matches!(
            Store::create(&p, b"again"),
            Err(Error::ProfileExists)
        ));
        let before = std::fs::read(p.db_path()).unwrap();
        assert!(matches!(
            Store::open(&p, b"wrong"),
            Err(Error::WrongPassphrase)
        ));
        assert_eq!(
            std::fs::read(p.db_path()).unwrap(),
            before,
            "wrong passphrase changed the file"
        );
        let s = Store::open(&p, b"correct horse").unwrap();
        assert_eq!(
            s.db().setting(settings::Setting::Relay).unwrap().as_deref(),
            Some("x")
        );
        assert!(
            matches!(Store::open(&p, b"correct horse"), Err(Error::ProfileBusy)),
            "a second opener must be refused while the first holds the profile"
        );
        drop(s);
        Store::wipe(&p).unwrap();
        assert!(!p.dir().exists());
        assert!(matches!(
            Store::open(&p, b"correct horse"),
            Err(Error::NoProfile)
        ));
    }

    #[test]
    fn damaged_database_is_reported_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(&dir);
        drop(Store::create(&p, b"pw").unwrap());
        // Checkpoint happened on close; damage the first page.
        let mut bytes = std::fs::read(p.db_path()).unwrap();
        for b in bytes.iter_mut().take(64) {
            *b ^= 0xA5;
        }
        std::fs::write(p.db_path(), &bytes).unwrap();
        assert!(matches!(
            Store::open(&p, b"pw"),
            Err(Error::StoreCorrupted(_))
        ));
        assert_eq!(std::fs::read(p.db_path()).unwrap(), bytes);
        std::fs::write(p.key_path(), b"garbage").unwrap();
        assert!(matches!(
            Store::open(&p, b"pw"),
            Err(Error::StoreCorrupted("key file"))
        ));
    }
}
