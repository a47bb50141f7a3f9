//! Tampering with valid envelopes: the fuzzer XORs bytes into the 81-byte header region
//! (nonce 24, encrypted header 41, tag 16) and optionally flips body bytes. Decryption must
//! fail cleanly or succeed, never panic; an untouched envelope must still decrypt, and a
//! failed decryption must leave the session able to decrypt the original.
//!
//! Input: [selector] [81 bytes XORed into the header region] [(offset u16, xor u8)...].
#![no_main]

mod crypto_common;

use hush_crypto::{ENVELOPE_LEN, Envelope};
use libfuzzer_sys::fuzz_target;

const HEADER_REGION_LEN: usize = 24 + 41 + 16;

fuzz_target!(|data: &[u8]| {
    let fx = crypto_common::fixture();
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let cases: Vec<_> = fx
        .receivers()
        .into_iter()
        .flat_map(|r| r.valid.iter().map(move |e| (&r.session, e)))
        .collect();
    let (session, original) = cases[usize::from(selector) % cases.len()];

    let (header_xor, body_flips) = rest.split_at(rest.len().min(HEADER_REGION_LEN));
    let mut bytes = *original.as_bytes();
    for (b, x) in bytes.iter_mut().zip(header_xor) {
        *b ^= x;
    }
    for flip in body_flips.chunks_exact(3) {
        let offset = usize::from(u16::from_be_bytes([flip[0], flip[1]]));
        let at = HEADER_REGION_LEN + offset % (ENVELOPE_LEN - HEADER_REGION_LEN);
        bytes[at] ^= flip[2];
    }
    let tampered = Envelope::from_slice(&bytes).unwrap();

    let mut rng = crypto_common::rng(2);
    let mut s = session.clone();
    match s.decrypt(&tampered, &mut rng) {
        Ok(_) => assert!(&tampered == original, "a tampered envelope decrypted"),
        Err(_) => {
            // Nothing changed: the original still decrypts.
            s.decrypt(original, &mut rng)
                .expect("a failed decryption changed the session");
        }
    }
});
