//! hush-proto response decoding (the client side): arbitrary bytes must decode or be rejected,
//! never panic; whatever decodes must re-encode to exactly the input (canonical form).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(resp) = hush_proto::decode_response(data) {
        assert_eq!(&resp.encode()[..], data, "non-canonical response accepted");
    }
});
