//! Relay addresses: `hush://<pin>@host:port`, and their binary form.
//!
//! Owns: parsing and printing the address, where `<pin>` is the unpadded base64url
//! (RFC 4648 section 5) SHA-256 of the relay certificate's DER SubjectPublicKeyInfo, and
//! computing that pin; and the binary form `pin(32) || port(u16 BE) || host_len(u8) || host`
//! that invites, stored session state and mailbox moves carry (docs/PROTOCOL.md, "Binary
//! relay address"). Both forms go through one host parser and one port rule, so an address
//! one of them accepts is an address the other accepts. Must never resolve names or touch
//! the network: the host stays text until the transport resolves it.

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

/// The host part of a relay address. `Debug` leaves the name out: hosts name people's
/// infrastructure and must not reach a client's logs by accident (`Display` prints it).
#[derive(Clone, PartialEq, Eq, Hash)]
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

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(_) => f.write_str("Name(<redacted>)"),
            Self::Ip(_) => f.write_str("Ip(<redacted>)"),
        }
    }
}

/// A parsed `hush://<pin>@host:port` relay address. `Debug` shows the pin only.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RelayAddress {
    /// The certificate pin the client must verify.
    pub pin: SpkiPin,
    /// Where to connect.
    pub host: Host,
    /// UDP port.
    pub port: u16,
}

impl fmt::Debug for RelayAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { pin, host, port: _ } = self;
        f.debug_struct("RelayAddress")
            .field("pin", pin)
            .field("host", host)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for RelayAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}@{}:{}", self.pin, self.host, self.port)
    }
}

/// Length of the fixed part of the binary form: pin, port, host length.
const BINARY_FIXED_LEN: usize = 32 + 2 + 1;

/// The host part, as written in an address: `[IPv6]`, an IPv4 literal or a DNS name. Names
/// are lowercased; everything else about the text must already be right. The one host
/// parser of both the text and the binary form.
fn parse_host(s: &str) -> Result<Host, Error> {
    if let Some(v6) = s.strip_prefix('[') {
        let addr = v6
            .strip_suffix(']')
            .ok_or(Error::BadAddress("unterminated IPv6 literal"))?;
        let ip = Ipv6Addr::from_str(addr).map_err(|_| Error::BadAddress("invalid IPv6 literal"))?;
        return Ok(Host::Ip(IpAddr::V6(ip)));
    }
    match Ipv4Addr::from_str(s) {
        Ok(ip) => Ok(Host::Ip(IpAddr::V4(ip))),
        Err(_) => parse_name(s),
    }
}

/// The one port rule of both forms: 0 is not a port a relay can listen on.
fn check_port(port: u16) -> Result<u16, Error> {
    if port == 0 {
        return Err(Error::BadAddress("port must be 1..=65535"));
    }
    Ok(port)
}

/// The host exactly as the binary form carries it: the `Display` form of a host that
/// [`parse_host`] accepts and prints back byte for byte (lowercase name, shortest IP form).
fn canonical_host(text: &str) -> Result<Host, Error> {
    let host = parse_host(text)?;
    if host.to_string() != text {
        return Err(Error::BadAddress("host is not in canonical form"));
    }
    Ok(host)
}

impl RelayAddress {
    /// The binary form `pin(32) || port(u16 BE) || host_len(u8) || host`, where `host` is
    /// the `Display` form of [`Host`] (IPv6 in brackets).
    ///
    /// # Errors
    /// [`Error::BadAddress`] when [`Self::from_binary`] would not give this address back: a
    /// hand-built [`Host::Name`] that the text parser would not produce (upper case, bad
    /// label, over-long) or port 0. Addresses from [`str::parse`] and [`Self::from_binary`]
    /// always encode.
    pub fn to_binary(&self) -> Result<Vec<u8>, Error> {
        let host = self.host.to_string();
        canonical_host(&host)?;
        check_port(self.port)?;
        let host_len = u8::try_from(host.len())
            .map_err(|_| Error::BadAddress("host is not a DNS name or IP literal"))?;
        let mut out = Vec::with_capacity(BINARY_FIXED_LEN + host.len());
        out.extend_from_slice(&self.pin.0);
        out.extend_from_slice(&self.port.to_be_bytes());
        out.push(host_len);
        out.extend_from_slice(host.as_bytes());
        Ok(out)
    }

    /// Decodes one binary-form address from the start of `bytes`; returns it and the bytes
    /// after it. The host and port pass the same rules as the text form, and the host must
    /// be canonical, so `to_binary` of the result gives back exactly the bytes read.
    ///
    /// # Errors
    /// [`Error::AddressTruncated`] if `bytes` ends inside the address; [`Error::BadAddress`]
    /// if the host or port would not parse in the text form, or the host is not canonical.
    pub fn from_binary(bytes: &[u8]) -> Result<(Self, &[u8]), Error> {
        let (pin, rest) = bytes
            .split_first_chunk::<32>()
            .ok_or(Error::AddressTruncated)?;
        let (port, rest) = rest
            .split_first_chunk::<2>()
            .ok_or(Error::AddressTruncated)?;
        let (&host_len, rest) = rest.split_first().ok_or(Error::AddressTruncated)?;
        let (host, rest) = rest
            .split_at_checked(usize::from(host_len))
            .ok_or(Error::AddressTruncated)?;
        let host = core::str::from_utf8(host)
            .map_err(|_| Error::BadAddress("host is not a DNS name or IP literal"))?;
        let host = canonical_host(host)?;
        let port = check_port(u16::from_be_bytes(*port))?;
        Ok((
            Self {
                pin: SpkiPin(*pin),
                host,
                port,
            },
            rest,
        ))
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

        let (host_text, port_text) = if hostport.starts_with('[') {
            let end = hostport
                .find(']')
                .ok_or(Error::BadAddress("unterminated IPv6 literal"))?;
            let (host, after) = hostport.split_at(end + 1);
            let port = after
                .strip_prefix(':')
                .ok_or(Error::BadAddress("missing port"))?;
            (host, port)
        } else {
            hostport
                .rsplit_once(':')
                .ok_or(Error::BadAddress("missing port"))?
        };
        let host = parse_host(host_text)?;
        // Digits only: no sign, no whitespace, no leading zeros, 1..=65535.
        let port_ok = !port_text.is_empty()
            && port_text.len() <= 5
            && port_text.bytes().all(|b| b.is_ascii_digit())
            && !(port_text.len() > 1 && port_text.starts_with('0'));
        let port = port_text
            .parse::<u16>()
            .ok()
            .filter(|_| port_ok)
            .ok_or(Error::BadAddress(
                "port must be 1..=65535 in canonical decimal",
            ))?;
        let port = check_port(port)?;
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
    fn debug_leaves_the_host_and_port_out() {
        let a: RelayAddress = format!("hush://{PIN}@relay.example.org:4433")
            .parse()
            .unwrap();
        let d = format!("{a:?}");
        assert!(!d.contains("relay.example") && !d.contains("4433"), "{d}");
        let b: RelayAddress = format!("hush://{PIN}@192.0.2.7:4433").parse().unwrap();
        assert!(!format!("{b:?}").contains("192.0.2.7"));
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

#[cfg(test)]
mod binary_tests {
    use super::*;

    fn bin(host: &[u8], port: u16) -> Vec<u8> {
        let mut v = vec![0x5a; 32];
        v.extend_from_slice(&port.to_be_bytes());
        v.push(u8::try_from(host.len()).unwrap());
        v.extend_from_slice(host);
        v
    }

    #[test]
    fn round_trips_byte_for_byte() {
        for host in [
            "relay.example.org",
            "127.0.0.1",
            "[::1]",
            "[2001:db8::8:800:200c:417a]",
            "[::ffff:1.2.3.4]",
            "a",
            "xn--bcher-kva.example",
            "a-b.c",
        ] {
            let bytes = bin(host.as_bytes(), 4433);
            let mut with_tail = bytes.clone();
            with_tail.extend_from_slice(b"tail");
            let (addr, rest) = RelayAddress::from_binary(&with_tail).unwrap();
            assert_eq!(rest, b"tail");
            assert_eq!(addr.host.to_string(), host);
            assert_eq!(addr.port, 4433);
            assert_eq!(addr.pin.0, [0x5a; 32]);
            assert_eq!(addr.to_binary().unwrap(), bytes, "{host}");
            // The text form of a decoded address parses to the same address.
            assert_eq!(addr.to_string().parse::<RelayAddress>().unwrap(), addr);
        }
        let longest = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(61));
        assert_eq!(longest.len(), 253);
        let (addr, _) = RelayAddress::from_binary(&bin(longest.as_bytes(), 1)).unwrap();
        assert_eq!(addr.to_binary().unwrap(), bin(longest.as_bytes(), 1));
    }

    /// Hosts and ports the text parser refuses are refused in the binary form too, and
    /// so are non-canonical spellings the text parser would have normalised.
    #[test]
    fn rejects_what_the_text_parser_rejects_and_non_canonical_forms() {
        let label64 = "a".repeat(64);
        let long = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(62));
        assert_eq!(long.len(), 254);
        let unusable: Vec<(&[u8], u16)> = vec![
            (b"a_b", 1),
            (b"1.2.3.4.5", 1),
            (b"x:y", 1),
            (b"", 1),
            (long.as_bytes(), 1),
            (label64.as_bytes(), 1),
            (b"-a.b", 1),
            (b"a-.b", 1),
            (b"a..b", 1),
            (b"a.b.", 1),
            (b"[::1", 1),
            (b"[::g]", 1),
            (b"[1.2.3.4]", 1),
            (b"::1", 1),
            (b"1.2.3.256", 1),
            (b"a b", 1),
            (b"a/b", 1),
            (b"a@b", 1),
            (b"\xff", 1),
            (b"relay.example", 0),
        ];
        let non_canonical: Vec<&[u8]> = vec![
            b"Relay.Example",
            b"[0:0:0:0:0:0:0:1]",
            b"[::FFFF:1.2.3.4]",
            b"[2001:DB8::1]",
        ];
        for (host, port) in unusable {
            // Every one of these is refused by the text form as well.
            let text = format!(
                "hush://{}@{}:{port}",
                SpkiPin([0x5a; 32]),
                String::from_utf8_lossy(host)
            );
            assert!(text.parse::<RelayAddress>().is_err(), "{text}");
            assert!(
                matches!(
                    RelayAddress::from_binary(&bin(host, port)),
                    Err(Error::BadAddress(_))
                ),
                "{host:?}"
            );
        }
        for host in non_canonical {
            let text = format!(
                "hush://{}@{}:1",
                SpkiPin([0x5a; 32]),
                core::str::from_utf8(host).unwrap()
            );
            assert!(text.parse::<RelayAddress>().is_ok(), "{text}");
            assert_eq!(
                RelayAddress::from_binary(&bin(host, 1)),
                Err(Error::BadAddress("host is not in canonical form")),
                "{host:?}"
            );
        }
    }

    #[test]
    fn truncation_is_its_own_error() {
        let full = bin(b"relay.example", 4433);
        for n in 0..full.len() {
            assert_eq!(
                RelayAddress::from_binary(&full[..n]),
                Err(Error::AddressTruncated),
                "{n}"
            );
        }
    }

    #[test]
    fn hand_built_addresses_that_would_not_decode_do_not_encode() {
        let ok: RelayAddress = format!("hush://{}@relay.example:1", SpkiPin([1; 32]))
            .parse()
            .unwrap();
        for (host, port) in [
            (Host::Name("Relay.Example".into()), 1),
            (Host::Name("a_b".into()), 1),
            (Host::Name("a".repeat(300)), 1),
            (Host::Name(String::new()), 1),
            (Host::Name("relay.example".into()), 0),
        ] {
            let bad = RelayAddress {
                host,
                port,
                ..ok.clone()
            };
            assert!(bad.to_binary().is_err(), "{bad:?}");
        }
        assert!(ok.to_binary().is_ok());
    }

    proptest::proptest! {
        /// Whatever the bytes, decoding never panics, and what decodes re-encodes to exactly
        /// the bytes it consumed and prints as text that parses back to it.
        #[test]
        fn decoding_is_canonical(host in "[a-zA-Z0-9.:\\[\\]_-]{0,40}", port: u16, tail: Vec<u8>) {
            let mut bytes = bin(host.as_bytes(), port);
            bytes.extend_from_slice(&tail);
            if let Ok((addr, rest)) = RelayAddress::from_binary(&bytes) {
                proptest::prop_assert_eq!(rest, &tail[..]);
                proptest::prop_assert_eq!(addr.to_binary().unwrap(), &bytes[..bytes.len() - tail.len()]);
                proptest::prop_assert_eq!(addr.to_string().parse::<RelayAddress>().unwrap(), addr);
            }
        }

        /// Every address the text parser accepts encodes, and decodes back to itself.
        #[test]
        fn parsed_addresses_encode(host in "[a-zA-Z0-9.:\\[\\]_-]{0,40}", port: u16) {
            let text = format!("hush://{}@{host}:{port}", SpkiPin([3; 32]));
            if let Ok(addr) = text.parse::<RelayAddress>() {
                let bytes = addr.to_binary().unwrap();
                proptest::prop_assert_eq!(RelayAddress::from_binary(&bytes).unwrap(), (addr, &[][..]));
            }
        }
    }
}
