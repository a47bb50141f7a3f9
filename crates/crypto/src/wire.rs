//! Minimal big-endian byte reader and writer shared by every decoder in this crate, and the
//! checked relay address every encoder writes.
//!
//! The reader never panics: every read is bounds-checked and reports
//! the truncation to its caller, which maps it to a specific [`crate::Error`].

use hush_proto::RelayAddress;

/// Cursor over untrusted bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|s| s.try_into().ok())
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    /// A `u16`-length-prefixed byte string.
    pub(crate) fn bytes16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    /// A relay address in its binary form (hush-proto owns the layout and the rules).
    pub(crate) fn relay(&mut self) -> Result<Relay, hush_proto::Error> {
        let (address, rest) = RelayAddress::from_binary(self.buf)?;
        // `rest` is a suffix of `buf`, so `used` is in bounds.
        let (binary, _) = self.buf.split_at(self.buf.len() - rest.len());
        let binary = binary.to_vec();
        self.buf = rest;
        Ok(Relay { address, binary })
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Appends big-endian fields to a buffer.
pub(crate) trait Put {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put(&mut self, v: &[u8]);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put(&mut self, v: &[u8]) {
        self.extend_from_slice(v);
    }
}

/// A relay address known to have a binary form that decodes back to it: either it was
/// decoded from one, or [`Relay::new`] encoded it. Holding the bytes makes every encoder of
/// this crate infallible without a second, unchecked way to write an address.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Relay {
    address: RelayAddress,
    binary: Vec<u8>,
}

impl Relay {
    /// Checks an address handed in by the caller.
    pub(crate) fn new(address: RelayAddress) -> Result<Self, crate::Error> {
        let binary = address.to_binary().map_err(unusable)?;
        Ok(Self { address, binary })
    }

    pub(crate) fn address(&self) -> &RelayAddress {
        &self.address
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put(&self.binary);
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hosts and ports identify people's infrastructure: keep them out of debug logs.
        let Self {
            address: _,
            binary: _,
        } = self;
        f.write_str("Relay(..)")
    }
}

/// The crate's error for an address hush-proto refused (the message names the rule only).
pub(crate) fn unusable(e: hush_proto::Error) -> crate::Error {
    match e {
        hush_proto::Error::BadAddress(rule) => crate::Error::UnusableRelay(rule),
        _ => crate::Error::UnusableRelay("truncated"),
    }
}
