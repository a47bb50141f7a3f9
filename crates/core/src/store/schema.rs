//! The schema: the tables the other store modules own statements for, and the migration
//! from each earlier version.

pub(super) const SCHEMA_VERSION: i64 = 4;
/// What brings a version 1 store up to version 2: the blocked flag of contacts.
pub(super) const MIGRATE_FROM_1: &str =
    "ALTER TABLE contacts ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;";
/// What brings a version 2 store up to version 3: the stamp difficulty of an outbox entry
/// bound for an invite's drop.
pub(super) const MIGRATE_FROM_2: &str = "ALTER TABLE outbox ADD COLUMN stamp_bits INTEGER;";
/// What brings a version 3 store up to version 4: file transfers.
pub(super) const MIGRATE_FROM_3: &str = FILES_TABLE;

/// File transfers (crate::files), sent and received. `descriptor` holds the file's secret:
/// the store is encrypted, and the row is deleted with its contact.
const FILES_TABLE: &str = "
CREATE TABLE files (
    id          INTEGER PRIMARY KEY,
    contact_id  INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    message_id  INTEGER REFERENCES messages(id) ON DELETE SET NULL,
    outgoing    INTEGER NOT NULL,
    descriptor  BLOB NOT NULL,        -- crate::files::FileDescriptor::encode
    path        TEXT,                 -- sender: the source; receiver: the file once saved
    dir         TEXT,                 -- receiver: the directory chosen to save it in
    state       TEXT NOT NULL,        -- uploading | sent | offered | downloading | complete | failed
    prefix      INTEGER NOT NULL DEFAULT 0, -- chunks 0..prefix are uploaded / written
    cleaned     INTEGER NOT NULL DEFAULT 0, -- receiver: the relay's chunks were deleted
    error       TEXT,                 -- crate::files::FileError::name of a failed transfer
    source_mtime INTEGER,             -- sender: the source's modification time at the offer
    created     INTEGER NOT NULL
);
";

pub(super) const SCHEMA: &str = "
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE invites (
    id        INTEGER PRIMARY KEY,
    kind      TEXT NOT NULL,          -- 'one-time' | 'address'
    secrets   BLOB NOT NULL,          -- hush_crypto::InviterSecrets::to_bytes
    name      TEXT,                   -- name for the contact a one-time invite creates
    created   INTEGER NOT NULL,
    last_epoch INTEGER NOT NULL,      -- handshake mailbox epochs fetched up to here
    active    INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE contacts (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    handshake_id   BLOB NOT NULL UNIQUE,
    session        BLOB NOT NULL,     -- hush_crypto::Session::to_bytes
    invite_id      INTEGER,           -- the invite that made it (inviter side)
    verified       INTEGER NOT NULL DEFAULT 0,
    disappear_secs INTEGER,           -- NULL: messages stay
    receipts       INTEGER NOT NULL DEFAULT 1,
    next_msg_id    INTEGER NOT NULL DEFAULT 1,
    last_epoch     INTEGER NOT NULL,  -- receive mailbox epochs fetched up to here
    created        INTEGER NOT NULL,
    blocked        INTEGER NOT NULL DEFAULT 0  -- what it sends is dropped (version 2)
);
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    contact_id  INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    outgoing    INTEGER NOT NULL,
    msg_id      INTEGER NOT NULL,     -- the sender's id for this message
    body        TEXT NOT NULL,
    sent_at     INTEGER NOT NULL,     -- sender's clock
    received_at INTEGER,              -- our clock, incoming only
    state       TEXT NOT NULL,        -- queued | on-relay | delivered | received
    expires_at  INTEGER,              -- disappearing messages
    shown       INTEGER NOT NULL DEFAULT 0,
    UNIQUE (contact_id, outgoing, msg_id)
);
CREATE TABLE fragments (
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    msg_id     INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (contact_id, msg_id, idx)
);
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY,
    contact_id   INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    message_id   INTEGER REFERENCES messages(id) ON DELETE SET NULL,
    relay        TEXT NOT NULL,       -- relay address
    mailbox_id   BLOB NOT NULL,       -- a mailbox id, or a drop's id D
    envelope     BLOB NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    stamp_bits   INTEGER              -- NULL: a plain deposit; else the drop's difficulty
);
";

/// The whole schema of a new store.
pub(super) fn full_schema() -> String {
    format!("{SCHEMA}{FILES_TABLE}")
}
