//! Arbitrary bytes as decrypted payloads: each record is decoded and its fragments fed to
//! one `Reassembler`, which must fail cleanly or return contents, never panic or grow
//! without bound. Also checks that `fragment` output reassembles to its content.
//!
//! Input: records of [len u8][len bytes], until the input ends.
#![no_main]

use hush_crypto::payload::{self, Payload, Reassembler};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reassembler = Reassembler::new();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let (record, tail) = tail.split_at(usize::from(len).min(tail.len()));
        rest = tail;
        match Payload::decode(record) {
            Ok(Payload::Fragment(frag)) => {
                assert!(frag.encode() == record, "fragment does not round-trip");
                let _ = reassembler.handle_fragment(frag);
            }
            Ok(Payload::MailboxMove(_)) | Err(_) => {}
        }
    }

    // The splitter and the joiner agree on the whole input as content.
    // Per-fragment data from the first byte, but never more than MAX_FRAGMENTS pieces.
    let per = (1 + usize::from(data.first().copied().unwrap_or(0)))
        .max(data.len().div_ceil(usize::from(payload::MAX_FRAGMENTS)));
    let capacity = payload::FRAGMENT_OVERHEAD + per;
    let pieces = payload::fragment(7, data, capacity).expect("content fits");
    let mut joiner = Reassembler::new();
    let mut out = None;
    for piece in pieces.iter().rev() {
        assert!(piece.len() <= capacity);
        let Ok(Payload::Fragment(frag)) = Payload::decode(piece) else {
            panic!("fragment output does not decode");
        };
        if let Some(content) = joiner.handle_fragment(frag).expect("valid fragment") {
            assert!(out.is_none(), "content completed twice");
            out = Some(content);
        }
    }
    assert!(out.as_deref() == Some(data), "fragments do not reassemble");
});
