//! Tab completion of the path of `:file [--keep-metadata] PATH` in the command line.
//!
//! Owns: finding the path component under the cursor, listing its directory once, and what
//! Tab does with the names found: the one match completed (a directory gets its `/`), the
//! common prefix of several, or their list for the status bar. `~/` is the home directory.
//! Must never panic on what the file system holds (unreadable or vanished directories,
//! names that are not UTF-8, which are skipped) and reads at most [`MAX_ENTRIES`] entries so
//! a huge directory cannot freeze the screen for long.

use std::path::{Path, PathBuf};

/// Entries of one directory looked at, at most.
pub const MAX_ENTRIES: usize = 10_000;
/// Names listed in the status bar, at most.
const LISTED: usize = 8;

/// What Tab does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    /// The line becomes `line`, the cursor at byte `cursor`.
    Replace {
        /// The new command line.
        line: String,
        /// The cursor's byte offset.
        cursor: usize,
    },
    /// Several names fit and share nothing more: a line for the status bar.
    List(String),
    /// Nothing to complete: why, for the status bar.
    Nothing(&'static str),
}

/// Completes the `:file` path that ends at byte `cursor` of the command line `line`
/// (without the `:`). `home` expands a leading `~/`.
pub fn complete_file(line: &str, cursor: usize, home: Option<&Path>) -> Completion {
    let Some(start) = path_start(line) else {
        return Completion::Nothing("Tab completes the path of :file");
    };
    if cursor < start || !line.is_char_boundary(cursor) {
        return Completion::Nothing("Tab completes the path of :file");
    }
    let typed = &line[start..cursor];
    let (dir_text, prefix) = match typed.rfind('/') {
        Some(i) => (&typed[..=i], &typed[i + 1..]),
        None => ("", typed),
    };
    let dir: PathBuf = match (dir_text.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => h.join(rest),
        _ if dir_text.is_empty() => PathBuf::from("."),
        _ => PathBuf::from(dir_text),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Completion::Nothing("that directory cannot be read");
    };
    let mut found: Vec<(String, bool)> = entries
        .take(MAX_ENTRIES)
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            // Hidden names only when asked for with a leading dot.
            if !name.starts_with(prefix) || (name.starts_with('.') && !prefix.starts_with('.')) {
                return None;
            }
            // A symbolic link counts as what it points to.
            let is_dir = e
                .file_type()
                .is_ok_and(|t| t.is_dir() || (t.is_symlink() && e.path().is_dir()));
            Some((name, is_dir))
        })
        .collect();
    found.sort();
    let tail = &line[cursor..];
    let replace = |completed: &str, dir_slash: bool| {
        let mut out = String::with_capacity(line.len() + completed.len() + 1);
        out.push_str(&line[..start]);
        out.push_str(dir_text);
        out.push_str(completed);
        if dir_slash {
            out.push('/');
        }
        let at = out.len();
        out.push_str(tail);
        Completion::Replace {
            line: out,
            cursor: at,
        }
    };
    match found.as_slice() {
        [] => Completion::Nothing("no file matches"),
        [(name, is_dir)] => replace(name, *is_dir),
        many => {
            let common = common_prefix(many.iter().map(|(n, _)| n.as_str()));
            if common.len() > prefix.len() {
                replace(common, false)
            } else {
                let mut shown: Vec<String> = many
                    .iter()
                    .take(LISTED)
                    .map(|(n, d)| if *d { format!("{n}/") } else { n.clone() })
                    .collect();
                if many.len() > LISTED {
                    shown.push(format!("… {} more", many.len() - LISTED));
                }
                Completion::List(format!("{} match: {}", many.len(), shown.join("  ")))
            }
        }
    }
}

/// The byte where the path of a `:file` line starts: after `file ` and an optional
/// `--keep-metadata `.
fn path_start(line: &str) -> Option<usize> {
    let rest = line.strip_prefix("file ")?;
    let flagged = rest.strip_prefix("--keep-metadata ");
    Some(line.len() - flagged.unwrap_or(rest).len())
}

/// The longest prefix, on a character boundary, that all `names` share.
fn common_prefix<'a>(mut names: impl Iterator<Item = &'a str>) -> &'a str {
    let Some(first) = names.next() else {
        return "";
    };
    let mut len = first.len();
    for n in names {
        len = first
            .char_indices()
            .zip(n.chars())
            .take_while(|((_, a), b)| a == b)
            .last()
            .map_or(0, |((i, a), _)| i + a.len_utf8())
            .min(len);
    }
    &first[..len]
}
