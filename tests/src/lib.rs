//! Harness for hush's cross-component end-to-end tests: finds (or builds) the real `hush`
//! and `hush-relay` binaries, runs relays in temporary directories on loopback, and runs
//! the CLI with isolated data roots. Tests live in `tests/tests/`.
//!
//! It never mocks a component: every test talks to real processes over real QUIC.
#![forbid(unsafe_code)]
// A harness for tests: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Directory holding the workspace's binaries (`target/debug`), built on first use if the
/// test run did not build them.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // target/debug/deps/<test> -> target/debug
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        let missing = ["hush", "hush-relay"].iter().any(|b| !dir.join(b).exists());
        if missing {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let st = Command::new(cargo)
                .args(["build", "-p", "hush", "-p", "hush-relay", "--bins"])
                .status()
                .unwrap();
            assert!(st.success(), "building the hush binaries failed");
        }
        dir
    })
}

/// A `hush-relay` process in a temporary directory.
pub struct Relay {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Its address with the right pin.
    pub address: String,
    port: u16,
}

impl Relay {
    /// `init`, then `run` on a free loopback port; waits until it listens.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_udp_port();
        let out = Command::new(bin_dir().join("hush-relay"))
            .args(["init", "--dir"])
            .arg(dir.path().join("relay"))
            .args(["--public-address", &format!("127.0.0.1:{port}")])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "relay init failed: {out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let address = stdout
            .split_whitespace()
            .find(|w| w.starts_with("hush://"))
            .unwrap()
            .to_string();
        let mut r = Self {
            dir,
            child: None,
            address,
            port,
        };
        r.run();
        r
    }

    /// (Re)starts the process on the same port and data.
    pub fn run(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("relay.log"))
            .unwrap();
        self.child = Some(
            Command::new(bin_dir().join("hush-relay"))
                .arg("run")
                .arg("--config")
                .arg(self.dir.path().join("relay/config.toml"))
                .env_remove("RUST_LOG")
                // Several relays run at once: each gets its own metrics port.
                .env("HUSH_RELAY_METRICS_LISTEN", "127.0.0.1:0")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        // The relay logs "relay listening ... port=N" once it serves.
        let marker = format!("port={}", self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.log();
            if text
                .lines()
                .any(|l| l.contains("relay listening") && l.trim_end().ends_with(&marker))
            {
                return;
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("relay exited early ({st}): {text}");
            }
            assert!(Instant::now() < deadline, "relay did not start: {text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the relay logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("relay.log")).unwrap_or_default()
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The relay's directory (database, config, key).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free UDP port on loopback (bound, then released).
pub fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind(("127.0.0.1", 0)).unwrap();
    s.local_addr().unwrap().port()
}

/// One data root with any number of profiles, each with passphrase = its name.
pub struct Home {
    dir: tempfile::TempDir,
}

impl Default for Home {
    fn default() -> Self {
        Self::new()
    }
}

impl Home {
    /// A fresh data root.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The data root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `hush --profile P ARGS` and returns its output.
    pub fn hush(&self, profile: &str, args: &[&str]) -> Output {
        Command::new(bin_dir().join("hush"))
            .env("HUSH_HOME", self.path())
            .env("HUSH_PASSPHRASE", profile)
            .args(["--profile", profile])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Like [`Self::hush`] with `--json`, asserting success and parsing the output.
    pub fn json(&self, profile: &str, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.hush(profile, &a);
        assert!(
            out.status.success(),
            "hush {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}
