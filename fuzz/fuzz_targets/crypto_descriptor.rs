//! File descriptor parsing (docs/PROTOCOL.md 7a), what a contact's file message carries:
//! arbitrary input must parse or be refused with a named fault, never panic; a parsed
//! descriptor must pass its own checks (name 1..=255 bytes, chunk count from the size, size
//! at most 64 GiB) and re-encode to exactly the bytes it was read from.
#![no_main]

use hush_crypto::descriptor::{FileDescriptor, MAX_FILE_LEN, MAX_NAME_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(d) = FileDescriptor::decode(data) else {
        return;
    };
    assert!(!d.name.is_empty() && d.name.len() <= MAX_NAME_LEN);
    assert!(d.size <= MAX_FILE_LEN);
    assert_eq!(
        u64::from(d.chunk_count()),
        hush_crypto::file::chunk_count(d.size)
    );
    assert_eq!(d.encode().ok().as_deref(), Some(data));
    // Every chunk's plaintext length is within one chunk and they add up to the size.
    let last = d.chunk_count() - 1;
    assert!(d.chunk_plain_len(last) <= hush_crypto::file::CHUNK_PAYLOAD);
    assert_eq!(
        u64::from(last) * hush_crypto::file::CHUNK_PAYLOAD as u64
            + d.chunk_plain_len(last) as u64,
        d.size
    );
});
