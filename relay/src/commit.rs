//! Group commit: one writer thread that batches concurrent writes into single durable commits.
//!
//! Owns: the queue of pending writes, the writer thread, and the order "commit, then hand the
//! stored deposits to the fan-out, then acknowledge" (for a backend that announces arrivals
//! itself, the push comes from the backend's feed instead). Many deposits arriving while a commit is in flight are
//! committed together by the next one, so fsyncs are shared.
//! Must never acknowledge a write before `Store::commit` returned Ok, must drain every
//! queued write before the thread exits (graceful shutdown loses nothing it acknowledged),
//! and must never do work per subscriber: a commit's deposits go to the fan-out thread in one
//! non-blocking hand-off, so however many subscribers a mailbox has, commits cost the same.

use std::sync::Arc;
use std::thread::JoinHandle;

use hush_proto::Delivery;
use tokio::sync::{mpsc, oneshot};

use crate::Error;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::push::Fanout;
use crate::store::{Store, WriteOp, WriteOutcome};

struct Job {
    op: WriteOp,
    reply: oneshot::Sender<Result<WriteOutcome, ()>>,
}

/// Handle to submit writes; clone freely. The writer stops when every handle is dropped.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer").finish_non_exhaustive()
    }
}

impl Committer {
    /// Starts the writer thread.
    ///
    /// # Errors
    /// [`Error::Io`] if the thread cannot be spawned.
    pub fn start(
        store: Arc<dyn Store>,
        fanout: Fanout,
        metrics: Arc<Metrics>,
        clock: Clock,
        max_batch: usize,
    ) -> Result<(Self, JoinHandle<()>), Error> {
        let (tx, mut rx) = mpsc::channel::<Job>(max_batch.saturating_mul(4).max(64));
        let announced = store.announces_arrivals();
        let handle = std::thread::Builder::new()
            .name("hush-committer".into())
            .spawn(move || {
                let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
                while let Some(first) = rx.blocking_recv() {
                    jobs.push(first);
                    while jobs.len() < max_batch {
                        match rx.try_recv() {
                            Ok(j) => jobs.push(j),
                            Err(_) => break,
                        }
                    }
                    let (ops, replies): (Vec<WriteOp>, Vec<_>) =
                        jobs.drain(..).map(|j| (j.op, j.reply)).unzip();
                    let started = std::time::Instant::now();
                    match store.commit(&ops, clock.now()) {
                        Ok(outcomes) => {
                            metrics.commit(ops.len(), started.elapsed());
                            let mut stored = Vec::new();
                            for (op, outcome) in ops.into_iter().zip(&outcomes) {
                                if let (
                                    WriteOp::Deposit { mailbox, envelope },
                                    WriteOutcome::Stored(id),
                                    false,
                                ) = (op, outcome, announced)
                                {
                                    stored.push(Delivery {
                                        mailbox,
                                        id: *id,
                                        envelope,
                                    });
                                }
                            }
                            // Pushes go out before the acknowledgements, as before: a client
                            // that deposits and then subscribes elsewhere sees no reordering.
                            fanout.hand_off(stored);
                            for (outcome, reply) in outcomes.into_iter().zip(replies) {
                                let _ = reply.send(Ok(outcome));
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, batch = ops.len(), "commit failed");
                            metrics.commit_failed();
                            for reply in replies {
                                let _ = reply.send(Err(()));
                            }
                        }
                    }
                }
            })
            .map_err(|e| Error::io("spawning the committer thread", e))?;
        Ok((Self { tx }, handle))
    }

    /// Queues `op` and waits for its durable outcome.
    ///
    /// # Errors
    /// [`Error::Storage`] if the commit failed, [`Error::ShuttingDown`] if the writer stopped.
    pub async fn submit(&self, op: WriteOp) -> Result<WriteOutcome, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { op, reply })
            .await
            .map_err(|_| Error::ShuttingDown)?;
        match rx.await {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(())) => Err(Error::Storage("commit failed".into())),
            Err(_) => Err(Error::ShuttingDown),
        }
    }
}
