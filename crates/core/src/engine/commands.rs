//! Front-end commands: invites, contacts, messages and settings. Each is answered at once,
//! except `sync` and `flush`, which wait for the relays (see [`super::mailboxes`] and
//! [`super::outbox`]).

use hush_crypto::{Invite, InviteKind, InviterSecrets};
use hush_proto::RelayAddress;

use super::schedule::Pace;
use super::{Engine, Ticket};
use crate::api::{Command, ContactInfo, InviteLink, Response, SafetyInfo, Status};
use crate::content::Content;
use crate::error::{Error, Result};
use crate::store::settings::Setting;

/// Contact names: 1 to 64 characters, not all blank, no control characters.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let ok = !name.trim().is_empty()
        && name.chars().count() <= 64
        && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(
            "contact names are 1 to 64 printable characters".into(),
        ))
    }
}

/// Whether the profile has high-risk mode on (the `high_risk` setting; unset: off).
pub(crate) fn stored_high_risk(store: &crate::store::Store) -> Result<bool> {
    match store.db().setting(Setting::HighRisk)?.as_deref() {
        None | Some("off") => Ok(false),
        Some("on") => Ok(true),
        Some(_) => Err(Error::StoreCorrupted("high-risk setting")),
    }
}

/// Whether the profile has per-contact isolation on for normal mode (the `isolation`
/// setting; unset: off).
pub(crate) fn stored_isolation(store: &crate::store::Store) -> Result<bool> {
    match store.db().setting(Setting::Isolation)?.as_deref() {
        None | Some("off") => Ok(false),
        Some("on") => Ok(true),
        Some(_) => Err(Error::StoreCorrupted("isolation setting")),
    }
}

/// A relay address as a user gives it, for the profile's relay setting.
pub(crate) fn relay_setting(addr: &str) -> Result<RelayAddress> {
    let parsed: RelayAddress = addr
        .trim()
        .parse()
        .map_err(|_| Error::InvalidArgument("not a relay address (hush://PIN@HOST:PORT)".into()))?;
    usable_in_invite(parsed)
}

/// A relay address an invite can carry (its binary form decodes back to it).
fn usable_in_invite(addr: RelayAddress) -> Result<RelayAddress> {
    addr.to_binary()
        .map_err(|_| Error::InvalidArgument("relay host not usable in an invite".into()))?;
    Ok(addr)
}

impl Engine {
    /// Runs a command; `None` if the answer comes later.
    pub(super) fn command(&mut self, ticket: Ticket, cmd: Command) -> Option<Result<Response>> {
        let done = |r: Result<()>| Some(r.map(|()| Response::Done));
        match cmd {
            Command::CreateInvite {
                kind,
                name,
                stamp_bits,
            } => Some(
                self.create_invite(kind, name, stamp_bits)
                    .map(Response::Link),
            ),
            Command::Accept { link, name } => done(self.accept(&link, &name)),
            Command::Contacts => Some(self.contacts().map(Response::Contacts)),
            Command::Send { contact, text } => {
                Some(self.send_text(&contact, &text).map(Response::MessageId))
            }
            Command::Sync => self.sync(ticket),
            Command::Flush => self.flush(ticket),
            Command::TakeUnshown => Some(self.take_unshown().map(Response::Messages)),
            Command::MarkRead { contact } => done(self.mark_read(&contact)),
            Command::OutboxFor { contact } => Some(
                self.store
                    .db()
                    .existing_contact(&contact)
                    .and_then(|id| self.store.db().outbox_len(Some(id)))
                    .map(Response::Count),
            ),
            Command::Messages { contact, limit } => Some(
                self.store
                    .db()
                    .existing_contact(&contact)
                    .and_then(|id| self.store.db().last_messages(id, limit))
                    .map(Response::Messages),
            ),
            Command::Safety { contact } => Some(self.safety(&contact).map(Response::Safety)),
            Command::SetVerified { contact, verified } => done(
                self.store
                    .db()
                    .existing_contact(&contact)
                    .and_then(|id| self.store.db().set_verified(id, verified)),
            ),
            Command::SetDisappear { contact, secs } => done(self.set_disappear(&contact, secs)),
            Command::SetReceipts { contact, on } => done(
                self.store
                    .db()
                    .existing_contact(&contact)
                    .and_then(|id| self.store.db().set_receipts(id, on)),
            ),
            Command::Rename { from, to } => done(self.rename(&from, &to)),
            Command::DeleteMessages { contact } => {
                Some(self.delete_messages(&contact).map(Response::Count))
            }
            Command::SetRelay { address } => done(self.set_relay(&address)),
            Command::Status => Some(self.status().map(Response::Status)),
            Command::DeleteContact { contact } => done(self.delete_contact(&contact)),
            Command::SetBlocked { contact, blocked } => done(
                self.store
                    .db()
                    .existing_contact(&contact)
                    .and_then(|id| self.store.db().set_blocked(id, blocked)),
            ),
            Command::Invites => Some(self.store.db().invite_list().map(Response::Invites)),
            Command::RevokeInvite { id } => done(self.revoke_invite(id)),
            Command::MoveMailbox { contact, relay } => {
                done(self.move_mailbox(&contact, relay.as_deref()))
            }
            Command::SetHighRisk { on } => done(self.set_high_risk(on)),
            Command::SetIsolation { on } => done(self.set_isolation(on)),
            Command::Files(c) => Some(self.file_command(c)),
        }
    }

    /// The relay the profile names, if any.
    pub(super) fn configured_relay(&self) -> Result<Option<RelayAddress>> {
        self.store
            .db()
            .setting(Setting::Relay)?
            .map(|a| {
                a.parse()
                    .map_err(|_| Error::StoreCorrupted("configured relay address"))
            })
            .transpose()
    }

    /// The relay new invites point to.
    pub(super) fn home_relay(&self) -> Result<RelayAddress> {
        match self.configured_relay()? {
            Some(a) => Ok(a),
            None => self.config.local_relay.clone().ok_or(Error::NoRelay),
        }
    }

    fn create_invite(
        &mut self,
        kind: InviteKind,
        name: Option<String>,
        stamp_bits: Option<u8>,
    ) -> Result<InviteLink> {
        let bits = stamp_bits.unwrap_or(hush_crypto::DEFAULT_DROP_BITS);
        if bits > crate::api::MAX_INVITE_STAMP_BITS {
            return Err(Error::InvalidArgument(format!(
                "stamp difficulty must be 0..={} bits",
                crate::api::MAX_INVITE_STAMP_BITS
            )));
        }
        if let Some(n) = &name {
            validate_name(n)?;
            if self.store.db().contact_id(n)?.is_some() {
                return Err(Error::DuplicateContact);
            }
        }
        let relay = self.home_relay()?;
        let secrets = InviterSecrets::generate_with_bits(
            kind,
            usable_in_invite(relay)?,
            bits,
            &mut self.rng,
        )?;
        let link = secrets.invite()?.to_link();
        self.store.db().insert_invite(
            &secrets,
            name.as_deref(),
            self.now.epoch(),
            self.now.unix_secs(),
        )?;
        self.refresh_subscriptions()?;
        Ok(InviteLink(link))
    }

    fn accept(&mut self, link: &str, name: &str) -> Result<()> {
        validate_name(name)?;
        if self.store.db().contact_id(name)?.is_some() {
            return Err(Error::DuplicateContact);
        }
        let invite = Invite::parse(link)?;
        // What this profile can know: its own invites, and contacts made through a link of
        // the same inviter identity (the same link twice, or the same contact address). A
        // one-time link someone else already used cannot be known here: the inviter drops
        // the handshake, and the contact stays pending (shown "waiting for reply").
        if self
            .store
            .db()
            .all_invite_secrets()?
            .iter()
            .any(|s| s.made(&invite))
        {
            return Err(Error::OwnInvite);
        }
        if self
            .store
            .db()
            .contact_sessions()?
            .iter()
            .any(|(_, s, _)| invite.accepted_in(s))
        {
            return Err(Error::AlreadyContact);
        }
        let session = invite.accept(&mut self.rng)?;
        let id = self.store.db().insert_contact(
            name,
            &session,
            None,
            self.now.epoch(),
            self.now.unix_secs(),
        )?;
        // The handshake travels in a first envelope; an empty receipt carries it without
        // showing anything to the inviter but the new contact.
        self.send_content(
            id,
            &Content::Receipt { ids: Vec::new() },
            None,
            Pace::Fragments,
        )?;
        self.refresh_subscriptions()?;
        self.flush_due(None)?;
        Ok(())
    }

    fn contacts(&self) -> Result<Vec<ContactInfo>> {
        self.store.db().contact_list()
    }

    fn send_text(&mut self, name: &str, text: &str) -> Result<i64> {
        let id = self.store.db().existing_contact(name)?;
        let settings = self.store.db().contact_settings(id)?;
        if settings.blocked {
            return Err(Error::InvalidArgument(
                "the contact is blocked (unblock it to write)".into(),
            ));
        }
        let content = Content::Text {
            sent_at: self.now.unix_secs(),
            disappear_secs: settings
                .disappear_secs
                .map_or(0, |d| u32::try_from(d).unwrap_or(u32::MAX)),
            body: text.to_string(),
        };
        let row = self.send_content(id, &content, Some(text), Pace::Fragments)?;
        self.flush_due(None)?;
        row.ok_or(Error::StoreCorrupted("message row missing"))
    }

    fn take_unshown(&mut self) -> Result<Vec<crate::api::MessageInfo>> {
        let out = self.store.db().unshown()?;
        self.store.db().mark_shown(None)?;
        Ok(out)
    }

    fn mark_read(&mut self, name: &str) -> Result<()> {
        let id = self.store.db().existing_contact(name)?;
        self.store.db().mark_shown(Some(id))
    }

    fn safety(&self, name: &str) -> Result<SafetyInfo> {
        let id = self.store.db().existing_contact(name)?;
        let sn = self.store.db().session(id)?.safety_number();
        Ok(SafetyInfo {
            digits: sn.digits(),
            qr: sn.qr_string(),
            verified: self.store.db().verified(id)?,
        })
    }

    fn set_disappear(&mut self, name: &str, secs: Option<u64>) -> Result<()> {
        if secs == Some(0) || secs.is_some_and(|s| s > u64::from(u32::MAX)) {
            return Err(Error::InvalidArgument("timer out of range".into()));
        }
        let id = self.store.db().existing_contact(name)?;
        self.store.db().set_disappear(id, secs)
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        validate_name(to)?;
        let id = self.store.db().existing_contact(from)?;
        self.store.db().rename_contact(id, to)
    }

    fn delete_messages(&mut self, name: &str) -> Result<u64> {
        let id = self.store.db().existing_contact(name)?;
        let n = self.store.db().delete_messages(id)?;
        self.store.checkpoint()?;
        Ok(n)
    }

    fn set_relay(&mut self, addr: &str) -> Result<()> {
        self.store.set_relay(addr)
    }

    /// Moves where a contact deposits to us: a fresh mailbox root, on `relay` or on the
    /// same relay. The peer learns it in a control message; the old mailboxes stay watched
    /// while they may still receive.
    fn move_mailbox(&mut self, name: &str, relay: Option<&str>) -> Result<()> {
        let id = self.store.db().existing_contact(name)?;
        let relay = relay
            .map(|a| {
                a.trim()
                    .parse::<RelayAddress>()
                    .map_err(|_| {
                        Error::InvalidArgument("not a relay address (hush://PIN@HOST:PORT)".into())
                    })
                    .and_then(usable_in_invite)
            })
            .transpose()?;
        let mut session = self.store.db().session(id)?;
        let next = self.store.db().contact_settings(id)?.next_msg_id;
        let control = session.move_receive_mailbox(relay, self.now.unix_secs(), &mut self.rng)?;
        self.queue_payloads(id, session, &[control], None, next, Pace::Fragments)?;
        self.refresh_subscriptions()?;
        self.flush_due(None)?;
        Ok(())
    }

    /// Deletes a contact and everything of it; its mailboxes are no longer watched. A
    /// one-time invite that made it and is still answered is retired with it.
    fn delete_contact(&mut self, name: &str) -> Result<()> {
        let id = self.store.db().existing_contact(name)?;
        if let Some(invite) = self.store.db().active_one_time_invite_of(id)? {
            self.store.db().retire_invite(invite)?;
        }
        self.store.db().delete_contact(id)?;
        self.store.checkpoint()?;
        self.routes
            .retain(|_, r| r.owner != super::Owner::Contact(id));
        self.refresh_subscriptions()
    }

    fn revoke_invite(&mut self, id: i64) -> Result<()> {
        self.store.db().retire_invite(crate::store::InviteId(id))?;
        self.refresh_subscriptions()
    }

    /// Turns high-risk mode on or off for this profile (stored, so it stays so).
    fn set_high_risk(&mut self, on: bool) -> Result<()> {
        self.store
            .db()
            .set_setting(Setting::HighRisk, if on { "on" } else { "off" })?;
        self.schedule.set_high_risk(on, self.now);
        // On: the relays stop pushing. Off: subscriptions again, a fetch of what arrived
        // since the last fetch slot, and what waited for a slot leaves, paced.
        self.refresh_subscriptions()?;
        if !on {
            self.catch_up(None)?;
        }
        self.flush_due(None)?;
        Ok(())
    }

    /// Turns per-contact isolation on or off for normal mode (stored, so it stays so). In
    /// high-risk mode, which always isolates, only the stored setting changes. In normal
    /// mode the subscriptions move (the shared connection's to the lanes, or back) and a
    /// fetch catches up on what may have arrived meanwhile.
    fn set_isolation(&mut self, on: bool) -> Result<()> {
        self.store
            .db()
            .set_setting(Setting::Isolation, if on { "on" } else { "off" })?;
        let changed = self.isolation_setting != on;
        self.isolation_setting = on;
        if changed && !self.schedule.high_risk() {
            self.refresh_subscriptions()?;
            self.catch_up(None)?;
        }
        Ok(())
    }

    fn status(&self) -> Result<Status> {
        let configured = self.configured_relay()?;
        let home_relay_local = configured.is_none() && self.config.local_relay.is_some();
        let home = configured.or_else(|| self.config.local_relay.clone());
        Ok(Status {
            home_relay: home.map(|a| a.to_string()),
            home_relay_local,
            relays_up: self.relays.values().filter(|r| r.up).count(),
            certificate_mismatch: self.relays.values().filter(|r| r.pin_mismatch).count(),
            proxy_failed: self.relays.values().filter(|r| r.proxy_failed).count(),
            private_route: self
                .relays
                .values()
                .find_map(|r| r.private_route)
                .map(str::to_owned),
            relays: self.relays.len(),
            outbox: self.store.db().outbox_len(None)?,
            high_risk: self.schedule.high_risk(),
            high_risk_cost: self.high_risk_cost()?,
            isolation: self.isolating(),
            isolation_setting: self.isolation_setting,
        })
    }

    /// What high-risk mode costs this profile now. With per-contact isolation a fetch slot
    /// asks once per relationship and window of epochs: the current and the next epoch fall
    /// in one window half of the time, in two the other half, so 1.5 fetches per contact.
    fn high_risk_cost(&self) -> Result<crate::engine::TrafficCost> {
        let n = u64::try_from(self.store.db().contact_sessions()?.len()).unwrap_or(u64::MAX);
        let fetch_ops = (n.saturating_mul(3) / 2).max(1);
        Ok(self.schedule.config().cost(n, fetch_ops))
    }
}
