//! File chunks on the JetStream backend (docs/PROTOCOL.md II.4.3), so that relays sharing a
//! cluster serve each other's chunks as they serve each other's envelopes.
//!
//! Owns: the chunk stream `<stream>_CHUNKS` (file storage, the envelope stream's replicas):
//! one message per chunk on `<prefix>.ch.<hex storage key>`, its payload the `CHUNK_LEN`
//! bytes, its `Nats-Msg-Id` the hex storage key (a retried put within the duplicate window
//! lands once). Limits: one message per subject with discard *new* (a second put of a key is
//! refused by the cluster, answered as already stored), at most `chunks.max_stored_bytes` in
//! whole chunks (then `ChunkStoreFull`), max age `chunks.expiry_secs` (the cluster expires
//! chunks; the sweep has nothing to do). A delete erases the message (JetStream overwrites
//! it), as envelope deletes do; the Raft logs keep it until nats-server compacts them
//! (SECURITY.md).
//! Must never name a subject after a chunk id (only its storage key), never log a subject,
//! and never answer a put before the cluster acknowledged it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use hush_proto::{CHUNK_LEN, ChunkId};

use super::cluster::{Names, chunk_stream_config, ensure_stream};
use super::feed::MONITOR_EVERY;
use super::{JetStreamStore, Refusal, patiently, refusal};
use crate::Error;
use crate::config::{Chunks, JetStream as Settings};
use crate::store::{ChunkPut, ChunkStats, ChunkStore};

/// The chunk store of relays over one JetStream cluster.
pub struct JetStreamChunks {
    rt: tokio::runtime::Handle,
    js: jetstream::Context,
    stream: stream::Stream,
    names: Names,
    /// Chunks in the stream, as its last answer about itself said (an aggregate), read
    /// every [`MONITOR_EVERY`] by `counting`, which also sees the cluster's expiries.
    stored: Arc<AtomicU64>,
    counting: tokio::task::JoinHandle<()>,
}

impl Drop for JetStreamChunks {
    fn drop(&mut self) {
        self.counting.abort();
    }
}

impl std::fmt::Debug for JetStreamChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamChunks").finish_non_exhaustive()
    }
}

impl JetStreamStore {
    /// The chunk store beside this envelope store: creates or updates the chunk stream.
    ///
    /// # Errors
    /// [`Error::Storage`] if the cluster refuses the stream.
    pub async fn chunks(
        &self,
        settings: &Settings,
        chunks: &Chunks,
    ) -> Result<JetStreamChunks, Error> {
        let want = chunk_stream_config(
            &self.names,
            settings,
            chunks.max_chunks(),
            chunks.expiry_secs.0,
        );
        let stream = patiently("chunk stream", || ensure_stream(&self.js, want.clone())).await?;
        let stored = Arc::new(AtomicU64::new(0));
        let counting = tokio::spawn(count(stream.clone(), stored.clone()));
        Ok(JetStreamChunks {
            rt: self.rt.clone(),
            js: self.js.clone(),
            stream,
            names: self.names.clone(),
            stored,
            counting,
        })
    }
}

/// Reads how many chunks the stream holds every [`MONITOR_EVERY`], for the gauge (off the
/// put and delete path: they change the count, and so do other relays and expiry).
async fn count(stream: stream::Stream, stored: Arc<AtomicU64>) {
    loop {
        if let Ok(Ok(info)) = tokio::time::timeout(MONITOR_EVERY, stream.get_info()).await {
            stored.store(info.state.messages, Ordering::Relaxed);
        }
        tokio::time::sleep(MONITOR_EVERY).await;
    }
}

impl JetStreamChunks {
    /// The message holding the chunk stored under `key`, if any.
    async fn find(
        &self,
        key: &[u8; 32],
    ) -> Result<Option<jetstream::message::StreamMessage>, Error> {
        match self
            .stream
            .direct_get_last_for_subject(self.names.chunk(key))
            .await
        {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Storage(format!("direct get of a chunk: {e}"))),
        }
    }

    async fn put(&self, id: &ChunkId, data: &[u8]) -> Result<ChunkPut, Error> {
        let key = id.storage_key();
        if self.find(&key).await?.is_some() {
            return Ok(ChunkPut::AlreadyStored);
        }
        let publish = jetstream::message::PublishMessage::build()
            .payload(Bytes::copy_from_slice(data))
            .message_id(hex::encode(key));
        let acked = match self.js.send_publish(self.names.chunk(&key), publish).await {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match acked {
            Ok(ack) if ack.duplicate => Ok(ChunkPut::AlreadyStored),
            Ok(_) => Ok(ChunkPut::Stored),
            Err(e) => match refusal(&e) {
                // Another relay stored it between our read and our put.
                Some(Refusal::SubjectFull) => Ok(ChunkPut::AlreadyStored),
                Some(Refusal::StreamFull) => Ok(ChunkPut::Full),
                None => Err(Error::Storage(format!("chunk not acknowledged: {e}"))),
            },
        }
    }

    async fn get(&self, id: &ChunkId, cutoff: u64) -> Result<Option<Vec<u8>>, Error> {
        let Some(m) = self.find(&id.storage_key()).await? else {
            return Ok(None);
        };
        if m.payload.len() != CHUNK_LEN {
            return Err(Error::Storage("a chunk message of the wrong length".into()));
        }
        // Older than the relay's expiry (its clock may run ahead of the cluster's max age).
        let stored_at = u64::try_from(m.time.unix_timestamp()).unwrap_or(0);
        if stored_at < cutoff {
            return Ok(None);
        }
        Ok(Some(m.payload.to_vec()))
    }

    async fn delete(&self, id: &ChunkId) -> Result<bool, Error> {
        let Some(m) = self.find(&id.storage_key()).await? else {
            return Ok(false);
        };
        match self.stream.delete_message(m.sequence).await {
            Ok(erased) => Ok(erased),
            // Expired between the read and the delete: gone as well.
            Err(e) if super::no_message(&e) => Ok(false),
            Err(e) => Err(Error::Storage(format!("chunk delete: {e}"))),
        }
    }
}

impl ChunkStore for JetStreamChunks {
    fn put_chunk(&self, id: &ChunkId, data: &[u8], _now: u64) -> Result<ChunkPut, Error> {
        self.rt.block_on(self.put(id, data))
    }
    fn get_chunk(&self, id: &ChunkId, cutoff: u64) -> Result<Option<Vec<u8>>, Error> {
        self.rt.block_on(self.get(id, cutoff))
    }
    fn delete_chunk(&self, id: &ChunkId) -> Result<bool, Error> {
        self.rt.block_on(self.delete(id))
    }
    fn sweep_chunks(&self, _cutoff: u64, _max: usize) -> Result<u64, Error> {
        // The stream's max age expires chunks inside the cluster.
        Ok(0)
    }
    fn chunk_stats(&self) -> ChunkStats {
        ChunkStats {
            chunks: self.stored.load(Ordering::Relaxed),
        }
    }
}
