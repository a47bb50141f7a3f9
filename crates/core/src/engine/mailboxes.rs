//! Which mailboxes the engine watches and fetches: every contact's receive mailboxes and
//! every active invite's handshake mailbox, per epoch; subscriptions for the current and
//! next epoch, and catch-up over what the relays may still hold.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use hush_proto::RelayAddress;

use hush_crypto::InviteKind;

use super::{
    Engine, FetchJob, FetchToken, Lane, LinkOp, Opener, Owner, Round, Route, SyncWaiter, Ticket,
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

    /// Subscribes to the current and next epoch's mailboxes on every relay in use (a relay
    /// with none left gets an empty set, which ends its old subscriptions). In high-risk
    /// mode nothing is subscribed (a push would show each arrival as it happens): relays in
    /// use are sent the empty set once, and the mailboxes are only fetched at fetch slots.
    pub(super) fn refresh_subscriptions(&mut self) -> Result<()> {
        let now_e = self.now.epoch();
        let routes = self.mailboxes(|_| vec![now_e, now_e + 1])?;
        if self.schedule.high_risk() {
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
            self.subscribed_epoch = Some(now_e);
            return Ok(());
        }
        self.subscriptions_cleared = false;
        let mut per_relay: BTreeMap<String, (RelayAddress, Vec<Opener>)> = BTreeMap::new();
        for route in routes {
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
        self.subscribed_epoch = Some(now_e);
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
        let routes = self.mailboxes(|last| {
            let from = if last > now_e + 1 {
                first
            } else {
                last.max(first)
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
            self.push_request_on(
                &relay,
                plan.lane.map(|l| l.contact),
                plan.lane,
                LinkOp::Fetch {
                    token,
                    secrets: plan.secrets,
                },
            );
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
