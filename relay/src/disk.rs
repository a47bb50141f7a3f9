//! Free space on the file system that holds the data directory.
//!
//! Owns: the reserve below which deposits are refused (`limits.min_free_disk_bytes`), so that
//! the relay's own writes never fill the disk, and a ballast file in the data directory that
//! is released when something else fills the disk to the last byte, so that deletes, expiry
//! sweeps and reopening the database (which all write a little) can still commit and free
//! space. A database that runs out of space mid-commit fails every later operation until it
//! is reopened, which itself needs room.
//! Must never refuse a delete or a fetch, and never guess "low" when the space cannot be read
//! (then the commit itself is the judge).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The ballast file's name in the data directory.
pub const BALLAST_FILE: &str = "disk-reserve.ballast";
/// Most bytes the ballast takes (a quarter of the reserve, if smaller): a delete commit or a
/// reopen needs far less.
const BALLAST_MAX: u64 = 4 << 20;

/// The data directory's free space against the reserve, as last measured.
#[derive(Debug)]
pub struct DiskSpace {
    dir: PathBuf,
    reserve: u64,
    low: AtomicBool,
}

impl DiskSpace {
    /// Watches the file system holding `dir`; `reserve` 0 turns the check (and the ballast)
    /// off.
    #[must_use]
    pub fn new(dir: PathBuf, reserve: u64) -> Self {
        let d = Self {
            dir,
            reserve,
            low: AtomicBool::new(false),
        };
        d.refresh();
        d
    }

    fn ballast_len(&self) -> u64 {
        (self.reserve / 4).min(BALLAST_MAX)
    }

    /// Measures again, releases or restores the ballast, and returns whether space is below
    /// the reserve.
    pub fn refresh(&self) -> bool {
        let Some(avail) = (self.reserve > 0).then(|| available(&self.dir)).flatten() else {
            self.low.store(false, Ordering::Relaxed);
            return false;
        };
        let ballast = self.dir.join(BALLAST_FILE);
        let len = self.ballast_len();
        let mut avail = avail;
        let have = std::fs::metadata(&ballast).is_ok_and(|m| m.len() >= len);
        if have && avail < len / 2 {
            if std::fs::remove_file(&ballast).is_ok() {
                tracing::warn!(
                    bytes = len,
                    "disk full: released the ballast file so that deletes can still commit"
                );
                avail = available(&self.dir).unwrap_or(avail);
            }
        } else if !have && len > 0 && avail >= self.reserve.saturating_add(len) {
            if write_ballast(&ballast, len).is_ok() {
                avail = avail.saturating_sub(len);
            } else {
                let _ = std::fs::remove_file(&ballast);
            }
        }
        let low = avail < self.reserve;
        self.low.store(low, Ordering::Relaxed);
        low
    }

    /// Whether space was below the reserve at the last measure.
    #[must_use]
    pub fn is_low(&self) -> bool {
        self.low.load(Ordering::Relaxed)
    }
}

/// Writes `len` bytes for real (a sparse file would free nothing when removed).
fn write_ballast(path: &Path, len: u64) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    let chunk = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        f.write_all(chunk.get(..n).unwrap_or(&chunk))?;
        left = left.saturating_sub(n as u64);
    }
    f.sync_all()
}

/// Bytes an unprivileged writer may still use on the file system holding `dir`.
#[cfg(unix)]
fn available(dir: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

#[cfg(not(unix))]
fn available(_dir: &Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_larger_than_any_disk_is_low_and_zero_is_never_low() {
        let dir = tempfile::tempdir().unwrap();
        assert!(DiskSpace::new(dir.path().to_owned(), u64::MAX).is_low());
        assert!(!DiskSpace::new(dir.path().to_owned(), 0).is_low());
        // Unreadable: not low (the commit decides).
        assert!(!DiskSpace::new(dir.path().join("missing"), u64::MAX).is_low());
    }

    #[test]
    fn the_ballast_is_written_where_there_is_room() {
        let dir = tempfile::tempdir().unwrap();
        let d = DiskSpace::new(dir.path().to_owned(), 1 << 20);
        assert!(!d.is_low());
        let m = std::fs::metadata(dir.path().join(BALLAST_FILE)).unwrap();
        assert_eq!(m.len(), 256 << 10);
    }
}
