//! Test harness: runs the real `hush-relay` binary in a temporary directory on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test
#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use hush_proto::{ENVELOPE_LEN, Envelope, FetchSecret, MailboxId, RelayAddress};
use hush_relay::tls::Identity;
use hush_transport::RelayClient;
use sha2::{Digest, Sha256};

pub const BIN: &str = env!("CARGO_BIN_EXE_hush-relay");

pub struct TestRelay {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
    pub child: Option<Child>,
    pub addr: Option<RelayAddress>,
    pub metrics_port: Option<u16>,
    runs: usize,
}

impl TestRelay {
    /// `init` a relay directory and start it with `env` overrides.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(BIN)
            .args(["init", "--dir"])
            .arg(dir.path().join("relay"))
            .args([
                "--public-address",
                "localhost:4433",
                "--listen",
                "127.0.0.1:0",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "init failed: {out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.contains("relay address: hush://"), "{stdout}");
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        env.push(("HUSH_RELAY_METRICS_LISTEN".into(), "127.0.0.1:0".into()));
        let mut r = Self {
            dir,
            env,
            child: None,
            addr: None,
            metrics_port: None,
            runs: 0,
        };
        r.run();
        r
    }

    pub fn relay_dir(&self) -> PathBuf {
        self.dir.path().join("relay")
    }

    pub fn log_path(&self, run: usize) -> PathBuf {
        self.dir.path().join(format!("relay-{run}.log"))
    }

    /// Every log line written by every run so far.
    pub fn all_logs(&self) -> String {
        (0..self.runs)
            .map(|i| std::fs::read_to_string(self.log_path(i)).unwrap_or_default())
            .collect()
    }

    /// Starts the binary (again) and waits until it listens.
    pub fn run(&mut self) {
        assert!(self.child.is_none());
        let log = self.log_path(self.runs);
        self.runs += 1;
        let child = Command::new(BIN)
            .arg("run")
            .arg("--config")
            .arg(self.relay_dir().join("config.toml"))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let (port, metrics) = wait_for_ports(&log, self.child.as_mut().unwrap());
        let id = Identity::load(
            &self.relay_dir().join("cert.pem"),
            &self.relay_dir().join("key.pem"),
        )
        .unwrap();
        self.addr = Some(
            format!("hush://{}@127.0.0.1:{port}", id.pin().unwrap())
                .parse()
                .unwrap(),
        );
        self.metrics_port = Some(metrics);
    }

    pub fn addr(&self) -> &RelayAddress {
        self.addr.as_ref().unwrap()
    }

    pub async fn client(&self) -> RelayClient {
        RelayClient::connect(self.addr()).await.unwrap()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// SIGTERM and wait for exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().unwrap();
        let st = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        c.wait().unwrap()
    }

    /// GET a path on the metrics listener.
    pub async fn http_get(&self, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.metrics_port.unwrap()))
            .await
            .unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    /// A metric value from /metrics (first sample whose line starts with `name`).
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self.http_get("/metrics").await;
        text.lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("metric {name} missing"))
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for_ports(log: &Path, child: &mut Child) -> (u16, u16) {
    let find = |text: &str, what: &str| -> Option<u16> {
        text.lines()
            .find(|l| l.contains(what))
            .and_then(|l| l.split("port=").nth(1))
            .and_then(|p| p.trim().parse().ok())
    };
    for _ in 0..1500 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let (Some(p), Some(m)) = (
            find(&text, "relay listening"),
            find(&text, "metrics listening"),
        ) {
            return (p, m);
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("relay exited early ({st}): {text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "relay did not start: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// A deterministic fetch secret for test mailbox `i` (distinct per `tag`).
pub fn secret(tag: &str, i: u64) -> FetchSecret {
    let mut h = Sha256::new();
    h.update(b"hush-relay test secret");
    h.update(tag.as_bytes());
    h.update(i.to_be_bytes());
    FetchSecret::from_bytes(h.finalize().into())
}

pub fn mailbox(tag: &str, i: u64) -> MailboxId {
    secret(tag, i).mailbox_id()
}

/// Stand-in ciphertext: `plaintext` XORed with a SHA-256 counter keystream keyed by `n`. The
/// relay must store these bytes as they are; tests check the plaintext never appears.
pub fn sealed(plaintext: &[u8], n: u64) -> Envelope {
    let mut out = [0u8; ENVELOPE_LEN];
    for (block, chunk) in out.chunks_mut(32).enumerate() {
        let mut h = Sha256::new();
        h.update(b"keystream");
        h.update(n.to_be_bytes());
        h.update((block as u64).to_be_bytes());
        let ks: [u8; 32] = h.finalize().into();
        for (j, b) in chunk.iter_mut().enumerate() {
            let p = plaintext.get(block * 32 + j).copied().unwrap_or(0);
            *b = p ^ ks[j];
        }
    }
    Envelope::new(Box::new(out))
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
