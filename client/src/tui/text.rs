//! Text as people write it: cutting and editing by grapheme cluster (what a reader sees as
//! one character: `é` as e + accent, 👍🏽 with its skin tone, the family 👨‍👩‍👧‍👦 of seven
//! code points) and measuring by display width (CJK ideographs and most emoji take two
//! columns), after Unicode's UAX #29 (segmentation) and UAX #11 (width).
//!
//! Right-to-left text (Arabic, Hebrew) is kept in logical order, as typed and as stored,
//! and only ever cut between words or grapheme clusters, never inside one: the ordering of
//! a right-to-left run on screen is the terminal's (VTE, Konsole and mlterm apply the
//! Unicode bidirectional algorithm to what they are given; reordering here as well would
//! reverse it twice there). On a terminal without bidirectional support a right-to-left
//! word shows its letters left to right, whole and in their order, not scrambled.
//!
//! Pure functions on strings; nothing here draws or knows the app.

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// Columns `s` takes on a terminal.
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// Cuts one line of text (no `\n`) into rows: the first at most `first` columns wide, the
/// others at most `rest`. Breaks between words where it can (the spaces at a break are
/// dropped), inside a word longer than a row only between grapheme clusters. CJK text,
/// which has no spaces, breaks between any two ideographs. Always at least one row.
pub fn wrap(line: &str, first: usize, rest: usize) -> Vec<String> {
    let (first, rest) = (first.max(2), rest.max(2));
    let mut rows = Vec::new();
    let mut cur = String::new();
    let mut cur_w = 0;
    let limit = |rows: &Vec<String>| if rows.is_empty() { first } else { rest };
    for word in line.split_word_bounds() {
        let w = width(word);
        if cur_w + w <= limit(&rows) {
            cur.push_str(word);
            cur_w += w;
            continue;
        }
        if word.trim().is_empty() {
            // The break goes here; the spaces go with it.
            rows.push(std::mem::take(&mut cur).trim_end().to_string());
            cur_w = 0;
            continue;
        }
        if w <= rest && !cur.trim().is_empty() {
            rows.push(std::mem::take(&mut cur).trim_end().to_string());
            cur_w = 0;
            cur.push_str(word);
            cur_w += w;
            continue;
        }
        // A word wider than a row: cut between grapheme clusters.
        for g in word.graphemes(true) {
            let gw = width(g);
            if cur_w + gw > limit(&rows) && !cur.is_empty() {
                rows.push(std::mem::take(&mut cur));
                cur_w = 0;
            }
            cur.push_str(g);
            cur_w += gw;
        }
    }
    rows.push(cur);
    rows
}

/// Text wrapped to `width` columns, line breaks kept: each line of `text` wrapped alone.
pub fn wrap_text(text: &str, width: usize) -> Vec<String> {
    text.split('\n')
        .flat_map(|l| wrap(l, width, width))
        .collect()
}

/// Text as typed or pasted, with line breaks as `\n`: a terminal sends `\r` for Enter, and
/// a paste brings `\r\n` or a lone `\r` from other systems.
pub fn normalize_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Removes the last grapheme cluster of `s` (what Backspace removes on a field without a
/// cursor, such as a passphrase).
pub fn pop_grapheme(s: &mut String) {
    if let Some((i, _)) = s.grapheme_indices(true).next_back() {
        s.truncate(i);
    }
}

/// A line editor's state: the text and the cursor, a byte offset on a grapheme cluster
/// boundary. The cursor is kept as its distance from the end, so that text set from
/// outside (a paste, a test) has the cursor after it, where one goes on typing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Bytes between the cursor and the end of the text.
    from_end: usize,
}

/// What a key does to the text being edited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Left: one grapheme cluster back.
    Left,
    /// Right: one grapheme cluster on.
    Right,
    /// Home, Ctrl-A: the start of the line.
    Home,
    /// End, Ctrl-E: the end of the line.
    End,
    /// Alt-Left, Ctrl-Left: the start of the word.
    WordLeft,
    /// Alt-Right, Ctrl-Right: the end of the word.
    WordRight,
    /// Backspace: removes the grapheme cluster before the cursor.
    Backspace,
    /// Delete: removes the grapheme cluster after the cursor.
    Delete,
    /// Ctrl-U: removes from the start of the line to the cursor.
    KillToStart,
    /// Ctrl-K: removes from the cursor to the end of the line.
    KillToEnd,
    /// Ctrl-W: removes the word before the cursor.
    KillWord,
}

impl Cursor {
    /// The cursor's byte offset in `text`, on a boundary (moved back to one if `text`
    /// changed under it).
    pub fn pos(&self, text: &str) -> usize {
        let pos = text.len().saturating_sub(self.from_end);
        text.grapheme_indices(true)
            .map(|(i, _)| i)
            .chain(std::iter::once(text.len()))
            .take_while(|&i| i <= pos)
            .last()
            .unwrap_or(0)
    }

    fn set(&mut self, text: &str, pos: usize) {
        self.from_end = text.len() - pos;
    }

    /// Puts the cursor at byte `pos` of `text` (the text it will edit next).
    pub fn set_at(&mut self, text: &str, pos: usize) {
        self.set(text, pos.min(text.len()));
    }

    /// Puts the cursor after the text.
    pub fn move_to_end(&mut self) {
        self.from_end = 0;
    }

    /// Inserts `s` at the cursor, the cursor after it.
    pub fn insert(&mut self, text: &mut String, s: &str) {
        let pos = self.pos(text);
        text.insert_str(pos, s);
        self.set(text, pos + s.len());
    }

    /// Applies `edit`; says whether the text changed.
    pub fn apply(&mut self, text: &mut String, edit: Edit) -> bool {
        let pos = self.pos(text);
        let line_start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
        let prev = prev_boundary(text, pos);
        let next = next_boundary(text, pos);
        let (cut, to) = match edit {
            Edit::Left => (None, prev),
            Edit::Right => (None, next),
            Edit::Home => (None, line_start),
            Edit::End => (None, line_end),
            Edit::WordLeft => (None, word_start(text, pos)),
            Edit::WordRight => (None, word_end(text, pos)),
            Edit::Backspace => (Some(prev..pos), prev),
            Edit::Delete => (Some(pos..next), pos),
            Edit::KillToStart => (Some(line_start..pos), line_start),
            Edit::KillToEnd => (Some(pos..line_end), pos),
            Edit::KillWord => {
                let start = word_start(text, pos);
                (Some(start..pos), start)
            }
        };
        let changed = cut.as_ref().is_some_and(|r| !r.is_empty());
        if let Some(r) = cut {
            text.replace_range(r, "");
        }
        self.set(text, to);
        changed
    }
}

fn prev_boundary(text: &str, pos: usize) -> usize {
    text[..pos]
        .grapheme_indices(true)
        .next_back()
        .map_or(0, |(i, _)| i)
}

fn next_boundary(text: &str, pos: usize) -> usize {
    text[pos..]
        .graphemes(true)
        .next()
        .map_or(pos, |g| pos + g.len())
}

fn is_word(s: &str) -> bool {
    s.chars().any(char::is_alphanumeric)
}

/// The start of the word before `pos` (skipping spaces and punctuation first).
fn word_start(text: &str, pos: usize) -> usize {
    let mut start = pos;
    let mut seen_word = false;
    for (i, w) in text[..pos].split_word_bound_indices().rev() {
        if is_word(w) {
            if seen_word && !w.contains('\n') {
                // Only one word.
                break;
            }
            seen_word = true;
            start = i;
        } else if seen_word || w.contains('\n') {
            break;
        } else {
            start = i;
        }
    }
    start
}

/// The end of the word after `pos` (skipping spaces and punctuation first).
fn word_end(text: &str, pos: usize) -> usize {
    let mut end = pos;
    for (i, w) in text[pos..].split_word_bound_indices() {
        end = pos + i + w.len();
        if is_word(w) || w.contains('\n') {
            break;
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAMILY: &str = "👨\u{200d}👩\u{200d}👧\u{200d}👦";
    const THUMB: &str = "👍🏽";

    fn edited(text: &str, keys: &[Edit]) -> (String, usize) {
        let mut t = text.to_string();
        let mut c = Cursor::default();
        for k in keys {
            c.apply(&mut t, *k);
        }
        let pos = c.pos(&t);
        (t, pos)
    }

    #[test]
    fn widths() {
        assert_eq!(width("abc"), 3);
        assert_eq!(width("中文"), 4);
        assert_eq!(width("日本語"), 6);
        assert_eq!(width(THUMB), 2);
        assert_eq!(width(FAMILY), 2);
        assert_eq!(width("مرحبا"), 5);
    }

    #[test]
    fn wraps_by_width_and_words() {
        assert_eq!(wrap("hello big world", 9, 9), vec!["hello big", "world"]);
        assert_eq!(wrap("", 5, 5), vec![""]);
        // Ten ideographs, two columns each, in rows of 7 columns: three per row.
        let zh = "我们明天下午三点见面";
        let rows = wrap(zh, 7, 7);
        assert!(rows.iter().all(|r| width(r) <= 7), "{rows:?}");
        assert_eq!(rows.concat(), zh, "every character kept");
        // A word longer than a row is cut between graphemes, never inside one.
        let emoji = format!("{FAMILY}{THUMB}{FAMILY}{THUMB}");
        let rows = wrap(&emoji, 4, 4);
        assert_eq!(
            rows,
            vec![format!("{FAMILY}{THUMB}"), format!("{FAMILY}{THUMB}")]
        );
        // Arabic words stay whole and in logical order.
        let ar = "مرحبا بكم في هذا المكان";
        let rows = wrap(ar, 10, 10);
        assert_eq!(rows, vec!["مرحبا بكم", "في هذا", "المكان"]);
        // A narrower first row (after a name) and wider rest.
        assert_eq!(wrap("aa bb cc dd", 2, 5), vec!["aa", "bb cc", "dd"]);
    }

    #[test]
    fn backspace_and_delete_take_whole_graphemes() {
        let text = format!("hi {FAMILY}{THUMB}");
        assert_eq!(edited(&text, &[Edit::Backspace]).0, format!("hi {FAMILY}"));
        assert_eq!(
            edited(&text, &[Edit::Backspace, Edit::Backspace]).0,
            "hi ",
            "the family in one press"
        );
        assert_eq!(
            edited(&text, &[Edit::Left, Edit::Left, Edit::Delete]).0,
            format!("hi {THUMB}"),
            "the skin tone stays with its hand"
        );
        assert_eq!(edited("e\u{301}x", &[Edit::Left, Edit::Backspace]).0, "x");
    }

    #[test]
    fn moves_and_kills() {
        let text = "one two three";
        assert_eq!(edited(text, &[Edit::WordLeft]).1, 8);
        assert_eq!(edited(text, &[Edit::WordLeft, Edit::WordLeft]).1, 4);
        assert_eq!(edited(text, &[Edit::Home, Edit::WordRight]).1, 3);
        assert_eq!(
            edited(text, &[Edit::Home, Edit::WordRight, Edit::WordRight]).1,
            7
        );
        assert_eq!(edited(text, &[Edit::KillWord]).0, "one two ");
        assert_eq!(
            edited(text, &[Edit::WordLeft, Edit::KillToStart]),
            ("three".into(), 0)
        );
        assert_eq!(
            edited(text, &[Edit::WordLeft, Edit::KillToEnd]).0,
            "one two "
        );
        assert_eq!(
            edited(text, &[Edit::Home, Edit::Right, Edit::Delete]).0,
            "oe two three"
        );
        // Home and End stay on the cursor's line.
        let two = "first\nsecond";
        assert_eq!(edited(two, &[Edit::Home]).1, 6);
        assert_eq!(edited(two, &[Edit::Home, Edit::Left, Edit::Home]).1, 0);
        assert_eq!(edited(two, &[Edit::Home, Edit::Left, Edit::End]).1, 5);
        assert_eq!(edited(two, &[Edit::KillToStart]).0, "first\n");
        // Word moves over CJK go ideograph by ideograph; they never split one.
        let (t, pos) = edited("说中文", &[Edit::WordLeft]);
        assert!(t.is_char_boundary(pos) && pos < t.len());
    }

    #[test]
    fn insert_at_the_cursor() {
        let mut t = "ac".to_string();
        let mut c = Cursor::default();
        c.apply(&mut t, Edit::Left);
        c.insert(&mut t, "b");
        assert_eq!((t.as_str(), c.pos(&t)), ("abc", 2));
        // Text replaced from outside: the cursor goes back to a boundary.
        let mut t = FAMILY.to_string();
        let mut c = Cursor { from_end: 3 };
        assert_eq!(c.pos(&t), 0);
        c.insert(&mut t, "x");
        assert!(t.starts_with('x'));
    }

    #[test]
    fn newlines_from_terminals() {
        assert_eq!(normalize_newlines("a\r\nb\rc\nd"), "a\nb\nc\nd");
        let mut s = format!("ab{FAMILY}");
        pop_grapheme(&mut s);
        assert_eq!(s, "ab");
    }
}
