//! Private routing on the relay (docs/PROTOCOL.md II.4.2, II.4.4): the forwarding key,
//! forwarding clients' sealed deposits and chunk requests to other relays, and opening the
//! ones sealed to this relay.
//!
//! Owns: the static X25519 forwarding key (a file beside the TLS key, made on first start)
//! and the statement binding it to this relay's pin (signed once at start with the
//! certificate key); the pool of outgoing connections, one per destination relay shared by
//! every client, each verifying the destination's pin; and, as a destination, the bounded
//! memory of ephemeral keys, Deliver's and DeliverChunk's alike (a replay is refused), and of
//! answers by request id (a retried deposit is stored once).
//!
//! Must never learn or keep more than it must: a forwarding relay handles a destination
//! address and opaque sealed bytes only; a destination sees the forwarding relay's
//! address, never a client's. Neither logs an address, a request id or a key; the memory
//! is in RAM only and bounded.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hush_proto::forward::{
    Destination, ForwardSecret, KeyStatement, RequestId, SealedAnswer, SealedRequest,
    statement_message,
};
use hush_proto::forward_chunk::{OpenedChunk, SealedChunkAnswer, SealedChunkRequest};
use hush_proto::{EnvelopeId, ErrorCode, ErrorFrame, SpkiPin};
use hush_transport::RelayClient;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::config::Forwarding;
use crate::tls::Identity;

/// Test hooks only: set, this relay substitutes its own forwarding key in the statements
/// it fetches for its clients (a hostile forwarding relay).
#[cfg(feature = "test-hooks")]
pub const TEST_SUBSTITUTE_KEY_ENV: &str = "HUSH_RELAY_TEST_SUBSTITUTE_FORWARD_KEY";

/// The relay's forwarding state, shared by every connection.
pub(crate) struct Forwarder {
    enabled: bool,
    pin: SpkiPin,
    secret: ForwardSecret,
    statement: KeyStatement,
    /// The relay's own QUIC endpoint: outgoing connections leave from its address.
    endpoint: quinn::Endpoint,
    /// Connections by the destination's binary address.
    pool: Mutex<HashMap<Vec<u8>, Arc<Slot>>>,
    timeout: Duration,
    pub(crate) max_in_flight: usize,
    memory: Mutex<Memory>,
}

/// Most destination relays the pool holds a connection slot for; beyond, slots without a
/// live connection are dropped, and if none is, a new destination is `ForwardUnreachable`.
pub const MAX_DESTINATIONS: usize = 1024;

/// One destination's shared connection; locked while (re)connecting, so concurrent
/// forwards to it wait for the one attempt.
type Slot = tokio::sync::Mutex<Option<Arc<RelayClient>>>;

/// What a destination remembers of forwarded requests.
struct Memory {
    capacity: usize,
    ephemerals: HashSet<[u8; 32]>,
    ephemeral_order: VecDeque<[u8; 32]>,
    answers: HashMap<RequestId, ([u8; 32], EnvelopeId)>,
    answer_order: VecDeque<RequestId>,
}

impl Memory {
    /// Records `ephemeral`; false if it was seen before.
    fn first_use(&mut self, ephemeral: [u8; 32]) -> bool {
        if !self.ephemerals.insert(ephemeral) {
            return false;
        }
        self.ephemeral_order.push_back(ephemeral);
        while self.ephemeral_order.len() > self.capacity {
            if let Some(old) = self.ephemeral_order.pop_front() {
                self.ephemerals.remove(&old);
            }
        }
        true
    }

    fn answer(&self, id: &RequestId, digest: &[u8; 32]) -> Option<EnvelopeId> {
        match self.answers.get(id) {
            Some((d, e)) if d == digest => Some(*e),
            _ => None,
        }
    }

    fn remember(&mut self, id: RequestId, digest: [u8; 32], envelope: EnvelopeId) {
        if self.answers.insert(id, (digest, envelope)).is_none() {
            self.answer_order.push_back(id);
        }
        while self.answer_order.len() > self.capacity {
            if let Some(old) = self.answer_order.pop_front() {
                self.answers.remove(&old);
            }
        }
    }
}

/// Reads the forwarding key at `path`, or makes one there (mode 0600) if there is none.
///
/// # Errors
/// [`Error::Io`] if it cannot be read or written, [`Error::Tls`] if it is not 32 bytes.
pub fn load_or_create_key(path: &Path) -> Result<ForwardSecret, Error> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let raw: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                Error::Tls(format!("{}: a forwarding key is 32 bytes", path.display()))
            })?;
            Ok(ForwardSecret::from_bytes(raw))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut raw = zeroize::Zeroizing::new([0u8; 32]);
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), raw.as_mut())
                .map_err(|_| Error::Tls("no randomness for the forwarding key".into()))?;
            let mut open = std::fs::OpenOptions::new();
            open.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
            let mut f = open
                .open(path)
                .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
            std::io::Write::write_all(&mut f, raw.as_ref())
                .and_then(|()| f.sync_all())
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
            Ok(ForwardSecret::from_bytes(*raw))
        }
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// SHA-256 of what an inner deposit stores (its kind's target and envelope, not a stamp):
/// a remembered answer is given only to a retry of the same deposit.
pub(crate) fn deposit_digest(storage_key: &hush_proto::MailboxId, envelope: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(storage_key.as_bytes());
    h.update(envelope);
    h.finalize().into()
}

impl Forwarder {
    pub(crate) fn new(
        config: &Forwarding,
        identity: &Identity,
        secret: ForwardSecret,
        endpoint: quinn::Endpoint,
    ) -> Result<Self, Error> {
        let pin = identity.pin()?;
        let key = secret.public();
        let signature = identity.sign(&statement_message(&pin, &key))?;
        let statement = KeyStatement {
            spki: identity.spki()?,
            key,
            signature,
        };
        Ok(Self {
            enabled: config.enabled,
            pin,
            secret,
            statement,
            endpoint,
            pool: Mutex::new(HashMap::new()),
            timeout: Duration::from_secs(config.timeout_secs.0),
            max_in_flight: usize::try_from(config.max_in_flight_per_connection.0)
                .unwrap_or(usize::MAX),
            memory: Mutex::new(Memory {
                capacity: usize::try_from(config.remembered_requests.0).unwrap_or(usize::MAX),
                ephemerals: HashSet::new(),
                ephemeral_order: VecDeque::new(),
                answers: HashMap::new(),
                answer_order: VecDeque::new(),
            }),
        })
    }

    /// This relay's signed statement.
    pub(crate) fn statement(&self) -> &KeyStatement {
        &self.statement
    }

    /// Why this relay will not forward to `destination`, if it will not.
    pub(crate) fn refusal(&self, destination: &Destination) -> Option<ErrorFrame> {
        if !self.enabled {
            return Some(ErrorFrame::new(ErrorCode::ForwardingDisabled));
        }
        if destination.address().pin == self.pin {
            return Some(ErrorFrame::new(ErrorCode::ForwardToSelf));
        }
        None
    }

    /// The shared connection to `destination`, made if there is none or it ended.
    async fn connection(&self, destination: &Destination) -> Result<Arc<RelayClient>, ErrorFrame> {
        let key = destination.binary().to_vec();
        let slot = {
            let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
            if !pool.contains_key(&key) && pool.len() >= MAX_DESTINATIONS {
                // Clients name destinations: keep the pool bounded. Slots nobody waits on
                // and without a live connection go first.
                pool.retain(|_, s| {
                    Arc::strong_count(s) > 1
                        || s.try_lock().is_ok_and(|c| {
                            c.as_ref()
                                .and_then(|c| c.quic_connection())
                                .is_some_and(|q| q.close_reason().is_none())
                        })
                });
                if pool.len() >= MAX_DESTINATIONS {
                    return Err(ErrorFrame::new(ErrorCode::ForwardUnreachable));
                }
            }
            pool.entry(key.clone()).or_default().clone()
        };
        // One connection attempt at a time per destination: concurrent forwards wait for it
        // and then share it.
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref()
            && c.quic_connection()
                .is_some_and(|q| q.close_reason().is_none())
        {
            return Ok(c.clone());
        }
        let connected = tokio::time::timeout(
            self.timeout,
            RelayClient::connect_with(&self.endpoint, destination.address()),
        )
        .await;
        let failed = match connected {
            Ok(Ok(c)) => {
                let c = Arc::new(c);
                *guard = Some(c.clone());
                return Ok(c);
            }
            Ok(Err(hush_transport::Error::PinMismatch)) => ErrorCode::ForwardPinMismatch,
            Ok(Err(_)) | Err(_) => ErrorCode::ForwardUnreachable,
        };
        // A destination that does not answer keeps no slot (unless another forward waits
        // on it): naming many unreachable relays leaves nothing behind.
        drop(guard);
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.get(&key).is_some_and(|s| Arc::ptr_eq(s, &slot)) && Arc::strong_count(&slot) <= 2 {
            pool.remove(&key);
        }
        Err(ErrorFrame::new(failed))
    }

    /// Runs `op` on the shared connection to `destination`, bounded by the timeout. A relay
    /// refusal there is passed back as it is; anything else is `ForwardUnreachable`.
    async fn on_destination<T, F, Fut>(
        &self,
        destination: &Destination,
        op: F,
    ) -> Result<T, ErrorFrame>
    where
        F: FnOnce(Arc<RelayClient>) -> Fut,
        Fut: Future<Output = Result<T, hush_transport::Error>>,
    {
        if let Some(e) = self.refusal(destination) {
            return Err(e);
        }
        let client = self.connection(destination).await?;
        match tokio::time::timeout(self.timeout, op(client)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(hush_transport::Error::Relay(e))) => Err(e),
            Ok(Err(_)) | Err(_) => Err(ErrorFrame::new(ErrorCode::ForwardUnreachable)),
        }
    }

    /// `FetchForwardKey`: the destination's statement, as it sent it (the client verifies).
    pub(crate) async fn fetch_key(
        &self,
        destination: &Destination,
    ) -> Result<KeyStatement, ErrorFrame> {
        #[allow(unused_mut)] // changed only by the test hook below
        let mut st = self
            .on_destination(destination, |c| async move { c.forward_key().await })
            .await?;
        // Test hooks only: a hostile forwarding relay that puts its own key into the
        // destination's statement (keeping the destination's SPKI and signature), so that
        // the tests can show clients refuse it.
        #[cfg(feature = "test-hooks")]
        if std::env::var_os(TEST_SUBSTITUTE_KEY_ENV).is_some() {
            st.key = self.statement.key;
        }
        Ok(st)
    }

    /// `Forward`: passes the sealed request on as `Deliver` and returns the sealed answer.
    pub(crate) async fn forward(
        &self,
        destination: &Destination,
        sealed: SealedRequest,
    ) -> Result<SealedAnswer, ErrorFrame> {
        self.on_destination(destination, |c| async move { c.deliver(sealed).await })
            .await
    }

    /// `ForwardChunk`: passes the sealed chunk request (and a put's sealed chunk) on as
    /// `DeliverChunk`; the sealed answer and a get's sealed chunk.
    pub(crate) async fn forward_chunk(
        &self,
        destination: &Destination,
        sealed: SealedChunkRequest,
        trailer: Option<Vec<u8>>,
    ) -> Result<(SealedChunkAnswer, Option<Vec<u8>>), ErrorFrame> {
        self.on_destination(destination, |c| async move {
            c.deliver_chunk(sealed, trailer.as_deref()).await
        })
        .await
    }

    /// `DeliverChunk`, first step: opens the sealed chunk request; refuses a replayed
    /// ephemeral key (the same memory as `Deliver`'s).
    pub(crate) fn open_chunk(
        &self,
        sealed: &SealedChunkRequest,
    ) -> Result<OpenedChunk, ErrorFrame> {
        let opened = hush_proto::forward_chunk::open_chunk_request(&self.secret, &self.pin, sealed)
            .map_err(|_| ErrorFrame::new(ErrorCode::ForwardUnsealable))?;
        if !self.lock_memory().first_use(sealed.ephemeral) {
            return Err(ErrorFrame::new(ErrorCode::ForwardReplay));
        }
        Ok(opened)
    }

    /// `Deliver`, first step: opens the sealed request; refuses a replayed ephemeral key.
    pub(crate) fn open(
        &self,
        sealed: &SealedRequest,
    ) -> Result<
        (
            hush_proto::forward::InnerRequest,
            hush_proto::forward::CommandKeys,
        ),
        ErrorFrame,
    > {
        let opened = hush_proto::forward::open_request(&self.secret, &self.pin, sealed)
            // Whatever failed inside (the seal, the layout, the inner body), the answer is one
            // code: a sender without the key learns nothing from which.
            .map_err(|_| ErrorFrame::new(ErrorCode::ForwardUnsealable))?;
        // Only a request that opens is remembered: garbage cannot push real ones out.
        if !self.lock_memory().first_use(sealed.ephemeral) {
            return Err(ErrorFrame::new(ErrorCode::ForwardReplay));
        }
        Ok(opened)
    }

    /// The answer given before to this deposit, if it is a retry of one that was stored.
    pub(crate) fn remembered(&self, id: &RequestId, digest: &[u8; 32]) -> Option<EnvelopeId> {
        self.lock_memory().answer(id, digest)
    }

    /// Remembers that the deposit `id` (of content `digest`) was stored as `envelope`.
    pub(crate) fn remember(&self, id: RequestId, digest: [u8; 32], envelope: EnvelopeId) {
        self.lock_memory().remember(id, digest, envelope);
    }

    fn lock_memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh nonce for a sealed answer.
    pub(crate) fn nonce() -> [u8; 12] {
        let mut n = [0u8; 12];
        // The system generator fails only if the OS has none; then a zero nonce under a
        // fresh answer key (one per ephemeral key, which is never accepted twice) is still
        // unique.
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut n);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_refuses_a_second_use_and_forgets_the_oldest_beyond_capacity() {
        let mut m = Memory {
            capacity: 2,
            ephemerals: HashSet::new(),
            ephemeral_order: VecDeque::new(),
            answers: HashMap::new(),
            answer_order: VecDeque::new(),
        };
        assert!(m.first_use([1; 32]));
        assert!(!m.first_use([1; 32]));
        assert!(m.first_use([2; 32]));
        assert!(m.first_use([3; 32]));
        // [1] was forgotten: capacity bounds memory, a late replay is priced as new.
        assert!(m.first_use([1; 32]));
        let id = RequestId([9; 16]);
        m.remember(id, [4; 32], EnvelopeId(7));
        assert_eq!(m.answer(&id, &[4; 32]), Some(EnvelopeId(7)));
        // Another deposit under the same id is not answered from memory.
        assert_eq!(m.answer(&id, &[5; 32]), None);
    }
}
