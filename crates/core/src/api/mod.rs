//! The engine's public API: the [`Handle`] front ends hold, the [`Command`]s it sends, the
//! [`Event`]s the engine reports on its own, and the info types both carry.
//!
//! Every type here that can hold a message text, a contact name, an invite link or a relay
//! address writes its `Debug` by hand and leaves those out, so a stray `{:?}` in a front
//! end's log cannot leak them. Nothing here does I/O: [`Handle`] only sends commands to the
//! driver task (see `driver`) and awaits its reply.

use hush_crypto::InviteKind;

mod handle;

pub use handle::Handle;
pub(crate) use handle::Request;

/// A contact as front ends see it.
#[derive(Clone, PartialEq, Eq)]
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
    /// When the last message with this contact was sent or received (our clock, Unix
    /// seconds); `None` without messages. Contacts are listed by it, most recent first.
    pub last_activity: Option<u64>,
}

impl std::fmt::Debug for ContactInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            name: _,
            verified,
            disappear_secs,
            unread,
            pending,
            last_activity: _,
        } = self;
        f.debug_struct("ContactInfo")
            .field("verified", verified)
            .field("disappear_secs", disappear_secs)
            .field("unread", unread)
            .field("pending", pending)
            .finish_non_exhaustive()
    }
}

/// Where a message is on its way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    /// In the local outbox, not yet on a relay.
    Queued,
    /// Durably stored on the relay.
    OnRelay,
    /// The peer's device confirmed receipt.
    Delivered,
    /// An incoming message.
    Received,
}

impl DeliveryState {
    /// The state's name: queued, on-relay, delivered or received.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::OnRelay => "on-relay",
            Self::Delivered => "delivered",
            Self::Received => "received",
        }
    }

    /// The state named by [`DeliveryState::as_str`].
    pub fn from_stored(s: &str) -> Option<Self> {
        [Self::Queued, Self::OnRelay, Self::Delivered, Self::Received]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// A message as front ends see it.
#[derive(Clone, PartialEq, Eq)]
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
    pub state: DeliveryState,
    /// When it disappears, Unix seconds.
    pub expires_at: Option<u64>,
}

impl std::fmt::Debug for MessageInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            id,
            contact: _,
            outgoing,
            body,
            sent_at,
            state,
            expires_at,
        } = self;
        f.debug_struct("MessageInfo")
            .field("id", id)
            .field("outgoing", outgoing)
            .field("body_len", &body.len())
            .field("sent_at", sent_at)
            .field("state", state)
            .field("expires_at", expires_at)
            .finish_non_exhaustive()
    }
}

/// An invite this profile made and still answers (a one-time link not used yet, or a
/// contact address), as front ends see it.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteInfo {
    /// Its id, for [`Command::RevokeInvite`].
    pub id: i64,
    /// One-time invite or contact address.
    pub kind: InviteKind,
    /// The name its contact gets (one-time invites made with a name).
    pub name: Option<String>,
    /// When it was made, Unix seconds.
    pub created: u64,
    /// Relationships made through it.
    pub uses: u64,
}

impl InviteInfo {
    /// When a one-time invite stops being answered if nobody used it, Unix seconds;
    /// `None` for a contact address, which is answered until revoked.
    pub fn expires(&self) -> Option<u64> {
        (self.kind == InviteKind::OneTime)
            .then(|| self.created.saturating_add(ONE_TIME_INVITE_LIFETIME_SECS))
    }
}

/// The most stamp work an invite made here may ask of a source: the 28 bits hush's own
/// client pays at most per deposit (docs/PROTOCOL.md, "Drops").
pub const MAX_INVITE_STAMP_BITS: u8 = 28;
/// How long a one-time invite nobody used is answered: 7 days, the relays' default expiry.
pub const ONE_TIME_INVITE_LIFETIME_SECS: u64 = 7 * 24 * 3600;

impl std::fmt::Debug for InviteInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            id,
            kind,
            name: _,
            created,
            uses,
        } = self;
        f.debug_struct("InviteInfo")
            .field("id", id)
            .field("kind", kind)
            .field("created", created)
            .field("uses", uses)
            .finish_non_exhaustive()
    }
}

/// A relationship's safety number.
#[derive(Clone, PartialEq, Eq)]
pub struct SafetyInfo {
    /// Twelve groups of five digits.
    pub digits: String,
    /// The string to show as a QR code.
    pub qr: String,
    /// Marked verified.
    pub verified: bool,
}

impl std::fmt::Debug for SafetyInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            digits: _,
            qr: _,
            verified,
        } = self;
        f.debug_struct("SafetyInfo")
            .field("verified", verified)
            .finish_non_exhaustive()
    }
}

/// What the engine reports on its own.
#[derive(Clone)]
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
        state: DeliveryState,
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
    /// Private routing's state changed: deposits to other relays wait for this reason (a
    /// stable name, as [`Status::private_route`]), or, `None`, they go again.
    PrivateRoute {
        /// Why they wait.
        waiting: Option<String>,
    },
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Message(m) => f.debug_tuple("Message").field(m).finish(),
            Self::DeliveryChanged {
                contact: _,
                id,
                state,
            } => f
                .debug_struct("DeliveryChanged")
                .field("id", id)
                .field("state", state)
                .finish_non_exhaustive(),
            Self::ContactAdded { name: _ } => f.write_str("ContactAdded"),
            Self::Relay { up } => f.debug_struct("Relay").field("up", up).finish(),
            Self::PrivateRoute { waiting } => f
                .debug_struct("PrivateRoute")
                .field("waiting", waiting)
                .finish(),
        }
    }
}

/// Engine status.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// The relay new invites point to (`hush://` address), if there is one.
    pub home_relay: Option<String>,
    /// That relay is the built-in one this device serves on loopback.
    pub home_relay_local: bool,
    /// Relays connected.
    pub relays_up: usize,
    /// Relays in use.
    pub relays: usize,
    /// Envelopes waiting in the outbox.
    pub outbox: u64,
    /// Relays whose last connection attempt met a certificate that does not match the pin
    /// of their address (interception, or a rotated key).
    pub certificate_mismatch: usize,
    /// Relays whose last connection attempt failed at the profile's SOCKS5 proxy.
    pub proxy_failed: usize,
    /// High-risk traffic mode is on: deposits and fetches only at random slots, with cover
    /// envelopes in slots nothing waits for (`Command::SetHighRisk`).
    pub high_risk: bool,
    /// What high-risk mode costs this profile (whether it is on or not, so a front end can
    /// say so before it is turned on).
    pub high_risk_cost: crate::engine::TrafficCost,
    /// Per-contact isolation is in effect: the profile's setting is on, or high-risk mode
    /// is (which always isolates).
    pub isolation: bool,
    /// The profile's isolation setting (`Command::SetIsolation`), what normal mode follows.
    pub isolation_setting: bool,
    /// Why deposits to another relay wait under private routing (a stable name such as
    /// `own_relay_unreachable`, `forward_key_refused`, `forwarding_disabled`), if they do.
    pub private_route: Option<String>,
}

impl std::fmt::Debug for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            home_relay: _,
            home_relay_local,
            relays_up,
            relays,
            outbox,
            certificate_mismatch,
            proxy_failed,
            high_risk,
            high_risk_cost,
            isolation,
            isolation_setting,
            private_route,
        } = self;
        f.debug_struct("Status")
            .field("high_risk", high_risk)
            .field("high_risk_cost", high_risk_cost)
            .field("isolation", isolation)
            .field("isolation_setting", isolation_setting)
            .field("home_relay_local", home_relay_local)
            .field("relays_up", relays_up)
            .field("relays", relays)
            .field("outbox", outbox)
            .field("certificate_mismatch", certificate_mismatch)
            .field("proxy_failed", proxy_failed)
            .field("private_route", private_route)
            .finish_non_exhaustive()
    }
}

/// What a front end asks of the engine. Each is answered by one [`Response`].
#[derive(Clone, PartialEq, Eq)]
pub enum Command {
    /// Make an invite; answered by [`Response::Link`]. `name` names the contact a one-time
    /// invite will create.
    CreateInvite {
        /// One-time or contact address.
        kind: InviteKind,
        /// Name of the contact it creates (one-time invites).
        name: Option<String>,
        /// The stamp difficulty of its drop (bits of work per first-contact envelope,
        /// at most [`MAX_INVITE_STAMP_BITS`]); `None`: [`hush_crypto::DEFAULT_DROP_BITS`].
        stamp_bits: Option<u8>,
    },
    /// Accept an invite link and send the handshake; [`Response::Done`].
    Accept {
        /// The `hush:` link.
        link: String,
        /// Name of the new contact.
        name: String,
    },
    /// All contacts; [`Response::Contacts`].
    Contacts,
    /// Queue a text message; [`Response::MessageId`].
    Send {
        /// Contact name.
        contact: String,
        /// The text.
        text: String,
    },
    /// Fetch every mailbox epoch since the last one seen; [`Response::Synced`].
    Sync,
    /// Try every due outbox entry once; [`Response::Count`] of what remains.
    Flush,
    /// Received messages not shown yet, marked shown; [`Response::Messages`].
    TakeUnshown,
    /// Mark a contact's received messages shown; [`Response::Done`].
    MarkRead {
        /// Contact name.
        contact: String,
    },
    /// Envelopes to a contact still in the outbox; [`Response::Count`].
    OutboxFor {
        /// Contact name.
        contact: String,
    },
    /// The last `limit` messages with a contact, oldest first; [`Response::Messages`].
    Messages {
        /// Contact name.
        contact: String,
        /// Most messages returned.
        limit: usize,
    },
    /// A contact's safety number; [`Response::Safety`].
    Safety {
        /// Contact name.
        contact: String,
    },
    /// Mark a contact verified or not; [`Response::Done`].
    SetVerified {
        /// Contact name.
        contact: String,
        /// Verified.
        verified: bool,
    },
    /// Set a conversation's disappearing timer; [`Response::Done`].
    SetDisappear {
        /// Contact name.
        contact: String,
        /// Seconds, `None` = off.
        secs: Option<u64>,
    },
    /// Turn delivery receipts to a contact on or off; [`Response::Done`].
    SetReceipts {
        /// Contact name.
        contact: String,
        /// Send receipts.
        on: bool,
    },
    /// Rename a contact; [`Response::Done`].
    Rename {
        /// Current name.
        from: String,
        /// New name.
        to: String,
    },
    /// Delete the local history with a contact; [`Response::Count`] of messages.
    DeleteMessages {
        /// Contact name.
        contact: String,
    },
    /// Set the relay new invites point to; [`Response::Done`].
    SetRelay {
        /// `hush://` address.
        address: String,
    },
    /// Connection and outbox status; [`Response::Status`].
    Status,
    /// Delete a contact: its relationship, history, queued envelopes and mailboxes (no
    /// longer fetched); [`Response::Done`].
    DeleteContact {
        /// Contact name.
        contact: String,
    },
    /// Block or unblock a contact: a blocked contact stays in the list, what it sends is
    /// dropped unread and unacknowledged by receipts, and nothing can be sent to it;
    /// [`Response::Done`].
    SetBlocked {
        /// Contact name.
        contact: String,
        /// Blocked.
        blocked: bool,
    },
    /// The invites still answered; [`Response::Invites`].
    Invites,
    /// Stop answering an invite (its mailboxes are no longer fetched); [`Response::Done`].
    RevokeInvite {
        /// [`InviteInfo::id`].
        id: i64,
    },
    /// Move where a contact deposits to us (a fresh mailbox root, optionally on another
    /// relay); [`Response::Done`].
    MoveMailbox {
        /// Contact name.
        contact: String,
        /// The new relay (`hush://` address); `None`: the same relay.
        relay: Option<String>,
    },
    /// Turn high-risk traffic mode on or off for this profile (kept across runs);
    /// [`Response::Done`]. While it is on, what is sent waits for a deposit slot (it shows
    /// [`DeliveryState::Queued`] meanwhile) and `Sync` waits for the next fetch slot.
    SetHighRisk {
        /// On.
        on: bool,
    },
    /// Turn per-contact isolation on or off for this profile's normal mode (kept across
    /// runs); [`Response::Done`]. On, each relationship's fetches, acknowledgements and
    /// subscriptions, and its deposits, travel on connections of their own (one per window
    /// of two epochs). High-risk mode isolates whatever this says: turning it off then is
    /// stored for normal mode and changes nothing until high-risk mode is off.
    SetIsolation {
        /// On.
        on: bool,
    },
    /// File transfers ([`crate::files`]); each is answered as [`FileCommand`] says.
    Files(FileCommand),
}

/// What a front end or the file driver asks of the engine about file transfers. The
/// engine owns the store: progress is persisted here, chunks move in [`crate::files`].
#[derive(Clone, PartialEq, Eq)]
pub enum FileCommand {
    /// Record a file to send to `contact` (its size and SHA-256 measured by the caller);
    /// draws the file's secret; [`Response::File`] in state `uploading`.
    Offer {
        /// Contact name.
        contact: String,
        /// The source file (UTF-8 path).
        path: String,
        /// The name the recipient sees (1..=255 bytes).
        name: String,
        /// Size in bytes.
        size: u64,
        /// SHA-256 of the whole file.
        digest: [u8; 32],
        /// Modification time of the source (seconds), checked again on resume.
        mtime: u64,
    },
    /// Every chunk of file `id` is on the relay: send its descriptor in the conversation;
    /// [`Response::MessageId`].
    Uploaded {
        /// File id.
        id: i64,
    },
    /// Chunks `0..prefix` of file `id` are done; [`Response::Done`].
    Progress {
        /// File id.
        id: i64,
        /// Chunks done from the start.
        prefix: u32,
    },
    /// Accept received file `id` into `dir`, refusing it if larger than `limit` bytes
    /// (`None`: the profile's limit, [`FileCommand::SetLimit`]); [`Response::File`] in state
    /// `downloading`.
    Accept {
        /// File id.
        id: i64,
        /// The directory to save it in.
        dir: String,
        /// This command's size limit, over the profile's.
        limit: Option<u64>,
    },
    /// The profile's limit on received files: `Some(bytes)` sets it (1 byte to 64 GiB),
    /// `None` goes back to the default (2 GiB); [`Response::Count`] with the limit now.
    SetLimit {
        /// The new limit.
        bytes: Option<u64>,
    },
    /// The profile's limit on received files; [`Response::Count`].
    Limit,
    /// A transfer ended: saved at `path`, or failed with `error`; [`Response::Done`].
    Finish {
        /// File id.
        id: i64,
        /// Receiver: where the verified file was saved.
        path: Option<String>,
        /// Why it failed.
        error: Option<crate::files::FileError>,
    },
    /// The relay's chunks of received file `id` are deleted; [`Response::Done`].
    Cleaned {
        /// File id.
        id: i64,
    },
    /// One transfer; [`Response::File`].
    Get {
        /// File id.
        id: i64,
    },
    /// Transfers, oldest first, of one contact or all; [`Response::Files`].
    List {
        /// Contact name.
        contact: Option<String>,
    },
}

impl std::fmt::Debug for FileCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Paths, names and digests stay out.
        f.write_str(match self {
            Self::Offer { .. } => "Offer",
            Self::Uploaded { .. } => "Uploaded",
            Self::Progress { .. } => "Progress",
            Self::Accept { .. } => "Accept",
            Self::SetLimit { .. } => "SetLimit",
            Self::Limit => "Limit",
            Self::Finish { .. } => "Finish",
            Self::Cleaned { .. } => "Cleaned",
            Self::Get { .. } => "Get",
            Self::List { .. } => "List",
        })
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names, texts, links and addresses stay out: the variant is enough to debug flow.
        let name = match self {
            Self::CreateInvite { .. } => "CreateInvite",
            Self::Accept { .. } => "Accept",
            Self::Contacts => "Contacts",
            Self::Send { .. } => "Send",
            Self::Sync => "Sync",
            Self::Flush => "Flush",
            Self::TakeUnshown => "TakeUnshown",
            Self::MarkRead { .. } => "MarkRead",
            Self::OutboxFor { .. } => "OutboxFor",
            Self::Messages { .. } => "Messages",
            Self::Safety { .. } => "Safety",
            Self::SetVerified { .. } => "SetVerified",
            Self::SetDisappear { .. } => "SetDisappear",
            Self::SetReceipts { .. } => "SetReceipts",
            Self::Rename { .. } => "Rename",
            Self::DeleteMessages { .. } => "DeleteMessages",
            Self::SetRelay { .. } => "SetRelay",
            Self::Status => "Status",
            Self::MoveMailbox { .. } => "MoveMailbox",
            Self::DeleteContact { .. } => "DeleteContact",
            Self::SetBlocked { .. } => "SetBlocked",
            Self::Invites => "Invites",
            Self::RevokeInvite { .. } => "RevokeInvite",
            Self::SetHighRisk { .. } => "SetHighRisk",
            Self::SetIsolation { .. } => "SetIsolation",
            Self::Files(_) => "Files",
        };
        f.write_str(name)
    }
}

/// The engine's answer to a [`Command`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Done, nothing to report.
    Done,
    /// An invite link.
    Link(InviteLink),
    /// Contacts by name.
    Contacts(Vec<ContactInfo>),
    /// The local id of a queued message.
    MessageId(i64),
    /// Whether every relay answered the fetch.
    Synced(bool),
    /// A count.
    Count(u64),
    /// Messages, oldest first.
    Messages(Vec<MessageInfo>),
    /// A safety number.
    Safety(SafetyInfo),
    /// Status.
    Status(Status),
    /// Invites still answered, oldest first.
    Invites(Vec<InviteInfo>),
    /// One file transfer.
    File(Box<crate::store::FileInfo>),
    /// File transfers, oldest first.
    Files(Vec<crate::store::FileInfo>),
}

/// An invite link (`hush:...`); `Debug` leaves it out.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteLink(pub String);

impl std::fmt::Debug for InviteLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InviteLink(..)")
    }
}
