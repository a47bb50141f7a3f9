//! QR codes drawn with text cells, in explicit colours: dark modules black, light modules
//! and the quiet zone white, whatever the terminal's theme. (Drawn in the theme's own
//! foreground and background, a code shows inverted on one of light and dark themes, and
//! many scanners cannot read an inverted code.)
//!
//! Two renderings: the default puts 1×2 modules in a cell with `▀` (square modules, as a
//! cell is about twice as tall as wide); the compact one puts 2×3 modules in a cell with
//! the sextant characters of Unicode 13 (U+1FB00…), a third of the rows, for short
//! terminals whose font has them.
//!
//! Only draws; what a code says is the caller's.

use qrcode::{Color as Module, EcLevel, QrCode};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};

/// The colour of dark modules.
pub const DARK: Color = Color::Black;
/// The colour of light modules and the quiet zone.
pub const LIGHT: Color = Color::White;

/// The code of `text` with a quiet zone of `quiet` modules: rows of modules, `true` dark.
pub fn modules(text: &str, quiet: usize) -> Option<Vec<Vec<bool>>> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L).ok()?;
    let n = code.width();
    let colors = code.to_colors();
    let size = n + 2 * quiet;
    Some(
        (0..size)
            .map(|y| {
                (0..size)
                    .map(|x| {
                        let (Some(x), Some(y)) = (x.checked_sub(quiet), y.checked_sub(quiet))
                        else {
                            return false;
                        };
                        x < n && y < n && colors[y * n + x] == Module::Dark
                    })
                    .collect()
            })
            .collect(),
    )
}

fn colour(dark: bool) -> Color {
    if dark { DARK } else { LIGHT }
}

/// The code as lines, or `None` if `text` is too long for a QR code.
pub fn lines(text: &str, compact: bool) -> Option<Vec<Line<'static>>> {
    // The standard's quiet zone is 4 modules; the compact rendering keeps 2, which
    // scanners read, to save rows.
    let m = modules(text, if compact { 2 } else { 4 })?;
    let get = |x: usize, y: usize| m.get(y).and_then(|r| r.get(x)).copied().unwrap_or(false);
    let size = m.len();
    let (cw, ch) = if compact { (2, 3) } else { (1, 2) };
    Some(
        (0..size.div_ceil(ch))
            .map(|row| {
                let spans: Vec<Span<'static>> = (0..size.div_ceil(cw))
                    .map(|col| {
                        let (x, y) = (col * cw, row * ch);
                        if compact {
                            let mut bits = 0u32;
                            for (i, (dx, dy)) in [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
                                .into_iter()
                                .enumerate()
                            {
                                if get(x + dx, y + dy) {
                                    bits |= 1 << i;
                                }
                            }
                            Span::styled(sextant(bits).to_string(), Style::new().fg(DARK).bg(LIGHT))
                        } else {
                            Span::styled(
                                "▀",
                                Style::new().fg(colour(get(x, y))).bg(colour(get(x, y + 1))),
                            )
                        }
                    })
                    .collect();
                Line::from(spans)
            })
            .collect(),
    )
}

/// The character whose dark sixths are `bits` (bit 0 top left, 1 top right, 2 middle left,
/// … 5 bottom right). The block of sextants leaves out the four patterns that older
/// characters already draw.
pub fn sextant(bits: u32) -> char {
    match bits {
        0 => ' ',
        21 => '▌',
        42 => '▐',
        63 => '█',
        b => {
            let skipped = u32::from(b > 21) + u32::from(b > 42);
            char::from_u32(0x1FB00 + b - 1 - skipped).unwrap_or('?')
        }
    }
}

/// The dark sixths of a character drawn by [`sextant`] (for tests that read a screen
/// back).
#[cfg(test)]
pub fn sextant_bits(c: char) -> Option<u32> {
    (0..64).find(|&b| sextant(b) == c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sextants_cover_every_pattern_once() {
        let all: std::collections::HashSet<char> = (0..64).map(sextant).collect();
        assert_eq!(all.len(), 64);
        assert_eq!(sextant(1), '\u{1FB00}');
        assert_eq!(sextant(62), '\u{1FB3B}');
        // After the left column (21) the block skips one code point.
        assert_eq!(sextant_bits('\u{1FB14}'), Some(22));
    }

    #[test]
    fn renderings_have_explicit_colours_and_the_expected_size() {
        let text = "hush:".to_string() + &"A".repeat(195);
        let m = modules(&text, 4).expect("fits a QR code");
        let big = lines(&text, false).expect("fits");
        assert_eq!(big.len(), m.len().div_ceil(2));
        let small = lines(&text, true).expect("fits");
        assert!(small.len() * 3 >= m.len() - 4 && small.len() < big.len());
        for span in big.iter().chain(&small).flat_map(|l| &l.spans) {
            assert!(span.style.fg.is_some() && span.style.bg.is_some());
        }
    }
}
