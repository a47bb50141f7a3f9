//! Frames: the byte layout of every request and response, and the error codes.
//!
//! Owns: encoding typed requests/responses into exactly [`FRAME_LEN`] bytes and decoding
//! them back, rejecting every non-canonical input (wrong length, unknown version or kind,
//! non-zero reserved bytes or padding, out-of-range counts) with a specific [`Error`].
//! Must never panic on any input, never allocate more than one frame's worth per decoded
//! frame, and never accept two byte strings as the same value (the encoding is canonical).
//!
//! Layout (see `docs/PROTOCOL.md` (Part II) for the normative table): byte 0 version, byte 1 kind,
//! bytes 2..4 reserved (zero), then a [`BODY_LEN`]-byte body whose used prefix depends on the
//! kind and whose remainder is zero.

use crate::chunk::{ChunkId, ChunkSecret};
use crate::drop::{DropAddress, MAX_STAMP_BITS, STAMP_LEN};
use crate::forward::{
    DESTINATION_LEN, Destination, KeyStatement, MAX_SIGNATURE_LEN, MAX_SPKI_LEN,
    SEALED_REQUEST_LEN, SealedAnswer, SealedRequest, X25519_LEN,
};
use crate::forward_chunk::{
    SEALED_CHUNK_ANSWER_LEN, SEALED_CHUNK_REQUEST_LEN, SealedChunkAnswer, SealedChunkRequest,
};
use crate::types::{
    DeleteIds, Delivery, ENVELOPE_LEN, Envelope, EnvelopeId, FetchSecret, MailboxId, SecretBatch,
};
use crate::{
    BODY_LEN, Error, FRAME_LEN, HEADER_LEN, MAX_DELETE_IDS, MAX_SECRETS, MAX_VERSION, MIN_VERSION,
    VERSION,
};

mod kind {
    pub const PING: u8 = 0x01;
    pub const DEPOSIT: u8 = 0x02;
    pub const FETCH: u8 = 0x03;
    pub const DELETE: u8 = 0x04;
    pub const SUBSCRIBE: u8 = 0x05;
    pub const DEPOSIT_STAMPED: u8 = 0x06;
    pub const FETCH_DROPS: u8 = 0x07;
    pub const DELETE_DROP: u8 = 0x08;
    pub const SUBSCRIBE_DROPS: u8 = 0x09;
    // File chunks (docs/PROTOCOL.md II.4.3): requests 0x10..=0x1F, responses 0x90..=0x9F.
    pub const PUT_CHUNK: u8 = 0x10;
    pub const GET_CHUNK: u8 = 0x11;
    pub const DELETE_CHUNK: u8 = 0x12;
    // Forwarded chunk requests (docs/PROTOCOL.md II.4.4).
    pub const FORWARD_CHUNK: u8 = 0x13;
    pub const DELIVER_CHUNK: u8 = 0x14;
    pub const CHUNK_FORWARDED: u8 = 0x93;
    pub const CHUNK_STORED: u8 = 0x90;
    pub const CHUNK: u8 = 0x91;
    pub const CHUNK_DELETED: u8 = 0x92;
    // Private routing (docs/PROTOCOL.md II.4.2): 0x0A..=0x0F, 0x87..=0x8F.
    pub const FORWARD_KEY: u8 = 0x0A;
    pub const FETCH_FORWARD_KEY: u8 = 0x0B;
    pub const FORWARD: u8 = 0x0C;
    pub const DELIVER: u8 = 0x0D;

    pub const PONG: u8 = 0x81;
    pub const DEPOSITED: u8 = 0x82;
    pub const ENVELOPE: u8 = 0x83;
    pub const FETCH_DONE: u8 = 0x84;
    pub const DELETED: u8 = 0x85;
    pub const SUBSCRIBED: u8 = 0x86;
    pub const FORWARD_KEY_STATEMENT: u8 = 0x87;
    pub const FORWARDED: u8 = 0x88;
    pub const ERROR: u8 = 0xff;

    pub fn is_request(k: u8) -> bool {
        matches!(
            k,
            PING | DEPOSIT
                | FETCH
                | DELETE
                | SUBSCRIBE
                | DEPOSIT_STAMPED
                | FETCH_DROPS
                | DELETE_DROP
                | SUBSCRIBE_DROPS
                | FORWARD_KEY
                | FETCH_FORWARD_KEY
                | FORWARD
                | DELIVER
        ) || is_chunk_request(k)
    }
    pub fn is_chunk_request(k: u8) -> bool {
        matches!(
            k,
            PUT_CHUNK | GET_CHUNK | DELETE_CHUNK | FORWARD_CHUNK | DELIVER_CHUNK
        )
    }
    pub fn is_chunk_response(k: u8) -> bool {
        matches!(k, CHUNK_STORED | CHUNK | CHUNK_DELETED | CHUNK_FORWARDED)
    }
    pub fn is_response(k: u8) -> bool {
        matches!(
            k,
            PONG | DEPOSITED
                | ENVELOPE
                | FETCH_DONE
                | DELETED
                | SUBSCRIBED
                | FORWARD_KEY_STATEMENT
                | FORWARDED
                | ERROR
        ) || is_chunk_response(k)
    }
}

/// The kind byte of `PutChunk`, whose frame is followed by a chunk on its stream.
pub(crate) const PUT_CHUNK_KIND: u8 = kind::PUT_CHUNK;
/// The kind byte of `Chunk`, whose frame is followed by a chunk on its stream.
pub(crate) const CHUNK_KIND: u8 = kind::CHUNK;
/// The kind bytes of `ForwardChunk` and `DeliverChunk`, and the offset of their trailer flag
/// in the frame: a sealed chunk follows them when the flag is 1.
pub(crate) const FORWARD_CHUNK_KINDS: [(u8, usize); 2] = [
    (
        kind::FORWARD_CHUNK,
        HEADER_LEN + DESTINATION_LEN + X25519_LEN,
    ),
    (kind::DELIVER_CHUNK, HEADER_LEN + X25519_LEN),
];
/// The kind byte of `ChunkForwarded`, whose trailer flag is the first byte of its body.
pub(crate) const CHUNK_FORWARDED_KIND: u8 = kind::CHUNK_FORWARDED;

/// A request from a client to a relay.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// Liveness and parameters; answered by [`Response::Pong`].
    Ping,
    /// Store `envelope` in `mailbox`; answered by [`Response::Deposited`] once durable.
    Deposit {
        /// Destination mailbox pseudonym.
        mailbox: MailboxId,
        /// The ciphertext.
        envelope: Envelope,
    },
    /// Read stored envelopes with ids greater than `after` from the mailboxes the secrets open;
    /// answered by zero or more [`Response::Envelope`] then one [`Response::FetchDone`].
    Fetch {
        /// Cursor: only envelopes with an id strictly greater are returned (0 for all).
        after: EnvelopeId,
        /// The fetch secrets.
        secrets: SecretBatch,
    },
    /// Delete (acknowledge) envelopes of the mailbox `secret` opens; answered by
    /// [`Response::Deleted`], or an error if none of the ids was deleted.
    Delete {
        /// The fetch secret of the mailbox.
        secret: FetchSecret,
        /// The envelopes to delete.
        ids: DeleteIds,
    },
    /// Push every envelope committed to these mailboxes from now on; answered by
    /// [`Response::Subscribed`] and then a [`Response::Envelope`] per arrival.
    Subscribe {
        /// The fetch secrets.
        secrets: SecretBatch,
    },
    /// Store `envelope` in a drop (an invite's handshake mailbox), paying with a stamp;
    /// answered like [`Request::Deposit`], or `StampTooWeak` with the work now required.
    DepositStamped {
        /// The drop, as the invite names it.
        drop: DropAddress,
        /// Proof of work for this envelope and drop (see [`crate::drop::stamp_work`]).
        stamp: [u8; STAMP_LEN],
        /// The ciphertext.
        envelope: Envelope,
    },
    /// [`Request::Fetch`] from the drops the secrets open (each secret `F` is an invite
    /// owner's, and opens the drop `SHA-256(F)` of difficulty `F[0]`), never from ordinary
    /// mailboxes.
    FetchDrops {
        /// Cursor, as in [`Request::Fetch`].
        after: EnvelopeId,
        /// The owners' secrets.
        secrets: SecretBatch,
    },
    /// [`Request::Delete`] in the drop `secret` opens.
    DeleteDrop {
        /// The owner's secret.
        secret: FetchSecret,
        /// The envelopes to delete.
        ids: DeleteIds,
    },
    /// [`Request::Subscribe`] to the drops the secrets open.
    SubscribeDrops {
        /// The owners' secrets.
        secrets: SecretBatch,
    },
    /// Store the chunk that follows this frame on its stream (exactly
    /// [`crate::CHUNK_LEN`] bytes, then FIN) under `id`; answered by
    /// [`Response::ChunkStored`] once durable. Idempotent: the same id twice is stored once.
    PutChunk {
        /// `SHA-256` of the chunk's secret.
        id: ChunkId,
    },
    /// Read the chunk `secret` opens; answered by [`Response::Chunk`] followed by the chunk's
    /// [`crate::CHUNK_LEN`] bytes, or `ChunkNotFound`.
    GetChunk {
        /// The chunk's secret.
        secret: ChunkSecret,
    },
    /// Delete the chunk `secret` opens; answered by [`Response::ChunkDeleted`] or
    /// `ChunkNotFound`.
    DeleteChunk {
        /// The chunk's secret.
        secret: ChunkSecret,
    },
    /// This relay's forwarding-key statement; answered by [`Response::ForwardKey`].
    ForwardKey,
    /// The forwarding-key statement of `destination`, which this relay asks for over its
    /// connection there; answered by [`Response::ForwardKey`] as the destination sent it.
    FetchForwardKey {
        /// The relay whose statement is wanted.
        destination: Destination,
    },
    /// Pass `sealed` on to `destination` as a [`Request::Deliver`]; answered by
    /// [`Response::Forwarded`] with the destination's sealed answer.
    Forward {
        /// The destination relay.
        destination: Destination,
        /// The sealed inner request.
        sealed: SealedRequest,
    },
    /// A forwarded request, sealed to this relay's forwarding key; answered by
    /// [`Response::Forwarded`].
    Deliver {
        /// The sealed inner request.
        sealed: SealedRequest,
    },
    /// Pass a sealed chunk request (and, for a put, the sealed chunk after this frame) on
    /// to `destination` as a [`Request::DeliverChunk`]; answered by
    /// [`Response::ChunkForwarded`] (and, for a get, the sealed chunk after it).
    ForwardChunk {
        /// The destination relay.
        destination: Destination,
        /// The sealed inner chunk request.
        sealed: SealedChunkRequest,
    },
    /// A forwarded chunk request, sealed to this relay's forwarding key; answered by
    /// [`Response::ChunkForwarded`].
    DeliverChunk {
        /// The sealed inner chunk request.
        sealed: SealedChunkRequest,
    },
}

/// Relay parameters, carried by [`Response::Pong`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pong {
    /// Oldest protocol version the relay speaks.
    pub min_version: u8,
    /// Newest protocol version the relay speaks.
    pub max_version: u8,
    /// Envelopes one mailbox may hold.
    pub mailbox_quota: u32,
    /// Seconds an envelope is kept before it expires.
    pub expiry_secs: u64,
}

/// A response from a relay to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// Answer to [`Request::Ping`].
    Pong(Pong),
    /// The deposit is durably committed under this id.
    Deposited(EnvelopeId),
    /// One stored envelope (fetch result or push).
    Envelope(Delivery),
    /// End of a fetch answer.
    FetchDone {
        /// How many envelopes this fetch returned.
        returned: u32,
        /// More envelopes are stored after the last one returned: fetch again with it as cursor.
        more: bool,
    },
    /// Result of a delete in which at least one id was deleted.
    Deleted {
        /// Ids deleted now.
        deleted: u16,
        /// Ids not found and older than the relay's expiry horizon.
        expired: u16,
        /// Ids not found otherwise (already deleted, never existed, other mailbox).
        unknown: u16,
    },
    /// The subscription is active for this many mailboxes.
    Subscribed {
        /// Number of mailboxes subscribed.
        count: u16,
    },
    /// A relay's forwarding-key statement.
    ForwardKey(KeyStatement),
    /// The destination's sealed answer to a forwarded request.
    Forwarded(SealedAnswer),
    /// The request failed.
    Error(ErrorFrame),
    /// Answer to [`Request::PutChunk`]: the chunk is durably stored.
    ChunkStored {
        /// `false` if a chunk under that id was already stored (the put changed nothing).
        fresh: bool,
    },
    /// Answer to [`Request::GetChunk`]: the chunk's [`crate::CHUNK_LEN`] bytes follow this
    /// frame on the stream.
    Chunk,
    /// Answer to [`Request::DeleteChunk`]: the chunk is deleted.
    ChunkDeleted,
    /// The destination's sealed answer to a forwarded chunk request; a sealed chunk follows
    /// the frame when its `trailer` flag is set.
    ChunkForwarded(SealedChunkAnswer),
}

/// An error answer: a code and a code-specific argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorFrame {
    /// What went wrong.
    pub code: ErrorCode,
    /// `UnsupportedVersion`: `min << 8 | max` of the relay; `RateLimited`: milliseconds to
    /// wait; otherwise 0.
    pub arg: u32,
}

impl ErrorFrame {
    /// An error with argument 0.
    #[must_use]
    pub fn new(code: ErrorCode) -> Self {
        Self { code, arg: 0 }
    }

    /// The `UnsupportedVersion` answer advertising this build's version range.
    #[must_use]
    pub fn unsupported_version() -> Self {
        Self {
            code: ErrorCode::UnsupportedVersion,
            arg: (u32::from(MIN_VERSION) << 8) | u32::from(MAX_VERSION),
        }
    }
}

/// Generates [`ErrorCode`] from one table: the variants, their wire values, their names
/// (logs and metric labels), parsing, and [`ErrorCode::ALL`]. A code is added in one line.
macro_rules! error_codes {
    ($( $(#[doc = $doc:literal])+ $variant:ident = $value:literal, $name:literal; )+) => {
        /// Error codes on the wire (u16, big-endian). Codes below 0x0100 mean the request frame
        /// was malformed; the others are refusals of a well-formed request.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $(
                #[doc = concat!("`", stringify!($value), "` (`", $name, "`):")]
                $(#[doc = $doc])+
                $variant,
            )+
            /// A code this build does not know (sent by a newer relay).
            Unrecognized(u16),
        }

        impl ErrorCode {
            /// Every code this build knows, in wire order ([`ErrorCode::Unrecognized`] is not
            /// one of them).
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The wire value.
            #[must_use]
            pub fn to_u16(self) -> u16 {
                match self {
                    $(Self::$variant => $value,)+
                    Self::Unrecognized(v) => v,
                }
            }

            /// From the wire value; unknown values become [`ErrorCode::Unrecognized`].
            #[must_use]
            pub fn from_u16(v: u16) -> Self {
                match v {
                    $($value => Self::$variant,)+
                    other => Self::Unrecognized(other),
                }
            }

            /// A short stable name, safe for logs and metric labels.
            #[must_use]
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                    Self::Unrecognized(_) => "unrecognized",
                }
            }
        }
    };
}

error_codes! {
    /// the stream ended before a whole frame.
    Truncated = 0x0001, "truncated";
    /// more bytes followed the one request frame of a stream.
    Oversized = 0x0002, "oversized";
    /// unknown frame kind.
    UnknownKind = 0x0003, "unknown_kind";
    /// a response kind was sent as a request.
    UnexpectedKind = 0x0004, "unexpected_kind";
    /// a reserved field was not zero.
    ReservedNotZero = 0x0005, "reserved_not_zero";
    /// padding was not zero.
    PaddingNotZero = 0x0006, "padding_not_zero";
    /// a count was zero or above its maximum.
    BadCount = 0x0007, "bad_count";
    /// a field held an invalid value.
    BadField = 0x0008, "bad_field";
    /// protocol version not supported; the argument carries the relay's range.
    UnsupportedVersion = 0x0010, "unsupported_version";
    /// the mailbox holds its quota of envelopes.
    MailboxFull = 0x0100, "mailbox_full";
    /// the relay's global storage quota is reached.
    RelayFull = 0x0101, "relay_full";
    /// a stamped deposit's stamp shows too little work; the argument is the bits required.
    StampTooWeak = 0x0102, "stamp_too_weak";
    /// too many requests on this connection; the argument is milliseconds to wait.
    RateLimited = 0x0200, "rate_limited";
    /// no named envelope exists in that mailbox.
    UnknownEnvelope = 0x0300, "unknown_envelope";
    /// the named envelopes are older than the expiry horizon and are gone.
    Expired = 0x0301, "expired";
    /// the relay failed internally (storage); retry later.
    Internal = 0x0400, "internal";
    /// the relay is shutting down; reconnect later.
    ShuttingDown = 0x0401, "shutting_down";
    /// a subscription fell too far behind and was dropped; fetch to catch up.
    Lagged = 0x0402, "lagged";
    /// too many concurrent subscriptions on this connection.
    TooManySubscriptions = 0x0403, "too_many_subscriptions";
    /// GetChunk, DeleteChunk: no chunk is stored under that secret's id (never stored,
    /// deleted, or expired).
    ChunkNotFound = 0x0600, "chunk_not_found";
    /// PutChunk: the relay's chunk storage holds its quota (count or bytes).
    ChunkStoreFull = 0x0601, "chunk_store_full";
    /// the relay stores no chunks (disabled by its operator, or its storage backend has none).
    ChunksUnsupported = 0x0602, "chunks_unsupported";
    /// this connection already has its most chunk requests in flight; retry after `arg`
    /// milliseconds.
    ChunkBusy = 0x0603, "chunk_busy";
    /// this relay does not forward (its operator turned forwarding off).
    ForwardingDisabled = 0x0500, "forwarding_disabled";
    /// the destination relay could not be reached, or the connection there failed.
    ForwardUnreachable = 0x0501, "forward_unreachable";
    /// the destination relay presented a certificate that does not match its pin.
    ForwardPinMismatch = 0x0502, "forward_pin_mismatch";
    /// the sealed request's ephemeral key was used before (a replay).
    ForwardReplay = 0x0503, "forward_replay";
    /// the sealed request does not open with this relay's forwarding key.
    ForwardUnsealable = 0x0504, "forward_unsealable";
    /// the destination is this relay itself: deposit directly.
    ForwardToSelf = 0x0505, "forward_to_self";
}

/// Builds frames: header, then the body written field by field from offset 0.
struct Writer {
    frame: Box<[u8; FRAME_LEN]>,
    pos: usize,
}

impl Writer {
    fn new(kind: u8) -> Self {
        let mut frame = Box::new([0u8; FRAME_LEN]);
        frame[0] = VERSION;
        frame[1] = kind;
        Self {
            frame,
            pos: HEADER_LEN,
        }
    }
    // Encoding only writes typed values whose sizes are bounded by construction
    // (SecretBatch, DeleteIds), so every write fits in BODY_LEN.
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos + bytes.len();
        if let Some(dst) = self.frame.get_mut(self.pos..end) {
            dst.copy_from_slice(bytes);
        }
        self.pos = end;
    }
    fn finish(self) -> Box<[u8; FRAME_LEN]> {
        self.frame
    }
}

/// Reads a body field by field; checks that the unread rest is zero at the end.
struct Reader<'a> {
    body: &'a [u8; BODY_LEN],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        // Callers read at most the fixed layouts below, all shorter than BODY_LEN; a read past
        // the end yields zeros rather than a panic and is caught by tests of every layout.
        if let Some(src) = self.body.get(self.pos..self.pos + N) {
            out.copy_from_slice(src);
        }
        self.pos += N;
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take())
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take())
    }
    fn reserved16(&mut self) -> Result<(), Error> {
        if self.u16() == 0 {
            Ok(())
        } else {
            Err(Error::ReservedNotZero)
        }
    }
    fn count(&mut self, max: usize) -> Result<usize, Error> {
        let count = usize::from(self.u16());
        if count == 0 || count > max {
            return Err(Error::BadCount { count, max });
        }
        Ok(count)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let out = self
            .body
            .get(self.pos..self.pos + n)
            .unwrap_or(&[])
            .to_vec();
        self.pos += n;
        out
    }
    fn flag(&mut self, name: &'static str) -> Result<bool, Error> {
        match self.u8() {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Error::BadField(name)),
        }
    }
    fn sealed_chunk_request(&mut self) -> Result<SealedChunkRequest, Error> {
        let ephemeral = self.take();
        let trailer = self.flag("trailer")?;
        Ok(SealedChunkRequest {
            ephemeral,
            trailer,
            sealed: self.take::<SEALED_CHUNK_REQUEST_LEN>(),
        })
    }
    fn sealed_request(&mut self) -> SealedRequest {
        SealedRequest {
            ephemeral: self.take(),
            sealed: Box::new(self.take::<SEALED_REQUEST_LEN>()),
        }
    }
    fn envelope(&mut self) -> Envelope {
        Envelope::new(Box::new(self.take::<ENVELOPE_LEN>()))
    }
    fn finish(self) -> Result<(), Error> {
        let rest = self.body.get(self.pos..).unwrap_or(&[]);
        if rest.iter().all(|&b| b == 0) {
            Ok(())
        } else {
            Err(Error::PaddingNotZero)
        }
    }
}

/// Checks length, version and header; returns (kind, body).
fn split(buf: &[u8]) -> Result<(u8, &[u8; BODY_LEN]), Error> {
    let frame: &[u8; FRAME_LEN] = buf.try_into().map_err(|_| {
        if buf.len() < FRAME_LEN {
            Error::Truncated(buf.len())
        } else {
            Error::Oversized(buf.len())
        }
    })?;
    let [version, kind, r0, r1, ..] = *frame;
    if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
        return Err(Error::UnsupportedVersion(version));
    }
    if !kind::is_request(kind) && !kind::is_response(kind) {
        return Err(Error::UnknownKind(kind));
    }
    if r0 != 0 || r1 != 0 {
        return Err(Error::ReservedNotZero);
    }
    let body: &[u8; BODY_LEN] = frame
        .get(HEADER_LEN..)
        .and_then(|b| b.try_into().ok())
        .ok_or(Error::Truncated(buf.len()))?;
    Ok((kind, body))
}

fn read_secrets(r: &mut Reader<'_>, count: usize) -> Result<SecretBatch, Error> {
    let secrets = (0..count)
        .map(|_| FetchSecret::from_bytes(r.take()))
        .collect();
    SecretBatch::new(secrets)
}

/// Decodes one request frame (`buf` must be exactly [`FRAME_LEN`] bytes).
///
/// # Errors
/// A specific [`Error`] for every malformed input; [`Error::code`] gives the wire code.
pub fn decode_request(buf: &[u8]) -> Result<Request, Error> {
    let (k, body) = split(buf)?;
    if !kind::is_request(k) {
        return Err(Error::UnexpectedKind(k));
    }
    let mut r = Reader { body, pos: 0 };
    let req = match k {
        kind::PING => Request::Ping,
        kind::DEPOSIT => Request::Deposit {
            mailbox: MailboxId(r.take()),
            envelope: r.envelope(),
        },
        kind::FETCH | kind::FETCH_DROPS => {
            let after = EnvelopeId(r.u64());
            let count = r.count(MAX_SECRETS)?;
            r.reserved16()?;
            let secrets = read_secrets(&mut r, count)?;
            if k == kind::FETCH {
                Request::Fetch { after, secrets }
            } else {
                Request::FetchDrops { after, secrets }
            }
        }
        kind::DELETE | kind::DELETE_DROP => {
            let secret = FetchSecret::from_bytes(r.take());
            let count = r.count(MAX_DELETE_IDS)?;
            r.reserved16()?;
            let ids = (0..count).map(|_| EnvelopeId(r.u64())).collect();
            let ids = DeleteIds::new(ids)?;
            if k == kind::DELETE {
                Request::Delete { secret, ids }
            } else {
                Request::DeleteDrop { secret, ids }
            }
        }
        kind::SUBSCRIBE | kind::SUBSCRIBE_DROPS => {
            let count = r.count(MAX_SECRETS)?;
            r.reserved16()?;
            let secrets = read_secrets(&mut r, count)?;
            if k == kind::SUBSCRIBE {
                Request::Subscribe { secrets }
            } else {
                Request::SubscribeDrops { secrets }
            }
        }
        kind::DEPOSIT_STAMPED => {
            let id = MailboxId(r.take());
            let bits = r.u8();
            if bits > MAX_STAMP_BITS {
                return Err(Error::BadField("stamp bits"));
            }
            Request::DepositStamped {
                drop: DropAddress { id, bits },
                stamp: r.take(),
                envelope: r.envelope(),
            }
        }
        kind::PUT_CHUNK => Request::PutChunk {
            id: ChunkId(r.take()),
        },
        kind::GET_CHUNK => Request::GetChunk {
            secret: ChunkSecret::from_bytes(r.take()),
        },
        kind::DELETE_CHUNK => Request::DeleteChunk {
            secret: ChunkSecret::from_bytes(r.take()),
        },
        kind::FORWARD_KEY => Request::ForwardKey,
        kind::FETCH_FORWARD_KEY => Request::FetchForwardKey {
            destination: Destination::decode(&r.take::<DESTINATION_LEN>())?,
        },
        kind::FORWARD => {
            let destination = Destination::decode(&r.take::<DESTINATION_LEN>())?;
            Request::Forward {
                destination,
                sealed: r.sealed_request(),
            }
        }
        kind::DELIVER => Request::Deliver {
            sealed: r.sealed_request(),
        },
        kind::FORWARD_CHUNK => {
            let destination = Destination::decode(&r.take::<DESTINATION_LEN>())?;
            Request::ForwardChunk {
                destination,
                sealed: r.sealed_chunk_request()?,
            }
        }
        kind::DELIVER_CHUNK => Request::DeliverChunk {
            sealed: r.sealed_chunk_request()?,
        },
        other => return Err(Error::UnknownKind(other)),
    };
    r.finish()?;
    Ok(req)
}

/// Decodes one response frame (`buf` must be exactly [`FRAME_LEN`] bytes).
///
/// # Errors
/// A specific [`Error`] for every malformed input.
pub fn decode_response(buf: &[u8]) -> Result<Response, Error> {
    let (k, body) = split(buf)?;
    if !kind::is_response(k) {
        return Err(Error::UnexpectedKind(k));
    }
    let mut r = Reader { body, pos: 0 };
    let resp = match k {
        kind::PONG => {
            let min_version = r.u8();
            let max_version = r.u8();
            r.reserved16()?;
            Response::Pong(Pong {
                min_version,
                max_version,
                mailbox_quota: r.u32(),
                expiry_secs: r.u64(),
            })
        }
        kind::DEPOSITED => Response::Deposited(EnvelopeId(r.u64())),
        kind::ENVELOPE => Response::Envelope(Delivery {
            mailbox: MailboxId(r.take()),
            id: EnvelopeId(r.u64()),
            envelope: r.envelope(),
        }),
        kind::FETCH_DONE => {
            let returned = r.u32();
            let more = match r.u8() {
                0 => false,
                1 => true,
                _ => return Err(Error::BadField("more")),
            };
            Response::FetchDone { returned, more }
        }
        kind::DELETED => Response::Deleted {
            deleted: r.u16(),
            expired: r.u16(),
            unknown: r.u16(),
        },
        kind::SUBSCRIBED => Response::Subscribed { count: r.u16() },
        kind::FORWARD_KEY_STATEMENT => {
            let spki_len = r.count(MAX_SPKI_LEN)?;
            let sig_len = r.count(MAX_SIGNATURE_LEN)?;
            let key = r.take::<X25519_LEN>();
            let spki = r.bytes(spki_len);
            let signature = r.bytes(sig_len);
            Response::ForwardKey(KeyStatement {
                spki,
                key,
                signature,
            })
        }
        kind::FORWARDED => Response::Forwarded(SealedAnswer(r.take())),
        kind::ERROR => {
            let code = ErrorCode::from_u16(r.u16());
            r.reserved16()?;
            Response::Error(ErrorFrame { code, arg: r.u32() })
        }
        kind::CHUNK_STORED => Response::ChunkStored {
            fresh: match r.u8() {
                0 => false,
                1 => true,
                _ => return Err(Error::BadField("fresh")),
            },
        },
        kind::CHUNK => Response::Chunk,
        kind::CHUNK_DELETED => Response::ChunkDeleted,
        kind::CHUNK_FORWARDED => {
            let trailer = r.flag("trailer")?;
            Response::ChunkForwarded(SealedChunkAnswer {
                trailer,
                sealed: r.take::<SEALED_CHUNK_ANSWER_LEN>(),
            })
        }
        other => return Err(Error::UnknownKind(other)),
    };
    r.finish()?;
    Ok(resp)
}

fn put_secrets(w: &mut Writer, secrets: &SecretBatch) {
    // SecretBatch holds 1..=MAX_SECRETS (128) entries, so the count fits in u16.
    let n = u16::try_from(secrets.secrets().len()).unwrap_or(u16::MAX);
    w.put(&n.to_be_bytes());
    w.put(&[0, 0]);
    for s in secrets.secrets() {
        w.put(s.as_bytes());
    }
}

impl Request {
    /// Encodes this request into one frame.
    #[must_use]
    pub fn encode(&self) -> Box<[u8; FRAME_LEN]> {
        match self {
            Self::Ping => Writer::new(kind::PING).finish(),
            Self::Deposit { mailbox, envelope } => {
                let mut w = Writer::new(kind::DEPOSIT);
                w.put(mailbox.as_bytes());
                w.put(envelope.as_bytes());
                w.finish()
            }
            Self::Fetch { after, secrets } => fetch_frame(kind::FETCH, *after, secrets),
            Self::FetchDrops { after, secrets } => fetch_frame(kind::FETCH_DROPS, *after, secrets),
            Self::Delete { secret, ids } => delete_frame(kind::DELETE, secret, ids),
            Self::DeleteDrop { secret, ids } => delete_frame(kind::DELETE_DROP, secret, ids),
            Self::Subscribe { secrets } => {
                let mut w = Writer::new(kind::SUBSCRIBE);
                put_secrets(&mut w, secrets);
                w.finish()
            }
            Self::SubscribeDrops { secrets } => {
                let mut w = Writer::new(kind::SUBSCRIBE_DROPS);
                put_secrets(&mut w, secrets);
                w.finish()
            }
            Self::DepositStamped {
                drop,
                stamp,
                envelope,
            } => {
                let mut w = Writer::new(kind::DEPOSIT_STAMPED);
                w.put(drop.id.as_bytes());
                w.put(&[drop.bits]);
                w.put(stamp);
                w.put(envelope.as_bytes());
                w.finish()
            }
            Self::PutChunk { id } => {
                let mut w = Writer::new(kind::PUT_CHUNK);
                w.put(id.as_bytes());
                w.finish()
            }
            Self::GetChunk { secret } => {
                let mut w = Writer::new(kind::GET_CHUNK);
                w.put(secret.as_bytes());
                w.finish()
            }
            Self::DeleteChunk { secret } => {
                let mut w = Writer::new(kind::DELETE_CHUNK);
                w.put(secret.as_bytes());
                w.finish()
            }
            Self::ForwardKey => Writer::new(kind::FORWARD_KEY).finish(),
            Self::FetchForwardKey { destination } => {
                let mut w = Writer::new(kind::FETCH_FORWARD_KEY);
                w.put(destination.binary());
                w.finish()
            }
            Self::Forward {
                destination,
                sealed,
            } => {
                let mut w = Writer::new(kind::FORWARD);
                w.put(destination.binary());
                w.pos = HEADER_LEN + DESTINATION_LEN;
                w.put(&sealed.ephemeral);
                w.put(&sealed.sealed[..]);
                w.finish()
            }
            Self::Deliver { sealed } => {
                let mut w = Writer::new(kind::DELIVER);
                w.put(&sealed.ephemeral);
                w.put(&sealed.sealed[..]);
                w.finish()
            }
            Self::ForwardChunk {
                destination,
                sealed,
            } => {
                let mut w = Writer::new(kind::FORWARD_CHUNK);
                w.put(destination.binary());
                w.pos = HEADER_LEN + DESTINATION_LEN;
                put_sealed_chunk(&mut w, sealed);
                w.finish()
            }
            Self::DeliverChunk { sealed } => {
                let mut w = Writer::new(kind::DELIVER_CHUNK);
                put_sealed_chunk(&mut w, sealed);
                w.finish()
            }
        }
    }

    /// A short stable name of the command, safe for logs and metric labels.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Deposit { .. } => "deposit",
            Self::Fetch { .. } => "fetch",
            Self::Delete { .. } => "delete",
            Self::Subscribe { .. } => "subscribe",
            Self::DepositStamped { .. } => "deposit_stamped",
            Self::FetchDrops { .. } => "fetch_drops",
            Self::DeleteDrop { .. } => "delete_drop",
            Self::SubscribeDrops { .. } => "subscribe_drops",
            Self::PutChunk { .. } => "put_chunk",
            Self::GetChunk { .. } => "get_chunk",
            Self::DeleteChunk { .. } => "delete_chunk",
            Self::ForwardKey => "forward_key",
            Self::FetchForwardKey { .. } => "fetch_forward_key",
            Self::Forward { .. } => "forward",
            Self::Deliver { .. } => "deliver",
            Self::ForwardChunk { .. } => "forward_chunk",
            Self::DeliverChunk { .. } => "deliver_chunk",
        }
    }
}

/// ForwardChunk and DeliverChunk: ephemeral key, trailer flag, sealed chunk request.
fn put_sealed_chunk(w: &mut Writer, sealed: &SealedChunkRequest) {
    w.put(&sealed.ephemeral);
    w.put(&[u8::from(sealed.trailer)]);
    w.put(&sealed.sealed);
}

/// Fetch and FetchDrops: cursor, count, reserved, secrets.
fn fetch_frame(k: u8, after: EnvelopeId, secrets: &SecretBatch) -> Box<[u8; FRAME_LEN]> {
    let mut w = Writer::new(k);
    w.put(&after.0.to_be_bytes());
    put_secrets(&mut w, secrets);
    w.finish()
}

/// Delete and DeleteDrop: secret, count, reserved, ids.
fn delete_frame(k: u8, secret: &FetchSecret, ids: &DeleteIds) -> Box<[u8; FRAME_LEN]> {
    let mut w = Writer::new(k);
    w.put(secret.as_bytes());
    // DeleteIds holds 1..=MAX_DELETE_IDS (512) entries.
    let n = u16::try_from(ids.ids().len()).unwrap_or(u16::MAX);
    w.put(&n.to_be_bytes());
    w.put(&[0, 0]);
    for id in ids.ids() {
        w.put(&id.0.to_be_bytes());
    }
    w.finish()
}

impl Response {
    /// Encodes this response into one frame.
    #[must_use]
    pub fn encode(&self) -> Box<[u8; FRAME_LEN]> {
        match self {
            Self::Pong(p) => {
                let mut w = Writer::new(kind::PONG);
                w.put(&[p.min_version, p.max_version, 0, 0]);
                w.put(&p.mailbox_quota.to_be_bytes());
                w.put(&p.expiry_secs.to_be_bytes());
                w.finish()
            }
            Self::Deposited(id) => {
                let mut w = Writer::new(kind::DEPOSITED);
                w.put(&id.0.to_be_bytes());
                w.finish()
            }
            Self::Envelope(d) => {
                let mut w = Writer::new(kind::ENVELOPE);
                w.put(d.mailbox.as_bytes());
                w.put(&d.id.0.to_be_bytes());
                w.put(d.envelope.as_bytes());
                w.finish()
            }
            Self::FetchDone { returned, more } => {
                let mut w = Writer::new(kind::FETCH_DONE);
                w.put(&returned.to_be_bytes());
                w.put(&[u8::from(*more)]);
                w.finish()
            }
            Self::Deleted {
                deleted,
                expired,
                unknown,
            } => {
                let mut w = Writer::new(kind::DELETED);
                w.put(&deleted.to_be_bytes());
                w.put(&expired.to_be_bytes());
                w.put(&unknown.to_be_bytes());
                w.finish()
            }
            Self::Subscribed { count } => {
                let mut w = Writer::new(kind::SUBSCRIBED);
                w.put(&count.to_be_bytes());
                w.finish()
            }
            Self::ForwardKey(st) => {
                let mut w = Writer::new(kind::FORWARD_KEY_STATEMENT);
                // A statement decoded or built by a relay holds 1..=1024 and 1..=512 bytes;
                // longer ones are cut to the bound (and then fail verification).
                let spki = &st.spki[..st.spki.len().min(MAX_SPKI_LEN)];
                let sig = &st.signature[..st.signature.len().min(MAX_SIGNATURE_LEN)];
                w.put(&u16::try_from(spki.len()).unwrap_or(0).to_be_bytes());
                w.put(&u16::try_from(sig.len()).unwrap_or(0).to_be_bytes());
                w.put(&st.key);
                w.put(spki);
                w.put(sig);
                w.finish()
            }
            Self::Forwarded(a) => {
                let mut w = Writer::new(kind::FORWARDED);
                w.put(&a.0);
                w.finish()
            }
            Self::Error(e) => {
                let mut w = Writer::new(kind::ERROR);
                w.put(&e.code.to_u16().to_be_bytes());
                w.put(&[0, 0]);
                w.put(&e.arg.to_be_bytes());
                w.finish()
            }
            Self::ChunkStored { fresh } => {
                let mut w = Writer::new(kind::CHUNK_STORED);
                w.put(&[u8::from(*fresh)]);
                w.finish()
            }
            Self::Chunk => Writer::new(kind::CHUNK).finish(),
            Self::ChunkDeleted => Writer::new(kind::CHUNK_DELETED).finish(),
            Self::ChunkForwarded(a) => {
                let mut w = Writer::new(kind::CHUNK_FORWARDED);
                w.put(&[u8::from(a.trailer)]);
                w.put(&a.sealed);
                w.finish()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(b: u8) -> Envelope {
        Envelope::new(Box::new([b; ENVELOPE_LEN]))
    }
    fn secrets(n: usize) -> SecretBatch {
        SecretBatch::new(
            (0..n)
                .map(|i| FetchSecret::from_bytes([u8::try_from(i % 256).unwrap(); 32]))
                .collect(),
        )
        .unwrap()
    }

    fn all_requests() -> Vec<Request> {
        let destination = crate::forward::Destination::new(
            format!("hush://{}@{}.example:65535", "A".repeat(43), "b".repeat(63))
                .parse()
                .unwrap(),
        )
        .unwrap();
        let sealed = SealedRequest {
            ephemeral: [0x4e; 32],
            sealed: Box::new([0xe5; SEALED_REQUEST_LEN]),
        };
        vec![
            Request::Ping,
            Request::Forward {
                destination: destination.clone(),
                sealed: sealed.clone(),
            },
            Request::DepositStamped {
                drop: DropAddress {
                    id: MailboxId([0xd5; 32]),
                    bits: MAX_STAMP_BITS,
                },
                stamp: [0xa7; STAMP_LEN],
                envelope: env(0x3c),
            },
            Request::Deposit {
                mailbox: MailboxId([7; 32]),
                envelope: env(0x55),
            },
            Request::Fetch {
                after: EnvelopeId(42),
                secrets: secrets(MAX_SECRETS),
            },
            Request::Fetch {
                after: EnvelopeId(0),
                secrets: secrets(1),
            },
            Request::Delete {
                secret: FetchSecret::from_bytes([9; 32]),
                ids: DeleteIds::new((0..MAX_DELETE_IDS as u64).map(EnvelopeId).collect()).unwrap(),
            },
            Request::Subscribe {
                secrets: secrets(MAX_SECRETS),
            },
            Request::ForwardKey,
            Request::FetchForwardKey { destination },
            Request::Deliver { sealed },
            Request::ForwardChunk {
                destination: crate::forward::Destination::new(
                    format!("hush://{}@relay.example:4433", "E".repeat(43))
                        .parse()
                        .unwrap(),
                )
                .unwrap(),
                sealed: SealedChunkRequest {
                    ephemeral: [0x1e; 32],
                    trailer: true,
                    sealed: [0xc4; SEALED_CHUNK_REQUEST_LEN],
                },
            },
            Request::DeliverChunk {
                sealed: SealedChunkRequest {
                    ephemeral: [0x2e; 32],
                    trailer: false,
                    sealed: [0xc5; SEALED_CHUNK_REQUEST_LEN],
                },
            },
        ]
    }

    fn all_responses() -> Vec<Response> {
        let mut v = vec![
            Response::Pong(Pong {
                min_version: 1,
                max_version: 1,
                mailbox_quota: 256,
                expiry_secs: 604_800,
            }),
            Response::Deposited(EnvelopeId(u64::MAX)),
            Response::Envelope(Delivery {
                mailbox: MailboxId([3; 32]),
                id: EnvelopeId(17),
                envelope: env(0xaa),
            }),
            Response::FetchDone {
                returned: 3,
                more: true,
            },
            Response::Deleted {
                deleted: 1,
                expired: 2,
                unknown: 3,
            },
            Response::Subscribed { count: 128 },
            Response::ForwardKey(KeyStatement {
                spki: vec![0x30; MAX_SPKI_LEN],
                key: [9; 32],
                signature: vec![0x51; MAX_SIGNATURE_LEN],
            }),
            Response::Forwarded(crate::forward::SealedAnswer(
                [0xa1; crate::forward::SEALED_ANSWER_LEN],
            )),
            Response::Error(ErrorFrame::unsupported_version()),
            Response::ChunkForwarded(SealedChunkAnswer {
                trailer: true,
                sealed: [0xa2; SEALED_CHUNK_ANSWER_LEN],
            }),
            Response::ChunkForwarded(SealedChunkAnswer {
                trailer: false,
                sealed: [0xa3; SEALED_CHUNK_ANSWER_LEN],
            }),
            Response::Error(ErrorFrame {
                code: ErrorCode::Unrecognized(0x7777),
                arg: 5,
            }),
        ];
        for c in 0..0x600u16 {
            let code = ErrorCode::from_u16(c);
            if !matches!(code, ErrorCode::Unrecognized(_)) {
                assert_eq!(code.to_u16(), c);
                v.push(Response::Error(ErrorFrame { code, arg: 1 }));
            }
        }
        v
    }

    #[test]
    fn requests_round_trip_and_are_one_size() {
        for req in all_requests() {
            let bytes = req.encode();
            assert_eq!(bytes.len(), FRAME_LEN);
            assert_eq!(decode_request(&bytes[..]).unwrap(), req);
            assert_eq!(
                decode_response(&bytes[..]),
                Err(Error::UnexpectedKind(bytes[1]))
            );
        }
    }

    #[test]
    fn responses_round_trip_and_are_one_size() {
        for resp in all_responses() {
            let bytes = resp.encode();
            assert_eq!(decode_response(&bytes[..]).unwrap(), resp);
            assert_eq!(
                decode_request(&bytes[..]),
                Err(Error::UnexpectedKind(bytes[1]))
            );
        }
    }

    #[test]
    fn error_code_table_is_consistent() {
        // Every known code is in ALL exactly once, round-trips, and has a distinct name.
        let mut names = std::collections::HashSet::new();
        for &code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_u16(code.to_u16()), code);
            assert!(names.insert(code.name()), "duplicate name {}", code.name());
            assert!(!matches!(code, ErrorCode::Unrecognized(_)));
        }
        let known = (0..=u16::MAX)
            .filter(|v| !matches!(ErrorCode::from_u16(*v), ErrorCode::Unrecognized(_)))
            .count();
        assert_eq!(known, ErrorCode::ALL.len());
        assert!(!names.contains(ErrorCode::Unrecognized(0x7777).name()));
    }

    #[test]
    fn specific_errors() {
        let good = Request::Ping.encode();
        assert_eq!(decode_request(&good[..10]), Err(Error::Truncated(10)));
        assert_eq!(decode_request(&[]), Err(Error::Truncated(0)));
        let mut long = good.to_vec();
        long.push(0);
        assert_eq!(decode_request(&long), Err(Error::Oversized(FRAME_LEN + 1)));

        // Version 1 frames (and any other) are refused with the version error.
        for v in [0, 1, 3] {
            let mut f = good.clone();
            f[0] = v;
            assert_eq!(decode_request(&f[..]), Err(Error::UnsupportedVersion(v)));
        }
        assert_eq!(
            Error::UnsupportedVersion(2).code(),
            Some(ErrorCode::UnsupportedVersion)
        );
        let mut f = good.clone();
        f[1] = 0x42;
        assert_eq!(decode_request(&f[..]), Err(Error::UnknownKind(0x42)));
        let mut f = good.clone();
        f[3] = 1;
        assert_eq!(decode_request(&f[..]), Err(Error::ReservedNotZero));
        let mut f = good.clone();
        f[FRAME_LEN - 1] = 1;
        assert_eq!(decode_request(&f[..]), Err(Error::PaddingNotZero));

        let fetch = Request::Fetch {
            after: EnvelopeId(0),
            secrets: secrets(2),
        }
        .encode();
        let mut f = fetch.clone();
        f[HEADER_LEN + 8..HEADER_LEN + 10].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(
            decode_request(&f[..]),
            Err(Error::BadCount {
                count: 0,
                max: MAX_SECRETS
            })
        );
        let mut f = fetch.clone();
        f[HEADER_LEN + 8..HEADER_LEN + 10].copy_from_slice(&129u16.to_be_bytes());
        assert!(matches!(
            decode_request(&f[..]),
            Err(Error::BadCount { count: 129, .. })
        ));
        // Claiming one secret while carrying two: the second is non-zero padding.
        let mut f = fetch.clone();
        f[HEADER_LEN + 8..HEADER_LEN + 10].copy_from_slice(&1u16.to_be_bytes());
        assert_eq!(decode_request(&f[..]), Err(Error::PaddingNotZero));

        let mut f = Response::FetchDone {
            returned: 0,
            more: false,
        }
        .encode();
        f[HEADER_LEN + 4] = 2;
        assert_eq!(decode_response(&f[..]), Err(Error::BadField("more")));
    }

    /// The frame is exactly as large as the largest request, a Forward to a 253-byte host:
    /// its body has no byte to spare (with a frame one byte larger the last byte would be
    /// padding, and this fails).
    #[test]
    fn a_forward_to_the_longest_address_fills_the_frame_exactly() {
        let host = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61),
        ]
        .join(".");
        assert_eq!(host.len(), 253);
        let destination = crate::forward::Destination::new(
            format!("hush://{}@{host}:65535", "A".repeat(43))
                .parse()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(destination.binary().len(), DESTINATION_LEN);
        let req = Request::Forward {
            destination,
            sealed: SealedRequest {
                ephemeral: [0xff; 32],
                sealed: Box::new([0xff; SEALED_REQUEST_LEN]),
            },
        };
        let f = req.encode();
        assert_eq!(
            f[FRAME_LEN - 1],
            0xff,
            "the last byte is the sealed request's"
        );
        assert_eq!(decode_request(&f[..]).unwrap(), req);
    }

    #[test]
    fn a_stamped_deposit_naming_more_work_than_anyone_can_do_is_refused() {
        let req = Request::DepositStamped {
            drop: DropAddress {
                id: MailboxId([1; 32]),
                bits: 20,
            },
            stamp: [2; STAMP_LEN],
            envelope: env(3),
        };
        let mut f = req.encode();
        assert_eq!(decode_request(&f[..]).as_ref(), Ok(&req));
        f[HEADER_LEN + 32] = MAX_STAMP_BITS + 1;
        assert_eq!(decode_request(&f[..]), Err(Error::BadField("stamp bits")));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..FRAME_LEN + 8)) {
            let _ = decode_request(&bytes);
            let _ = decode_response(&bytes);
        }

        #[test]
        fn decoding_mutated_frames_never_panics_and_is_canonical(idx in 0..FRAME_LEN, val in any::<u8>(), which in 0usize..13) {
            let mut f = all_requests()[which].encode();
            f[idx] = val;
            if let Ok(req) = decode_request(&f[..]) {
                prop_assert_eq!(&req.encode()[..], &f[..]);
            }
            let mut f = all_responses()[which].encode();
            f[idx] = val;
            if let Ok(resp) = decode_response(&f[..]) {
                prop_assert_eq!(&resp.encode()[..], &f[..]);
            }
        }
    }
}
