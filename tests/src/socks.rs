//! A small SOCKS5 proxy (RFC 1928, username/password auth of RFC 1929) that a test starts
//! on loopback, to check what a client asked it: which target (a domain name or an address,
//! as sent) and which username, per connection.
//!
//! Domain names are "resolved" by the test's own table (no DNS): a client that resolved a
//! name itself would send an address instead, which the record shows. The proxy can be told
//! to refuse every CONNECT with a reply code. Threads, not a runtime: the kit links no async
//! code of its own.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// What a client asked the proxy to connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// ATYP 0x03: a domain name, as sent.
    Name(String, u16),
    /// ATYP 0x01 or 0x04: an address.
    Addr(SocketAddr),
}

/// One CONNECT the proxy received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The RFC 1929 username.
    pub username: String,
    /// The target.
    pub target: Target,
}

/// A running proxy; stops accepting when dropped.
pub struct Socks5Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl Socks5Server {
    /// Starts a proxy on 127.0.0.1 that maps the names in `names` to addresses and relays
    /// bytes both ways. `refuse`: answer every CONNECT with this reply code instead.
    pub fn start(names: HashMap<String, IpAddr>, refuse: Option<u8>) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (reqs, stopping) = (requests.clone(), stop.clone());
        let names = Arc::new(names);
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (reqs, names) = (reqs.clone(), names.clone());
                thread::spawn(move || {
                    let _ = serve(conn, &names, refuse, &reqs);
                });
            }
        });
        Self {
            addr,
            requests,
            stop,
        }
    }

    /// The proxy's address (give it to the client as `socks5`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every CONNECT so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Socks5Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn read_n(s: &mut TcpStream, n: usize) -> std::io::Result<Vec<u8>> {
    let mut b = vec![0u8; n];
    s.read_exact(&mut b)?;
    Ok(b)
}

fn serve(
    mut c: TcpStream,
    names: &HashMap<String, IpAddr>,
    refuse: Option<u8>,
    reqs: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    let head = read_n(&mut c, 2)?;
    let methods = read_n(&mut c, usize::from(head[1]))?;
    if head[0] != 5 || !methods.contains(&2) {
        // Only username/password: the point is to see the username.
        c.write_all(&[5, 0xff])?;
        return Ok(());
    }
    c.write_all(&[5, 2])?;
    let v = read_n(&mut c, 2)?;
    let user = read_n(&mut c, usize::from(v[1]))?;
    let plen = read_n(&mut c, 1)?;
    let _password = read_n(&mut c, usize::from(plen[0]))?;
    c.write_all(&[1, 0])?;
    let req = read_n(&mut c, 4)?;
    let target = match req[3] {
        1 => {
            let a = read_n(&mut c, 6)?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Target::Addr(SocketAddr::new(ip.into(), u16::from_be_bytes([a[4], a[5]])))
        }
        4 => {
            let a = read_n(&mut c, 18)?;
            let ip: [u8; 16] = a[..16].try_into().unwrap();
            let port = u16::from_be_bytes([a[16], a[17]]);
            Target::Addr(SocketAddr::new(Ipv6Addr::from(ip).into(), port))
        }
        3 => {
            let n = read_n(&mut c, 1)?;
            let name = read_n(&mut c, usize::from(n[0]))?;
            let p = read_n(&mut c, 2)?;
            Target::Name(
                String::from_utf8_lossy(&name).into_owned(),
                u16::from_be_bytes([p[0], p[1]]),
            )
        }
        _ => return Ok(()),
    };
    reqs.lock().unwrap().push(Request {
        username: String::from_utf8_lossy(&user).into_owned(),
        target: target.clone(),
    });
    let reply_fail = |c: &mut TcpStream, code: u8| c.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0]);
    if let Some(code) = refuse {
        return reply_fail(&mut c, code);
    }
    let dest = match target {
        Target::Addr(a) => Some(a),
        Target::Name(n, port) => names.get(&n).map(|ip| SocketAddr::new(*ip, port)),
    };
    let Some(dest) = dest else {
        return reply_fail(&mut c, 4);
    };
    let Ok(up) = TcpStream::connect(dest) else {
        return reply_fail(&mut c, 5);
    };
    c.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])?;
    let (mut c2, mut up2) = (c.try_clone()?, up.try_clone()?);
    let (mut c, mut up) = (c, up);
    let t = thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut up2);
        let _ = up2.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut up, &mut c);
    let _ = c.shutdown(Shutdown::Write);
    let _ = t.join();
    Ok(())
}
