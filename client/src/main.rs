//! The `hush` terminal client.
//!
//! This binary will host the ratatui TUI and the scripting CLI on top of `hush-core`.
//! Neither exists yet: today it only reports its version and what the workspace provides,
//! so that nobody mistakes it for a working messenger.
#![forbid(unsafe_code)]

use std::process::ExitCode;

const STATUS: &str = "\
hush is under construction. What exists so far:
  - hush-crypto: handshake, double ratchet, envelopes, mailbox pseudonyms (library)
The messenger itself (profiles, contacts, sending and receiving) is not available yet.";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("--version" | "-V") => {
            println!("hush {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        None | Some("--help" | "-h") => {
            println!("{STATUS}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("hush: unknown command {other:?}; the client is not built yet (see README)");
            ExitCode::from(2)
        }
    }
}
