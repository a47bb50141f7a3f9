//! Neutralising a file name a peer chose before it touches the file system.
//!
//! Owns: the one function that turns a received name into a single path component that is
//! safe to create inside the directory the user chose: no separator, no `..`, no hidden or
//! device name, no control or bidirectional-override character, bounded length.
//! Must never return a name that could leave that directory or be mistaken for another
//! file's (`invoice.exe` written as `invoice` U+202E `fdp.exe`, which shows as
//! `invoiceexe.pdf`, is the classic right-to-left trick).

/// Longest name written, in bytes (room below the 255 bytes of common file systems for a
/// ` (n)` suffix and a temporary prefix).
pub const MAX_SAFE_NAME_LEN: usize = 200;

/// What a name becomes when nothing usable is left.
const FALLBACK: &str = "file";

/// Characters dropped: controls, and those that reorder or hide text.
fn is_dropped(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200C}' // zero-width space and non-joiner (ZWJ stays: emoji)
                | '\u{200E}'..='\u{200F}' // left-to-right and right-to-left marks
                | '\u{202A}'..='\u{202E}' // embeddings and overrides
                | '\u{2066}'..='\u{2069}' // isolates
                | '\u{061C}' // Arabic letter mark
                | '\u{FEFF}' // byte order mark
        )
}

/// Characters replaced by `_`: separators and what Windows refuses in a name.
fn is_replaced(c: char) -> bool {
    matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
}

/// Names Windows reserves for devices, with any extension.
fn is_reserved(stem: &str) -> bool {
    let upper = stem.to_ascii_uppercase();
    matches!(upper.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((upper.starts_with("COM") || upper.starts_with("LPT"))
            && upper.len() == 4
            && upper.as_bytes()[3].is_ascii_digit())
}

/// A single safe path component for the received name `raw`.
#[must_use]
pub fn safe_name(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .filter(|&c| !is_dropped(c))
        .map(|c| if is_replaced(c) { '_' } else { c })
        .collect();
    // No hidden file, no `.` or `..`, no trailing dot or space (Windows drops them).
    let trimmed = cleaned
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);
    let mut name = if trimmed.is_empty() {
        FALLBACK.to_owned()
    } else {
        trimmed.to_owned()
    };
    let stem = name.split('.').next().unwrap_or("");
    if is_reserved(stem) {
        name.insert(0, '_');
    }
    if name.len() > MAX_SAFE_NAME_LEN {
        name = shorten(&name);
    }
    name
}

/// Cuts `name` to [`MAX_SAFE_NAME_LEN`] bytes at a character boundary, keeping a short
/// extension (up to 16 bytes) so the file still opens with the right program.
fn shorten(name: &str) -> String {
    let ext = name
        .rfind('.')
        .map(|i| &name[i..])
        .filter(|e| e.len() <= 16 && e.len() > 1)
        .unwrap_or("");
    let room = MAX_SAFE_NAME_LEN - ext.len();
    let mut cut = room.min(name.len() - ext.len());
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{ext}", &name[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_become_one_harmless_component() {
        let cases = [
            ("../../etc/passwd", "_.._etc_passwd"),
            ("..", "file"),
            (".", "file"),
            ("", "file"),
            ("/absolute/path.txt", "_absolute_path.txt"),
            ("..\\..\\windows\\system32", "_.._windows_system32"),
            ("a\0b.txt", "ab.txt"),
            ("bell\u{7}\u{1b}[31m.txt", "bell[31m.txt"),
            ("invoice\u{202E}fdp.exe", "invoicefdp.exe"),
            ("\u{2067}evil\u{2069}.sh", "evil.sh"),
            ("CON", "_CON"),
            ("con.txt", "_con.txt"),
            ("LPT1.log", "_LPT1.log"),
            (".bashrc", "bashrc"),
            ("name. ", "name"),
            ("C:report.pdf", "C_report.pdf"),
        ];
        for (raw, want) in cases {
            assert_eq!(safe_name(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn the_worlds_names_stay_as_they_are() {
        for n in [
            "报告 2024.pdf",
            "تقرير سري.docx",
            "👨‍👩‍👧 family.jpg",
            "résumé.odt",
        ] {
            assert_eq!(safe_name(n), n);
        }
    }

    #[test]
    fn very_long_names_are_cut_at_a_character_keeping_the_extension() {
        let long = format!("{}.pdf", "文".repeat(200));
        let s = safe_name(&long);
        assert!(s.len() <= MAX_SAFE_NAME_LEN);
        assert!(s.ends_with("文.pdf"), "{s}");
        let s = safe_name(&"x".repeat(1000));
        assert_eq!(s.len(), MAX_SAFE_NAME_LEN);
        for raw in [long.as_str(), "a/b", "..", "\u{202E}"] {
            let s = safe_name(raw);
            assert!(!s.contains('/') && !s.contains('\\') && s != ".." && !s.is_empty());
        }
    }
}
