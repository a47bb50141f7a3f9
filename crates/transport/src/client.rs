//! The relay client: connect to a relay by its `hush://` address and speak hush-proto.
//!
//! Owns: resolving the address, the pinned TLS 1.3 connection (QUIC, or TCP directly or
//! through SOCKS5: a [`Route`]), and one request per bidirectional stream with typed results. Used by hush-core's relay links, the load
//! generator and the relay's end-to-end tests.
//! Must never connect without verifying the pin, never log or print fetch secrets, mailbox ids
//! or envelope bytes, and never treat a relay error frame as success.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hush_proto::forward::{
    self, Destination, InnerRequest, InnerResponse, KeyStatement, RequestId, SealedAnswer,
    SealedRequest, VerifiedKey,
};
use hush_proto::forward_chunk::{self, ChunkAnswer, SealedChunkAnswer, SealedChunkRequest};
use hush_proto::{
    ALPN, CHUNK_LEN, ChunkId, ChunkSecret, DeleteIds, Delivery, Envelope, EnvelopeId, ErrorFrame,
    FetchSecret, Host, MAX_SECRETS, MailboxId, Pong, RelayAddress, Request, Response, SecretBatch,
};
use quinn::{RecvStream, SendStream};
use zeroize::Zeroize as _;

use crate::Error;
use crate::socks::Socks5;
use crate::stream::{read_exact_raw, read_response, write_frame};
use crate::tcp::{TcpConn, TcpStreamRecv};
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

/// How a client reaches a relay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Route {
    /// QUIC over UDP (the default).
    #[default]
    Quic,
    /// TLS over TCP, directly (docs/PROTOCOL.md II.1.1).
    Tcp,
    /// TLS over TCP through a SOCKS5 proxy, which resolves the host.
    Socks5(Socks5),
}

/// A connection to one relay. Cheap to share by reference; requests run concurrently.
#[derive(Debug)]
pub struct RelayClient {
    conn: Conn,
}

#[derive(Debug)]
enum Conn {
    Quic {
        conn: quinn::Connection,
        // Kept so that a client made by `connect` owns its socket.
        endpoint: Option<quinn::Endpoint>,
    },
    Tcp(TcpConn),
}

/// The reading side of a request stream, on either transport.
#[derive(Debug)]
enum Reply {
    Quic {
        // Kept open: dropping it would reset the stream.
        _send: SendStream,
        recv: RecvStream,
    },
    Tcp(TcpStreamRecv),
}

impl Reply {
    async fn next(&mut self) -> Result<Option<Response>, Error> {
        match self {
            Self::Quic { recv, .. } => read_response(recv).await,
            Self::Tcp(r) => r.read_response().await,
        }
    }

    /// Reads exactly `out.len()` raw bytes that follow a response frame (a chunk).
    async fn read_raw(&mut self, out: &mut [u8]) -> Result<(), Error> {
        match self {
            Self::Quic { recv, .. } => read_exact_raw(recv, out).await,
            Self::Tcp(r) => r.read_raw(out).await,
        }
    }
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

pub(crate) async fn resolve(addr: &RelayAddress) -> Result<SocketAddr, Error> {
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
        Self::connect_from(addr, None).await
    }

    /// As [`RelayClient::connect`], from the local address `bind` if given (a machine with
    /// several addresses; tests that tell clients apart by address).
    ///
    /// # Errors
    /// As [`RelayClient::connect`]; [`Error::Io`] if `bind` cannot be bound.
    pub async fn connect_from(
        addr: &RelayAddress,
        bind: Option<std::net::IpAddr>,
    ) -> Result<Self, Error> {
        let remote = resolve(addr).await?;
        let bind = match bind {
            Some(ip) => SocketAddr::new(ip, 0),
            None if remote.is_ipv6() => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
            None => SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0)),
        };
        let endpoint = client_endpoint(bind)?;
        let mut c = Self::connect_with_alpn(&endpoint, addr, ALPN).await?;
        if let Conn::Quic { endpoint: e, .. } = &mut c.conn {
            *e = Some(endpoint);
        }
        Ok(c)
    }

    /// Connects by `route`: QUIC with its own socket, or TCP directly or through SOCKS5.
    ///
    /// # Errors
    /// As [`RelayClient::connect`]; through a proxy also [`Error::ProxyUnreachable`] and
    /// [`Error::Proxy`]. A proxy that fails is never bypassed.
    pub async fn connect_via(addr: &RelayAddress, route: &Route) -> Result<Self, Error> {
        Self::connect_via_from(addr, route, None).await
    }

    /// As [`RelayClient::connect_via`], from the local address `bind` if given (QUIC and
    /// direct TCP; through a proxy the proxy's connection is what the relay sees).
    ///
    /// # Errors
    /// As [`RelayClient::connect_via`].
    pub async fn connect_via_from(
        addr: &RelayAddress,
        route: &Route,
        bind: Option<std::net::IpAddr>,
    ) -> Result<Self, Error> {
        match route {
            Route::Quic => Self::connect_from(addr, bind).await,
            Route::Tcp => {
                let conn = TcpConn::connect_from(addr, None, ALPN, bind).await?;
                Ok(Self {
                    conn: Conn::Tcp(conn),
                })
            }
            Route::Socks5(s) => Self::connect_tcp(addr, Some(s), ALPN).await,
        }
    }

    /// Connects over TCP+TLS (through `socks` if given), offering `alpn`.
    ///
    /// # Errors
    /// As [`RelayClient::connect_via`].
    pub async fn connect_tcp(
        addr: &RelayAddress,
        socks: Option<&Socks5>,
        alpn: &[u8],
    ) -> Result<Self, Error> {
        let conn = TcpConn::connect(addr, socks, alpn).await?;
        Ok(Self {
            conn: Conn::Tcp(conn),
        })
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
            conn: Conn::Quic {
                conn,
                endpoint: None,
            },
        })
    }

    /// The underlying QUIC connection; `None` over TCP.
    #[must_use]
    pub fn quic_connection(&self) -> Option<&quinn::Connection> {
        match &self.conn {
            Conn::Quic { conn, .. } => Some(conn),
            Conn::Tcp(_) => None,
        }
    }

    /// Whether this client runs over TCP.
    #[must_use]
    pub fn is_tcp(&self) -> bool {
        matches!(self.conn, Conn::Tcp(_))
    }

    /// Resolves when the connection has ended (closed by either side, or lost).
    pub async fn closed(&self) {
        match &self.conn {
            Conn::Quic { conn, .. } => {
                conn.closed().await;
            }
            Conn::Tcp(t) => t.closed().await,
        }
    }

    /// Closes the connection (code 0) without waiting.
    pub fn close(&self) {
        match &self.conn {
            Conn::Quic { conn, .. } => conn.close(0u32.into(), b""),
            Conn::Tcp(t) => t.close(),
        }
    }

    /// Closes the connection and waits, at most `within`, until the relay has been told:
    /// for QUIC until the endpoint this client owns is idle (the close was sent and
    /// acknowledged or timed out), for TCP until CLOSE and TLS close_notify are written and
    /// the socket shut down. A relay then counts the connection closed at once.
    pub async fn close_and_wait(&self, within: Duration) {
        match &self.conn {
            Conn::Quic { conn, endpoint } => {
                conn.close(0u32.into(), b"");
                if let Some(e) = endpoint {
                    let _ = tokio::time::timeout(within, e.wait_idle()).await;
                }
            }
            Conn::Tcp(t) => {
                let _ = tokio::time::timeout(within, t.close_and_wait()).await;
            }
        }
    }

    /// Opens a request stream and sends `req`; the encoded frame (which may hold fetch
    /// secrets) is wiped once written.
    async fn open(&self, req: &Request) -> Result<Reply, Error> {
        let mut frame = req.encode();
        let r = self.open_raw(&frame[..]).await;
        frame.zeroize();
        r
    }

    /// Opens a stream, sends `bytes` and ends the sending side.
    async fn open_raw(&self, bytes: &[u8]) -> Result<Reply, Error> {
        match &self.conn {
            Conn::Quic { conn, .. } => {
                let (mut send, recv) = conn.open_bi().await?;
                if bytes.len() == hush_proto::FRAME_LEN {
                    let mut frame = [0u8; hush_proto::FRAME_LEN];
                    frame.copy_from_slice(bytes);
                    let r = write_frame(&mut send, &frame).await;
                    frame.zeroize();
                    r?;
                    send.finish().map_err(Error::stream)?;
                } else if send.write_all(bytes).await.is_ok() {
                    // The relay may stop reading an oversized request before it is all
                    // sent; what it answers is still readable.
                    let _ = send.finish();
                }
                Ok(Reply::Quic { _send: send, recv })
            }
            Conn::Tcp(t) => t.request(bytes).map(Reply::Tcp),
        }
    }

    /// Sends raw bytes as a request stream and returns every response frame until the relay
    /// finishes the stream. For tests of malformed input; `bytes` need not be a valid frame.
    ///
    /// # Errors
    /// [`Error::Stream`]/[`Error::Connection`] on transport failure, [`Error::Protocol`] if a
    /// response does not decode.
    pub async fn raw_request(&self, bytes: &[u8]) -> Result<Vec<Response>, Error> {
        let mut reply = self.open_raw(bytes).await?;
        let mut out = Vec::new();
        while let Some(r) = reply.next().await? {
            out.push(r);
        }
        Ok(out)
    }

    async fn single(&self, req: &Request) -> Result<Response, Error> {
        let mut reply = self.open(req).await?;
        match reply.next().await? {
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
        let mut reply = self.open(req).await?;
        let mut deliveries = Vec::new();
        loop {
            match reply.next().await? {
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

    /// Uploads one chunk (docs/PROTOCOL.md II.4.3): `PutChunk(id)` followed by its
    /// [`CHUNK_LEN`] bytes on one stream. Returns whether it was stored now (`false`: a chunk
    /// under that id was already stored, the put is idempotent).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `data` is not [`CHUNK_LEN`] bytes; [`Error::Relay`]
    /// (`ChunkStoreFull`, `ChunkBusy`, `ChunksUnsupported`, ...), or a transport error (then
    /// the chunk may or may not be stored; putting it again is harmless).
    pub async fn put_chunk(&self, id: ChunkId, data: &[u8]) -> Result<bool, Error> {
        if data.len() != CHUNK_LEN {
            return Err(Error::InvalidArgument(hush_proto::Error::BadField(
                "chunk length",
            )));
        }
        let mut reply = self
            .open_with_trailer(&Request::PutChunk { id }, Some(data))
            .await?;
        match reply.next().await? {
            Some(Response::ChunkStored { fresh }) => Ok(fresh),
            Some(Response::Error(e)) => Err(Error::Relay(e)),
            _ => Err(Error::UnexpectedResponse("expected ChunkStored")),
        }
    }

    /// Opens a stream and sends the frame of `req`, then `trailer` (a chunk), then FIN.
    async fn open_with_trailer(
        &self,
        req: &Request,
        trailer: Option<&[u8]>,
    ) -> Result<Reply, Error> {
        let Some(data) = trailer else {
            return self.open(req).await;
        };
        let mut frame = req.encode();
        let reply = match &self.conn {
            Conn::Quic { conn, .. } => {
                let (mut send, recv) = conn.open_bi().await?;
                // The relay may refuse the request from its frame and stop reading (ChunkBusy,
                // ChunksUnsupported): its answer is still readable.
                if write_frame(&mut send, &frame).await.is_ok()
                    && send.write_all(data).await.is_ok()
                {
                    let _ = send.finish();
                }
                Reply::Quic { _send: send, recv }
            }
            Conn::Tcp(t) => {
                let mut bytes =
                    zeroize::Zeroizing::new(Vec::with_capacity(frame.len() + data.len()));
                bytes.extend_from_slice(&frame[..]);
                bytes.extend_from_slice(data);
                Reply::Tcp(t.request(&bytes)?)
            }
        };
        frame.zeroize();
        Ok(reply)
    }

    /// Downloads the chunk `secret` opens: its [`CHUNK_LEN`] bytes.
    ///
    /// # Errors
    /// [`Error::Relay`] (`ChunkNotFound`, `ChunkBusy`, ...), or a transport/protocol error
    /// (a stream that ends inside the chunk is `Truncated`).
    pub async fn get_chunk(&self, secret: ChunkSecret) -> Result<Vec<u8>, Error> {
        let mut reply = self.open(&Request::GetChunk { secret }).await?;
        match reply.next().await? {
            Some(Response::Chunk) => {
                let mut data = vec![0u8; CHUNK_LEN];
                reply.read_raw(&mut data).await?;
                Ok(data)
            }
            Some(Response::Error(e)) => Err(Error::Relay(e)),
            _ => Err(Error::UnexpectedResponse("expected Chunk")),
        }
    }

    /// Deletes the chunk `secret` opens.
    ///
    /// # Errors
    /// [`Error::Relay`] (`ChunkNotFound` if none is stored), or a transport error.
    pub async fn delete_chunk(&self, secret: ChunkSecret) -> Result<(), Error> {
        match self.single(&Request::DeleteChunk { secret }).await? {
            Response::ChunkDeleted => Ok(()),
            _ => Err(Error::UnexpectedResponse("expected ChunkDeleted")),
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
        let mut reply = self.open(req).await?;
        match reply.next().await? {
            Some(Response::Subscribed { count }) => Ok(Subscription { reply, count }),
            Some(Response::Error(e)) => Err(Error::Relay(e)),
            _ => Err(Error::UnexpectedResponse("expected Subscribed")),
        }
    }
}

/// Private routing (docs/PROTOCOL.md II.4.2).
impl RelayClient {
    /// This relay's forwarding-key statement (unverified: see [`KeyStatement::verify`]).
    ///
    /// # Errors
    /// [`Error::Relay`], or a transport/protocol error.
    pub async fn forward_key(&self) -> Result<KeyStatement, Error> {
        match self.single(&Request::ForwardKey).await? {
            Response::ForwardKey(s) => Ok(s),
            _ => Err(Error::UnexpectedResponse("expected ForwardKey")),
        }
    }

    /// The statement of `destination`, fetched by this relay over its connection there, and
    /// verified against the destination's pin.
    ///
    /// # Errors
    /// [`Error::ForwardKeyRefused`] if it does not verify (this relay substituted it);
    /// [`Error::Relay`] (`ForwardingDisabled`, `ForwardUnreachable`, ...), or a
    /// transport/protocol error.
    pub async fn fetch_forward_key(&self, destination: &Destination) -> Result<VerifiedKey, Error> {
        let req = Request::FetchForwardKey {
            destination: destination.clone(),
        };
        match self.single(&req).await? {
            Response::ForwardKey(s) => s.verify(&destination.address().pin).map_err(|e| match e {
                hush_proto::Error::KeyStatement(why) => Error::ForwardKeyRefused(why),
                _ => Error::ForwardKeyRefused("statement"),
            }),
            _ => Err(Error::UnexpectedResponse("expected ForwardKey")),
        }
    }

    /// Asks this relay to pass `sealed` on to `destination`; the destination's sealed answer.
    ///
    /// # Errors
    /// [`Error::Relay`] with this relay's or the destination's refusal, or a
    /// transport/protocol error.
    pub async fn forward(
        &self,
        destination: &Destination,
        sealed: SealedRequest,
    ) -> Result<SealedAnswer, Error> {
        let req = Request::Forward {
            destination: destination.clone(),
            sealed,
        };
        match self.single(&req).await? {
            Response::Forwarded(a) => Ok(a),
            _ => Err(Error::UnexpectedResponse("expected Forwarded")),
        }
    }

    /// Hands a sealed request to this relay, its destination (what a forwarding relay does).
    ///
    /// # Errors
    /// [`Error::Relay`] (`ForwardReplay`, `ForwardUnsealable`, `RateLimited`, ...), or a
    /// transport/protocol error.
    pub async fn deliver(&self, sealed: SealedRequest) -> Result<SealedAnswer, Error> {
        match self.single(&Request::Deliver { sealed }).await? {
            Response::Forwarded(a) => Ok(a),
            _ => Err(Error::UnexpectedResponse("expected Forwarded")),
        }
    }

    /// Deposits through this relay to `destination`, whose forwarding key is `key`:
    /// `request` (a Deposit or DepositStamped) is sealed with a fresh ephemeral key under
    /// request id `id` (the same for every retry of one message), forwarded, and the
    /// answer opened.
    ///
    /// # Errors
    /// [`Error::Relay`] with the destination's refusal (`MailboxFull`, `StampTooWeak`, ...)
    /// or a relay's on the way; [`Error::ForwardAnswerUnsealable`]; a transport error.
    pub async fn forward_deposit(
        &self,
        destination: &Destination,
        key: &VerifiedKey,
        id: RequestId,
        request: Request,
    ) -> Result<EnvelopeId, Error> {
        let mut ephemeral = zeroize::Zeroizing::new([0u8; 32]);
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), ephemeral.as_mut())
            .map_err(|_| Error::Tls("no randomness for an ephemeral key".into()))?;
        let inner = InnerRequest { id, request };
        let (sealed, keys) =
            forward::seal_request(key, *ephemeral, &inner).map_err(Error::InvalidArgument)?;
        let answer = self.forward(destination, sealed).await?;
        match forward::open_answer(&keys, &id, &answer) {
            Ok(InnerResponse::Deposited(e)) => Ok(e),
            Ok(InnerResponse::Error(f)) => Err(Error::Relay(f)),
            Err(_) => Err(Error::ForwardAnswerUnsealable),
        }
    }
}

/// Private routing of file chunks (docs/PROTOCOL.md II.4.4).
impl RelayClient {
    /// Sends `req` (a ForwardChunk or DeliverChunk) with its sealed chunk `trailer`, and
    /// reads the sealed answer and, when its flag says so, the sealed chunk after it.
    async fn chunk_exchange(
        &self,
        req: &Request,
        trailer: Option<&[u8]>,
    ) -> Result<(SealedChunkAnswer, Option<Vec<u8>>), Error> {
        let mut reply = self.open_with_trailer(req, trailer).await?;
        match reply.next().await? {
            Some(Response::ChunkForwarded(a)) => {
                let data = if a.trailer {
                    let mut data = vec![0u8; CHUNK_LEN];
                    reply.read_raw(&mut data).await?;
                    Some(data)
                } else {
                    None
                };
                Ok((a, data))
            }
            Some(Response::Error(e)) => Err(Error::Relay(e)),
            _ => Err(Error::UnexpectedResponse("expected ChunkForwarded")),
        }
    }

    /// Asks this relay to pass a sealed chunk request (and a put's sealed chunk) on to
    /// `destination`; the destination's sealed answer and a get's sealed chunk.
    ///
    /// # Errors
    /// [`Error::Relay`] with this relay's or the destination's plain refusal
    /// (`ForwardUnreachable`, `ForwardReplay`, `ChunkBusy`, ...), or a transport error.
    pub async fn forward_chunk(
        &self,
        destination: &Destination,
        sealed: SealedChunkRequest,
        trailer: Option<&[u8]>,
    ) -> Result<(SealedChunkAnswer, Option<Vec<u8>>), Error> {
        let req = Request::ForwardChunk {
            destination: destination.clone(),
            sealed,
        };
        self.chunk_exchange(&req, trailer).await
    }

    /// Hands a sealed chunk request to this relay, its destination (what a forwarding relay
    /// does).
    ///
    /// # Errors
    /// As [`RelayClient::forward_chunk`].
    pub async fn deliver_chunk(
        &self,
        sealed: SealedChunkRequest,
        trailer: Option<&[u8]>,
    ) -> Result<(SealedChunkAnswer, Option<Vec<u8>>), Error> {
        self.chunk_exchange(&Request::DeliverChunk { sealed }, trailer)
            .await
    }

    /// Runs the chunk request `request` (PutChunk with its `chunk`, GetChunk, DeleteChunk)
    /// at `destination` through this relay, sealed with a fresh ephemeral key to `key`.
    ///
    /// # Errors
    /// [`Error::Relay`] with the destination's refusal (sealed or plain) or a relay's on the
    /// way; [`Error::ForwardAnswerUnsealable`] if the answer or its chunk does not open; a
    /// transport error.
    pub async fn forward_chunk_request(
        &self,
        destination: &Destination,
        key: &VerifiedKey,
        request: &Request,
        chunk: Option<&[u8]>,
    ) -> Result<ChunkAnswer, Error> {
        let mut ephemeral = zeroize::Zeroizing::new([0u8; 32]);
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), ephemeral.as_mut())
            .map_err(|_| Error::Tls("no randomness for an ephemeral key".into()))?;
        let (sealed, trailer, pending) =
            forward_chunk::seal_chunk_request(key, *ephemeral, request, chunk)
                .map_err(Error::InvalidArgument)?;
        let (answer, data) = self
            .forward_chunk(destination, sealed, trailer.as_deref())
            .await?;
        match pending.open_answer(&answer, data) {
            Ok(ChunkAnswer::Error(f)) => Err(Error::Relay(f)),
            Ok(a) => Ok(a),
            Err(_) => Err(Error::ForwardAnswerUnsealable),
        }
    }

    /// [`RelayClient::put_chunk`] at `destination` through this relay.
    ///
    /// # Errors
    /// As [`RelayClient::forward_chunk_request`].
    pub async fn forward_put_chunk(
        &self,
        destination: &Destination,
        key: &VerifiedKey,
        id: ChunkId,
        data: &[u8],
    ) -> Result<bool, Error> {
        if data.len() != CHUNK_LEN {
            return Err(Error::InvalidArgument(hush_proto::Error::BadField(
                "chunk length",
            )));
        }
        let req = Request::PutChunk { id };
        match self
            .forward_chunk_request(destination, key, &req, Some(data))
            .await?
        {
            ChunkAnswer::Stored { fresh } => Ok(fresh),
            _ => Err(Error::ForwardAnswerUnsealable),
        }
    }

    /// [`RelayClient::get_chunk`] at `destination` through this relay.
    ///
    /// # Errors
    /// As [`RelayClient::forward_chunk_request`].
    pub async fn forward_get_chunk(
        &self,
        destination: &Destination,
        key: &VerifiedKey,
        secret: ChunkSecret,
    ) -> Result<Vec<u8>, Error> {
        let req = Request::GetChunk { secret };
        match self
            .forward_chunk_request(destination, key, &req, None)
            .await?
        {
            ChunkAnswer::Chunk(data) => Ok(data),
            _ => Err(Error::ForwardAnswerUnsealable),
        }
    }

    /// [`RelayClient::delete_chunk`] at `destination` through this relay.
    ///
    /// # Errors
    /// As [`RelayClient::forward_chunk_request`].
    pub async fn forward_delete_chunk(
        &self,
        destination: &Destination,
        key: &VerifiedKey,
        secret: ChunkSecret,
    ) -> Result<(), Error> {
        let req = Request::DeleteChunk { secret };
        match self
            .forward_chunk_request(destination, key, &req, None)
            .await?
        {
            ChunkAnswer::Deleted => Ok(()),
            _ => Err(Error::ForwardAnswerUnsealable),
        }
    }
}

/// A live subscription. Dropping it ends the subscription.
#[derive(Debug)]
pub struct Subscription {
    reply: Reply,
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
        match self.reply.next().await? {
            Some(Response::Envelope(d)) => Ok(d),
            Some(Response::Error(e)) => Err(Error::Relay(e)),
            Some(_) => Err(Error::UnexpectedResponse("expected Envelope")),
            None => Err(Error::UnexpectedResponse("subscription ended")),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Tell the relay to stop pushing on this stream (over TCP the stream's own drop
        // sends STOP).
        if let Reply::Quic { recv, .. } = &mut self.reply {
            let _ = recv.stop(0u32.into());
        }
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
