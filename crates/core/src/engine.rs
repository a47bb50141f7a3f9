//! The engine: one task that owns the store and every session, driven by typed commands
//! from front ends and by reports from relay links.
//!
//! Invariants it keeps:
//! - an envelope is acknowledged (deleted) on its relay only after what it carried was
//!   committed locally, together with the session state that decrypted it;
//! - an outgoing envelope is in the outbox, in the same transaction as the session state
//!   that produced it, before its first deposit; it leaves the outbox when the relay
//!   acknowledged a durable commit;
//! - the engine task never awaits the network: links report back through a channel.
//!
//! Logs carry no names, text, keys or mailbox ids.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hush_crypto::handshake::InitOutcome;
use hush_crypto::mailbox::epoch_of;
use hush_crypto::payload::{self, Payload};
use hush_crypto::{Envelope, Invite, InviteKind, InviterSecrets, Session};
use hush_proto::RelayAddress;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use rusqlite::{OptionalExtension, Transaction, params};
use tokio::sync::{mpsc, oneshot};

use crate::content::Content;
use crate::embedded::{self, EmbeddedRelay};
use crate::error::{Error, Result};
use crate::store::{Store, os_random};
use crate::transport::{Inbound, Link, LinkReq};

/// How far back catch-up fetches: the relays' default expiry (7 days) in epochs.
const CATCH_UP_EPOCHS: u64 = 7 * 24;
/// Retry backoff cap for deposits.
const RETRY_MAX_SECS: u64 = 300;
/// How long shutdown waits for acknowledgements still on their way to a relay.
const SHUTDOWN_ACK_WAIT: Duration = Duration::from_secs(5);
/// How long shutdown waits for each relay link to close its connection.
const LINK_CLOSE_WAIT: Duration = Duration::from_millis(500);

/// Engine options.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Seconds added to the system clock (tests of epoch rotation and catch-up).
    pub clock_offset_secs: i64,
    /// Data root for the embedded relay (used when no relay is configured).
    pub data_root: PathBuf,
    /// Test hook: abort the process at this point, as `kill -9` would.
    pub crash_at: Option<CrashPoint>,
}

/// Where [`Options::crash_at`] aborts the process (tests of crash safety).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// After a received message was decrypted, before it is committed.
    BeforeCommit,
    /// After it was committed, before the relay is told to delete it.
    BeforeAck,
}

impl CrashPoint {
    /// Parses `before-commit` / `before-ack`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "before-commit" => Some(Self::BeforeCommit),
            "before-ack" => Some(Self::BeforeAck),
            _ => None,
        }
    }
}

/// A contact as front ends see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactInfo {
    /// Local name.
    pub name: String,
    /// Safety number verified by the user.
    pub verified: bool,
    /// Disappearing-message timer, if on.
    pub disappear_secs: Option<u64>,
    /// Messages received and not yet shown.
    pub unread: u64,
    /// The handshake is not complete yet (we accepted, they have not replied).
    pub pending: bool,
}

/// Delivery state of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// In the local outbox, not yet on a relay.
    Queued,
    /// Durably stored on the relay.
    OnRelay,
    /// The peer's device confirmed receipt.
    Delivered,
    /// An incoming message.
    Received,
}

impl Delivery {
    /// The state's name: queued, on-relay, delivered or received.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::OnRelay => "on-relay",
            Self::Delivered => "delivered",
            Self::Received => "received",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "on-relay" => Self::OnRelay,
            "delivered" => Self::Delivered,
            "received" => Self::Received,
            _ => Self::Queued,
        }
    }
}

/// A message as front ends see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageInfo {
    /// Local row id.
    pub id: i64,
    /// The contact's local name.
    pub contact: String,
    /// Sent by us.
    pub outgoing: bool,
    /// The text.
    pub body: String,
    /// Sender's clock, Unix seconds.
    pub sent_at: u64,
    /// Delivery state.
    pub state: Delivery,
    /// When it disappears, Unix seconds.
    pub expires_at: Option<u64>,
}

/// A relationship's safety number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafetyInfo {
    /// Twelve groups of five digits.
    pub digits: String,
    /// The string to show as a QR code.
    pub qr: String,
    /// Marked verified.
    pub verified: bool,
}

/// What the engine reports on its own.
#[derive(Clone, Debug)]
pub enum Event {
    /// A message arrived.
    Message(MessageInfo),
    /// An outgoing message changed delivery state.
    DeliveryChanged {
        /// Contact name.
        contact: String,
        /// Local row id.
        id: i64,
        /// New state.
        state: Delivery,
    },
    /// A relationship was created by someone accepting our invite.
    ContactAdded {
        /// The name given to it.
        name: String,
    },
    /// Connection state of a relay changed.
    Relay {
        /// Connected.
        up: bool,
    },
}

/// Engine status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Relays connected.
    pub relays_up: usize,
    /// Relays in use.
    pub relays: usize,
    /// Envelopes waiting in the outbox.
    pub outbox: u64,
}

type Reply<T> = oneshot::Sender<Result<T>>;

enum Command {
    CreateInvite(InviteKind, Option<String>, Reply<String>),
    Accept(String, String, Reply<()>),
    Contacts(Reply<Vec<ContactInfo>>),
    Send(String, String, Reply<i64>),
    Sync(Reply<bool>),
    Flush(Reply<u64>),
    TakeUnshown(Reply<Vec<MessageInfo>>),
    MarkRead(String, Reply<()>),
    Outbox(String, Reply<u64>),
    Messages(String, usize, Reply<Vec<MessageInfo>>),
    Safety(String, Reply<SafetyInfo>),
    SetVerified(String, bool, Reply<()>),
    SetDisappear(String, Option<u64>, Reply<()>),
    SetReceipts(String, bool, Reply<()>),
    Rename(String, String, Reply<()>),
    DeleteMessages(String, Reply<u64>),
    SetRelay(String, Reply<()>),
    Status(Reply<Status>),
    Shutdown(oneshot::Sender<()>),
}

/// A cheap, clonable handle to a running engine.
#[derive(Clone, Debug)]
pub struct Handle {
    tx: mpsc::UnboundedSender<Command>,
}

macro_rules! call {
    ($self:ident, $variant:ident $(, $arg:expr)*) => {{
        let (tx, rx) = oneshot::channel();
        $self
            .tx
            .send(Command::$variant($($arg,)* tx))
            .map_err(|_| Error::EngineStopped)?;
        rx.await.map_err(|_| Error::EngineStopped)?
    }};
}

impl Handle {
    /// Makes an invite and returns its link. `name` names the contact a one-time invite
    /// will create.
    pub async fn create_invite(&self, kind: InviteKind, name: Option<String>) -> Result<String> {
        call!(self, CreateInvite, kind, name)
    }
    /// Accepts an invite link; the new contact gets `name`. Sends the handshake at once.
    pub async fn accept(&self, link: &str, name: &str) -> Result<()> {
        call!(self, Accept, link.to_string(), name.to_string())
    }
    /// All contacts.
    pub async fn contacts(&self) -> Result<Vec<ContactInfo>> {
        call!(self, Contacts)
    }
    /// Queues a text message; returns its local id.
    pub async fn send(&self, contact: &str, text: &str) -> Result<i64> {
        call!(self, Send, contact.to_string(), text.to_string())
    }
    /// Fetches every mailbox epoch since the last one seen; `false` if a relay failed.
    pub async fn sync(&self) -> Result<bool> {
        call!(self, Sync)
    }
    /// Tries every due outbox entry once; returns how many remain.
    pub async fn flush(&self) -> Result<u64> {
        call!(self, Flush)
    }
    /// Received messages not shown yet, marked shown.
    pub async fn take_unshown(&self) -> Result<Vec<MessageInfo>> {
        call!(self, TakeUnshown)
    }
    /// Envelopes to a contact still waiting in the outbox (0: all on their relay).
    pub async fn outbox_for(&self, contact: &str) -> Result<u64> {
        call!(self, Outbox, contact.to_string())
    }
    /// Marks every received message of a contact shown (its conversation is open).
    pub async fn mark_read(&self, contact: &str) -> Result<()> {
        call!(self, MarkRead, contact.to_string())
    }
    /// The last `limit` messages with a contact, oldest first.
    pub async fn messages(&self, contact: &str, limit: usize) -> Result<Vec<MessageInfo>> {
        call!(self, Messages, contact.to_string(), limit)
    }
    /// Safety number of a contact.
    pub async fn safety(&self, contact: &str) -> Result<SafetyInfo> {
        call!(self, Safety, contact.to_string())
    }
    /// Marks a contact verified or not.
    pub async fn set_verified(&self, contact: &str, verified: bool) -> Result<()> {
        call!(self, SetVerified, contact.to_string(), verified)
    }
    /// Sets the disappearing timer of a conversation (`None` = off).
    pub async fn set_disappear(&self, contact: &str, secs: Option<u64>) -> Result<()> {
        call!(self, SetDisappear, contact.to_string(), secs)
    }
    /// Turns delivery receipts to a contact on or off.
    pub async fn set_receipts(&self, contact: &str, on: bool) -> Result<()> {
        call!(self, SetReceipts, contact.to_string(), on)
    }
    /// Renames a contact.
    pub async fn rename(&self, old: &str, new: &str) -> Result<()> {
        call!(self, Rename, old.to_string(), new.to_string())
    }
    /// Deletes the local history with a contact; returns how many messages.
    pub async fn delete_messages(&self, contact: &str) -> Result<u64> {
        call!(self, DeleteMessages, contact.to_string())
    }
    /// Sets the relay new invites point to.
    pub async fn set_relay(&self, address: &str) -> Result<()> {
        call!(self, SetRelay, address.to_string())
    }
    /// Connection and outbox status.
    pub async fn status(&self) -> Result<Status> {
        call!(self, Status)
    }
    /// Stops the engine (and the embedded relay it serves, if any).
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Starts the engine on an open store.
pub async fn start(
    store: Store,
    opts: Options,
) -> Result<(Handle, mpsc::UnboundedReceiver<Event>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (inbound_tx, inbound_rx) = mpsc::unbounded_channel();
    let mut seed = [0u8; 32];
    os_random(&mut seed)?;
    let mut engine = Engine {
        store,
        opts,
        rng: ChaCha20Rng::from_seed(seed),
        links: HashMap::new(),
        links_up: HashSet::new(),
        inbound_tx,
        events: events_tx,
        routes: HashMap::new(),
        in_flight: HashSet::new(),
        fetches: HashMap::new(),
        next_token: 1,
        sync_waiters: Vec::new(),
        flush_waiters: Vec::new(),
        embedded: None,
        embedded_key: None,
        subscribed_epoch: None,
        stale_relays: HashSet::new(),
        acks_in_flight: 0,
    };
    engine.sweep_expired()?;
    engine.setup_default_relay().await?;
    engine.refresh_subscriptions()?;
    engine.catch_up(None)?;
    engine.flush_due_by(None, i64::MAX)?;
    tokio::spawn(engine.run(rx, inbound_rx));
    Ok((Handle { tx }, events_rx))
}

#[derive(Clone, Copy)]
enum Owner {
    Contact(i64),
    Invite(i64),
}

struct Route {
    owner: Owner,
    secret: [u8; 32],
    relay: String,
}

struct FetchJob {
    relay: String,
    contacts: Vec<i64>,
    invites: Vec<i64>,
    epoch: u64,
}

/// Secrets to fetch from one relay, and whose mailboxes they are (contacts, invites).
type FetchPlan = (Vec<[u8; 32]>, HashSet<i64>, HashSet<i64>);

struct FlushWaiter {
    waiting: HashSet<i64>,
    reply: Reply<u64>,
}

struct Engine {
    store: Store,
    opts: Options,
    rng: ChaCha20Rng,
    links: HashMap<String, Link>,
    links_up: HashSet<String>,
    inbound_tx: mpsc::UnboundedSender<Inbound>,
    events: mpsc::UnboundedSender<Event>,
    routes: HashMap<[u8; 32], Route>,
    in_flight: HashSet<i64>,
    fetches: HashMap<u64, FetchJob>,
    next_token: u64,
    sync_waiters: Vec<(HashSet<u64>, Reply<bool>, bool)>,
    flush_waiters: Vec<FlushWaiter>,
    embedded: Option<EmbeddedRelay>,
    embedded_key: Option<String>,
    subscribed_epoch: Option<u64>,
    /// Relays that went down or failed a fetch since their last catch-up: the next time
    /// their link is up, their mailboxes are fetched again.
    stale_relays: HashSet<String>,
    /// Deletes sent to relays and not answered yet.
    acks_in_flight: usize,
}

/// Canonical key of a relay: its address string.
fn relay_key(addr: &RelayAddress) -> Result<(String, RelayAddress)> {
    Ok((addr.to_string(), addr.clone()))
}

fn locator_of(addr: &RelayAddress) -> Result<RelayAddress> {
    addr.to_binary()
        .map(|_| addr.clone())
        .map_err(|_| Error::InvalidArgument("relay host not usable in an invite".into()))
}

fn backoff_secs(attempts: u64) -> u64 {
    let base = 1u64 << attempts.min(9);
    let mut b = [0u8; 1];
    let _ = getrandom::fill(&mut b);
    // Jitter: 50% to 150%.
    let jittered = base * (50 + u64::from(b[0]) * 100 / 255) / 100;
    jittered.clamp(1, RETRY_MAX_SECS)
}

impl Engine {
    fn now(&self) -> u64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        real.saturating_add_signed(self.opts.clock_offset_secs)
    }

    async fn setup_default_relay(&mut self) -> Result<()> {
        if self.store.setting("relay")?.is_some() {
            return Ok(());
        }
        let addr = embedded::address(&self.opts.data_root)?;
        self.embedded = embedded::serve(&self.opts.data_root).await?;
        self.embedded_key = Some(addr.to_string());
        Ok(())
    }

    /// The relay new invites point to.
    fn home_relay(&self) -> Result<RelayAddress> {
        if let Some(a) = self.store.setting("relay")? {
            return a
                .parse()
                .map_err(|_| Error::InvalidArgument("configured relay address is invalid".into()));
        }
        embedded::address(&self.opts.data_root)
    }

    fn link(&mut self, key: &str, addr: &RelayAddress) -> &Link {
        let inbound = self.inbound_tx.clone();
        self.links
            .entry(key.to_string())
            .or_insert_with(|| Link::spawn(addr.clone(), key.to_string(), inbound))
    }

    fn send_to(&mut self, key: &str, req: LinkReq) -> Result<()> {
        let addr: RelayAddress = key
            .parse()
            .map_err(|_| Error::Relay("invalid relay address".into()))?;
        self.link(key, &addr).send(req);
        Ok(())
    }

    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut inbound: mpsc::UnboundedReceiver<Inbound>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    None => break,
                    Some(Command::Shutdown(done)) => {
                        self.drain_acks(&mut inbound).await;
                        for (_, link) in self.links.drain() {
                            link.close(LINK_CLOSE_WAIT).await;
                        }
                        if let Some(e) = self.embedded.take() {
                            e.stop().await;
                        }
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => self.handle_command(cmd),
                },
                Some(msg) = inbound.recv() => {
                    if let Err(e) = self.handle_inbound(msg).await {
                        tracing::warn!(error = %e, "engine: handling a relay report failed");
                    }
                }
                _ = tick.tick() => {
                    if let Err(e) = self.on_tick() {
                        tracing::warn!(error = %e, "engine: periodic work failed");
                    }
                }
            }
        }
        self.links.clear();
        if let Some(e) = self.embedded.take() {
            e.stop().await;
        }
    }

    /// Waits (bounded) until the acknowledgements sent so far have reached their relays. A
    /// short-lived process (a CLI command) would otherwise exit with them in flight, and the
    /// relay would keep, and deliver again, envelopes already committed here. Only
    /// acknowledgement and deposit reports are handled meanwhile: anything else is left for
    /// the next run (an envelope not acknowledged is delivered again).
    async fn drain_acks(&mut self, inbound: &mut mpsc::UnboundedReceiver<Inbound>) {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_ACK_WAIT;
        while self.acks_in_flight > 0 {
            match tokio::time::timeout_at(deadline, inbound.recv()).await {
                Ok(Some(Inbound::Deleted)) => {
                    self.acks_in_flight = self.acks_in_flight.saturating_sub(1);
                }
                Ok(Some(Inbound::Deposited { outbox_id, result })) => {
                    if let Err(e) = self.on_deposited(outbox_id, result) {
                        tracing::warn!(error = %e, "engine: recording a deposit failed");
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }

    fn handle_command(&mut self, cmd: Command) {
        match cmd {
            Command::CreateInvite(kind, name, r) => {
                let _ = r.send(self.create_invite(kind, name));
            }
            Command::Accept(link, name, r) => {
                let _ = r.send(self.accept(&link, &name));
            }
            Command::Contacts(r) => {
                let _ = r.send(self.contacts());
            }
            Command::Send(name, text, r) => {
                let _ = r.send(self.send_text(&name, &text));
            }
            Command::Sync(r) => match self.catch_up(None) {
                Ok(tokens) if tokens.is_empty() => {
                    let _ = r.send(Ok(true));
                }
                Ok(tokens) => self.sync_waiters.push((tokens, r, true)),
                Err(e) => {
                    let _ = r.send(Err(e));
                }
            },
            Command::Flush(r) => match self.flush_due(None).map(|mut w| {
                // Deposits already on their way count too.
                w.extend(self.in_flight.iter().copied());
                w
            }) {
                Ok(waiting) if waiting.is_empty() => {
                    let _ = r.send(self.outbox_len());
                }
                Ok(waiting) => self.flush_waiters.push(FlushWaiter { waiting, reply: r }),
                Err(e) => {
                    let _ = r.send(Err(e));
                }
            },
            Command::TakeUnshown(r) => {
                let _ = r.send(self.take_unshown());
            }
            Command::Outbox(name, r) => {
                let res = self.contact_id(&name).and_then(|id| {
                    let id = id.ok_or(Error::UnknownContact)?;
                    let n: i64 = self.store.conn().query_row(
                        "SELECT count(*) FROM outbox WHERE contact_id = ?1",
                        [id],
                        |row| row.get(0),
                    )?;
                    Ok(n as u64)
                });
                let _ = r.send(res);
            }
            Command::MarkRead(name, r) => {
                let res = self.contact_id(&name).and_then(|id| {
                    let id = id.ok_or(Error::UnknownContact)?;
                    self.store.conn().execute(
                        "UPDATE messages SET shown = 1 WHERE contact_id = ?1 AND outgoing = 0 AND shown = 0",
                        [id],
                    )?;
                    Ok(())
                });
                let _ = r.send(res);
            }
            Command::Messages(name, limit, r) => {
                let _ = r.send(self.messages(&name, limit));
            }
            Command::Safety(name, r) => {
                let _ = r.send(self.safety(&name));
            }
            Command::SetVerified(name, v, r) => {
                let _ = r.send(self.update_contact(&name, "verified", i64::from(v)));
            }
            Command::SetDisappear(name, secs, r) => {
                let _ = r.send(self.set_disappear(&name, secs));
            }
            Command::SetReceipts(name, on, r) => {
                let _ = r.send(self.update_contact(&name, "receipts", i64::from(on)));
            }
            Command::Rename(old, new, r) => {
                let _ = r.send(self.rename(&old, &new));
            }
            Command::DeleteMessages(name, r) => {
                let _ = r.send(self.delete_messages(&name));
            }
            Command::SetRelay(addr, r) => {
                let _ = r.send(self.set_relay(&addr));
            }
            Command::Status(r) => {
                let _ = r.send(self.status());
            }
            Command::Shutdown(_) => {}
        }
    }

    // ---- commands ----

    fn create_invite(&mut self, kind: InviteKind, name: Option<String>) -> Result<String> {
        if let Some(n) = &name {
            validate_name(n)?;
            if self.contact_id(n)?.is_some() {
                return Err(Error::DuplicateContact);
            }
        }
        let relay = self.home_relay()?;
        let secrets = InviterSecrets::generate(kind, locator_of(&relay)?, &mut self.rng)?;
        let link = secrets.invite()?.to_link();
        let now = self.now();
        self.store.conn().execute(
            "INSERT INTO invites(kind, secrets, name, created, last_epoch) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                kind_str(kind),
                secrets.to_bytes().as_slice(),
                name,
                now as i64,
                epoch_of(now) as i64
            ],
        )?;
        self.refresh_subscriptions()?;
        Ok(link)
    }

    fn accept(&mut self, link: &str, name: &str) -> Result<()> {
        validate_name(name)?;
        if self.contact_id(name)?.is_some() {
            return Err(Error::DuplicateContact);
        }
        let invite = Invite::parse(link)?;
        let session = invite.accept(&mut self.rng)?;
        let now = self.now();
        let id = {
            let tx = self.store.conn().transaction()?;
            insert_contact(&tx, name, &session, None, now)?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            id
        };
        // The handshake travels in a first envelope; an empty receipt carries it without
        // showing anything to the inviter but the new contact.
        self.send_content(id, &Content::Receipt { ids: Vec::new() }, None)?;
        self.refresh_subscriptions()?;
        self.flush_due(None)?;
        Ok(())
    }

    fn contacts(&mut self) -> Result<Vec<ContactInfo>> {
        let conn = self.store.conn();
        let mut stmt = conn.prepare(
            "SELECT c.name, c.verified, c.disappear_secs, c.session,
                    (SELECT count(*) FROM messages m WHERE m.contact_id = c.id AND m.outgoing = 0 AND m.shown = 0)
             FROM contacts c ORDER BY c.name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (name, verified, disappear, session, unread) = row?;
            let pending = Session::from_bytes(&session)
                .map(|s| s.awaiting_reply())
                .unwrap_or(false);
            out.push(ContactInfo {
                name,
                verified: verified != 0,
                disappear_secs: disappear.map(|d| d as u64),
                unread: unread as u64,
                pending,
            });
        }
        Ok(out)
    }

    fn send_text(&mut self, name: &str, text: &str) -> Result<i64> {
        let id = self.contact_id(name)?.ok_or(Error::UnknownContact)?;
        let disappear: Option<i64> = self.store.conn().query_row(
            "SELECT disappear_secs FROM contacts WHERE id = ?1",
            [id],
            |r| r.get(0),
        )?;
        let now = self.now();
        let content = Content::Text {
            sent_at: now,
            disappear_secs: disappear.map_or(0, |d| u32::try_from(d).unwrap_or(u32::MAX)),
            body: text.to_string(),
        };
        let row = self.send_content(id, &content, Some((text, now, disappear)))?;
        self.flush_due(None)?;
        row.ok_or(Error::Store("message row missing".into()))
    }

    /// Encrypts content for a contact into the outbox, in one transaction with the session
    /// state (and the message row, for text). Returns the message row id.
    fn send_content(
        &mut self,
        contact_id: i64,
        content: &Content,
        text: Option<(&str, u64, Option<i64>)>,
    ) -> Result<Option<i64>> {
        let now = self.now();
        let (session_bytes, msg_id): (Vec<u8>, i64) = self.store.conn().query_row(
            "SELECT session, next_msg_id FROM contacts WHERE id = ?1",
            [contact_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mut session = Session::from_bytes(&session_bytes)?;
        let pieces =
            payload::fragment(msg_id as u64, &content.encode(), session.payload_capacity())?;
        let mut envelopes = Vec::with_capacity(pieces.len());
        for piece in &pieces {
            let env = session.encrypt(piece, &mut self.rng)?;
            let (relay, mailbox) = session.deposit_target(now);
            let (key, _) = relay_key(relay)?;
            envelopes.push((key, mailbox.0, env));
        }
        let tx = self.store.conn().transaction()?;
        let row = match text {
            Some((body, sent_at, disappear)) => {
                tx.execute(
                    "INSERT INTO messages(contact_id, outgoing, msg_id, body, sent_at, state, expires_at, shown)
                     VALUES (?1, 1, ?2, ?3, ?4, 'queued', ?5, 1)",
                    params![
                        contact_id,
                        msg_id,
                        body,
                        sent_at as i64,
                        disappear.map(|d| sent_at as i64 + d)
                    ],
                )?;
                Some(tx.last_insert_rowid())
            }
            None => None,
        };
        for (key, mailbox, env) in &envelopes {
            tx.execute(
                "INSERT INTO outbox(contact_id, message_id, relay, mailbox_id, envelope, next_attempt)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0)",
                params![contact_id, row, key, &mailbox[..], &env.as_bytes()[..]],
            )?;
        }
        tx.execute(
            "UPDATE contacts SET session = ?1, next_msg_id = ?2 WHERE id = ?3",
            params![session.to_bytes().as_slice(), msg_id + 1, contact_id],
        )?;
        tx.commit()?;
        Ok(row)
    }

    fn take_unshown(&mut self) -> Result<Vec<MessageInfo>> {
        let out = self.query_messages(
            "WHERE m.outgoing = 0 AND m.shown = 0 ORDER BY m.id",
            params![],
        )?;
        self.store.conn().execute(
            "UPDATE messages SET shown = 1 WHERE outgoing = 0 AND shown = 0",
            [],
        )?;
        Ok(out)
    }

    fn messages(&mut self, name: &str, limit: usize) -> Result<Vec<MessageInfo>> {
        let id = self.contact_id(name)?.ok_or(Error::UnknownContact)?;
        let mut out = self.query_messages(
            "WHERE m.contact_id = ?1 ORDER BY m.id DESC LIMIT ?2",
            params![id, limit as i64],
        )?;
        out.reverse();
        Ok(out)
    }

    fn query_messages(
        &mut self,
        clause: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<MessageInfo>> {
        let sql = format!(
            "SELECT m.id, c.name, m.outgoing, m.body, m.sent_at, m.state, m.expires_at
             FROM messages m JOIN contacts c ON c.id = m.contact_id {clause}"
        );
        let conn = self.store.conn();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(args, |r| {
            Ok(MessageInfo {
                id: r.get(0)?,
                contact: r.get(1)?,
                outgoing: r.get::<_, i64>(2)? != 0,
                body: r.get(3)?,
                sent_at: r.get::<_, i64>(4)? as u64,
                state: Delivery::parse(&r.get::<_, String>(5)?),
                expires_at: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    fn safety(&mut self, name: &str) -> Result<SafetyInfo> {
        let id = self.contact_id(name)?.ok_or(Error::UnknownContact)?;
        let (bytes, verified): (Vec<u8>, i64) = self.store.conn().query_row(
            "SELECT session, verified FROM contacts WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let sn = Session::from_bytes(&bytes)?.safety_number();
        Ok(SafetyInfo {
            digits: sn.digits(),
            qr: sn.qr_string(),
            verified: verified != 0,
        })
    }

    fn update_contact(&mut self, name: &str, column: &'static str, value: i64) -> Result<()> {
        let id = self.contact_id(name)?.ok_or(Error::UnknownContact)?;
        self.store.conn().execute(
            &format!("UPDATE contacts SET {column} = ?1 WHERE id = ?2"),
            params![value, id],
        )?;
        Ok(())
    }

    fn set_disappear(&mut self, name: &str, secs: Option<u64>) -> Result<()> {
        if secs == Some(0) || secs.is_some_and(|s| s > u64::from(u32::MAX)) {
            return Err(Error::InvalidArgument("timer out of range".into()));
        }
        let id = self.contact_id(name)?.ok_or(Error::UnknownContact)?;
        self.store.conn().execute(
            "UPDATE contacts SET disappear_secs = ?1 WHERE id = ?2",
            params![secs.map(|s| s as i64), id],
        )?;
        Ok(())
    }

    fn rename(&mut self, old: &str, new: &str) -> Result<()> {
        validate_name(new)?;
        let id = self.contact_id(old)?.ok_or(Error::UnknownContact)?;
        if self.contact_id(new)?.is_some() {
            return Err(Error::DuplicateContact);
        }
        self.store.conn().execute(
            "UPDATE contacts SET name = ?1 WHERE id = ?2",
            params![new, id],
        )?;
        Ok(())
    }

    fn delete_messages(&mut self, name: &str) -> Result<u64> {
        let id = self.contact_id(name)?.ok_or(Error::UnknownContact)?;
        let n = self
            .store
            .conn()
            .execute("DELETE FROM messages WHERE contact_id = ?1", [id])?;
        self.checkpoint();
        Ok(n as u64)
    }

    fn set_relay(&mut self, addr: &str) -> Result<()> {
        let parsed: RelayAddress = addr.trim().parse().map_err(|_| {
            Error::InvalidArgument("not a relay address (hush://PIN@HOST:PORT)".into())
        })?;
        locator_of(&parsed)?;
        self.store.set_setting("relay", &parsed.to_string())?;
        Ok(())
    }

    fn status(&mut self) -> Result<Status> {
        Ok(Status {
            relays_up: self.links_up.len(),
            relays: self.links.len(),
            outbox: self.outbox_len()?,
        })
    }

    fn outbox_len(&mut self) -> Result<u64> {
        let n: i64 = self
            .store
            .conn()
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn contact_id(&mut self, name: &str) -> Result<Option<i64>> {
        Ok(self
            .store
            .conn()
            .query_row("SELECT id FROM contacts WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?)
    }

    // ---- mailboxes ----

    /// Every (contact, epoch) and (invite, epoch) mailbox to watch or fetch, as routes.
    fn mailboxes(
        &mut self,
        epochs: impl Fn(u64) -> Vec<u64>,
    ) -> Result<Vec<([u8; 32], Route, u64)>> {
        let now = self.now();
        let mut out = Vec::new();
        let contacts: Vec<(i64, Vec<u8>, i64)> = {
            let conn = self.store.conn();
            let mut stmt = conn.prepare("SELECT id, session, last_epoch FROM contacts")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<std::result::Result<_, _>>()?
        };
        for (id, bytes, last) in contacts {
            let session = Session::from_bytes(&bytes)?;
            for e in epochs(last as u64) {
                for (relay, secret) in session.receive_mailboxes(e, now) {
                    let (key, _) = relay_key(&relay)?;
                    out.push((
                        secret.mailbox_id().0,
                        Route {
                            owner: Owner::Contact(id),
                            secret: *secret.as_bytes(),
                            relay: key,
                        },
                        e,
                    ));
                }
            }
        }
        let invites: Vec<(i64, Vec<u8>, i64)> = {
            let conn = self.store.conn();
            let mut stmt =
                conn.prepare("SELECT id, secrets, last_epoch FROM invites WHERE active = 1")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<std::result::Result<_, _>>()?
        };
        for (id, bytes, last) in invites {
            let secrets = InviterSecrets::from_bytes(&bytes)?;
            let (key, _) = relay_key(secrets.relay())?;
            for e in epochs(last as u64) {
                let secret = secrets.handshake_fetch_secret(e);
                out.push((
                    secret.mailbox_id().0,
                    Route {
                        owner: Owner::Invite(id),
                        secret: *secret.as_bytes(),
                        relay: key.clone(),
                    },
                    e,
                ));
            }
        }
        Ok(out)
    }

    /// Subscribes to the current and next epoch's mailboxes on every relay.
    fn refresh_subscriptions(&mut self) -> Result<()> {
        let now_e = epoch_of(self.now());
        let boxes = self.mailboxes(|_| vec![now_e, now_e + 1])?;
        let mut per_relay: HashMap<String, Vec<[u8; 32]>> = HashMap::new();
        for (id, route, _) in boxes {
            per_relay
                .entry(route.relay.clone())
                .or_default()
                .push(route.secret);
            self.routes.insert(id, route);
        }
        if let Some(k) = self.embedded_key.clone() {
            per_relay.entry(k).or_default();
        }
        for key in self.links.keys().cloned().collect::<Vec<_>>() {
            per_relay.entry(key).or_default();
        }
        for (key, secrets) in per_relay {
            self.send_to(&key, LinkReq::Subscribe { secrets })?;
        }
        self.subscribed_epoch = Some(now_e);
        Ok(())
    }

    /// Fetches every epoch since each mailbox's last fetch (within the relays' expiry).
    /// Returns the tokens of the fetches started.
    /// `only`: just the mailboxes on that relay.
    fn catch_up(&mut self, only: Option<&str>) -> Result<HashSet<u64>> {
        let now_e = epoch_of(self.now());
        let first = now_e.saturating_sub(CATCH_UP_EPOCHS);
        // A last fetch "in the future" means the clock was ahead then and has been put
        // back: what arrived meanwhile may sit in any epoch of the window, so fetch it all.
        let boxes = self.mailboxes(|last| {
            let from = if last > now_e + 1 {
                first
            } else {
                last.max(first)
            };
            (from..=now_e + 1).collect()
        })?;
        let mut per_relay: HashMap<String, FetchPlan> = HashMap::new();
        for (id, route, _) in boxes {
            if only.is_some_and(|o| o != route.relay) {
                continue;
            }
            let entry = per_relay.entry(route.relay.clone()).or_default();
            entry.0.push(route.secret);
            match route.owner {
                Owner::Contact(c) => entry.1.insert(c),
                Owner::Invite(i) => entry.2.insert(i),
            };
            self.routes.insert(id, route);
        }
        let mut tokens = HashSet::new();
        for (key, (secrets, contacts, invites)) in per_relay {
            let token = self.next_token;
            self.next_token += 1;
            self.fetches.insert(
                token,
                FetchJob {
                    relay: key.clone(),
                    contacts: contacts.into_iter().collect(),
                    invites: invites.into_iter().collect(),
                    epoch: now_e,
                },
            );
            self.send_to(&key, LinkReq::Fetch { token, secrets })?;
            tokens.insert(token);
        }
        Ok(tokens)
    }

    // ---- outbox ----

    /// Sends every due outbox entry not already in flight; returns their ids.
    fn flush_due(&mut self, only: Option<&str>) -> Result<HashSet<i64>> {
        let now = self.now() as i64;
        self.flush_due_by(only, now)
    }

    /// Sends every outbox entry due by `due_by` (Unix seconds) not already in flight.
    /// Backoff spaces out retries against a relay that is down; a new engine (the user ran a
    /// command) and a link that came back up retry everything at once.
    fn flush_due_by(&mut self, only: Option<&str>, due_by: i64) -> Result<HashSet<i64>> {
        let rows: Vec<(i64, String, Vec<u8>, Vec<u8>)> = {
            let conn = self.store.conn();
            let mut stmt = conn.prepare(
                "SELECT id, relay, mailbox_id, envelope FROM outbox WHERE next_attempt <= ?1 ORDER BY id",
            )?;
            stmt.query_map([due_by], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<std::result::Result<_, _>>()?
        };
        let mut sent = HashSet::new();
        for (id, relay, mailbox, envelope) in rows {
            if self.in_flight.contains(&id) || only.is_some_and(|o| o != relay) {
                continue;
            }
            let Ok(mailbox) = <[u8; 32]>::try_from(mailbox.as_slice()) else {
                continue;
            };
            self.in_flight.insert(id);
            sent.insert(id);
            self.send_to(
                &relay,
                LinkReq::Deposit {
                    outbox_id: id,
                    mailbox,
                    envelope,
                },
            )?;
        }
        Ok(sent)
    }

    fn on_deposited(
        &mut self,
        outbox_id: i64,
        result: std::result::Result<(), String>,
    ) -> Result<()> {
        self.in_flight.remove(&outbox_id);
        match result {
            Ok(()) => {
                let message: Option<Option<i64>> = self
                    .store
                    .conn()
                    .query_row(
                        "SELECT message_id FROM outbox WHERE id = ?1",
                        [outbox_id],
                        |r| r.get(0),
                    )
                    .optional()?;
                self.store
                    .conn()
                    .execute("DELETE FROM outbox WHERE id = ?1", [outbox_id])?;
                if let Some(Some(msg)) = message {
                    let left: i64 = self.store.conn().query_row(
                        "SELECT count(*) FROM outbox WHERE message_id = ?1",
                        [msg],
                        |r| r.get(0),
                    )?;
                    if left == 0 {
                        let changed = self.store.conn().execute(
                            "UPDATE messages SET state = 'on-relay' WHERE id = ?1 AND state = 'queued'",
                            [msg],
                        )?;
                        if changed > 0 {
                            self.emit_delivery(msg, Delivery::OnRelay)?;
                        }
                    }
                }
            }
            Err(reason) => {
                tracing::info!(reason = %reason, "deposit failed; will retry");
                let attempts: i64 = self
                    .store
                    .conn()
                    .query_row(
                        "SELECT attempts FROM outbox WHERE id = ?1",
                        [outbox_id],
                        |r| r.get(0),
                    )
                    .optional()?
                    .unwrap_or(0);
                let next = self.now() + backoff_secs(attempts as u64);
                self.store.conn().execute(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?1 WHERE id = ?2",
                    params![next as i64, outbox_id],
                )?;
            }
        }
        let mut done = Vec::new();
        for (i, w) in self.flush_waiters.iter_mut().enumerate() {
            w.waiting.remove(&outbox_id);
            if w.waiting.is_empty() {
                done.push(i);
            }
        }
        for i in done.into_iter().rev() {
            let w = self.flush_waiters.remove(i);
            let left = self.outbox_len();
            let _ = w.reply.send(left);
        }
        Ok(())
    }

    fn emit_delivery(&mut self, msg: i64, state: Delivery) -> Result<()> {
        let contact: String = self.store.conn().query_row(
            "SELECT c.name FROM messages m JOIN contacts c ON c.id = m.contact_id WHERE m.id = ?1",
            [msg],
            |r| r.get(0),
        )?;
        let _ = self.events.send(Event::DeliveryChanged {
            contact,
            id: msg,
            state,
        });
        Ok(())
    }

    // ---- inbound ----

    async fn handle_inbound(&mut self, msg: Inbound) -> Result<()> {
        match msg {
            Inbound::Deposited { outbox_id, result } => self.on_deposited(outbox_id, result)?,
            Inbound::Delivery {
                mailbox,
                envelope_id,
                envelope,
            } => {
                let Some(route) = self.routes.get(&mailbox) else {
                    return Ok(());
                };
                let (owner, secret, relay) = (route.owner, route.secret, route.relay.clone());
                // Only a committed (or permanently unusable) envelope is acknowledged.
                self.process_envelope(owner, &envelope)?;
                if self.opts.crash_at == Some(CrashPoint::BeforeAck) {
                    std::process::abort();
                }
                self.send_to(
                    &relay,
                    LinkReq::Delete {
                        secret,
                        ids: vec![envelope_id],
                    },
                )?;
                self.acks_in_flight += 1;
            }
            Inbound::Deleted => {
                self.acks_in_flight = self.acks_in_flight.saturating_sub(1);
            }
            Inbound::FetchDone { token, ok } => {
                let job = self.fetches.remove(&token);
                if let Some(job) = &job
                    && !ok
                {
                    self.stale_relays.insert(job.relay.clone());
                }
                if let Some(job) = job
                    && ok
                {
                    // The epoch this fetch started in, even if lower than before (a clock
                    // put back): a later catch-up then starts there, not in the future.
                    for c in job.contacts {
                        self.store.conn().execute(
                            "UPDATE contacts SET last_epoch = ?1 WHERE id = ?2",
                            params![job.epoch as i64, c],
                        )?;
                    }
                    for i in job.invites {
                        self.store.conn().execute(
                            "UPDATE invites SET last_epoch = ?1 WHERE id = ?2",
                            params![job.epoch as i64, i],
                        )?;
                    }
                }
                let mut done = Vec::new();
                for (i, (tokens, _, all_ok)) in self.sync_waiters.iter_mut().enumerate() {
                    if tokens.remove(&token) {
                        *all_ok &= ok;
                    }
                    if tokens.is_empty() {
                        done.push(i);
                    }
                }
                for i in done.into_iter().rev() {
                    let (_, reply, ok) = self.sync_waiters.remove(i);
                    let _ = reply.send(Ok(ok));
                }
            }
            Inbound::LinkUp { relay } => {
                self.links_up.insert(relay.clone());
                let _ = self.events.send(Event::Relay { up: true });
                // Catch up on what arrived while this relay was away, and send what waited.
                // Fetches asked for while the link was still connecting were served by it:
                // only a relay that went down or failed a fetch needs another round.
                if self.stale_relays.remove(&relay) {
                    self.catch_up(Some(&relay))?;
                }
                self.flush_due_by(Some(&relay), i64::MAX)?;
            }
            Inbound::LinkDown { relay } => {
                self.links_up.remove(&relay);
                self.stale_relays.insert(relay.clone());
                let _ = self.events.send(Event::Relay { up: false });
                // If the local process serving the embedded relay went away, serve it here.
                if self.embedded.is_none() && self.embedded_key.as_deref() == Some(relay.as_str()) {
                    self.embedded = embedded::serve(&self.opts.data_root).await?;
                }
            }
            Inbound::Resync => {
                self.catch_up(None)?;
            }
        }
        Ok(())
    }

    fn process_envelope(&mut self, owner: Owner, bytes: &[u8]) -> Result<()> {
        let Ok(env) = Envelope::from_slice(bytes) else {
            return Ok(());
        };
        match owner {
            Owner::Contact(id) => {
                let bytes: Vec<u8> = self.store.conn().query_row(
                    "SELECT session FROM contacts WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )?;
                let mut session = Session::from_bytes(&bytes)?;
                match session.decrypt(&env, &mut self.rng) {
                    Ok(payload) => self.commit_payload(id, session, &payload, None),
                    Err(e) => {
                        // A replay (already committed) or an envelope no key opens: drop it.
                        tracing::debug!(error = %e, "envelope not decrypted; dropped");
                        Ok(())
                    }
                }
            }
            Owner::Invite(invite_id) => self.process_init(invite_id, &env),
        }
    }

    fn process_init(&mut self, invite_id: i64, env: &Envelope) -> Result<()> {
        let (bytes, name): (Vec<u8>, Option<String>) = self.store.conn().query_row(
            "SELECT secrets, name FROM invites WHERE id = ?1",
            [invite_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mut secrets = InviterSecrets::from_bytes(&bytes)?;
        match secrets.handle_init(env, &mut self.rng) {
            Err(e) => {
                tracing::debug!(error = %e, "handshake envelope rejected; dropped");
                Ok(())
            }
            Ok(InitOutcome::New { session, payload }) => {
                let name = match name {
                    Some(n) if self.contact_id(&n)?.is_none() => n,
                    _ => self.fresh_contact_name()?,
                };
                let now = self.now();
                let id = {
                    let tx = self.store.conn().transaction()?;
                    insert_contact(&tx, &name, &session, Some(invite_id), now)?;
                    let id = tx.last_insert_rowid();
                    tx.execute(
                        "UPDATE invites SET secrets = ?1 WHERE id = ?2",
                        params![secrets.to_bytes().as_slice(), invite_id],
                    )?;
                    tx.commit()?;
                    id
                };
                let _ = self.events.send(Event::ContactAdded { name });
                self.commit_payload(id, *session, &payload, None)?;
                // Answer at once: the reply completes the handshake (the invitee leaves the
                // handshake mailbox and the post-quantum secret enters the root key).
                self.send_content(id, &Content::Receipt { ids: Vec::new() }, None)?;
                self.refresh_subscriptions()?;
                self.flush_due(None)?;
                Ok(())
            }
            Ok(InitOutcome::Existing(opened)) => {
                let hid = opened.handshake_id().0;
                let found: Option<(i64, Vec<u8>)> = self
                    .store
                    .conn()
                    .query_row(
                        "SELECT id, session FROM contacts WHERE handshake_id = ?1",
                        [&hid[..]],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let Some((id, bytes)) = found else {
                    return Ok(());
                };
                let mut session = Session::from_bytes(&bytes)?;
                match session.handle_init(&opened, &mut self.rng) {
                    Ok(payload) => self.commit_payload(id, session, &payload, None),
                    Err(e) => {
                        tracing::debug!(error = %e, "repeated handshake envelope dropped");
                        Ok(())
                    }
                }
            }
        }
    }

    /// Commits a decrypted payload and the session that produced it in one transaction,
    /// then does what follows (events, receipts).
    fn commit_payload(
        &mut self,
        contact_id: i64,
        mut session: Session,
        payload_bytes: &[u8],
        _unused: Option<()>,
    ) -> Result<()> {
        let now = self.now();
        let mut receipt_for = None;
        let mut received = None;
        let mut delivered = Vec::new();
        let payload = Payload::decode(payload_bytes);
        if self.opts.crash_at == Some(CrashPoint::BeforeCommit) {
            std::process::abort();
        }
        let tx = self.store.conn().transaction()?;
        match payload {
            Ok(Payload::MailboxMove(mv)) => session.apply_peer_mailbox_move(&mv),
            Ok(Payload::Fragment(frag)) => {
                if let Some(content) = store_fragment(&tx, contact_id, &frag)? {
                    match Content::decode(&content) {
                        Ok(Content::Text {
                            sent_at,
                            disappear_secs,
                            body,
                        }) => {
                            let timer = (disappear_secs > 0).then_some(i64::from(disappear_secs));
                            let inserted = tx.execute(
                                "INSERT OR IGNORE INTO messages(contact_id, outgoing, msg_id, body, sent_at, received_at, state, expires_at)
                                 VALUES (?1, 0, ?2, ?3, ?4, ?5, 'received', ?6)",
                                params![
                                    contact_id,
                                    frag.message_id as i64,
                                    body,
                                    sent_at as i64,
                                    now as i64,
                                    timer.map(|t| now as i64 + t)
                                ],
                            )?;
                            // The peer's timer is the conversation's timer.
                            tx.execute(
                                "UPDATE contacts SET disappear_secs = ?1 WHERE id = ?2",
                                params![timer, contact_id],
                            )?;
                            if inserted > 0 {
                                received = Some(tx.last_insert_rowid());
                                receipt_for = Some(frag.message_id);
                            }
                        }
                        Ok(Content::Receipt { ids }) => {
                            for id in ids {
                                let row: Option<i64> = tx
                                    .query_row(
                                        "SELECT id FROM messages WHERE contact_id = ?1 AND outgoing = 1 AND msg_id = ?2 AND state != 'delivered'",
                                        params![contact_id, id as i64],
                                        |r| r.get(0),
                                    )
                                    .optional()?;
                                if let Some(row) = row {
                                    tx.execute(
                                        "UPDATE messages SET state = 'delivered' WHERE id = ?1",
                                        [row],
                                    )?;
                                    delivered.push(row);
                                }
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "content dropped"),
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "payload dropped"),
        }
        tx.execute(
            "UPDATE contacts SET session = ?1 WHERE id = ?2",
            params![session.to_bytes().as_slice(), contact_id],
        )?;
        tx.commit()?;

        for row in delivered {
            self.emit_delivery(row, Delivery::Delivered)?;
        }
        if let Some(row) = received {
            let msgs = self.query_messages("WHERE m.id = ?1", params![row])?;
            for m in msgs {
                let _ = self.events.send(Event::Message(m));
            }
        }
        if let Some(msg_id) = receipt_for {
            let receipts: i64 = self.store.conn().query_row(
                "SELECT receipts FROM contacts WHERE id = ?1",
                [contact_id],
                |r| r.get(0),
            )?;
            if receipts != 0 {
                self.send_content(contact_id, &Content::Receipt { ids: vec![msg_id] }, None)?;
                self.flush_due(None)?;
            }
        }
        Ok(())
    }

    fn fresh_contact_name(&mut self) -> Result<String> {
        for n in 1.. {
            let name = format!("contact-{n}");
            if self.contact_id(&name)?.is_none() {
                return Ok(name);
            }
        }
        Err(Error::DuplicateContact)
    }

    fn checkpoint(&mut self) {
        let _ = self
            .store
            .conn()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
    }

    /// Deletes expired disappearing messages. secure_delete overwrites them; the checkpoint
    /// moves that into the main database file.
    fn sweep_expired(&mut self) -> Result<()> {
        let now = self.now();
        let gone = self.store.conn().execute(
            "DELETE FROM messages WHERE expires_at IS NOT NULL AND expires_at <= ?1",
            [now as i64],
        )?;
        if gone > 0 {
            self.checkpoint();
        }
        Ok(())
    }

    fn on_tick(&mut self) -> Result<()> {
        self.sweep_expired()?;
        if self.subscribed_epoch != Some(epoch_of(self.now())) {
            self.refresh_subscriptions()?;
        }
        self.flush_due(None)?;
        Ok(())
    }
}

fn validate_name(name: &str) -> Result<()> {
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

fn kind_str(kind: InviteKind) -> &'static str {
    match kind {
        InviteKind::OneTime => "one-time",
        InviteKind::ContactAddress => "address",
    }
}

fn insert_contact(
    tx: &Transaction<'_>,
    name: &str,
    session: &Session,
    invite_id: Option<i64>,
    now: u64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO contacts(name, handshake_id, session, invite_id, last_epoch, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            name,
            &session.handshake_id().0[..],
            session.to_bytes().as_slice(),
            invite_id,
            epoch_of(now) as i64,
            now as i64
        ],
    )?;
    Ok(())
}

/// Stores one fragment; returns the joined content once all pieces are in.
fn store_fragment(
    tx: &Transaction<'_>,
    contact_id: i64,
    frag: &payload::Fragment,
) -> Result<Option<Vec<u8>>> {
    if frag.count == 1 {
        return Ok(Some(frag.data.clone()));
    }
    tx.execute(
        "INSERT OR IGNORE INTO fragments(contact_id, msg_id, idx, count, data) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            contact_id,
            frag.message_id as i64,
            i64::from(frag.index),
            i64::from(frag.count),
            frag.data
        ],
    )?;
    let mut stmt = tx.prepare(
        "SELECT idx, count, data FROM fragments WHERE contact_id = ?1 AND msg_id = ?2 ORDER BY idx",
    )?;
    let parts: Vec<(i64, i64, Vec<u8>)> = stmt
        .query_map(params![contact_id, frag.message_id as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<std::result::Result<_, _>>()?;
    let complete = parts.len() == usize::from(frag.count)
        && parts
            .iter()
            .enumerate()
            .all(|(i, (idx, count, _))| *idx == i as i64 && *count == i64::from(frag.count));
    if !complete {
        return Ok(None);
    }
    tx.execute(
        "DELETE FROM fragments WHERE contact_id = ?1 AND msg_id = ?2",
        params![contact_id, frag.message_id as i64],
    )?;
    Ok(Some(parts.into_iter().flat_map(|(_, _, d)| d).collect()))
}
