//! `hush-relay` processes in temporary directories on loopback, and loopback ports.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::hooks;
use crate::wait::{HANG_GUARD, kill_quietly, poll};

/// How long a starting relay may take to log that it listens.
const START_PATIENCE: Duration = Duration::from_secs(30);
/// How often the log is read while waiting.
const LOG_POLL: Duration = Duration::from_millis(20);

/// A `hush-relay` process with its own directory on a fixed loopback port: restartable on
/// the same port and data, so clients configured with its address reach every run. Every
/// run writes its own log file and serves metrics on its own free port. Killed on drop.
pub struct Relay {
    dir: tempfile::TempDir,
    child: Option<Child>,
    runs: usize,
    port: u16,
    metrics_port: Option<u16>,
    env: Vec<(String, String)>,
    address: String,
}

impl Relay {
    /// `hush-relay init`, then `run` on a free loopback port; waits until it listens.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Like [`Self::start`], with environment overrides (`HUSH_RELAY_*`) kept for every run.
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        Self::start_at("127.0.0.1", env)
    }

    /// Like [`Self::start_with`], listening on the loopback address `ip` (`127.0.0.2`...),
    /// so that tests can tell relays apart by the address their peers see.
    pub fn start_at(ip: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_udp_port_on(ip);
        let out = Command::new(crate::relay_bin())
            .args(["init", "--dir"])
            .arg(dir.path().join("relay"))
            .args(["--public-address", &format!("{ip}:{port}")])
            .args(["--listen", &format!("{ip}:{port}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "relay init failed: {out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.contains("relay address: hush://"), "{stdout}");
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
            metrics_port: None,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            address,
        };
        r.run();
        r
    }

    /// `hush://PIN@<ip>:PORT` (127.0.0.1 unless started at another), the same for every run.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The loopback UDP port it listens on, the same for every run.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The relay's directory (config, key, certificate, data).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().join("relay")
    }

    /// Sets (or replaces) an environment override for the next runs.
    pub fn set_env(&mut self, key: &str, value: impl ToString) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_string()));
    }

    /// (Re)starts the process on the same port and data with the kept overrides; waits
    /// until it logs that it listens (and serves metrics).
    pub fn run(&mut self) {
        self.run_with(&[]);
    }

    /// Like [`Self::run`], with `extra` overrides for this run only.
    pub fn run_with(&mut self, extra: &[(&str, &str)]) {
        assert!(self.child.is_none(), "relay already running");
        let log = self.log_path(self.runs);
        self.runs += 1;
        let mut cmd = Command::new(crate::relay_bin());
        cmd.arg("run")
            .arg("--config")
            .arg(self.dir().join("config.toml"));
        for k in hooks::CLEARED {
            cmd.env_remove(k);
        }
        let mut child = cmd
            // Several relays run at once: each gets its own metrics port.
            .env(hooks::RELAY_METRICS_LISTEN, "127.0.0.1:0")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let ports = poll(START_PATIENCE, LOG_POLL, || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(st) = child.try_wait().unwrap() {
                panic!("relay exited early ({st}): {text}");
            }
            Some((
                logged_port(&text, "relay listening")?,
                logged_port(&text, "metrics listening")?,
            ))
        });
        self.child = Some(child);
        let (port, metrics) =
            ports.unwrap_or_else(|| panic!("relay did not start: {}", self.last_log()));
        assert_eq!(
            port,
            self.port,
            "relay listens on another port: {}",
            self.last_log()
        );
        self.metrics_port = Some(metrics);
    }

    /// The current run's process id (to read its counters in `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("relay not running").id()
    }

    /// SIGKILL: the relay gets no chance to do anything.
    pub fn kill9(&mut self) {
        let mut c = self.child.take().expect("relay not running");
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// SIGTERM, then waits for the exit (bounded by the hang guard).
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("relay not running");
        let st = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let status = poll(HANG_GUARD, LOG_POLL, || c.try_wait().unwrap());
        status.unwrap_or_else(|| {
            kill_quietly(Some(c));
            panic!(
                "relay ignored SIGTERM for {HANG_GUARD:?}: {}",
                self.last_log()
            )
        })
    }

    fn log_path(&self, run: usize) -> PathBuf {
        self.dir.path().join(format!("relay-{run}.log"))
    }

    /// Every log file written so far (one a run, `relay-0.log` first).
    pub fn log_files(&self) -> Vec<PathBuf> {
        (0..self.runs).map(|i| self.log_path(i)).collect()
    }

    /// The log of the current (last) run.
    pub fn last_log(&self) -> String {
        std::fs::read_to_string(self.log_path(self.runs - 1)).unwrap_or_default()
    }

    /// Every log line written by every run so far.
    pub fn all_logs(&self) -> String {
        self.log_files()
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
    }

    /// Polls the current run's log for `needle` (bounded).
    pub fn wait_log(&self, needle: &str) {
        poll(START_PATIENCE, LOG_POLL, || {
            self.last_log().contains(needle).then_some(())
        })
        .unwrap_or_else(|| panic!("relay never logged {needle:?}: {}", self.last_log()));
    }

    /// The current run's metrics port.
    pub fn metrics_port(&self) -> u16 {
        self.metrics_port.unwrap()
    }

    /// GET `path` on the current run's metrics listener: the whole response, headers too.
    pub fn http_get(&self, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port())).unwrap();
        s.set_read_timeout(Some(HANG_GUARD)).unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    }

    /// A sample from `/metrics`: the value of the first line starting with `name`
    /// (`name{label="x"}` selects a labelled sample).
    pub fn metric(&self, name: &str) -> u64 {
        let text = self.http_get("/metrics");
        text.lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("metric {name} missing: {text}"))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        kill_quietly(self.child.take());
    }
}

/// The port of the first log line containing `what` (`... port=N`).
fn logged_port(log: &str, what: &str) -> Option<u16> {
    log.lines()
        .find(|l| l.contains(what))
        .and_then(|l| l.split("port=").nth(1))
        .and_then(|p| p.trim().parse().ok())
}

/// A loopback port free on UDP and on TCP (bound, then released): a relay's QUIC endpoint
/// takes it on UDP, and its TCP listener (`tcp_listen = "same"`) on TCP.
pub fn free_udp_port() -> u16 {
    free_udp_port_on("127.0.0.1")
}

/// [`free_udp_port`] on the loopback address `ip`.
pub fn free_udp_port_on(ip: &str) -> u16 {
    loop {
        let s = std::net::UdpSocket::bind((ip, 0)).unwrap();
        let port = s.local_addr().unwrap().port();
        if std::net::TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
}

/// Whether a UDP socket is bound to `port` (read from /proc, so probing does not take it).
pub fn udp_port_bound(port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|f| {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|local| format!("{local} ").contains(&needle))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_read_from_the_log_lines() {
        let log = "2025 INFO hush_relay::server: relay listening port=4433\n\
                   2025 INFO hush_relay::server: metrics listening port=9100\n";
        assert_eq!(logged_port(log, "relay listening"), Some(4433));
        assert_eq!(logged_port(log, "metrics listening"), Some(9100));
        assert_eq!(logged_port(log, "stopped"), None);
    }
}
