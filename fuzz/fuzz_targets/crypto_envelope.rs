//! Arbitrary bytes as an envelope fetched from a relay: parsing, decryption by established
//! sessions (with skipped keys, on a current chain, expecting a new one) and the inviter's
//! handshake must fail cleanly or succeed, never panic.
#![no_main]

mod crypto_common;

use hush_crypto::{ENVELOPE_LEN, Envelope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fx = crypto_common::fixture();
    let parsed = hush_crypto::envelope::parse(data);
    assert_eq!(parsed.is_ok(), data.len() == ENVELOPE_LEN);
    // Inputs of other lengths still reach the decrypters: repeat them to 4096 bytes.
    let env = match parsed {
        Ok(env) => env,
        Err(_) if data.is_empty() => return,
        Err(_) => {
            let bytes: Vec<u8> = data.iter().copied().cycle().take(ENVELOPE_LEN).collect();
            Envelope::from_slice(&bytes).unwrap()
        }
    };
    let mut rng = crypto_common::rng(1);
    for recv in fx.receivers() {
        let mut session = recv.session.clone();
        let _ = session.decrypt(&env, &mut rng);
    }
    for inv in fx.inviters() {
        let mut secrets = inv.secrets.clone();
        let _ = secrets.handle_init(&env, &mut rng);
    }
    let _ = fx.pending.clone().decrypt(&env, &mut rng);
});
