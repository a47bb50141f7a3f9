//! The one error type of hush-transport.
//!
//! Owns: classifying failures into what the relay did (refused, or sent something that is
//! not a valid answer), what the network did (unreachable, connection or stream lost, TLS
//! handshake failed, and apart from those a certificate that does not match the pin), and local failures
//! or misuse of the API. Must never carry an IP address, a host name, a mailbox id, a fetch
//! secret or envelope bytes in a message: these errors end up in logs.

use hush_proto::ErrorFrame;

/// Everything that can go wrong in hush-transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // The relay (or, for the server's use of `stream`, the peer) refused or misbehaved.
    /// The relay answered the request with an error code.
    #[error("relay refused: {} (arg {})", .0.code.name(), .0.arg)]
    Relay(ErrorFrame),
    /// The peer sent bytes that are not one valid frame.
    #[error("protocol: {0}")]
    Protocol(#[source] hush_proto::Error),
    /// A destination's forwarding-key statement, fetched through the client's own relay,
    /// does not verify against the destination's pin (the own relay, or one on the way,
    /// substituted the key). Nothing was forwarded.
    #[error("the destination's forwarding key was refused: {0}")]
    ForwardKeyRefused(&'static str),
    /// A forwarded request's answer does not open with the command's key, or answers
    /// another request: the relays on the way altered it. The deposit may or may not be
    /// stored (a retry of it is stored once).
    #[error("the forwarded answer does not open")]
    ForwardAnswerUnsealable,
    /// The relay sent a well-formed frame that does not answer the request.
    #[error("unexpected response: {0}")]
    UnexpectedResponse(&'static str),

    // The network failed; the request may or may not have reached the relay.
    /// The relay host could not be resolved or has no address.
    #[error("resolving the relay host: {0}")]
    Resolve(&'static str),
    /// The connection could not be started (QUIC: before any packet was sent; TCP: the
    /// relay did not accept the TCP connection).
    #[error("connect: {0}")]
    Connect(&'static str),
    /// The QUIC connection failed or was closed, including a failed TLS handshake (no
    /// common ALPN; a certificate that does not match the pin is [`Error::PinMismatch`]).
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// A stream failed while reading or writing.
    #[error("stream: {0}")]
    Stream(String),
    /// The relay speaks no protocol version this client does (the TLS handshake ended with
    /// `no_application_protocol`): one of the two needs an upgrade. Nothing was sent.
    #[error("the relay speaks another version of the hush protocol; update hush or the relay")]
    VersionMismatch,
    /// The relay presented a certificate that does not match the pin of its address:
    /// someone in the path is intercepting, or the relay's key changed. Nothing was sent.
    #[error("the relay's certificate does not match the pin of its address")]
    PinMismatch,
    /// The SOCKS5 proxy could not be reached (nothing listens there, or it is down). No
    /// direct connection is tried instead.
    #[error("the SOCKS5 proxy is unreachable")]
    ProxyUnreachable,
    /// The SOCKS5 proxy refused (the step or its reply code is named) or did not speak
    /// SOCKS5. No direct connection is tried instead.
    #[error("SOCKS5: {0}")]
    Proxy(&'static str),
    /// A caller's deadline passed.
    #[error("timed out")]
    Timeout,

    // Local failure or misuse of the API.
    /// A local socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// Which operation (never an address).
        what: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The TLS configuration could not be built, or a certificate given to
    /// [`spki_pin`](crate::spki_pin) does not parse.
    #[error("tls: {0}")]
    Tls(String),
    /// An argument was rejected before anything was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(#[source] hush_proto::Error),
}

impl Error {
    /// Whether the relay (or peer) caused this: a refusal or an invalid answer, as opposed to
    /// a network failure or a local one.
    #[must_use]
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            Self::Relay(_)
                | Self::Protocol(_)
                | Self::UnexpectedResponse(_)
                | Self::ForwardKeyRefused(_)
                | Self::ForwardAnswerUnsealable
        )
    }

    pub(crate) fn stream(e: impl std::fmt::Display) -> Self {
        Self::Stream(e.to_string())
    }
}
