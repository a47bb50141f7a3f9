//! Application content carried inside hush-crypto fragments: text messages and delivery
//! receipts. The relay never sees this layer; it exists only inside the encryption.
//!
//! Layout (big-endian):
//! - text: `0x01 || u64 sent_at || u32 disappear_secs (0 = off) || UTF-8 body`
//! - receipt: `0x02 || u16 n || n × u64 msg_id` (the sender's ids of delivered messages)
//! - file: `0x03 || u64 sent_at || u32 disappear_secs || descriptor` (docs/PROTOCOL.md 7a,
//!   [`crate::files::FileDescriptor`])

use crate::error::{Error, Result};
use crate::files::{FileDescriptor, FileError};

const KIND_TEXT: u8 = 1;
const KIND_RECEIPT: u8 = 2;
const KIND_FILE: u8 = 3;

/// Decoded content.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Content {
    Text {
        sent_at: u64,
        disappear_secs: u32,
        body: String,
    },
    Receipt {
        ids: Vec<u64>,
    },
    /// A file offer: where its chunks are and how to open them.
    File {
        sent_at: u64,
        disappear_secs: u32,
        descriptor: FileDescriptor,
    },
    /// A file offer whose descriptor failed its checks: shown as refused, nothing stored.
    BadFile {
        sent_at: u64,
        disappear_secs: u32,
        error: FileError,
    },
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Text { body, .. } => write!(f, "Text({} bytes)", body.len()),
            Self::Receipt { ids } => write!(f, "Receipt({})", ids.len()),
            Self::File { descriptor, .. } => write!(f, "File({descriptor:?})"),
            Self::BadFile { error, .. } => write!(f, "BadFile({})", error.name()),
        }
    }
}

impl Content {
    /// What a file offer shows in the conversation: its name and size, or the refusal of a
    /// bad one; `None` for other content.
    pub(crate) fn file_text(&self) -> Option<String> {
        match self {
            Self::File { descriptor, .. } => {
                Some(crate::files::summary(&descriptor.name, descriptor.size))
            }
            Self::BadFile { error, .. } => Some(format!("[file refused: {}]", error.name())),
            Self::Text { .. } | Self::Receipt { .. } => None,
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Self::Text {
                sent_at,
                disappear_secs,
                body,
            } => {
                out.push(KIND_TEXT);
                out.extend_from_slice(&sent_at.to_be_bytes());
                out.extend_from_slice(&disappear_secs.to_be_bytes());
                out.extend_from_slice(body.as_bytes());
            }
            Self::Receipt { ids } => {
                out.push(KIND_RECEIPT);
                let n = u16::try_from(ids.len()).unwrap_or(u16::MAX);
                out.extend_from_slice(&n.to_be_bytes());
                for id in ids.iter().take(usize::from(n)) {
                    out.extend_from_slice(&id.to_be_bytes());
                }
            }
            Self::File {
                sent_at,
                disappear_secs,
                descriptor,
            } => {
                out.push(KIND_FILE);
                out.extend_from_slice(&sent_at.to_be_bytes());
                out.extend_from_slice(&disappear_secs.to_be_bytes());
                // A descriptor made by this client always encodes (its name was checked
                // when the file was offered); an empty tail is refused by the receiver.
                let start = out.len();
                out.extend_from_slice(&descriptor.encode().unwrap_or_default());
                #[cfg(feature = "test-hooks")]
                lie(&mut out[start..]);
                #[cfg(not(feature = "test-hooks"))]
                let _ = start;
            }
            // Never sent: it only stands for a refused offer on the receiving side.
            Self::BadFile { .. } => {}
        }
        out
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self> {
        let bad = |m: &str| Error::InvalidArgument(format!("malformed content: {m}"));
        match b.first() {
            Some(&KIND_TEXT) if b.len() >= 13 => {
                let sent_at = u64::from_be_bytes(b[1..9].try_into().map_err(|_| bad("time"))?);
                let disappear_secs =
                    u32::from_be_bytes(b[9..13].try_into().map_err(|_| bad("timer"))?);
                let body = String::from_utf8(b[13..].to_vec()).map_err(|_| bad("not UTF-8"))?;
                Ok(Self::Text {
                    sent_at,
                    disappear_secs,
                    body,
                })
            }
            Some(&KIND_RECEIPT) if b.len() >= 3 => {
                let n = usize::from(u16::from_be_bytes([b[1], b[2]]));
                if b.len() != 3 + 8 * n {
                    return Err(bad("receipt length"));
                }
                let ids = b[3..]
                    .chunks_exact(8)
                    .map(|c| {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(c);
                        u64::from_be_bytes(a)
                    })
                    .collect();
                Ok(Self::Receipt { ids })
            }
            Some(&KIND_FILE) if b.len() >= 13 => {
                let sent_at = u64::from_be_bytes(b[1..9].try_into().map_err(|_| bad("time"))?);
                let disappear_secs =
                    u32::from_be_bytes(b[9..13].try_into().map_err(|_| bad("timer"))?);
                Ok(match FileDescriptor::decode(&b[13..]) {
                    Ok(descriptor) => Self::File {
                        sent_at,
                        disappear_secs,
                        descriptor,
                    },
                    Err(fault) => Self::BadFile {
                        sent_at,
                        disappear_secs,
                        error: fault.into(),
                    },
                })
            }
            _ => Err(bad("unknown kind")),
        }
    }
}

/// Test hook (feature `test-hooks`): `HUSH_TEST_FILE_LIE` makes this client a hostile
/// sender whose descriptor lies: `count` (a chunk count of 2^32 - 1), `digest` (a wrong
/// SHA-256), `size` (1000 bytes fewer than the chunks carry, the count adjusted to match).
#[cfg(feature = "test-hooks")]
fn lie(d: &mut [u8]) {
    let Ok(how) = std::env::var("HUSH_TEST_FILE_LIE") else {
        return;
    };
    let field = |d: &mut [u8], at: usize, bytes: &[u8]| {
        if let Some(f) = d.get_mut(at..at + bytes.len()) {
            f.copy_from_slice(bytes);
        }
    };
    let size = d
        .get(1..9)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes);
    match how.as_str() {
        "count" => field(d, 13, &u32::MAX.to_be_bytes()),
        "digest" => {
            if let Some(b) = d.get_mut(17) {
                *b ^= 1;
            }
        }
        "size" => {
            let lied = size.saturating_sub(1000);
            let count = u32::try_from(hush_crypto::file::chunk_count(lied)).unwrap_or(u32::MAX);
            field(d, 1, &lied.to_be_bytes());
            field(d, 13, &count.to_be_bytes());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        for c in [
            Content::Text {
                sent_at: 7,
                disappear_secs: 60,
                body: "héllo".into(),
            },
            Content::Receipt { ids: vec![1, 2, 3] },
            Content::Receipt { ids: vec![] },
        ] {
            assert_eq!(Content::decode(&c.encode()).unwrap(), c);
        }
        assert!(Content::decode(&[]).is_err());
        assert!(Content::decode(&[1, 0]).is_err());
        assert!(Content::decode(&[2, 0, 1, 0]).is_err());
        assert!(Content::decode(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff]).is_err());
    }
}
