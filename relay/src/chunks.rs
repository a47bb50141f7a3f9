//! File chunk requests: PutChunk, GetChunk, DeleteChunk (docs/PROTOCOL.md II.4.3), also
//! when they arrive sealed in a DeliverChunk or pass through in a ForwardChunk (II.4.4):
//! both hold a chunk in memory and take a slot of the same limits.
//!
//! Owns: the relay's answers to the chunk commands, the in-flight limits that bound the
//! memory chunks take (per connection and over all connections; each request in flight
//! holds one 256 KiB chunk), and the expiry sweep of chunks.
//! Must never log or count anything per chunk, per file or per connection: metrics are
//! aggregate counters only, and no log line names a chunk.

use std::sync::Arc;

use hush_proto::{CHUNK_LEN, ChunkId, ErrorCode, ErrorFrame, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::clock::Clock;
use crate::config::Chunks as ChunkConfig;
use crate::server::{REQUEST_TIMEOUT, RequestRecv, ResponseSend};
use crate::store::{ChunkPut, ChunkStore};

/// How long a client should wait before retrying a request answered `ChunkBusy`, in
/// milliseconds (the time of a few chunk transfers on a fast link).
pub const BUSY_RETRY_MS: u32 = 200;

/// Chunks erased per sweep pass.
const SWEEP_CHUNKS: usize = 4096;

/// The relay-wide chunk state.
pub(crate) struct ChunkService {
    store: Option<Arc<dyn ChunkStore>>,
    in_flight: Arc<Semaphore>,
    per_connection: usize,
    expiry_secs: u64,
    clock: Clock,
}

/// A chunk request allowed to run: holds its share of both in-flight limits.
pub(crate) struct Slot {
    _global: OwnedSemaphorePermit,
    _connection: OwnedSemaphorePermit,
}

impl ChunkService {
    /// `store` is `None` when chunks are off or the backend stores none.
    pub(crate) fn new(
        store: Option<Arc<dyn ChunkStore>>,
        config: &ChunkConfig,
        clock: Clock,
    ) -> Self {
        Self {
            store: if config.enabled { store } else { None },
            in_flight: Arc::new(Semaphore::new(
                usize::try_from(config.max_in_flight.0).unwrap_or(usize::MAX),
            )),
            per_connection: usize::try_from(config.max_in_flight_per_connection.0)
                .unwrap_or(usize::MAX),
            expiry_secs: config.expiry_secs.0,
            clock,
        }
    }

    /// A fresh per-connection limit.
    pub(crate) fn connection_limit(&self) -> Arc<Semaphore> {
        Arc::new(Semaphore::new(self.per_connection))
    }

    /// Takes a slot for one chunk request of a connection, or the error to answer.
    pub(crate) fn admit(&self, connection: &Arc<Semaphore>) -> Result<Slot, ErrorFrame> {
        if self.store.is_none() {
            return Err(ErrorFrame::new(ErrorCode::ChunksUnsupported));
        }
        self.admit_in_flight(connection)
    }

    /// Takes a slot for one ForwardChunk of a connection (docs/PROTOCOL.md II.4.4): it
    /// holds a chunk in memory on its way like any chunk request, and counts against the
    /// same limits, but needs no chunk storage here.
    pub(crate) fn admit_forwarding(&self, connection: &Arc<Semaphore>) -> Result<Slot, ErrorFrame> {
        self.admit_in_flight(connection)
    }

    fn admit_in_flight(&self, connection: &Arc<Semaphore>) -> Result<Slot, ErrorFrame> {
        let busy = ErrorFrame {
            code: ErrorCode::ChunkBusy,
            arg: BUSY_RETRY_MS,
        };
        let connection = connection.clone().try_acquire_owned().map_err(|_| busy)?;
        let global = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| busy)?;
        Ok(Slot {
            _global: global,
            _connection: connection,
        })
    }

    fn store(&self) -> Result<Arc<dyn ChunkStore>, ErrorFrame> {
        self.store
            .clone()
            .ok_or(ErrorFrame::new(ErrorCode::ChunksUnsupported))
    }

    fn cutoff(&self) -> u64 {
        self.clock.now().saturating_sub(self.expiry_secs)
    }

    /// Chunks stored now (an aggregate).
    pub(crate) fn stored(&self) -> u64 {
        self.store.as_ref().map_or(0, |s| s.chunk_stats().chunks)
    }

    /// Erases expired chunks; returns how many.
    pub(crate) async fn sweep(&self) -> u64 {
        let Some(store) = self.store.clone() else {
            return 0;
        };
        let cutoff = self.cutoff();
        let mut total = 0;
        loop {
            let s = store.clone();
            match tokio::task::spawn_blocking(move || s.sweep_chunks(cutoff, SWEEP_CHUNKS)).await {
                Ok(Ok(n)) => {
                    total += n;
                    if n < SWEEP_CHUNKS as u64 {
                        return total;
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "chunk expiry sweep failed");
                    return total;
                }
                Err(_) => return total,
            }
        }
    }
}

/// Reads the chunk (exactly [`CHUNK_LEN`] bytes, then the end of the stream) that follows a
/// request frame, within the request timeout: `Truncated` if it ends early or the time
/// passes, `Oversized` if more follows.
pub(crate) async fn read_chunk(recv: &mut impl RequestRecv) -> Result<Vec<u8>, ErrorFrame> {
    match tokio::time::timeout(REQUEST_TIMEOUT, recv.read_trailer(CHUNK_LEN)).await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(hush_transport::Error::Protocol(e))) => {
            recv.stop();
            Err(ErrorFrame::new(e.code().unwrap_or(ErrorCode::Truncated)))
        }
        Ok(Err(_)) => Err(ErrorFrame::new(ErrorCode::Truncated)),
        Err(_) => {
            recv.stop();
            Err(ErrorFrame::new(ErrorCode::Truncated))
        }
    }
}

/// PutChunk: reads the chunk that follows the frame, stores it, answers `ChunkStored`.
/// Returns the answer to send; the caller has the slot.
pub(crate) async fn put(
    svc: &ChunkService,
    id: ChunkId,
    recv: &mut impl RequestRecv,
) -> Result<Response, ErrorFrame> {
    svc.store()?;
    let data = read_chunk(recv).await?;
    store(svc, id, data).await
}

/// Stores a chunk that was read (a PutChunk's, or a forwarded put's once opened) durably;
/// answers `ChunkStored`.
pub(crate) async fn store(
    svc: &ChunkService,
    id: ChunkId,
    data: Vec<u8>,
) -> Result<Response, ErrorFrame> {
    let store = svc.store()?;
    let now = svc.clock.now();
    let r = tokio::task::spawn_blocking(move || store.put_chunk(&id, &data, now)).await;
    match r {
        Ok(Ok(ChunkPut::Stored)) => Ok(Response::ChunkStored { fresh: true }),
        Ok(Ok(ChunkPut::AlreadyStored)) => Ok(Response::ChunkStored { fresh: false }),
        Ok(Ok(ChunkPut::Full)) => Err(ErrorFrame::new(ErrorCode::ChunkStoreFull)),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "storing a chunk failed");
            Err(ErrorFrame::new(ErrorCode::Internal))
        }
        Err(_) => Err(ErrorFrame::new(ErrorCode::Internal)),
    }
}

/// GetChunk: the chunk's bytes, to be sent after a `Chunk` frame.
pub(crate) async fn get(svc: &ChunkService, id: ChunkId) -> Result<Vec<u8>, ErrorFrame> {
    let store = svc.store()?;
    let cutoff = svc.cutoff();
    match tokio::task::spawn_blocking(move || store.get_chunk(&id, cutoff)).await {
        Ok(Ok(Some(data))) => Ok(data),
        Ok(Ok(None)) => Err(ErrorFrame::new(ErrorCode::ChunkNotFound)),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "reading a chunk failed");
            Err(ErrorFrame::new(ErrorCode::Internal))
        }
        Err(_) => Err(ErrorFrame::new(ErrorCode::Internal)),
    }
}

/// DeleteChunk: erases the chunk; answers `ChunkDeleted` or `ChunkNotFound`.
pub(crate) async fn delete(svc: &ChunkService, id: ChunkId) -> Result<Response, ErrorFrame> {
    let store = svc.store()?;
    match tokio::task::spawn_blocking(move || store.delete_chunk(&id)).await {
        Ok(Ok(true)) => Ok(Response::ChunkDeleted),
        Ok(Ok(false)) => Err(ErrorFrame::new(ErrorCode::ChunkNotFound)),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "deleting a chunk failed");
            Err(ErrorFrame::new(ErrorCode::Internal))
        }
        Err(_) => Err(ErrorFrame::new(ErrorCode::Internal)),
    }
}

/// Sends a `Chunk` frame followed by the chunk's bytes.
pub(crate) async fn send_chunk(send: &mut impl ResponseSend, data: &[u8]) -> bool {
    send.write_frame(&Response::Chunk.encode()).await && send.write_raw(data).await
}
