//! hush-proto's TCP stream layer: arbitrary bytes cut into cells must decode or be rejected,
//! never panic; whatever decodes must re-encode to exactly the input; and the relay's stream
//! table fed any sequence of decoded cells must never panic and never serve more streams
//! than its limit.
#![no_main]

use hush_proto::mux::{CELL_LEN, StreamEvent, StreamTable, decode_cell};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut table = StreamTable::new(4);
    for chunk in data.chunks(CELL_LEN) {
        let Ok(cell) = decode_cell(chunk) else {
            continue;
        };
        assert_eq!(&cell.encode().unwrap()[..], chunk, "non-canonical cell accepted");
        match table.handle_cell(cell) {
            Ok(StreamEvent::Opened { stream, fin, .. }) => {
                assert!(table.served() <= 4);
                // Answer every other stream at once, as a relay would.
                if fin && stream.0 % 2 == 0 {
                    table.relay_done(stream);
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
});
