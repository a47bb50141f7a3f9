//! End to end through the terminal UI: two real `hush` TUIs in tmux, driven by keys
//! (`send-keys`) and read from the screen (`capture-pane`), as a person would use them.
//!
//! Both profiles share one data root, so the second TUI uses the embedded relay that the
//! first one serves on loopback. The test creates both profiles on the setup screen, makes
//! an invite on alice, accepts it on bob, exchanges messages both ways, waits for the
//! delivered mark, quits, and checks that the screens were cleared.
//!
//! Each test runs its own tmux server (`tmux -L <unique socket>`), killed at the end even
//! when the test fails. tmux is required: without it the test fails (`scripts/test`
//! installs it), it does not skip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hush_testkit::{hush_bin, poll};

/// How long anything may take to show up on a screen.
const PATIENCE: Duration = Duration::from_secs(30);
/// How often a screen (or an exit status file) is read while waiting.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// A private tmux server, killed on drop.
struct Tmux {
    socket: String,
    config: PathBuf,
    /// The socket file, known once the server runs; kill-server leaves it behind.
    socket_path: OnceCell<PathBuf>,
}

impl Tmux {
    fn start(dir: &Path) -> Self {
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
    fn command(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-L")
            .arg(&self.socket)
            .arg("-f")
            .arg(&self.config)
            .env("TERM", "xterm-256color");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
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
    fn open_tui(&self, dir: &Path, home: &Path, profile: &str) {
        let status = exit_file(dir, profile);
        self.run(&[
            "new-session",
            "-d",
            "-s",
            profile,
            "-x",
            "220",
            "-y",
            "50",
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
    fn press(&self, session: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", session];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Types text literally.
    fn type_text(&self, session: &str, text: &str) {
        self.run(&["send-keys", "-t", session, "-l", text]);
    }

    /// The screen and its scrollback.
    fn screen(&self, session: &str) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", session, "-S", "-", "-E", "-"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the screen until `ok` holds; fails with the screen after [`PATIENCE`].
    fn wait_for(&self, session: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
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

    fn wait_text(&self, session: &str, text: &str) -> String {
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

fn exit_file(dir: &Path, profile: &str) -> PathBuf {
    dir.join(format!("{profile}.exit"))
}

/// The first `hush:` link on the screen.
fn find_link(screen: &str) -> Option<String> {
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
fn set_up(tmux: &Tmux, profile: &str) {
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

/// Runs a `:` command from insert or normal mode; leaves the TUI in normal mode.
fn command(tmux: &Tmux, session: &str, line: &str) {
    tmux.press(session, &["Escape"]);
    tmux.type_text(session, &format!(":{line}"));
    tmux.press(session, &["Enter"]);
}

/// Types a message in insert mode and sends it.
fn send(tmux: &Tmux, session: &str, text: &str) {
    tmux.press(session, &["Escape"]);
    tmux.press(session, &["i"]);
    tmux.type_text(session, text);
    tmux.press(session, &["Enter"]);
}

#[test]
fn two_tuis_invite_accept_and_chat() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let tmux = Tmux::start(dir.path());

    // alice first: her TUI serves the embedded relay that bob's then uses.
    tmux.open_tui(dir.path(), &home, "alice");
    set_up(&tmux, "alice");
    tmux.open_tui(dir.path(), &home, "bob");
    set_up(&tmux, "bob");

    // An invite on alice's screen: QR code and the link on one line.
    command(&tmux, "alice", "invite");
    let screen = tmux.wait_for("alice", "invite link", |s| {
        find_link(s).is_some_and(|l| l.len() > 100) && s.contains("Esc closes")
    });
    assert!(screen.contains("One-time invite"), "{screen}");
    assert!(screen.contains('▀'), "a QR code at 220x50:\n{screen}");
    let link = find_link(&screen).unwrap();
    tmux.press("alice", &["Escape"]);
    tmux.wait_for("alice", "the invite popup closed", |s| {
        find_link(s).is_none()
    });

    // bob accepts it and names the contact; alice learns of the new contact.
    command(&tmux, "bob", &format!("accept {link} alice"));
    tmux.wait_text("bob", "added alice");
    tmux.wait_text("bob", "to alice");
    let first = "hello alice, it is bob";
    send(&tmux, "bob", first);
    tmux.wait_text("bob", &format!("me: {first}"));
    tmux.wait_text("alice", "new contact:");
    tmux.wait_text("alice", first);
    command(&tmux, "alice", "rename bob");
    tmux.wait_text("alice", "to bob");

    // Both ways, each message on both screens.
    let second = "hi bob, alice here. Got it.";
    send(&tmux, "alice", second);
    tmux.wait_text("alice", &format!("me: {second}"));
    tmux.wait_text("bob", &format!("alice: {second}"));
    let third = "great, talk tomorrow";
    send(&tmux, "bob", third);
    tmux.wait_text("alice", &format!("bob: {third}"));
    tmux.wait_text("bob", &format!("me: {third}"));

    // The peer's receipts turn the marks into delivered.
    tmux.wait_for("bob", "a delivered mark", |s| {
        s.lines().any(|l| l.contains(first) && l.contains("✓✓"))
    });
    tmux.wait_for("alice", "a delivered mark", |s| {
        s.lines().any(|l| l.contains(second) && l.contains("✓✓"))
    });

    // Quit both: the screen and the scrollback no longer show the conversation.
    for session in ["bob", "alice"] {
        tmux.press(session, &["C-c"]);
        let status = poll(PATIENCE, LOOK_EVERY, || {
            std::fs::read_to_string(exit_file(dir.path(), session)).ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "{session}: still running after Ctrl-C:\n{}",
                tmux.screen(session)
            )
        });
        let status = status.trim().to_string();
        assert_eq!(status, "0", "{session}: exit status");
        let screen = tmux.screen(session);
        for text in [first, second, third, "Contacts", "relay: connected"] {
            assert!(
                !screen.contains(text),
                "{session}: {text:?} still visible after exit:\n{screen}"
            );
        }
    }
}
