//! Writes the committed seed corpora of the `crypto_*` fuzz targets into `fuzz/seeds/`:
//! real envelopes, a real link and real stored states from the shared fixture, so each
//! fuzzer starts from inputs that pass parsing and authentication.
//!
//! Regenerate (deterministic) after a format change: `cd fuzz && cargo run --example crypto_seeds`.

#[path = "../fuzz_targets/crypto_common/mod.rs"]
mod crypto_common;

use std::fs;
use std::path::Path;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let fx = crypto_common::fixture();

    for (i, env) in fx.all_envelopes().into_iter().enumerate() {
        write("crypto_envelope", &format!("valid_{i}"), env.as_bytes());
    }

    // Selector i, no tampering: the fuzzer starts from each valid case untouched.
    let cases = fx.receivers().iter().map(|r| r.valid.len()).sum::<usize>();
    for i in 0..cases {
        let mut input = vec![i as u8];
        input.extend([0u8; 81]);
        write("crypto_header", &format!("case_{i}"), &input);
    }

    write("crypto_invite", "one_time", fx.link.as_bytes());
    let contact = fx.contact.secrets.invite().unwrap().to_link();
    write("crypto_invite", "contact_address", contact.as_bytes());

    write(
        "crypto_state",
        "session_invitee",
        &fx.invitee.session.to_bytes(),
    );
    write(
        "crypto_state",
        "session_inviter",
        &fx.inviter.session.to_bytes(),
    );
    write("crypto_state", "session_pending", &fx.pending.to_bytes());
    write(
        "crypto_state",
        "secrets_one_time",
        &fx.one_time.secrets.to_bytes(),
    );
    write(
        "crypto_state",
        "secrets_contact",
        &fx.contact.secrets.to_bytes(),
    );

    // Records: [len][payload]. Two fragments of one content, then a one-piece content.
    let mut records = Vec::new();
    let mut pieces = hush_crypto::payload::fragment(1, b"hello, fragmented world", 20).unwrap();
    pieces.extend(hush_crypto::payload::fragment(2, b"short", 100).unwrap());
    for p in pieces {
        records.push(p.len() as u8);
        records.extend(p);
    }
    write("crypto_payload", "fragments", &records);
}
