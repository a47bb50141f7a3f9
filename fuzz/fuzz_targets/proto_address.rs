//! Relay address parsing, text and binary: arbitrary input must parse or be rejected, never
//! panic; a parsed text address must print and re-parse to the same value; a decoded binary
//! address must re-encode to exactly the bytes it was read from, and its text form must
//! parse to it (one set of rules for both forms).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((addr, rest)) = hush_proto::RelayAddress::from_binary(data) {
        let used = &data[..data.len() - rest.len()];
        assert_eq!(addr.to_binary().ok().as_deref(), Some(used));
        assert_eq!(
            addr.to_string().parse::<hush_proto::RelayAddress>().ok(),
            Some(addr)
        );
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(addr) = text.parse::<hush_proto::RelayAddress>() {
        let printed = addr.to_string();
        assert_eq!(
            printed.parse::<hush_proto::RelayAddress>().ok(),
            Some(addr.clone())
        );
        let binary = addr.to_binary().ok();
        let decoded = binary
            .as_deref()
            .and_then(|b| hush_proto::RelayAddress::from_binary(b).ok());
        assert_eq!(decoded, Some((addr, &[][..])));
    }
});
