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
/// caller bounds the wait.
///
/// # Errors
/// [`Error::Protocol`] with [`hush_proto::Error::Oversized`] if more than one frame's worth
/// arrives (reading stops there), [`Error::Stream`] if the stream failed.
pub async fn read_request(recv: &mut RecvStream) -> Result<Zeroizing<Vec<u8>>, Error> {
    // One byte more than a frame tells an oversized request from an exact one.
    let mut buf = Zeroizing::new(vec![0u8; FRAME_LEN + 1]);
    let n = fill(recv, &mut buf).await?;
    if n > FRAME_LEN {
        return Err(Error::Protocol(hush_proto::Error::Oversized(n)));
    }
    buf.truncate(n);
    Ok(buf)
}
