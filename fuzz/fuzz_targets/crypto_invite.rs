//! Arbitrary text as an invite link: parsing must fail cleanly or give an invite whose
//! `to_link()` is the (trimmed) input and parses back to an equal invite; accepting a
//! parsed invite must fail cleanly or succeed.
#![no_main]

mod crypto_common;

use hush_crypto::Invite;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(invite) = Invite::parse(&text) else {
        return;
    };
    let link = invite.to_link();
    let again = Invite::parse(&link).expect("to_link output does not parse");
    assert!(again == invite, "invite does not round-trip");
    // One link per invite: base64url without padding and a fixed layout are canonical.
    assert_eq!(link, text.trim(), "a non-canonical link was accepted");

    let mut rng = crypto_common::rng(3);
    if let Ok(mut session) = invite.accept(&mut rng) {
        let _ = session.encrypt(b"hello", &mut rng);
    }
});
