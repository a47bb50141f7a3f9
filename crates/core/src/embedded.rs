//! The embedded relay: with no relay configured, the client serves a hush relay on
//! loopback so two profiles on one machine can talk right after install.
//!
//! One embedded relay exists per data root, with a stable identity and port (kept in
//! `<root>/embedded-relay/`), so its address, and the invites that carry it, stay valid
//! across restarts. If another local process already serves it (its database is locked),
//! this process uses that one instead of starting a second.

use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};

use hush_proto::RelayAddress;
use hush_relay::config::Config;
use hush_relay::server::Relay;
use hush_relay::tls::Identity;

use crate::error::{Error, Result};

/// A relay this process serves; stopped when dropped or by [`EmbeddedRelay::stop`].
pub struct EmbeddedRelay {
    relay: Option<Relay>,
}

impl std::fmt::Debug for EmbeddedRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedRelay(..)")
    }
}

impl EmbeddedRelay {
    /// Stops serving gracefully.
    pub async fn stop(mut self) {
        if let Some(r) = self.relay.take() {
            let _ = r.shutdown().await;
        }
    }
}

fn dir(root: &Path) -> PathBuf {
    root.join("embedded-relay")
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Relay(format!("embedded relay: {e}"))
}

/// The embedded relay's address, creating its identity and choosing its port on first use.
pub fn address(root: &Path) -> Result<RelayAddress> {
    let d = dir(root);
    std::fs::create_dir_all(d.join("data"))?;
    let cert = d.join("cert.pem");
    let key = d.join("key.pem");
    if !cert.exists() || !key.exists() {
        let id = Identity::generate("localhost").map_err(err)?;
        std::fs::write(&key, id.key_pem())?;
        std::fs::write(&cert, id.cert_pem())?;
    }
    let port_file = d.join("port");
    let port: u16 = match std::fs::read_to_string(&port_file) {
        Ok(s) => s
            .trim()
            .parse()
            .map_err(|_| Error::StoreCorrupted("embedded relay port"))?,
        Err(_) => {
            // Ask the OS for a free UDP port once; it stays this relay's port.
            let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
            let port = sock.local_addr()?.port();
            std::fs::write(&port_file, port.to_string())?;
            port
        }
    };
    let id = Identity::load(&cert, &key).map_err(err)?;
    let pin = id.pin().map_err(err)?;
    format!("hush://{pin}@127.0.0.1:{port}")
        .parse()
        .map_err(|_| err("bad address"))
}

/// Serves the embedded relay unless another local process does already (`Ok(None)`).
pub async fn serve(root: &Path) -> Result<Option<EmbeddedRelay>> {
    let addr = address(root)?;
    let d = dir(root);
    let text = format!(
        "listen = \"127.0.0.1:{port}\"\ndata_dir = {data:?}\ncert = {cert:?}\nkey = {key:?}\n[log]\nlevel = \"warn\"\n",
        port = addr.port,
        data = d.join("data"),
        cert = d.join("cert.pem"),
        key = d.join("key.pem"),
    );
    let config = Config::parse(&text, "embedded relay", &[]).map_err(err)?;
    let id = Identity::load(&config.cert, &config.key).map_err(err)?;
    match Relay::start(&config, &id).await {
        Ok(relay) => Ok(Some(EmbeddedRelay { relay: Some(relay) })),
        Err(e) => {
            // Locked database or port in use: another local hush serves it.
            tracing::debug!(error = %e, "embedded relay already served elsewhere");
            Ok(None)
        }
    }
}
