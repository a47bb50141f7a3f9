//! The async driver: runs an [`Engine`] for real. It owns the clock, the relay links and
//! the local relay, and moves inputs into the engine and outputs out of it; it decides
//! nothing itself.
//!
//! One task runs the loop; links and their requests are tasks it owns (dropped, and so
//! cancelled, with it). Channels from front ends and from links are bounded; the one to
//! each link is not, because the driver must never wait (see `link`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hush_proto::RelayAddress;
use tokio::sync::{mpsc, oneshot};

use crate::api::{Event, Handle, Request, Response};
use crate::engine::{Engine, EngineConfig, LinkEvent, Ticket, Time};
use crate::error::{Error, Result};
use crate::link::{Link, Reports};
use crate::local_relay::{LocalRelay, ServedRelay};
use crate::store::Store;
use crate::store::settings::Setting;

#[cfg(feature = "test-hooks")]
use crate::engine::CrashPoint;

/// How long shutdown waits for acknowledgements still on their way to a relay.
const SHUTDOWN_ACK_WAIT: Duration = Duration::from_secs(5);
/// How long shutdown waits for each relay link to close its connection.
const LINK_CLOSE_WAIT: Duration = Duration::from_millis(500);
/// Longest sleep between timeouts, so a wall clock that jumps is noticed soon.
const MAX_SLEEP: Duration = Duration::from_secs(5);
/// Commands and link reports that may wait for the loop.
const CHANNEL_DEPTH: usize = 256;
/// Events that may wait for a front end; past that they are dropped (the store has all).
const EVENT_DEPTH: usize = 1024;

/// How the driver runs the engine.
#[derive(Clone, Default)]
pub struct Options {
    /// The relay to serve when the profile names none (`None`: a relay must be set).
    pub local_relay: Option<Arc<dyn LocalRelay>>,
    /// Test hook: seconds added to the system clock (epoch rotation and catch-up).
    #[cfg(feature = "test-hooks")]
    pub clock_offset_secs: i64,
    /// Test hook: abort the process at this point, as `kill -9` would.
    #[cfg(feature = "test-hooks")]
    pub crash_at: Option<CrashPoint>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("local_relay", &self.local_relay.is_some())
            .finish_non_exhaustive()
    }
}

/// 32 bytes from the operating system's generator.
pub(crate) fn os_seed() -> Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    crate::store::os_random(&mut seed)?;
    Ok(seed)
}

struct Clock {
    #[cfg(feature = "test-hooks")]
    offset_secs: i64,
}

impl Clock {
    fn now(&self) -> Time {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        #[cfg(feature = "test-hooks")]
        let ms = ms.saturating_add_signed(self.offset_secs.saturating_mul(1000));
        Time::from_unix_millis(ms)
    }
}

/// Starts the engine on an open store, serving the local relay if the profile names no
/// relay. Returns the handle front ends use and the engine's events.
pub async fn start(store: Store, opts: Options) -> Result<(Handle, mpsc::Receiver<Event>)> {
    let clock = Clock {
        #[cfg(feature = "test-hooks")]
        offset_secs: opts.clock_offset_secs,
    };
    let local_address = match (&opts.local_relay, store.db().setting(Setting::Relay)?) {
        (Some(local), None) => Some(local.address()?),
        _ => None,
    };
    let config = EngineConfig {
        local_relay: local_address.clone(),
        #[cfg(feature = "test-hooks")]
        crash_at: opts.crash_at,
    };
    let engine = Engine::new(store, config, os_seed()?, clock.now())?;
    let served = match (&opts.local_relay, &local_address) {
        (Some(local), Some(_)) => local.serve().await?,
        _ => None,
    };
    let (tx, requests) = mpsc::channel(CHANNEL_DEPTH);
    let (events_tx, events) = mpsc::channel(EVENT_DEPTH);
    let (reports, link_events) = mpsc::channel(CHANNEL_DEPTH);
    let mut driver = Driver {
        engine,
        clock,
        links: HashMap::new(),
        reports,
        events: events_tx,
        replies: HashMap::new(),
        next_ticket: 1,
        local: opts.local_relay,
        local_address,
        served,
    };
    driver.pump();
    tokio::spawn(driver.run(requests, link_events));
    Ok((Handle { tx }, events))
}

struct Driver {
    engine: Engine,
    clock: Clock,
    links: HashMap<String, Link>,
    reports: Reports,
    events: mpsc::Sender<Event>,
    replies: HashMap<Ticket, oneshot::Sender<Result<Response>>>,
    next_ticket: u64,
    local: Option<Arc<dyn LocalRelay>>,
    local_address: Option<RelayAddress>,
    served: Option<Box<dyn ServedRelay>>,
}

impl Driver {
    async fn run(
        mut self,
        mut requests: mpsc::Receiver<Request>,
        mut link_events: mpsc::Receiver<(RelayAddress, LinkEvent)>,
    ) {
        loop {
            let sleep = self.sleep_time();
            tokio::select! {
                req = requests.recv() => match req {
                    None => break,
                    Some(Request::Shutdown(done)) => {
                        self.shutdown(&mut link_events).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(Request::Command(cmd, reply)) => {
                        let ticket = Ticket(self.next_ticket);
                        self.next_ticket += 1;
                        self.replies.insert(ticket, reply);
                        self.engine.handle_command(self.clock.now(), ticket, cmd);
                    }
                },
                Some((relay, ev)) = link_events.recv() => {
                    if matches!(ev, LinkEvent::Down) {
                        self.take_over_local_relay(&relay).await;
                    }
                    if let Err(e) = self.engine.handle_link_event(self.clock.now(), &relay, ev) {
                        tracing::warn!(error = %e, "engine: handling a relay report failed");
                    }
                }
                () = tokio::time::sleep(sleep) => {
                    if let Err(e) = self.engine.handle_timeout(self.clock.now()) {
                        tracing::warn!(error = %e, "engine: periodic work failed");
                    }
                }
            }
            self.pump();
        }
        self.links.clear();
        if let Some(s) = self.served.take() {
            s.stop().await;
        }
    }

    fn sleep_time(&self) -> Duration {
        match self.engine.poll_timeout() {
            Ok(at) => {
                let now = self.clock.now();
                Duration::from_millis(at.unix_millis().saturating_sub(now.unix_millis()))
                    .min(MAX_SLEEP)
            }
            Err(e) => {
                tracing::warn!(error = %e, "engine: next timeout unknown");
                MAX_SLEEP
            }
        }
    }

    /// Moves the engine's outputs to links, front ends and callers.
    fn pump(&mut self) {
        while let Some(req) = self.engine.poll_link_request() {
            let reports = self.reports.clone();
            let link = self
                .links
                .entry(req.relay.to_string())
                .or_insert_with(|| Link::spawn(req.relay.clone(), reports));
            link.send(req.op);
        }
        while let Some(ev) = self.engine.poll_event() {
            if self.events.try_send(ev).is_err() {
                tracing::debug!("event dropped: no front end is reading");
            }
        }
        while let Some((ticket, result)) = self.engine.poll_reply() {
            match self.replies.remove(&ticket) {
                Some(reply) => {
                    let _ = reply.send(result);
                }
                None => tracing::warn!("engine answered a command twice"),
            }
        }
    }

    /// If the local process serving the local relay went away, serve it here.
    async fn take_over_local_relay(&mut self, relay: &RelayAddress) {
        if self.served.is_some() || self.local_address.as_ref() != Some(relay) {
            return;
        }
        if let Some(local) = &self.local {
            match local.serve().await {
                Ok(served) => self.served = served,
                Err(e) => tracing::warn!(error = %e, "serving the local relay failed"),
            }
        }
    }

    /// Waits (bounded) until the acknowledgements sent so far have reached their relays. A
    /// short-lived process (a CLI command) would otherwise exit with them in flight, and the
    /// relay would keep, and deliver again, envelopes already committed here. Only
    /// acknowledgement and deposit reports are handled meanwhile: anything else is left for
    /// the next run (an envelope not acknowledged is delivered again). Then closes every
    /// link and stops the local relay.
    async fn shutdown(&mut self, link_events: &mut mpsc::Receiver<(RelayAddress, LinkEvent)>) {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_ACK_WAIT;
        self.pump();
        while self.engine.acks_in_flight() > 0 {
            match tokio::time::timeout_at(deadline, link_events.recv()).await {
                Ok(Some((relay, ev @ (LinkEvent::Deleted | LinkEvent::Deposited { .. })))) => {
                    if let Err(e) = self.engine.handle_link_event(self.clock.now(), &relay, ev) {
                        tracing::warn!(error = %e, "engine: recording a deposit failed");
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        for (_, link) in self.links.drain() {
            link.close(LINK_CLOSE_WAIT).await;
        }
        if let Some(s) = self.served.take() {
            s.stop().await;
        }
        for (_, reply) in self.replies.drain() {
            let _ = reply.send(Err(Error::EngineStopped));
        }
    }
}
