//! The relay as an operator meets it: `init`, `check` and `run` of the real `hush-relay`
//! binary against the machine they run on (ports in use, data directories that cannot be
//! used), signals, the key-rotation recipe of docs/OPERATING.md, and what the metrics and
//! the log say about normal outcomes and the version.
//! No test depends on timing: waits are bounded polls for a state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

mod common;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{RelayClient, TestRelay, Tmpfs, mailbox, relay_error, sealed, secret};
use hush_proto::{DeleteIds, EnvelopeId, ErrorCode};
use hush_testkit::{free_udp_port, hooks, output_guarded, poll, relay_bin};

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
    drop(held);

    // The metrics port is taken (TCP).
    let held = std::net::TcpListener::bind(&metrics).unwrap();
    check_and_run_fail_naming(&dir, &metrics, "metrics port in use");
    drop(held);

    // The TCP listener's port (the QUIC port, on TCP: "same") is taken.
    let held = std::net::TcpListener::bind(&quic).unwrap();
    check_and_run_fail_naming(
        &dir,
        &format!("tcp_listen = {quic} (TCP)"),
        "TCP port in use",
    );
    drop(held);
    // A tcp_listen that is no address is a config error naming the key.
    set_key(&dir, "tcp_listen", "\"everywhere\"");
    check_and_run_fail_naming(&dir, "tcp_listen must be", "tcp_listen not an address");
    set_key(&dir, "tcp_listen", "\"same\"");

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

#[test]
fn init_listens_on_the_port_of_the_public_address() {
    let tmp = tempfile::tempdir().unwrap();
    for (public, listen) in [
        ("relay.example.org:5555", "0.0.0.0:5555"),
        ("[2001:db8::1]:6666", "0.0.0.0:6666"),
    ] {
        let dir = tmp.path().join(listen.replace(':', "_"));
        init(&dir, &["--public-address", public]);
        let text = std::fs::read_to_string(config_of(&dir)).unwrap();
        assert!(
            text.lines().any(|l| l == format!("listen = \"{listen}\"")),
            "{public}: {text}"
        );
    }
    // An explicit --listen still wins.
    let dir = tmp.path().join("explicit");
    init(
        &dir,
        &[
            "--public-address",
            "relay.example.org:443",
            "--listen",
            "[::]:4433",
        ],
    );
    let text = std::fs::read_to_string(config_of(&dir)).unwrap();
    assert!(text.contains("listen = \"[::]:4433\""), "{text}");
}

/// A `hush-relay run` started by hand (not through the kit: these follow the documented
/// steps), killed on drop.
struct Running {
    child: Option<Child>,
    log: PathBuf,
}

impl Running {
    fn start(dir: &Path) -> Self {
        let log = dir.with_extension("log");
        let child = relay_cmd(&["run", "--config", config_of(dir).to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut r = Self {
            child: Some(child),
            log,
        };
        poll(Duration::from_secs(30), Duration::from_millis(20), || {
            let text = std::fs::read_to_string(&r.log).unwrap_or_default();
            if let Some(st) = r.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("relay exited early ({st}): {text}");
            }
            text.contains("metrics listening").then_some(())
        })
        .unwrap_or_else(|| panic!("relay did not start: {}", r.log_text()));
        r
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn terminate(mut self) {
        let mut c = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        let st = poll(Duration::from_secs(60), Duration::from_millis(20), || {
            c.try_wait().unwrap()
        });
        assert!(st.is_some_and(|s| s.success()), "{}", self.log_text());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

fn relay_address(init_stdout: &str) -> hush_proto::RelayAddress {
    init_stdout
        .split_whitespace()
        .find(|w| w.starts_with("hush://"))
        .unwrap_or_else(|| panic!("no relay address in {init_stdout}"))
        .parse()
        .unwrap()
}

/// docs/OPERATING.md, "Key rotation": the old relay keeps running while the new one is made
/// with `init` and started next to it, on the ports the recipe gives (free ones here in place
/// of 4434 and 9465).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_recipe_runs_two_relays_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let (old_port, new_port) = (free_udp_port(), free_udp_port());
    let (old_metrics, new_metrics) = (free_tcp_port(), free_tcp_port());
    let old_dir = tmp.path().join("hush-relay");
    let old = init(
        &old_dir,
        &[
            "--public-address",
            &format!("127.0.0.1:{old_port}"),
            "--metrics-listen",
            &format!("127.0.0.1:{old_metrics}"),
        ],
    );
    let old_run = Running::start(&old_dir);

    let new_dir = tmp.path().join("hush-relay-new");
    let new = init(
        &new_dir,
        &[
            "--public-address",
            &format!("127.0.0.1:{new_port}"),
            "--metrics-listen",
            &format!("127.0.0.1:{new_metrics}"),
        ],
    );
    let out = check(&new_dir);
    assert!(out.status.success(), "check of the new relay: {out:?}");
    let new_run = Running::start(&new_dir);

    for (addr, metrics) in [
        (relay_address(&old), old_metrics),
        (relay_address(&new), new_metrics),
    ] {
        let health = http_get(metrics, "/health");
        assert!(health.ends_with("ok\n"), "{health}");
        RelayClient::connect(&addr)
            .await
            .unwrap()
            .ping()
            .await
            .unwrap();
    }
    assert_ne!(relay_address(&old).pin, relay_address(&new).pin);
    new_run.terminate();
    old_run.terminate();
}

/// The pid of the kit relay whose config is `config` (the kit keeps its child to itself).
fn pid_of(config: &Path) -> u32 {
    let want = config.to_str().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                args.contains(&b"run".as_slice()) && args.contains(&want.as_bytes())
            })
        })
        .unwrap_or_else(|| panic!("no relay process for {want}"))
}

/// Whether `pid` is gone or a zombie.
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_is_logged_and_survived() {
    let mut relay = TestRelay::start(&[]);
    let pid = pid_of(&relay.dir().join("config.toml"));
    let st = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let seen = poll(Duration::from_secs(30), Duration::from_millis(20), || {
        if exited(pid) {
            return Some(false);
        }
        relay.last_log().contains("SIGHUP ignored").then_some(true)
    });
    assert_eq!(seen, Some(true), "after SIGHUP: {}", relay.last_log());
    // Still serving, and still stops gracefully.
    relay.client().await.ping().await.unwrap();
    assert!(relay.terminate().success(), "{}", relay.last_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_are_counted_by_outcome_not_as_errors_and_the_version_is_shown() {
    let relay = TestRelay::start(&[]);
    let c = relay.client().await;
    let id = c.deposit(mailbox("del", 0), sealed(b"d", 0)).await.unwrap();
    let ids = |v: Vec<EnvelopeId>| DeleteIds::new(v).unwrap();
    let out = c.delete(secret("del", 0), ids(vec![id])).await.unwrap();
    assert_eq!(out.deleted, 1);
    // Deleting again, an id never given, or with another mailbox's secret: the answer is
    // still UnknownEnvelope (the protocol is unchanged), a normal outcome for the operator.
    for (s, i) in [
        (secret("del", 0), id),
        (secret("del", 0), EnvelopeId(999_999)),
        (secret("del", 1), id),
    ] {
        let e = c.delete(s, ids(vec![i])).await.unwrap_err();
        assert_eq!(relay_error(&e).unwrap().code, ErrorCode::UnknownEnvelope);
    }
    assert_eq!(
        relay.metric("hush_relay_errors_total{code=\"unknown_envelope\"}"),
        0
    );
    assert_eq!(
        relay.metric("hush_relay_deletes_total{outcome=\"deleted\"}"),
        1
    );
    assert_eq!(
        relay.metric("hush_relay_deletes_total{outcome=\"unknown\"}"),
        3
    );
    assert_eq!(
        relay.metric("hush_relay_deletes_total{outcome=\"expired\"}"),
        0
    );
    assert_eq!(relay.metric("hush_relay_envelopes_deleted_total"), 1);

    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        relay.metric(&format!("hush_relay_build_info{{version=\"{version}\"}}")),
        1
    );
    let log = relay.last_log();
    assert!(
        log.lines()
            .any(|l| l.contains("starting") && l.contains(&format!("version={version}"))),
        "{log}"
    );
}
