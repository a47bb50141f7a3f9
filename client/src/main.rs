//! `hush`: the terminal client. With a subcommand it is the scripting CLI (this file and
//! `cli.rs`); without one it opens the terminal UI (`tui/`).
//!
//! A thin front end: every capability is hush-core engine API; this binary parses
//! arguments, obtains the passphrase, prints results (text or `--json`) and maps errors to
//! one line on stderr with a non-zero exit code. Logs go to the profile's `hush.log`, never
//! to the screen.
#![forbid(unsafe_code)]

mod cli;
mod control;
mod failure;
mod files_cli;
#[cfg(feature = "embedded-relay")]
mod local_relay;
mod terminal_text;
mod timer;
mod tui;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
