//! Relay addresses: `hush://<pin>@host:port`.
//!
//! Owns: parsing and printing the address, where `<pin>` is the unpadded base64url
//! (RFC 4648 section 5) SHA-256 of the relay certificate's DER SubjectPublicKeyInfo, and
//! computing that pin. Must never resolve names or touch the network: the host stays text
//! until the transport resolves it.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::Error;

const SCHEME: &str = "hush://";

/// SHA-256 of a certificate's DER-encoded SubjectPublicKeyInfo: what a client checks instead
/// of a CA signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpkiPin(pub [u8; 32]);

impl SpkiPin {
    /// The pin of a DER SubjectPublicKeyInfo.
    #[must_use]
    pub fn of_spki_der(spki_der: &[u8]) -> Self {
        Self(Sha256::digest(spki_der).into())
    }
}

impl fmt::Display for SpkiPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for SpkiPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A pin is public (it is in the address); printing it is fine.
        write!(f, "SpkiPin({self})")
    }
}

/// The host part of a relay address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name (LDH labels, checked syntactically only).
    Name(String),
    /// An IPv4 or IPv6 literal (IPv6 is written in brackets).
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(n) => f.write_str(n),
            Self::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Self::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// A parsed `hush://<pin>@host:port` relay address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RelayAddress {
    /// The certificate pin the client must verify.
    pub pin: SpkiPin,
    /// Where to connect.
    pub host: Host,
    /// UDP port.
    pub port: u16,
}

impl fmt::Display for RelayAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}@{}:{}", self.pin, self.host, self.port)
    }
}

fn parse_name(s: &str) -> Result<Host, Error> {
    let bad = Error::BadAddress("host is not a DNS name or IP literal");
    if s.is_empty() || s.len() > 253 {
        return Err(bad);
    }
    for label in s.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(bad);
        }
    }
    // An all-numeric dotted name is an attempt at an IPv4 literal that did not parse.
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad);
    }
    Ok(Host::Name(s.to_ascii_lowercase()))
}

impl FromStr for RelayAddress {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let rest = s
            .strip_prefix(SCHEME)
            .ok_or(Error::BadAddress("scheme must be hush://"))?;
        let (pin_text, hostport) = rest
            .split_once('@')
            .ok_or(Error::BadAddress("missing '@' after the pin"))?;
        // base64url of 32 bytes without padding is exactly 43 characters; decoding checks the
        // alphabet and that the unused low bits of the last character are zero (canonical).
        if pin_text.len() != 43 {
            return Err(Error::BadAddress("pin must be 43 base64url characters"));
        }
        let pin: [u8; 32] = URL_SAFE_NO_PAD
            .decode(pin_text)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(Error::BadAddress("pin is not canonical base64url"))?;

        let (host, port_text) = if let Some(v6) = hostport.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or(Error::BadAddress("unterminated IPv6 literal"))?;
            let port = after
                .strip_prefix(':')
                .ok_or(Error::BadAddress("missing port"))?;
            let ip =
                Ipv6Addr::from_str(addr).map_err(|_| Error::BadAddress("invalid IPv6 literal"))?;
            (Host::Ip(IpAddr::V6(ip)), port)
        } else {
            let (h, port) = hostport
                .rsplit_once(':')
                .ok_or(Error::BadAddress("missing port"))?;
            let host = match Ipv4Addr::from_str(h) {
                Ok(ip) => Host::Ip(IpAddr::V4(ip)),
                Err(_) => parse_name(h)?,
            };
            (host, port)
        };
        // Digits only: no sign, no whitespace, no leading zeros, 1..=65535.
        let port_ok = !port_text.is_empty()
            && port_text.len() <= 5
            && port_text.bytes().all(|b| b.is_ascii_digit())
            && !(port_text.len() > 1 && port_text.starts_with('0'));
        let port = port_text
            .parse::<u16>()
            .ok()
            .filter(|p| port_ok && *p != 0)
            .ok_or(Error::BadAddress(
                "port must be 1..=65535 in canonical decimal",
            ))?;
        Ok(Self {
            pin: SpkiPin(pin),
            host,
            port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    #[test]
    fn parses_and_prints() {
        for s in [
            format!("hush://{PIN}@relay.example.org:4433"),
            format!("hush://{PIN}@127.0.0.1:1"),
            format!("hush://{PIN}@[::1]:65535"),
        ] {
            let a: RelayAddress = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
            let mut want = [0u8; 32];
            for (i, b) in want.iter_mut().enumerate() {
                *b = u8::try_from(i).unwrap();
            }
            assert_eq!(a.pin.0, want);
        }
    }

    #[test]
    fn rejects() {
        for s in [
            format!("http://{PIN}@a.b:1"),
            format!("hush://{PIN}a.b:1"),
            format!("hush://{PIN}=@a.b:1"),
            format!("hush://{}@a.b:1", &PIN[..42]),
            format!("hush://{}@a.b:1", PIN.replace('A', "+")),
            format!("hush://{PIN}@a.b"),
            format!("hush://{PIN}@a.b:0"),
            format!("hush://{PIN}@a.b:65536"),
            format!("hush://{PIN}@a.b:01"),
            format!("hush://{PIN}@a.b:+1"),
            format!("hush://{PIN}@a..b:1"),
            format!("hush://{PIN}@-a.b:1"),
            format!("hush://{PIN}@:1"),
            format!("hush://{PIN}@1.2.3.256:1"),
            format!("hush://{PIN}@[::1:1"),
            format!("hush://{PIN}@::1:1"),
            format!("hush://{PIN}@a.b:1/path"),
            // Last character carries non-zero unused bits: not canonical.
            format!("hush://{}@a.b:1", PIN.replace("Hh8", "Hh9")),
        ] {
            assert!(s.parse::<RelayAddress>().is_err(), "{s}");
        }
    }
}
