//! What travels inside an envelope's encrypted body: a fragment of application content, or
//! a control message of this crate (moving a mailbox).
//!
//! Content longer than one envelope is split by [`fragment`] and joined by [`Reassembler`].
//! The application's own content types (text, receipts) live inside fragments and are the
//! client's business; this module never interprets them.

use std::collections::BTreeMap;

use crate::Error;
use crate::primitives::Key32;
use crate::wire::{Put, Reader, Relay, unusable};

const KIND_FRAGMENT: u8 = 1;
const KIND_MAILBOX_MOVE: u8 = 2;
/// Bytes a fragment adds before its data: kind, message id, index, count.
pub const FRAGMENT_OVERHEAD: usize = 1 + 8 + 2 + 2;
/// Most fragments one content may be split into (about 3.9 MiB of content).
pub const MAX_FRAGMENTS: u16 = 1024;
/// Most contents the [`Reassembler`] keeps partially received at once.
pub const MAX_PARTIAL: usize = 64;

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

struct Partial {
    parts: Vec<Option<Vec<u8>>>,
    received: usize,
}

/// Joins fragments into contents, whatever order they arrive in; duplicates are ignored.
/// Memory is bounded: at most [`MAX_PARTIAL`] incomplete contents; the one with the
/// smallest id (the oldest, as ids increase) is dropped first.
#[derive(Default)]
pub struct Reassembler {
    partial: BTreeMap<u64, Partial>,
}

impl std::fmt::Debug for Reassembler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reassembler")
            .field("partial", &self.partial.len())
            .finish()
    }
}

impl Reassembler {
    /// A reassembler with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a fragment; returns the whole content once its last piece arrived.
    pub fn handle_fragment(&mut self, frag: Fragment) -> Result<Option<Vec<u8>>, Error> {
        if frag.count == 0 || frag.index >= frag.count {
            return Err(Error::MalformedPayload("bad fragment index or count"));
        }
        if frag.count == 1 {
            return Ok(Some(frag.data));
        }
        if !self.partial.contains_key(&frag.message_id) && self.partial.len() >= MAX_PARTIAL {
            self.partial.pop_first();
        }
        let entry = self
            .partial
            .entry(frag.message_id)
            .or_insert_with(|| Partial {
                parts: vec![None; usize::from(frag.count)],
                received: 0,
            });
        if entry.parts.len() != usize::from(frag.count) {
            return Err(Error::MalformedPayload("fragment count changed"));
        }
        let slot = &mut entry.parts[usize::from(frag.index)];
        if slot.is_none() {
            *slot = Some(frag.data);
            entry.received += 1;
        }
        if entry.received < entry.parts.len() {
            return Ok(None);
        }
        let done = self.partial.remove(&frag.message_id);
        Ok(done.map(|p| p.parts.into_iter().flatten().flatten().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_join_in_any_order_and_ignore_duplicates() {
        let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut pieces = fragment(7, &content, 1000).unwrap();
        assert_eq!(pieces.len(), 11);
        assert!(pieces.iter().all(|p| p.len() <= 1000));
        pieces.reverse();
        let dup = pieces[3].clone();
        pieces.insert(5, dup);
        let mut r = Reassembler::new();
        let mut out = None;
        for p in pieces {
            let Payload::Fragment(f) = Payload::decode(&p).unwrap() else {
                panic!("not a fragment")
            };
            if let Some(done) = r.handle_fragment(f).unwrap() {
                assert!(out.is_none(), "content completed twice");
                out = Some(done);
            }
        }
        assert_eq!(out.unwrap(), content);
    }

    #[test]
    fn empty_content_is_one_fragment() {
        let pieces = fragment(1, &[], 100).unwrap();
        assert_eq!(pieces.len(), 1);
        let Payload::Fragment(f) = Payload::decode(&pieces[0]).unwrap() else {
            panic!()
        };
        assert_eq!(Reassembler::new().handle_fragment(f).unwrap(), Some(vec![]));
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
