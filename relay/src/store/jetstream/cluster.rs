//! The cluster side of the JetStream backend: subject and stream names, connection options,
//! the streams' configuration (created or brought to the relay's limits at start), the id
//! key's storage, and `hush-relay check`.
//! Must never read a credential from the relay's config text (TLS files only) and never change
//! the cluster from `check`.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use hush_proto::MailboxId;

use super::super::Quotas;
use crate::Error;
use crate::config::JetStream as Settings;

/// The subjects and stream names derived from the settings.
#[derive(Clone, Debug)]
pub(super) struct Names {
    pub(super) stream: String,
    pub(super) meta_stream: String,
    pub(super) chunk_stream: String,
    pub(super) prefix: String,
}

impl Names {
    pub(super) fn new(s: &Settings) -> Self {
        Self {
            stream: s.stream.clone(),
            meta_stream: format!("{}_META", s.stream),
            chunk_stream: format!("{}_CHUNKS", s.stream),
            prefix: s.subject_prefix.clone(),
        }
    }
    pub(super) fn mailbox(&self, mb: &MailboxId) -> String {
        format!("{}.mb.{}", self.prefix, hex::encode(mb.as_bytes()))
    }
    pub(super) fn mailboxes(&self) -> String {
        format!("{}.mb.>", self.prefix)
    }
    /// The subject of the chunk stored under `key` (its storage key, never its id).
    pub(super) fn chunk(&self, key: &[u8; 32]) -> String {
        format!("{}.ch.{}", self.prefix, hex::encode(key))
    }
    pub(super) fn chunks(&self) -> String {
        format!("{}.ch.>", self.prefix)
    }
    pub(super) fn arrivals(&self) -> String {
        format!("{}.arrived.>", self.prefix)
    }
    pub(super) fn id_key(&self) -> String {
        format!("{}.meta.id_key", self.prefix)
    }
    /// The mailbox an arrival subject `<prefix>.arrived.<hex>` names.
    pub(super) fn arrival_mailbox(&self, subject: &str) -> Option<MailboxId> {
        let hex_id = subject
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(".arrived.")?;
        let mut m = [0u8; 32];
        hex::decode_to_slice(hex_id, &mut m).ok()?;
        Some(MailboxId(m))
    }
}
/// The connection options the settings ask for (TLS, timeouts). A relay authenticates with
/// its TLS client certificate (the cluster maps it to a user: docs/OPERATING.md).
pub(super) fn options(s: &Settings) -> async_nats::ConnectOptions {
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

pub(super) fn context(client: async_nats::Client, s: &Settings) -> jetstream::Context {
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_millis(s.request_timeout_ms.0));
    js
}

/// The envelope stream's configuration for these settings and limits.
pub(super) fn stream_config(
    names: &Names,
    s: &Settings,
    quotas: Quotas,
    expiry_secs: u64,
) -> stream::Config {
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

/// The chunk stream's configuration: one message per chunk (a second put of a key is
/// refused by the cluster itself), at most `max_chunks` of them, kept `expiry_secs`.
pub(super) fn chunk_stream_config(
    names: &Names,
    s: &Settings,
    max_chunks: u64,
    expiry_secs: u64,
) -> stream::Config {
    let max_age = Duration::from_secs(expiry_secs);
    stream::Config {
        name: names.chunk_stream.clone(),
        subjects: vec![names.chunks()],
        storage: stream::StorageType::File,
        num_replicas: usize::from(s.replicas.0),
        max_age,
        max_messages: i64::try_from(max_chunks).unwrap_or(i64::MAX),
        max_messages_per_subject: 1,
        discard: stream::DiscardPolicy::New,
        discard_new_per_subject: true,
        duplicate_window: Duration::from_secs(s.duplicate_window_secs.0).min(max_age),
        allow_direct: true,
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
pub(super) async fn ensure_stream(
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
pub(super) async fn id_key(
    js: &jetstream::Context,
    names: &Names,
    s: &Settings,
) -> Result<Vec<u8>, String> {
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
    fn arrival_subjects_name_their_mailbox() {
        let names = Names {
            stream: "HUSH".into(),
            meta_stream: "HUSH_META".into(),
            chunk_stream: "HUSH_CHUNKS".into(),
            prefix: "hush".into(),
        };
        let mb = MailboxId([0xab; 32]);
        let arrival = names.mailbox(&mb).replace(".mb.", ".arrived.");
        assert_eq!(names.arrival_mailbox(&arrival), Some(mb));
        assert_eq!(names.arrival_mailbox("hush.arrived.zz"), None);
        assert_eq!(names.arrival_mailbox("other.arrived.00"), None);
        // Chunks are on subjects of their own (JetStream refuses two streams that overlap),
        // named after the storage key.
        let chunk = names.chunk(&[0xcd; 32]);
        assert_eq!(chunk, format!("hush.ch.{}", "cd".repeat(32)));
        assert!(!chunk.starts_with("hush.mb.") && !chunk.starts_with("hush.arrived."));
    }
}
