//! The relay this client serves itself on loopback when a profile names no relay, so two
//! profiles on one machine can talk right after install (cargo feature `embedded-relay`,
//! on by default). hush-core only sees it through [`hush_core::LocalRelay`].
//!
//! One local relay exists per data root, with a stable identity and port (kept in
//! `<root>/embedded-relay/`), so its address, and the invites that carry it, stay valid
//! across restarts. If another local process serves it already (its database is locked),
//! this process uses that one instead of starting a second. Its private key is written
//! 0600 and the data root is kept 0700: both are this user's alone.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};

use hush_core::{BoxFuture, Error, LocalRelay, Result, ServedRelay};
use hush_proto::RelayAddress;
use hush_relay::config::Config;
use hush_relay::server::Relay;
use hush_relay::tls::Identity;

/// The local relay of one data root.
#[derive(Debug)]
pub struct EmbeddedRelay {
    root: PathBuf,
}

impl EmbeddedRelay {
    /// The local relay kept under `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn dir(&self) -> PathBuf {
        self.root.join("embedded-relay")
    }
}

/// Removes the local relay of `root` (its key, certificate, port and database, with any
/// envelope and deposit time it still holds), once no profile is left to use it.
pub fn remove_unused(root: &Path) -> std::io::Result<()> {
    let dir = EmbeddedRelay::new(root.to_path_buf()).dir();
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Relay(format!("embedded relay: {e}"))
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

/// Writes a private key readable by this user only (created 0600, never world-readable in
/// between).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    set_mode(path, 0o600)
}

impl LocalRelay for EmbeddedRelay {
    fn address(&self) -> Result<RelayAddress> {
        let d = self.dir();
        std::fs::create_dir_all(d.join("data"))?;
        set_mode(&self.root, 0o700)?;
        set_mode(&d, 0o700)?;
        let cert = d.join("cert.pem");
        let key = d.join("key.pem");
        if !cert.exists() || !key.exists() {
            let id = Identity::generate("localhost").map_err(err)?;
            write_private(&key, id.key_pem().as_bytes())?;
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

    fn serve(&self) -> BoxFuture<'_, Result<Option<Box<dyn ServedRelay>>>> {
        Box::pin(async move {
            let addr = self.address()?;
            let d = self.dir();
            let config = Config::loopback(
                SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port)),
                d.join("data"),
                d.join("cert.pem"),
                d.join("key.pem"),
            );
            let id = Identity::load(&config.cert, &config.key).map_err(err)?;
            let mut started = Relay::start(&config, &id).await;
            if let Err(hush_relay::Error::StoreLayout { found, .. }) = &started {
                // A store an older hush wrote: kept beside the new one (what it held is not
                // lost, an older hush can still read it), and the built-in relay starts anew
                // rather than staying offline. Layout 2 has its bodies in the slot file, which
                // goes aside with it (a new store would otherwise empty it).
                let old = config.data_dir.join("relay.redb");
                let aside = config.data_dir.join(format!("relay.redb.layout-{found}"));
                tracing::warn!(
                    "the built-in relay's store has an older layout; kept as {} and started anew",
                    aside.display()
                );
                let slots = config.data_dir.join(hush_relay::store::SLOT_FILE);
                if slots.exists() {
                    let slots_aside = config
                        .data_dir
                        .join(format!("{}.layout-{found}", hush_relay::store::SLOT_FILE));
                    std::fs::rename(&slots, &slots_aside).map_err(err)?;
                }
                std::fs::rename(&old, &aside).map_err(err)?;
                started = Relay::start(&config, &id).await;
            }
            match started {
                Ok(relay) => Ok(Some(Box::new(Served(Some(relay))) as Box<dyn ServedRelay>)),
                Err(e) if served_elsewhere(&e) => {
                    tracing::debug!(error = %e, "embedded relay already served elsewhere");
                    Ok(None)
                }
                // Anything else (a damaged store, a full disk, a permission) is the user's
                // to know: the relay would otherwise be shown offline with no reason.
                Err(e) => Err(err(format!(
                    "{e} (its data: {})",
                    config.data_dir.display()
                ))),
            }
        })
    }
}

/// Whether a failed start means another process serves the relay: its store is open
/// there, or its port is taken (a hush that is shutting down may hold the port a moment
/// after the store). Another local hush serves it, or soon will not, and the link finds out.
fn served_elsewhere(e: &hush_relay::Error) -> bool {
    match e {
        hush_relay::Error::StoreInUse => true,
        hush_relay::Error::Io { source, .. } => source.kind() == std::io::ErrorKind::AddrInUse,
        _ => false,
    }
}

struct Served(Option<Relay>);

impl ServedRelay for Served {
    fn stop(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Some(r) = self.0.take() {
                let _ = r.shutdown().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn key_is_private_and_root_is_ours() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let relay = EmbeddedRelay::new(root.clone());
        let a = relay.address().unwrap();
        assert_eq!(relay.address().unwrap(), a, "the address is stable");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.join("embedded-relay/key.pem")), 0o600);
        assert_eq!(mode(&root), 0o700);
    }

    /// The built-in relay served twice from one data root: the second is told it is served
    /// elsewhere; a store it cannot open (here a directory where its file goes) is an error
    /// naming its directory, not "served elsewhere". (Seen to fail before the distinction: the
    /// damaged store answered `None`, and the client showed the relay offline with no
    /// reason.)
    #[test]
    fn a_second_server_defers_and_a_damaged_store_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let relay = EmbeddedRelay::new(dir.path().join("ملف 档案"));
        let first = rt.block_on(relay.serve()).unwrap().expect("served");
        assert!(
            rt.block_on(relay.serve()).unwrap().is_none(),
            "served elsewhere"
        );
        rt.block_on(first.stop());

        let broken = EmbeddedRelay::new(dir.path().join("损坏"));
        broken.address().unwrap();
        std::fs::create_dir_all(broken.dir().join("data/relay.redb/not a store")).unwrap();
        let e = rt
            .block_on(broken.serve())
            .err()
            .expect("a damaged store is an error");
        let data = broken.dir().join("data");
        assert!(e.to_string().contains(&data.display().to_string()), "{e}");
    }

    /// A built-in relay store an older hush wrote (layout 1: one redb file, no layout
    /// mark; layout 2: a layout mark and the bodies in `envelopes.slots`) is kept aside, its
    /// slot file with it, and the relay starts anew instead of staying offline. Seen to fail
    /// without the rename: `serve` answered `None` (taken for "served elsewhere"), and the
    /// client showed the relay offline for good; without moving the slot file of layout 2:
    /// no `envelopes.slots.layout-2` (NotFound), and the new store had emptied the old
    /// bodies.
    #[test]
    fn a_store_of_an_older_layout_is_kept_aside_and_the_relay_starts() {
        for layout in [None, Some(2u64)] {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("根目录 جذر");
            let relay = EmbeddedRelay::new(root.clone());
            relay.address().unwrap();
            let data = root.join("embedded-relay/data");
            std::fs::create_dir_all(&data).unwrap();
            {
                let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
                let db = redb::Database::create(data.join("relay.redb")).unwrap();
                let txn = db.begin_write().unwrap();
                {
                    let mut t = txn.open_table(meta).unwrap();
                    t.insert("next_id", 7).unwrap();
                    if let Some(l) = layout {
                        t.insert("layout", l).unwrap();
                    }
                }
                txn.commit().unwrap();
            }
            let bodies = [0x5au8; 4096];
            if layout.is_some() {
                std::fs::write(data.join("envelopes.slots"), bodies).unwrap();
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            let served = rt.block_on(relay.serve()).unwrap();
            let served = served.expect("the built-in relay serves");
            rt.block_on(served.stop());
            let found = layout.unwrap_or(1);
            assert!(data.join(format!("relay.redb.layout-{found}")).is_file());
            assert!(data.join("relay.redb").is_file(), "a new store");
            if layout.is_some() {
                assert_eq!(
                    std::fs::read(data.join("envelopes.slots.layout-2")).unwrap(),
                    bodies,
                    "the old bodies are kept"
                );
            }
        }
    }
}
