//! What travels inside an envelope's encrypted body: a fragment of application content, or
//! a control message of this crate (moving a mailbox).
//!
//! Content longer than one envelope is split by [`fragment`]; joining the pieces again is the
//! client's (it must keep them durably, with the session state that decrypted them: see
//! PROTOCOL.md, client behaviour). The application's own content types (text, receipts)
//! live inside fragments and are the client's business too; this module never interprets
//! them.

use crate::Error;
use crate::primitives::Key32;
use crate::wire::{Put, Reader, Relay, unusable};

const KIND_FRAGMENT: u8 = 1;
const KIND_MAILBOX_MOVE: u8 = 2;
/// Bytes a fragment adds before its data: kind, message id, index, count.
pub const FRAGMENT_OVERHEAD: usize = 1 + 8 + 2 + 2;
/// Most fragments one content may be split into (about 3.9 MiB of content).
pub const MAX_FRAGMENTS: u16 = 1024;

/// A decoded payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// A piece of application content.
    Fragment(Fragment),
    /// The peer moved its receive direction: deposit to this root from now on.
    MailboxMove(MailboxMove),
}

/// Piece `index` of `count` of the content named `message_id`.
#[derive(Clone, PartialEq, Eq)]
pub struct Fragment {
    /// Sender-chosen id, unique per sender and relationship.
    pub message_id: u64,
    /// Position, from 0.
    pub index: u16,
    /// Number of pieces, at least 1.
    pub count: u16,
    /// The piece.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Fragment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Content never reaches debug output.
        f.debug_struct("Fragment")
            .field("index", &self.index)
            .field("count", &self.count)
            .field("len", &self.data.len())
            .finish_non_exhaustive()
    }
}

/// Control message: a new mailbox root (secret) and relay for one direction.
#[derive(Clone, PartialEq, Eq)]
pub struct MailboxMove {
    pub(crate) root: Key32,
    pub(crate) relay: Relay,
}

impl std::fmt::Debug for MailboxMove {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MailboxMove(..)")
    }
}

impl MailboxMove {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80);
        out.put_u8(KIND_MAILBOX_MOVE);
        out.put(self.root.as_bytes());
        self.relay.encode(&mut out);
        out
    }
}

impl Payload {
    /// Parses a decrypted payload; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        const E: Error = Error::MalformedPayload("truncated");
        match r.u8().ok_or(E)? {
            KIND_FRAGMENT => {
                let message_id = r.u64().ok_or(E)?;
                let index = r.u16().ok_or(E)?;
                let count = r.u16().ok_or(E)?;
                if count == 0 || count > MAX_FRAGMENTS || index >= count {
                    return Err(Error::MalformedPayload("bad fragment index or count"));
                }
                Ok(Self::Fragment(Fragment {
                    message_id,
                    index,
                    count,
                    data: r.rest().to_vec(),
                }))
            }
            KIND_MAILBOX_MOVE => {
                let root = Key32(r.array().ok_or(E)?);
                let relay = r.relay().map_err(|e| match e {
                    hush_proto::Error::AddressTruncated => E,
                    e => unusable(e),
                })?;
                if !r.is_empty() {
                    return Err(Error::MalformedPayload("trailing bytes"));
                }
                Ok(Self::MailboxMove(MailboxMove { root, relay }))
            }
            _ => Err(Error::MalformedPayload("unknown payload kind")),
        }
    }
}

impl Fragment {
    /// Encodes this fragment as a payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FRAGMENT_OVERHEAD + self.data.len());
        out.put_u8(KIND_FRAGMENT);
        out.put_u64(self.message_id);
        out.put_u16(self.index);
        out.put_u16(self.count);
        out.put(&self.data);
        out
    }
}

/// Splits `content` into encoded fragment payloads of at most `capacity` bytes each.
pub fn fragment(message_id: u64, content: &[u8], capacity: usize) -> Result<Vec<Vec<u8>>, Error> {
    let per = capacity.saturating_sub(FRAGMENT_OVERHEAD);
    if per == 0 {
        return Err(Error::PayloadTooLong {
            len: content.len(),
            capacity,
        });
    }
    let count = content.len().div_ceil(per).max(1);
    let count = u16::try_from(count)
        .ok()
        .filter(|c| *c <= MAX_FRAGMENTS)
        .ok_or(Error::PayloadTooLong {
            len: content.len(),
            capacity: per * usize::from(MAX_FRAGMENTS),
        })?;
    let mut out = Vec::with_capacity(usize::from(count));
    for index in 0..count {
        let start = usize::from(index) * per;
        let end = (start + per).min(content.len());
        out.push(
            Fragment {
                message_id,
                index,
                count,
                data: content[start..end].to_vec(),
            }
            .encode(),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes pieces and joins them by index.
    fn join(pieces: &[Vec<u8>]) -> Vec<u8> {
        let mut frags: Vec<Fragment> = pieces
            .iter()
            .map(|p| match Payload::decode(p).unwrap() {
                Payload::Fragment(f) => f,
                other => panic!("not a fragment: {other:?}"),
            })
            .collect();
        frags.sort_by_key(|f| f.index);
        let n = frags.len();
        assert!(
            frags
                .iter()
                .enumerate()
                .all(|(i, f)| usize::from(f.index) == i && usize::from(f.count) == n)
        );
        frags.into_iter().flat_map(|f| f.data).collect()
    }

    #[test]
    fn fragments_cover_the_content_in_order() {
        let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut pieces = fragment(7, &content, 1000).unwrap();
        assert_eq!(pieces.len(), 11);
        assert!(pieces.iter().all(|p| p.len() <= 1000));
        pieces.reverse();
        assert_eq!(join(&pieces), content);
    }

    #[test]
    fn empty_content_is_one_fragment() {
        let pieces = fragment(1, &[], 100).unwrap();
        assert_eq!(pieces.len(), 1);
        assert_eq!(join(&pieces), Vec::<u8>::new());
    }

    #[test]
    fn malformed_payloads_are_rejected() {
        assert!(Payload::decode(&[]).is_err());
        assert!(Payload::decode(&[9]).is_err());
        assert!(Payload::decode(&[1, 0, 0]).is_err());
        // index >= count
        let bad = Fragment {
            message_id: 1,
            index: 2,
            count: 2,
            data: vec![],
        }
        .encode();
        assert!(Payload::decode(&bad).is_err());
        assert!(fragment(1, &[0; 10], FRAGMENT_OVERHEAD).is_err());
    }
}
