//! The stream layer of the TCP transport: many request streams on one TLS byte stream.
//!
//! Owns: the fixed-size [`CELL_LEN`] cell (encode and decode, canonical), the stream and
//! connection codes, and [`StreamTable`], the relay-side bookkeeping that turns a sequence of
//! decoded cells into stream events (open, data, end, reset, stop) or a connection error.
//! QUIC gives hush one request per bidirectional stream (docs/PROTOCOL.md II.1); this module
//! gives TCP the same semantics with cells, so the relay's request handling is shared.
//! Must never panic on any input, never buffer more than one frame and a byte per stream
//! (the caller enforces it with [`STREAM_READ_LIMIT`]), and never accept two byte strings
//! as the same cell.
//!
//! Layout (normative table in docs/PROTOCOL.md II.1.2): byte 0 kind, byte 1 flags, bytes 2..4
//! length, bytes 4..8 stream id, bytes 8..12 code, then a [`FRAME_LEN`]-byte payload whose
//! first `length` bytes are stream data and whose rest is zero.

use std::collections::BTreeMap;

use crate::{Error, FRAME_LEN};

/// Size of a cell header.
pub const CELL_HEADER_LEN: usize = 12;
/// Size of every cell on a TCP connection, in both directions.
pub const CELL_LEN: usize = CELL_HEADER_LEN + FRAME_LEN;
/// Bytes of one stream a reader keeps: one frame, and one byte more to tell an oversized
/// request from an exact one (as QUIC's reader does).
pub const STREAM_READ_LIMIT: usize = FRAME_LEN + 1;

/// Flag bit of a DATA cell: the sender's side of the stream ends after this cell.
const FLAG_FIN: u8 = 0x01;

mod kind {
    pub const PAD: u8 = 0x00;
    pub const DATA: u8 = 0x01;
    pub const RESET: u8 = 0x02;
    pub const STOP: u8 = 0x03;
    pub const CLOSE: u8 = 0x04;
}

/// A stream id: 1, 2, 3, ... in the order the client opens streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub u32);

/// Codes carried by RESET and STOP cells.
pub mod stream_code {
    /// The sender cancels (a subscription the client no longer wants, a relay that stops
    /// answering a stream after STOP).
    pub const CANCEL: u32 = 0x0;
    /// The relay did not process the stream: the connection has its most open streams.
    /// Nothing of the request was acted on; retry later.
    pub const REFUSED: u32 = 0x1;
}

/// Codes carried by CLOSE cells (the first two are QUIC's application close codes).
pub mod close_code {
    /// Normal close.
    pub const NORMAL: u32 = 0x0;
    /// The relay is shutting down; reconnect later.
    pub const SHUTTING_DOWN: u32 = 0x2;
    /// The connection was idle and its slot went to a newcomer; reconnect when needed.
    pub const EVICTED: u32 = 0x3;
    /// A cell did not decode.
    pub const MALFORMED_CELL: u32 = 0x10;
    /// A cell broke the stream rules (an id reused or skipped, data after FIN, a stream
    /// cell for stream 0).
    pub const STREAM_STATE: u32 = 0x11;
    /// More refused streams were left open than the relay tracks.
    pub const TOO_MANY_STREAMS: u32 = 0x12;
}

/// One decoded cell. Data borrows from the cell it was decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell<'a> {
    /// Nothing: keep-alive. Ignored on receipt.
    Pad,
    /// Stream bytes; `fin` ends the sender's side of the stream.
    Data {
        /// The stream.
        stream: StreamId,
        /// Up to [`FRAME_LEN`] bytes of the stream.
        bytes: &'a [u8],
        /// Last cell of the sender's side.
        fin: bool,
    },
    /// The sender abandons its side of the stream (QUIC RESET_STREAM).
    Reset {
        /// The stream.
        stream: StreamId,
        /// A [`stream_code`].
        code: u32,
    },
    /// The sender will not read the stream any more (QUIC STOP_SENDING).
    Stop {
        /// The stream.
        stream: StreamId,
        /// A [`stream_code`].
        code: u32,
    },
    /// The connection ends; nothing follows.
    Close {
        /// A [`close_code`].
        code: u32,
    },
}

fn cell_error(rule: &'static str) -> Error {
    Error::BadCell(rule)
}

impl Cell<'_> {
    /// Encodes into exactly [`CELL_LEN`] bytes.
    ///
    /// # Errors
    /// [`Error::BadCell`] if the value breaks a rule that [`Cell::decode`] enforces (stream 0
    /// for a stream cell, more than [`FRAME_LEN`] bytes, empty data without FIN), so that
    /// nothing is sent that the peer must reject.
    pub fn encode(&self) -> Result<Box<[u8; CELL_LEN]>, Error> {
        let mut out = Box::new([0u8; CELL_LEN]);
        let (k, flags, len, stream, code) = match *self {
            Cell::Pad => (kind::PAD, 0, 0, 0, 0),
            Cell::Data { stream, bytes, fin } => {
                if bytes.len() > FRAME_LEN {
                    return Err(cell_error("data longer than a frame"));
                }
                if bytes.is_empty() && !fin {
                    return Err(cell_error("empty data without FIN"));
                }
                let payload = out
                    .get_mut(CELL_HEADER_LEN..CELL_HEADER_LEN + bytes.len())
                    .ok_or(cell_error("data longer than a frame"))?;
                payload.copy_from_slice(bytes);
                let flags = if fin { FLAG_FIN } else { 0 };
                (kind::DATA, flags, bytes.len(), stream.0, 0)
            }
            Cell::Reset { stream, code } => (kind::RESET, 0, 0, stream.0, code),
            Cell::Stop { stream, code } => (kind::STOP, 0, 0, stream.0, code),
            Cell::Close { code } => (kind::CLOSE, 0, 0, 0, code),
        };
        if matches!(k, kind::DATA | kind::RESET | kind::STOP) && stream == 0 {
            return Err(cell_error("stream cell for stream 0"));
        }
        out[0] = k;
        out[1] = flags;
        // At most FRAME_LEN (checked above), which fits in a u16.
        let len = u16::try_from(len).map_err(|_| cell_error("data longer than a frame"))?;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        out[4..8].copy_from_slice(&stream.to_be_bytes());
        out[8..12].copy_from_slice(&code.to_be_bytes());
        Ok(out)
    }
}

/// Decodes one cell.
///
/// # Errors
/// [`Error::Truncated`]/[`Error::Oversized`] if `bytes` is not [`CELL_LEN`] long;
/// [`Error::BadCell`] naming the rule for an unknown kind, flags other than FIN on DATA,
/// a length above [`FRAME_LEN`], empty data without FIN, a stream cell for stream 0, a
/// non-zero stream, length or code where the kind has none, or non-zero padding.
pub fn decode_cell(bytes: &[u8]) -> Result<Cell<'_>, Error> {
    if bytes.len() < CELL_LEN {
        return Err(Error::Truncated(bytes.len()));
    }
    if bytes.len() > CELL_LEN {
        return Err(Error::Oversized(bytes.len()));
    }
    let (header, payload) = bytes.split_at(CELL_HEADER_LEN);
    let k = header[0];
    let flags = header[1];
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let stream = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let code = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    if k > kind::CLOSE {
        return Err(cell_error("unknown cell kind"));
    }
    if k == kind::DATA {
        if flags & !FLAG_FIN != 0 {
            return Err(cell_error("unknown flag"));
        }
        if len > FRAME_LEN {
            return Err(cell_error("length above a frame"));
        }
    } else {
        if flags != 0 {
            return Err(cell_error("flags on a cell without data"));
        }
        if len != 0 {
            return Err(cell_error("length on a cell without data"));
        }
    }
    let (data, padding) = payload.split_at(len);
    if padding.iter().any(|&b| b != 0) {
        return Err(cell_error("padding is not zero"));
    }
    let is_stream_cell = matches!(k, kind::DATA | kind::RESET | kind::STOP);
    if is_stream_cell && stream == 0 {
        return Err(cell_error("stream cell for stream 0"));
    }
    if !is_stream_cell && stream != 0 {
        return Err(cell_error("connection cell with a stream id"));
    }
    let stream = StreamId(stream);
    Ok(match k {
        kind::PAD if code != 0 => return Err(cell_error("code on a pad cell")),
        kind::PAD => Cell::Pad,
        kind::DATA if code != 0 => return Err(cell_error("code on a data cell")),
        kind::DATA if len == 0 && flags & FLAG_FIN == 0 => {
            return Err(cell_error("empty data without FIN"));
        }
        kind::DATA => Cell::Data {
            stream,
            bytes: data,
            fin: flags & FLAG_FIN != 0,
        },
        kind::RESET => Cell::Reset { stream, code },
        kind::STOP => Cell::Stop { stream, code },
        _ => Cell::Close { code },
    })
}

/// What one received cell means for the relay's streams.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamEvent<'a> {
    /// Nothing to do (padding, or a cell for a stream whose reading already ended).
    Nothing,
    /// A new stream; its first bytes follow as [`StreamEvent::Data`] in the same event.
    Opened {
        /// The stream.
        stream: StreamId,
        /// Its first bytes.
        bytes: &'a [u8],
        /// Whether the client's side already ended.
        fin: bool,
    },
    /// More bytes of an open stream.
    Data {
        /// The stream.
        stream: StreamId,
        /// The bytes.
        bytes: &'a [u8],
        /// Whether the client's side ended.
        fin: bool,
    },
    /// The client abandoned its side of the stream.
    Reset(StreamId),
    /// The client no longer reads the stream: stop sending on it.
    Stopped(StreamId),
    /// A new stream beyond the concurrent limit: answer it with RESET and STOP
    /// ([`stream_code::REFUSED`]); nothing of it reaches request handling.
    Refused(StreamId),
    /// The client closed the connection with this code.
    Closed(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    /// The client's side has ended (FIN or RESET): no more DATA may come.
    client_done: bool,
    /// The relay's side has ended (finished or reset).
    relay_done: bool,
    /// Refused: never served; its data is discarded until the client's side ends.
    refused: bool,
    /// The relay stopped reading it: later data is discarded.
    discard: bool,
}

/// The relay's view of the streams of one TCP connection: which ids are open, which side of
/// each has ended, and the concurrent limit. Sans-IO: the caller feeds decoded cells and
/// reports when its own side of a stream ended.
#[derive(Debug)]
pub struct StreamTable {
    /// The id the next new stream must have (a `u64` so that after stream `u32::MAX` no id
    /// is the next one).
    next: u64,
    max_open: usize,
    open: BTreeMap<StreamId, Entry>,
}

impl StreamTable {
    /// A table that serves at most `max_open` streams at once (refused streams whose client
    /// side is still open count apart, up to the same number).
    #[must_use]
    pub fn new(max_open: usize) -> Self {
        Self {
            next: 1,
            max_open,
            open: BTreeMap::new(),
        }
    }

    /// Streams being served (not refused) whose two sides have not both ended.
    #[must_use]
    pub fn served(&self) -> usize {
        self.open.values().filter(|e| !e.refused).count()
    }

    fn refused(&self) -> usize {
        self.open.values().filter(|e| e.refused).count()
    }

    fn forget_if_done(&mut self, id: StreamId) {
        if let Some(e) = self.open.get(&id)
            && e.client_done
            && e.relay_done
        {
            self.open.remove(&id);
        }
    }

    /// Handles one cell from the client.
    ///
    /// # Errors
    /// The [`close_code`] to close the connection with: [`close_code::STREAM_STATE`] for
    /// DATA on an id that is neither the next one nor open, or after that stream's FIN or
    /// RESET; [`close_code::TOO_MANY_STREAMS`] when refused streams left open exceed the
    /// limit.
    pub fn handle_cell<'a>(&mut self, cell: Cell<'a>) -> Result<StreamEvent<'a>, u32> {
        match cell {
            Cell::Pad => Ok(StreamEvent::Nothing),
            Cell::Close { code } => Ok(StreamEvent::Closed(code)),
            Cell::Data { stream, bytes, fin } => {
                if let Some(e) = self.open.get_mut(&stream) {
                    if e.client_done {
                        return Err(close_code::STREAM_STATE);
                    }
                    e.client_done = fin;
                    let discard = e.refused || e.discard;
                    self.forget_if_done(stream);
                    if discard {
                        return Ok(StreamEvent::Nothing);
                    }
                    return Ok(StreamEvent::Data { stream, bytes, fin });
                }
                if u64::from(stream.0) != self.next {
                    // Below: a stream that ended on both sides (reused); above: skipped ids.
                    return Err(close_code::STREAM_STATE);
                }
                self.next += 1;
                if self.served() >= self.max_open {
                    if !fin {
                        if self.refused() >= self.max_open {
                            return Err(close_code::TOO_MANY_STREAMS);
                        }
                        let entry = Entry {
                            client_done: false,
                            relay_done: true,
                            refused: true,
                            discard: true,
                        };
                        self.open.insert(stream, entry);
                    }
                    return Ok(StreamEvent::Refused(stream));
                }
                let entry = Entry {
                    client_done: fin,
                    relay_done: false,
                    refused: false,
                    discard: false,
                };
                self.open.insert(stream, entry);
                Ok(StreamEvent::Opened { stream, bytes, fin })
            }
            Cell::Reset { stream, .. } => {
                let Some(e) = self.open.get_mut(&stream) else {
                    return self.late(stream);
                };
                let was_done = std::mem::replace(&mut e.client_done, true);
                let refused = e.refused;
                self.forget_if_done(stream);
                if was_done || refused {
                    return Ok(StreamEvent::Nothing);
                }
                Ok(StreamEvent::Reset(stream))
            }
            Cell::Stop { stream, .. } => match self.open.get(&stream) {
                Some(e) if !e.relay_done => Ok(StreamEvent::Stopped(stream)),
                Some(_) => Ok(StreamEvent::Nothing),
                None => self.late(stream),
            },
        }
    }

    /// A RESET or STOP for an id that is not open: fine for a stream that existed (the two
    /// sides crossed), a violation for one never opened.
    fn late(&self, stream: StreamId) -> Result<StreamEvent<'static>, u32> {
        if u64::from(stream.0) < self.next {
            Ok(StreamEvent::Nothing)
        } else {
            Err(close_code::STREAM_STATE)
        }
    }

    /// The relay's side of `stream` ended (it sent FIN or RESET); the stream is forgotten
    /// once the client's side has ended too.
    pub fn relay_done(&mut self, stream: StreamId) {
        if let Some(e) = self.open.get_mut(&stream) {
            e.relay_done = true;
        }
        self.forget_if_done(stream);
    }

    /// The relay stopped reading `stream` (it sent STOP): later DATA is discarded, as for a
    /// stream whose client side ended, without closing the connection.
    pub fn relay_stopped_reading(&mut self, stream: StreamId) {
        if let Some(e) = self.open.get_mut(&stream) {
            e.discard = true;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

    use super::*;
    use proptest::prelude::*;

    fn data(stream: u32, bytes: &[u8], fin: bool) -> Cell<'_> {
        Cell::Data {
            stream: StreamId(stream),
            bytes,
            fin,
        }
    }

    #[test]
    fn cells_round_trip_with_the_world_s_text() {
        let long = "长".repeat(FRAME_LEN / 3);
        let texts: [&[u8]; 5] = [
            "مرحبا بالعالم".as_bytes(),
            "你好，世界".as_bytes(),
            "🕵️‍♀️🔐📨".as_bytes(),
            b"x",
            long.as_bytes(),
        ];
        for (i, t) in texts.iter().enumerate() {
            let id = u32::try_from(i).unwrap() + 1;
            for fin in [false, true] {
                let c = data(id, t, fin);
                let enc = c.encode().unwrap();
                assert_eq!(enc.len(), CELL_LEN);
                assert_eq!(decode_cell(&enc[..]).unwrap(), c);
            }
        }
        for c in [
            Cell::Pad,
            data(u32::MAX, b"", true),
            Cell::Reset {
                stream: StreamId(9),
                code: stream_code::REFUSED,
            },
            Cell::Stop {
                stream: StreamId(9),
                code: stream_code::CANCEL,
            },
            Cell::Close {
                code: close_code::SHUTTING_DOWN,
            },
        ] {
            assert_eq!(decode_cell(&c.encode().unwrap()[..]).unwrap(), c);
        }
    }

    #[test]
    fn encoding_refuses_what_decoding_rejects() {
        let big = vec![1u8; FRAME_LEN + 1];
        assert!(data(1, &big, true).encode().is_err());
        assert!(data(1, b"", false).encode().is_err());
        assert!(data(0, b"a", true).encode().is_err());
        let stop0 = Cell::Stop {
            stream: StreamId(0),
            code: 0,
        };
        assert!(stop0.encode().is_err());
    }

    proptest! {
        #[test]
        fn decoding_never_panics_and_accepted_cells_re_encode_identically(
            k in 0u8..6,
            flags in 0u8..3,
            len in prop_oneof![Just(0usize), Just(1), 2usize..40, Just(FRAME_LEN), Just(FRAME_LEN + 1)],
            stream in 0u32..3,
            code in 0u32..2,
            fill in any::<u8>(),
            tail in 0usize..4,
        ) {
            // Headers near the valid ones, data of the stated length, then the padding or
            // the length disturbed in a few ways.
            let mut cell = vec![0u8; CELL_LEN];
            cell[0] = k;
            cell[1] = flags;
            cell[2..4].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
            cell[4..8].copy_from_slice(&stream.to_be_bytes());
            cell[8..12].copy_from_slice(&code.to_be_bytes());
            let end = (CELL_HEADER_LEN + len).min(CELL_LEN);
            cell[CELL_HEADER_LEN..end].fill(fill);
            match tail {
                0 => {}
                1 => { cell.pop(); }
                2 => cell.push(0),
                _ => { let n = cell.len(); cell[n - 1] = 1; }
            }
            if let Ok(c) = decode_cell(&cell) {
                prop_assert_eq!(&c.encode().unwrap()[..], &cell[..]);
            }
        }

        #[test]
        fn one_request_per_stream_in_any_chunking_arrives_whole(
            cuts in proptest::collection::vec(1usize..FRAME_LEN, 0..4),
            n in 1u32..6,
        ) {
            // n streams, each a frame cut into chunks, interleaved round-robin: each stream
            // opens once, gets its bytes in order and ends with FIN.
            let frame: Vec<u8> = (0..FRAME_LEN).map(|i| u8::try_from(i % 251).unwrap()).collect();
            let mut bounds: Vec<usize> = cuts.clone();
            bounds.push(0);
            bounds.push(FRAME_LEN);
            bounds.sort_unstable();
            bounds.dedup();
            let chunks: Vec<&[u8]> = bounds.windows(2).map(|w| &frame[w[0]..w[1]]).collect();
            let mut t = StreamTable::new(100);
            let mut got: BTreeMap<u32, (Vec<u8>, bool)> = BTreeMap::new();
            for (ci, chunk) in chunks.iter().enumerate() {
                for s in 1..=n {
                    let fin = ci + 1 == chunks.len();
                    let cell = data(s, chunk, fin);
                    let enc = cell.encode().unwrap();
                    let dec = decode_cell(&enc[..]).unwrap();
                    match t.handle_cell(dec).unwrap() {
                        StreamEvent::Opened { stream, bytes, fin } => {
                            prop_assert_eq!(ci, 0);
                            prop_assert!(got.insert(stream.0, (bytes.to_vec(), fin)).is_none());
                        }
                        StreamEvent::Data { stream, bytes, fin } => {
                            let e = got.get_mut(&stream.0).unwrap();
                            prop_assert!(!e.1);
                            e.0.extend_from_slice(bytes);
                            e.1 = fin;
                        }
                        other => prop_assert!(false, "unexpected {:?}", other),
                    }
                }
            }
            prop_assert_eq!(got.len(), usize::try_from(n).unwrap());
            for (s, (bytes, fin)) in &got {
                prop_assert!(*fin);
                prop_assert_eq!(bytes, &frame);
                t.relay_done(StreamId(*s));
            }
            prop_assert_eq!(t.served(), 0);
        }
    }

    #[test]
    fn a_reused_or_skipped_id_closes_the_connection() {
        let mut t = StreamTable::new(4);
        assert!(matches!(
            t.handle_cell(data(1, b"a", true)),
            Ok(StreamEvent::Opened { .. })
        ));
        // Data after FIN on an open stream.
        assert_eq!(
            t.handle_cell(data(1, b"b", true)),
            Err(close_code::STREAM_STATE)
        );
        t.relay_done(StreamId(1));
        // Stream 1 ended on both sides: opening it again is a reuse.
        assert_eq!(
            t.handle_cell(data(1, b"c", true)),
            Err(close_code::STREAM_STATE)
        );
        // Skipping id 2.
        assert_eq!(
            t.handle_cell(data(3, b"c", true)),
            Err(close_code::STREAM_STATE)
        );
        // A STOP or RESET for a stream that existed is a crossing, not an error.
        assert_eq!(
            t.handle_cell(Cell::Stop {
                stream: StreamId(1),
                code: 0
            }),
            Ok(StreamEvent::Nothing)
        );
        // For one never opened it is.
        assert_eq!(
            t.handle_cell(Cell::Reset {
                stream: StreamId(7),
                code: 0
            }),
            Err(close_code::STREAM_STATE)
        );
    }

    #[test]
    fn streams_beyond_the_limit_are_refused_and_the_others_served() {
        let mut t = StreamTable::new(2);
        for s in 1..=2 {
            assert!(matches!(
                t.handle_cell(data(s, b"q", false)),
                Ok(StreamEvent::Opened { .. })
            ));
        }
        // The third is refused; its later data is discarded, its FIN forgets it.
        assert_eq!(
            t.handle_cell(data(3, b"q", false)),
            Ok(StreamEvent::Refused(StreamId(3)))
        );
        assert_eq!(t.handle_cell(data(3, b"r", true)), Ok(StreamEvent::Nothing));
        // Refused with FIN in its first cell: nothing to track.
        assert_eq!(
            t.handle_cell(data(4, b"q", true)),
            Ok(StreamEvent::Refused(StreamId(4)))
        );
        // Stream 1 still works.
        assert!(matches!(
            t.handle_cell(data(1, b"z", true)),
            Ok(StreamEvent::Data { fin: true, .. })
        ));
        t.relay_done(StreamId(1));
        assert!(matches!(
            t.handle_cell(data(5, b"q", true)),
            Ok(StreamEvent::Opened { .. })
        ));
        // Refused streams left open are bounded too.
        let mut t = StreamTable::new(1);
        assert!(t.handle_cell(data(1, b"q", false)).is_ok());
        assert_eq!(
            t.handle_cell(data(2, b"q", false)),
            Ok(StreamEvent::Refused(StreamId(2)))
        );
        assert_eq!(
            t.handle_cell(data(3, b"q", false)),
            Err(close_code::TOO_MANY_STREAMS)
        );
    }

    #[test]
    fn a_subscription_stays_open_until_stopped() {
        let mut t = StreamTable::new(4);
        assert!(t.handle_cell(data(1, b"sub", true)).is_ok());
        // The client side ended with the request; the relay keeps pushing until STOP.
        assert_eq!(t.served(), 1);
        assert_eq!(
            t.handle_cell(Cell::Stop {
                stream: StreamId(1),
                code: stream_code::CANCEL
            }),
            Ok(StreamEvent::Stopped(StreamId(1)))
        );
        t.relay_done(StreamId(1));
        assert_eq!(t.served(), 0);
        // A second STOP crossing the relay's RESET is harmless.
        assert_eq!(
            t.handle_cell(Cell::Stop {
                stream: StreamId(1),
                code: 0
            }),
            Ok(StreamEvent::Nothing)
        );
    }

    #[test]
    fn the_last_stream_id_opens_and_then_none() {
        let mut t = StreamTable::new(4);
        t.next = u64::from(u32::MAX);
        assert!(matches!(
            t.handle_cell(data(u32::MAX, b"q", true)),
            Ok(StreamEvent::Opened { .. })
        ));
        t.relay_done(StreamId(u32::MAX));
        for id in [1, u32::MAX] {
            assert_eq!(
                t.handle_cell(data(id, b"q", true)),
                Err(close_code::STREAM_STATE)
            );
        }
    }

    #[test]
    fn a_client_reset_ends_its_side_once() {
        let mut t = StreamTable::new(4);
        assert!(t.handle_cell(data(1, b"half", false)).is_ok());
        let reset = Cell::Reset {
            stream: StreamId(1),
            code: 0,
        };
        assert_eq!(t.handle_cell(reset), Ok(StreamEvent::Reset(StreamId(1))));
        assert_eq!(t.handle_cell(reset), Ok(StreamEvent::Nothing));
        assert_eq!(
            t.handle_cell(data(1, b"more", true)),
            Err(close_code::STREAM_STATE)
        );
    }
}
