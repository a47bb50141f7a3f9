//! Text as people write it, end to end through two real TUIs at 80x24 in tmux: an invite
//! link got out of one TUI by `:invite --file` and by copying it off the screen, accepted
//! in the other from a paste that brings line breaks; a Chinese conversation both ways,
//! every character found on both screens, with the reply's delivery mark (seen to fail,
//! no mark ever shown, when a mark that did not fit on a full last row was cut off at the
//! pane's edge); then a panic wipe, which must leave nothing on
//! the terminal, not even a line saying it happened.
//!
//! Both profiles share one data root: bob's TUI uses the relay alice's serves on loopback.
//! tmux is required (see tui_tmux.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failed unwrap is a failed test

mod tui_kit;

use std::os::unix::fs::PermissionsExt;

use hush_testkit::poll;
use tui_kit::{LOOK_EVERY, PATIENCE, Tmux, command, exit_file, send, set_up, to_normal_mode};

/// 71 characters, 142 columns: more than two rows of the conversation pane at 80 columns.
const FROM_BOB: &str = "我们明天下午三点在老地方见面，请带上那份文件和硬盘。如果有人跟踪你，就取消见面，改用这个应用联系我。不要打电话。";
const FROM_ALICE: &str = "好的，我会准时到。文件已经准备好了，硬盘也加密了。如果我迟到超过十五分钟，你就先离开，我们再约时间。";

/// The conversation pane's text on an 80-column screen: what is right of the contact
/// list, borders and spaces dropped, rows joined.
fn conversation(screen: &str) -> String {
    screen
        .lines()
        .filter_map(|l| l.split_once("││").map(|(_, r)| r))
        .collect::<String>()
        .chars()
        .filter(|c| !matches!(c, '│' | ' '))
        .collect()
}

/// The invite link on the invite screen: the rows from the one starting `hush:` while
/// they hold nothing but link characters, as a terminal selection copies them (with a
/// line break after each row).
fn link_rows(screen: &str) -> Option<String> {
    let rows: Vec<&str> = screen
        .lines()
        .skip_while(|l| !l.starts_with("hush:"))
        .map(str::trim_end)
        .take_while(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':'))
        })
        .collect();
    (!rows.is_empty()).then(|| rows.join("\n"))
}

#[test]
fn chinese_conversation_at_80x24_and_a_silent_wipe() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let tmux = Tmux::start(dir.path());

    tmux.open_tui_sized(dir.path(), &home, "alice", (80, 24));
    set_up(&tmux, "alice");
    tmux.open_tui_sized(dir.path(), &home, "bob", (80, 24));
    set_up(&tmux, "bob");

    // The link to a file, readable by alice only.
    let file = dir.path().join("invite.txt");
    command(&tmux, "alice", &format!("invite --file {}", file.display()));
    tmux.wait_text("alice", "link written to");
    let from_file = std::fs::read_to_string(&file).unwrap();
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the invite file is private");
    assert!(from_file.starts_with("hush:"), "{from_file:?}");

    // A second invite, got off the screen as a person copying it would.
    command(&tmux, "alice", "invite");
    let screen = tmux.wait_for("alice", "the invite link", |s| {
        link_rows(s).is_some_and(|l| l.len() > 100) && s.contains("Esc closes")
    });
    let copied = link_rows(&screen).unwrap();
    assert!(
        copied.contains('\n'),
        "at 80 columns the link takes rows:\n{screen}"
    );
    assert!(!screen.contains('│'), "no border to copy along:\n{screen}");
    tmux.press("alice", &["Escape"]);

    // bob pastes the copy, line breaks and all, into :accept.
    to_normal_mode(&tmux, "bob");
    tmux.type_text("bob", ":accept ");
    tmux.run(&["set-buffer", "-b", "link", &copied]);
    tmux.run(&["paste-buffer", "-p", "-b", "link", "-t", "bob"]);
    tmux.type_text("bob", " alice");
    tmux.press("bob", &["Enter"]);
    tmux.wait_text("bob", "added alice");

    send(&tmux, "bob", FROM_BOB);
    let want = FROM_BOB.to_string();
    tmux.wait_for("bob", "bob's message whole on his screen", |s| {
        conversation(s).contains(&want)
    });
    tmux.wait_for("alice", "bob's message whole on alice's screen", |s| {
        conversation(s).contains(&want)
    });
    send(&tmux, "alice", FROM_ALICE);
    let want = FROM_ALICE.to_string();
    tmux.wait_for("bob", "alice's reply whole on bob's screen", |s| {
        conversation(s).contains(&want)
    });
    // Her reply fills its last row at 80 columns exactly: its mark goes on a row of its
    // own, and turns to delivered when bob's receipt comes.
    tmux.wait_for(
        "alice",
        "her reply's delivered mark on alice's screen",
        |s| conversation(s).contains(&format!("{want}✓✓")),
    );

    // The panic wipe: a plain exit, nothing about it on the terminal.
    command(&tmux, "alice", "wipe");
    tmux.wait_text("alice", "panic wipe");
    tmux.press("alice", &["y"]);
    let status = poll(PATIENCE, LOOK_EVERY, || {
        std::fs::read_to_string(exit_file(dir.path(), "alice")).ok()
    })
    .unwrap_or_else(|| {
        panic!(
            "alice: still running after the wipe:\n{}",
            tmux.screen("alice")
        )
    });
    assert_eq!(status.trim(), "0", "alice: exit status");
    let screen = tmux.screen("alice");
    for text in ["wiped", "hush", FROM_ALICE, "Contacts"] {
        assert!(
            !screen.contains(text),
            "alice: {text:?} on the terminal after the wipe:\n{screen}"
        );
    }
    tmux.press("bob", &["C-c"]);
    poll(PATIENCE, LOOK_EVERY, || {
        std::fs::read_to_string(exit_file(dir.path(), "bob")).ok()
    })
    .unwrap_or_else(|| panic!("bob: still running after Ctrl-C:\n{}", tmux.screen("bob")));
}
