//! The relay's TCP transport: TLS 1.3 over TCP carrying cells (docs/PROTOCOL.md II.1.1),
//! for clients that cannot use UDP (Tor, networks that drop it).
//!
//! Owns: the TLS handshake of an accepted TCP connection (bounded by the request timeout),
//! reading and decoding cells, the connection's [`StreamTable`], one request-handling task
//! per stream (the same [`server::handle_stream`] QUIC streams get, through the
//! [`RequestRecv`]/[`ResponseSend`] halves defined here), the single writer of cells, the
//! idle timeout, and closing with a CLOSE cell. Admission (the connection limit) and
//! shutdown draining are the server's: connections run in its set.
//! Must never log a peer address or stream bytes, never buffer more than one frame and a
//! byte per stream, and never let one connection's malformed cells affect another.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hush_proto::FRAME_LEN;
use hush_proto::mux::{
    CELL_LEN, Cell, STREAM_READ_LIMIT, StreamEvent, StreamId, StreamTable, close_code, decode_cell,
    stream_code,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use zeroize::Zeroizing;

use crate::admission::Ticket;
use crate::metrics::ConnectionEnd;
use crate::server::{
    ConnState, OpenGuard, REQUEST_TIMEOUT, RequestRecv, ResponseSend, Shared, handle_stream,
    wait_shutdown,
};

/// Cells waiting for the writer. Request tasks wait when it is full, so a client that does
/// not read slows only its own connection.
const WRITE_QUEUE: usize = 64;

/// Cells read ahead of the connection task.
const CELLS_IN: usize = 4;

type CellBuf = Box<[u8; CELL_LEN]>;

/// What the stream halves tell the connection task.
enum Ctl {
    /// The request task stopped reading this stream: send STOP, discard its later data.
    StopReading(StreamId),
    /// The request task ended; `finished` if it sent FIN (else the stream is reset).
    Done { stream: StreamId, finished: bool },
}

/// What the connection task hands a stream's reading half.
enum Chunk {
    Data(Zeroizing<Vec<u8>>, bool),
    Reset,
}

/// Serves one accepted TCP connection to its end. Runs in the server's connection set.
pub(crate) async fn handle_connection(
    tcp: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
    ticket: Ticket,
) {
    let _ = tcp.set_nodelay(true);
    let peer = tcp
        .peer_addr()
        .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |a| {
            a.ip()
        });
    // A handshake that does not complete in time holds a connection slot for nothing.
    let tls = match tokio::time::timeout(REQUEST_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(t)) => t,
        // Failed handshakes (wrong ALPN, bad TLS, garbage) are the client's problem.
        _ => return,
    };
    shared.metrics.connection_opened();
    shared.metrics.tcp_connection_opened();
    let _open = OpenGuard(shared.metrics.clone());
    let idle = Duration::from_secs(shared.limits.idle_timeout_secs.0);
    let max_streams = usize::try_from(shared.limits.max_streams_per_connection.0).unwrap_or(64);
    let (mut reader, mut writer_half) = tokio::io::split(tls);
    let (cells, mut queue) = mpsc::channel::<CellBuf>(WRITE_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(cell) = queue.recv().await {
            if writer_half.write_all(&cell[..]).await.is_err() {
                return;
            }
            if queue.is_empty() && writer_half.flush().await.is_err() {
                return;
            }
        }
        // Every sender is gone: the CLOSE cell was the last. close_notify, then FIN.
        let _ = writer_half.shutdown().await;
    });

    let state = ConnState::new(&shared, ticket, peer);
    let mut table = StreamTable::new(max_streams);
    let mut streams: HashMap<StreamId, StreamEnds> = HashMap::new();
    let (ctl_tx, mut ctl) = mpsc::unbounded_channel::<Ctl>();
    let mut tasks = JoinSet::new();
    let mut shutdown = shared.shutdown.clone();
    let mut shutting_down = false;
    // Reading a cell is not cancel-safe (a partial read dropped by `select!` would lose
    // bytes), so one task reads whole cells and hands them over; the small queue keeps TCP
    // backpressure on a client that sends faster than its streams are served.
    let (cell_tx, mut cells_in) = mpsc::channel::<Zeroizing<Vec<u8>>>(CELLS_IN);
    let read_task = tokio::spawn(async move {
        loop {
            let mut buf = Zeroizing::new(vec![0u8; CELL_LEN]);
            if reader.read_exact(&mut buf[..]).await.is_err() || cell_tx.send(buf).await.is_err() {
                return;
            }
        }
    });
    let idle_at = tokio::time::sleep(idle);
    tokio::pin!(idle_at);
    let (close, ended) = loop {
        tokio::select! {
            received = cells_in.recv() => {
                let Some(buf) = received else {
                    // The client went away without CLOSE; nobody to tell.
                    break (close_code::NORMAL, ConnectionEnd::Lost);
                };
                idle_at.as_mut().reset(tokio::time::Instant::now() + idle);
                let Ok(cell) = decode_cell(&buf) else {
                    break (close_code::MALFORMED_CELL, ConnectionEnd::Lost);
                };
                let event = match table.handle_cell(cell) {
                    Ok(e) => e,
                    Err(code) => break (code, ConnectionEnd::Lost),
                };
                match event {
                    StreamEvent::Nothing => {}
                    StreamEvent::Closed(_) => break (close_code::NORMAL, ConnectionEnd::Client),
                    StreamEvent::Opened { stream, bytes, fin } if shutting_down => {
                        // As QUIC stops accepting streams: this one is not served.
                        let _ = (bytes, fin);
                        refuse(&cells, stream).await;
                        table.relay_done(stream);
                    }
                    StreamEvent::Opened { stream, bytes, fin } => {
                        let (data_tx, data_rx) = mpsc::unbounded_channel();
                        let (stop_tx, stop_rx) = watch::channel(false);
                        let finished = Arc::new(AtomicBool::new(false));
                        let recv = TcpRecv { stream, data: data_rx, ctl: ctl_tx.clone(), stopped_reading: false, pending: Zeroizing::new(Vec::new()), ended: false };
                        let send = TcpSend { stream, cells: cells.clone(), stopped: stop_rx, finished: finished.clone() };
                        let mut ends = StreamEnds { data: data_tx, stop: stop_tx, received: 0, limit: STREAM_READ_LIMIT };
                        ends.deliver(bytes, fin);
                        streams.insert(stream, ends);
                        let (shared, state, ctl_tx) = (shared.clone(), state.clone(), ctl_tx.clone());
                        tasks.spawn(async move {
                            handle_stream(send, recv, shared, state).await;
                            let finished = finished.load(Ordering::Acquire);
                            let _ = ctl_tx.send(Ctl::Done { stream, finished });
                        });
                    }
                    StreamEvent::Data { stream, bytes, fin } => {
                        if let Some(ends) = streams.get_mut(&stream) {
                            ends.deliver(bytes, fin);
                        }
                    }
                    StreamEvent::Reset(stream) => {
                        if let Some(ends) = streams.get(&stream) {
                            let _ = ends.data.send(Chunk::Reset);
                        }
                    }
                    StreamEvent::Stopped(stream) => {
                        if let Some(ends) = streams.get(&stream) {
                            let _ = ends.stop.send(true);
                        }
                    }
                    StreamEvent::Refused(stream) => refuse(&cells, stream).await,
                }
            }
            () = &mut idle_at => break (close_code::NORMAL, ConnectionEnd::Idle),
            () = state.evicted() => {
                // Idle long enough that a newcomer took the slot (as for QUIC).
                shared.metrics.connection_evicted();
                break (close_code::EVICTED, ConnectionEnd::Evicted);
            }
            Some(c) = ctl.recv() => handle_ctl(c, &cells, &mut table, &mut streams).await,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            () = wait_shutdown(&mut shutdown), if !shutting_down => {
                shutting_down = true;
                if tasks.is_empty() {
                    break (close_code::SHUTTING_DOWN, ConnectionEnd::Shutdown);
                }
            }
        }
        if shutting_down && tasks.is_empty() {
            break (close_code::SHUTTING_DOWN, ConnectionEnd::Shutdown);
        }
    };
    shared.metrics.connection_ended(ended);
    read_task.abort();
    // For a shutdown, in-flight requests finish and answer (the server bounds the drain).
    // Otherwise nobody will read the answers: every stream is told the client stopped
    // reading and its data ended, so request tasks (a subscription too) end at once; a
    // deposit already submitted still completes its commit.
    if !shutting_down {
        for ends in streams.values() {
            let _ = ends.stop.send(true);
        }
        streams.clear();
    }
    if tokio::time::timeout(REQUEST_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tasks.shutdown().await;
    }
    while let Ok(c) = ctl.try_recv() {
        handle_ctl(c, &cells, &mut table, &mut streams).await;
    }
    if let Ok(cell) = (Cell::Close { code: close }).encode() {
        let _ = cells.send(cell).await;
    }
    drop(cells);
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, writer).await;
}

/// The connection task's handles on one stream.
struct StreamEnds {
    data: mpsc::UnboundedSender<Chunk>,
    stop: watch::Sender<bool>,
    /// Bytes handed over so far; beyond [`STREAM_READ_LIMIT`] the rest is dropped (the
    /// reading half has what it needs to answer `Oversized`).
    received: usize,
    /// Bytes of the stream kept: one frame and a byte, and a chunk more for PutChunk.
    limit: usize,
}

impl StreamEnds {
    fn deliver(&mut self, bytes: &[u8], fin: bool) {
        // A PutChunk stream carries its chunk after the frame (docs/PROTOCOL.md II.4.3), and
        // so may a ForwardChunk or DeliverChunk (II.4.4):
        // the kind, byte 1 of the stream, decides how much of it is kept.
        if self.received < 2
            && let Some(&kind) = bytes.get(1 - self.received)
        {
            self.limit = STREAM_READ_LIMIT + hush_proto::chunk::request_max_trailer_len(kind);
        }
        let limit = self.limit;
        let room = limit.saturating_sub(self.received);
        let take = bytes.get(..room.min(bytes.len())).unwrap_or_default();
        self.received += take.len();
        let _ = self
            .data
            .send(Chunk::Data(Zeroizing::new(take.to_vec()), fin));
    }
}

async fn send_cell(cells: &mpsc::Sender<CellBuf>, cell: Cell<'_>) {
    if let Ok(c) = cell.encode() {
        let _ = cells.send(c).await;
    }
}

async fn refuse(cells: &mpsc::Sender<CellBuf>, stream: StreamId) {
    let code = stream_code::REFUSED;
    send_cell(cells, Cell::Reset { stream, code }).await;
    send_cell(cells, Cell::Stop { stream, code }).await;
}

async fn handle_ctl(
    c: Ctl,
    cells: &mpsc::Sender<CellBuf>,
    table: &mut StreamTable,
    streams: &mut HashMap<StreamId, StreamEnds>,
) {
    match c {
        Ctl::StopReading(stream) => {
            table.relay_stopped_reading(stream);
            let code = stream_code::CANCEL;
            send_cell(cells, Cell::Stop { stream, code }).await;
        }
        Ctl::Done { stream, finished } => {
            if !finished {
                let code = stream_code::CANCEL;
                send_cell(cells, Cell::Reset { stream, code }).await;
            }
            streams.remove(&stream);
            table.relay_done(stream);
        }
    }
}

/// The reading half of a TCP stream, as request handling sees it.
struct TcpRecv {
    stream: StreamId,
    data: mpsc::UnboundedReceiver<Chunk>,
    ctl: mpsc::UnboundedSender<Ctl>,
    stopped_reading: bool,
    /// Bytes received beyond what has been read so far.
    pending: Zeroizing<Vec<u8>>,
    /// The client's side has ended (FIN seen).
    ended: bool,
}

impl TcpRecv {
    /// Receives until `pending` holds more than `want` bytes or the client's side ends.
    async fn fill(&mut self, want: usize) -> Result<(), hush_transport::Error> {
        while self.pending.len() <= want && !self.ended {
            match self.data.recv().await {
                Some(Chunk::Data(bytes, fin)) => {
                    self.pending.extend_from_slice(&bytes);
                    self.ended = fin;
                }
                Some(Chunk::Reset) => {
                    return Err(hush_transport::Error::Stream("reset by the client".into()));
                }
                None => return Err(hush_transport::Error::Stream("connection ended".into())),
            }
        }
        Ok(())
    }
}

impl RequestRecv for TcpRecv {
    async fn read_frame(&mut self) -> Result<Zeroizing<Vec<u8>>, hush_transport::Error> {
        self.fill(FRAME_LEN - 1).await?;
        let rest = Zeroizing::new(
            self.pending
                .get(FRAME_LEN..)
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
        );
        let mut head = std::mem::replace(&mut self.pending, rest);
        head.truncate(FRAME_LEN);
        Ok(head)
    }

    async fn read_trailer(&mut self, len: usize) -> Result<Vec<u8>, hush_transport::Error> {
        self.fill(len).await?;
        let n = self.pending.len();
        if n > len {
            return Err(hush_transport::Error::Protocol(
                hush_proto::Error::Oversized(FRAME_LEN + n),
            ));
        }
        if n < len {
            return Err(hush_transport::Error::Protocol(
                hush_proto::Error::Truncated(FRAME_LEN + n),
            ));
        }
        Ok(std::mem::take(&mut *self.pending))
    }

    fn stop(&mut self) {
        if !std::mem::replace(&mut self.stopped_reading, true) {
            let _ = self.ctl.send(Ctl::StopReading(self.stream));
        }
    }
}

/// The writing half of a TCP stream.
struct TcpSend {
    stream: StreamId,
    cells: mpsc::Sender<CellBuf>,
    stopped: watch::Receiver<bool>,
    finished: Arc<AtomicBool>,
}

impl ResponseSend for TcpSend {
    async fn write_frame(&mut self, frame: &[u8; FRAME_LEN]) -> bool {
        if *self.stopped.borrow() || self.finished.load(Ordering::Acquire) {
            return false;
        }
        let cell = Cell::Data {
            stream: self.stream,
            bytes: frame,
            fin: false,
        };
        match cell.encode() {
            Ok(c) => self.cells.send(c).await.is_ok(),
            Err(_) => false,
        }
    }

    async fn write_raw(&mut self, bytes: &[u8]) -> bool {
        for part in bytes.chunks(FRAME_LEN) {
            if *self.stopped.borrow() || self.finished.load(Ordering::Acquire) {
                return false;
            }
            let cell = Cell::Data {
                stream: self.stream,
                bytes: part,
                fin: false,
            };
            let sent = match cell.encode() {
                Ok(c) => self.cells.send(c).await.is_ok(),
                Err(_) => false,
            };
            if !sent {
                return false;
            }
        }
        true
    }

    async fn finish(&mut self) {
        // After the client's STOP the stream ends with RESET (sent when the task is done).
        if *self.stopped.borrow() || self.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        let cell = Cell::Data {
            stream: self.stream,
            bytes: &[],
            fin: true,
        };
        if let Ok(c) = cell.encode() {
            let _ = self.cells.send(c).await;
        }
    }

    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stopped.clone();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    }
}
