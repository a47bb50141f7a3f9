//! Mailbox pseudonyms: where envelopes are deposited and fetched.
//!
//! For each direction of a relationship and each epoch (default one hour),
//! `fetch_secret = HKDF(root, "hush/v1/mailbox" || direction || epoch)` and
//! `mailbox_id = SHA-256(fetch_secret)`. Senders deposit to the id; only a holder of the
//! fetch secret can read or delete. Ids of different epochs or directions are unlinkable
//! without the root. This module derives names; it never talks to a relay.

use crate::primitives::{INFO_MAILBOX, Key32, hkdf, sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of an epoch in seconds (one hour).
pub const EPOCH_SECONDS: u64 = 3600;

/// The epoch number of a Unix time in seconds.
pub fn epoch_of(unix_seconds: u64) -> u64 {
    unix_seconds / EPOCH_SECONDS
}

/// Which way a mailbox carries envelopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The invitee's messages before the inviter replied, to the invite's mailbox.
    Handshake,
    /// From the invitee to the inviter.
    ToInviter,
    /// From the inviter to the invitee.
    ToInvitee,
}

impl Direction {
    /// The byte that enters the KDF.
    pub fn byte(self) -> u8 {
        match self {
            Self::Handshake => 0,
            Self::ToInviter => 1,
            Self::ToInvitee => 2,
        }
    }
}

/// A fetch secret: proves the right to read and delete one mailbox. Secret.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct FetchSecret([u8; 32]);

impl FetchSecret {
    /// The secret bytes, to present to a relay.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The mailbox this secret opens: SHA-256 of the secret.
    pub fn mailbox_id(&self) -> MailboxId {
        MailboxId(sha256(&[&self.0]))
    }
}

impl std::fmt::Debug for FetchSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FetchSecret(<redacted>)")
    }
}

/// A mailbox pseudonym: what a sender deposits to. Not secret, but never logged by the relay.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxId(pub [u8; 32]);

impl std::fmt::Debug for MailboxId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MailboxId(..)")
    }
}

/// Derives the fetch secret of `root` for `direction` in `epoch`.
pub(crate) fn fetch_secret(root: &Key32, direction: Direction, epoch: u64) -> FetchSecret {
    let okm = hkdf::<32>(
        None,
        root.as_bytes(),
        &[INFO_MAILBOX, &[direction.byte()], &epoch.to_be_bytes()],
    );
    FetchSecret(*okm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_directions_and_roots_give_distinct_mailboxes() {
        let root = Key32([7u8; 32]);
        let other = Key32([8u8; 32]);
        let a = fetch_secret(&root, Direction::ToInviter, 10).mailbox_id();
        assert_ne!(
            a,
            fetch_secret(&root, Direction::ToInviter, 11).mailbox_id()
        );
        assert_ne!(
            a,
            fetch_secret(&root, Direction::ToInvitee, 10).mailbox_id()
        );
        assert_ne!(
            a,
            fetch_secret(&other, Direction::ToInviter, 10).mailbox_id()
        );
        assert_eq!(
            a,
            fetch_secret(&root, Direction::ToInviter, 10).mailbox_id()
        );
        assert_eq!(epoch_of(3599), 0);
        assert_eq!(epoch_of(3600), 1);
    }
}
