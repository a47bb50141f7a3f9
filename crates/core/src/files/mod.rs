//! File transfer (issue 12): encrypted, resumable documents that a relay sees only as
//! uniform 256 KiB chunks (docs/PROTOCOL.md sections 7a and II.4.3).
//!
//! Owns, one module each: the [`descriptor`] a file message carries and its checks, the
//! neutralisation of received [`name`]s, the sans-IO [`transfer`] bookkeeping (window,
//! retries, the persisted prefix that resume starts from), and the [`driver`] that moves
//! chunks between a file on disk and a relay on a connection of its own (never the
//! messaging connection), reporting progress to the engine, which persists it.
//! Must never write outside the directory the user chose for a received file, never hold
//! more than the window's chunks in memory, and never declare a file complete before its
//! SHA-256 matched the descriptor's.

pub mod descriptor;
pub mod driver;
pub mod name;
pub mod offer;
pub mod strip;
pub mod transfer;

pub use descriptor::{FileDescriptor, FileError, MAX_FILE_LEN};
pub use driver::{Progress, download, upload};
pub use name::safe_name;
pub use offer::{Prepared, prepare};
pub use strip::Removed;
pub use transfer::Transfer;

/// Chunks a transfer keeps in flight (each holds one chunk in memory on both sides; the
/// relay allows 4 per connection by default).
pub const WINDOW: usize = 4;

/// Default limit on a received file's size (the user sets `file_limit_bytes`): 2 GiB.
pub const DEFAULT_LIMIT_BYTES: u64 = 2 << 30;

/// Whether a file of this name usually carries metadata of its own (EXIF of photos, authors
/// and history of documents). JPEG and PNG are stripped ([`strip`]) unless the user keeps
/// their metadata; every other such kind is sent as is, and front ends warn before sending it.
#[must_use]
pub fn carries_metadata(name: &str) -> bool {
    const KINDS: [&str; 16] = [
        "jpg", "jpeg", "png", "heic", "heif", "tif", "tiff", "webp", "pdf", "doc", "docx", "odt",
        "xlsx", "pptx", "mp4", "mov",
    ];
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| KINDS.iter().any(|k| ext.eq_ignore_ascii_case(k)))
}

/// The warning front ends show for such a file.
pub const METADATA_WARNING: &str = "this file is sent as is: photos and documents carry their own metadata (EXIF location and camera, authors, edit history); remove it first if the recipient should not learn it (hush strips it from JPEG and PNG only)";

/// The text a file message shows in the conversation: its name (neutralised, so that a
/// right-to-left override cannot disguise it there either) and its size.
#[must_use]
pub fn summary(name: &str, size: u64) -> String {
    format!("[file] {} ({})", safe_name(name), human_size(size))
}

/// A size as people write it: bytes (`1048576`), or a number with a unit: `B`, `KiB`,
/// `MiB`, `GiB` (powers of 1024) or `KB`, `MB`, `GB` (powers of 1000), case-insensitive,
/// with an optional space and fraction (`1.5 GiB`). `None` if it is not one or overflows.
#[must_use]
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim());
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || !fraction.chars().all(|c| c.is_ascii_digit()) || fraction.len() > 9 {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let mut bytes = whole.checked_mul(scale)?;
    if !fraction.is_empty() {
        let digits: u64 = fraction.parse().ok()?;
        let denominator = 10u64.pow(u32::try_from(fraction.len()).ok()?);
        let part = u128::from(digits) * u128::from(scale) / u128::from(denominator);
        bytes = bytes.checked_add(u64::try_from(part).ok()?)?;
    }
    Some(bytes)
}

/// A size for people: bytes, KiB, MiB or GiB with one decimal.
#[must_use]
pub fn human_size(size: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = size as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{size} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_people_write_them() {
        for (text, want) in [
            ("1048576", Some(1 << 20)),
            ("500MiB", Some(500 << 20)),
            ("500 mib", Some(500 << 20)),
            ("2GiB", Some(2 << 30)),
            ("1.5 GiB", Some(3 << 29)),
            ("10MB", Some(10_000_000)),
            ("0.5k", Some(512)),
            ("64 KiB", Some(65_536)),
            ("", None),
            ("MiB", None),
            ("-5", None),
            ("5 parsecs", None),
            ("1.2.3", None),
            ("٥ MiB", None),
            ("99999999999999999999", None),
            ("18446744073709551615 GiB", None),
        ] {
            assert_eq!(parse_size(text), want, "{text:?}");
        }
    }
}
