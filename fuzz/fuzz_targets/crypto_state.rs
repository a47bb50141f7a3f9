//! Arbitrary bytes as stored state: `Session::from_bytes` and `InviterSecrets::from_bytes`
//! must fail cleanly or give a value whose `to_bytes` is the input byte for byte. A loaded
//! value must then survive use: decrypting the fixture's envelopes (seeded from the real
//! states, so mutated counters and skipped keys meet real ciphertexts), encrypting, and the
//! mailbox and invite accessors.
#![no_main]

mod crypto_common;

use hush_crypto::{InviterSecrets, Session};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fx = crypto_common::fixture();
    let mut rng = crypto_common::rng(4);

    if let Ok(session) = Session::from_bytes(data) {
        assert!(
            session.to_bytes().as_slice() == data,
            "session state does not round-trip"
        );
        let _ = session.safety_number();
        let _ = session.deposit_target(1_700_000_000);
        let _ = session.receive_mailboxes(0, 1_700_000_000);
        let _ = session.payload_capacity();
        for env in fx.all_envelopes() {
            let _ = session.clone().decrypt(env, &mut rng);
        }
        let _ = session.clone().encrypt(b"hello", &mut rng);
    }

    if let Ok(secrets) = InviterSecrets::from_bytes(data) {
        assert!(
            secrets.to_bytes().as_slice() == data,
            "inviter secrets do not round-trip"
        );
        if let Ok(invite) = secrets.invite() {
            let parsed = hush_crypto::Invite::parse(&invite.to_link());
            assert!(
                parsed.as_ref() == Ok(&invite),
                "inviter's invite does not round-trip"
            );
        }
        for inv in fx.inviters() {
            let _ = secrets.clone().handle_init(&inv.init, &mut rng);
        }
    }
});
