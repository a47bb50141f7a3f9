//! File chunks end to end (docs/PROTOCOL.md II.4.3): the real `hush-relay` binary, chunks put
//! over QUIC and read over TCP, what the relay's data directory holds, idempotent puts,
//! hostile streams (a short or long chunk, a stalled upload holding its slot), quotas,
//! disabling, and expiry after a restart with the clock moved forward.
//! No test depends on timing: waits are bounded polls for a state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Error, RelayClient, TestRelay};
use hush_proto::{
    CHUNK_LEN, ChunkSecret, ErrorCode, FRAME_LEN, Request, Response, decode_response,
};
use hush_testkit::{HANG_GUARD, poll, poll_async};
use hush_transport::Route;
use sha2::{Digest, Sha256};

/// Chunk `i` of a test: stand-in ciphertext that starts with text of the world.
fn chunk(i: u8) -> Vec<u8> {
    let text = ["机密文件", "وثيقة سرية", "📄🔐", "x"][usize::from(i) % 4];
    let mut c: Vec<u8> = text
        .as_bytes()
        .iter()
        .copied()
        .cycle()
        .take(CHUNK_LEN)
        .collect();
    c[0] = i;
    c
}

fn secret(tag: &str, i: u8) -> ChunkSecret {
    ChunkSecret::from_bytes(Sha256::digest(format!("chunk test {tag} {i}")).into())
}

fn code(e: &Error) -> Option<ErrorCode> {
    common::relay_error(e).map(|f| f.code)
}

/// The files of the relay's chunk directory: (name, length).
fn chunk_files(relay: &TestRelay) -> Vec<(String, u64)> {
    let dir = relay.dir().join("data").join("chunks");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect()
}

fn raw_contains(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        data.windows(needle.len()).any(|w| w == needle)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_put_over_quic_are_read_over_tcp_stored_once_and_erased_on_delete() {
    let relay = TestRelay::start(&[]);
    let quic = relay.client().await;
    let tcp = RelayClient::connect_via(relay.addr(), &Route::Tcp)
        .await
        .unwrap();
    for i in 0..3u8 {
        assert!(
            quic.put_chunk(secret("a", i).id(), &chunk(i))
                .await
                .unwrap()
        );
    }
    // The same id again (a resumed upload): stored once, reported as not fresh, over either
    // transport.
    assert!(
        !quic
            .put_chunk(secret("a", 1).id(), &chunk(1))
            .await
            .unwrap()
    );
    assert!(!tcp.put_chunk(secret("a", 2).id(), &chunk(2)).await.unwrap());
    let files = chunk_files(&relay);
    assert_eq!(files.len(), 3, "{files:?}");
    for (name, len) in &files {
        assert_eq!(*len, 8 + CHUNK_LEN as u64, "every chunk file has one size");
        // Named by storage key, never by the id a client sent.
        for i in 0..3 {
            assert_ne!(name, &hex::encode(secret("a", i).id().as_bytes()));
        }
    }
    for i in 0..3u8 {
        assert_eq!(tcp.get_chunk(secret("a", i)).await.unwrap(), chunk(i));
        assert_eq!(quic.get_chunk(secret("a", i)).await.unwrap(), chunk(i));
    }
    tcp.delete_chunk(secret("a", 0)).await.unwrap();
    quic.delete_chunk(secret("a", 1)).await.unwrap();
    tcp.delete_chunk(secret("a", 2)).await.unwrap();
    for i in 0..3u8 {
        let e = quic.get_chunk(secret("a", i)).await.unwrap_err();
        assert_eq!(code(&e), Some(ErrorCode::ChunkNotFound));
        let e = tcp.delete_chunk(secret("a", i)).await.unwrap_err();
        assert_eq!(code(&e), Some(ErrorCode::ChunkNotFound));
    }
    assert!(chunk_files(&relay).is_empty());
    let dir = relay.dir().join("data");
    assert!(!raw_contains(&dir.join("chunks"), "وثيقة سرية".as_bytes()));
    // Only aggregates: the counters, no label naming a chunk or connection.
    let metrics = relay.http_get("/metrics");
    assert!(
        metrics.contains("hush_relay_chunk_bytes_received_total 786432"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hush_relay_chunk_bytes_sent_total 1572864"),
        "{metrics}"
    );
    assert!(metrics.contains("hush_relay_requests_total{command=\"put_chunk\"} 5"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_length_chunk_or_a_frame_without_one_is_refused_and_nothing_stored() {
    let relay = TestRelay::start(&[]);
    let c = relay.client().await;
    let frame = Request::PutChunk {
        id: secret("h", 0).id(),
    }
    .encode();
    let cases: [(&str, usize, ErrorCode); 3] = [
        ("frame only", 0, ErrorCode::Truncated),
        ("one byte short", CHUNK_LEN - 1, ErrorCode::Truncated),
        ("one byte long", CHUNK_LEN + 1, ErrorCode::Oversized),
    ];
    for tcp in [false, true] {
        let c = if tcp {
            RelayClient::connect_via(relay.addr(), &Route::Tcp)
                .await
                .unwrap()
        } else {
            relay.client().await
        };
        for (what, len, want) in &cases {
            let mut bytes = frame.to_vec();
            bytes.extend(std::iter::repeat_n(0x5a, *len));
            let answers = c.raw_request(&bytes).await.unwrap();
            match answers.as_slice() {
                [Response::Error(e)] => assert_eq!(e.code, *want, "{what} (tcp {tcp})"),
                other => panic!("{what} (tcp {tcp}): {other:?}"),
            }
        }
    }
    assert!(chunk_files(&relay).is_empty());
    let e = c.get_chunk(secret("h", 0)).await.unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::ChunkNotFound));
    // A chunk of the right length still goes in afterwards on the same connection.
    assert!(c.put_chunk(secret("h", 0).id(), &chunk(0)).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_holds_its_slot_and_the_next_request_is_told_chunk_busy() {
    let relay = TestRelay::start(&[("HUSH_RELAY_CHUNKS_MAX_IN_FLIGHT_PER_CONNECTION", "1")]);
    let c = relay.client().await;
    let conn = c.quic_connection().unwrap().clone();
    // The frame and half the chunk, then nothing: the relay holds the slot while it waits.
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let frame = Request::PutChunk {
        id: secret("busy", 0).id(),
    }
    .encode();
    send.write_all(&frame[..]).await.unwrap();
    send.write_all(&chunk(0)[..CHUNK_LEN / 2]).await.unwrap();
    let busy = poll_async(HANG_GUARD, Duration::from_millis(20), async || {
        match c.get_chunk(secret("busy", 9)).await {
            Err(e) if code(&e) == Some(ErrorCode::ChunkBusy) => common::relay_error(&e),
            _ => None,
        }
    })
    .await
    .expect("a second chunk request is refused while the first holds the slot");
    assert_eq!(busy.arg, 200);
    // Ordinary requests are not limited by it.
    c.ping().await.unwrap();
    // The stalled upload completes; the slot is free again.
    send.write_all(&chunk(0)[CHUNK_LEN / 2..]).await.unwrap();
    send.finish().unwrap();
    let mut answer = vec![0u8; FRAME_LEN];
    recv.read_exact(&mut answer).await.unwrap();
    assert_eq!(
        decode_response(&answer).unwrap(),
        Response::ChunkStored { fresh: true }
    );
    assert_eq!(c.get_chunk(secret("busy", 0)).await.unwrap(), chunk(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chunk_quota_holds_and_a_relay_without_chunks_says_so() {
    let two = (2 * CHUNK_LEN).to_string();
    let relay = TestRelay::start(&[("HUSH_RELAY_CHUNKS_MAX_STORED_BYTES", &two)]);
    let c = relay.client().await;
    assert!(c.put_chunk(secret("q", 0).id(), &chunk(0)).await.unwrap());
    assert!(c.put_chunk(secret("q", 1).id(), &chunk(1)).await.unwrap());
    let e = c
        .put_chunk(secret("q", 2).id(), &chunk(2))
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::ChunkStoreFull));
    // A put of a stored id is still answered (idempotent), and a delete makes room.
    assert!(!c.put_chunk(secret("q", 1).id(), &chunk(1)).await.unwrap());
    c.delete_chunk(secret("q", 0)).await.unwrap();
    assert!(c.put_chunk(secret("q", 2).id(), &chunk(2)).await.unwrap());
    assert_eq!(chunk_files(&relay).len(), 2);

    let off = TestRelay::start(&[("HUSH_RELAY_CHUNKS_ENABLED", "false")]);
    let c = off.client().await;
    let e = c
        .put_chunk(secret("q", 0).id(), &chunk(0))
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::ChunksUnsupported));
    let e = c.get_chunk(secret("q", 0)).await.unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::ChunksUnsupported));
    c.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_survive_a_kill_and_expire_once_the_clock_passes_their_expiry() {
    let mut relay = TestRelay::start(&[("HUSH_RELAY_STORAGE_SWEEP_INTERVAL_SECS", "1")]);
    let c = relay.client().await;
    assert!(c.put_chunk(secret("x", 0).id(), &chunk(0)).await.unwrap());
    drop(c);
    relay.kill9();
    relay.run();
    let c = relay.client().await;
    assert_eq!(c.get_chunk(secret("x", 0)).await.unwrap(), chunk(0));
    drop(c);
    relay.terminate();
    // Two days and a second later.
    relay.run_with(&[("HUSH_RELAY_TEST_CLOCK_OFFSET_SECS", "172801")]);
    let c = relay.client().await;
    let e = c.get_chunk(secret("x", 0)).await.unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::ChunkNotFound));
    poll(HANG_GUARD, Duration::from_millis(50), || {
        chunk_files(&relay).is_empty().then_some(())
    })
    .expect("the sweep erases the expired chunk");
}
