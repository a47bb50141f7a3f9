//! A relay whose data directory's file system fills up: a small tmpfs the test mounts (it is
//! skipped, saying so, where it cannot mount one: it needs root). While space is short the
//! relay refuses deposits (`RelayFull`) and keeps serving fetches and deletes, `/health`
//! says why it is not ok, and once space is free again deposits are taken without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{TestRelay, Tmpfs, mailbox, relay_error, sealed, secret};
use hush_proto::{DeleteIds, ErrorCode};
use hush_testkit::poll;

/// Bytes free on the file system holding `dir`, as `df` reports them.
fn available(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().nth(1).unwrap().trim().parse().unwrap()
}

/// Writes `bytes` more into `file` (created if needed), or until the file system is full when
/// `bytes` is `None`.
fn fill(file: &Path, bytes: Option<u64>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    let mut left = bytes.unwrap_or(u64::MAX);
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap();
        if f.write_all(&chunk[..n])
            .and_then(|()| f.sync_all())
            .is_err()
        {
            assert!(
                bytes.is_none(),
                "the file system filled before {bytes:?} bytes"
            );
            break;
        }
        left -= n as u64;
    }
    if bytes.is_none() {
        // The last chunk may have left a little room: take it byte by byte.
        while f.write_all(&[0]).and_then(|()| f.sync_all()).is_ok() {}
    }
}

fn wait_health(relay: &TestRelay, want: &str) -> String {
    let mut last = String::new();
    poll(Duration::from_secs(30), Duration::from_millis(50), || {
        last = relay.http_get("/health");
        last.contains(want).then_some(())
    })
    .unwrap_or_else(|| panic!("/health never said {want:?}: {last}"));
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_deposits_serves_fetches_and_deletes_and_recovers_without_restart() {
    const RESERVE: u64 = 8 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let Some(_fs) = Tmpfs::mount(&data, "size=32m") else {
        eprintln!("skipped: this test mounts a tmpfs, which needs root (mount -t tmpfs failed)");
        return;
    };
    let relay = TestRelay::start(&[
        ("HUSH_RELAY_DATA_DIR", data.to_str().unwrap()),
        (
            "HUSH_RELAY_LIMITS_MIN_FREE_DISK_BYTES",
            &RESERVE.to_string(),
        ),
    ]);
    let c = relay.client().await;
    let secrets: Vec<_> = (0..4).map(|i| secret("full", i)).collect();
    let mut ids = Vec::new();
    for i in 0..20u64 {
        ids.push(
            c.deposit(mailbox("full", i % 4), sealed(b"f", i))
                .await
                .unwrap(),
        );
    }
    assert!(wait_health(&relay, "200 OK").ends_with("ok\n"));

    // Something else takes the disk down to half the reserve.
    let filler = data.join("filler");
    fill(&filler, Some(available(&data) - RESERVE / 2));
    let health = wait_health(&relay, "disk full");
    assert!(health.starts_with("HTTP/1.1 503"), "{health}");
    assert_eq!(relay.metric("hush_relay_disk_low"), 1);
    let e = c
        .deposit(mailbox("full", 0), sealed(b"f", 100))
        .await
        .unwrap_err();
    assert_eq!(relay_error(&e).unwrap().code, ErrorCode::RelayFull, "{e}");
    assert_eq!(c.fetch_all(&secrets).await.unwrap().len(), 20);
    let out = c
        .delete(secret("full", 0), DeleteIds::new(vec![ids[0]]).unwrap())
        .await
        .unwrap();
    assert_eq!(out.deleted, 1);

    // Then it takes every byte left. The relay releases its ballast file, and deletes go on.
    fill(&filler, None);
    relay.wait_log("released the ballast file");
    assert_eq!(c.fetch_all(&secrets).await.unwrap().len(), 19);
    let out = c
        .delete(secret("full", 1), DeleteIds::new(vec![ids[1]]).unwrap())
        .await
        .unwrap();
    assert_eq!(out.deleted, 1);
    assert_eq!(c.fetch_all(&secrets).await.unwrap().len(), 18);

    // Space is freed: deposits are taken again, by the same process.
    std::fs::remove_file(&filler).unwrap();
    assert!(wait_health(&relay, "200 OK").ends_with("ok\n"));
    assert_eq!(relay.metric("hush_relay_disk_low"), 0);
    let id = c
        .deposit(mailbox("full", 0), sealed(b"f", 101))
        .await
        .unwrap();
    let all = c.fetch_all(&secrets).await.unwrap();
    assert!(
        all.iter()
            .any(|d| d.id == id && d.envelope == sealed(b"f", 101))
    );
    assert!(
        relay.last_log().contains("refusing deposits"),
        "{}",
        relay.last_log()
    );
}

/// Without the reserve (`min_free_disk_bytes = 0`) a deposit meets the full disk itself and
/// its commit fails; the database is reopened by the next write once there is room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_hit_a_full_disk_does_not_stop_later_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let Some(_fs) = Tmpfs::mount(&data, "size=16m") else {
        eprintln!("skipped: this test mounts a tmpfs, which needs root (mount -t tmpfs failed)");
        return;
    };
    let relay = TestRelay::start(&[
        ("HUSH_RELAY_DATA_DIR", data.to_str().unwrap()),
        ("HUSH_RELAY_LIMITS_MIN_FREE_DISK_BYTES", "0"),
    ]);
    let c = relay.client().await;
    let secrets: Vec<_> = (0..4).map(|i| secret("enospc", i)).collect();
    for i in 0..8u64 {
        c.deposit(mailbox("enospc", i % 4), sealed(b"e", i))
            .await
            .unwrap();
    }
    let filler = data.join("filler");
    fill(&filler, None);
    // Deposits fail (the commit cannot grow the file) until space is freed; what was stored
    // is still served.
    let mut refused = 0;
    for i in 100..164u64 {
        if let Err(e) = c.deposit(mailbox("enospc", 0), sealed(b"e", i)).await {
            assert_eq!(relay_error(&e).unwrap().code, ErrorCode::Internal, "{e}");
            refused += 1;
        }
    }
    assert!(refused > 0, "64 deposits all fit in a full file system");
    assert!(relay.metric("hush_relay_commit_failures_total") >= 1);
    // Fetches go on while the disk is still full, after commits failed on it.
    let held = c
        .fetch_all(&[secret("enospc", 1)])
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", relay.last_log()));
    assert_eq!(held.len(), 2);
    let health = wait_health(&relay, "storage failing");
    assert!(health.starts_with("HTTP/1.1 503"), "{health}");

    std::fs::remove_file(&filler).unwrap();
    let id = c
        .deposit(mailbox("enospc", 1), sealed(b"e", 200))
        .await
        .unwrap();
    assert!(wait_health(&relay, "200 OK").ends_with("ok\n"));
    let all = c.fetch_all(&secrets).await.unwrap();
    assert!(all.len() >= 9, "{} stored", all.len());
    assert!(all.iter().any(|d| d.id == id));
}
