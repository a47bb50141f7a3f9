//! Removing the metadata a JPEG or PNG photo carries before it is sent (issue 12): the EXIF
//! block (GPS position, camera serial, time), XMP, IPTC, comments, text chunks, embedded
//! thumbnails and further pictures, losslessly: the pixels' bytes are copied as they are.
//!
//! Owns: which segments and chunks are kept (an allow-list: what a decoder needs to show the
//! picture, nothing else) and the report of what was removed. The containers are read and
//! written by `img-parts`; nothing here decodes a pixel.
//! Must never write the stripped copy anywhere (the caller keeps it in memory, at most
//! [`MAX_STRIP_LEN`]), and never pass on an image it could not fully account for: what it
//! cannot strip is refused with [`FileError::Unstrippable`], never sent silently as is.
//! Stripping is deterministic: the same source gives the same bytes, so a resumed upload
//! strips again and checks the result against the descriptor's digest.

use img_parts::Bytes;
use img_parts::jpeg::{Jpeg, markers};
use img_parts::png::Png;

use super::FileError;

/// Largest image stripped (it is held in memory while it is uploaded): 64 MiB, above any
/// phone photo or screenshot.
pub const MAX_STRIP_LEN: u64 = 64 << 20;

/// The image formats stripped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// JPEG (ITU T.81, JFIF/EXIF containers).
    Jpeg,
    /// PNG (RFC 2083).
    Png,
}

impl ImageKind {
    /// The kind a file of this name is expected to be, by its extension.
    #[must_use]
    pub fn of_name(name: &str) -> Option<Self> {
        let (_, ext) = name.rsplit_once('.')?;
        if ext.eq_ignore_ascii_case("jpg") || ext.eq_ignore_ascii_case("jpeg") {
            Some(Self::Jpeg)
        } else if ext.eq_ignore_ascii_case("png") {
            Some(Self::Png)
        } else {
            None
        }
    }
}

/// What was removed, for the front ends to show.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// The kinds removed, each once, in the order found ("EXIF", "XMP", "comment", ...).
    pub kinds: Vec<&'static str>,
    /// Bytes removed.
    pub bytes: u64,
}

impl Removed {
    fn add(&mut self, kind: &'static str) {
        if !self.kinds.contains(&kind) {
            self.kinds.push(kind);
        }
    }

    /// One line for people: "EXIF, XMP (1.2 KiB)", or "nothing".
    #[must_use]
    pub fn describe(&self) -> String {
        if self.kinds.is_empty() {
            "nothing".to_owned()
        } else {
            format!(
                "{} ({})",
                self.kinds.join(", "),
                super::human_size(self.bytes)
            )
        }
    }
}

/// A stripped image: the bytes to send and what was removed.
#[derive(Clone, PartialEq, Eq)]
pub struct Stripped {
    /// The image without its metadata.
    pub bytes: Vec<u8>,
    /// What was removed.
    pub removed: Removed,
}

impl std::fmt::Debug for Stripped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { bytes, removed } = self;
        f.debug_struct("Stripped")
            .field("len", &bytes.len())
            .field("removed", removed)
            .finish()
    }
}

/// Strips `image`, which must be of `kind` (checked by its signature).
///
/// # Errors
/// [`FileError::Unstrippable`] if it is larger than [`MAX_STRIP_LEN`], is not of `kind`, does
/// not parse, or holds something this cannot account for (markers of metadata after the
/// first scan of a JPEG).
pub fn strip(kind: ImageKind, image: &[u8]) -> Result<Stripped, FileError> {
    if image.len() as u64 > MAX_STRIP_LEN {
        return Err(FileError::Unstrippable);
    }
    let bytes = Bytes::copy_from_slice(image);
    let (out, mut removed) = match kind {
        ImageKind::Jpeg => strip_jpeg(bytes)?,
        ImageKind::Png => strip_png(bytes)?,
    };
    removed.bytes = (image.len() as u64).saturating_sub(out.len() as u64);
    Ok(Stripped {
        bytes: out,
        removed,
    })
}

/// What an APPn or COM segment is, and whether a decoder needs it.
fn jpeg_segment(marker: u8, contents: &[u8]) -> Result<(), &'static str> {
    let starts = |p: &[u8]| contents.starts_with(p);
    match marker {
        // JFIF's header (density only); a JFXX thumbnail may show an uncropped picture.
        markers::APP0 if starts(b"JFIF\0") => Ok(()),
        markers::APP0 => Err("thumbnail"),
        markers::APP1 if starts(b"Exif\0") => Err("EXIF"),
        markers::APP1 if starts(b"http://ns.adobe.com/") => Err("XMP"),
        // The colour profile: needed to show the colours right.
        markers::APP2 if starts(b"ICC_PROFILE\0") => Ok(()),
        markers::APP2 if starts(b"MPF\0") => Err("other pictures"),
        markers::APP13 => Err("IPTC"),
        // Adobe's colour transform flag: needed to decode CMYK and YCCK pictures.
        markers::APP14 if starts(b"Adobe") => Ok(()),
        markers::COM => Err("comment"),
        m if (markers::APP0..=markers::APP15).contains(&m) => Err("other metadata"),
        _ => Ok(()),
    }
}

fn strip_jpeg(image: Bytes) -> Result<(Vec<u8>, Removed), FileError> {
    let mut jpeg = Jpeg::from_bytes(image).map_err(|_| FileError::Unstrippable)?;
    let mut removed = Removed::default();
    jpeg.segments_mut()
        .retain(|s| match jpeg_segment(s.marker(), s.contents()) {
            Ok(()) => true,
            Err(kind) => {
                removed.add(kind);
                false
            }
        });
    let Some(sos) = jpeg.segments().last().filter(|s| s.has_entropy()) else {
        // No scan: no picture to send.
        return Err(FileError::Unstrippable);
    };
    let tail_len = sos.len_with_entropy() - sos.len();
    let mut out = jpeg.encoder().bytes().to_vec();
    // Everything from the first scan on is one opaque tail to the crate: the picture's
    // remaining scans and its end marker, then whatever follows it (the further pictures an
    // MPF segment lists, makers' trailers). Keep the tail up to the first end marker and
    // refuse a tail that has metadata or a new picture before it: in entropy-coded data a
    // 0xFF byte is followed only by 0x00 or a restart marker, so these cannot appear by
    // chance there (only, rarely, inside a table between scans: refused, never sent).
    let tail_start = out.len() - tail_len;
    let end = scan_tail(&out[tail_start..]).ok_or(FileError::Unstrippable)?;
    if tail_start + end < out.len() {
        removed.add("data after the picture");
        out.truncate(tail_start + end);
    }
    Ok((out, removed))
}

/// The length of `tail` up to and including its first EOI marker, or `None` if a marker of
/// metadata (APPn, COM) or a new picture (SOI) comes before it, or there is none.
fn scan_tail(tail: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(at) = tail[i..].iter().position(|&b| b == markers::P) {
        let m = *tail.get(i + at + 1)?;
        match m {
            markers::EOI => return Some(i + at + 2),
            markers::SOI | markers::COM => return None,
            m if (markers::APP0..=markers::APP15).contains(&m) => return None,
            _ => i += at + 1,
        }
    }
    None
}

/// The PNG chunks kept besides the critical ones (IHDR, PLTE, IDAT, IEND): what changes how
/// the picture shows (transparency, colour, gamma, pixel aspect) or moves (APNG frames).
const PNG_KEPT: [&[u8; 4]; 15] = [
    b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB", b"cICP", b"mDCV", b"cLLI", b"bKGD",
    b"pHYs", b"sPLT", b"acTL", b"fcTL", b"fdAT",
];

fn strip_png(image: Bytes) -> Result<(Vec<u8>, Removed), FileError> {
    let mut png = Png::from_bytes(image).map_err(|_| FileError::Unstrippable)?;
    if png.chunks().last().map(|c| c.kind()) != Some(*b"IEND") {
        return Err(FileError::Unstrippable);
    }
    let mut removed = Removed::default();
    png.chunks_mut().retain(|c| {
        let kind = c.kind();
        // Critical chunks have an upper-case first letter; a decoder needs every one.
        if kind[0].is_ascii_uppercase() || PNG_KEPT.contains(&&kind) {
            return true;
        }
        removed.add(match &kind {
            b"eXIf" => "EXIF",
            b"tEXt" | b"zTXt" | b"iTXt" => "text (author, software, XMP)",
            b"tIME" => "time",
            _ => "other metadata",
        });
        false
    });
    let out = png.encoder().bytes().to_vec();
    Ok((out, removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_extension() {
        assert_eq!(ImageKind::of_name("照片.JPG"), Some(ImageKind::Jpeg));
        assert_eq!(ImageKind::of_name("a.jpeg"), Some(ImageKind::Jpeg));
        assert_eq!(ImageKind::of_name("صورة.png"), Some(ImageKind::Png));
        assert_eq!(ImageKind::of_name("png"), None);
        assert_eq!(ImageKind::of_name("a.heic"), None);
    }

    #[test]
    fn a_tail_is_cut_at_its_first_end_and_refused_with_metadata_before_it() {
        // Entropy data with a stuffed 0xFF and a restart marker, then the end.
        assert_eq!(
            scan_tail(&[1, 0xFF, 0, 2, 0xFF, 0xD3, 3, 0xFF, 0xD9]),
            Some(9)
        );
        // A second picture after the end is cut off.
        assert_eq!(scan_tail(&[1, 0xFF, 0xD9, 0xFF, 0xD8, 0xFF, 0xE1]), Some(3));
        // Metadata or a new picture before the end: refused.
        assert_eq!(scan_tail(&[1, 0xFF, 0xE1, 0, 0xFF, 0xD9]), None);
        assert_eq!(scan_tail(&[1, 0xFF, 0xFE, 0, 0xFF, 0xD9]), None);
        assert_eq!(scan_tail(&[0xFF, 0xD8, 0xFF, 0xD9]), None);
        // No end at all, or a lone 0xFF at the end.
        assert_eq!(scan_tail(&[1, 2, 3]), None);
        assert_eq!(scan_tail(&[1, 0xFF]), None);
        assert_eq!(scan_tail(&[]), None);
    }

    use hush_testkit::photo;

    /// Seen failing: with `jpeg_segment` keeping APP1 the EXIF and XMP secrets stayed; with
    /// `out.truncate` removed, the appended second picture's metadata stayed (7 secrets).
    #[test]
    fn a_jpeg_loses_exif_xmp_iptc_comment_and_extra_pictures_and_keeps_its_pixels() {
        for (w, h, seed) in [(16, 8, 0), (300, 200, 0x5eed)] {
            let original = photo::jpeg(w, h, seed);
            assert_eq!(
                photo::has_secrets(&original).len(),
                7,
                "the fixture is loaded"
            );
            // A second picture after the first (an MPF-style depth map, with its own EXIF).
            let mut with_extra = original.clone();
            with_extra.extend_from_slice(&photo::jpeg(8, 8, 0));
            for input in [&original, &with_extra] {
                let s = strip(ImageKind::Jpeg, input).unwrap();
                assert_eq!(photo::has_secrets(&s.bytes), Vec::<String>::new());
                assert_eq!(
                    photo::picture_data(&s.bytes),
                    photo::picture_data(&original)
                );
                assert!(s.bytes.starts_with(&[0xFF, 0xD8]) && s.bytes.ends_with(&[0xFF, 0xD9]));
                for kind in ["EXIF", "XMP", "IPTC", "comment"] {
                    assert!(s.removed.kinds.contains(&kind), "{:?}", s.removed);
                }
                assert_eq!(s.removed.bytes, (input.len() - s.bytes.len()) as u64);
                // Deterministic (resume strips again) and idempotent.
                assert_eq!(strip(ImageKind::Jpeg, input).unwrap(), s);
                let again = strip(ImageKind::Jpeg, &s.bytes).unwrap();
                assert_eq!(
                    (again.bytes, again.removed.kinds),
                    (s.bytes.clone(), vec![])
                );
            }
            let s = strip(ImageKind::Jpeg, &with_extra).unwrap();
            assert!(s.removed.kinds.contains(&"data after the picture"));
        }
    }

    /// Seen failing: with `PNG_KEPT` holding `tEXt`, the author's name stayed.
    #[test]
    fn a_png_loses_exif_text_and_time_and_keeps_its_pixels() {
        let original = photo::png();
        assert_eq!(
            photo::has_secrets(&original).len(),
            6,
            "the fixture is loaded"
        );
        let mut trailing = original.clone();
        trailing.extend_from_slice("مصدر سري".as_bytes());
        for input in [&original, &trailing] {
            let s = strip(ImageKind::Png, input).unwrap();
            assert_eq!(photo::has_secrets(&s.bytes), Vec::<String>::new());
            assert_eq!(
                photo::picture_data(&s.bytes),
                photo::picture_data(&original)
            );
            assert_eq!(
                s.removed.kinds,
                vec!["EXIF", "text (author, software, XMP)", "time"]
            );
            assert_eq!(
                s.removed.describe(),
                format!(
                    "EXIF, text (author, software, XMP), time ({})",
                    crate::files::human_size(s.removed.bytes)
                )
            );
        }
    }

    /// Seen failing: with a tail that `scan_tail` refuses kept whole instead, the EXIF
    /// segment placed after the scan was "stripped" and would have been sent.
    #[test]
    fn hostile_images_are_refused_by_name_and_never_panic() {
        let good = photo::jpeg(16, 16, 0);
        // Every truncation, and a flipped byte at every offset of the headers.
        for n in 0..good.len() {
            let _ = strip(ImageKind::Jpeg, &good[..n]);
        }
        for i in 0..good.len().min(2000) {
            let mut b = good.clone();
            b[i] ^= 0xFF;
            if let Ok(s) = strip(ImageKind::Jpeg, &b) {
                assert!(s.bytes.len() <= b.len());
            }
        }
        let png = photo::png();
        for n in 0..png.len() {
            let r = strip(ImageKind::Png, &png[..n]);
            assert!(n == png.len() || r == Err(FileError::Unstrippable), "{n}");
        }
        // A segment length running past the end, a huge length, metadata after the scan.
        let mut lying = good[..4].to_vec();
        lying.extend_from_slice(&[0xFF, 0xFF, 1, 2]);
        assert_eq!(strip(ImageKind::Jpeg, &lying), Err(FileError::Unstrippable));
        let mut late = good[..good.len() - 2].to_vec();
        late.extend_from_slice(&[0xFF, 0xE1, 0, 8]);
        late.extend_from_slice(b"Exif\0\0");
        late.extend_from_slice(&[0xFF, 0xD9]);
        assert_eq!(strip(ImageKind::Jpeg, &late), Err(FileError::Unstrippable));
        let big = vec![0u8; usize::try_from(MAX_STRIP_LEN).unwrap() + 1];
        assert_eq!(strip(ImageKind::Jpeg, &big), Err(FileError::Unstrippable));
    }

    #[test]
    fn what_is_not_an_image_of_its_kind_is_refused_by_name() {
        for bytes in [
            &b""[..],
            b"\xFF\xD8",
            b"\xFF\xD8\xFF\xE1\xFF\xFF",
            b"\x89PNG\r\n\x1a\n",
            b"%PDF-1.7",
        ] {
            assert_eq!(strip(ImageKind::Jpeg, bytes), Err(FileError::Unstrippable));
            assert_eq!(strip(ImageKind::Png, bytes), Err(FileError::Unstrippable));
        }
    }
}
