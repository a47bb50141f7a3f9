//! Relay links: one task per relay keeps a pinned QUIC connection alive (reconnecting with
//! backoff) and turns the engine's requests into hush-proto requests.
//!
//! A link never decides anything: it reports every result back to the engine as an
//! [`Inbound`] message, so the engine task stays the only owner of state and never waits on
//! the network. Nothing here logs mailbox ids, secrets or envelope bytes.

use std::sync::Arc;
use std::time::Duration;

use hush_proto::{
    DeleteIds, Envelope, EnvelopeId, FetchSecret, MAX_SECRETS, MailboxId, RelayAddress, SecretBatch,
};
use hush_transport::{RelayClient, relay_error};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What the engine asks a link to do.
pub(crate) enum LinkReq {
    /// Deposit one envelope; answered by [`Inbound::Deposited`].
    Deposit {
        outbox_id: i64,
        mailbox: [u8; 32],
        envelope: Vec<u8>,
    },
    /// Fetch every stored envelope of these mailboxes; each comes back as
    /// [`Inbound::Delivery`], then [`Inbound::FetchDone`] with `token`.
    Fetch { token: u64, secrets: Vec<[u8; 32]> },
    /// Acknowledge (delete) envelopes; answered by [`Inbound::Deleted`] whatever the
    /// outcome (a failed delete only means the envelope is delivered again).
    Delete { secret: [u8; 32], ids: Vec<u64> },
    /// Replace the set of pushed mailboxes.
    Subscribe { secrets: Vec<[u8; 32]> },
}

/// What links report to the engine.
pub(crate) enum Inbound {
    Deposited {
        outbox_id: i64,
        /// `Err` carries a reason fit for logs (no identifiers).
        result: Result<(), String>,
    },
    Delivery {
        mailbox: [u8; 32],
        envelope_id: u64,
        envelope: Vec<u8>,
    },
    FetchDone {
        token: u64,
        ok: bool,
    },
    /// A [`LinkReq::Delete`] finished (or failed).
    Deleted,
    LinkUp {
        relay: String,
    },
    LinkDown {
        relay: String,
    },
    /// A subscription ended (lagged or closed): fetch to catch up.
    Resync,
}

/// Handle to a link task. Dropping it stops the task.
pub(crate) struct Link {
    tx: mpsc::UnboundedSender<LinkReq>,
    task: JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Link {
    pub(crate) fn spawn(
        addr: RelayAddress,
        key: String,
        inbound: mpsc::UnboundedSender<Inbound>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(addr, key, rx, inbound));
        Self { tx, task }
    }

    pub(crate) fn send(&self, req: LinkReq) -> bool {
        self.tx.send(req).is_ok()
    }

    /// Ends the link gracefully, waiting at most `within`: its task closes the connection,
    /// so the relay frees it at once instead of after its idle timeout.
    pub(crate) async fn close(mut self, within: Duration) {
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.tx, closed));
        let _ = tokio::time::timeout(within, &mut self.task).await;
    }
}

const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    // 50% to 150% of d.
    let f = 0.5 + f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX);
    d.mul_f64(f)
}

async fn run(
    addr: RelayAddress,
    key: String,
    mut rx: mpsc::UnboundedReceiver<LinkReq>,
    inbound: mpsc::UnboundedSender<Inbound>,
) {
    let mut subscribed: Vec<[u8; 32]> = Vec::new();
    let mut backoff = BACKOFF_MIN;
    let mut announced_down = false;
    loop {
        let client = tokio::select! {
            c = RelayClient::connect(&addr) => c,
            () = tokio::time::sleep(Duration::from_secs(10)) => Err(hush_transport::Error::Timeout),
        };
        let client = match client {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::debug!(error = %e, "relay connect failed");
                if !announced_down {
                    announced_down = true;
                    let _ = inbound.send(Inbound::LinkDown { relay: key.clone() });
                }
                // While down, fail requests at once so the engine can schedule retries.
                let wait = tokio::time::sleep(jitter(backoff));
                tokio::pin!(wait);
                loop {
                    tokio::select! {
                        () = &mut wait => break,
                        req = rx.recv() => match req {
                            None => return,
                            Some(req) => fail_offline(req, &inbound, &mut subscribed),
                        },
                    }
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = BACKOFF_MIN;
        let _ = inbound.send(Inbound::LinkUp { relay: key.clone() });
        let mut subs = start_subscriptions(&client, &subscribed, &inbound);
        loop {
            tokio::select! {
                req = rx.recv() => match req {
                    None => {
                        client.close();
                        return;
                    }
                    Some(LinkReq::Subscribe { secrets }) => {
                        subs.iter().for_each(JoinHandle::abort);
                        subscribed = secrets;
                        subs = start_subscriptions(&client, &subscribed, &inbound);
                    }
                    Some(req) => serve(req, &client, &inbound),
                },
                _ = client.connection().closed() => break,
            }
        }
        subs.iter().for_each(JoinHandle::abort);
        let _ = inbound.send(Inbound::LinkDown { relay: key.clone() });
        announced_down = true;
    }
}

fn fail_offline(
    req: LinkReq,
    inbound: &mpsc::UnboundedSender<Inbound>,
    subscribed: &mut Vec<[u8; 32]>,
) {
    match req {
        LinkReq::Deposit { outbox_id, .. } => {
            let _ = inbound.send(Inbound::Deposited {
                outbox_id,
                result: Err("relay unreachable".into()),
            });
        }
        LinkReq::Fetch { token, .. } => {
            let _ = inbound.send(Inbound::FetchDone { token, ok: false });
        }
        LinkReq::Delete { .. } => {
            let _ = inbound.send(Inbound::Deleted);
        }
        LinkReq::Subscribe { secrets } => *subscribed = secrets,
    }
}

fn serve(req: LinkReq, client: &Arc<RelayClient>, inbound: &mpsc::UnboundedSender<Inbound>) {
    let client = Arc::clone(client);
    let inbound = inbound.clone();
    match req {
        LinkReq::Deposit {
            outbox_id,
            mailbox,
            envelope,
        } => {
            tokio::spawn(async move {
                let result = match Envelope::from_slice(&envelope) {
                    Ok(env) => client
                        .deposit(MailboxId(mailbox), env)
                        .await
                        .map(|_| ())
                        .map_err(|e| match relay_error(&e) {
                            Some(f) => f.code.name().to_string(),
                            None => "transport failure".to_string(),
                        }),
                    Err(_) => Err("bad envelope length".into()),
                };
                let _ = inbound.send(Inbound::Deposited { outbox_id, result });
            });
        }
        LinkReq::Fetch { token, secrets } => {
            tokio::spawn(async move {
                let secrets: Vec<FetchSecret> =
                    secrets.into_iter().map(FetchSecret::from_bytes).collect();
                let ok = match client.fetch_all(&secrets).await {
                    Ok(deliveries) => {
                        for d in deliveries {
                            let _ = inbound.send(Inbound::Delivery {
                                mailbox: *d.mailbox.as_bytes(),
                                envelope_id: d.id.0,
                                envelope: d.envelope.as_bytes().to_vec(),
                            });
                        }
                        true
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "fetch failed");
                        false
                    }
                };
                let _ = inbound.send(Inbound::FetchDone { token, ok });
            });
        }
        LinkReq::Delete { secret, ids } => {
            tokio::spawn(async move {
                for chunk in ids.chunks(hush_proto::MAX_DELETE_IDS) {
                    let ids = chunk.iter().map(|i| EnvelopeId(*i)).collect();
                    if let Ok(ids) = DeleteIds::new(ids) {
                        // UnknownEnvelope / Expired mean it is gone already: fine.
                        let _ = client.delete(FetchSecret::from_bytes(secret), ids).await;
                    }
                }
                let _ = inbound.send(Inbound::Deleted);
            });
        }
        LinkReq::Subscribe { .. } => {}
    }
}

fn start_subscriptions(
    client: &Arc<RelayClient>,
    secrets: &[[u8; 32]],
    inbound: &mpsc::UnboundedSender<Inbound>,
) -> Vec<JoinHandle<()>> {
    secrets
        .chunks(MAX_SECRETS)
        .map(|chunk| {
            let client = Arc::clone(client);
            let inbound = inbound.clone();
            let batch: Vec<FetchSecret> =
                chunk.iter().map(|s| FetchSecret::from_bytes(*s)).collect();
            tokio::spawn(async move {
                let Ok(batch) = SecretBatch::new(batch) else {
                    return;
                };
                let mut sub = match client.subscribe(batch).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(error = %e, "subscribe failed");
                        let _ = inbound.send(Inbound::Resync);
                        return;
                    }
                };
                loop {
                    match sub.next().await {
                        Ok(d) => {
                            let _ = inbound.send(Inbound::Delivery {
                                mailbox: *d.mailbox.as_bytes(),
                                envelope_id: d.id.0,
                                envelope: d.envelope.as_bytes().to_vec(),
                            });
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "subscription ended");
                            let _ = inbound.send(Inbound::Resync);
                            return;
                        }
                    }
                }
            })
        })
        .collect()
}
