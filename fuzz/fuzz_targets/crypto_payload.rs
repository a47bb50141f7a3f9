//! Arbitrary bytes as decrypted payloads: each record is decoded, must fail cleanly or give
//! a fragment that encodes back to the same bytes, never panic. Also checks that `fragment`
//! output decodes to pieces that cover the content in order. (Joining pieces is the client's
//! job, in hush-core's store, where it is bounded and durable.)
//!
//! Input: records of [len u8][len bytes], until the input ends.
#![no_main]

use hush_crypto::payload::{self, Payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let (record, tail) = tail.split_at(usize::from(len).min(tail.len()));
        rest = tail;
        match Payload::decode(record) {
            Ok(Payload::Fragment(frag)) => {
                assert!(frag.encode() == record, "fragment does not round-trip");
                assert!(frag.index < frag.count && frag.count <= payload::MAX_FRAGMENTS);
            }
            Ok(Payload::MailboxMove(_)) | Err(_) => {}
        }
    }

    // The splitter covers the whole input as content, piece by piece, in order.
    // Per-fragment data from the first byte, but never more than MAX_FRAGMENTS pieces.
    let per = (1 + usize::from(data.first().copied().unwrap_or(0)))
        .max(data.len().div_ceil(usize::from(payload::MAX_FRAGMENTS)));
    let capacity = payload::FRAGMENT_OVERHEAD + per;
    let pieces = payload::fragment(7, data, capacity).expect("content fits");
    let mut joined = Vec::with_capacity(data.len());
    for (i, piece) in pieces.iter().enumerate() {
        assert!(piece.len() <= capacity);
        let Ok(Payload::Fragment(frag)) = Payload::decode(piece) else {
            panic!("fragment output does not decode");
        };
        assert!(usize::from(frag.index) == i && usize::from(frag.count) == pieces.len());
        joined.extend_from_slice(&frag.data);
    }
    assert!(joined == data, "fragments do not cover the content");
});
