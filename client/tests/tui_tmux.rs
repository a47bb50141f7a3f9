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

mod tui_kit;

use hush_testkit::poll;
use tui_kit::{LOOK_EVERY, PATIENCE, Tmux, command, exit_file, find_link, send, set_up};

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

/// Tab in a real TUI completes the path of `:file` from the file system (an Arabic name, a
/// Chinese directory), and the help lists `:file` and `:save`. Seen failing: with the Tab
/// arm removed from `on_command_key`, the command line kept `ت` and the wait timed out.
#[test]
fn file_paths_complete_with_tab_and_the_help_lists_file_and_save() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let files = dir.path().join("وثائق");
    std::fs::create_dir_all(files.join("照片")).unwrap();
    std::fs::write(files.join("تقرير سري.pdf"), "x").unwrap();
    let tmux = Tmux::start(dir.path());
    tmux.open_tui(dir.path(), &home, "alice");
    set_up(&tmux, "alice");

    tui_kit::to_normal_mode(&tmux, "alice");
    tmux.type_text("alice", &format!(":file {}/ت", files.display()));
    tmux.press("alice", &["Tab"]);
    tmux.wait_text("alice", "وثائق/تقرير سري.pdf");
    tmux.press("alice", &["C-u"]);
    tmux.type_text("alice", &format!("file {}/照", files.display()));
    tmux.press("alice", &["Tab"]);
    tmux.wait_text("alice", "وثائق/照片/");
    tmux.press("alice", &["Escape"]);

    tui_kit::to_normal_mode(&tmux, "alice");
    tmux.type_text("alice", "?");
    let help = tmux.wait_text("alice", ":file PATH  :save [ID] [DIR]");
    assert!(help.contains("Tab completes"), "{help}");
    tmux.press("alice", &["Escape"]);
    command(&tmux, "alice", "quit");
    poll(PATIENCE, LOOK_EVERY, || {
        exit_file(dir.path(), "alice").exists().then_some(())
    })
    .expect("the TUI quits");
}
