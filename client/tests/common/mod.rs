//! Harness for the CLI's end-to-end tests: the real `hush` binary with isolated data roots
//! (real SQLCipher files in temporary directories) and real `hush-relay` processes on
//! loopback. Nothing is mocked.
//!
//! Waiting is done by bounded polling with generous limits; a hung process is killed after a
//! long guard so a failure is reported instead of hanging the run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test
#![allow(dead_code)] // not every test uses every helper

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

/// The `hush` binary under test.
pub const HUSH: &str = env!("CARGO_BIN_EXE_hush");

/// Longest any single hush or relay command may take before the test calls it hung. Not a
/// performance threshold: a command that is merely slow passes.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// The `hush-relay` binary next to `hush` in the target directory, built once if this test
/// run did not build it (`cargo test -p hush` builds only hush's binaries).
pub fn relay_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(HUSH).parent().unwrap();
        let bin = dir.join(format!("hush-relay{}", std::env::consts::EXE_SUFFIX));
        if !bin.exists() {
            // <target>/<profile>/hush: build into the same target directory and profile.
            let target = dir.parent().unwrap();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            // test-hooks: the tests move the relay's clock (HUSH_RELAY_TEST_CLOCK_OFFSET_SECS).
            cmd.args(["build", "-p", "hush-relay", "--bin", "hush-relay"])
                .args(["--features", "test-hooks"])
                .env("CARGO_TARGET_DIR", target);
            if dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            let st = cmd.status().unwrap();
            assert!(st.success(), "building hush-relay failed");
            assert!(bin.exists(), "hush-relay not found at {}", bin.display());
        }
        bin
    })
}

/// Waits for a child with a hang guard; kills it (by its id) if the guard passes.
fn wait_output(child: Child, what: &str) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(HANG_GUARD) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{what} hung (killed after {HANG_GUARD:?})");
        }
    }
}

/// A finished hush command.
#[derive(Debug)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub args: Vec<String>,
}

impl Out {
    /// Asserts exit code 0.
    pub fn ok(self) -> Self {
        assert!(
            self.status.success(),
            "hush {:?} failed ({}): {}",
            self.args,
            self.status,
            self.stderr
        );
        self
    }

    /// Asserts a non-zero exit.
    pub fn fails(self) -> Self {
        assert!(
            !self.status.success(),
            "hush {:?} should have failed; stdout: {}",
            self.args,
            self.stdout
        );
        self
    }

    /// Parses stdout as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "hush {:?}: stdout is not JSON ({e}): {:?}",
                self.args, self.stdout
            )
        })
    }

    /// The single line of stderr (asserts there is exactly one).
    pub fn error_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "hush {:?}: expected a one-line error, got {:?}",
            self.args,
            self.stderr
        );
        lines[0]
    }
}

/// A data root (`HUSH_HOME`) holding any number of profiles; every profile's passphrase is
/// `pass-<profile>`.
pub struct Home {
    dir: tempfile::TempDir,
}

impl Default for Home {
    fn default() -> Self {
        Self::new()
    }
}

/// A hush invocation being built.
pub struct Hush<'a> {
    home: &'a Home,
    profile: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
    passphrase: Option<String>,
}

impl Hush<'_> {
    pub fn env(mut self, k: &str, v: impl ToString) -> Self {
        self.env.push((k.into(), v.to_string()));
        self
    }

    /// Shifts the client's clock by `secs`.
    pub fn clock(self, secs: i64) -> Self {
        self.env("HUSH_CLOCK_OFFSET_SECS", secs)
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn passphrase(mut self, p: &str) -> Self {
        self.passphrase = Some(p.into());
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new(HUSH);
        c.current_dir(self.home.scratch())
            .env("HUSH_HOME", self.home.root())
            .env(
                "HUSH_PASSPHRASE",
                self.passphrase
                    .clone()
                    .unwrap_or_else(|| format!("pass-{}", self.profile)),
            )
            .env_remove("HUSH_CLOCK_OFFSET_SECS")
            .env_remove("HUSH_TEST_CRASH_AT")
            .env_remove("HUSH_LOG")
            .args(["--profile", &self.profile])
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Starts the command without waiting (for `recv --wait` running alongside others).
    pub fn spawn(self) -> Running {
        let mut child = self.command().spawn().unwrap();
        if let Some(bytes) = &self.stdin {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(bytes).unwrap();
        }
        Running {
            child: Some(child),
            args: self.args,
        }
    }

    /// Runs to completion.
    pub fn run(self) -> Out {
        self.spawn().finish()
    }

    /// Runs, asserts success with nothing on stderr (no warning either), parses JSON
    /// (`--json` is added).
    pub fn json(mut self) -> Value {
        self.args.insert(0, "--json".into());
        let out = self.run().ok();
        assert!(
            out.stderr.is_empty(),
            "hush {:?} succeeded but wrote to stderr: {}",
            out.args,
            out.stderr
        );
        out.json()
    }
}

/// A hush process running in the background.
pub struct Running {
    child: Option<Child>,
    args: Vec<String>,
}

impl Running {
    pub fn finish(mut self) -> Out {
        let child = self.child.take().unwrap();
        let out = wait_output(child, &format!("hush {:?}", self.args));
        Out {
            status: out.status,
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            args: std::mem::take(&mut self.args),
        }
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

impl Home {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        std::fs::create_dir(dir.path().join("cwd")).unwrap();
        Self { dir }
    }

    /// `HUSH_HOME`.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Working directory of hush processes (where an aborted process could leave a core).
    fn scratch(&self) -> PathBuf {
        self.dir.path().join("cwd")
    }

    /// A profile's directory.
    pub fn profile_dir(&self, profile: &str) -> PathBuf {
        self.root().join("profiles").join(profile)
    }

    /// `hush --profile PROFILE ARGS...`
    pub fn hush<'a>(&'a self, profile: &str, args: &[&str]) -> Hush<'a> {
        Hush {
            home: self,
            profile: profile.into(),
            args: args.iter().map(|a| (*a).to_string()).collect(),
            env: Vec::new(),
            stdin: None,
            passphrase: None,
        }
    }

    /// `init`, and `relay set` if a relay is given.
    pub fn init(&self, profile: &str, relay: Option<&Relay>) {
        let v = self.hush(profile, &["init"]).json();
        assert_eq!(v["created"], true, "{v}");
        if let Some(r) = relay {
            let v = self.hush(profile, &["relay", "set", &r.address]).json();
            assert_eq!(v["relay"], r.address.as_str(), "{v}");
        }
    }

    /// A one-time invite link from `profile`.
    pub fn invite(&self, profile: &str, name: Option<&str>) -> String {
        let mut args = vec!["invite"];
        if let Some(n) = name {
            args.extend(["--name", n]);
        }
        let v = self.hush(profile, &args).json();
        assert_eq!(v["kind"], "one-time", "{v}");
        v["link"].as_str().unwrap().to_string()
    }

    /// `accept LINK --name NAME`; returns the handshake state.
    pub fn accept(&self, profile: &str, link: &str, name: &str) -> String {
        let v = self.hush(profile, &["accept", link, "--name", name]).json();
        assert_eq!(v["contact"], name, "{v}");
        v["handshake"].as_str().unwrap().to_string()
    }

    /// `send NAME TEXT`; returns the delivery state it reports.
    pub fn send(&self, profile: &str, to: &str, text: &str) -> String {
        let v = self.hush(profile, &["send", to, text]).json();
        assert_eq!(v["contact"], to, "{v}");
        v["state"].as_str().unwrap().to_string()
    }

    /// `recv`: (contact, text) of each new message, in the order printed.
    pub fn recv(&self, profile: &str) -> Vec<(String, String)> {
        messages(&self.hush(profile, &["recv"]).json())
    }

    /// `history NAME` as JSON objects.
    pub fn history(&self, profile: &str, contact: &str) -> Vec<Value> {
        self.hush(profile, &["history", contact, "--limit", "1000"])
            .json()
            .as_array()
            .unwrap()
            .clone()
    }

    /// Contact names.
    pub fn contacts(&self, profile: &str) -> Vec<String> {
        self.hush(profile, &["contacts"])
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// The safety number digits with a contact.
    pub fn safety(&self, profile: &str, contact: &str) -> String {
        let v = self.hush(profile, &["verify", contact]).json();
        v["safety_number"].as_str().unwrap().to_string()
    }
}

/// (contact, text) pairs from `recv --json` output.
pub fn messages(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap_or_else(|| panic!("recv output is not an array: {v}"))
        .iter()
        .map(|m| {
            (
                m["contact"].as_str().unwrap().to_string(),
                m["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Texts of a history, with their direction and state: (outgoing, text, state).
pub fn history_rows(h: &[Value]) -> Vec<(bool, String, String)> {
    h.iter()
        .map(|m| {
            (
                m["outgoing"].as_bool().unwrap(),
                m["text"].as_str().unwrap().to_string(),
                m["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A `hush-relay` process with its own directory on a fixed loopback port, restartable.
pub struct Relay {
    dir: tempfile::TempDir,
    child: Option<Child>,
    runs: usize,
    port: u16,
    /// `hush://PIN@127.0.0.1:PORT`.
    pub address: String,
}

impl Relay {
    /// `hush-relay init`, then `run` on a free loopback port; waits until it listens.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_udp_port();
        let out = Command::new(relay_bin())
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
            .unwrap_or_else(|| panic!("no relay address in {stdout:?}"))
            .to_string();
        let mut r = Self {
            dir,
            child: None,
            runs: 0,
            port,
            address,
        };
        r.run(&[]);
        r
    }

    /// The relay's directory (config, key, data).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().join("relay")
    }

    fn log_path(&self, run: usize) -> PathBuf {
        self.dir.path().join(format!("relay-{run}.log"))
    }

    /// The log output of the current (last) run.
    pub fn last_log(&self) -> String {
        std::fs::read_to_string(self.log_path(self.runs - 1)).unwrap_or_default()
    }

    /// Every log file written so far.
    pub fn log_files(&self) -> Vec<PathBuf> {
        (0..self.runs).map(|i| self.log_path(i)).collect()
    }

    /// (Re)starts the process on the same port and data directory, with extra environment
    /// (config overrides); waits until it logs that it listens.
    pub fn run(&mut self, env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "relay already running");
        let log = self.log_path(self.runs);
        self.runs += 1;
        let mut child = Command::new(relay_bin())
            .arg("run")
            .arg("--config")
            .arg(self.dir().join("config.toml"))
            .env_remove("RUST_LOG")
            .env_remove("HUSH_RELAY_CONFIG")
            .env("HUSH_RELAY_METRICS_LISTEN", "127.0.0.1:0")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut listening = false;
        for _ in 0..1500 {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("relay listening") {
                assert!(
                    text.contains(&format!("port={}", self.port)),
                    "relay listens on another port: {text}"
                );
                listening = true;
                break;
            }
            if let Some(st) = child.try_wait().unwrap() {
                panic!("relay exited early ({st}): {text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(listening, "relay did not start: {}", self.last_log());
        self.child = Some(child);
    }

    /// Polls the current run's log for `needle` (bounded).
    pub fn wait_log(&self, needle: &str) {
        for _ in 0..1500 {
            if self.last_log().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("relay never logged {needle:?}: {}", self.last_log());
    }

    /// A sample from the current run's `/metrics` (the first line starting with `name`).
    pub fn metric(&self, name: &str) -> u64 {
        use std::io::Read;
        let log = self.last_log();
        let port: u16 = log
            .lines()
            .find(|l| l.contains("metrics listening"))
            .and_then(|l| l.split("port=").nth(1))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metrics port in the relay log: {log}"));
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(HANG_GUARD)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("metric {name} missing: {text}"))
    }

    /// SIGKILL: the relay gets no chance to do anything.
    pub fn kill9(&mut self) {
        let mut c = self.child.take().expect("relay not running");
        c.kill().unwrap();
        c.wait().unwrap();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A free UDP port on loopback (bound, then released).
pub fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind(("127.0.0.1", 0)).unwrap();
    s.local_addr().unwrap().port()
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Path and bytes of every file under `dir` (to prove nothing changed).
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

/// Whether `needle` occurs in `hay` (raw bytes).
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A pair of profiles that have completed the handshake through `relay` (or the embedded
/// relay if `None`): `a` invited (and calls the other `b_name`), `b` accepted (and calls
/// the inviter `a_name`). Both sides' handshake traffic is processed, so each side's
/// mailboxes hold nothing afterwards.
pub fn pair(home: &Home, relay: Option<&Relay>, a: &str, b: &str) {
    home.init(a, relay);
    home.init(b, relay);
    let link = home.invite(a, Some(b));
    assert_eq!(home.accept(b, &link, a), "on-relay");
    // a picks up the handshake (creating contact `b`) and answers; b takes the answer.
    assert_eq!(home.recv(a), vec![]);
    assert_eq!(home.contacts(a), vec![b.to_string()]);
    assert_eq!(home.recv(b), vec![]);
}
