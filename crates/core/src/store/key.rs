//! The store's key: `store.key` (Argon2id parameters, salt, key check) and deriving the
//! SQLCipher key from the passphrase. Parameters read back are bounded before anything is
//! derived, so a damaged or hostile key file cannot make opening hang or exhaust memory.

use std::io::Write;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

pub(super) const KEY_MAGIC: &[u8; 8] = b"HUSHKEY1";
const KEY_FILE_LEN: usize = 8 + 4 + 4 + 4 + 16 + 32;
const CHECK_INFO: &[u8] = b"hush/v1/store-key-check";
/// Argon2id cost: 64 MiB, 3 passes, 1 lane (RFC 9106 second recommended option, scaled).
const M_COST_KIB: u32 = 64 * 1024;
const T_COST: u32 = 3;
pub(super) const P_COST: u32 = 1;
/// The most a key file may ask for on open: 1 GiB of memory, 10 passes, 16 lanes (16 times,
/// 3 times and 16 times what hush writes).
const MAX_M_COST_KIB: u32 = 1024 * 1024;
const MAX_T_COST: u32 = 10;
const MAX_P_COST: u32 = 16;

/// Argon2id cost of a new store's key derivation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfCost {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
}

impl KdfCost {
    /// The cost every profile gets: 64 MiB, 3 passes.
    pub const DEFAULT: Self = Self {
        m_cost_kib: M_COST_KIB,
        t_cost: T_COST,
    };
    /// A cheap cost for simulated-world tests, which open many stores many times.
    #[cfg(test)]
    pub(crate) const TEST: Self = Self {
        m_cost_kib: 8,
        t_cost: 1,
    };
}

pub(super) struct KeyFile {
    pub(super) m_cost: u32,
    pub(super) t_cost: u32,
    pub(super) p_cost: u32,
    pub(super) salt: [u8; 16],
    pub(super) check: [u8; 32],
}

impl KeyFile {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(KEY_FILE_LEN);
        v.extend_from_slice(KEY_MAGIC);
        v.extend_from_slice(&self.m_cost.to_be_bytes());
        v.extend_from_slice(&self.t_cost.to_be_bytes());
        v.extend_from_slice(&self.p_cost.to_be_bytes());
        v.extend_from_slice(&self.salt);
        v.extend_from_slice(&self.check);
        v
    }

    pub(super) fn decode(b: &[u8]) -> Result<Self> {
        if b.len() != KEY_FILE_LEN || &b[..8] != KEY_MAGIC {
            return Err(Error::StoreCorrupted("key file"));
        }
        let u = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&b[20..36]);
        let mut check = [0u8; 32];
        check.copy_from_slice(&b[36..68]);
        let (m_cost, t_cost, p_cost) = (u(8), u(12), u(16));
        // A cost past these bounds is no profile hush made: deriving with it would hang the
        // unlock (t_cost = 2^32-1) or take gigabytes; refuse before deriving anything.
        if m_cost > MAX_M_COST_KIB
            || t_cost == 0
            || t_cost > MAX_T_COST
            || p_cost == 0
            || p_cost > MAX_P_COST
        {
            return Err(Error::StoreCorrupted(
                "key file cost parameters out of range",
            ));
        }
        Ok(Self {
            m_cost,
            t_cost,
            p_cost,
            salt,
            check,
        })
    }
}

pub(super) fn derive_key(passphrase: &[u8], kf: &KeyFile) -> Result<Zeroizing<[u8; 32]>> {
    let params = argon2::Params::new(kf.m_cost, kf.t_cost, kf.p_cost, Some(32))
        .map_err(|_| Error::StoreCorrupted("key file parameters"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, &kf.salt, key.as_mut())
        .map_err(|_| Error::StoreCorrupted("key derivation"))?;
    Ok(key)
}

pub(super) fn key_check(key: &[u8; 32]) -> [u8; 32] {
    // HMAC takes a key of any length; a 32-byte key cannot be refused.
    #[allow(clippy::expect_used)] // fail loudly: a zero check value would open any store
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC-SHA256 accepts 32-byte keys");
    mac.update(CHECK_INFO);
    mac.finalize().into_bytes().into()
}

/// Fills `buf` from the operating system's generator.
pub(crate) fn os_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|_| Error::Io("no system randomness".into()))
}

pub(super) fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
