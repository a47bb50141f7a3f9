//! The client side of the TCP transport: pinned TLS 1.3 over TCP carrying hush-proto cells
//! (docs/PROTOCOL.md II.1.1), directly or through a SOCKS5 proxy.
//!
//! Owns: the TCP connection (direct, or the proxy's CONNECT from [`crate::socks`]), the TLS
//! handshake with the same pin verifier as QUIC, one writer task and one reader task per
//! connection, stream ids, routing received cells to their stream, keep-alive PAD cells and
//! the CLOSE cell at the end.
//! Must never connect without verifying the pin, never resolve a host name itself when a
//! proxy is used (the proxy does, so no DNS query leaves this machine), and never log a
//! host, an address or stream bytes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hush_proto::mux::{CELL_LEN, Cell, StreamId, close_code, decode_cell, stream_code};
use hush_proto::{FRAME_LEN, Host, RelayAddress, Response, decode_response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use zeroize::Zeroizing;

use crate::socks::Socks5;
use crate::{Error, KEEP_ALIVE, tls};

/// How long closing waits for the CLOSE cell and TLS close_notify to be written.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Cells one stream may have waiting to be read before the reader waits for it.
const STREAM_QUEUE: usize = 64;

type CellBuf = Box<[u8; CELL_LEN]>;

/// What the reader hands a stream.
enum Chunk {
    Data(Zeroizing<Vec<u8>>, bool),
    Reset(u32),
}

struct Registry {
    /// The next stream id; past `u32::MAX` the connection has no more.
    next: u64,
    streams: HashMap<StreamId, mpsc::Sender<Chunk>>,
}

/// One TCP+TLS connection to a relay.
pub(crate) struct TcpConn {
    cells: mpsc::UnboundedSender<CellBuf>,
    registry: Arc<Mutex<Registry>>,
    /// Becomes `true` when the connection ended (either side).
    closed: watch::Receiver<bool>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The reading task, which ends when the relay ends its side.
    reader: Mutex<Option<tokio::task::JoinHandle<()>>>,
    closing: AtomicBool,
}

impl std::fmt::Debug for TcpConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpConn").finish_non_exhaustive()
    }
}

async fn resolve(addr: &RelayAddress) -> Result<SocketAddr, Error> {
    crate::client::resolve(addr).await
}

impl TcpConn {
    /// Connects to the relay's host and port over TCP (through `socks` if given), then TLS
    /// with the pin; `alpn` is offered.
    pub(crate) async fn connect(
        addr: &RelayAddress,
        socks: Option<&Socks5>,
        alpn: &[u8],
    ) -> Result<Self, Error> {
        Self::connect_from(addr, socks, alpn, None).await
    }

    /// As [`TcpConn::connect`], from the local address `bind` when connecting directly.
    pub(crate) async fn connect_from(
        addr: &RelayAddress,
        socks: Option<&Socks5>,
        alpn: &[u8],
        bind: Option<std::net::IpAddr>,
    ) -> Result<Self, Error> {
        let tcp = match socks {
            Some(proxy) => proxy.connect(&addr.host, addr.port).await?,
            None => {
                let remote = resolve(addr).await?;
                let connected = match bind {
                    None => TcpStream::connect(remote).await,
                    Some(ip) => {
                        let socket = if remote.is_ipv6() {
                            tokio::net::TcpSocket::new_v6()
                        } else {
                            tokio::net::TcpSocket::new_v4()
                        }
                        .map_err(|source| Error::Io {
                            what: "creating a TCP socket",
                            source,
                        })?;
                        socket
                            .bind(std::net::SocketAddr::new(ip, 0))
                            .map_err(|source| Error::Io {
                                what: "binding the client's TCP socket",
                                source,
                            })?;
                        socket.connect(remote).await
                    }
                };
                connected.map_err(|_| Error::Connect("TCP connection failed"))?
            }
        };
        let _ = tcp.set_nodelay(true);
        let (cfg, mismatch) = tls::client_config_noting_mismatch(addr.pin, alpn)?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        // As for QUIC: the host as SNI when it is a name, none for an IP literal.
        let name = match &addr.host {
            Host::Name(n) => rustls::pki_types::ServerName::try_from(n.clone())
                .map_err(|_| Error::Connect("invalid server name"))?,
            Host::Ip(ip) => rustls::pki_types::ServerName::IpAddress((*ip).into()),
        };
        let tls = match connector.connect(name, tcp).await {
            Ok(t) => t,
            Err(_) if mismatch.load(Ordering::SeqCst) => return Err(Error::PinMismatch),
            Err(e) => return Err(Error::Tls(tls_failure(&e))),
        };
        Ok(Self::start(tls))
    }

    fn start(tls: tokio_rustls::client::TlsStream<TcpStream>) -> Self {
        let (mut reader, mut writer_half) = tokio::io::split(tls);
        let (cells, mut queue) = mpsc::unbounded_channel::<CellBuf>();
        let (closed_tx, closed) = watch::channel(false);
        let closed_tx = Arc::new(closed_tx);
        let registry = Arc::new(Mutex::new(Registry {
            next: 1,
            streams: HashMap::new(),
        }));
        let writer_closed = closed_tx.clone();
        let writer = tokio::spawn(async move {
            loop {
                let next = tokio::time::timeout(KEEP_ALIVE, queue.recv()).await;
                let cell = match next {
                    Ok(Some(c)) => c,
                    Ok(None) => break,
                    // Idle: a PAD keeps the relay's idle timer from closing a subscription.
                    Err(_) => match Cell::Pad.encode() {
                        Ok(c) => c,
                        Err(_) => break,
                    },
                };
                let is_close = cell[0] == 0x04;
                if writer_half.write_all(&cell[..]).await.is_err() {
                    break;
                }
                if queue.is_empty() && writer_half.flush().await.is_err() {
                    break;
                }
                if is_close {
                    break;
                }
            }
            let _ = writer_half.shutdown().await;
            let _ = writer_closed.send(true);
        });
        let reader_registry = registry.clone();
        let reader_cells = cells.clone();
        let reader_task = tokio::spawn(async move {
            let mut buf = Zeroizing::new(vec![0u8; CELL_LEN]);
            loop {
                if reader.read_exact(&mut buf[..]).await.is_err() {
                    break;
                }
                // A relay that sends a cell that does not decode has broken the connection.
                let Ok(cell) = decode_cell(&buf) else {
                    if let Ok(c) = (Cell::Close {
                        code: close_code::MALFORMED_CELL,
                    })
                    .encode()
                    {
                        let _ = reader_cells.send(c);
                    }
                    break;
                };
                let (stream, chunk) = match cell {
                    Cell::Data { stream, bytes, fin } => {
                        (stream, Chunk::Data(Zeroizing::new(bytes.to_vec()), fin))
                    }
                    Cell::Reset { stream, code } => (stream, Chunk::Reset(code)),
                    // The client sends each request whole with FIN: nothing to stop.
                    Cell::Stop { .. } | Cell::Pad => continue,
                    Cell::Close { .. } => break,
                };
                let tx = reader_registry
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .streams
                    .get(&stream)
                    .cloned();
                // A stream the client dropped: its cells are discarded.
                if let Some(tx) = tx {
                    let _ = tx.send(chunk).await;
                }
            }
            // Every stream sees its channel end.
            reader_registry
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .streams
                .clear();
            let _ = closed_tx.send(true);
        });
        Self {
            cells,
            registry,
            closed,
            writer: Mutex::new(Some(writer)),
            reader: Mutex::new(Some(reader_task)),
            closing: AtomicBool::new(false),
        }
    }

    /// Opens a stream and sends `bytes` on it followed by FIN, in as few cells as possible
    /// (a whole request frame is one cell).
    pub(crate) fn request(&self, bytes: &[u8]) -> Result<TcpStreamRecv, Error> {
        if *self.closed.borrow() {
            return Err(Error::Stream("connection closed".into()));
        }
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        // The id is taken and the stream's cells queued under one lock: a relay refuses ids
        // out of order (PROTOCOL.md II.1.1), and two requests racing between the two steps
        // would queue 6 before 5 and lose the connection.
        let mut r = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let stream = u32::try_from(r.next)
            .map(StreamId)
            .map_err(|_| Error::Stream("stream ids exhausted: reconnect".into()))?;
        let mut chunks: Vec<&[u8]> = bytes.chunks(FRAME_LEN).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let last = chunks.len() - 1;
        let mut cells = Vec::with_capacity(chunks.len());
        for (i, chunk) in chunks.into_iter().enumerate() {
            let cell = Cell::Data {
                stream,
                bytes: chunk,
                fin: i == last,
            }
            .encode()
            .map_err(Error::InvalidArgument)?;
            cells.push(cell);
        }
        r.next += 1;
        r.streams.insert(stream, tx);
        for cell in cells {
            self.cells
                .send(cell)
                .map_err(|_| Error::Stream("connection closed".into()))?;
        }
        drop(r);
        Ok(TcpStreamRecv {
            stream,
            rx,
            buf: Zeroizing::new(Vec::new()),
            ended: false,
            cells: self.cells.clone(),
            registry: self.registry.clone(),
        })
    }

    /// Resolves when the connection has ended.
    pub(crate) async fn closed(&self) {
        let mut rx = self.closed.clone();
        let _ = rx.wait_for(|v| *v).await;
    }

    /// Sends CLOSE (normal) and starts TLS close_notify; does not wait.
    pub(crate) fn close(&self) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Ok(c) = (Cell::Close {
            code: close_code::NORMAL,
        })
        .encode()
        {
            let _ = self.cells.send(c);
        }
    }

    /// [`TcpConn::close`], then waits (bounded) until the close is written and the TCP
    /// connection shut down, and until the relay ended its side, so the relay frees it at
    /// once. The second wait matters: a process that exits with bytes from the relay
    /// unread makes its kernel answer with a reset, and a relay that reads the reset before
    /// the CLOSE counts the connection lost.
    pub(crate) async fn close_and_wait(&self) {
        self.close();
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let reader = self
            .reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            if let Some(w) = writer {
                let _ = w.await;
            }
            if let Some(r) = reader {
                let _ = r.await;
            }
        })
        .await;
    }
}

/// The reading side of one client stream. Dropping it before the relay ended the stream
/// sends STOP (the subscription's cancellation).
pub(crate) struct TcpStreamRecv {
    stream: StreamId,
    rx: mpsc::Receiver<Chunk>,
    buf: Zeroizing<Vec<u8>>,
    ended: bool,
    cells: mpsc::UnboundedSender<CellBuf>,
    registry: Arc<Mutex<Registry>>,
}

impl std::fmt::Debug for TcpStreamRecv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStreamRecv")
            .field("stream", &self.stream.0)
            .finish_non_exhaustive()
    }
}

impl TcpStreamRecv {
    /// The next whole response frame, or `None` if the relay ended the stream cleanly
    /// between frames.
    pub(crate) async fn read_response(&mut self) -> Result<Option<Response>, Error> {
        while self.buf.len() < FRAME_LEN && !self.ended {
            match self.rx.recv().await {
                Some(Chunk::Data(bytes, fin)) => {
                    self.buf.extend_from_slice(&bytes);
                    self.ended = fin;
                }
                Some(Chunk::Reset(code)) => {
                    self.ended = true;
                    return Err(Error::Stream(if code == stream_code::REFUSED {
                        "refused by the relay (too many streams)".into()
                    } else {
                        "reset by the relay".into()
                    }));
                }
                None => {
                    self.ended = true;
                    return Err(Error::Stream("connection closed".into()));
                }
            }
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        if self.buf.len() < FRAME_LEN {
            let n = self.buf.len();
            return Err(Error::Protocol(hush_proto::Error::Truncated(n)));
        }
        let rest = Zeroizing::new(self.buf.split_off(FRAME_LEN));
        let r = decode_response(&self.buf)
            .map(Some)
            .map_err(Error::Protocol);
        self.buf = rest;
        r
    }
}

impl TcpStreamRecv {
    /// Reads exactly `out.len()` raw bytes that follow a response frame (a chunk).
    pub(crate) async fn read_raw(&mut self, out: &mut [u8]) -> Result<(), Error> {
        while self.buf.len() < out.len() && !self.ended {
            match self.rx.recv().await {
                Some(Chunk::Data(bytes, fin)) => {
                    self.buf.extend_from_slice(&bytes);
                    self.ended = fin;
                }
                Some(Chunk::Reset(_)) => {
                    self.ended = true;
                    return Err(Error::Stream("reset by the relay".into()));
                }
                None => {
                    self.ended = true;
                    return Err(Error::Stream("connection closed".into()));
                }
            }
        }
        let n = self.buf.len();
        let Some(src) = self.buf.get(..out.len()) else {
            return Err(Error::Protocol(hush_proto::Error::Truncated(FRAME_LEN + n)));
        };
        out.copy_from_slice(src);
        let rest = Zeroizing::new(self.buf.split_off(out.len()));
        self.buf = rest;
        Ok(())
    }
}

impl Drop for TcpStreamRecv {
    fn drop(&mut self) {
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .streams
            .remove(&self.stream);
        if !self.ended {
            let cell = Cell::Stop {
                stream: self.stream,
                code: stream_code::CANCEL,
            };
            if let Ok(c) = cell.encode() {
                let _ = self.cells.send(c);
            }
        }
    }
}

/// Names a TLS failure without its details (which can name the peer).
fn tls_failure(e: &std::io::Error) -> String {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::AlertReceived(a)) => format!("handshake failed: alert {a:?}"),
        Some(rustls::Error::NoApplicationProtocol) => "no common ALPN".into(),
        Some(_) => "handshake failed".into(),
        None => "connection lost during the handshake".into(),
    }
}
