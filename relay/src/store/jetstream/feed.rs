//! The JetStream backend's background tasks: the arrival feed (cross-process push) and the
//! monitor (health and the stored-envelopes gauge).
//! Must never push an envelope to a subscription of another mailbox, never log a subject, and
//! must mark subscriptions lagged whenever a push may have been missed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::stream;
use futures_util::StreamExt as _;
use hush_proto::Envelope;

use super::cluster::Names;
use super::ids::IdCipher;
use crate::metrics::Metrics;
use crate::push::Hub;

/// How often the stream's state (leader, size) is read for health and the gauges.
pub(super) const MONITOR_EVERY: Duration = Duration::from_secs(2);

/// What the background tasks share with the store.
#[derive(Debug, Default)]
pub(super) struct Health {
    pub(super) envelopes: AtomicU64,
    pub(super) reachable: AtomicBool,
}
/// Arrival reads in flight at once: the feed stays in stream order while the reads overlap
/// (32 left the feed 2 s behind 6,500 deposits/s in docs/BENCHMARKS.md; 256 kept it at 0.1 s).
const FEED_READS: usize = 256;

/// Pushes every arrival, from whichever relay, to this relay's subscribers of its mailbox.
pub(super) async fn arrivals(
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
            async move { (mailbox, seq, super::read_seq(&stream, seq).await) }
        })
        .buffered(FEED_READS);
    while let Some((mailbox, seq, read)) = reads.next().await {
        match read {
            Ok(Some(msg)) => {
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
            Ok(None) => {}
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
pub(super) async fn monitor(
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
