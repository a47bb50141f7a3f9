//! Key bindings: the defaults that work without learning anything (arrows, Enter, Tab, Esc,
//! PageUp/PageDown), and their overrides from the `[keys]` table of `config.toml`.
//!
//! This module only maps keys to actions; it never changes state.

use std::collections::HashMap;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Actions a key can be bound to (the names used in `config.toml`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send the input (insert mode).
    Send,
    /// Insert a line break in the input.
    Newline,
    /// Select the next contact.
    NextContact,
    /// Select the previous contact.
    PrevContact,
    /// Switch focus between the contact list and the input.
    Focus,
    /// Leave insert mode / close a popup.
    Escape,
    /// Scroll the conversation up a page.
    PageUp,
    /// Scroll the conversation down a page.
    PageDown,
    /// Show the help overlay.
    Help,
    /// Quit.
    Quit,
}

impl Action {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "send" => Self::Send,
            "newline" => Self::Newline,
            "next_contact" => Self::NextContact,
            "prev_contact" => Self::PrevContact,
            "focus" => Self::Focus,
            "escape" => Self::Escape,
            "page_up" => Self::PageUp,
            "page_down" => Self::PageDown,
            "help" => Self::Help,
            "quit" => Self::Quit,
            _ => return None,
        })
    }
}

/// A key with its modifiers, comparable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    code: KeyCode,
    mods: KeyModifiers,
}

impl Key {
    /// From a terminal key event (shift is folded into characters).
    pub fn of(ev: &KeyEvent) -> Self {
        let mut mods =
            ev.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        if matches!(ev.code, KeyCode::Char(_)) {
            mods.remove(KeyModifiers::SHIFT);
        }
        Self {
            code: ev.code,
            mods,
        }
    }

    /// Parses "enter", "ctrl-n", "alt-enter", "f1", "pageup", "x".
    pub fn parse(s: &str) -> Option<Self> {
        let mut mods = KeyModifiers::NONE;
        let mut rest = s.trim().to_ascii_lowercase();
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-") {
                mods |= KeyModifiers::CONTROL;
                rest = r.to_string();
            } else if let Some(r) = rest.strip_prefix("alt-") {
                mods |= KeyModifiers::ALT;
                rest = r.to_string();
            } else if let Some(r) = rest.strip_prefix("shift-") {
                mods |= KeyModifiers::SHIFT;
                rest = r.to_string();
            } else {
                break;
            }
        }
        let code = match rest.as_str() {
            "enter" => KeyCode::Enter,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "esc" | "escape" => KeyCode::Esc,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "pageup" => KeyCode::PageUp,
            "pagedown" => KeyCode::PageDown,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "backspace" => KeyCode::Backspace,
            "space" => KeyCode::Char(' '),
            f if f.len() >= 2 && f.starts_with('f') => KeyCode::F(f[1..].parse().ok()?),
            c if c.chars().count() == 1 => KeyCode::Char(c.chars().next()?),
            _ => return None,
        };
        if matches!(code, KeyCode::Char(_)) {
            mods.remove(KeyModifiers::SHIFT);
        }
        Some(Self { code, mods })
    }
}

impl Key {
    /// The key as help shows it: "Ctrl-N", "Alt-Enter", "F1", "x".
    pub fn label(&self) -> String {
        let mut s = String::new();
        for (m, name) in [
            (KeyModifiers::CONTROL, "Ctrl-"),
            (KeyModifiers::ALT, "Alt-"),
            (KeyModifiers::SHIFT, "Shift-"),
        ] {
            if self.mods.contains(m) {
                s.push_str(name);
            }
        }
        let code = match self.code {
            KeyCode::Enter => "Enter".into(),
            KeyCode::Tab => "Tab".into(),
            KeyCode::BackTab => "Shift-Tab".into(),
            KeyCode::Esc => "Esc".into(),
            KeyCode::Up => "Up".into(),
            KeyCode::Down => "Down".into(),
            KeyCode::Left => "Left".into(),
            KeyCode::Right => "Right".into(),
            KeyCode::PageUp => "PageUp".into(),
            KeyCode::PageDown => "PageDown".into(),
            KeyCode::Home => "Home".into(),
            KeyCode::End => "End".into(),
            KeyCode::Backspace => "Backspace".into(),
            KeyCode::Char(' ') => "Space".into(),
            KeyCode::Char(c) if self.mods.is_empty() => c.to_string(),
            KeyCode::Char(c) => c.to_ascii_uppercase().to_string(),
            KeyCode::F(n) => format!("F{n}"),
            other => format!("{other:?}"),
        };
        s + &code
    }
}

/// The active bindings.
#[derive(Clone, Debug)]
pub struct KeyMap {
    map: HashMap<Key, Action>,
}

impl Default for KeyMap {
    fn default() -> Self {
        let mut map = HashMap::new();
        let mut bind = |s: &str, a: Action| {
            if let Some(k) = Key::parse(s) {
                map.insert(k, a);
            }
        };
        bind("enter", Action::Send);
        bind("alt-enter", Action::Newline);
        bind("ctrl-j", Action::Newline);
        bind("ctrl-down", Action::NextContact);
        bind("ctrl-up", Action::PrevContact);
        bind("ctrl-n", Action::NextContact);
        bind("ctrl-p", Action::PrevContact);
        bind("tab", Action::Focus);
        bind("backtab", Action::Focus);
        bind("esc", Action::Escape);
        bind("pageup", Action::PageUp);
        bind("pagedown", Action::PageDown);
        bind("f1", Action::Help);
        bind("ctrl-c", Action::Quit);
        bind("ctrl-q", Action::Quit);
        Self { map }
    }
}

impl KeyMap {
    /// Defaults overridden by `overrides` (action name → key). Returns the map and the
    /// entries it could not use, for the status line.
    pub fn with_overrides(overrides: &HashMap<String, String>) -> (Self, Vec<String>) {
        let mut km = Self::default();
        let mut bad = Vec::new();
        for (action, key) in overrides {
            match (Action::from_name(action), Key::parse(key)) {
                (Some(a), Some(k)) => {
                    km.map.retain(|_, v| *v != a);
                    km.map.insert(k, a);
                }
                _ => bad.push(format!("{action} = {key:?}")),
            }
        }
        bad.sort();
        (km, bad)
    }

    /// The keys bound to `action` as help shows them ("Alt-Enter / Ctrl-J"), or
    /// "(none)".
    pub fn keys_for(&self, action: Action) -> String {
        let mut labels: Vec<String> = self
            .map
            .iter()
            .filter(|(_, a)| **a == action)
            .map(|(k, _)| k.label())
            .collect();
        if labels.is_empty() {
            return "(none)".into();
        }
        labels.sort();
        labels.join(" / ")
    }

    /// The action bound to a key event, if any.
    pub fn action(&self, ev: &KeyEvent) -> Option<Action> {
        self.map.get(&Key::of(ev)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_overrides() {
        assert_eq!(
            Key::parse("Ctrl-N"),
            Some(Key {
                code: KeyCode::Char('n'),
                mods: KeyModifiers::CONTROL
            })
        );
        assert_eq!(Key::parse("f12").map(|k| k.code), Some(KeyCode::F(12)));
        assert!(Key::parse("ctrl-").is_none());
        let mut o = HashMap::new();
        o.insert("send".to_string(), "ctrl-s".to_string());
        o.insert("bogus".to_string(), "x".to_string());
        let (km, bad) = KeyMap::with_overrides(&o);
        assert_eq!(bad, vec!["bogus = \"x\"".to_string()]);
        let ctrl_s = KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL);
        assert_eq!(km.action(&ctrl_s), Some(Action::Send));
        let enter = KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE);
        assert_eq!(km.action(&enter), None, "the old binding of send is gone");
        assert_eq!(km.keys_for(Action::Send), "Ctrl-S");
        let km = KeyMap::default();
        assert_eq!(km.keys_for(Action::Newline), "Alt-Enter / Ctrl-J");
        assert_eq!(km.keys_for(Action::Help), "F1");
    }
}
