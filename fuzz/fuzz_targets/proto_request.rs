//! hush-proto request decoding: arbitrary bytes must decode or be rejected with a wire error
//! code, never panic; whatever decodes must re-encode to exactly the input (canonical form).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match hush_proto::decode_request(data) {
        Ok(req) => assert_eq!(&req.encode()[..], data, "non-canonical request accepted"),
        Err(e) => assert!(e.code().is_some(), "frame error without a wire code"),
    }
});
