//! Test hooks only (cargo feature `test-hooks`): a record of every connection's peer
//! address and every request frame's bytes, so end-to-end tests of private routing can
//! show what each relay saw (docs/PROTOCOL.md II.4.2, "Tests").
//!
//! Owns: the file named by [`TEST_RECORD_ENV`], one line per event: `conn <ip>` when a
//! connection is admitted, `frame <ip> <hex of the frame>` for each request read, followed
//! by `at <ip> <ms> <kind>` (milliseconds since the record opened, on the relay's monotonic
//! clock, and the request's kind byte in hex), and `fetched <ip> <ms> <n>` when a fetch
//! answer carries `n` envelopes (so tests of traffic analysis can count what each peer
//! sent and received per interval of the relay's own time). Must never exist in a
//! production build (the peer is always the second field of a line): a relay that writes addresses down is what hush is built against.

use std::io::Write as _;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Environment variable naming the record file (feature `test-hooks` only).
pub const TEST_RECORD_ENV: &str = "HUSH_RELAY_TEST_RECORD";

/// The open record file.
pub(crate) struct Record {
    file: Mutex<std::fs::File>,
    opened: Instant,
}

impl Record {
    /// The record named by [`TEST_RECORD_ENV`], if it is set and the file opens.
    pub(crate) fn from_env() -> Option<Self> {
        let path = std::env::var_os(TEST_RECORD_ENV)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()?;
        tracing::warn!("test record is active: peer addresses and frames are written down");
        Some(Self {
            file: Mutex::new(file),
            opened: Instant::now(),
        })
    }

    fn line(&self, text: &str) {
        let mut f = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = f.write_all(text.as_bytes());
    }

    pub(crate) fn connection(&self, peer: IpAddr) {
        self.line(&format!("conn {peer}\n"));
    }

    pub(crate) fn frame(&self, peer: IpAddr, bytes: &[u8]) {
        let mut text = format!("frame {peer} ");
        for b in bytes {
            text.push_str(&format!("{b:02x}"));
        }
        let kind = bytes.get(1).copied().unwrap_or(0);
        text.push_str(&format!("\nat {peer} {} {kind:02x}\n", self.ms()));
        self.line(&text);
    }

    pub(crate) fn fetched(&self, peer: IpAddr, envelopes: usize) {
        self.line(&format!("fetched {peer} {} {envelopes}\n", self.ms()));
    }

    fn ms(&self) -> u128 {
        self.opened.elapsed().as_millis()
    }
}
