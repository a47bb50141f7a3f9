//! The test hooks are inert in a build without the `test-hooks` feature, which is how
//! release builds are made: the real `hush` binary, with `HUSH_TEST_CRASH_AT=before-commit`
//! and a clock offset of 30 days in every command's environment, still pairs two profiles
//! over the embedded relay and receives a message. With the hooks active, the first process
//! that decrypts something (Alice taking the handshake) aborts before committing it; with
//! only the clock hook active, Bob's clock is 30 days ahead of Alice's, so his handshake
//! goes to a mailbox of an epoch Alice's client does not look at (seen in both ways).
//!
//! Built only without the feature: `cargo test -p hush --test release_hooks` (scripts/test
//! runs it after the suite with the hooks). Self-contained on purpose: it builds its own
//! commands, with the hooks' variables set, instead of the test kit's profiles; it takes
//! only the kit's hang guard.
#![cfg(not(feature = "test-hooks"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

use std::process::{Command, Output, Stdio};

use hush_testkit::output_guarded;
use serde_json::{Value, json};

const HUSH: &str = env!("CARGO_BIN_EXE_hush");

/// Thirty days: the receiver's clock would be this far ahead of the sender's.
const CLOCK_OFFSET_SECS: &str = "2592000";

/// A data root with profiles whose passphrase is `pass-<profile>`.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        // Where an aborted process would leave a core file.
        std::fs::create_dir(dir.path().join("cwd")).unwrap();
        Self { dir }
    }

    /// `hush --json --profile PROFILE ARGS...` with both hooks' variables set; `ahead`
    /// moves this command's clock (if the hook were active). Asserts success with nothing
    /// on stderr and returns the JSON output.
    fn hush(&self, profile: &str, ahead: bool, args: &[&str]) -> Value {
        let mut cmd = Command::new(HUSH);
        cmd.current_dir(self.dir.path().join("cwd"))
            .env("HUSH_HOME", self.dir.path().join("root"))
            .env("HUSH_PASSPHRASE", format!("pass-{profile}"))
            .env("HUSH_TEST_CRASH_AT", "before-commit")
            .env_remove("HUSH_CLOCK_OFFSET_SECS")
            .env_remove("HUSH_LOG")
            .args(["--json", "--profile", profile])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if ahead {
            cmd.env("HUSH_CLOCK_OFFSET_SECS", CLOCK_OFFSET_SECS);
        }
        let out = run_guarded(cmd, &format!("hush {profile} {args:?}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "hush --profile {profile} {args:?} failed ({}; a hook fired?): {stderr}",
            out.status
        );
        assert!(stderr.is_empty(), "hush {args:?} wrote to stderr: {stderr}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("hush {args:?}: stdout is not JSON ({e}): {stdout:?}"))
    }
}

/// Runs `cmd` to completion; kills it if it outlives the kit's hang guard.
fn run_guarded(mut cmd: Command, what: &str) -> Output {
    output_guarded(cmd.spawn().unwrap(), what)
}

#[test]
fn crash_and_clock_hooks_are_ignored_without_the_feature() {
    let home = Home::new();
    // No relay configured: each process serves the embedded relay in turn. Bob's commands
    // all carry the clock offset, Alice's none: their clocks would disagree by 30 days.
    assert_eq!(home.hush("alice", false, &["init"])["created"], true);
    assert_eq!(home.hush("bob", true, &["init"])["created"], true);
    let invite = home.hush("alice", false, &["invite", "--name", "bob"]);
    let link = invite["link"].as_str().unwrap();
    let accepted = home.hush("bob", true, &["accept", link, "--name", "alice"]);
    assert_eq!(accepted["handshake"], "on-relay", "{accepted}");
    // Alice takes the handshake and answers; Bob takes the answer. Each decrypts what it
    // receives, which is where `before-commit` would abort.
    assert_eq!(home.hush("alice", false, &["recv"]), json!([]));
    assert_eq!(home.hush("bob", true, &["recv"]), json!([]));

    let sent = home.hush("alice", false, &["send", "bob", "the hooks are off"]);
    assert_eq!(sent["state"], "on-relay", "{sent}");
    let received = home.hush("bob", true, &["recv"]);
    let texts: Vec<(&str, &str)> = received
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["contact"].as_str().unwrap(), m["text"].as_str().unwrap()))
        .collect();
    assert_eq!(texts, vec![("alice", "the hooks are off")], "{received}");
    let contacts = home.hush("bob", true, &["contacts"]);
    assert_eq!(contacts[0]["pending"], false, "{contacts}");
}
