//! Whole frames on QUIC streams, for both ends of a hush connection.
//!
//! Owns: writing one encoded frame, reading one response frame at a time until the stream
//! ends (client), and reading the single request frame of a stream (relay), with the rule
//! that a request stream carries exactly one frame and then ends.
//! Must never decode a partial frame as a whole one, and never keep a request frame (which
//! may hold fetch secrets) in memory after it has been used: [`read_request`] returns it in a
//! wiping buffer.

use hush_proto::{FRAME_LEN, Response, decode_response};
use quinn::{RecvStream, SendStream};
use zeroize::Zeroizing;

use crate::Error;

/// Writes one encoded frame.
///
/// # Errors
/// [`Error::Stream`] if the stream or the connection failed.
pub async fn write_frame(send: &mut SendStream, frame: &[u8; FRAME_LEN]) -> Result<(), Error> {
    send.write_all(frame).await.map_err(Error::stream)
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
async fn fill(recv: &mut RecvStream, buf: &mut [u8]) -> Result<usize, Error> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|r| !r.is_empty()) {
        match recv.read(rest).await.map_err(Error::stream)? {
            Some(n) => filled += n,
            None => break,
        }
    }
    Ok(filled)
}

/// Reads and decodes one whole response frame, or `None` if the stream ends cleanly before
/// its first byte.
///
/// # Errors
/// [`Error::Protocol`] if the stream ends inside a frame or the frame does not decode,
/// [`Error::Stream`] if the stream failed.
pub async fn read_response(recv: &mut RecvStream) -> Result<Option<Response>, Error> {
    let mut buf = vec![0u8; FRAME_LEN];
    match fill(recv, &mut buf).await? {
        0 => Ok(None),
        FRAME_LEN => decode_response(&buf).map(Some).map_err(Error::Protocol),
        n => Err(Error::Protocol(hush_proto::Error::Truncated(n))),
    }
}

/// Reads the request of a stream: every byte up to the end of the stream, which must be at
/// most one frame. A shorter read is returned as is (decoding rejects it as truncated); the
/// caller bounds the wait. For a request kind that carries a trailer (a chunk,
/// [`hush_proto::chunk::request_trailer_len`]) use [`read_request_frame`] and [`read_trailer`].
///
/// # Errors
/// [`Error::Protocol`] with [`hush_proto::Error::Oversized`] if more than one frame's worth
/// arrives (reading stops there), [`Error::Stream`] if the stream failed.
pub async fn read_request(recv: &mut RecvStream) -> Result<Zeroizing<Vec<u8>>, Error> {
    let buf = read_request_frame(recv).await?;
    if buf.len() == FRAME_LEN {
        read_trailer(recv, 0).await?;
    }
    Ok(buf)
}

/// Reads the first frame of a request stream: [`FRAME_LEN`] bytes, or fewer if the stream
/// ends first (decoding rejects them as truncated). What follows is left on the stream.
///
/// # Errors
/// [`Error::Stream`] if the stream failed.
pub async fn read_request_frame(recv: &mut RecvStream) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut buf = Zeroizing::new(vec![0u8; FRAME_LEN]);
    let n = fill(recv, &mut buf).await?;
    buf.truncate(n);
    Ok(buf)
}

/// Reads the rest of a stream after its first frame, which must be exactly `len` bytes and
/// then the end of the stream.
///
/// # Errors
/// [`Error::Protocol`] with [`hush_proto::Error::Oversized`] (total stream bytes so far) if
/// more than `len` bytes arrive, or [`hush_proto::Error::Truncated`] if fewer;
/// [`Error::Stream`] if the stream failed.
pub async fn read_trailer(recv: &mut RecvStream, len: usize) -> Result<Vec<u8>, Error> {
    // One byte more tells an oversized trailer from an exact one.
    let mut buf = vec![0u8; len + 1];
    let n = fill(recv, &mut buf).await?;
    if n > len {
        return Err(Error::Protocol(hush_proto::Error::Oversized(FRAME_LEN + n)));
    }
    if n < len {
        return Err(Error::Protocol(hush_proto::Error::Truncated(FRAME_LEN + n)));
    }
    buf.truncate(n);
    Ok(buf)
}

/// Reads exactly `len` raw bytes that follow a response frame (a chunk after `Chunk`).
///
/// # Errors
/// [`Error::Protocol`] with [`hush_proto::Error::Truncated`] if the stream ends first,
/// [`Error::Stream`] if it failed.
pub async fn read_exact_raw(recv: &mut RecvStream, buf: &mut [u8]) -> Result<(), Error> {
    let n = fill(recv, buf).await?;
    if n < buf.len() {
        return Err(Error::Protocol(hush_proto::Error::Truncated(FRAME_LEN + n)));
    }
    Ok(())
}
