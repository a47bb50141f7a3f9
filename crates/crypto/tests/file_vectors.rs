//! Replays the file vectors of docs/PROTOCOL.md section 7a (`file_*` and `fail_file_*` in
//! crates/proto/tests/vectors/, written by its independent generator, generate.py):
//! descriptors must decode to exactly the expected fields and encode back to the same
//! bytes; `fail_*` ones must be refused with the named error; chunk names must derive as
//! listed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

use std::path::Path;

use hush_crypto::descriptor::FileDescriptor;
use hush_crypto::file::FileSecret;

#[test]
fn replay_file_vectors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/tests/vectors");
    let (mut seen, mut fails) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}: ")))
                .map(str::to_owned)
        };
        let (Some(direction), Some(expect)) = (field("direction"), field("expect")) else {
            continue;
        };
        let got = match direction.as_str() {
            "file_descriptor" => {
                let bytes = hex::decode(field("descriptor").unwrap()).unwrap();
                match FileDescriptor::decode(&bytes) {
                    Ok(d) => {
                        assert_eq!(d.encode().unwrap(), bytes, "{name}: canonical re-encode");
                        format!(
                            "file size={} chunks={} digest={} name_hex={} relay={}",
                            d.size,
                            d.chunk_count(),
                            hex::encode(d.digest),
                            hex::encode(d.name.as_bytes()),
                            d.relay
                        )
                    }
                    Err(e) => format!("error {}", e.name()),
                }
            }
            "file_chunk" => {
                let secret: [u8; 32] = hex::decode(field("secret").unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap();
                let file = FileSecret::from_bytes(secret);
                [0u32, 1, 4096]
                    .iter()
                    .map(|&i| {
                        let k = file.chunk(i);
                        format!(
                            "{i}:{}:{}",
                            hex::encode(k.secret.as_bytes()),
                            hex::encode(k.id().as_bytes())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            }
            _ => continue,
        };
        assert_eq!(got, expect, "vector {name}");
        assert_eq!(
            name.starts_with("fail_"),
            expect.starts_with("error "),
            "{name}"
        );
        seen += 1;
        fails += usize::from(name.starts_with("fail_"));
    }
    assert!(
        seen >= 12 && fails >= 9,
        "too few file vectors: {seen} ({fails} fail_)"
    );
}
