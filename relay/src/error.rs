//! The one error type of hush-relay (server, storage, configuration).
//!
//! Owns: classifying failures into configuration mistakes (operator), storage and I/O
//! failures (environment) and shutdown. Client-side errors are hush-transport's. Must never
//! carry an IP address, a mailbox id, a fetch secret or envelope bytes in a message: these
//! errors end up in logs.

/// Everything that can go wrong in hush-relay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file or an environment override is invalid. The message carries the
    /// file name and line/column, or the name of the environment variable.
    #[error("configuration: {0}")]
    Config(String),
    /// Reading or writing a local file failed.
    #[error("{what}: {source}")]
    Io {
        /// Which file or operation (a path chosen by the operator, never user data).
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The certificate or key is unusable, or TLS setup failed.
    #[error("tls: {0}")]
    Tls(String),
    /// The storage backend failed; nothing of the failed operation was committed.
    #[error("storage: {0}")]
    Storage(String),
    /// The data directory holds a store of another layout (an older relay's); it is not
    /// migrated: move it aside to start with an empty store.
    #[error("store layout {found}, expected {expected}: the store is not migrated")]
    StoreLayout {
        /// The layout found.
        found: u64,
        /// The layout this relay writes.
        expected: u64,
    },
    /// Another process has the store open (another relay, or another hush serving its
    /// built-in relay, on this data directory).
    #[error("the store is open in another process")]
    StoreInUse,
    /// The relay is shutting down and refuses new work.
    #[error("relay is shutting down")]
    ShuttingDown,
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn storage(e: impl std::fmt::Display) -> Self {
        Self::Storage(e.to_string())
    }
}
