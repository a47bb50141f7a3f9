//! Client data roots and the `hush` CLI run in them: each [`Home`] is an isolated
//! `HUSH_HOME` (real SQLCipher stores in a temporary directory) with any number of
//! profiles, and helpers that run a command and read its `--json` output.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};

use serde_json::Value;

use crate::hooks;
use crate::relay::Relay;
use crate::wait::{kill_quietly, output_guarded};

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
    /// Sets an environment variable for this process.
    pub fn env(mut self, k: &str, v: impl ToString) -> Self {
        self.env.push((k.into(), v.to_string()));
        self
    }

    /// Shifts the client's clock by `secs` (test hook).
    pub fn clock(self, secs: i64) -> Self {
        self.env(hooks::CLIENT_CLOCK_OFFSET, secs)
    }

    /// Makes the process abort at the named point (test hook), e.g. `before-ack`.
    pub fn crash_at(self, point: &str) -> Self {
        self.env(hooks::CLIENT_CRASH_AT, point)
    }

    /// Feeds `bytes` to its stdin (otherwise stdin is null, never a terminal).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Uses this passphrase instead of the profile's own.
    pub fn passphrase(mut self, p: &str) -> Self {
        self.passphrase = Some(p.into());
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new(crate::hush_bin());
        for k in hooks::CLEARED {
            c.env_remove(k);
        }
        c.current_dir(self.home.scratch())
            .env(hooks::HUSH_HOME, self.home.root())
            .env(
                hooks::HUSH_PASSPHRASE,
                self.passphrase
                    .clone()
                    .unwrap_or_else(|| format!("pass-{}", self.profile)),
            )
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

    /// Like [`Self::json`] where a warning is expected (a relay deliberately unreachable):
    /// asserts success and parses JSON, whatever stderr says.
    pub fn json_allowing_warnings(mut self) -> Value {
        self.args.insert(0, "--json".into());
        self.run().ok().json()
    }
}

/// A hush process running in the background.
pub struct Running {
    child: Option<Child>,
    args: Vec<String>,
}

impl Running {
    /// Waits for the exit (bounded by the hang guard).
    pub fn finish(mut self) -> Out {
        let child = self.child.take().unwrap();
        let out = output_guarded(child, &format!("hush {:?}", self.args));
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
        kill_quietly(self.child.take());
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
            let v = self.hush(profile, &["relay", "set", r.address()]).json();
            assert_eq!(v["relay"], r.address(), "{v}");
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
