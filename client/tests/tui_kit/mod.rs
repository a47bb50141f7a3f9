//! The tmux harness of the TUI suites (`tui_*.rs`): a private tmux server, TUIs opened in
//! its sessions, keys sent, screens read and waited for, and the steps every suite takes
//! (first-run setup, a `:` command, sending a message).
//!
//! A folder, not a file, so that cargo does not build it as a suite of its own. Each suite
//! uses only some of it.
#![allow(dead_code)] // each suite that includes this uses a part of it

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hush_testkit::{hush_bin, poll};

/// How long anything may take to show up on a screen.
pub const PATIENCE: Duration = Duration::from_secs(30);
/// How often a screen (or an exit status file) is read while waiting.
pub const LOOK_EVERY: Duration = Duration::from_millis(100);

/// A private tmux server, killed on drop.
pub struct Tmux {
    socket: String,
    config: PathBuf,
    /// The socket file, known once the server runs; kill-server leaves it behind.
    socket_path: OnceCell<PathBuf>,
}

impl Tmux {
    pub fn start(dir: &Path) -> Self {
        match Command::new("tmux").arg("-V").output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "`tmux -V` failed ({}); this test needs a working tmux",
                out.status
            ),
            Err(e) => panic!(
                "tmux is not installed ({e}); this test drives the TUI through tmux: install \
                 it (`apt-get install tmux`; scripts/test does) and run again"
            ),
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let socket = format!("hush-tui-test-{}-{nanos}", std::process::id());
        // Keep dead panes so the screen after exit can be read, and draw on the normal
        // screen (no alternate screen), so that what stays visible after exit is what
        // hush left there, not what tmux restored.
        let config = dir.join("tmux.conf");
        std::fs::write(
            &config,
            "set -g remain-on-exit on\nsetw -g alternate-screen off\nset -g history-limit 5000\n",
        )
        .unwrap();
        Self {
            socket,
            config,
            socket_path: OnceCell::new(),
        }
    }

    /// `tmux` talking to this test's server.
    pub fn command(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-L")
            .arg(&self.socket)
            .arg("-f")
            .arg(&self.config)
            .env("TERM", "xterm-256color");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.command().args(args).output().expect("running tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Opens the TUI of `profile` in a new 220x50 session named after it. A shell around
    /// it writes its exit status to `<dir>/<profile>.exit`: tmux does not always notice that
    /// a pane's program exited (a missed SIGCHLD leaves it a zombie), the file always tells.
    pub fn open_tui(&self, dir: &Path, home: &Path, profile: &str) {
        self.open_tui_sized(dir, home, profile, (220, 50));
    }

    /// [`Tmux::open_tui`] on a terminal of `(columns, rows)`.
    pub fn open_tui_sized(&self, dir: &Path, home: &Path, profile: &str, size: (u16, u16)) {
        let (columns, rows) = (size.0.to_string(), size.1.to_string());
        let status = exit_file(dir, profile);
        self.run(&[
            "new-session",
            "-d",
            "-s",
            profile,
            "-x",
            &columns,
            "-y",
            &rows,
            "sh",
            "-c",
            r#"env -u HUSH_PASSPHRASE HUSH_HOME="$1" "$2" --profile "$3"; echo $? > "$4.tmp"; mv "$4.tmp" "$4""#,
            "sh",
            &home.display().to_string(),
            &hush_bin().display().to_string(),
            profile,
            &status.display().to_string(),
        ]);
        if self.socket_path.get().is_none() {
            let out = self.run(&["display-message", "-p", "#{socket_path}"]);
            let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let _ = self.socket_path.set(PathBuf::from(path));
        }
    }

    /// Presses keys by tmux name (`Enter`, `Escape`, `C-c`).
    pub fn press(&self, session: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", session];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Types text literally.
    pub fn type_text(&self, session: &str, text: &str) {
        self.run(&["send-keys", "-t", session, "-l", text]);
    }

    /// The screen and its scrollback.
    pub fn screen(&self, session: &str) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", session, "-S", "-", "-E", "-"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the screen until `ok` holds; fails with the screen after [`PATIENCE`].
    pub fn wait_for(&self, session: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        poll(PATIENCE, LOOK_EVERY, || {
            let screen = self.screen(session);
            ok(&screen).then_some(screen)
        })
        .unwrap_or_else(|| {
            panic!(
                "{session}: no {what} after {PATIENCE:?}; the screen:\n{}",
                self.screen(session)
            )
        })
    }

    pub fn wait_text(&self, session: &str, text: &str) -> String {
        self.wait_for(session, &format!("{text:?}"), |s| s.contains(text))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Every screen, for the failure report.
            for session in ["alice", "bob"] {
                let out = self
                    .command()
                    .args(["capture-pane", "-p", "-t", session])
                    .output();
                if let Ok(out) = out {
                    eprintln!(
                        "--- {session}'s screen\n{}",
                        String::from_utf8_lossy(&out.stdout)
                    );
                }
            }
        }
        let _ = self.command().arg("kill-server").output();
        if let Some(path) = self.socket_path.get() {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub fn exit_file(dir: &Path, profile: &str) -> PathBuf {
    dir.join(format!("{profile}.exit"))
}

/// The first `hush:` link on the screen.
pub fn find_link(screen: &str) -> Option<String> {
    let start = screen.find("hush:")?;
    let link: String = screen[start..]
        .chars()
        .skip(5)
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    (!link.is_empty()).then(|| format!("hush:{link}"))
}

/// Creates the profile on the first-run screen: the name `--profile` prefilled, passphrase
/// twice, empty relay (built-in).
pub fn set_up(tmux: &Tmux, profile: &str) {
    tmux.wait_text(profile, "first run");
    tmux.wait_text(profile, &format!("Profile name      {profile}"));
    tmux.press(profile, &["Enter"]);
    let pass = format!("{profile} has a long passphrase");
    tmux.type_text(profile, &pass);
    tmux.press(profile, &["Enter"]);
    tmux.type_text(profile, &pass);
    tmux.press(profile, &["Enter"]);
    tmux.press(profile, &["Enter"]);
    tmux.wait_text(profile, "relay: connected");
}

/// Presses Escape and waits until the status line says NORMAL. A key sent right after an
/// Escape can reach the TUI in the same read and be taken as Alt and that key (a terminal
/// cannot tell the two apart): that turned `Escape i` into a typed `i` under load.
pub fn to_normal_mode(tmux: &Tmux, session: &str) {
    tmux.press(session, &["Escape"]);
    tmux.wait_for(session, "normal mode", |s| {
        s.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .is_some_and(|l| l.contains("NORMAL"))
    });
}

/// Runs a `:` command from insert or normal mode; leaves the TUI in normal mode.
pub fn command(tmux: &Tmux, session: &str, line: &str) {
    to_normal_mode(tmux, session);
    tmux.type_text(session, &format!(":{line}"));
    tmux.press(session, &["Enter"]);
}

/// Types a message in insert mode and sends it.
pub fn send(tmux: &Tmux, session: &str, text: &str) {
    to_normal_mode(tmux, session);
    tmux.press(session, &["i"]);
    tmux.type_text(session, text);
    tmux.press(session, &["Enter"]);
}
