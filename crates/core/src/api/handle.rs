//! The [`Handle`] front ends hold: it sends [`Command`]s to the driver task and awaits each
//! one's [`Response`], typed per command. It does no I/O of its own.

use tokio::sync::{mpsc, oneshot};

use super::{Command, ContactInfo, InviteInfo, MessageInfo, Response, SafetyInfo, Status};
use crate::error::{Error, Result};
use hush_crypto::InviteKind;

/// A request to the driver: a command and where its answer goes, or a shutdown.
pub(crate) enum Request {
    Command(Command, oneshot::Sender<Result<Response>>),
    Shutdown(oneshot::Sender<()>),
}

/// A cheap, clonable handle to a running engine.
#[derive(Clone, Debug)]
pub struct Handle {
    pub(crate) tx: mpsc::Sender<Request>,
    pub(crate) network: crate::profile::Network,
    pub(crate) routing: crate::profile::Routing,
    pub(crate) bind: Option<std::net::IpAddr>,
}

/// Sends a command and unwraps the response variant it is answered with.
macro_rules! call {
    ($self:ident, $cmd:expr, $variant:ident $(($v:ident))? => $out:expr) => {{
        match $self.command($cmd).await? {
            Response::$variant $(($v))? => Ok($out),
            other => Err(Error::UnexpectedResponse(response_name(&other))),
        }
    }};
}

fn response_name(r: &Response) -> &'static str {
    match r {
        Response::Done => "Done",
        Response::Link(_) => "Link",
        Response::Contacts(_) => "Contacts",
        Response::MessageId(_) => "MessageId",
        Response::Synced(_) => "Synced",
        Response::Count(_) => "Count",
        Response::Messages(_) => "Messages",
        Response::Safety(_) => "Safety",
        Response::Status(_) => "Status",
        Response::Invites(_) => "Invites",
        Response::File(_) => "File",
        Response::Files(_) => "Files",
    }
}

impl Handle {
    /// Sends a file command and awaits its response.
    ///
    /// # Errors
    /// As the command's.
    pub async fn file(&self, cmd: super::FileCommand) -> Result<Response> {
        self.command(Command::Files(cmd)).await
    }

    /// How this engine reaches relays (for a front end's own relay check).
    pub fn network(&self) -> crate::profile::Network {
        self.network
    }

    /// How requests to relays other than the profile's own travel (deposits, and a file's
    /// chunk requests).
    pub fn routing(&self) -> crate::profile::Routing {
        self.routing
    }

    /// The local address this engine's connections leave from, if the profile sets one.
    pub fn bind(&self) -> Option<std::net::IpAddr> {
        self.bind
    }

    /// Sends any command and awaits its response.
    pub async fn command(&self, cmd: Command) -> Result<Response> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::Command(cmd, tx))
            .await
            .map_err(|_| Error::EngineStopped)?;
        rx.await.map_err(|_| Error::EngineStopped)?
    }

    /// Makes an invite and returns its link.
    pub async fn create_invite(&self, kind: InviteKind, name: Option<String>) -> Result<String> {
        self.create_invite_with(kind, name, None).await
    }
    /// As [`Self::create_invite`], with the stamp difficulty of its drop (`None`: the
    /// default).
    pub async fn create_invite_with(
        &self,
        kind: InviteKind,
        name: Option<String>,
        stamp_bits: Option<u8>,
    ) -> Result<String> {
        let cmd = Command::CreateInvite {
            kind,
            name,
            stamp_bits,
        };
        call!(self, cmd, Link(l) => l.0)
    }
    /// Accepts an invite link; the new contact gets `name`. Sends the handshake at once.
    pub async fn accept(&self, link: &str, name: &str) -> Result<()> {
        let cmd = Command::Accept {
            link: link.to_string(),
            name: name.to_string(),
        };
        call!(self, cmd, Done => ())
    }
    /// All contacts.
    pub async fn contacts(&self) -> Result<Vec<ContactInfo>> {
        call!(self, Command::Contacts, Contacts(c) => c)
    }
    /// Queues a text message; returns its local id.
    pub async fn send(&self, contact: &str, text: &str) -> Result<i64> {
        let cmd = Command::Send {
            contact: contact.to_string(),
            text: text.to_string(),
        };
        call!(self, cmd, MessageId(id) => id)
    }
    /// Fetches every mailbox epoch since the last one seen; `false` if a relay failed.
    pub async fn sync(&self) -> Result<bool> {
        call!(self, Command::Sync, Synced(ok) => ok)
    }
    /// Tries every due outbox entry once; returns how many remain.
    pub async fn flush(&self) -> Result<u64> {
        call!(self, Command::Flush, Count(n) => n)
    }
    /// Received messages not shown yet, marked shown.
    pub async fn take_unshown(&self) -> Result<Vec<MessageInfo>> {
        call!(self, Command::TakeUnshown, Messages(m) => m)
    }
    /// Envelopes to a contact still waiting in the outbox (0: all on their relay).
    pub async fn outbox_for(&self, contact: &str) -> Result<u64> {
        let cmd = Command::OutboxFor {
            contact: contact.to_string(),
        };
        call!(self, cmd, Count(n) => n)
    }
    /// Marks every received message of a contact shown (its conversation is open).
    pub async fn mark_read(&self, contact: &str) -> Result<()> {
        let cmd = Command::MarkRead {
            contact: contact.to_string(),
        };
        call!(self, cmd, Done => ())
    }
    /// The last `limit` messages with a contact, oldest first.
    pub async fn messages(&self, contact: &str, limit: usize) -> Result<Vec<MessageInfo>> {
        let cmd = Command::Messages {
            contact: contact.to_string(),
            limit,
        };
        call!(self, cmd, Messages(m) => m)
    }
    /// Safety number of a contact.
    pub async fn safety(&self, contact: &str) -> Result<SafetyInfo> {
        let cmd = Command::Safety {
            contact: contact.to_string(),
        };
        call!(self, cmd, Safety(s) => s)
    }
    /// Marks a contact verified or not.
    pub async fn set_verified(&self, contact: &str, verified: bool) -> Result<()> {
        let cmd = Command::SetVerified {
            contact: contact.to_string(),
            verified,
        };
        call!(self, cmd, Done => ())
    }
    /// Sets the disappearing timer of a conversation (`None` = off).
    pub async fn set_disappear(&self, contact: &str, secs: Option<u64>) -> Result<()> {
        let cmd = Command::SetDisappear {
            contact: contact.to_string(),
            secs,
        };
        call!(self, cmd, Done => ())
    }
    /// Turns delivery receipts to a contact on or off.
    pub async fn set_receipts(&self, contact: &str, on: bool) -> Result<()> {
        let cmd = Command::SetReceipts {
            contact: contact.to_string(),
            on,
        };
        call!(self, cmd, Done => ())
    }
    /// Renames a contact.
    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let cmd = Command::Rename {
            from: from.to_string(),
            to: to.to_string(),
        };
        call!(self, cmd, Done => ())
    }
    /// Deletes the local history with a contact; returns how many messages.
    pub async fn delete_messages(&self, contact: &str) -> Result<u64> {
        let cmd = Command::DeleteMessages {
            contact: contact.to_string(),
        };
        call!(self, cmd, Count(n) => n)
    }
    /// Sets the relay new invites point to.
    pub async fn set_relay(&self, address: &str) -> Result<()> {
        let cmd = Command::SetRelay {
            address: address.to_string(),
        };
        call!(self, cmd, Done => ())
    }
    /// Connection and outbox status.
    pub async fn status(&self) -> Result<Status> {
        call!(self, Command::Status, Status(s) => s)
    }
    /// Moves where a contact deposits to us (see [`Command::MoveMailbox`]).
    pub async fn move_mailbox(&self, contact: &str, relay: Option<&str>) -> Result<()> {
        let cmd = Command::MoveMailbox {
            contact: contact.to_string(),
            relay: relay.map(str::to_string),
        };
        call!(self, cmd, Done => ())
    }
    /// Deletes a contact, its history and its mailboxes.
    pub async fn delete_contact(&self, contact: &str) -> Result<()> {
        let cmd = Command::DeleteContact {
            contact: contact.to_string(),
        };
        call!(self, cmd, Done => ())
    }
    /// Blocks or unblocks a contact.
    pub async fn set_blocked(&self, contact: &str, blocked: bool) -> Result<()> {
        let cmd = Command::SetBlocked {
            contact: contact.to_string(),
            blocked,
        };
        call!(self, cmd, Done => ())
    }
    /// The invites still answered, oldest first.
    pub async fn invites(&self) -> Result<Vec<InviteInfo>> {
        call!(self, Command::Invites, Invites(i) => i)
    }
    /// Turns high-risk traffic mode on or off (see [`Command::SetHighRisk`]).
    pub async fn set_high_risk(&self, on: bool) -> Result<()> {
        call!(self, Command::SetHighRisk { on }, Done => ())
    }
    /// Turns per-contact isolation on or off for normal mode (see
    /// [`Command::SetIsolation`]).
    pub async fn set_isolation(&self, on: bool) -> Result<()> {
        call!(self, Command::SetIsolation { on }, Done => ())
    }
    /// Stops answering an invite.
    pub async fn revoke_invite(&self, id: i64) -> Result<()> {
        call!(self, Command::RevokeInvite { id }, Done => ())
    }
    /// Stops the engine (and the local relay it serves, if any).
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Request::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}
