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
//!
//! Envelope ids are the stream sequence under a keyed 64-bit permutation ([`IdCipher`]), so a
//! client cannot read the cluster's volume off the ids of its own deposits. They are unique
//! and stable but not in deposit order; fetch still returns them in increasing id order and
//! `after` pages through them (PROTOCOL.md II.4 promises no more). A missing id whose
//! sequence lies below the stream's first one has expired (the cluster expires oldest
//! first), the same horizon the redb backend keeps. The key sits in the cluster: it hides the
//! volume from clients, not from whoever holds the cluster, which knows the sequence anyway.
//!
//! Must never answer `Stored` before JetStream's publish acknowledgement (the cluster holds
//! the message on a quorum), never delete an envelope of another mailbox than the one whose
//! fetch secret was shown, and never log a subject (it names a mailbox).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::future::join_all;
use hush_proto::{Envelope, EnvelopeId, MailboxId};
use ring::hmac;

use super::{Quotas, Store, StoreStats, Stored, WriteOp, WriteOutcome};
use crate::Error;
use crate::config::JetStream as Settings;
use crate::metrics::Metrics;
use crate::push::Hub;

/// How long a starting relay waits for the cluster to elect leaders and take the stream.
const START_PATIENCE: Duration = Duration::from_secs(30);
/// How often the stream's state (leader, size) is read for health and the gauges.
const MONITOR_EVERY: Duration = Duration::from_secs(2);
/// Most messages read from one subject by a fetch: the quota, and then some for the moment
/// when a quota was lowered and old envelopes remain.
const READ_SLACK: usize = 64;

/// The subjects and stream names derived from the settings.
#[derive(Clone, Debug)]
struct Names {
    stream: String,
    meta_stream: String,
    prefix: String,
}

impl Names {
    fn new(s: &Settings) -> Self {
        Self {
            stream: s.stream.clone(),
            meta_stream: format!("{}_META", s.stream),
            prefix: s.subject_prefix.clone(),
        }
    }
    fn mailbox(&self, mb: &MailboxId) -> String {
        format!("{}.mb.{}", self.prefix, hex::encode(mb.as_bytes()))
    }
    fn mailboxes(&self) -> String {
        format!("{}.mb.>", self.prefix)
    }
    fn arrivals(&self) -> String {
        format!("{}.arrived.>", self.prefix)
    }
    fn id_key(&self) -> String {
        format!("{}.meta.id_key", self.prefix)
    }
    /// The mailbox an arrival subject `<prefix>.arrived.<hex>` names.
    fn arrival_mailbox(&self, subject: &str) -> Option<MailboxId> {
        let hex_id = subject
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(".arrived.")?;
        let mut m = [0u8; 32];
        hex::decode_to_slice(hex_id, &mut m).ok()?;
        Some(MailboxId(m))
    }
}

/// The idempotency id of a deposit: a retry carries the same bytes to the same mailbox, so it
/// gets the same id and JetStream stores it once (within the duplicate window). Envelopes are
/// authenticated ciphertext under fresh nonces, so two different deposits never share one.
fn msg_id(mailbox: &MailboxId, envelope: &Envelope) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"hush-relay deposit id v1");
    ctx.update(mailbox.as_bytes());
    ctx.update(envelope.as_bytes());
    hex::encode(ctx.finish().as_ref())
}

/// A keyed permutation of the non-zero 64-bit integers: stream sequence <-> envelope id.
/// Four Feistel rounds over 32-bit halves with HMAC-SHA256 round functions (Luby-Rackoff: a
/// pseudorandom permutation), cycle-walked so that 0 (`after = 0`, "from the start") is
/// never an id.
struct IdCipher {
    key: hmac::Key,
}

impl IdCipher {
    const ROUNDS: u8 = 4;

    fn new(key: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    fn f(&self, round: u8, half: u32) -> u32 {
        let mut input = [0u8; 5];
        input[0] = round;
        input[1..].copy_from_slice(&half.to_be_bytes());
        let tag = hmac::sign(&self.key, &input);
        let mut out = [0u8; 4];
        out.copy_from_slice(&tag.as_ref()[..4]);
        u32::from_be_bytes(out)
    }

    fn forward(&self, x: u64) -> u64 {
        let (mut l, mut r) = ((x >> 32) as u32, x as u32);
        for i in 0..Self::ROUNDS {
            let t = l ^ self.f(i, r);
            l = r;
            r = t;
        }
        (u64::from(l) << 32) | u64::from(r)
    }

    fn backward(&self, y: u64) -> u64 {
        let (mut l, mut r) = ((y >> 32) as u32, y as u32);
        for i in (0..Self::ROUNDS).rev() {
            let t = r ^ self.f(i, l);
            r = l;
            l = t;
        }
        (u64::from(l) << 32) | u64::from(r)
    }

    /// The id of stream sequence `seq` (>= 1).
    fn id(&self, seq: u64) -> EnvelopeId {
        let mut x = self.forward(seq);
        while x == 0 {
            x = self.forward(x);
        }
        EnvelopeId(x)
    }

    /// The stream sequence of `id`, if `id` can be one.
    fn seq(&self, id: EnvelopeId) -> Option<u64> {
        if id.0 == 0 {
            return None;
        }
        let mut x = self.backward(id.0);
        while x == 0 {
            x = self.backward(x);
        }
        Some(x)
    }
}

/// What the background tasks share with the store.
#[derive(Debug, Default)]
struct Health {
    envelopes: AtomicU64,
    reachable: AtomicBool,
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

/// The connection options the settings ask for (TLS, timeouts). A relay authenticates with
/// its TLS client certificate (the cluster maps it to a user: docs/OPERATING.md).
fn options(s: &Settings) -> async_nats::ConnectOptions {
    let mut o = async_nats::ConnectOptions::new()
        .name("hush-relay")
        .request_timeout(Some(Duration::from_millis(s.request_timeout_ms.0)))
        .connection_timeout(Duration::from_millis(s.request_timeout_ms.0));
    if let Some(ca) = &s.tls_ca {
        o = o.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&s.tls_cert, &s.tls_key) {
        o = o.add_client_certificate(cert.clone(), key.clone());
    }
    o
}

fn context(client: async_nats::Client, s: &Settings) -> jetstream::Context {
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_millis(s.request_timeout_ms.0));
    js
}

/// The envelope stream's configuration for these settings and limits.
fn stream_config(names: &Names, s: &Settings, quotas: Quotas, expiry_secs: u64) -> stream::Config {
    let max_age = Duration::from_secs(expiry_secs);
    stream::Config {
        name: names.stream.clone(),
        subjects: vec![names.mailboxes()],
        storage: stream::StorageType::File,
        num_replicas: usize::from(s.replicas.0),
        max_age,
        max_messages: i64::try_from(quotas.total).unwrap_or(i64::MAX),
        max_messages_per_subject: i64::from(quotas.mailbox),
        discard: stream::DiscardPolicy::New,
        discard_new_per_subject: true,
        // JetStream refuses a duplicate window longer than the age limit.
        duplicate_window: Duration::from_secs(s.duplicate_window_secs.0).min(max_age),
        allow_direct: true,
        republish: Some(stream::Republish {
            source: names.mailboxes(),
            destination: names.arrivals(),
            headers_only: true,
        }),
        ..Default::default()
    }
}

/// The fields of `want` a relay sets; `true` if `have` differs in any.
fn differs(have: &stream::Config, want: &stream::Config) -> bool {
    have.subjects != want.subjects
        || have.num_replicas != want.num_replicas
        || have.max_age != want.max_age
        || have.max_messages != want.max_messages
        || have.max_messages_per_subject != want.max_messages_per_subject
        || have.discard != want.discard
        || have.discard_new_per_subject != want.discard_new_per_subject
        || have.duplicate_window != want.duplicate_window
        || have.allow_direct != want.allow_direct
        || have.republish != want.republish
        || have.storage != want.storage
}

/// Creates the stream, or brings an existing one to `want`'s limits.
async fn ensure_stream(
    js: &jetstream::Context,
    want: stream::Config,
) -> Result<stream::Stream, String> {
    let mut st = js
        .get_or_create_stream(want.clone())
        .await
        .map_err(|e| e.to_string())?;
    let have = st.info().await.map_err(|e| e.to_string())?.config.clone();
    if differs(&have, &want) {
        tracing::warn!("the stream's limits differ from this relay's configuration; updating them");
        js.update_stream(want.clone())
            .await
            .map_err(|e| e.to_string())?;
        st = js.get_stream(&want.name).await.map_err(|e| e.to_string())?;
    }
    Ok(st)
}

/// The id key: read from `<stream>_META`, or made and stored there by the first relay (a
/// publish that expects the subject to be empty, so two relays starting at once agree).
async fn id_key(js: &jetstream::Context, names: &Names, s: &Settings) -> Result<Vec<u8>, String> {
    let meta = js
        .get_or_create_stream(stream::Config {
            name: names.meta_stream.clone(),
            subjects: vec![names.id_key()],
            storage: stream::StorageType::File,
            num_replicas: usize::from(s.replicas.0),
            max_messages_per_subject: 1,
            discard: stream::DiscardPolicy::New,
            discard_new_per_subject: true,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    if let Ok(m) = meta.get_last_raw_message_by_subject(&names.id_key()).await {
        return Ok(m.payload.to_vec());
    }
    let mut key = vec![0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
        .map_err(|_| "the system random generator failed".to_owned())?;
    let publish = jetstream::message::PublishMessage::build()
        .payload(Bytes::from(key.clone()))
        .expected_last_subject_sequence(0);
    let ack = js
        .send_publish(names.id_key(), publish)
        .await
        .map_err(|e| e.to_string())?;
    if ack.await.is_ok() {
        return Ok(key);
    }
    // Another relay stored its key first (the subject was no longer empty): use that one.
    meta.get_last_raw_message_by_subject(&names.id_key())
        .await
        .map(|m| m.payload.to_vec())
        .map_err(|e| e.to_string())
}

/// What a refused publish means for the client.
fn refused(e: &jetstream::context::PublishError) -> WriteOutcome {
    let js_err = std::error::Error::source(e).and_then(|s| s.downcast_ref::<jetstream::Error>());
    match js_err {
        Some(j) if j.error_code() == jetstream::ErrorCode::STREAM_STORE_FAILED => {
            let text = j.to_string();
            if text.contains("per subject") {
                WriteOutcome::MailboxFull
            } else if text.contains("maximum messages") || text.contains("maximum bytes") {
                WriteOutcome::RelayFull
            } else {
                WriteOutcome::Unavailable
            }
        }
        Some(j) if j.error_code() == jetstream::ErrorCode::INSUFFICIENT_RESOURCES => {
            WriteOutcome::RelayFull
        }
        _ => WriteOutcome::Unavailable,
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
        let started = tokio::time::Instant::now();
        let (stream, key) = loop {
            let attempt = async {
                let st = ensure_stream(&js, want.clone()).await?;
                let key = id_key(&js, &names, settings).await?;
                Ok::<_, String>((st, key))
            };
            match attempt.await {
                Ok(v) => break v,
                Err(e) if started.elapsed() < START_PATIENCE => {
                    tracing::info!(error = %e, "waiting for the JetStream cluster");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(Error::Storage(format!("setting up the stream: {e}"))),
            }
        };
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
            match self.stream.direct_get(seq).await {
                Ok(m) if m.subject.as_str() == subject => {
                    match self.stream.delete_message(seq).await {
                        Ok(true) => deleted = deleted.saturating_add(1),
                        Ok(false) => unknown = unknown.saturating_add(1),
                        Err(e) => {
                            tracing::warn!(error = %e, "delete not acknowledged by the cluster");
                            return WriteOutcome::Unavailable;
                        }
                    }
                }
                // Another mailbox's envelope: answered as a missing one.
                Ok(_) => unknown = unknown.saturating_add(1),
                Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => {
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
                Err(e) => {
                    tracing::warn!(error = %e, "reading an envelope to delete failed");
                    return WriteOutcome::Unavailable;
                }
            }
        }
        WriteOutcome::Deleted {
            deleted,
            expired,
            unknown,
        }
    }

    /// Every envelope of one mailbox, by direct gets along its subject.
    async fn read_mailbox(&self, mailbox: MailboxId) -> Result<Vec<Stored>, Error> {
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
                    next = m.sequence.saturating_add(1);
                    let envelope = Envelope::from_slice(&m.payload)
                        .map_err(|_| Error::Storage("corrupt envelope message".into()))?;
                    out.push(Stored {
                        mailbox,
                        id: self.ids.id(m.sequence),
                        envelope,
                    });
                }
                Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => break,
                Err(e) => return Err(Error::Storage(format!("direct get: {e}"))),
            }
        }
        Ok(out)
    }
}

/// Arrival reads in flight at once: the feed stays in stream order while the reads overlap.
const FEED_READS: usize = 32;

/// Pushes every arrival, from whichever relay, to this relay's subscribers of its mailbox.
async fn arrivals(
    feed: async_nats::Subscriber,
    stream: stream::Stream,
    names: Names,
    ids: IdCipher,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
) {
    let wanted = {
        let hub = hub.clone();
        move |m: async_nats::Message| {
            let mailbox = names.arrival_mailbox(m.subject.as_str())?;
            // Only mailboxes someone here waits for are read.
            if !hub.has_subscribers(&mailbox) {
                return None;
            }
            let seq = m
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Sequence"))
                .and_then(|v| v.as_str().parse::<u64>().ok())?;
            Some((mailbox, seq))
        }
    };
    let mut reads = feed
        .filter_map(move |m| std::future::ready(wanted(m)))
        .map(|(mailbox, seq)| {
            let stream = stream.clone();
            async move { (mailbox, seq, stream.direct_get(seq).await) }
        })
        .buffered(FEED_READS);
    while let Some((mailbox, seq, read)) = reads.next().await {
        match read {
            Ok(msg) => {
                let Ok(envelope) = Envelope::from_slice(&msg.payload) else {
                    continue;
                };
                let pushed = hub.publish(&hush_proto::Delivery {
                    mailbox,
                    id: ids.id(seq),
                    envelope,
                });
                metrics.pushed(pushed);
            }
            // Deleted or expired before it could be pushed: nothing to push.
            Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => {}
            Err(e) => {
                // The envelope is stored but cannot be read now: the subscriber must fetch.
                tracing::warn!(error = %e, "reading an arrival failed; subscriptions lagged");
                hub.lag_all();
            }
        }
    }
}

/// Reads the stream's state every [`MONITOR_EVERY`]: its size for the gauge, and whether it
/// has a leader (a cluster that lost its quorum has none and refuses every write).
async fn monitor(
    stream: stream::Stream,
    replicas: usize,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
) {
    loop {
        let info = tokio::time::timeout(MONITOR_EVERY, stream.get_info()).await;
        let reachable = match &info {
            Ok(Ok(i)) => {
                health.envelopes.store(i.state.messages, Ordering::Relaxed);
                replicas == 1 || i.cluster.as_ref().is_some_and(|c| c.leader.is_some())
            }
            _ => false,
        };
        let was = health.reachable.swap(reachable, Ordering::Relaxed);
        metrics.set_storage_reachable(reachable);
        if was && !reachable {
            tracing::warn!("the JetStream stream is unavailable (no leader or no connection)");
        } else if !was && reachable {
            tracing::info!("the JetStream stream is available again");
        }
        tokio::time::sleep(MONITOR_EVERY).await;
    }
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
        let mut uniq: Vec<MailboxId> = mailboxes.to_vec();
        uniq.sort();
        uniq.dedup();
        let read = self
            .rt
            .block_on(join_all(uniq.into_iter().map(|mb| self.read_mailbox(mb))));
        let mut found = Vec::new();
        for r in read {
            found.extend(r?.into_iter().filter(|s| s.id > after));
        }
        found.sort_unstable_by_key(|s| s.id);
        let more = found.len() > limit;
        found.truncate(limit);
        Ok((found, more))
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

/// `hush-relay check` for this backend: reaches the cluster and describes the stream (or
/// says that the first relay will create it), without changing anything.
///
/// # Errors
/// [`Error::Storage`] if the cluster cannot be reached or has no JetStream.
pub async fn check(settings: &Settings, limits: &crate::config::Limits) -> Result<String, Error> {
    let (quotas, expiry_secs) = (Quotas::from_limits(limits), limits.expiry_secs.0);
    let names = Names::new(settings);
    let client =
        async_nats::connect_with_options(settings.server_list().as_slice(), options(settings))
            .await
            .map_err(|e| Error::Storage(format!("connecting to the JetStream cluster: {e}")))?;
    let js = context(client, settings);
    js.query_account()
        .await
        .map_err(|e| Error::Storage(format!("JetStream is not available on this cluster: {e}")))?;
    let want = stream_config(&names, settings, quotas, expiry_secs);
    let mut out = String::from("jetstream: cluster reached");
    match js.get_stream(&names.stream).await {
        Ok(mut st) => {
            let info = st
                .info()
                .await
                .map_err(|e| Error::Storage(format!("reading the stream: {e}")))?;
            let leader = info.cluster.as_ref().and_then(|c| c.leader.clone());
            let replicas = info.cluster.as_ref().map_or(0, |c| c.replicas.len() + 1);
            out.push_str(&format!(
                "; stream {} holds {} envelopes, {} of {} replicas known, leader {}",
                names.stream,
                info.state.messages,
                replicas,
                info.config.num_replicas,
                if leader.is_some() {
                    "present"
                } else {
                    "MISSING"
                },
            ));
            if differs(&info.config, &want) {
                out.push_str("; its limits differ from this configuration (a relay started with it updates them)");
            }
        }
        Err(_) => out.push_str(&format!(
            "; stream {} does not exist yet (the first relay creates it)",
            names.stream
        )),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_a_permutation_without_zero() {
        let c = IdCipher::new(&[7u8; 32]);
        let mut seen = std::collections::HashSet::new();
        for seq in 1..=10_000u64 {
            let id = c.id(seq);
            assert_ne!(id.0, 0);
            assert_eq!(c.seq(id), Some(seq));
            assert!(seen.insert(id.0));
        }
        for seq in [u64::MAX, u64::MAX - 1, 1 << 63] {
            assert_eq!(c.seq(c.id(seq)), Some(seq));
        }
        assert_eq!(c.seq(EnvelopeId(0)), None);
        // Consecutive sequences do not give neighbouring ids (the volume stays hidden).
        let (a, b) = (c.id(1).0, c.id(2).0);
        assert!(a.abs_diff(b) > 1 << 20, "{a} {b}");
        // Another key, other ids.
        assert_ne!(IdCipher::new(&[8u8; 32]).id(1), c.id(1));
    }

    #[test]
    fn arrival_subjects_name_their_mailbox() {
        let names = Names {
            stream: "HUSH".into(),
            meta_stream: "HUSH_META".into(),
            prefix: "hush".into(),
        };
        let mb = MailboxId([0xab; 32]);
        let arrival = names.mailbox(&mb).replace(".mb.", ".arrived.");
        assert_eq!(names.arrival_mailbox(&arrival), Some(mb));
        assert_eq!(names.arrival_mailbox("hush.arrived.zz"), None);
        assert_eq!(names.arrival_mailbox("other.arrived.00"), None);
    }

    #[test]
    fn a_retry_has_the_deposits_id_and_another_deposit_does_not() {
        let e1 = Envelope::from_slice(&[1u8; hush_proto::ENVELOPE_LEN]).unwrap();
        let e2 = Envelope::from_slice(&[2u8; hush_proto::ENVELOPE_LEN]).unwrap();
        let (a, b) = (MailboxId([1; 32]), MailboxId([2; 32]));
        assert_eq!(msg_id(&a, &e1), msg_id(&a, &e1));
        assert_ne!(msg_id(&a, &e1), msg_id(&a, &e2));
        assert_ne!(msg_id(&a, &e1), msg_id(&b, &e1));
    }
}
