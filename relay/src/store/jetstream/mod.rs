//! The JetStream backend: envelopes in one stream of a replicated NATS JetStream cluster that
//! several relay processes share (docs/OPERATING.md, "Several relays over JetStream").
//!
//! Owns: the stream layout, the translation of JetStream's answers into [`WriteOutcome`]s,
//! the envelope ids of this backend, and the feed through which every relay learns of every
//! deposit (cross-process push). Layout:
//! - stream `<stream>`: file storage, `replicas` copies, subjects `<prefix>.mb.>`; one message
//!   per envelope on `<prefix>.mb.<hex mailbox id>`, the payload the 4096 bytes, one header
//!   (`Nats-Msg-Id`, see [`msg_id`]). Limits: messages per subject = the mailbox quota and
//!   messages in all = the global quota, both with discard *new* (a full mailbox refuses, it
//!   never evicts); max age = the expiry (the cluster expires envelopes, [`Store::sweep`] has
//!   nothing to do); direct get allowed; deletes erase (overwrite) the message.
//! - a headers-only republish of `<prefix>.mb.>` to `<prefix>.arrived.>`: every relay
//!   subscribes and, for a mailbox one of its clients subscribed to, reads the envelope by
//!   direct get and pushes it. Core NATS is at most once: a lost connection or a slow feed
//!   marks every local subscription lagged, so clients fetch again (as after `Lagged` on one
//!   relay).
//! - stream `<stream>_META` (no age limit): one message, the key of the envelope ids.
//! - reads: fetch uses direct gets along each mailbox's subject, which any replica answers, so
//!   it may miss a deposit acknowledged milliseconds ago (the push and the next fetch bring
//!   it). A read of one sequence that a replica does not find is asked again of the leader
//!   ([`read_seq`]) before it counts as gone: pushes and deletes rely on that.
//!
//! Envelope ids are the stream sequence under a keyed 64-bit permutation ([`IdCipher`]), so a
//! client cannot read the cluster's volume off the ids of its own deposits. They are unique
//! and stable but not in deposit order; fetch still returns them in increasing id order and
//! `after` pages through them (PROTOCOL.md II.4 promises no more). A missing id whose
//! sequence lies below the stream's first one has expired (the cluster expires oldest
//! first), the horizon the redb backend keeps too; one deleted at the head of the stream is
//! answered `Expired` as well (redb would say `UnknownEnvelope`: both mean gone). The key sits
//! in the cluster: it hides the volume from clients, not from whoever holds the cluster, which
//! knows the sequence anyway.
//!
//! Files: this one (the [`Store`] and its answers), `cluster.rs` (names, connection, stream
//! set-up, `check`), `ids.rs` (envelope ids, idempotency ids), `feed.rs` (arrivals, health).
//!
//! Must never answer `Stored` before JetStream's publish acknowledgement (the cluster holds
//! the message on a quorum), never delete an envelope of another mailbox than the one whose
//! fetch secret was shown, and never log a subject (it names a mailbox).
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures_util::future::join_all;
use hush_proto::{Envelope, EnvelopeId, MailboxId};

use super::{Quotas, Store, StoreStats, Stored, WriteOp, WriteOutcome};
use crate::Error;
use crate::config::JetStream as Settings;
use crate::metrics::Metrics;
use crate::push::Hub;

mod chunks;
mod cluster;
mod feed;
mod ids;

pub use chunks::JetStreamChunks;

pub use cluster::check;
use cluster::{Names, context, ensure_stream, id_key, options, stream_config};
use feed::{Health, arrivals, monitor};
use ids::{IdCipher, msg_id};

/// How long a starting relay waits for the cluster to elect leaders and take the stream.
const START_PATIENCE: Duration = Duration::from_secs(30);
/// Most messages read from one subject by a fetch: the quota, and then some for the moment
/// when a quota was lowered and old envelopes remain.
const READ_SLACK: usize = 64;

/// Message `seq` of `stream`: a direct get (any replica answers it), and if that replica does
/// not have it, the leader. A follower may lag the quorum that acknowledged a deposit by a few
/// milliseconds, so a direct get's "not found" alone does not mean deleted. `Ok(None)`: the
/// stream does not hold it (deleted, expired or never stored).
async fn read_seq(
    stream: &stream::Stream,
    seq: u64,
) -> Result<Option<jetstream::message::StreamMessage>, String> {
    match stream.direct_get(seq).await {
        Ok(m) => return Ok(Some(m)),
        Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => {}
        Err(e) => return Err(e.to_string()),
    }
    match stream.get_raw_message(seq).await {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// JetStream-backed [`Store`]. Its methods block on the relay's runtime (call them from a
/// blocking context, as every [`Store`] method).
pub struct JetStreamStore {
    rt: tokio::runtime::Handle,
    js: jetstream::Context,
    stream: stream::Stream,
    names: Names,
    ids: IdCipher,
    quota: usize,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for JetStreamStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamStore").finish_non_exhaustive()
    }
}

impl Drop for JetStreamStore {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
/// Why the cluster refused a publish, when it is an answer about the stream's limits rather
/// than a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// The subject holds its most messages (a full mailbox; a chunk already stored).
    SubjectFull,
    /// The stream holds its most messages or bytes, or the cluster has no room.
    StreamFull,
}

fn refusal(e: &jetstream::context::PublishError) -> Option<Refusal> {
    let js_err = std::error::Error::source(e).and_then(|s| s.downcast_ref::<jetstream::Error>());
    match js_err {
        Some(j) if j.error_code() == jetstream::ErrorCode::STREAM_STORE_FAILED => {
            let text = j.to_string();
            if text.contains("per subject") {
                Some(Refusal::SubjectFull)
            } else if text.contains("maximum messages") || text.contains("maximum bytes") {
                Some(Refusal::StreamFull)
            } else {
                None
            }
        }
        Some(j) if j.error_code() == jetstream::ErrorCode::INSUFFICIENT_RESOURCES => {
            Some(Refusal::StreamFull)
        }
        _ => None,
    }
}

/// What a refused deposit means for the client.
fn refused(e: &jetstream::context::PublishError) -> WriteOutcome {
    match refusal(e) {
        Some(Refusal::SubjectFull) => WriteOutcome::MailboxFull,
        Some(Refusal::StreamFull) => WriteOutcome::RelayFull,
        None => WriteOutcome::Unavailable,
    }
}

/// Runs `attempt` until it succeeds, for at most [`START_PATIENCE`] (a cluster just started
/// has no leaders yet); `what` names it in the log and in the final error.
async fn patiently<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let started = tokio::time::Instant::now();
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if started.elapsed() < START_PATIENCE => {
                tracing::info!(error = %e, "waiting for the JetStream cluster ({what})");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(Error::Storage(format!("setting up the {what}: {e}"))),
        }
    }
}

impl JetStreamStore {
    /// Connects to the cluster, creates or updates the streams (waiting up to 30 s for the
    /// cluster to have leaders), and starts the arrival feed into `hub` and the monitor that
    /// reports the cluster's health to `metrics`.
    ///
    /// # Errors
    /// [`Error::Storage`] if the cluster cannot be reached or refuses the streams.
    pub async fn connect(
        settings: &Settings,
        quotas: Quotas,
        expiry_secs: u64,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, Error> {
        let names = Names::new(settings);
        let health = Arc::new(Health::default());
        let reads = metrics.clone();
        let events = {
            let (hub, metrics, health) = (hub.clone(), metrics.clone(), health.clone());
            move |event: async_nats::Event| {
                let (hub, metrics, health) = (hub.clone(), metrics.clone(), health.clone());
                async move {
                    match event {
                        async_nats::Event::Disconnected => {
                            // Arrivals published meanwhile are lost to this relay's feed.
                            hub.lag_all();
                            health.reachable.store(false, Ordering::Relaxed);
                            metrics.set_storage_reachable(false);
                            tracing::warn!("lost the connection to the JetStream cluster");
                        }
                        async_nats::Event::Connected => {
                            tracing::info!("connected to the JetStream cluster");
                        }
                        async_nats::Event::SlowConsumer(_) => {
                            hub.lag_all();
                            tracing::warn!("the arrival feed overflowed; subscriptions lagged");
                        }
                        _ => {}
                    }
                }
            }
        };
        let opts = options(settings).event_callback(events);
        let client = async_nats::connect_with_options(settings.server_list().as_slice(), opts)
            .await
            .map_err(|e| Error::Storage(format!("connecting to the JetStream cluster: {e}")))?;
        let js = context(client.clone(), settings);
        let want = stream_config(&names, settings, quotas, expiry_secs);
        let (stream, key) = patiently("stream", || async {
            let st = ensure_stream(&js, want.clone()).await?;
            let key = id_key(&js, &names, settings).await?;
            Ok((st, key))
        })
        .await?;
        health.reachable.store(true, Ordering::Relaxed);
        metrics.set_storage_reachable(true);

        // Subscribed before the relay serves, so no deposit after a Subscribe is missed.
        let feed = client
            .subscribe(names.arrivals())
            .await
            .map_err(|e| Error::Storage(format!("subscribing to arrivals: {e}")))?;
        let ids = IdCipher::new(&key);
        let tasks = vec![
            tokio::spawn(arrivals(
                feed,
                stream.clone(),
                names.clone(),
                IdCipher::new(&key),
                hub,
                metrics.clone(),
            )),
            tokio::spawn(monitor(
                stream.clone(),
                usize::from(settings.replicas.0),
                health.clone(),
                metrics,
            )),
        ];
        Ok(Self {
            rt: tokio::runtime::Handle::current(),
            js,
            stream,
            names,
            ids,
            quota: usize::try_from(quotas.mailbox).unwrap_or(usize::MAX),
            health,
            metrics: reads,
            tasks,
        })
    }

    async fn deposit(&self, mailbox: &MailboxId, envelope: &Envelope) -> WriteOutcome {
        let publish = jetstream::message::PublishMessage::build()
            .payload(Bytes::copy_from_slice(envelope.as_bytes()))
            .message_id(msg_id(mailbox, envelope));
        let acked = match self
            .js
            .send_publish(self.names.mailbox(mailbox), publish)
            .await
        {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match acked {
            Ok(ack) => WriteOutcome::Stored(self.ids.id(ack.sequence)),
            Err(e) => {
                let outcome = refused(&e);
                if outcome == WriteOutcome::Unavailable {
                    tracing::warn!(error = %e, "deposit not acknowledged by the cluster");
                }
                outcome
            }
        }
    }

    async fn delete(&self, mailbox: &MailboxId, ids: &[EnvelopeId]) -> WriteOutcome {
        let subject = self.names.mailbox(mailbox);
        let (mut deleted, mut expired, mut unknown) = (0u16, 0u16, 0u16);
        let mut first_seq = None;
        for id in ids {
            let Some(seq) = self.ids.seq(*id) else {
                unknown = unknown.saturating_add(1);
                continue;
            };
            let gone = match read_seq(&self.stream, seq).await {
                Ok(Some(m)) if m.subject.as_str() == subject => {
                    match self.stream.delete_message(seq).await {
                        Ok(true) => {
                            deleted = deleted.saturating_add(1);
                            false
                        }
                        Ok(false) => {
                            unknown = unknown.saturating_add(1);
                            false
                        }
                        // Each node expires on its own timer: the node that answered the read
                        // still held it, the leader no longer does. Gone, as below.
                        Err(e) if no_message(&e) => true,
                        Err(e) => {
                            tracing::warn!(error = %e, "delete not acknowledged by the cluster");
                            return WriteOutcome::Unavailable;
                        }
                    }
                }
                // Another mailbox's envelope: answered as a missing one.
                Ok(Some(_)) => {
                    unknown = unknown.saturating_add(1);
                    false
                }
                Ok(None) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "reading an envelope to delete failed");
                    return WriteOutcome::Unavailable;
                }
            };
            if gone {
                if first_seq.is_none() {
                    match self.stream.get_info().await {
                        Ok(info) => first_seq = Some(info.state.first_sequence),
                        Err(_) => return WriteOutcome::Unavailable,
                    }
                }
                if first_seq.is_some_and(|first| seq < first) {
                    expired = expired.saturating_add(1);
                } else {
                    unknown = unknown.saturating_add(1);
                }
            }
        }
        WriteOutcome::Deleted {
            deleted,
            expired,
            unknown,
        }
    }

    /// The (id, sequence, mailbox) of every envelope of `mailboxes` with an id above `after`,
    /// in id order. Listing reads each message (direct get has no headers-only form) but
    /// keeps none of their bytes.
    async fn list(
        &self,
        mailboxes: &[MailboxId],
        after: EnvelopeId,
    ) -> Result<Vec<(EnvelopeId, u64, MailboxId)>, Error> {
        let mut uniq: Vec<MailboxId> = mailboxes.to_vec();
        uniq.sort();
        uniq.dedup();
        let lists = join_all(uniq.into_iter().map(|mb| self.list_mailbox(mb))).await;
        let mut found = Vec::new();
        for l in lists {
            found.extend(l?.into_iter().filter(|e| e.0 > after));
        }
        found.sort_unstable_by_key(|e| e.0);
        Ok(found)
    }

    /// Every envelope of one mailbox, by direct gets along its subject: (id, sequence).
    async fn list_mailbox(
        &self,
        mailbox: MailboxId,
    ) -> Result<Vec<(EnvelopeId, u64, MailboxId)>, Error> {
        let subject = self.names.mailbox(&mailbox);
        let mut out = Vec::new();
        let mut next = 1u64;
        while out.len() < self.quota.saturating_add(READ_SLACK) {
            match self
                .stream
                .direct_get_next_for_subject(subject.as_str(), Some(next))
                .await
            {
                Ok(m) => {
                    self.metrics.storage_reads(1);
                    next = m.sequence.saturating_add(1);
                    out.push((self.ids.id(m.sequence), m.sequence, mailbox));
                }
                Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => break,
                Err(e) => return Err(Error::Storage(format!("direct get: {e}"))),
            }
        }
        Ok(out)
    }

    /// The envelopes at `listed`, in that order; one deleted since it was listed is left out.
    async fn read_listed(
        &self,
        listed: &[(EnvelopeId, u64, MailboxId)],
    ) -> Result<Vec<Stored>, Error> {
        let reads = join_all(listed.iter().map(|&(id, seq, mailbox)| async move {
            let subject = self.names.mailbox(&mailbox);
            self.metrics.storage_reads(1);
            match read_seq(&self.stream, seq).await {
                // Sequences are never reused; the subject check is there all the same, so
                // that no read can answer one mailbox with another's envelope.
                Ok(Some(m)) if m.subject.as_str() == subject.as_str() => {
                    let envelope = Envelope::from_slice(&m.payload)
                        .map_err(|_| Error::Storage("corrupt envelope message".into()))?;
                    Ok(Some(Stored {
                        mailbox,
                        id,
                        envelope,
                    }))
                }
                Ok(_) => Ok(None),
                Err(e) => Err(Error::Storage(format!("direct get: {e}"))),
            }
        }))
        .await;
        let mut out = Vec::with_capacity(listed.len());
        for r in reads {
            out.extend(r?);
        }
        Ok(out)
    }
}
/// Whether a delete failed because the message is not there (any more).
fn no_message(e: &stream::DeleteMessageError) -> bool {
    matches!(e.kind(), stream::DeleteMessageErrorKind::JetStream(j)
        if j.error_code() == jetstream::ErrorCode::NO_MESSAGE_FOUND)
}

impl Store for JetStreamStore {
    fn commit(&self, ops: &[WriteOp], _now: u64) -> Result<Vec<WriteOutcome>, Error> {
        // Publishes of one batch are in flight together: their acknowledgements overlap as
        // the fsyncs of one redb commit are shared.
        let each = ops.iter().map(|op| async move {
            match op {
                WriteOp::Deposit { mailbox, envelope } => self.deposit(mailbox, envelope).await,
                WriteOp::Delete { mailbox, ids } => self.delete(mailbox, ids).await,
            }
        });
        Ok(self.rt.block_on(join_all(each)))
    }

    fn fetch(
        &self,
        mailboxes: &[MailboxId],
        after: EnvelopeId,
        limit: usize,
    ) -> Result<(Vec<Stored>, bool), Error> {
        let mut found = Vec::new();
        let more = self.fetch_pages(mailboxes, after, limit, limit, &mut |items| {
            found.extend(items);
            true
        })?;
        Ok((found, more))
    }

    /// Ids are not in sequence order, so every read must list whole mailboxes: a request
    /// lists them once (ids only) and then reads its pages by sequence, instead of reading
    /// every mailbox again for each page.
    fn fetch_pages(
        &self,
        mailboxes: &[MailboxId],
        after: EnvelopeId,
        total: usize,
        page_len: usize,
        page: &mut dyn FnMut(Vec<Stored>) -> bool,
    ) -> Result<bool, Error> {
        let mut listed = self.rt.block_on(self.list(mailboxes, after))?;
        let more = listed.len() > total;
        listed.truncate(total);
        for part in listed.chunks(page_len.max(1)) {
            let items = self.rt.block_on(self.read_listed(part))?;
            if !page(items) {
                break;
            }
        }
        Ok(more)
    }

    fn sweep(&self, _cutoff: u64, _max: usize) -> Result<u64, Error> {
        // The stream's max age expires envelopes inside the cluster.
        Ok(0)
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            envelopes: self.health.envelopes.load(Ordering::Relaxed),
        }
    }

    fn announces_arrivals(&self) -> bool {
        true
    }
}
