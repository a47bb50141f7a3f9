//! CLI commands on a profile another hush process holds (issue 13, item 6): served by the
//! holder over its control socket, with the output, errors and exit codes they have without
//! it. The real binary, a real relay, real stores; the holder is `hush recv --wait`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use hush_testkit::{Home, Relay, Running, messages, pair, poll};

/// Starts `recv --wait SECS` on `profile` and waits until it answers on its control socket
/// (a connection accepted, not a file there: a killed holder leaves its file).
fn hold(home: &Home, profile: &str, secs: &str) -> Running {
    let socket = home.profile_dir(profile).join("control.sock");
    let holder = home
        .hush(profile, &["--json", "recv", "--wait", secs])
        .spawn();
    let served = poll(Duration::from_secs(60), Duration::from_millis(50), || {
        UnixStream::connect(&socket).ok().map(drop)
    });
    if served.is_none() {
        panic!(
            "the holder never served its control socket: {:?}",
            holder.finish()
        );
    }
    holder
}

#[test]
fn commands_on_a_held_profile_are_served_by_the_holder() {
    let relay = Relay::start();
    let home = Home::new();
    pair(&home, Some(&relay), "alice", "bob");
    let socket = home.profile_dir("alice").join("control.sock");

    // What the commands give while nobody holds the profile.
    let contacts = home.hush("alice", &["--json", "contacts"]).run().ok();
    let contacts_text = home.hush("alice", &["contacts"]).run().ok();
    let unknown = home
        .hush("alice", &["--json", "history", "nobody"])
        .run()
        .fails();

    let holder = hold(&home, "alice", "20");
    let mode = std::fs::symlink_metadata(&socket).unwrap();
    assert!(mode.file_type().is_socket());
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);

    // No passphrase on this path: the holder has the store open.
    let held = home
        .hush("alice", &["--json", "contacts"])
        .passphrase("not alice's passphrase")
        .run()
        .ok();
    assert_eq!(held.stdout, contacts.stdout);
    assert!(held.stderr.is_empty(), "{}", held.stderr);
    let held = home.hush("alice", &["contacts"]).run().ok();
    assert_eq!(held.stdout, contacts_text.stdout);

    assert_eq!(
        home.send("alice", "bob", "sent through the holder"),
        "on-relay"
    );
    let v = home
        .hush("alice", &["send", "bob"])
        .stdin("read from standard input")
        .json();
    assert_eq!(v["state"], "on-relay", "{v}");
    let held_history = home.hush("alice", &["--json", "history", "bob"]).run().ok();

    // An error: the same JSON on stderr and the same exit code.
    let err = home
        .hush("alice", &["--json", "history", "nobody"])
        .run()
        .fails();
    assert_eq!(err.status.code(), unknown.status.code());
    assert_eq!(err.status.code(), Some(4));
    assert_eq!(err.stderr, unknown.stderr);
    assert!(err.stdout.is_empty(), "{}", err.stdout);

    // A wipe is not run by the holder: refused while it holds the profile.
    let wipe = home
        .hush("alice", &["--json", "wipe", "--yes"])
        .run()
        .fails();
    assert_eq!(wipe.status.code(), Some(7), "{}", wipe.stderr);
    assert!(
        wipe.error_line().contains("profile_busy"),
        "{}",
        wipe.stderr
    );
    assert!(home.profile_dir("alice").join("store.key").exists());

    // The holder ends normally, and its socket goes with it.
    let out = holder.finish().ok();
    assert_eq!(messages(&out.json()), vec![]);
    assert!(!socket.exists(), "the control socket outlived its holder");
    let history = home.hush("alice", &["--json", "history", "bob"]).run().ok();
    assert_eq!(held_history.stdout, history.stdout);
    let texts: Vec<_> = home
        .history("alice", "bob")
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        texts,
        vec!["sent through the holder", "read from standard input"]
    );
    assert_eq!(
        home.recv("bob"),
        vec![
            ("alice".to_string(), "sent through the holder".to_string()),
            ("alice".to_string(), "read from standard input".to_string()),
        ]
    );

    // A holder killed leaves its socket behind: nobody answers there, so commands open the
    // profile themselves, and the next holder replaces the socket.
    drop(hold(&home, "alice", "60"));
    assert!(socket.exists());
    assert_eq!(home.contacts("alice"), vec!["bob"]);
    let holder = hold(&home, "alice", "60");
    assert_eq!(home.contacts("alice"), vec!["bob"]);
    drop(holder);
}
