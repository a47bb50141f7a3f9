//! Profiles: isolated directories, one per identity context (a tip line apart from a
//! personal profile), and their configuration file.
//!
//! Layout: `$HUSH_HOME` if set, else `$XDG_DATA_HOME/hush` (default `~/.local/share/hush`),
//! then `profiles/<name>/` holding `store.key`, `store.db`, `config.toml` and `hush.log`.
//! This module owns paths and config parsing; it never opens the store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The default profile name.
pub const DEFAULT_PROFILE: &str = "default";

/// A validated profile and its directory.
#[derive(Clone, Debug)]
pub struct Profile {
    name: String,
    dir: PathBuf,
}

/// Root of all hush data on this machine.
pub fn data_root() -> PathBuf {
    if let Some(home) = std::env::var_os("HUSH_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home);
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("hush");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/share/hush")
}

impl Profile {
    /// The profile `name` under `root` (see [`data_root`]).
    pub fn new(root: &Path, name: &str) -> Result<Self> {
        let ok = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(Error::InvalidProfileName);
        }
        Ok(Self {
            name: name.to_string(),
            dir: root.join("profiles").join(name),
        })
    }

    /// The profile's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The profile's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether `init` has run for this profile.
    pub fn exists(&self) -> bool {
        self.dir.join("store.key").exists()
    }

    /// Path of the key file (Argon2id salt and parameters, key check).
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("store.key")
    }

    /// Path of the SQLCipher database.
    pub fn db_path(&self) -> PathBuf {
        self.dir.join("store.db")
    }

    /// Path of the configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// Path of the log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("hush.log")
    }

    /// Reads `config.toml`; a missing file is the default configuration.
    pub fn config(&self) -> Result<Config> {
        match std::fs::read_to_string(self.config_path()) {
            Ok(text) => Config::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The profile's `config.toml`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A command whose first line of output is the passphrase (run without a shell; see
    /// [`crate::passphrase::run_command`]).
    pub passphrase_command: Option<String>,
    /// Notifications of the TUI: "bell" (default: a terminal bell, no content) or "off".
    pub notify: Option<Notify>,
    /// How relays are reached: "quic" (the default) or "tcp" (TLS over TCP, for networks
    /// without UDP).
    pub transport: Option<Transport>,
    /// A SOCKS5 proxy to reach relays through, e.g. Tor's `"127.0.0.1:9050"`. Implies TCP.
    /// Each contact's deposits get their own proxy username (so Tor gives each its own
    /// circuit); never a direct connection when the proxy fails.
    pub socks5: Option<SocketAddr>,
    /// `"private"` (the default): a deposit to any relay but the profile's own goes through
    /// the own relay, sealed to the destination (docs/PROTOCOL.md II.4.2), and waits when
    /// that path fails; `"direct"`: straight to the destination relay.
    pub routing: Option<Routing>,
    /// The local address the profile's connections leave from (a machine with several
    /// addresses; tests telling clients apart). Default: the system's choice.
    pub bind: Option<std::net::IpAddr>,
    /// TUI key bindings: action name to key, e.g. `send = "ctrl-s"`.
    #[serde(default)]
    pub keys: std::collections::BTreeMap<String, String>,
}

/// The `transport` setting.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// QUIC over UDP.
    Quic,
    /// TLS 1.3 over TCP.
    Tcp,
}

/// How the engine reaches relays, from [`Config::network`].
/// How deposits to other relays travel (`routing` in config.toml).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Routing {
    /// Through the profile's own relay, sealed to the destination relay.
    #[default]
    Private,
    /// Straight to the destination relay.
    Direct,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Network {
    /// QUIC (the default).
    #[default]
    Quic,
    /// TLS over TCP, directly.
    Tcp,
    /// TLS over TCP through this SOCKS5 proxy, a username per contact.
    Socks5(SocketAddr),
}

/// How the TUI notifies of new messages.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Notify {
    /// A terminal bell, without content.
    Bell,
    /// Nothing.
    Off,
}

impl Config {
    /// The routing setting (`private` unless the file says `direct`).
    pub fn routing(&self) -> Routing {
        self.routing.unwrap_or_default()
    }

    /// How relays are reached.
    pub fn network(&self) -> Network {
        match (self.socks5, self.transport) {
            (Some(proxy), _) => Network::Socks5(proxy),
            (None, Some(Transport::Tcp)) => Network::Tcp,
            (None, _) => Network::Quic,
        }
    }

    /// Parses TOML with line-precise errors.
    pub fn parse(text: &str) -> Result<Self> {
        let config = Self::parse_unchecked(text)?;
        if config.socks5.is_some() && config.transport == Some(Transport::Quic) {
            let line = text
                .lines()
                .position(|l| l.trim_start().starts_with("transport"))
                .map_or(1, |i| i + 1);
            return Err(Error::Config {
                line,
                message: "socks5 carries TCP only: set transport = \"tcp\" or remove it".into(),
            });
        }
        Ok(config)
    }

    fn parse_unchecked(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| {
                text[..s.start.min(text.len())].matches('\n').count() + 1
            });
            Error::Config {
                line,
                message: e.message().to_string(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_names_are_validated() {
        let root = Path::new("/tmp/x");
        assert!(Profile::new(root, "default").is_ok());
        assert!(Profile::new(root, "tip-line_2").is_ok());
        for bad in ["", "../etc", "a/b", "x y", &"a".repeat(33)] {
            assert!(matches!(
                Profile::new(root, bad),
                Err(Error::InvalidProfileName)
            ));
        }
    }

    #[test]
    fn config_errors_name_the_line() {
        let err = Config::parse("\n\nbogus = 1\n").unwrap_err();
        assert!(matches!(err, Error::Config { line: 3, .. }), "{err:?}");
        let c = Config::parse("passphrase_command = \"pass show hush\"\nnotify = \"off\"\n[keys]\nsend = \"ctrl-s\"\n").unwrap();
        assert_eq!(c.passphrase_command.as_deref(), Some("pass show hush"));
        assert_eq!(c.notify, Some(Notify::Off));
        assert_eq!(c.keys.get("send").map(String::as_str), Some("ctrl-s"));
        let err = Config::parse("notify = \"loud\"\n").unwrap_err();
        assert!(matches!(err, Error::Config { line: 1, .. }), "{err:?}");
    }

    #[test]
    fn transport_and_socks5_settings() {
        assert_eq!(Config::parse("").unwrap().network(), Network::Quic);
        assert_eq!(
            Config::parse("transport = \"tcp\"\n").unwrap().network(),
            Network::Tcp
        );
        let tor: SocketAddr = "127.0.0.1:9050".parse().unwrap();
        for text in [
            "socks5 = \"127.0.0.1:9050\"\n",
            "transport = \"tcp\"\nsocks5 = \"127.0.0.1:9050\"\n",
        ] {
            assert_eq!(Config::parse(text).unwrap().network(), Network::Socks5(tor));
        }
        // A proxy with QUIC is a contradiction, named at its line.
        let err =
            Config::parse("notify = \"off\"\ntransport = \"quic\"\nsocks5 = \"127.0.0.1:9050\"\n")
                .unwrap_err();
        assert!(matches!(err, Error::Config { line: 2, .. }), "{err:?}");
        for bad in [
            "transport = \"udp\"\n",
            "socks5 = \"localhost:9050\"\n",
            "socks5 = \"127.0.0.1\"\n",
            "socks5 = \"تور\"\n",
        ] {
            let err = Config::parse(bad).unwrap_err();
            assert!(
                matches!(err, Error::Config { line: 1, .. }),
                "{bad}: {err:?}"
            );
        }
    }
}
