//! Private routing of file chunks between two real `hush-relay` processes (docs/PROTOCOL.md
//! II.4.4): the relay holding the chunks (the sender's, "relay 1") on 127.0.0.3, the
//! downloader's own relay ("relay 2", the forwarding one) on 127.0.0.2, the uploader on
//! 127.0.0.4, the downloader on 127.0.0.5, a hostile forwarder on 127.0.0.6; each relay's
//! test-hooks record of peer addresses and request frames shows who saw what.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::{Error, RelayClient, TestRelay, client_at, lo, peers, record, relay_at, relay_error};
use hush_proto::forward::{Destination, VerifiedKey};
use hush_proto::forward_chunk::{self, ChunkAnswer, SealedChunkRequest};
use hush_proto::{CHUNK_LEN, ChunkSecret, ErrorCode, FRAME_LEN, Request, decode_response};
use hush_testkit::{HANG_GUARD, poll_async};
use sha2::{Digest, Sha256};

const OWN: &str = "127.0.0.2";
const HOLDER: &str = "127.0.0.3";
const UPLOADER: u8 = 4;
const DOWNLOADER: u8 = 5;
const HOSTILE: u8 = 6;

/// (peer, kind) of every request frame a relay's record holds.
fn requests(record: &str) -> BTreeSet<(String, String)> {
    record
        .lines()
        .filter_map(|l| l.strip_prefix("at "))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_owned(), f[2].to_owned())
        })
        .collect()
}

/// Chunk `i` of a file called `name`: stand-in ciphertext that starts with the name.
fn chunk(name: &str, i: u8) -> Vec<u8> {
    let mut c: Vec<u8> = format!("{name} #{i} ")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(CHUNK_LEN)
        .collect();
    c[CHUNK_LEN - 1] = i;
    c
}

fn secret(tag: &str, i: u8) -> ChunkSecret {
    ChunkSecret::from_bytes(Sha256::digest(format!("forwarded chunk {tag} {i}")).into())
}

fn code(e: &Error) -> Option<ErrorCode> {
    relay_error(e).map(|f| f.code)
}

fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

/// Files under a relay's chunk directory.
fn chunk_files(relay: &TestRelay) -> usize {
    std::fs::read_dir(relay.dir().join("data").join("chunks")).map_or(0, Iterator::count)
}

/// Whether any file under `dir` (recursively) holds `needle`.
fn raw_contains(dir: &Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.into_iter().any(|e| {
        let path = e.unwrap().path();
        if path.is_dir() {
            raw_contains(&path, needle)
        } else {
            std::fs::read(&path)
                .map(|d| d.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        }
    })
}

async fn key_via(c: &RelayClient, holder: &TestRelay) -> (Destination, VerifiedKey) {
    let dest = Destination::new(holder.addr().clone()).unwrap();
    let key = c.fetch_forward_key(&dest).await.unwrap();
    (dest, key)
}

/// A file sent by A (on relay 1) to B (on relay 2): B downloads and deletes every chunk
/// through relay 2, bit for bit; relay 1 sees only relay 2's address for those gets and
/// deletes, never B's; relay 2 sees neither chunk secrets nor chunk bytes and stores
/// nothing. A put through relay 2 (a client uploading to a relay not its own) lands too.
/// Seen to fail with the answer's chunk left unsealed at relay 1 (the client refused it,
/// `ForwardAnswerUnsealable`), and, over TCP, with relay 2's stream layer keeping nothing
/// after a ForwardChunk frame (the forwarded put was `Truncated`).
#[tokio::test(flavor = "multi_thread")]
async fn a_file_downloads_through_the_own_relay_which_learns_nothing_and_hides_the_downloader() {
    let dir = tempfile::tempdir().unwrap();
    let (own, own_record) = relay_at(OWN, dir.path(), &[]);
    let (holder, holder_record) = relay_at(HOLDER, dir.path(), &[]);
    let names = ["报告.pdf", "تقرير.docx", "📸🗂️.jpg"];

    // A uploads its file's three chunks to its own relay, relay 1, directly.
    let a = client_at(&holder, UPLOADER).await;
    for (i, name) in names.iter().enumerate() {
        let i = u8::try_from(i).unwrap();
        assert!(
            a.put_chunk(secret("file", i).id(), &chunk(name, i))
                .await
                .unwrap()
        );
    }

    // B, whose own relay is relay 2, gets and deletes them through it.
    let b = client_at(&own, DOWNLOADER).await;
    let (dest, key) = key_via(&b, &holder).await;
    for (i, name) in names.iter().enumerate() {
        let i = u8::try_from(i).unwrap();
        let got = b
            .forward_get_chunk(&dest, &key, secret("file", i))
            .await
            .unwrap();
        assert!(got == chunk(name, i), "chunk {i} is bit-identical");
    }
    for i in 0..3u8 {
        b.forward_delete_chunk(&dest, &key, secret("file", i))
            .await
            .unwrap();
    }
    // Gone: the sealed ChunkNotFound comes back as the destination's refusal.
    let e = b
        .forward_get_chunk(&dest, &key, secret("file", 0))
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::ChunkNotFound));
    let e = b
        .forward_delete_chunk(&dest, &key, secret("file", 0))
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::ChunkNotFound));
    // An upload through relay 2 to relay 1, read back at relay 1 by its owner.
    let up = chunk("上传 رفع ⬆️", 9);
    assert!(
        b.forward_put_chunk(&dest, &key, secret("up", 9).id(), &up)
            .await
            .unwrap()
    );
    assert!(
        !b.forward_put_chunk(&dest, &key, secret("up", 9).id(), &up)
            .await
            .unwrap(),
        "a second put of the same id stores nothing new"
    );
    assert!(a.get_chunk(secret("up", 9)).await.unwrap() == up);
    // The same over TLS on TCP (the Tor path): the sealed chunk is split into cells like
    // any stream data, and the forwarding relay keeps the whole of it.
    let b_tcp = RelayClient::connect_via_from(
        own.addr(),
        &hush_transport::Route::Tcp,
        Some(lo(DOWNLOADER)),
    )
    .await
    .unwrap();
    let (_, tcp_key) = key_via(&b_tcp, &holder).await;
    let over_tcp = chunk("经由 TCP عبر 🧅", 8);
    assert!(
        b_tcp
            .forward_put_chunk(&dest, &tcp_key, secret("tcp", 8).id(), &over_tcp)
            .await
            .unwrap()
    );
    assert!(
        b_tcp
            .forward_get_chunk(&dest, &tcp_key, secret("tcp", 8))
            .await
            .unwrap()
            == over_tcp
    );

    let held = record(&holder_record);
    let carried = record(&own_record);
    assert_eq!(
        peers(&held),
        [OWN.to_owned(), lo(UPLOADER).to_string()].into(),
        "relay 1 saw the uploader and relay 2, never the downloader"
    );
    // What came from relay 2: its key fetch and the delivered chunk requests, nothing plain.
    let from_own: BTreeSet<String> = requests(&held)
        .into_iter()
        .filter(|(peer, _)| peer == OWN)
        .map(|(_, kind)| kind)
        .collect();
    assert_eq!(from_own, ["0a".to_owned(), "14".to_owned()].into());
    // Relay 2 carried sealed bytes only: no chunk secret, id, or chunk text in what it read,
    // and nothing in its store.
    for i in 0..3u8 {
        assert!(!carried.contains(&hex(secret("file", i).as_bytes())));
        assert!(!carried.contains(&hex(secret("file", i).id().as_bytes())));
    }
    assert!(!carried.contains(&hex(secret("up", 9).id().as_bytes())));
    assert!(
        held.contains(&hex(secret("file", 0).id().as_bytes())),
        "the record is real"
    );
    assert_eq!(chunk_files(&own), 0);
    for name in names {
        assert!(
            !raw_contains(&own.dir(), name.as_bytes()),
            "{name} in relay 2's files"
        );
    }
    assert!(!raw_contains(&own.dir(), "上传".as_bytes()));
    // Metrics stay aggregate: counts of the two new commands, nothing per peer.
    let metrics = own.http_get("/metrics");
    assert!(
        metrics.contains("hush_relay_requests_total{command=\"forward_chunk\"} 12"),
        "{metrics}"
    );
    let metrics = holder.http_get("/metrics");
    assert!(metrics.contains("hush_relay_requests_total{command=\"deliver_chunk\"} 12"));
}

/// Writes a DeliverChunk (or any frame) and `trailer` on a raw stream of `c`; the answer.
async fn raw_exchange(c: &RelayClient, frame: &[u8], trailer: &[u8]) -> hush_proto::Response {
    let conn = c.quic_connection().unwrap().clone();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(frame).await.unwrap();
    let _ = send.write_all(trailer).await;
    let _ = send.finish();
    let mut answer = vec![0u8; FRAME_LEN];
    recv.read_exact(&mut answer).await.unwrap();
    decode_response(&answer).unwrap()
}

/// A hostile forwarder, talking straight to relay 1, gets a specific refusal for each
/// trick, and relay 1 stores nothing from any of them: a replayed DeliverChunk
/// (`ForwardReplay`), a chunk with one flipped bit (`ForwardUnsealable`), a chunk one byte
/// short or long (`Truncated`, `Oversized`), a request sealed for another relay
/// (`ForwardUnsealable`). And a forwarder that cannot reach the destination answers
/// `ForwardUnreachable`. Seen to fail with the ephemeral-key memory skipped for chunks (the
/// replay was answered `ChunkForwarded` and stored the chunk again), and with the trailer
/// stored without opening it (the flipped chunk was stored).
#[tokio::test(flavor = "multi_thread")]
async fn hostile_deliveries_are_refused_specifically_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (own, _) = relay_at(
        OWN,
        dir.path(),
        &[("HUSH_RELAY_FORWARDING_TIMEOUT_SECS", "2")],
    );
    let (holder, _) = relay_at(HOLDER, dir.path(), &[]);
    let honest = client_at(&own, DOWNLOADER).await;
    let (_, key) = key_via(&honest, &holder).await;
    let hostile = client_at(&holder, HOSTILE).await;
    let owner = client_at(&holder, UPLOADER).await;
    let deliver = |sealed: &SealedChunkRequest| Request::DeliverChunk {
        sealed: sealed.clone(),
    };

    // A put delivered once is stored; delivered again it is a replay, even after the
    // chunk was deleted: nothing is stored the second time.
    let data = chunk("重放 إعادة 🔁", 1);
    let put = Request::PutChunk {
        id: secret("replay", 1).id(),
    };
    let (sealed, trailer, pending) =
        forward_chunk::seal_chunk_request(&key, [0x31; 32], &put, Some(&data)).unwrap();
    let trailer = trailer.unwrap();
    let (answer, back) = hostile
        .deliver_chunk(sealed.clone(), Some(&trailer))
        .await
        .unwrap();
    assert_eq!(
        pending.open_answer(&answer, back).unwrap(),
        ChunkAnswer::Stored { fresh: true }
    );
    owner.delete_chunk(secret("replay", 1)).await.unwrap();
    let e = hostile
        .deliver_chunk(sealed.clone(), Some(&trailer))
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::ForwardReplay));
    let e = owner.get_chunk(secret("replay", 1)).await.unwrap_err();
    assert_eq!(
        code(&e),
        Some(ErrorCode::ChunkNotFound),
        "the replay stored nothing"
    );
    assert_eq!(chunk_files(&holder), 0);

    // One bit of the chunk flipped on the way: the trailer's tag, inside the sealed
    // request, does not match.
    let put = Request::PutChunk {
        id: secret("flip", 2).id(),
    };
    let data = chunk("篡改 تلاعب ✂️", 2);
    let (sealed, trailer, _) =
        forward_chunk::seal_chunk_request(&key, [0x32; 32], &put, Some(&data)).unwrap();
    let mut bent = trailer.unwrap();
    bent[CHUNK_LEN / 3] ^= 0x10;
    let e = hostile
        .deliver_chunk(sealed, Some(&bent))
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::ForwardUnsealable));
    let e = owner.get_chunk(secret("flip", 2)).await.unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::ChunkNotFound));

    // A trailer one byte short, or one byte long.
    for (n, len, want) in [
        (3u8, CHUNK_LEN - 1, ErrorCode::Truncated),
        (4, CHUNK_LEN + 1, ErrorCode::Oversized),
    ] {
        let put = Request::PutChunk {
            id: secret("len", n).id(),
        };
        let (sealed, trailer, _) = forward_chunk::seal_chunk_request(
            &key,
            [0x30 + n; 32],
            &put,
            Some(&chunk("长度 طول 📏", n)),
        )
        .unwrap();
        let mut trailer = trailer.unwrap();
        trailer.resize(len, 0);
        let answer = raw_exchange(&hostile, &deliver(&sealed).encode()[..], &trailer).await;
        assert_eq!(
            answer,
            hush_proto::Response::Error(hush_proto::ErrorFrame::new(want)),
            "a trailer of {len} bytes"
        );
        let e = owner.get_chunk(secret("len", n)).await.unwrap_err();
        assert_eq!(code(&e), Some(ErrorCode::ChunkNotFound));
    }

    // A request sealed for another relay (relay 2's own key) does not open at relay 1.
    let own_key = client_at(&own, DOWNLOADER)
        .await
        .forward_key()
        .await
        .unwrap()
        .verify(&own.addr().pin)
        .unwrap();
    let put = Request::PutChunk {
        id: secret("other", 5).id(),
    };
    let (sealed, trailer, _) = forward_chunk::seal_chunk_request(
        &own_key,
        [0x35; 32],
        &put,
        Some(&chunk("别处 مكان آخر 🧭", 5)),
    )
    .unwrap();
    let e = hostile
        .deliver_chunk(sealed, trailer.as_deref())
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::ForwardUnsealable));
    let e = owner.get_chunk(secret("other", 5)).await.unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::ChunkNotFound));
    assert_eq!(chunk_files(&holder), 0, "nothing of any of them was stored");

    // Nobody listens at the destination: the forwarder says so.
    let mut nowhere = holder.addr().clone();
    nowhere.port = hush_testkit::free_udp_port();
    nowhere.host = hush_proto::Host::Ip(lo(1));
    let e = honest
        .forward_get_chunk(
            &Destination::new(nowhere).unwrap(),
            &key,
            secret("nowhere", 0),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::ForwardUnreachable));
}

/// A ForwardChunk stream holding half its chunk, never finished.
async fn stalled_forward(
    c: &RelayClient,
    dest: &Destination,
    key: &VerifiedKey,
    n: u8,
) -> (quinn::SendStream, quinn::RecvStream) {
    let put = Request::PutChunk {
        id: secret("stall", n).id(),
    };
    let (sealed, trailer, _) = forward_chunk::seal_chunk_request(
        key,
        [0x40 + n; 32],
        &put,
        Some(&chunk("卡住 عالق ⏳", n)),
    )
    .unwrap();
    let frame = Request::ForwardChunk {
        destination: dest.clone(),
        sealed,
    }
    .encode();
    let conn = c.quic_connection().unwrap().clone();
    let (mut send, recv) = conn.open_bi().await.unwrap();
    send.write_all(&frame[..]).await.unwrap();
    send.write_all(&trailer.unwrap()[..CHUNK_LEN / 2])
        .await
        .unwrap();
    (send, recv)
}

/// Forwarded chunk requests count against the chunk limits: at the forwarder, per
/// connection and relay-wide (each holds a chunk in memory on its way), shared with
/// direct chunk requests; at the destination, per connection like any chunk request.
/// Seen to fail with ForwardChunk admitted without a slot (the second request was
/// forwarded instead of `ChunkBusy`).
#[tokio::test(flavor = "multi_thread")]
async fn forwarded_chunk_requests_count_against_the_chunk_limits() {
    let dir = tempfile::tempdir().unwrap();
    let (own, _) = relay_at(
        OWN,
        dir.path(),
        &[
            ("HUSH_RELAY_CHUNKS_MAX_IN_FLIGHT", "1"),
            ("HUSH_RELAY_CHUNKS_MAX_IN_FLIGHT_PER_CONNECTION", "1"),
        ],
    );
    let (holder, _) = relay_at(
        HOLDER,
        dir.path(),
        &[("HUSH_RELAY_CHUNKS_MAX_IN_FLIGHT_PER_CONNECTION", "1")],
    );
    let first = client_at(&own, DOWNLOADER).await;
    let (dest, key) = key_via(&first, &holder).await;
    let busy = async |c: &RelayClient| {
        poll_async(HANG_GUARD, Duration::from_millis(20), async || {
            match c.forward_get_chunk(&dest, &key, secret("busy", 0)).await {
                Err(e) if code(&e) == Some(ErrorCode::ChunkBusy) => relay_error(&e),
                _ => None,
            }
        })
        .await
    };
    // At the forwarder: one stalled forward takes the relay's only slot; a forward from
    // another connection, and a direct chunk request, are told ChunkBusy.
    let (mut send, mut recv) = stalled_forward(&first, &dest, &key, 1).await;
    let second = client_at(&own, HOSTILE).await;
    assert_eq!(
        busy(&second).await.expect("ChunkBusy at the forwarder").arg,
        200
    );
    let e = second.get_chunk(secret("busy", 1)).await.unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::ChunkBusy));
    drop(send.reset(0u32.into()));
    let _ = recv.stop(0u32.into());
    // The slot is free again once the stalled request ends.
    poll_async(HANG_GUARD, Duration::from_millis(20), async || match second
        .forward_get_chunk(&dest, &key, secret("busy", 0))
        .await
    {
        Err(e) if code(&e) == Some(ErrorCode::ChunkNotFound) => Some(()),
        _ => None,
    })
    .await
    .expect("forwarding works again");

    // At the destination: the forwarder's one connection has one chunk slot there. A
    // stalled DeliverChunk from a raw client holds its own connection's slot; its next
    // one is ChunkBusy. A probe can reach the relay before the stall does and take the
    // slot for a moment, and the stall is then refused ChunkBusy itself: such a stall
    // has an answer on its stream, and is made again.
    let raw = client_at(&holder, UPLOADER).await;
    let conn = raw.quic_connection().unwrap().clone();
    let stall = async || {
        let put = Request::PutChunk {
            id: secret("stall", 7).id(),
        };
        let (sealed, trailer, _) = forward_chunk::seal_chunk_request(
            &key,
            rand_ephemeral(),
            &put,
            Some(&chunk("卡住 عالق ⏳", 7)),
        )
        .unwrap();
        let (mut send, recv) = conn.open_bi().await.unwrap();
        send.write_all(&Request::DeliverChunk { sealed }.encode()[..])
            .await
            .unwrap();
        send.write_all(&trailer.unwrap()[..1000]).await.unwrap();
        (send, recv)
    };
    let mut stalled = Some(stall().await);
    let mut answered = [0u8; 1];
    let got = poll_async(HANG_GUARD, Duration::from_millis(20), async || {
        let (sealed, _, _) = forward_chunk::seal_chunk_request(
            &key,
            rand_ephemeral(),
            &Request::GetChunk {
                secret: secret("busy", 3),
            },
            None,
        )
        .unwrap();
        if let Err(e) = raw.deliver_chunk(sealed, None).await
            && code(&e) == Some(ErrorCode::ChunkBusy)
        {
            return Some(());
        }
        let lost = match &mut stalled {
            Some((_, recv)) => {
                tokio::time::timeout(Duration::from_millis(1), recv.read(&mut answered))
                    .await
                    .is_ok()
            }
            None => true,
        };
        if lost {
            stalled = Some(stall().await);
        }
        None
    })
    .await;
    assert!(got.is_some(), "ChunkBusy at the destination");
}

fn rand_ephemeral() -> [u8; 32] {
    let mut e = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut e).unwrap();
    e
}

/// Not a test: measures forwarded chunk gets and puts against direct ones, in the same run,
/// for docs/BENCHMARKS.md (`cargo test -p hush-relay --features cli,test-hooks --test
/// forward_chunks --release -- --ignored --nocapture forwarded_chunks_against_direct`).
/// Prints figures; asserts nothing about speed.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, run by hand"]
async fn forwarded_chunks_against_direct() {
    let dir = tempfile::tempdir().unwrap();
    let (own, _) = relay_at(OWN, dir.path(), &[]);
    let (holder, _) = relay_at(HOLDER, dir.path(), &[]);
    let direct = client_at(&holder, UPLOADER).await;
    let via = client_at(&own, DOWNLOADER).await;
    let (dest, key) = key_via(&via, &holder).await;
    let n = 64u8;
    let mut times = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for i in 0..n {
        let data = chunk("测量 قياس 📏", i);
        let t = std::time::Instant::now();
        direct
            .put_chunk(secret("direct", i).id(), &data)
            .await
            .unwrap();
        times[0].push(t.elapsed());
        let t = std::time::Instant::now();
        via.forward_put_chunk(&dest, &key, secret("via", i).id(), &data)
            .await
            .unwrap();
        times[1].push(t.elapsed());
        let t = std::time::Instant::now();
        direct.get_chunk(secret("direct", i)).await.unwrap();
        times[2].push(t.elapsed());
        let t = std::time::Instant::now();
        via.forward_get_chunk(&dest, &key, secret("via", i))
            .await
            .unwrap();
        times[3].push(t.elapsed());
    }
    for t in &mut times {
        t.sort();
    }
    let median = |t: &Vec<Duration>| t[t.len() / 2];
    println!(
        "{n} chunks, one at a time: put direct median {:?}, forwarded {:?}; get direct median {:?}, forwarded {:?}",
        median(&times[0]),
        median(&times[1]),
        median(&times[2]),
        median(&times[3]),
    );
}
