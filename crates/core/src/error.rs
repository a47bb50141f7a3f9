//! The one error type of hush-core. Messages carry no secrets, no message text and no
//! contact names: an error may be logged or printed.

/// Everything that can go wrong in the client engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- the user or the environment ---
    /// The passphrase does not open this profile's store.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The store's key file or database is damaged; nothing was changed.
    #[error("the profile's store is damaged ({0}); nothing was changed")]
    StoreCorrupted(&'static str),
    /// Another hush process has this profile open.
    #[error("the profile is in use by another hush process")]
    ProfileBusy,
    /// `init` on a profile that exists.
    #[error("profile already exists")]
    ProfileExists,
    /// A command on a profile that does not exist.
    #[error("no such profile (run `hush init` first)")]
    NoProfile,
    /// Profile names are 1..=32 of `[a-zA-Z0-9_-]`.
    #[error("invalid profile name (use 1 to 32 letters, digits, '-' or '_')")]
    InvalidProfileName,
    /// The configuration file is invalid.
    #[error("config error at line {line}: {message}")]
    Config {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// No passphrase source gave a passphrase.
    #[error("no passphrase: {0}")]
    NoPassphrase(String),
    /// No contact has that name.
    #[error("no contact with that name")]
    UnknownContact,
    /// A contact with that name exists.
    #[error("a contact with that name exists")]
    DuplicateContact,
    /// No file transfer has that id.
    #[error("no file with that id")]
    UnknownFile,
    /// A file transfer was refused or failed; the name says why (docs/PROTOCOL.md 7a).
    #[error("{0}")]
    File(#[from] crate::files::FileError),
    /// A received file is larger than the limit the user set (or the default): nothing
    /// was fetched. The code is [`crate::files::FileError::OverLimit`]'s.
    #[error("the file is larger than your limit for received files ({}): raise it with --max-size or `hush file-limit`", crate::files::human_size(*limit))]
    FileOverLimit {
        /// The limit in bytes.
        limit: u64,
    },
    /// No pending invite has that id.
    #[error("no invite with that id")]
    UnknownInvite,
    /// The link is one of this profile's own invites.
    #[error("this is one of your own invites: give it to the person you invite")]
    OwnInvite,
    /// The link's inviter is already a contact (the same link accepted twice).
    #[error("you already accepted this invite: its sender is one of your contacts")]
    AlreadyContact,
    /// The relay could not be reached.
    #[error("the relay is unreachable")]
    RelayUnreachable,
    /// The relay answered with a certificate that does not match the pin of its address:
    /// someone may be intercepting, or the relay's key changed.
    #[error(
        "the relay's certificate does not match its address's pin (interception, or the relay's key changed)"
    )]
    CertificateMismatch,
    /// The relay speaks no version of the protocol this client does.
    #[error("the relay speaks another version of the hush protocol: update hush or the relay")]
    RelayVersionMismatch,
    /// The profile's SOCKS5 proxy (`socks5` in its config.toml) is unreachable or refused
    /// the connection; nothing went to the relay, directly or otherwise.
    #[error("the SOCKS5 proxy is unreachable or refused the connection")]
    ProxyFailed,
    /// The profile was made by a hush that spoke protocol version 1: its contacts and
    /// invites cannot be used by this one. Nothing was changed.
    #[error(
        "this profile was made by an older hush (protocol version 1); its contacts and invites cannot be used by this version: make a new profile, or open this one with the older hush"
    )]
    ProfileFromProtocol1,
    /// A request to another relay through the profile's own relay (private routing,
    /// docs/PROTOCOL.md II.4.2, II.4.4) failed; nothing was sent directly instead. The name
    /// says why (`own_relay_unreachable`, `forward_key_refused`, `forward_unreachable`,
    /// ...); what was under way is kept and resumes when asked again.
    #[error(
        "private routing through your own relay failed ({0}); nothing was sent directly, and it resumes when you retry"
    )]
    PrivateRoute(&'static str),
    /// The argument is not acceptable.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    // --- peers, relays, storage ---
    /// A cryptographic operation failed, or a link or peer message did not parse. Its
    /// message is hush-crypto's (printed once: it is not repeated as a source).
    #[error(transparent)]
    Crypto(#[from] hush_crypto::Error),
    /// The relay refused or failed.
    #[error("relay: {0}")]
    Relay(String),
    /// SQLite / SQLCipher failed.
    #[error("store: {0}")]
    Store(String),
    /// File-system failure.
    #[error("i/o: {0}")]
    Io(String),
    /// The engine stopped.
    #[error("the engine has stopped")]
    EngineStopped,
    /// No relay is configured and this build serves none itself.
    #[error("no relay configured (set one with `hush relay set ADDRESS`)")]
    NoRelay,
    /// The engine answered a command with the wrong kind of response: a bug, reported
    /// rather than hidden.
    #[error("internal error: unexpected engine response ({0})")]
    UnexpectedResponse(&'static str),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        // rusqlite errors can quote SQL but never bound values (we only use parameters).
        Self::Store(e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.kind().to_string())
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;

impl From<crate::files::descriptor::DescriptorFault> for Error {
    fn from(f: crate::files::descriptor::DescriptorFault) -> Self {
        Self::File(f.into())
    }
}
