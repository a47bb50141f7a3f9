//! Relay address parsing: arbitrary text must parse or be rejected, never panic; a parsed
//! address must print and re-parse to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(addr) = text.parse::<hush_proto::RelayAddress>() {
        let printed = addr.to_string();
        assert_eq!(printed.parse::<hush_proto::RelayAddress>().ok(), Some(addr));
    }
});
