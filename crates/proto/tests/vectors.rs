//! Replays every test vector in `tests/vectors/`: frames must decode to exactly the expected
//! value and re-encode to the same bytes; `fail_*` vectors must be rejected with the named
//! error code. The vectors are produced by `tests/vectors/generate.py`, an independent
//! implementation of docs/PROTOCOL.md Part II.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

use std::fs;
use std::path::Path;

use hush_proto::mux::{Cell, decode_cell};
use hush_proto::{
    DropAddress, Envelope, FetchSecret, RelayAddress, Request, Response, decode_request,
    decode_response,
};
use sha2::{Digest, Sha256};

fn h(b: &[u8]) -> String {
    hex::encode(b)
}

fn describe_request(r: &Request) -> String {
    match r {
        Request::Ping => "ping".into(),
        Request::Deposit { mailbox, envelope } => format!(
            "deposit mailbox={} envelope_sha256={}",
            h(mailbox.as_bytes()),
            h(&Sha256::digest(envelope.as_bytes()))
        ),
        Request::Fetch { after, secrets } => format!(
            "fetch after={} secrets={}",
            after.0,
            secrets
                .secrets()
                .iter()
                .map(|s| h(s.as_bytes()))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Request::Delete { secret, ids } => format!(
            "delete secret={} ids={}",
            h(secret.as_bytes()),
            ids.ids()
                .iter()
                .map(|i| i.0.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        Request::DepositStamped {
            drop,
            stamp,
            envelope,
        } => format!(
            "deposit_stamped drop={} bits={} stamp={} envelope_sha256={}",
            h(drop.id.as_bytes()),
            drop.bits,
            h(stamp),
            h(&Sha256::digest(envelope.as_bytes()))
        ),
        Request::Subscribe { secrets } => format!(
            "subscribe secrets={}",
            secrets
                .secrets()
                .iter()
                .map(|s| h(s.as_bytes()))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Request::PutChunk { id } => format!("put_chunk id={}", h(id.as_bytes())),
        Request::GetChunk { secret } => format!("get_chunk secret={}", h(secret.as_bytes())),
        Request::DeleteChunk { secret } => {
            format!("delete_chunk secret={}", h(secret.as_bytes()))
        }
        Request::ForwardKey => "forward_key".into(),
        Request::FetchForwardKey { destination } => {
            format!("fetch_forward_key destination={}", destination.address())
        }
        Request::Forward {
            destination,
            sealed,
        } => format!(
            "forward destination={} ephemeral={} sealed_sha256={}",
            destination.address(),
            h(&sealed.ephemeral),
            h(&Sha256::digest(&sealed.sealed[..]))
        ),
        Request::Deliver { sealed } => format!(
            "deliver ephemeral={} sealed_sha256={}",
            h(&sealed.ephemeral),
            h(&Sha256::digest(&sealed.sealed[..]))
        ),
        Request::ForwardChunk {
            destination,
            sealed,
        } => format!(
            "forward_chunk destination={} ephemeral={} trailer={} sealed_sha256={}",
            destination.address(),
            h(&sealed.ephemeral),
            u8::from(sealed.trailer),
            h(&Sha256::digest(sealed.sealed))
        ),
        Request::DeliverChunk { sealed } => format!(
            "deliver_chunk ephemeral={} trailer={} sealed_sha256={}",
            h(&sealed.ephemeral),
            u8::from(sealed.trailer),
            h(&Sha256::digest(sealed.sealed))
        ),
        other => panic!("unknown request {other:?}"),
    }
}

fn describe_response(r: &Response) -> String {
    match r {
        Response::Pong(p) => format!(
            "pong min={} max={} quota={} expiry={}",
            p.min_version, p.max_version, p.mailbox_quota, p.expiry_secs
        ),
        Response::Deposited(id) => format!("deposited id={}", id.0),
        Response::Envelope(d) => format!(
            "envelope mailbox={} id={} envelope_sha256={}",
            h(d.mailbox.as_bytes()),
            d.id.0,
            h(&Sha256::digest(d.envelope.as_bytes()))
        ),
        Response::FetchDone { returned, more } => {
            format!("fetch_done returned={returned} more={more}")
        }
        Response::Deleted {
            deleted,
            expired,
            unknown,
        } => format!("deleted deleted={deleted} expired={expired} unknown={unknown}"),
        Response::Subscribed { count } => format!("subscribed count={count}"),
        Response::Error(e) => format!("error code=0x{:04x} arg={}", e.code.to_u16(), e.arg),
        Response::ChunkStored { fresh } => format!("chunk_stored fresh={fresh}"),
        Response::Chunk => "chunk".into(),
        Response::ChunkDeleted => "chunk_deleted".into(),
        Response::ForwardKey(st) => format!(
            "forward_key spki={} key={} signature={}",
            h(&st.spki),
            h(&st.key),
            h(&st.signature)
        ),
        Response::Forwarded(a) => format!("forwarded answer={}", h(&a.0)),
        Response::ChunkForwarded(a) => format!(
            "chunk_forwarded trailer={} answer={}",
            u8::from(a.trailer),
            h(&a.sealed)
        ),
        other => panic!("unknown response {other:?}"),
    }
}

fn describe_cell(c: &Cell<'_>) -> String {
    match c {
        Cell::Pad => "pad".into(),
        Cell::Data { stream, bytes, fin } => format!(
            "data stream={} fin={fin} len={} sha256={}",
            stream.0,
            bytes.len(),
            h(&Sha256::digest(bytes))
        ),
        Cell::Reset { stream, code } => format!("reset stream={} code={code}", stream.0),
        Cell::Stop { stream, code } => format!("stop stream={} code={code}", stream.0),
        Cell::Close { code } => format!("close code={code}"),
    }
}

fn describe_address(a: &RelayAddress) -> String {
    format!(
        "address pin={} host={} port={}",
        h(&a.pin.0),
        a.host,
        a.port
    )
}

/// A `forward` vector (PROTOCOL.md II.4.2): the statement verifies (or is refused); if the
/// vector has an ephemeral secret, sealing gives exactly `sealed`; the relay's secret opens
/// `sealed` to `inner`; sealing the answer under `answer_nonce` gives exactly `answer`, and
/// the client opens it.
fn forward_vector(
    field: &dyn Fn(&str) -> String,
    optional: &dyn Fn(&str) -> Option<String>,
) -> String {
    use hush_proto::forward::{
        self, ForwardSecret, InnerAnswer, InnerRequest, InnerResponse, KeyStatement, RequestId,
        SEALED_ANSWER_LEN, SealedAnswer, SealedRequest,
    };
    let bytes = |k: &str| hex::decode(field(k)).unwrap();
    let pin = hush_proto::SpkiPin(bytes("pin").try_into().unwrap());
    let statement = KeyStatement {
        spki: bytes("spki"),
        key: bytes("key").try_into().unwrap(),
        signature: bytes("signature"),
    };
    let verified = match statement.verify(&pin) {
        Ok(v) => v,
        Err(_) => return "error key_statement".into(),
    };
    let sealed_bytes = bytes("sealed");
    let sealed = SealedRequest {
        ephemeral: sealed_bytes[..32].try_into().unwrap(),
        sealed: Box::new(sealed_bytes[32..].try_into().unwrap()),
    };
    let secret = ForwardSecret::from_bytes(bytes("forward_secret").try_into().unwrap());
    let Ok((inner, keys)) = forward::open_request(&secret, &pin, &sealed) else {
        return "error unsealable".into();
    };
    assert_eq!(
        &inner.encode().unwrap()[..],
        &bytes("inner")[..],
        "inner plaintext"
    );
    if let Some(eph) = optional("ephemeral_secret") {
        let eph: [u8; 32] = hex::decode(eph).unwrap().try_into().unwrap();
        let id = RequestId(bytes("request_id").try_into().unwrap());
        let again = InnerRequest {
            id,
            request: inner.request.clone(),
        };
        let (mine, _) = forward::seal_request(&verified, eph, &again).unwrap();
        assert!(mine == sealed, "sealing gives the vector's bytes");
    }
    let answer = SealedAnswer(bytes("answer").try_into().unwrap());
    let opened = forward::open_answer(&keys, &inner.id, &answer).unwrap();
    let nonce: [u8; 12] = bytes("answer_nonce").try_into().unwrap();
    let resealed = forward::seal_answer(
        &keys,
        nonce,
        &InnerAnswer {
            id: inner.id,
            response: opened,
        },
    );
    assert_eq!(resealed.0.len(), SEALED_ANSWER_LEN);
    assert!(
        resealed == answer,
        "sealing the answer gives the vector's bytes"
    );
    let inner_text = match &inner.request {
        Request::Deposit { mailbox, envelope } => format!(
            "deposit mailbox={} envelope_sha256={}",
            h(mailbox.as_bytes()),
            h(&Sha256::digest(envelope.as_bytes()))
        ),
        other => panic!("inner {other:?}"),
    };
    let answer_text = match opened {
        InnerResponse::Deposited(id) => format!("deposited id={}", id.0),
        InnerResponse::Error(e) => format!("error code=0x{:04x} arg={}", e.code.to_u16(), e.arg),
    };
    format!("forward inner={inner_text} answer={answer_text}")
}

/// A `forward_chunk` vector (PROTOCOL.md II.4.4): the destination's secret opens `sealed`;
/// sealing the same request with `ephemeral_secret` gives exactly `sealed` and, for a put,
/// a sealed chunk of SHA-256 `sealed_trailer_sha256` that opens to the chunk (the 32-byte
/// `chunk_pattern` repeated to CHUNK_LEN), unless `flip_trailer_byte` names a byte whose bit
/// 0 is flipped first; sealing `answer_inner`'s answer under `answer_nonce` gives exactly
/// `answer` (and for a get the sealed chunk of SHA-256 `sealed_answer_trailer_sha256`), and
/// the client opens it.
fn forward_chunk_vector(
    field: &dyn Fn(&str) -> String,
    optional: &dyn Fn(&str) -> Option<String>,
) -> String {
    use hush_proto::CHUNK_LEN;
    use hush_proto::forward::{ForwardSecret, KeyStatement};
    use hush_proto::forward_chunk::{
        self, ChunkAnswer, SEALED_CHUNK_REQUEST_LEN, SealedChunkAnswer, SealedChunkRequest,
    };
    let bytes = |k: &str| hex::decode(field(k)).unwrap();
    let pin = hush_proto::SpkiPin(bytes("pin").try_into().unwrap());
    let verified = KeyStatement {
        spki: bytes("spki"),
        key: bytes("key").try_into().unwrap(),
        signature: bytes("signature"),
    }
    .verify(&pin)
    .unwrap();
    let chunk: Vec<u8> = bytes("chunk_pattern")
        .iter()
        .copied()
        .cycle()
        .take(CHUNK_LEN)
        .collect();
    let raw = bytes("sealed");
    assert_eq!(raw.len(), 33 + SEALED_CHUNK_REQUEST_LEN);
    let flag = match raw[32] {
        0 => false,
        1 => true,
        other => panic!("flag {other}"),
    };
    let sealed = SealedChunkRequest {
        ephemeral: raw[..32].try_into().unwrap(),
        trailer: flag,
        sealed: raw[33..].try_into().unwrap(),
    };
    let secret = ForwardSecret::from_bytes(bytes("forward_secret").try_into().unwrap());
    let Ok(opened) = forward_chunk::open_chunk_request(&secret, &pin, &sealed) else {
        return "error unsealable".into();
    };
    let request = opened.request().clone();
    let eph: [u8; 32] = bytes("ephemeral_secret").try_into().unwrap();
    let is_put = matches!(request, Request::PutChunk { .. });
    let (mine, trailer, pending) =
        forward_chunk::seal_chunk_request(&verified, eph, &request, is_put.then_some(&chunk[..]))
            .unwrap();
    assert!(mine == sealed, "sealing gives the vector's bytes");
    if let Some(mut trailer) = trailer {
        assert_eq!(h(&Sha256::digest(&trailer)), field("sealed_trailer_sha256"));
        if let Some(at) = optional("flip_trailer_byte") {
            trailer[at.parse::<usize>().unwrap()] ^= 1;
        }
        match opened.open_trailer(trailer) {
            Ok(plain) => assert!(plain == chunk, "the chunk opens"),
            Err(_) => return "error unsealable".into(),
        }
    }
    let plain = bytes("answer_inner");
    let answer = match plain[0] {
        0x90 => ChunkAnswer::Stored {
            fresh: plain[4] == 1,
        },
        0x91 => ChunkAnswer::Chunk(chunk.clone()),
        0x92 => ChunkAnswer::Deleted,
        k => panic!("answer kind {k:#x}"),
    };
    let nonce: [u8; 12] = bytes("answer_nonce").try_into().unwrap();
    let (sealed_answer, back) = opened.seal_answer(nonce, answer.clone());
    assert_eq!(
        h(&sealed_answer.sealed),
        field("answer"),
        "the sealed answer"
    );
    if let Some(t) = &back {
        assert_eq!(h(&Sha256::digest(t)), field("sealed_answer_trailer_sha256"));
    }
    let got = pending
        .open_answer(
            &SealedChunkAnswer {
                trailer: back.is_some(),
                sealed: sealed_answer.sealed,
            },
            back,
        )
        .unwrap();
    assert!(got == answer, "the client opens the answer");
    let inner = match &request {
        Request::PutChunk { id } => format!(
            "put_chunk id={} chunk_sha256={}",
            h(id.as_bytes()),
            h(&Sha256::digest(&chunk))
        ),
        Request::GetChunk { secret } => format!("get_chunk secret={}", h(secret.as_bytes())),
        Request::DeleteChunk { secret } => {
            format!("delete_chunk secret={}", h(secret.as_bytes()))
        }
        other => panic!("inner {other:?}"),
    };
    let answer = match got {
        ChunkAnswer::Stored { fresh } => format!("chunk_stored fresh={fresh}"),
        ChunkAnswer::Chunk(c) => format!("chunk chunk_sha256={}", h(&Sha256::digest(&c))),
        ChunkAnswer::Deleted => "chunk_deleted".into(),
        ChunkAnswer::Error(e) => format!("error code=0x{:04x} arg={}", e.code.to_u16(), e.arg),
    };
    format!("forward_chunk inner={inner} answer={answer}")
}

#[test]
fn replay_all_vectors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut seen = 0;
    let mut fails = 0;
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.extension().and_then(|e| e.to_str()) != Some("txt") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let text = fs::read_to_string(&path).unwrap();
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}: ")))
                .unwrap_or_else(|| panic!("{name}: missing {k}"))
                .to_owned()
        };
        let optional = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}: ")))
                .map(str::to_owned)
        };
        let direction = field("direction");
        let expect = field("expect");
        let got = match direction.as_str() {
            "address" => match field("address").parse::<RelayAddress>() {
                Ok(a) => {
                    // An accepted address prints back in its canonical form, which is the
                    // input itself unless the vector names another.
                    let canonical = optional("canonical").unwrap_or_else(|| field("address"));
                    assert_eq!(a.to_string(), canonical, "{name}: canonical text");
                    let binary = hex::decode(field("binary")).unwrap();
                    assert_eq!(a.to_binary().unwrap(), binary, "{name}: binary form");
                    let (back, rest) = RelayAddress::from_binary(&binary).unwrap();
                    assert!(back == a && rest.is_empty(), "{name}: binary round trip");
                    describe_address(&a)
                }
                Err(_) => "error bad_address".to_owned(),
            },
            "drop" => {
                let secret = FetchSecret::from_bytes(
                    hex::decode(field("secret")).unwrap().try_into().unwrap(),
                );
                let stamp: [u8; 16] = hex::decode(field("stamp")).unwrap().try_into().unwrap();
                let envelope = Envelope::new(Box::new(
                    hex::decode(field("envelope")).unwrap().try_into().unwrap(),
                ));
                let drop = DropAddress::of_secret(&secret);
                let key = drop.storage_key();
                format!(
                    "drop id={} bits={} key={} work={}",
                    h(drop.id.as_bytes()),
                    drop.bits,
                    h(key.as_bytes()),
                    hush_proto::drop::stamp_work(&key, &envelope, &stamp)
                )
            }
            // Part I section 7a: hush-crypto replays these (crates/crypto/tests/file_vectors.rs).
            "file_descriptor" | "file_chunk" => continue,
            "chunk" => {
                let secret = hush_proto::ChunkSecret::from_bytes(
                    hex::decode(field("secret")).unwrap().try_into().unwrap(),
                );
                let id = secret.id();
                format!(
                    "chunk id={} key={} len={}",
                    h(id.as_bytes()),
                    h(&id.storage_key()),
                    hush_proto::CHUNK_LEN
                )
            }
            "binary_address" => {
                let bytes = hex::decode(field("binary")).unwrap();
                match RelayAddress::from_binary(&bytes) {
                    Ok((a, rest)) => {
                        assert_eq!(a.to_binary().unwrap(), bytes[..bytes.len() - rest.len()]);
                        format!("{} rest={}", describe_address(&a), h(rest))
                    }
                    Err(hush_proto::Error::AddressTruncated) => "error address_truncated".into(),
                    Err(_) => "error bad_address".to_owned(),
                }
            }
            "request" | "response" => {
                let bytes = hex::decode(field("frame")).unwrap();
                let decoded = if direction == "request" {
                    decode_request(&bytes).map(|r| {
                        assert_eq!(&r.encode()[..], &bytes[..], "{name}: canonical re-encode");
                        describe_request(&r)
                    })
                } else {
                    decode_response(&bytes).map(|r| {
                        assert_eq!(&r.encode()[..], &bytes[..], "{name}: canonical re-encode");
                        describe_response(&r)
                    })
                };
                match decoded {
                    Ok(d) => d,
                    Err(e) => format!("error {}", e.code().unwrap().name()),
                }
            }
            "cell" => {
                let bytes = hex::decode(field("cell")).unwrap();
                match decode_cell(&bytes) {
                    Ok(c) => {
                        assert_eq!(
                            &c.encode().unwrap()[..],
                            &bytes[..],
                            "{name}: canonical re-encode"
                        );
                        describe_cell(&c)
                    }
                    Err(_) => "error bad_cell".to_owned(),
                }
            }
            "forward" => forward_vector(&|k| field(k), &|k| optional(k)),
            "forward_chunk" => forward_chunk_vector(&|k| field(k), &|k| optional(k)),
            other => panic!("{name}: bad direction {other}"),
        };
        assert_eq!(got, expect, "vector {name}");
        assert_eq!(
            name.starts_with("fail_"),
            expect.starts_with("error ") && !expect.starts_with("error code="),
            "{name}: fail_ vectors and only they must be rejected"
        );
        seen += 1;
        fails += usize::from(name.starts_with("fail_"));
    }
    assert!(
        seen >= 100 && fails >= 65,
        "too few vectors: {seen} ({fails} fail_)"
    );
}
