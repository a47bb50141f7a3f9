//! The relay client: connect to a relay by its `hush://` address and speak hush-proto.
//!
//! Owns: resolving the address, the pinned TLS 1.3 QUIC connection, and one request per
//! bidirectional stream with typed results. Used by hush-core's relay links, the load
//! generator and the relay's end-to-end tests.
//! Must never connect without verifying the pin, never log or print fetch secrets, mailbox ids
//! or envelope bytes, and never treat a relay error frame as success.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hush_proto::{
    ALPN, DeleteIds, Delivery, Envelope, EnvelopeId, ErrorFrame, FetchSecret, Host, MAX_SECRETS,
    MailboxId, Pong, RelayAddress, Request, Response, SecretBatch,
};
use quinn::{RecvStream, SendStream};
use zeroize::Zeroize as _;

use crate::Error;
use crate::stream::{read_response, write_frame};
use crate::tls;

/// Keep-alive a client sends so that idle subscriptions survive the relay's idle timeout.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One page of a fetch.
#[derive(Debug)]
pub struct FetchPage {
    /// Envelopes in id order.
    pub deliveries: Vec<Delivery>,
    /// More are stored after the last one: fetch again with its id as `after`.
    pub more: bool,
}

/// Counts from a delete in which at least one id was deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// Deleted now.
    pub deleted: u16,
    /// Missing and older than the relay's expiry horizon.
    pub expired: u16,
    /// Missing otherwise.
    pub unknown: u16,
}

/// A connection to one relay. Cheap to share by reference; requests run concurrently.
#[derive(Debug)]
pub struct RelayClient {
    conn: quinn::Connection,
    // Kept so that a client made by `connect` owns its socket.
    _endpoint: Option<quinn::Endpoint>,
}

/// Builds a client endpoint bound to an ephemeral UDP port, to share among many connections.
///
/// # Errors
/// [`Error::Io`] if the socket cannot be bound.
pub fn client_endpoint(bind: SocketAddr) -> Result<quinn::Endpoint, Error> {
    quinn::Endpoint::client(bind).map_err(|source| Error::Io {
        what: "binding a client UDP socket",
        source,
    })
}

async fn resolve(addr: &RelayAddress) -> Result<SocketAddr, Error> {
    match &addr.host {
        Host::Ip(ip) => Ok(SocketAddr::new(*ip, addr.port)),
        // The resolver's message may name the host; only the fact of failure is kept.
        Host::Name(name) => tokio::net::lookup_host((name.as_str(), addr.port))
            .await
            .map_err(|_| Error::Resolve("lookup failed"))?
            .next()
            .ok_or(Error::Resolve("no address")),
    }
}

impl RelayClient {
    /// Connects with its own UDP socket.
    ///
    /// # Errors
    /// [`Error::Resolve`] / [`Error::Connect`] / [`Error::Connection`] if the relay is
    /// unreachable, presents another key than the pin, or does not speak this protocol version
    /// ([`Error::VersionMismatch`]).
    pub async fn connect(addr: &RelayAddress) -> Result<Self, Error> {
        let remote = resolve(addr).await?;
        let bind = if remote.is_ipv6() {
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
        } else {
            SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
        };
        let endpoint = client_endpoint(bind)?;
        let mut c = Self::connect_with_alpn(&endpoint, addr, ALPN).await?;
        c._endpoint = Some(endpoint);
        Ok(c)
    }

    /// Connects through a shared endpoint (see [`client_endpoint`]).
    ///
    /// # Errors
    /// As [`RelayClient::connect`].
    pub async fn connect_with(
        endpoint: &quinn::Endpoint,
        addr: &RelayAddress,
    ) -> Result<Self, Error> {
        Self::connect_with_alpn(endpoint, addr, ALPN).await
    }

    /// Connects offering `alpn` instead of this version's (tests of version negotiation).
    ///
    /// # Errors
    /// As [`RelayClient::connect`].
    pub async fn connect_with_alpn(
        endpoint: &quinn::Endpoint,
        addr: &RelayAddress,
        alpn: &[u8],
    ) -> Result<Self, Error> {
        let remote = resolve(addr).await?;
        let (tls, mismatch) = tls::client_config_noting_mismatch(addr.pin, alpn)?;
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| Error::Tls(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(KEEP_ALIVE));
        transport.max_concurrent_uni_streams(0u32.into());
        config.transport_config(Arc::new(transport));
        // The pin is the identity; the name only fills the SNI field, which an observer of the
        // QUIC Initial reads. A host name goes there as any client would send it; an IP
        // literal makes rustls send no SNI at all (a fixed name would mark every hush
        // connection).
        let server_name = match &addr.host {
            Host::Name(n) => n.clone(),
            Host::Ip(ip) => ip.to_string(),
        };
        // quinn's ConnectError messages can carry the remote address; keep only the kind.
        let connecting = endpoint
            .connect_with(config, remote, &server_name)
            .map_err(|e| Error::Connect(connect_error(&e)))?;
        let conn = match connecting.await {
            Ok(c) => c,
            Err(_) if mismatch.load(std::sync::atomic::Ordering::SeqCst) => {
                return Err(Error::PinMismatch);
            }
            // TLS alert no_application_protocol (120): no protocol version in common.
            Err(quinn::ConnectionError::ConnectionClosed(c))
                if c.error_code == quinn::TransportErrorCode::crypto(120) =>
            {
                return Err(Error::VersionMismatch);
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            conn,
            _endpoint: None,
        })
    }

    /// The underlying QUIC connection.
    #[must_use]
    pub fn connection(&self) -> &quinn::Connection {
        &self.conn
    }

    /// Closes the connection (code 0).
    pub fn close(&self) {
        self.conn.close(0u32.into(), b"");
    }

    /// Opens a request stream and sends `req`; the encoded frame (which may hold fetch
    /// secrets) is wiped once written.
    async fn open(&self, req: &Request) -> Result<(SendStream, RecvStream), Error> {
        let mut frame = req.encode();
        let r = self.open_raw(&frame).await;
        frame.zeroize();
        r
    }

    async fn open_raw(
        &self,
        frame: &[u8; hush_proto::FRAME_LEN],
    ) -> Result<(SendStream, RecvStream), Error> {
        let (mut send, recv) = self.conn.open_bi().await?;
        write_frame(&mut send, frame).await?;
        send.finish().map_err(Error::stream)?;
        Ok((send, recv))
    }

    /// Sends raw bytes as a request stream and returns every response frame until the relay
    /// finishes the stream. For tests of malformed input; `bytes` need not be a valid frame.
    ///
    /// # Errors
    /// [`Error::Stream`]/[`Error::Connection`] on transport failure, [`Error::Protocol`] if a
    /// response does not decode.
    pub async fn raw_request(&self, bytes: &[u8]) -> Result<Vec<Response>, Error> {
        let (mut send, mut recv) = self.conn.open_bi().await?;
        // The relay may stop reading an oversized request before it is all sent; what it
        // answers is still readable.
        if send.write_all(bytes).await.is_ok() {
            let _ = send.finish();
        }
        let mut out = Vec::new();
        while let Some(r) = read_response(&mut recv).await? {
            out.push(r);
        }
        Ok(out)
    }

    async fn single(&self, req: &Request) -> Result<Response, Error> {
        let (_send, mut recv) = self.open(req).await?;
        match read_response(&mut recv).await? {
            Some(Response::Error(e)) => Err(Error::Relay(e)),
            Some(r) => Ok(r),
            None => Err(Error::UnexpectedResponse("stream ended without a response")),
        }
    }

    /// Ping: the relay's version range and limits.
    ///
    /// # Errors
    /// [`Error::Relay`] with the relay's error code, or a transport/protocol error.
    pub async fn ping(&self) -> Result<Pong, Error> {
        match self.single(&Request::Ping).await? {
            Response::Pong(p) => Ok(p),
            _ => Err(Error::UnexpectedResponse("expected Pong")),
        }
    }

    /// Deposits an envelope; returns once the relay has committed it durably.
    ///
    /// # Errors
    /// [`Error::Relay`] (`MailboxFull`, `RelayFull`, `RateLimited`, ...), or a transport error
    /// (then the deposit may or may not be stored).
    pub async fn deposit(
        &self,
        mailbox: MailboxId,
        envelope: Envelope,
    ) -> Result<EnvelopeId, Error> {
        match self.single(&Request::Deposit { mailbox, envelope }).await? {
            Response::Deposited(id) => Ok(id),
            _ => Err(Error::UnexpectedResponse("expected Deposited")),
        }
    }

    /// Stores `envelope` in a drop (an invite's handshake mailbox), paying with `stamp`; the
    /// relay answers `StampTooWeak` with the bits it wants now if the stamp shows less.
    ///
    /// # Errors
    /// [`Error::Relay`], or a transport/protocol error.
    pub async fn deposit_stamped(
        &self,
        drop: hush_proto::DropAddress,
        stamp: [u8; hush_proto::drop::STAMP_LEN],
        envelope: Envelope,
    ) -> Result<EnvelopeId, Error> {
        let req = Request::DepositStamped {
            drop,
            stamp,
            envelope,
        };
        match self.single(&req).await? {
            Response::Deposited(id) => Ok(id),
            _ => Err(Error::UnexpectedResponse("expected Deposited")),
        }
    }

    /// One fetch page: envelopes with id greater than `after` in the mailboxes of `secrets`.
    ///
    /// # Errors
    /// [`Error::Relay`], or a transport/protocol error.
    pub async fn fetch(&self, secrets: SecretBatch, after: EnvelopeId) -> Result<FetchPage, Error> {
        self.fetch_page(&Request::Fetch { after, secrets }).await
    }

    /// One fetch page from the drops `secrets` own (invite owners' secrets).
    ///
    /// # Errors
    /// As [`RelayClient::fetch`].
    pub async fn fetch_drops(
        &self,
        secrets: SecretBatch,
        after: EnvelopeId,
    ) -> Result<FetchPage, Error> {
        self.fetch_page(&Request::FetchDrops { after, secrets })
            .await
    }

    async fn fetch_page(&self, req: &Request) -> Result<FetchPage, Error> {
        let (_send, mut recv) = self.open(req).await?;
        let mut deliveries = Vec::new();
        loop {
            match read_response(&mut recv).await? {
                Some(Response::Envelope(d)) => deliveries.push(d),
                Some(Response::FetchDone { returned, more }) => {
                    if usize::try_from(returned).ok() != Some(deliveries.len()) {
                        return Err(Error::UnexpectedResponse("FetchDone count mismatch"));
                    }
                    return Ok(FetchPage { deliveries, more });
                }
                Some(Response::Error(e)) => return Err(Error::Relay(e)),
                Some(_) => return Err(Error::UnexpectedResponse("expected Envelope or FetchDone")),
                None => return Err(Error::UnexpectedResponse("fetch ended without FetchDone")),
            }
        }
    }

    /// Every stored envelope of the mailboxes of `secrets` (any number of secrets), following
    /// `more` across pages.
    ///
    /// # Errors
    /// As [`RelayClient::fetch`].
    pub async fn fetch_all(&self, secrets: &[FetchSecret]) -> Result<Vec<Delivery>, Error> {
        self.fetch_every(secrets, false).await
    }

    /// Every stored envelope of the drops `secrets` own, as [`RelayClient::fetch_all`].
    ///
    /// # Errors
    /// As [`RelayClient::fetch`].
    pub async fn fetch_all_drops(&self, secrets: &[FetchSecret]) -> Result<Vec<Delivery>, Error> {
        self.fetch_every(secrets, true).await
    }

    async fn fetch_every(
        &self,
        secrets: &[FetchSecret],
        drops: bool,
    ) -> Result<Vec<Delivery>, Error> {
        let mut out = Vec::new();
        for chunk in secrets.chunks(MAX_SECRETS) {
            let batch = SecretBatch::new(chunk.to_vec()).map_err(Error::InvalidArgument)?;
            let mut after = EnvelopeId(0);
            loop {
                let page = if drops {
                    self.fetch_drops(batch.clone(), after).await?
                } else {
                    self.fetch(batch.clone(), after).await?
                };
                if let Some(last) = page.deliveries.last() {
                    after = last.id;
                }
                out.extend(page.deliveries);
                if !page.more {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Deletes (acknowledges) envelopes of the mailbox `secret` opens.
    ///
    /// # Errors
    /// [`Error::Relay`] with `UnknownEnvelope` or `Expired` if none was deleted, or another
    /// relay or transport error.
    pub async fn delete(
        &self,
        secret: FetchSecret,
        ids: DeleteIds,
    ) -> Result<DeleteOutcome, Error> {
        self.delete_in(&Request::Delete { secret, ids }).await
    }

    /// Deletes envelopes of the drop `secret` owns.
    ///
    /// # Errors
    /// As [`RelayClient::delete`].
    pub async fn delete_drop(
        &self,
        secret: FetchSecret,
        ids: DeleteIds,
    ) -> Result<DeleteOutcome, Error> {
        self.delete_in(&Request::DeleteDrop { secret, ids }).await
    }

    async fn delete_in(&self, req: &Request) -> Result<DeleteOutcome, Error> {
        match self.single(req).await? {
            Response::Deleted {
                deleted,
                expired,
                unknown,
            } => Ok(DeleteOutcome {
                deleted,
                expired,
                unknown,
            }),
            _ => Err(Error::UnexpectedResponse("expected Deleted")),
        }
    }

    /// Subscribes to the mailboxes of `secrets`: every deposit committed after this returns is
    /// pushed. Fetch afterwards to catch up on what arrived before.
    ///
    /// # Errors
    /// [`Error::Relay`] (`TooManySubscriptions`, ...), or a transport/protocol error.
    pub async fn subscribe(&self, secrets: SecretBatch) -> Result<Subscription, Error> {
        self.subscribe_to(&Request::Subscribe { secrets }).await
    }

    /// Subscribes to the drops `secrets` own.
    ///
    /// # Errors
    /// As [`RelayClient::subscribe`].
    pub async fn subscribe_drops(&self, secrets: SecretBatch) -> Result<Subscription, Error> {
        self.subscribe_to(&Request::SubscribeDrops { secrets })
            .await
    }

    async fn subscribe_to(&self, req: &Request) -> Result<Subscription, Error> {
        let (send, mut recv) = self.open(req).await?;
        match read_response(&mut recv).await? {
            Some(Response::Subscribed { count }) => Ok(Subscription {
                _send: send,
                recv,
                count,
            }),
            Some(Response::Error(e)) => Err(Error::Relay(e)),
            _ => Err(Error::UnexpectedResponse("expected Subscribed")),
        }
    }
}

/// A live subscription. Dropping it ends the subscription.
#[derive(Debug)]
pub struct Subscription {
    _send: SendStream,
    recv: RecvStream,
    count: u16,
}

impl Subscription {
    /// Mailboxes the relay subscribed.
    #[must_use]
    pub fn count(&self) -> u16 {
        self.count
    }

    /// The next pushed envelope.
    ///
    /// # Errors
    /// [`Error::Relay`] with `Lagged` (fetch to catch up, then subscribe again) or
    /// `ShuttingDown`; [`Error::UnexpectedResponse`] if the relay ended the stream.
    pub async fn next(&mut self) -> Result<Delivery, Error> {
        match read_response(&mut self.recv).await? {
            Some(Response::Envelope(d)) => Ok(d),
            Some(Response::Error(e)) => Err(Error::Relay(e)),
            Some(_) => Err(Error::UnexpectedResponse("expected Envelope")),
            None => Err(Error::UnexpectedResponse("subscription ended")),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Tell the relay to stop pushing on this stream.
        let _ = self.recv.stop(0u32.into());
    }
}

/// The error code of a relay refusal, if `e` is one.
#[must_use]
pub fn relay_error(e: &Error) -> Option<ErrorFrame> {
    match e {
        Error::Relay(f) => Some(*f),
        _ => None,
    }
}

fn connect_error(e: &quinn::ConnectError) -> &'static str {
    match e {
        quinn::ConnectError::EndpointStopping => "endpoint stopping",
        quinn::ConnectError::CidsExhausted => "connection ids exhausted",
        quinn::ConnectError::InvalidServerName(_) => "invalid server name",
        quinn::ConnectError::InvalidRemoteAddress(_) => "invalid remote address",
        quinn::ConnectError::NoDefaultClientConfig => "no client configuration",
        quinn::ConnectError::UnsupportedVersion => "unsupported QUIC version",
    }
}
