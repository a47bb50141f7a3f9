//! The one error type of hush-relay (server, storage, configuration and client module).
//!
//! Owns: classifying failures into configuration mistakes (operator), storage and I/O
//! failures (environment), peer misbehaviour and relay refusals (client side). Must never
//! carry an IP address, a mailbox id, a fetch secret or envelope bytes in a message: these
//! errors end up in logs.

use hush_proto::ErrorFrame;

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
    /// The relay is shutting down and refuses new work.
    #[error("relay is shutting down")]
    ShuttingDown,
    /// Client: the relay host could not be resolved or connected to.
    #[error("connect: {0}")]
    Connect(String),
    /// Client: the QUIC connection failed or was closed.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Client: a stream failed.
    #[error("stream: {0}")]
    Stream(String),
    /// Client: the relay answered the request with an error code.
    #[error("relay refused: {} (arg {})", .0.code.name(), .0.arg)]
    Relay(ErrorFrame),
    /// Client: the relay sent a frame that does not decode.
    #[error("protocol: {0}")]
    Protocol(#[from] hush_proto::Error),
    /// Client: the relay sent a well-formed frame that does not answer the request.
    #[error("unexpected response: {0}")]
    UnexpectedResponse(&'static str),
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
