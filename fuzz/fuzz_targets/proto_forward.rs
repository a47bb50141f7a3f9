//! hush-proto private routing (PROTOCOL.md II.4.2), as a destination relay meets it: any
//! bytes as a sealed request (ephemeral key and ciphertext) opened with a fixed forwarding
//! key must fail cleanly or open to an inner request that re-encodes to its plaintext; any
//! bytes as a key statement must verify or be refused, never panic. The same for a sealed
//! chunk request (PROTOCOL.md II.4.4): ephemeral key, trailer flag and ciphertext, and, if
//! it opens as a put, the rest of the input as its sealed chunk.
#![no_main]

use hush_proto::forward::{
    self, ForwardSecret, KeyStatement, SEALED_REQUEST_LEN, SealedRequest, X25519_LEN,
};
use hush_proto::forward_chunk::{self, SEALED_CHUNK_REQUEST_LEN, SealedChunkRequest};
use hush_proto::SpkiPin;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let secret = ForwardSecret::from_bytes([0x42; 32]);
    let pin = SpkiPin([7; 32]);
    if data.len() >= X25519_LEN + SEALED_REQUEST_LEN {
        let mut sealed = Box::new([0u8; SEALED_REQUEST_LEN]);
        sealed.copy_from_slice(&data[X25519_LEN..X25519_LEN + SEALED_REQUEST_LEN]);
        let mut ephemeral = [0u8; X25519_LEN];
        ephemeral.copy_from_slice(&data[..X25519_LEN]);
        if let Ok((inner, _)) = forward::open_request(&secret, &pin, &SealedRequest { ephemeral, sealed }) {
            let _ = inner.encode().expect("an opened inner request encodes");
        }
    }
    if data.len() >= X25519_LEN + 1 + SEALED_CHUNK_REQUEST_LEN {
        let mut ephemeral = [0u8; X25519_LEN];
        ephemeral.copy_from_slice(&data[..X25519_LEN]);
        let mut sealed = [0u8; SEALED_CHUNK_REQUEST_LEN];
        let at = X25519_LEN + 1;
        sealed.copy_from_slice(&data[at..at + SEALED_CHUNK_REQUEST_LEN]);
        let request = SealedChunkRequest {
            ephemeral,
            trailer: data[X25519_LEN] & 1 == 1,
            sealed,
        };
        if let Ok(opened) = forward_chunk::open_chunk_request(&secret, &pin, &request) {
            let _ = opened.open_trailer(data[at + SEALED_CHUNK_REQUEST_LEN..].to_vec());
        }
    }
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let (spki, rest) = data.split_at(split);
    let statement = KeyStatement {
        spki: spki.to_vec(),
        key: [1; X25519_LEN],
        signature: rest.to_vec(),
    };
    let _ = statement.verify(&pin);
    let _ = forward::InnerRequest::decode(data);
});
