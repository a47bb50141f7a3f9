//! Test hooks only (cargo feature `test-hooks`): a record of every connection's peer
//! address and every request frame's bytes, so end-to-end tests of private routing can
//! show what each relay saw (docs/PROTOCOL.md II.4.2, "Tests").
//!
//! Owns: the file named by [`TEST_RECORD_ENV`], one line per event: `conn <ip>` when a
//! connection is admitted, `frame <ip> <hex of the frame>` for each request read. Must never
//! exist in a production build: a relay that writes addresses down is what hush is built
//! against.

use std::io::Write as _;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

/// Environment variable naming the record file (feature `test-hooks` only).
pub const TEST_RECORD_ENV: &str = "HUSH_RELAY_TEST_RECORD";

/// The open record file.
pub(crate) struct Record(Mutex<std::fs::File>);

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
        Some(Self(Mutex::new(file)))
    }

    fn line(&self, text: &str) {
        let mut f = self.0.lock().unwrap_or_else(PoisonError::into_inner);
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
        text.push('\n');
        self.line(&text);
    }
}
