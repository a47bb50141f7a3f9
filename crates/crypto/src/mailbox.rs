//! Mailbox pseudonyms: where envelopes are deposited and fetched.
//!
//! For each direction of a relationship and each epoch (default one hour),
//! `fetch_secret = HKDF(root, "hush/v1/mailbox" || direction || epoch)` and
//! `mailbox_id = SHA-256(fetch_secret)`. Senders deposit to the id; only a holder of the
//! fetch secret can read or delete. Ids of different epochs or directions are unlinkable
//! without the root. This module derives names; it never talks to a relay. The name types
//! are the relay's own, [`FetchSecret`] and [`MailboxId`] of hush-proto.

pub use hush_proto::{FetchSecret, MailboxId};

use crate::primitives::{INFO_MAILBOX, Key32, hkdf};

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

/// Derives the fetch secret of `root` for `direction` in `epoch`.
pub(crate) fn fetch_secret(root: &Key32, direction: Direction, epoch: u64) -> FetchSecret {
    let okm = hkdf::<32>(
        None,
        root.as_bytes(),
        &[INFO_MAILBOX, &[direction.byte()], &epoch.to_be_bytes()],
    );
    FetchSecret::from_bytes(*okm)
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
