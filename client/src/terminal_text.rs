//! Text from peers made safe to print on a terminal (the CLI's text output).
//!
//! A message body comes from a contact and may hold anything: escape sequences that set the
//! window title, clear the screen or recolour it, a `\r` that overwrites the sender prefix,
//! bidirectional overrides that reorder what follows. Text output shows every such character
//! visibly instead of passing it to the terminal: C0 controls and DEL as their Unicode
//! control pictures (`\u{1b}` prints as `␛`, `\r` as `␍`), C1 controls, bidi embeddings,
//! overrides and isolates (U+202A–U+202E, U+2066–U+2069) and the line and paragraph
//! separators as `\u{…}` escapes. A line feed stays a line break, but the next line is
//! indented so a body cannot forge a line of output (`bob: ...`). `--json` output never
//! goes through here: it carries the exact text.

use std::fmt::Write;

/// Indent of the continuation lines of a multi-line text.
const CONTINUATION: &str = "  ";

/// `text` with every character a terminal would act on shown visibly (see the module
/// documentation).
pub fn terminal_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => {
                out.push('\n');
                out.push_str(CONTINUATION);
            }
            '\t' => out.push(c),
            '\u{0}'..='\u{1f}' => {
                // U+2400.. are the control pictures of U+0000..U+001F, in order.
                let picture = char::from_u32(0x2400 + u32::from(c)).unwrap_or('\u{fffd}');
                out.push(picture);
            }
            '\u{7f}' => out.push('\u{2421}'),
            '\u{80}'..='\u{9f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{2028}'
            | '\u{2029}' => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::terminal_safe;

    #[test]
    fn controls_and_overrides_are_shown_not_acted_on() {
        let hostile =
            "\u{1b}]0;pwned\u{7}\u{1b}[2J\rme: fake\u{9b}31m\u{202e}txt.exe\u{2066}\u{7f}";
        let safe = terminal_safe(hostile);
        assert_eq!(
            safe,
            "␛]0;pwned␇␛[2J␍me: fake\\u{9b}31m\\u{202e}txt.exe\\u{2066}␡"
        );
        assert!(
            !safe
                .chars()
                .any(|c| c.is_control() || ('\u{202a}'..='\u{2069}').contains(&c))
        );
    }

    #[test]
    fn ordinary_text_is_unchanged_and_lines_are_indented() {
        for s in ["hello", "你好，世界", "مرحبا", "👨‍👩‍👧", "a\tb"] {
            assert_eq!(terminal_safe(s), s);
        }
        assert_eq!(terminal_safe("one\nbob: two"), "one\n  bob: two");
    }
}
