//! File transfer end to end (issue 12): the real `hush` binary, a real `hush-relay` on
//! loopback, real SQLCipher profiles. A 50 MB random file arrives bit-identical; the relay's
//! chunk directory holds only equal-size chunks, then none; transfers killed with SIGKILL
//! (sender, receiver, relay) at seeded random points resume to completion with no chunk
//! stored twice; hostile descriptors (a lying chunk count, digest or size, a file above the
//! user's limit) are refused by name with nothing written; hostile names are neutralised
//! inside the chosen directory.
//! Waiting is bounded polling, never a timing threshold.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::time::Duration;

use hush_testkit::{Home, Relay, pair, photo, poll, unix_now};
use serde_json::Value;

const CHUNK_LEN: u64 = 256 * 1024;
/// File bytes per chunk (CHUNK_LEN minus nonce and tag).
const PAYLOAD: u64 = CHUNK_LEN - 40;

/// Deterministic pseudo-random bytes (xorshift), so a failure can be replayed.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn chunk_files(relay: &Relay) -> Vec<u64> {
    let dir = relay.dir().join("data").join("chunks");
    std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().metadata().unwrap().len()).collect())
        .unwrap_or_default()
}

/// JSON lines of a `--json` file command.
fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn files_of(home: &Home, profile: &str) -> Vec<Value> {
    let out = home.hush(profile, &["--json", "files"]).run().ok();
    events(&out.stdout)
}

fn expected_chunks(size: u64) -> usize {
    usize::try_from(size.div_ceil(PAYLOAD).max(1)).unwrap()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_50_mb_file_arrives_bit_identical_and_the_relay_holds_only_equal_chunks_then_none() {
    let relay = Relay::start();
    let home = Home::new();
    pair(&home, Some(&relay), "alice", "bob");
    let src = tempfile::tempdir().unwrap();
    let name = "报告 تقرير 📄.bin";
    let data = random_bytes(50_000_000, 0x5eed);
    let path = src.path().join(name);
    std::fs::write(&path, &data).unwrap();

    let sent = home
        .hush(
            "alice",
            &["--json", "send-file", "bob", path.to_str().unwrap()],
        )
        .run()
        .ok();
    let ev = events(&sent.stdout);
    assert_eq!(ev.first().unwrap()["event"], "offered");
    assert!(
        ev.iter()
            .any(|e| e["event"] == "progress" && e["eta_secs"].is_u64())
    );
    assert_eq!(ev.last().unwrap()["event"], "sent");
    let sizes = chunk_files(&relay);
    assert_eq!(sizes.len(), expected_chunks(50_000_000));
    assert!(
        sizes.iter().all(|&s| s == 8 + CHUNK_LEN),
        "only equal-size chunks"
    );

    let offers = files_of(&home, "bob");
    assert_eq!(offers.len(), 1, "{offers:?}");
    assert_eq!(offers[0]["name"], name);
    assert_eq!(offers[0]["bytes"], 50_000_000);
    assert_eq!(offers[0]["state"], "offered");
    // The conversation shows it with its name and size.
    let history = home.history("bob", "alice");
    assert_eq!(
        history.last().unwrap()["text"],
        format!("[file] {name} (47.7 MiB)")
    );
    let id = offers[0]["id"].as_i64().unwrap().to_string();
    let dest = tempfile::tempdir().unwrap();
    let got = home
        .hush(
            "bob",
            &[
                "--json",
                "get-file",
                &id,
                "--dir",
                dest.path().to_str().unwrap(),
            ],
        )
        .run()
        .ok();
    let ev = events(&got.stdout);
    let saved = PathBuf::from(ev.last().unwrap()["path"].as_str().unwrap());
    assert_eq!(saved, dest.path().join(name));
    assert!(std::fs::read(&saved).unwrap() == data, "bit-identical");
    assert_eq!(
        listing(dest.path()),
        vec![name.to_string()],
        "no partial file left"
    );
    assert!(
        chunk_files(&relay).is_empty(),
        "no chunk left after the download"
    );
    assert_eq!(files_of(&home, "bob")[0]["state"], "complete");
    assert_eq!(files_of(&home, "alice")[0]["state"], "sent");
}

/// A seeded point in `lo..hi` (the seed is printed, so a failure can be replayed).
fn point(seed: &mut u64, lo: u64, hi: u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    lo + *seed % (hi - lo)
}

#[test]
fn transfers_killed_at_random_points_resume_and_complete_with_no_chunk_twice() {
    let mut seed = unix_now() | 1;
    println!("seed {seed}");
    let mut relay = Relay::start();
    let home = Home::new();
    pair(&home, Some(&relay), "alice", "bob");
    let src = tempfile::tempdir().unwrap();
    let size = 12_000_000usize;
    let data = random_bytes(size, seed);
    let path = src.path().join("وثائق.pdf");
    std::fs::write(&path, &data).unwrap();
    let count = expected_chunks(size as u64);

    // The sender, killed once some chunks are on the relay.
    let kill_at = usize::try_from(point(&mut seed, 2, count as u64 - 2)).unwrap();
    let running = home
        .hush("alice", &["send-file", "bob", path.to_str().unwrap()])
        .spawn();
    poll(Duration::from_secs(120), Duration::from_millis(5), || {
        (chunk_files(&relay).len() >= kill_at).then_some(())
    })
    .expect("the upload makes progress");
    drop(running); // SIGKILL
    let out_id = files_of(&home, "alice")[0]["id"]
        .as_i64()
        .unwrap()
        .to_string();
    assert_eq!(files_of(&home, "alice")[0]["state"], "uploading");
    home.hush("alice", &["send-file", "--resume", &out_id])
        .run()
        .ok();
    let sizes = chunk_files(&relay);
    assert_eq!(sizes.len(), count, "every chunk stored exactly once");
    assert!(sizes.iter().all(|&s| s == 8 + CHUNK_LEN));

    // The receiver, killed once some chunks were sent to it.
    let id = files_of(&home, "bob")[0]["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let dest = tempfile::tempdir().unwrap();
    let dir = dest.path().to_str().unwrap().to_owned();
    let kill_at = point(&mut seed, 2, count as u64 - 8) * CHUNK_LEN;
    let sent_before = relay.metric("hush_relay_chunk_bytes_sent_total");
    let running = home.hush("bob", &["get-file", &id, "--dir", &dir]).spawn();
    poll(Duration::from_secs(120), Duration::from_millis(5), || {
        (relay.metric("hush_relay_chunk_bytes_sent_total") >= sent_before + kill_at).then_some(())
    })
    .expect("the download makes progress");
    drop(running); // SIGKILL
    assert!(
        listing(dest.path())
            .iter()
            .all(|n| n.ends_with(".hushpart")),
        "nothing under its final name before it is verified: {:?}",
        listing(dest.path())
    );

    // The relay, killed during the resumed download.
    let sent_before = relay.metric("hush_relay_chunk_bytes_sent_total");
    let running = home.hush("bob", &["get-file", &id, "--dir", &dir]).spawn();
    let kill_at = point(&mut seed, 1, 4) * CHUNK_LEN;
    poll(Duration::from_secs(120), Duration::from_millis(2), || {
        (relay.metric("hush_relay_chunk_bytes_sent_total") >= sent_before + kill_at).then_some(())
    })
    .expect("the resumed download makes progress");
    relay.kill9();
    relay.run();
    let out = running.finish();
    if !out.status.success() {
        // It gave up while the relay was down: a later run resumes.
        home.hush("bob", &["get-file", &id, "--dir", &dir])
            .run()
            .ok();
    }
    let saved = dest.path().join("وثائق.pdf");
    assert!(
        std::fs::read(&saved).unwrap() == data,
        "bit-identical after three kills"
    );
    assert_eq!(listing(dest.path()), vec!["وثائق.pdf".to_string()]);
    assert!(
        chunk_files(&relay).is_empty(),
        "no chunk left after the download"
    );
}

#[test]
fn hostile_descriptors_are_refused_by_name_and_nothing_is_written() {
    let relay = Relay::start();
    let home = Home::new();
    pair(&home, Some(&relay), "alice", "bob");
    let src = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let dir = dest.path().to_str().unwrap().to_owned();
    let data = random_bytes(700_000, 3);
    let path = src.path().join("doc.bin");
    std::fs::write(&path, &data).unwrap();
    let send_lying = |lie: &str| {
        home.hush("alice", &["send-file", "bob", path.to_str().unwrap()])
            .env("HUSH_TEST_FILE_LIE", lie)
            .run()
            .ok();
    };

    // A chunk count far above the size: refused on arrival, no file row, a message says so.
    send_lying("count");
    assert!(files_of(&home, "bob").is_empty());
    assert_eq!(
        home.history("bob", "alice").last().unwrap()["text"],
        "[file refused: file_chunk_count_mismatch]"
    );

    // A wrong digest: fetched, checked, thrown away.
    send_lying("digest");
    let id = files_of(&home, "bob")[0]["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let out = home
        .hush("bob", &["--json", "get-file", &id, "--dir", &dir])
        .run()
        .fails();
    assert_eq!(out.status.code(), Some(9));
    assert!(
        out.stderr.contains("\"code\":\"file_digest_mismatch\""),
        "{}",
        out.stderr
    );
    assert!(listing(dest.path()).is_empty(), "nothing written");
    let row = files_of(&home, "bob")[0].clone();
    assert_eq!(
        (row["state"].as_str(), row["error"].as_str()),
        (Some("failed"), Some("file_digest_mismatch"))
    );

    // A size below what the chunks carry: the last chunk's "padding" is not zero.
    send_lying("size");
    let id = files_of(&home, "bob")[1]["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let out = home
        .hush("bob", &["--json", "get-file", &id, "--dir", &dir])
        .run()
        .fails();
    assert_eq!(out.status.code(), Some(9));
    assert!(
        out.stderr.contains("\"code\":\"file_chunk_corrupt\""),
        "{}",
        out.stderr
    );
    assert!(listing(dest.path()).is_empty(), "nothing written");

    // An honest file above the user's limit.
    home.hush("alice", &["send-file", "bob", path.to_str().unwrap()])
        .run()
        .ok();
    let id = files_of(&home, "bob")[2]["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let out = home
        .hush(
            "bob",
            &[
                "--json",
                "get-file",
                &id,
                "--dir",
                &dir,
                "--max-size",
                "1000",
            ],
        )
        .run()
        .fails();
    assert_eq!(out.status.code(), Some(10));
    assert!(
        out.stderr.contains("\"code\":\"file_over_limit\""),
        "{}",
        out.stderr
    );
    assert!(listing(dest.path()).is_empty(), "nothing written");
    // Within the limit, the same file is saved.
    home.hush(
        "bob",
        &["get-file", &id, "--dir", &dir, "--max-size", "700000"],
    )
    .run()
    .ok();
    assert_eq!(std::fs::read(dest.path().join("doc.bin")).unwrap(), data);
}

#[test]
fn hostile_names_are_neutralised_inside_the_chosen_directory() {
    let relay = Relay::start();
    let home = Home::new();
    pair(&home, Some(&relay), "alice", "bob");
    let src = tempfile::tempdir().unwrap();
    // Names a Linux file system allows and a receiving one must not obey: backslash
    // traversal, a right-to-left override, a control character, a leading dot, a device
    // name, a name of 255 bytes.
    let long = format!("{}.txt", "长".repeat(83));
    let names = [
        ("..\\..\\evil.sh", "_.._evil.sh"),
        ("invoice\u{202E}fdp.exe", "invoicefdp.exe"),
        ("bell\u{7}.txt", "bell.txt"),
        (".bashrc", "bashrc"),
        ("CON.txt", "_CON.txt"),
    ];
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("inbox");
    std::fs::create_dir(&dest).unwrap();
    let dir = dest.to_str().unwrap().to_owned();
    let mut expect = Vec::new();
    for (i, (raw, safe)) in names.iter().enumerate() {
        let path = src.path().join(raw);
        std::fs::write(&path, format!("file {i} 🕵️")).unwrap();
        home.hush("alice", &["send-file", "bob", path.to_str().unwrap()])
            .run()
            .ok();
        expect.push((*safe).to_string());
    }
    let path = src.path().join(&long);
    std::fs::write(&path, "long").unwrap();
    home.hush("alice", &["send-file", "bob", path.to_str().unwrap()])
        .run()
        .ok();
    for f in files_of(&home, "bob") {
        let id = f["id"].as_i64().unwrap().to_string();
        home.hush("bob", &["get-file", &id, "--dir", &dir])
            .run()
            .ok();
    }
    let got = listing(&dest);
    assert_eq!(got.len(), names.len() + 1, "{got:?}");
    for safe in &expect {
        assert!(got.contains(safe), "{safe:?} not in {got:?}");
    }
    assert!(got.iter().all(|n| n.len() <= 200 && !n.starts_with('.')));
    // Nothing beside the chosen directory.
    assert_eq!(listing(parent.path()), vec!["inbox".to_string()]);
}

/// Files under `dir` whose bytes are exactly `bytes`.
fn copies_of(dir: &Path, bytes: &[u8]) -> Vec<PathBuf> {
    hush_testkit::files_under(dir)
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| b == bytes))
        .collect()
}

/// A JPEG and a PNG carrying a GPS position, a camera serial, an author, XMP and a comment
/// arrive with none of it and with their picture data byte for byte; the sender is told what
/// was removed; no stripped copy is left on disk anywhere; `--keep-metadata` sends a photo
/// as is. Seen failing: with `prepare` never stripping, it failed at the missing note (and
/// the renamed PDF of the next test was sent instead of refused).
#[test]
fn photos_arrive_without_their_metadata_and_with_their_pixels() {
    let relay = Relay::start();
    let home = Home::new();
    pair(&home, Some(&relay), "alice", "bob");
    let src = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let dir = dest.path().to_str().unwrap().to_owned();
    let jpeg = photo::jpeg(64, 48, 0x1234);
    let png = photo::png();
    let photos = [
        ("📸 مصدر 照片.jpg", jpeg.clone()),
        ("screenshot 截图.PNG", png.clone()),
    ];
    for (name, bytes) in &photos {
        let path = src.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let sent = home
            .hush("alice", &["send-file", "bob", path.to_str().unwrap()])
            .run()
            .ok();
        let note = sent
            .stderr
            .lines()
            .find(|l| l.starts_with("note: removed the image's metadata: "))
            .unwrap_or_else(|| panic!("{}", sent.stderr));
        assert!(note.contains("EXIF"), "{note}");
        assert!(sent.stderr.contains("--keep-metadata"), "{}", sent.stderr);
    }
    let kept = src.path().join("kept.jpg");
    std::fs::write(&kept, &jpeg).unwrap();
    let sent = home
        .hush(
            "alice",
            &[
                "--json",
                "send-file",
                "--keep-metadata",
                "bob",
                kept.to_str().unwrap(),
            ],
        )
        .run()
        .ok();
    let offered = &events(&sent.stdout)[0];
    assert_eq!(offered["metadata_removed"], Value::Null);

    let offers = files_of(&home, "bob");
    assert_eq!(offers.len(), 3, "{offers:?}");
    for f in &offers {
        let id = f["id"].as_i64().unwrap().to_string();
        home.hush("bob", &["get-file", &id, "--dir", &dir])
            .run()
            .ok();
    }
    for (name, original) in &photos {
        let got = std::fs::read(dest.path().join(name)).unwrap();
        assert_eq!(photo::has_secrets(&got), Vec::<String>::new(), "{name}");
        assert_eq!(photo::picture_data(&got), photo::picture_data(original));
        assert!(got.len() < original.len());
        // The source is untouched, and the stripped bytes exist only where bob saved them.
        assert_eq!(&std::fs::read(src.path().join(name)).unwrap(), original);
        assert_eq!(copies_of(&home.root(), &got), Vec::<PathBuf>::new());
        assert_eq!(copies_of(src.path(), &got), Vec::<PathBuf>::new());
    }
    assert_eq!(std::fs::read(dest.path().join("kept.jpg")).unwrap(), jpeg);
}

/// A malformed `.jpg` (a PDF renamed, a truncated photo) is refused by name before anything
/// is uploaded, and goes through as is with `--keep-metadata`. An upload of a stripped photo
/// killed halfway resumes and sends the same bytes (the receiver checks them against the
/// descriptor's digest); a photo edited in between stops the resume with
/// `file_source_changed`. Seen failing: with `Source::open` reading the file as is on
/// resume, the download failed with `file_digest_mismatch`.
#[test]
fn unstrippable_photos_are_refused_by_name_and_a_stripped_upload_resumes_to_the_same_bytes() {
    let relay = Relay::start();
    let home = Home::new();
    pair(&home, Some(&relay), "alice", "bob");
    let src = tempfile::tempdir().unwrap();
    let broken = photo::jpeg(32, 32, 0);
    for (name, bytes) in [
        ("renamed.jpg", b"%PDF-1.7 not a picture".to_vec()),
        ("truncated 🖼.jpeg", broken[..broken.len() / 2].to_vec()),
        ("bad.png", b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec()),
    ] {
        let path = src.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let stored = chunk_files(&relay).len();
        let out = home
            .hush(
                "alice",
                &["--json", "send-file", "bob", path.to_str().unwrap()],
            )
            .run()
            .fails();
        assert_eq!(out.status.code(), Some(13), "{name}");
        assert!(
            out.stderr.contains("\"code\":\"file_unstrippable\""),
            "{}",
            out.stderr
        );
        assert_eq!(chunk_files(&relay).len(), stored, "nothing uploaded");
        home.hush(
            "alice",
            &[
                "send-file",
                "--keep-metadata",
                "bob",
                path.to_str().unwrap(),
            ],
        )
        .run()
        .ok();
    }
    assert_eq!(files_of(&home, "alice").len(), 3);

    // A photo of some 25 chunks, its upload killed after two.
    let big = photo::jpeg(2600, 1800, 0xbeef);
    let path = src.path().join("大 صورة.jpg");
    std::fs::write(&path, &big).unwrap();
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let before = chunk_files(&relay).len();
    let running = home
        .hush("alice", &["send-file", "bob", path.to_str().unwrap()])
        .spawn();
    poll(Duration::from_secs(120), Duration::from_millis(5), || {
        (chunk_files(&relay).len() >= before + 2).then_some(())
    })
    .expect("the upload makes progress");
    drop(running); // SIGKILL
    let row = files_of(&home, "alice").pop().unwrap();
    assert_eq!(row["state"], "uploading");
    assert!(row["chunks"].as_u64().unwrap() > 4, "{row}");
    let id = row["id"].as_i64().unwrap().to_string();

    // Edited in between: the resume stops, nothing else is sent.
    std::fs::write(&path, photo::jpeg(2600, 1800, 0xfeed)).unwrap();
    let out = home
        .hush("alice", &["--json", "send-file", "--resume", &id])
        .run()
        .fails();
    assert_eq!(out.status.code(), Some(12));
    assert!(out.stderr.contains("file_source_changed"), "{}", out.stderr);

    // Back as it was: the resume strips it again and sends the rest.
    std::fs::write(&path, &big).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    home.hush("alice", &["send-file", "--resume", &id])
        .run()
        .ok();
    let got = files_of(&home, "bob").pop().unwrap();
    let dest = tempfile::tempdir().unwrap();
    home.hush(
        "bob",
        &[
            "get-file",
            &got["id"].as_i64().unwrap().to_string(),
            "--dir",
            dest.path().to_str().unwrap(),
        ],
    )
    .run()
    .ok();
    let saved = std::fs::read(dest.path().join("大 صورة.jpg")).unwrap();
    assert_eq!(photo::has_secrets(&saved), Vec::<String>::new());
    assert_eq!(photo::picture_data(&saved), photo::picture_data(&big));
}

/// The profile's own limit on received files (`hush file-limit`) refuses a larger file by
/// name, naming the limit; `--max-size` overrides it for one file; `default` restores 2 GiB;
/// sizes people write parse and others are usage errors. Seen failing: with `Accept`
/// ignoring the stored setting (always 2 GiB), the 700 kB file was saved under a 100 KiB
/// limit.
#[test]
fn the_profile_limit_refuses_larger_files_by_name_and_max_size_overrides_it() {
    let relay = Relay::start();
    let home = Home::new();
    pair(&home, Some(&relay), "alice", "bob");
    let src = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let dir = dest.path().to_str().unwrap().to_owned();
    let data = random_bytes(700_000, 11);
    let path = src.path().join("مستند كبير.bin");
    std::fs::write(&path, &data).unwrap();
    home.hush("alice", &["send-file", "bob", path.to_str().unwrap()])
        .run()
        .ok();

    let shown = home.hush("bob", &["file-limit"]).run().ok();
    assert_eq!(
        shown.stdout.trim(),
        "limit for received files: 2.0 GiB (2147483648 bytes)"
    );
    let set = home.hush("bob", &["file-limit", "100KiB"]).json();
    assert_eq!(set["file_limit_bytes"], 102_400);
    let id = files_of(&home, "bob")[0]["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let out = home
        .hush("bob", &["get-file", &id, "--dir", &dir])
        .run()
        .fails();
    assert_eq!(out.status.code(), Some(10));
    assert!(out.stderr.contains("(100.0 KiB)"), "{}", out.stderr);
    let out = home
        .hush("bob", &["--json", "get-file", &id, "--dir", &dir])
        .run()
        .fails();
    assert!(
        out.stderr.contains("\"code\":\"file_over_limit\""),
        "{}",
        out.stderr
    );
    assert!(listing(dest.path()).is_empty(), "nothing written");

    for bad in ["5 parsecs", "0", "65GiB", "-1"] {
        let out = home.hush("bob", &["file-limit", bad]).run().fails();
        assert_eq!(out.status.code(), Some(2), "{bad}");
    }
    home.hush(
        "bob",
        &["get-file", &id, "--dir", &dir, "--max-size", "1 MiB"],
    )
    .run()
    .ok();
    assert_eq!(
        std::fs::read(dest.path().join("مستند كبير.bin")).unwrap(),
        data
    );
    let back = home.hush("bob", &["file-limit", "default"]).json();
    assert_eq!(back["file_limit_bytes"], 2_147_483_648u64);
}
