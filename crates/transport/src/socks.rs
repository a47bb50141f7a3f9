//! A SOCKS5 client (RFC 1928) with username/password authentication (RFC 1929), enough to
//! reach a relay through Tor.
//!
//! Owns: the proxy's address, the isolation username sent to it, and the CONNECT exchange.
//! A host name is sent to the proxy as a domain name (the proxy resolves it: no DNS query
//! leaves this machine); an IP literal is sent as an address.
//! Must never resolve the relay's host locally, never fall back to a direct connection, and
//! never log the proxy's answer, the host or the username.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hush_proto::Host;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Error;

/// How long the whole proxy exchange (TCP to the proxy, authentication, CONNECT) may take.
/// Tor builds a circuit inside CONNECT, which can take tens of seconds on a bad network.
const SOCKS_TIMEOUT: Duration = Duration::from_secs(60);
/// The password sent with every isolation username. Tor isolates circuits by the pair; the
/// password carries nothing.
const PASSWORD: &[u8] = b"hush";

/// A SOCKS5 proxy and the username that isolates this connection's circuit.
#[derive(Clone, PartialEq, Eq)]
pub struct Socks5 {
    /// The proxy's address (for Tor, usually 127.0.0.1:9050).
    pub proxy: SocketAddr,
    /// An opaque token, 1 to 255 bytes: connections with different usernames get different
    /// Tor circuits. Never a contact's name.
    pub username: String,
}

impl std::fmt::Debug for Socks5 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            proxy: _,
            username: _,
        } = self;
        f.write_str("Socks5(<proxy>)")
    }
}

fn refused(why: &'static str) -> Error {
    Error::Proxy(why)
}

impl Socks5 {
    /// Connects to `host:port` through the proxy.
    ///
    /// # Errors
    /// [`Error::ProxyUnreachable`] if the proxy does not accept the TCP connection;
    /// [`Error::Proxy`] naming the step if it refuses (authentication, the CONNECT reply
    /// code) or answers something that is not SOCKS5, or if it takes too long.
    pub async fn connect(&self, host: &Host, port: u16) -> Result<TcpStream, Error> {
        tokio::time::timeout(SOCKS_TIMEOUT, self.exchange(host, port))
            .await
            .map_err(|_| refused("the proxy did not answer in time"))?
    }

    async fn exchange(&self, host: &Host, port: u16) -> Result<TcpStream, Error> {
        let user = self.username.as_bytes();
        let ulen = u8::try_from(user.len())
            .ok()
            .filter(|&n| n > 0)
            .ok_or(refused("the isolation username must be 1 to 255 bytes"))?;
        let mut s = TcpStream::connect(self.proxy)
            .await
            .map_err(|_| Error::ProxyUnreachable)?;
        let _ = s.set_nodelay(true);
        // Greeting: version 5, one method, username/password (0x02). Without it a proxy
        // could not isolate circuits, so no other method is offered.
        s.write_all(&[5, 1, 2]).await.map_err(lost)?;
        let mut reply = [0u8; 2];
        s.read_exact(&mut reply).await.map_err(lost)?;
        match reply {
            [5, 2] => {}
            [5, 0xff] => return Err(refused("the proxy accepts no username/password")),
            _ => return Err(refused("the proxy does not speak SOCKS5")),
        }
        let mut auth = Vec::with_capacity(3 + user.len() + PASSWORD.len());
        auth.push(1);
        auth.push(ulen);
        auth.extend_from_slice(user);
        auth.push(u8::try_from(PASSWORD.len()).unwrap_or(4));
        auth.extend_from_slice(PASSWORD);
        s.write_all(&auth).await.map_err(lost)?;
        s.read_exact(&mut reply).await.map_err(lost)?;
        if reply != [1, 0] {
            return Err(refused("the proxy refused the username"));
        }
        let mut req = vec![5, 1, 0];
        match host {
            Host::Ip(IpAddr::V4(ip)) => {
                req.push(1);
                req.extend_from_slice(&ip.octets());
            }
            Host::Ip(IpAddr::V6(ip)) => {
                req.push(4);
                req.extend_from_slice(&ip.octets());
            }
            Host::Name(name) => {
                // A relay address's host is at most 253 bytes.
                let n = u8::try_from(name.len()).map_err(|_| refused("host name too long"))?;
                req.push(3);
                req.push(n);
                req.extend_from_slice(name.as_bytes());
            }
        }
        req.extend_from_slice(&port.to_be_bytes());
        s.write_all(&req).await.map_err(lost)?;
        let mut head = [0u8; 4];
        s.read_exact(&mut head).await.map_err(lost)?;
        if head[0] != 5 || head[2] != 0 {
            return Err(refused("the proxy does not speak SOCKS5"));
        }
        if head[1] != 0 {
            return Err(refused(reply_name(head[1])));
        }
        // The bound address: read and ignore.
        let skip = match head[3] {
            1 => 4,
            4 => 16,
            3 => {
                let mut n = [0u8; 1];
                s.read_exact(&mut n).await.map_err(lost)?;
                usize::from(n[0])
            }
            _ => return Err(refused("the proxy does not speak SOCKS5")),
        };
        let mut bound = vec![0u8; skip + 2];
        s.read_exact(&mut bound).await.map_err(lost)?;
        Ok(s)
    }
}

fn lost(_: std::io::Error) -> Error {
    refused("the proxy closed the connection")
}

/// RFC 1928 section 6 reply codes (Tor uses them too).
fn reply_name(code: u8) -> &'static str {
    match code {
        1 => "the proxy failed (general failure)",
        2 => "the proxy's rules forbid the connection",
        3 => "the proxy: network unreachable",
        4 => "the proxy: host unreachable",
        5 => "the proxy: connection refused by the relay host",
        6 => "the proxy: TTL expired",
        7 => "the proxy does not support CONNECT",
        8 => "the proxy does not support this address type",
        _ => "the proxy refused the connection",
    }
}
