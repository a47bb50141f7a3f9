//! Restart after a crash: a relay killed with SIGKILL in the middle of deposits into a large
//! store opens it again without reading the whole file (redb's quick repair: every durable
//! commit, a journal checkpoint, records the allocator state, so the open loads it instead of
//! walking every page, then applies the journal records written since), and loses nothing it
//! acknowledged.
//!
//! Nothing is timed: what the restarted process read before its first answered ping is
//! taken from the kernel's count (`/proc/<pid>/io`, `rchar`: bytes asked of `read`/`pread`,
//! page cache hits included), so a warm cache cannot hide a full scan.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

mod common;

use common::{TestRelay, assert_acked_stored, mailbox, sealed, storm_and_kill9};
use hush_relay::store::{Quotas, RedbStore, Store as _, WriteOp, WriteOutcome};

/// Envelopes already stored before the crash: about 4.2 KB each on disk, so the store is
/// well over 60 MiB, far more than an open that loads the allocator state reads.
const PRELOADED: u64 = 16_000;
/// Overrides [`PRELOADED`] (a multiple of [`PRELOAD_BATCH`]) for the figures in
/// docs/BENCHMARKS.md; the suite runs with the default.
const PRELOADED_ENV: &str = "HUSH_TEST_RESTART_PRELOAD";

fn preloaded() -> u64 {
    std::env::var(PRELOADED_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PRELOADED)
}
/// Envelopes per commit while preloading.
const PRELOAD_BATCH: u64 = 1_000;

/// Bytes process `pid` has read so far (`rchar` in `/proc/<pid>/io`).
fn bytes_read(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rchar in /proc/{pid}/io: {io}"))
}

/// Fills the store in `data` through the library, many envelopes a commit (the relay's
/// own group commit would take minutes for this in a debug build). Text from everywhere,
/// short and long, as clients' ciphertext stands in for it.
fn preload(data: &std::path::Path) {
    let quotas = Quotas {
        mailbox: u32::MAX,
        total: u64::MAX,
    };
    let store = RedbStore::open(data, quotas, 16 << 20).unwrap();
    let texts: [&[u8]; 4] = [
        "消息在中继上只是密文".as_bytes(),
        "الرسالة مشفرة من طرف إلى طرف".as_bytes(),
        "🕵️📨🔐".as_bytes(),
        &[b'x'; 4000],
    ];
    for start in (0..preloaded()).step_by(PRELOAD_BATCH as usize) {
        let ops: Vec<WriteOp> = (start..start + PRELOAD_BATCH)
            .map(|n| WriteOp::Deposit {
                // As the relay stores a deposit to that mailbox (PROTOCOL.md II.4.1).
                mailbox: hush_proto::drop::storage_key(&mailbox("old", n % 64)),
                envelope: sealed(texts[(n % 4) as usize], n),
            })
            .collect();
        let out = store.commit(&ops, hush_testkit::unix_now()).unwrap();
        assert!(out.iter().all(|o| matches!(o, WriteOutcome::Stored(_))));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_large_store_reopens_without_reading_the_whole_file() {
    const TOTAL: u64 = 3_000;
    const MAILBOXES: u64 = 30;
    let mut relay = TestRelay::start(&[]);
    let status = relay.terminate();
    assert!(status.success(), "{status:?}");
    let data = relay.dir().join("data");
    preload(&data);
    // The store is the index and the slot file.
    let file_len = ["relay.redb", hush_relay::store::SLOT_FILE]
        .iter()
        .map(|f| std::fs::metadata(data.join(f)).unwrap().len())
        .sum::<u64>();

    // Crash in the middle of a storm of deposits.
    relay.run();
    let clients = relay.clients(16).await;
    let acked = storm_and_kill9(&mut relay, &clients, TOTAL, ("crash", MAILBOXES), b"crash").await;
    drop(clients);

    // The restart: by its first answered ping, the process has read a small part of the file.
    let restarted = std::time::Instant::now();
    relay.run();
    let c = relay.client().await;
    c.ping().await.unwrap();
    let to_ping = restarted.elapsed();
    let read = bytes_read(relay.pid());
    // Figures for docs/BENCHMARKS.md, never a threshold.
    eprintln!(
        "restart after kill -9: {read} bytes read before the first ping, {to_ping:?} from spawn to the first answered ping, file {file_len} bytes, {} envelopes before the storm, {} of {TOTAL} acknowledged",
        preloaded(),
        acked.len()
    );
    assert!(
        read < file_len / 8,
        "the restart read {read} bytes of a {file_len}-byte store: a full repair; log: {}",
        relay.last_log()
    );
    assert!(
        !relay.last_log().contains("not shut down cleanly"),
        "{}",
        relay.last_log()
    );

    // Nothing acknowledged is lost, and the old envelopes are all there.
    assert_acked_stored(&c, &acked, ("crash", MAILBOXES), b"crash").await;
    let old: usize = {
        let mut n = 0;
        for i in 0..64 {
            n += c
                .fetch_all(&[common::secret("old", i)])
                .await
                .unwrap()
                .len();
        }
        n
    };
    assert_eq!(old as u64, preloaded());
}
