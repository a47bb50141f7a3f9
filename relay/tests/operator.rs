//! The relay as an operator meets it: `init`, `check` and `run` of the real `hush-relay`
//! binary against the machine they run on (ports in use, data directories that cannot be
//! used), signals, the key-rotation recipe of docs/OPERATING.md, and what the metrics and
//! the log say about normal outcomes and the version.
//! No test depends on timing: waits are bounded polls for a state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use hush_testkit::{free_udp_port, hooks, output_guarded, relay_bin};

/// `hush-relay ARGS` with none of the developer's relay variables.
fn relay_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(relay_bin());
    cmd.args(args);
    for k in hooks::CLEARED {
        cmd.env_remove(k);
    }
    cmd.env_remove(hooks::RELAY_METRICS_LISTEN);
    cmd
}

/// `init --dir DIR EXTRA...`; returns its standard output.
fn init(dir: &Path, extra: &[&str]) -> String {
    let out = relay_cmd(&["init", "--dir", dir.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "init failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn config_of(dir: &Path) -> PathBuf {
    dir.join("config.toml")
}

/// Replaces the top-level key `key` of the config in `dir` (a line `key = ...`).
fn set_key(dir: &Path, key: &str, value: &str) {
    let path = config_of(dir);
    let text = std::fs::read_to_string(&path).unwrap();
    let prefix = format!("{key} = ");
    assert!(
        text.lines().any(|l| l.starts_with(&prefix)),
        "no {key} in {text}"
    );
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) {
                format!("{prefix}{value}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
}

fn check(dir: &Path) -> Output {
    relay_cmd(&["check", "--config", config_of(dir).to_str().unwrap()])
        .output()
        .unwrap()
}

/// `run` that is expected to fail at startup: its output (bounded by the hang guard).
fn run_failing(dir: &Path) -> Output {
    let child = relay_cmd(&["run", "--config", config_of(dir).to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    output_guarded(child, "hush-relay run")
}

/// Asserts that `check` and `run` both fail on the config in `dir` and both name `what`.
fn check_and_run_fail_naming(dir: &Path, what: &str, case: &str) {
    let out = check(dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{case}: check said ok: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains(what),
        "{case}: check does not name {what}: {err}"
    );
    let out = run_failing(dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{case}: run started: {err}");
    assert!(
        err.contains(what),
        "{case}: run does not name {what}: {err}"
    );
}

fn free_tcp_port() -> u16 {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    l.local_addr().unwrap().port()
}

/// A tmpfs mounted at a new directory, unmounted on drop. `None` where this process may not
/// mount (not root, or no mount namespace rights): the caller skips with a message.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, options: &str) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn check_fails_where_run_would_and_both_name_what_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("relay");
    let port = free_udp_port();
    let quic = format!("127.0.0.1:{port}");
    init(&dir, &["--public-address", &quic, "--listen", &quic]);
    let metrics_port = free_tcp_port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    set_key(&dir, "metrics_listen", &format!("\"{metrics}\""));
    let out = check(&dir);
    assert!(out.status.success(), "a usable config: {out:?}");

    // The QUIC port is taken (UDP).
    let held = std::net::UdpSocket::bind(&quic).unwrap();
    check_and_run_fail_naming(&dir, &quic, "listen port in use");
    // The files alone are still fine (a running relay's config).
    let out = relay_cmd(&["check", "--config-only", "--config"])
        .arg(config_of(&dir))
        .output()
        .unwrap();
    assert!(out.status.success(), "check --config-only: {out:?}");
    drop(held);

    // The metrics port is taken (TCP).
    let held = std::net::TcpListener::bind(&metrics).unwrap();
    check_and_run_fail_naming(&dir, &metrics, "metrics port in use");
    drop(held);

    // data_dir is a file.
    let file = dir.join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    set_key(&dir, "data_dir", "\"not-a-dir\"");
    check_and_run_fail_naming(&dir, &file.display().to_string(), "data_dir is a file");
    // ... or lies under one.
    set_key(&dir, "data_dir", "\"not-a-dir/data\"");
    check_and_run_fail_naming(&dir, &file.display().to_string(), "data_dir under a file");

    // data_dir is not writable. Root writes through permission bits, so the directory is a
    // read-only file system.
    let ro = dir.join("read-only");
    match Tmpfs::mount(&ro, "ro,size=1m") {
        Some(_mounted) => {
            set_key(&dir, "data_dir", "\"read-only\"");
            check_and_run_fail_naming(&dir, &ro.display().to_string(), "read-only data_dir");
        }
        None => eprintln!("skipped the read-only data_dir case: cannot mount a tmpfs here"),
    }

    // Back to a usable config: check is ok again, and it has left nothing behind.
    set_key(&dir, "data_dir", "\"data\"");
    let out = check(&dir);
    assert!(out.status.success(), "{out:?}");
    let left: Vec<_> = std::fs::read_dir(dir.join("data")).unwrap().collect();
    assert!(left.is_empty(), "check wrote into data_dir: {left:?}");
}
