//! Photos that carry what a source's camera or editor writes into them, for the tests of
//! metadata stripping: a real JPEG (encoded by `jpeg-encoder` from pixels) with an EXIF block
//! holding a GPS position, a camera make and serial, an XMP packet, an IPTC block and a
//! comment; a real PNG with `eXIf`, `tEXt`, `iTXt` (XMP) and `tIME` chunks. [`SECRETS`] are
//! byte strings found only in that metadata; [`picture_data`] is what a decoder reads to
//! draw the picture, to check that stripping left it byte for byte.

/// Byte strings that occur only inside the fixtures' metadata.
pub const SECRETS: [&[u8]; 8] = [
    b"Exif\0\0",
    "Cámara-相机".as_bytes(),
    b"SN-7731-0042",
    b"http://ns.adobe.com/xap/1.0/",
    "52°31′N 13°24′E".as_bytes(),
    "مصدر سري".as_bytes(),
    b"Photoshop 3.0",
    b"tIME",
];

/// A TIFF (EXIF) block: IFD0 with Make, BodySerialNumber and a GPS IFD pointer; the GPS IFD
/// with latitude and longitude references and values.
fn exif_tiff() -> Vec<u8> {
    let make = "Cámara-相机\0".as_bytes();
    let serial = b"SN-7731-0042\0";
    let mut t = b"MM\0\x2a\0\0\0\x08".to_vec();
    // IFD0 at 8: 3 entries (12 bytes each), next IFD 0; data after it.
    let ifd0_end = 8 + 2 + 3 * 12 + 4;
    let make_at = ifd0_end;
    let serial_at = make_at + make.len();
    let gps_at = serial_at + serial.len();
    let entry = |t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: u32| {
        t.extend_from_slice(&tag.to_be_bytes());
        t.extend_from_slice(&kind.to_be_bytes());
        t.extend_from_slice(&count.to_be_bytes());
        t.extend_from_slice(&value.to_be_bytes());
    };
    t.extend_from_slice(&3u16.to_be_bytes());
    entry(&mut t, 0x010F, 2, make.len() as u32, make_at as u32);
    entry(&mut t, 0x8825, 4, 1, gps_at as u32);
    entry(&mut t, 0xA431, 2, serial.len() as u32, serial_at as u32);
    t.extend_from_slice(&0u32.to_be_bytes());
    t.extend_from_slice(make);
    t.extend_from_slice(serial);
    // GPS IFD: LatitudeRef 'N', Latitude 52/1 31/1 0/1, LongitudeRef 'E', Longitude 13 24 0.
    let gps_end = gps_at + 2 + 4 * 12 + 4;
    t.extend_from_slice(&4u16.to_be_bytes());
    entry(&mut t, 1, 2, 2, u32::from_be_bytes(*b"N\0\0\0"));
    entry(&mut t, 2, 5, 3, gps_end as u32);
    entry(&mut t, 3, 2, 2, u32::from_be_bytes(*b"E\0\0\0"));
    entry(&mut t, 4, 5, 3, (gps_end + 24) as u32);
    t.extend_from_slice(&0u32.to_be_bytes());
    for v in [52u32, 1, 31, 1, 0, 1, 13, 1, 24, 1, 0, 1] {
        t.extend_from_slice(&v.to_be_bytes());
    }
    t
}

fn xmp() -> Vec<u8> {
    let mut x = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
    x.extend_from_slice(
        "<x:xmpmeta xmlns:x='adobe:ns:meta/'><exif:GPSLatitude>52°31′N 13°24′E</exif:GPSLatitude><dc:creator>مصدر سري</dc:creator></x:xmpmeta>"
            .as_bytes(),
    );
    x
}

/// Pixels of a `w`×`h` RGB picture: a seeded pattern (noise makes a larger file).
fn pixels(w: u16, h: u16, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..usize::from(w) * usize::from(h) * 3)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if seed == 0 { (i % 251) as u8 } else { x as u8 }
        })
        .collect()
}

/// A JPEG of `w`×`h` pixels (noise if `seed` is not 0) with EXIF (GPS, make, serial), XMP,
/// IPTC and a comment.
pub fn jpeg(w: u16, h: u16, seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 90);
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend_from_slice(&exif_tiff());
    enc.add_app_segment(1, exif).unwrap();
    enc.add_app_segment(1, xmp()).unwrap();
    let mut iptc = b"Photoshop 3.0\08BIM\x04\x04\0\0\0\0\0\x10".to_vec();
    iptc.extend_from_slice("مصدر سري".as_bytes());
    enc.add_app_segment(13, iptc).unwrap();
    enc.encode(&pixels(w, h, seed), w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    // A comment (COM) right after SOI, as some cameras write one.
    let comment = "Cámara-相机 SN-7731-0042".as_bytes();
    let mut com = vec![0xFF, 0xFE];
    com.extend_from_slice(&u16::try_from(comment.len() + 2).unwrap().to_be_bytes());
    com.extend_from_slice(comment);
    out.splice(2..2, com);
    out
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(kind);
    h.update(data);
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&h.finalize().to_be_bytes());
}

/// A PNG of 4×3 RGB pixels with `eXIf` (GPS, make, serial), `tEXt`, `iTXt` (XMP) and `tIME`.
pub fn png() -> Vec<u8> {
    let (w, h) = (4u32, 3u32);
    // Scanlines with filter 0, in one stored (uncompressed) deflate block.
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0);
        for x in 0..w * 3 {
            raw.push(u8::try_from((x * 20 + y * 50) % 256).unwrap());
        }
    }
    let mut z = vec![0x78, 0x01, 0x01];
    let len = u16::try_from(raw.len()).unwrap();
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&(!len).to_le_bytes());
    z.extend_from_slice(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());

    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"gAMA", &45455u32.to_be_bytes());
    png_chunk(&mut out, b"eXIf", &exif_tiff());
    png_chunk(&mut out, b"tEXt", "Author\0مصدر سري".as_bytes());
    let mut itxt = b"XML:com.adobe.xmp\0\0\0\0\0".to_vec();
    itxt.extend_from_slice(&xmp());
    png_chunk(&mut out, b"iTXt", &itxt);
    png_chunk(&mut out, b"tIME", &[7, 234, 12, 1, 20, 25, 0]);
    png_chunk(&mut out, b"IDAT", &z);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// What a decoder reads to draw the picture: for a JPEG everything from its first
/// quantisation table (DQT) on (tables, frame header, scans, end marker); for a PNG its
/// critical chunks and `gAMA`, in order.
pub fn picture_data(image: &[u8]) -> Vec<u8> {
    if image.starts_with(b"\x89PNG") {
        let mut out = Vec::new();
        let mut at = 8;
        while at + 12 <= image.len() {
            let len = u32::from_be_bytes(image[at..at + 4].try_into().unwrap()) as usize;
            let kind = &image[at + 4..at + 8];
            let whole = &image[at..at + 12 + len];
            if kind[0].is_ascii_uppercase() || kind == b"gAMA" {
                out.extend_from_slice(whole);
            }
            at += 12 + len;
        }
        out
    } else {
        let dqt = image
            .windows(2)
            .position(|w| w == [0xFF, 0xDB])
            .expect("a JPEG has a DQT");
        image[dqt..].to_vec()
    }
}

/// Whether `image` holds any of [`SECRETS`].
pub fn has_secrets(image: &[u8]) -> Vec<String> {
    SECRETS
        .iter()
        .filter(|s| image.windows(s.len()).any(|w| w == **s))
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}
