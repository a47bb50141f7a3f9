//! Which mailboxes the engine watches and fetches: every contact's receive mailboxes and
//! every active invite's handshake mailbox, per epoch; subscriptions for the current and
//! next epoch, and catch-up over what the relays may still hold. With per-contact isolation
//! it also decides the lanes (see [`super::Lane`]): each relationship's subscriptions and
//! fetches go on its own lane per window of epochs, a lane's connection opens after a
//! random delay, and a long catch-up goes in steps; the driver only maps lanes to
//! connections.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use hush_proto::RelayAddress;

use hush_crypto::InviteKind;

use super::schedule::uniform;
use super::{
    EPOCH_SECONDS, Engine, FetchJob, FetchToken, Lane, LinkOp, Opener, Owner, Round, Route,
    SyncWaiter, Ticket, Time,
};
use crate::api::{ONE_TIME_INVITE_LIFETIME_SECS, Response};
use crate::error::Result;
use crate::store::{ActiveInvite, ContactId};

/// How far back catch-up fetches: the relays' default expiry (7 days) in epochs.
pub(crate) const CATCH_UP_EPOCHS: u64 = 7 * 24;
/// With per-contact isolation, the old epochs of one relationship one catch-up fetches at
/// most (in windows of [`super::LANE_EPOCHS`], a connection each); the next fetch slot
/// goes on from there.
pub(crate) const CATCH_UP_EPOCHS_PER_SLOT: u64 = 8;
/// With isolation in normal mode, a lane's first subscription and each catch-up fetch of a
/// lane wait a uniform random delay up to this (the engine's generator), so that the
/// connections of several relationships (or windows) do not open at one moment.
pub(crate) const LANE_OPEN_JITTER: Duration = Duration::from_secs(5);
/// With isolation in normal mode (no fetch slots), a catch-up cut short after
/// [`CATCH_UP_EPOCHS_PER_SLOT`] old epochs, or with a fetch that failed while its relay is
/// up, goes on after a uniform random delay between these two.
pub(crate) const CATCH_UP_STEP_MIN: Duration = Duration::from_secs(5);
/// See [`CATCH_UP_STEP_MIN`].
pub(crate) const CATCH_UP_STEP_MAX: Duration = Duration::from_secs(30);
/// Normal mode keeps watching the previous epoch's mailboxes this long into an epoch: a
/// sender's clock may be behind the recipient's, and a deposit that left just before the
/// hour may reach the relay after it.
pub(crate) const PREVIOUS_EPOCH_GRACE: Duration = Duration::from_secs(600);

/// Secrets to fetch from one relay (on one lane, with isolation), and whose mailboxes they
/// are.
#[derive(Default)]
struct FetchPlan {
    relay: Option<RelayAddress>,
    lane: Option<Lane>,
    secrets: Vec<Opener>,
    /// Each contact with the first epoch fetched of it.
    contacts: BTreeMap<super::ContactId, u64>,
    invites: BTreeSet<super::InviteId>,
}

impl Engine {
    /// Every (contact, epoch) mailbox and every active invite's drop (the same in every
    /// epoch) to watch or fetch, as routes.
    fn mailboxes(&self, epochs: impl Fn(u64) -> Vec<u64>) -> Result<Vec<Route>> {
        let now = self.now.unix_secs();
        let mut out = Vec::new();
        for (id, session, last) in self.store.db().contact_sessions()? {
            for e in epochs(last) {
                for (relay, secret) in session.receive_mailboxes(e, now) {
                    out.push(Route {
                        owner: Owner::Contact(id),
                        secret: Opener::Mailbox(secret),
                        relay,
                        epoch: e,
                    });
                }
            }
        }
        for invite in self.store.db().active_invites()? {
            if Self::expired(&invite, now) {
                continue;
            }
            out.push(Route {
                owner: Owner::Invite(invite.id),
                secret: Opener::Drop(invite.secrets.drop_secret().clone()),
                relay: invite.secrets.relay().clone(),
                epoch: self.now.epoch(),
            });
        }
        Ok(out)
    }

    /// A one-time invite nobody used within its lifetime
    /// ([`ONE_TIME_INVITE_LIFETIME_SECS`]) is no longer watched or fetched.
    fn expired(invite: &ActiveInvite, now_secs: u64) -> bool {
        invite.secrets.kind() == InviteKind::OneTime
            && invite.secrets.accepted_count() == 0
            && now_secs >= invite.created.saturating_add(ONE_TIME_INVITE_LIFETIME_SECS)
    }

    /// Retires the one-time invites nobody used within their lifetime (they leave the
    /// list of invites as they leave the subscriptions).
    pub(super) fn retire_expired_invites(&mut self) -> Result<bool> {
        let now = self.now.unix_secs();
        let mut any = false;
        for invite in self.store.db().active_invites()? {
            if Self::expired(&invite, now) {
                self.store.db().retire_invite(invite.id)?;
                any = true;
            }
        }
        Ok(any)
    }

    /// A contact made through a one-time invite was heard from on its own mailboxes: the
    /// invitee has left the handshake mailbox. The invite is retired after the next fetch
    /// that includes its mailboxes completes (so that an envelope the invitee deposited
    /// there before leaving is not left behind).
    pub(super) fn heard_from(&mut self, contact: ContactId) -> Result<()> {
        if let Some(invite) = self.store.db().active_one_time_invite_of(contact)? {
            self.used_invites.insert(invite);
        }
        Ok(())
    }

    /// The epochs whose mailboxes normal mode subscribes to: the current and the next one
    /// and, in the first [`PREVIOUS_EPOCH_GRACE`] of an epoch, the previous one, which a
    /// sender whose clock is behind (or whose deposit left just before the hour) still
    /// deposits to.
    pub(super) fn watched_epochs(&self) -> Vec<u64> {
        let now_e = self.now.epoch();
        let into = self.now.unix_secs() - now_e * EPOCH_SECONDS;
        if now_e > 0 && into < PREVIOUS_EPOCH_GRACE.as_secs() {
            vec![now_e - 1, now_e, now_e + 1]
        } else {
            vec![now_e, now_e + 1]
        }
    }

    /// Subscribes to the mailboxes of the watched epochs ([`Engine::watched_epochs`]) on
    /// every relay in use (a relay with none left gets an empty set, which ends its old
    /// subscriptions). In high-risk
    /// mode nothing is subscribed (a push would show each arrival as it happens): relays in
    /// use are sent the empty set once, and the mailboxes are only fetched at fetch slots.
    /// With isolation in normal mode each relationship's mailboxes are subscribed on their
    /// fetch lanes (one per window of epochs), and the relay's shared connection holds only
    /// the invites' drops.
    pub(super) fn refresh_subscriptions(&mut self) -> Result<()> {
        let watched = self.watched_epochs();
        let routes = self.mailboxes(|_| watched.clone())?;
        if self.schedule.high_risk() {
            self.set_lane_subscriptions(BTreeMap::new());
            for route in routes {
                self.routes.insert(route.secret.mailbox_id(), route);
            }
            if !self.subscriptions_cleared {
                let relays: Vec<RelayAddress> =
                    self.relays.values().map(|r| r.address.clone()).collect();
                for relay in relays {
                    self.push_request(
                        &relay,
                        LinkOp::Subscribe {
                            secrets: Vec::new(),
                        },
                    );
                }
                self.subscriptions_cleared = true;
            }
            self.subscribed = Some(watched);
            return Ok(());
        }
        self.subscriptions_cleared = false;
        let isolate = self.isolating();
        let mut per_relay: BTreeMap<String, (RelayAddress, Vec<Opener>)> = BTreeMap::new();
        let mut per_lane: BTreeMap<(String, Lane), (RelayAddress, Vec<Opener>)> = BTreeMap::new();
        for route in routes {
            if let Owner::Contact(c) = route.owner
                && isolate
            {
                // The relay's shared connection stays too (holding no relationship's
                // mailbox): it is the one that reports the relay up or down, so that a
                // relay that came back is caught up on.
                per_relay
                    .entry(route.relay.to_string())
                    .or_insert_with(|| (route.relay.clone(), Vec::new()));
                per_lane
                    .entry((route.relay.to_string(), Lane::of(c, route.epoch, true)))
                    .or_insert_with(|| (route.relay.clone(), Vec::new()))
                    .1
                    .push(route.secret.clone());
                self.routes.insert(route.secret.mailbox_id(), route);
                continue;
            }
            per_relay
                .entry(route.relay.to_string())
                .or_insert_with(|| (route.relay.clone(), Vec::new()))
                .1
                .push(route.secret.clone());
            self.routes.insert(route.secret.mailbox_id(), route);
        }
        // The local relay gets a link even with nothing to watch, so the driver learns when
        // the process serving it goes away and can serve it here.
        if let Some(local) = self.local_relay()? {
            per_relay
                .entry(local.to_string())
                .or_insert_with(|| (local, Vec::new()));
        }
        for (key, state) in &self.relays {
            per_relay
                .entry(key.clone())
                .or_insert_with(|| (state.address.clone(), Vec::new()));
        }
        for (_, (relay, secrets)) in per_relay {
            self.push_request(&relay, LinkOp::Subscribe { secrets });
        }
        self.set_lane_subscriptions(per_lane);
        self.subscribed = Some(watched);
        Ok(())
    }

    /// Moves the lanes' subscriptions to `wanted`: a lane whose set changed is sent the new
    /// one; a lane no longer wanted is sent the empty set (or, if its first subscription
    /// was still held back, nothing); a new lane's first subscription waits a random delay
    /// up to [`LANE_OPEN_JITTER`] and is followed by a fetch of the same mailboxes (what
    /// arrived before the relay registered it).
    fn set_lane_subscriptions(
        &mut self,
        wanted: BTreeMap<(String, Lane), (RelayAddress, Vec<Opener>)>,
    ) {
        let old = std::mem::take(&mut self.lane_subs);
        for (key, (relay, _)) in &old {
            if wanted.contains_key(key) {
                continue;
            }
            if self.pending_subs.remove(key).is_none() {
                self.push_request_on(
                    relay,
                    Some(key.1.contact),
                    Some(key.1),
                    LinkOp::Subscribe {
                        secrets: Vec::new(),
                    },
                );
            }
        }
        for (key, (relay, secrets)) in &wanted {
            match old.get(key) {
                Some((_, before)) if same_mailboxes(before, secrets) => {}
                // Held back: it is sent, with what is wanted then, at its time.
                _ if self.pending_subs.contains_key(key) => {}
                Some(_) => self.push_request_on(
                    relay,
                    Some(key.1.contact),
                    Some(key.1),
                    LinkOp::Subscribe {
                        secrets: secrets.clone(),
                    },
                ),
                None => {
                    let at =
                        self.now
                            .plus(uniform(Duration::ZERO, LANE_OPEN_JITTER, &mut self.rng));
                    self.pending_subs.insert(key.clone(), at);
                }
            }
        }
        self.lane_subs = wanted;
    }

    /// When the next held-back subscription, request or catch-up step is due.
    pub(super) fn next_held(&self) -> Option<Time> {
        let subs = self.pending_subs.values().min().copied();
        let later = self.later.keys().next().map(|(at, _)| *at);
        [subs, later, self.catch_up_at].into_iter().flatten().min()
    }

    /// Sends what was held back until `now`: lanes' first subscriptions (each followed by a
    /// fetch of its mailboxes), delayed requests, and the next step of a catch-up.
    pub(super) fn release_held(&mut self, now: Time) -> Result<()> {
        let due: Vec<(String, Lane)> = self
            .pending_subs
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.pending_subs.remove(&key);
            let Some((relay, secrets)) = self.lane_subs.get(&key).cloned() else {
                continue;
            };
            let lane = key.1;
            self.push_request_on(
                &relay,
                Some(lane.contact),
                Some(lane),
                LinkOp::Subscribe {
                    secrets: secrets.clone(),
                },
            );
            // Not part of a catch-up round (round 0 is never one): it only picks up what
            // arrived before the subscription held.
            let token = FetchToken(self.next_token);
            self.next_token += 1;
            self.fetches.insert(
                token,
                FetchJob {
                    relay: key.0,
                    contacts: Vec::new(),
                    retire: Vec::new(),
                    round: 0,
                },
            );
            self.push_request_on(
                &relay,
                Some(lane.contact),
                Some(lane),
                LinkOp::Fetch { token, secrets },
            );
        }
        while let Some(entry) = self.later.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let req = entry.remove();
            self.requests.push_back(req);
        }
        if self.catch_up_at.is_some_and(|at| at <= now) {
            self.catch_up_at = None;
            self.catch_up(None)?;
        }
        Ok(())
    }

    /// Fetches every epoch since each mailbox's last fetch (within the relays' expiry);
    /// `only`: just the mailboxes on that relay. Returns the fetches started.
    pub(super) fn catch_up(&mut self, only: Option<&RelayAddress>) -> Result<HashSet<FetchToken>> {
        let now_e = self.now.epoch();
        let first = now_e.saturating_sub(CATCH_UP_EPOCHS);
        // A last fetch "in the future" means the clock was ahead then and has been put
        // back: what arrived meanwhile may sit in any epoch of the window, so fetch it all.
        // With isolation every window of epochs is a connection of its own: a long catch-up
        // is spread over fetch slots, [`CATCH_UP_EPOCHS_PER_SLOT`] old epochs at a time (and
        // the current and next each time), so that it never opens dozens of connections at
        // once (a relay limits them per source).
        let isolate = self.isolating();
        // In normal mode (no slots) each lane's fetch waits a random delay, so that the
        // lanes' connections do not all open at one moment.
        let jitter = isolate && !self.schedule.high_risk();
        // Early in an epoch the previous one is fetched again, whatever was fetched of it:
        // a sender whose clock is behind still deposits there (in high-risk mode, where
        // nothing is subscribed, this is what [`PREVIOUS_EPOCH_GRACE`] means).
        let oldest_watched = self.watched_epochs().first().copied().unwrap_or(now_e);
        let routes = self.mailboxes(|last| {
            let from = if last > now_e + 1 {
                first
            } else {
                last.max(first).min(oldest_watched)
            };
            let end = from.saturating_add(CATCH_UP_EPOCHS_PER_SLOT);
            if isolate && end < now_e {
                (from..end).chain(now_e..=now_e + 1).collect()
            } else {
                (from..=now_e + 1).collect()
            }
        })?;
        // One fetch per relay; with isolation one per relay and lane (a relationship's
        // window of epochs), each on its own connection. An invite's drop is the profile's own.
        let mut plans: BTreeMap<(String, Option<Lane>), FetchPlan> = BTreeMap::new();
        let mut epochs_of: BTreeMap<super::ContactId, BTreeSet<u64>> = BTreeMap::new();
        for route in routes {
            if only.is_some_and(|o| *o != route.relay) {
                continue;
            }
            let lane = match route.owner {
                Owner::Contact(c) if isolate => Some(Lane::of(c, route.epoch, true)),
                _ => None,
            };
            let plan = plans.entry((route.relay.to_string(), lane)).or_default();
            plan.relay.get_or_insert_with(|| route.relay.clone());
            plan.lane = lane;
            plan.secrets.push(route.secret.clone());
            match route.owner {
                Owner::Contact(c) => {
                    let first = plan.contacts.entry(c).or_insert(route.epoch);
                    *first = (*first).min(route.epoch);
                    epochs_of.entry(c).or_default().insert(route.epoch);
                }
                Owner::Invite(i) => {
                    plan.invites.insert(i);
                }
            }
            self.routes.insert(route.secret.mailbox_id(), route);
        }
        let mut tokens = HashSet::new();
        if plans.is_empty() {
            return Ok(tokens);
        }
        let round = self.next_token;
        // A contact whose catch-up was cut short resumes at its first epoch left out.
        let resume_at = epochs_of
            .iter()
            .filter_map(|(c, epochs)| {
                let lowest = *epochs.first()?;
                (lowest..now_e)
                    .find(|e| !epochs.contains(e))
                    .map(|gap| (*c, gap))
            })
            .collect();
        self.rounds.insert(
            round,
            Round {
                pending: 0,
                epoch: now_e,
                contacts: BTreeSet::new(),
                failed_from: resume_at,
            },
        );
        for ((key, _), plan) in plans {
            let Some(relay) = plan.relay else { continue };
            let token = FetchToken(self.next_token);
            self.next_token += 1;
            if let Some(r) = self.rounds.get_mut(&round) {
                r.pending += 1;
                r.contacts.extend(plan.contacts.keys().copied());
            }
            self.fetches.insert(
                token,
                FetchJob {
                    relay: key,
                    retire: plan
                        .invites
                        .iter()
                        .filter(|i| self.used_invites.contains(i))
                        .copied()
                        .collect(),
                    contacts: plan.contacts.into_iter().collect(),
                    round,
                },
            );
            let req = self.request(
                &relay,
                plan.lane.map(|l| l.contact),
                plan.lane,
                LinkOp::Fetch {
                    token,
                    secrets: plan.secrets,
                },
            );
            let at = if jitter && plan.lane.is_some() {
                self.now
                    .plus(uniform(Duration::ZERO, LANE_OPEN_JITTER, &mut self.rng))
            } else {
                self.now
            };
            self.push_request_at(at, req);
            tokens.insert(token);
        }
        Ok(tokens)
    }

    /// `sync`: catch up everywhere and answer when every relay has answered. In high-risk
    /// mode the fetch waits for the next fetch slot (one asked for now would show when the
    /// user looks).
    pub(super) fn sync(&mut self, ticket: Ticket) -> Option<Result<Response>> {
        if self.schedule.high_risk() {
            self.sync_at_slot.push(ticket);
            return None;
        }
        match self.catch_up(None) {
            Ok(tokens) if tokens.is_empty() => Some(Ok(Response::Synced(true))),
            Ok(tokens) => {
                self.sync_waiters.push(SyncWaiter {
                    tokens,
                    ticket,
                    all_ok: true,
                });
                None
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// One fetch of a catch-up ended. When the last has, each contact's next catch-up starts
    /// at the epoch this one started in (even if lower than before: a clock put back), or at
    /// the first epoch of a fetch of it that failed.
    fn round_fetch_done(&mut self, job: &FetchJob, ok: bool) -> Result<()> {
        let Some(round) = self.rounds.get_mut(&job.round) else {
            return Ok(());
        };
        round.pending = round.pending.saturating_sub(1);
        if !ok {
            for (c, first) in &job.contacts {
                let from = round.failed_from.entry(*c).or_insert(*first);
                *from = (*from).min(*first);
            }
        }
        if round.pending > 0 {
            return Ok(());
        }
        if let Some(round) = self.rounds.remove(&job.round) {
            // With isolation in normal mode nothing else would go on with a catch-up cut
            // short, or retry one that failed on a lane while the relay is up (a lane's
            // connection still reconnecting after the relay came back): the next step
            // follows after a random delay. (High-risk mode goes on at its next fetch slot;
            // a relay that is down is caught up when it is back.)
            let any_up = self.relays.values().any(|r| r.up);
            if self.isolating()
                && !self.schedule.high_risk()
                && !round.failed_from.is_empty()
                && any_up
            {
                let at =
                    self.now
                        .plus(uniform(CATCH_UP_STEP_MIN, CATCH_UP_STEP_MAX, &mut self.rng));
                self.catch_up_at = Some(self.catch_up_at.map_or(at, |t| t.min(at)));
            }
            for c in round.contacts {
                let from = round.failed_from.get(&c).copied().unwrap_or(round.epoch);
                match self.store.db().set_contact_epoch(c, from) {
                    // A contact deleted meanwhile.
                    Ok(()) | Err(crate::Error::UnknownContact) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// A high-risk fetch slot: catch up on every mailbox, and answer the `sync` commands
    /// that waited for it.
    pub(super) fn fetch_slot(&mut self) -> Result<()> {
        let tokens = self.catch_up(None)?;
        for ticket in std::mem::take(&mut self.sync_at_slot) {
            if tokens.is_empty() {
                self.replies.push_back((ticket, Ok(Response::Synced(true))));
            } else {
                self.sync_waiters.push(SyncWaiter {
                    tokens: tokens.clone(),
                    ticket,
                    all_ok: true,
                });
            }
        }
        Ok(())
    }

    pub(super) fn on_fetch_done(&mut self, token: FetchToken, ok: bool) -> Result<()> {
        let job = self.fetches.remove(&token);
        if let Some(job) = job {
            self.round_fetch_done(&job, ok)?;
            if ok {
                // Used one-time invites whose invitee had left their mailboxes before this
                // fetch began: nothing more can arrive there.
                if !job.retire.is_empty() {
                    for i in job.retire {
                        self.used_invites.remove(&i);
                        match self.store.db().retire_invite(i) {
                            Ok(()) | Err(crate::Error::UnknownInvite) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    self.refresh_subscriptions()?;
                }
            } else if let Some(r) = self.relays.get_mut(&job.relay) {
                r.stale = true;
            }
        }
        let mut i = 0;
        while i < self.sync_waiters.len() {
            let w = &mut self.sync_waiters[i];
            if w.tokens.remove(&token) {
                w.all_ok &= ok;
            }
            if w.tokens.is_empty() {
                let w = self.sync_waiters.remove(i);
                self.replies
                    .push_back((w.ticket, Ok(Response::Synced(w.all_ok))));
            } else {
                i += 1;
            }
        }
        Ok(())
    }
}

/// Whether two sets of openers name the same mailboxes, in the same order.
fn same_mailboxes(a: &[Opener], b: &[Opener]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.mailbox_id() == y.mailbox_id())
}
