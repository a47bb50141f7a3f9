//! The TUI's model and update function: pure state transitions from messages (keys,
//! engine events, results of engine calls) to a new state plus effects to run.
//!
//! Nothing here awaits or performs I/O: effects are returned to the driver (`mod.rs`),
//! which runs them in tasks and feeds their results back as messages.

use std::path::PathBuf;

use hush_core::passphrase::Resolution;
use hush_core::{ContactInfo, DeliveryState, Event, MessageInfo, Passphrase, SafetyInfo};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::keys::{Action, KeyMap};
use super::text::{self, Cursor, Edit};

/// What a terminal copy adds to a link: spaces and line breaks where the link was cut
/// into rows, and the box drawing and block characters of what was around it.
fn is_copy_debris(c: char) -> bool {
    c.is_whitespace() || ('\u{2500}'..='\u{259F}').contains(&c) || c.is_control()
}

/// The link and the contact name of `:accept LINK [NAME]`, the link cleaned of what a
/// copy picked up. A link copied over several rows arrives as several words: the longest
/// run of first words that is a valid link is the link, the rest the name.
fn split_accept(args: &[&str]) -> Result<(String, Option<String>), &'static str> {
    let words: Vec<String> = args
        .iter()
        .map(|w| {
            w.chars()
                .filter(|c| !is_copy_debris(*c))
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect();
    let Some(first) = words.first() else {
        return Err(":accept LINK [NAME]: the link is missing");
    };
    if first.starts_with("hush://") {
        return Err("that is a relay address, not an invite (:relay ADDRESS uses a relay)");
    }
    let parsed = (1..=words.len())
        .rev()
        .find(|&n| hush_crypto::invite::Invite::parse(&words[..n].concat()).is_ok())
        .unwrap_or(1);
    let name = words[parsed..].join(" ");
    Ok((words[..parsed].concat(), (!name.is_empty()).then_some(name)))
}

/// The line-editor keys: arrows, Home/End, word moves with Alt or Ctrl, Backspace,
/// Delete, and the Emacs keys a shell has (Ctrl-A/E/U/W/K).
fn edit_of(k: &KeyEvent) -> Option<Edit> {
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    let word = ctrl || k.modifiers.contains(KeyModifiers::ALT);
    Some(match k.code {
        KeyCode::Left if word => Edit::WordLeft,
        KeyCode::Right if word => Edit::WordRight,
        KeyCode::Left => Edit::Left,
        KeyCode::Right => Edit::Right,
        KeyCode::Home => Edit::Home,
        KeyCode::End => Edit::End,
        KeyCode::Backspace if word => Edit::KillWord,
        KeyCode::Backspace => Edit::Backspace,
        KeyCode::Delete => Edit::Delete,
        KeyCode::Char('a') if ctrl => Edit::Home,
        KeyCode::Char('e') if ctrl => Edit::End,
        KeyCode::Char('u') if ctrl => Edit::KillToStart,
        KeyCode::Char('w') if ctrl => Edit::KillWord,
        KeyCode::Char('k') if ctrl => Edit::KillToEnd,
        // Some terminals send Ctrl-H for Backspace.
        KeyCode::Char('h') if ctrl => Edit::Backspace,
        _ => return None,
    })
}

/// Where `:save` puts a file when no directory is named: `~/Downloads` if it exists, else
/// the directory hush was started in.
fn default_save_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join("Downloads"))
        .filter(|d| d.is_dir())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A transfer's progress bar for the status bar.
pub fn file_bar(direction: &str, p: hush_core::files::Progress) -> String {
    let width = 20usize;
    let filled = if p.total == 0 {
        width
    } else {
        (usize::try_from(p.done).unwrap_or(0) * width)
            / usize::try_from(p.total).unwrap_or(1).max(1)
    };
    let pct = (p.bytes * 100).checked_div(p.size).unwrap_or(100);
    // A transfer stopped on its private route says why, as a waiting deposit does; it
    // resumes from there when asked again.
    let waiting = p
        .waiting
        .map(|why| format!(" (waiting: {why}; :save again resumes)"))
        .unwrap_or_default();
    format!(
        "{direction} file {}: [{}{}] {pct}% {} / {}{waiting}",
        p.id,
        "█".repeat(filled.min(width)),
        "░".repeat(width - filled.min(width)),
        hush_core::files::human_size(p.bytes),
        hush_core::files::human_size(p.size),
    )
}

/// Where the user is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Screen {
    /// Profiles exist, none was named and the default one does not exist: choose one, or
    /// create the default one.
    Choose {
        /// The existing profiles, sorted.
        profiles: Vec<String>,
        /// The highlighted entry; `profiles.len()` is "create a new profile".
        selected: usize,
        /// The name a new profile gets (prefilled in the setup form).
        new_name: String,
    },
    /// First run: create the profile.
    Setup(SetupForm),
    /// Unlock an existing profile.
    Unlock {
        /// Typed passphrase.
        pass: String,
        /// Last error.
        error: Option<String>,
        /// Opening the store.
        busy: bool,
    },
    /// Contacts and conversation.
    Main,
}

/// The first-run form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetupForm {
    /// 0 profile name, 1 passphrase, 2 again, 3 relay.
    pub field: usize,
    /// Profile name (prefilled with `--profile`).
    pub name: String,
    /// Passphrase.
    pub pass: String,
    /// Passphrase again.
    pub confirm: String,
    /// Relay address, empty for the embedded default.
    pub relay: String,
    /// Last error.
    pub error: Option<String>,
    /// Creating the store.
    pub busy: bool,
}

impl SetupForm {
    /// The field being edited.
    pub fn field_mut(&mut self) -> &mut String {
        match self.field {
            0 => &mut self.name,
            1 => &mut self.pass,
            2 => &mut self.confirm,
            _ => &mut self.relay,
        }
    }
}

/// Vim-like modes; insert is the default so that typing just works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Keys edit the input line.
    Insert,
    /// j/k, gg/G, i, /, :.
    Normal,
    /// Typing a `:` command.
    Command,
    /// Typing a `/` search.
    Search,
}

/// Which pane has the keyboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    /// The contact list.
    Contacts,
    /// The input line.
    Input,
}

/// An overlay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Popup {
    /// Key help.
    Help,
    /// An invite or contact address to hand out.
    Invite {
        /// Title.
        title: String,
        /// The link.
        link: String,
        /// The QR code in the compact rendering (`z` switches).
        compact: bool,
    },
    /// A safety number.
    Safety {
        /// Contact.
        name: String,
        /// The number.
        info: SafetyInfo,
    },
    /// Confirm the panic wipe.
    ConfirmWipe,
    /// Confirm deleting the local history with the selected contact.
    ConfirmDelete(String),
    /// Confirm deleting the selected contact itself (relationship, history, mailboxes).
    ConfirmForget(String),
}

/// What the driver must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    /// Switch to this existing profile: read its config and find its passphrase.
    OpenProfile(String),
    /// Create the profile.
    Setup {
        /// Profile name.
        name: String,
        /// Passphrase.
        pass: Passphrase,
        /// Relay address or empty.
        relay: String,
    },
    /// Open the profile.
    Unlock(Passphrase),
    /// Reload the contact list.
    LoadContacts,
    /// Reload the conversation with this contact.
    LoadMessages(String),
    /// Send a message.
    Send {
        /// Contact.
        to: String,
        /// Text.
        text: String,
    },
    /// Make an invite.
    Invite {
        /// A one-time invite (`true`) or a contact address (`false`).
        one_time: bool,
        /// The name of the contact a one-time invite creates.
        name: Option<String>,
        /// Write the link to this file (mode 0600) instead of showing it.
        file: Option<PathBuf>,
    },
    /// Put text on the terminal's clipboard (OSC 52).
    Copy(String),
    /// Use this relay.
    SetRelay(String),
    /// Send read receipts to a contact, or not.
    Receipts(String, bool),
    /// Turn high-risk traffic mode on (`true`) or off.
    HighRisk(bool),
    /// Turn per-contact isolation (normal mode) on (`true`) or off.
    Isolation(bool),
    /// Read the traffic mode and its cost, for the status bar.
    LoadTraffic,
    /// Accept a link.
    Accept {
        /// The link.
        link: String,
        /// Name for the contact.
        name: Option<String>,
    },
    /// Rename a contact.
    Rename {
        /// Old name.
        old: String,
        /// New name.
        new: String,
    },
    /// Show the safety number.
    Safety(String),
    /// Set the verified mark.
    MarkVerified(String, bool),
    /// Set the disappearing timer.
    Disappear(String, Option<u64>),
    /// Delete the local history with a contact.
    DeleteHistory(String),
    /// Delete a contact: its relationship, history and mailboxes.
    DeleteContact(String),
    /// Block (`true`) or unblock a contact.
    Block(String, bool),
    /// List the invites and contact addresses still answered.
    ListInvites,
    /// Stop answering an invite or contact address.
    RevokeInvite(i64),
    /// Send a file to a contact (`:file [--keep-metadata] PATH`).
    SendFile {
        /// Contact.
        to: String,
        /// The file.
        path: PathBuf,
        /// Send a JPEG or PNG with its metadata.
        keep_metadata: bool,
    },
    /// Save a received file (`:save [ID] [DIR]`): `id` or the contact's latest offer.
    SaveFile {
        /// Contact (whose latest offer `:save` without an id means).
        from: String,
        /// File id.
        id: Option<i64>,
        /// Directory.
        dir: PathBuf,
    },
    /// Panic wipe, then quit.
    Wipe,
    /// Ring the terminal bell (no content).
    Bell,
    /// Leave.
    Quit,
}

/// Inputs of the update function.
#[derive(Debug)]
pub enum Msg {
    /// What the passphrase resolver found at start-up for an existing profile: a
    /// passphrase from `HUSH_PASSPHRASE` or `passphrase_command`, the need to ask, or why a
    /// configured source failed.
    Passphrase(Result<Resolution, String>),
    /// A key.
    Key(KeyEvent),
    /// Pasted text.
    Paste(String),
    /// The profile chosen on the chooser screen, with what its config and its passphrase
    /// sources gave.
    ProfileChosen {
        /// Its name.
        name: String,
        /// Its key bindings.
        keys: KeyMap,
        /// Notify by terminal bell.
        bell: bool,
        /// Key bindings of its config that could not be used.
        bad_keys: Vec<String>,
        /// What the passphrase resolver found.
        found: Result<Resolution, String>,
    },
    /// The terminal changed size: only a redraw.
    Resize,
    /// A second passed: the time now (Unix seconds).
    Tick(u64),
    /// Something the engine reported.
    Engine(Event),
    /// The contact list.
    Contacts(Vec<ContactInfo>),
    /// A conversation.
    Messages(String, Vec<MessageInfo>),
    /// The profile is open (or why not).
    Opened(Result<(), String>),
    /// An invite link is ready.
    InviteReady {
        /// One-time (true) or address.
        one_time: bool,
        /// The link.
        link: String,
    },
    /// A safety number is ready.
    SafetyReady(String, SafetyInfo),
    /// An engine call finished: a line for the status bar.
    Done(Result<String, String>),
    /// The traffic mode and what high-risk mode costs; `changed`: the user just switched it.
    Traffic {
        /// High-risk mode is on.
        high_risk: bool,
        /// Its cost.
        cost: hush_core::TrafficCost,
        /// Switched by `:highrisk`.
        changed: bool,
        /// Per-contact isolation is in effect (its setting, or high-risk mode).
        isolation: bool,
    },
    /// `:isolation` was switched: whether isolation is now in effect, and whether that is
    /// because high-risk mode is on while the setting is off.
    IsolationSet {
        /// In effect.
        on: bool,
        /// High-risk mode keeps it on although the setting is off.
        by_high_risk: bool,
    },
    /// A file transfer moved on: its progress bar goes in the status bar.
    FileProgress {
        /// "send" or "save".
        direction: &'static str,
        /// Where it is.
        progress: hush_core::files::Progress,
    },
}

/// Bytes as whole megabytes (rounded).
fn mb(bytes: u64) -> u64 {
    (bytes + 500_000) / 1_000_000
}

/// What high-risk mode costs, in words.
pub fn cost_text(cost: &hush_core::TrafficCost) -> String {
    format!(
        "{} MB/day up and {} down, about {} s more per envelope sent and {} s per fetch",
        mb(cost.up_bytes_per_day),
        mb(cost.down_bytes_per_day),
        cost.send_latency_secs,
        cost.receive_latency_secs
    )
}

/// What high-risk mode costs, short enough for the status bar at 80 columns.
pub fn cost_short(cost: &hush_core::TrafficCost) -> String {
    format!(
        "{} MB/day up, {} down, +{} s",
        mb(cost.up_bytes_per_day),
        mb(cost.down_bytes_per_day),
        cost.send_latency_secs
    )
}

/// The whole UI state.
#[derive(Clone, Debug)]
pub struct App {
    /// Current screen.
    pub screen: Screen,
    /// Mode.
    pub mode: Mode,
    /// Focus.
    pub focus: Focus,
    /// Overlay.
    pub popup: Option<Popup>,
    /// Contacts.
    pub contacts: Vec<ContactInfo>,
    /// Index of the selected contact.
    pub selected: usize,
    /// Conversation of the selected contact.
    pub messages: Vec<MessageInfo>,
    /// Lines scrolled up from the bottom.
    pub scroll: usize,
    /// First message that arrived while the conversation was not open.
    pub new_marker: Option<i64>,
    /// The input (may hold line breaks).
    pub input: String,
    /// Where in [`App::input`] one types.
    pub cursor: Cursor,
    /// The `:` or `/` line.
    pub command: String,
    /// Where in [`App::command`] one types.
    pub command_cursor: Cursor,
    /// Active search filter.
    pub search: Option<String>,
    /// Connected to the relay.
    pub relay_up: bool,
    /// Why messages to other relays wait under private routing, if they do.
    pub route_waiting: Option<String>,
    /// Last status line.
    pub status: Option<String>,
    /// The traffic mode and the cost of high-risk mode, once read (status bar).
    pub traffic: Option<(bool, hush_core::TrafficCost)>,
    /// Per-contact isolation is in effect (status bar).
    pub isolation: bool,
    /// Notify by terminal bell.
    pub bell: bool,
    /// The time zone times are shown in (UTC until the driver sets the system's).
    pub tz: jiff::tz::TimeZone,
    /// A `g` was typed in normal mode (for `gg`).
    pending_g: bool,
    /// Unread count of the conversation being opened: the marker goes above that many
    /// received messages once they are loaded.
    unread_on_open: u64,
    /// Renames asked of the engine (old name, new name), oldest first. The selection is
    /// kept by name, and a contact list that no longer has the selected name but has its
    /// new one is the same contact renamed: the selection follows it.
    renames: Vec<(String, String)>,
    /// The contact whose conversation [`App::messages`] holds, once loaded.
    loaded: Option<String>,
    /// Bindings.
    pub keys: KeyMap,
    /// Profile name (status bar).
    pub profile: String,
    /// Set when the app should exit.
    pub quit: bool,
}

impl App {
    /// A new app on `screen`.
    pub fn new(screen: Screen, profile: &str, keys: KeyMap, bell: bool) -> Self {
        Self {
            screen,
            mode: Mode::Insert,
            focus: Focus::Input,
            popup: None,
            contacts: Vec::new(),
            selected: 0,
            messages: Vec::new(),
            scroll: 0,
            new_marker: None,
            input: String::new(),
            cursor: Cursor::default(),
            command: String::new(),
            command_cursor: Cursor::default(),
            search: None,
            relay_up: false,
            route_waiting: None,
            status: None,
            traffic: None,
            isolation: false,
            bell,
            tz: jiff::tz::TimeZone::UTC,
            pending_g: false,
            unread_on_open: 0,
            renames: Vec::new(),
            loaded: None,
            keys,
            profile: profile.to_string(),
            quit: false,
        }
    }

    /// The selected contact's name.
    pub fn current(&self) -> Option<&str> {
        self.contacts.get(self.selected).map(|c| c.name.as_str())
    }

    /// The messages to show (search applied).
    pub fn visible_messages(&self) -> Vec<&MessageInfo> {
        match &self.search {
            Some(q) => {
                let q = q.to_lowercase();
                self.messages
                    .iter()
                    .filter(|m| m.body.to_lowercase().contains(&q))
                    .collect()
            }
            None => self.messages.iter().collect(),
        }
    }

    /// Limits the scroll offset to `max`, what the view can show: otherwise `gg` or extra
    /// PageUps would leave an offset that PageDown has to undo before the view moves.
    pub fn clamp_scroll(&mut self, max: usize) {
        self.scroll = self.scroll.min(max);
    }

    /// The update function.
    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Key(k) => self.on_key(k),
            Msg::Paste(pasted) => {
                let pasted = text::normalize_newlines(&pasted);
                match (&mut self.screen, self.mode) {
                    (Screen::Main, Mode::Insert) => {
                        self.focus = Focus::Input;
                        self.cursor.insert(&mut self.input, &pasted);
                    }
                    (Screen::Main, Mode::Command | Mode::Search) => {
                        // One line: the breaks a copy picks up are spaces.
                        let line = pasted.trim_end_matches('\n').replace('\n', " ");
                        self.command_cursor.insert(&mut self.command, &line);
                    }
                    // A password manager pastes the passphrase (without a line break).
                    (Screen::Unlock { pass, busy, .. }, _) if !*busy => {
                        pass.push_str(pasted.trim_end_matches('\n'));
                    }
                    (Screen::Setup(f), _) if !f.busy => {
                        let line = pasted.trim_end_matches('\n');
                        f.field_mut().push_str(line);
                    }
                    _ => {}
                }
                Vec::new()
            }
            Msg::Resize => Vec::new(),
            Msg::Tick(now) => {
                // The engine deletes expired messages from the store; the screen drops
                // them at once rather than at the next reload.
                self.messages
                    .retain(|m| m.expires_at.is_none_or(|t| t > now));
                Vec::new()
            }
            Msg::Engine(ev) => self.on_event(ev),
            Msg::Contacts(list) => {
                let keep = self.current().map(str::to_string);
                self.contacts = list;
                if let Some(name) = keep {
                    let at = match self.position(&name) {
                        Some(i) => Some(i),
                        // Renamed: follow the contact, not its old name, so that what is
                        // typed next goes to the conversation on screen.
                        None => self.follow_rename(&name).and_then(|n| self.position(&n)),
                    };
                    if let Some(i) = at {
                        self.selected = i;
                    }
                }
                // A rename whose old and new names are both listed failed or is stale.
                let listed = |n: &str| self.contacts.iter().any(|c| c.name == n);
                self.renames
                    .retain(|(old, new)| listed(old) && !listed(new));
                self.selected = self.selected.min(self.contacts.len().saturating_sub(1));
                match self.contacts.get(self.selected) {
                    Some(c) if self.loaded.as_deref() != Some(c.name.as_str()) => {
                        if self.messages.is_empty() {
                            self.unread_on_open = c.unread;
                        }
                        vec![Effect::LoadMessages(c.name.clone())]
                    }
                    _ => Vec::new(),
                }
            }
            Msg::Messages(name, msgs) => {
                if self.current() != Some(name.as_str()) {
                    return Vec::new();
                }
                {
                    self.messages = msgs;
                    self.loaded = Some(name);
                    let unread = std::mem::take(&mut self.unread_on_open);
                    if unread > 0 {
                        // The oldest of the last `unread` received messages starts the new ones.
                        self.new_marker = self
                            .messages
                            .iter()
                            .rev()
                            .filter(|m| !m.outgoing)
                            .nth(unread as usize - 1)
                            .map(|m| m.id);
                    }
                }
                // Loading marked the conversation read; the list is read after that, not
                // beside it (a list read first kept the unread badge).
                if let Some(c) = self.contacts.get_mut(self.selected) {
                    c.unread = 0;
                }
                vec![Effect::LoadContacts]
            }
            Msg::Passphrase(found) => self.on_passphrase(found),
            Msg::ProfileChosen {
                name,
                keys,
                bell,
                bad_keys,
                found,
            } => {
                if !matches!(self.screen, Screen::Choose { .. }) {
                    return Vec::new();
                }
                self.profile = name;
                self.keys = keys;
                self.bell = bell;
                if !bad_keys.is_empty() {
                    self.status = Some(format!(
                        "unusable key bindings ignored: {}",
                        bad_keys.join(", ")
                    ));
                }
                self.screen = Screen::Unlock {
                    pass: String::new(),
                    error: None,
                    busy: false,
                };
                self.on_passphrase(found)
            }
            Msg::Opened(Ok(())) => {
                if let Screen::Setup(f) = &self.screen {
                    self.profile = f.name.trim().to_string();
                }
                self.screen = Screen::Main;
                vec![Effect::LoadContacts, Effect::LoadTraffic]
            }
            Msg::IsolationSet { on, by_high_risk } => {
                self.isolation = on;
                self.status = Some(
                    match (on, by_high_risk) {
                        (true, true) => {
                            "isolation stays on while high-risk mode is; off applies to normal mode"
                        }
                        (true, false) => {
                            "isolation on: a connection per contact and two-hour window, each way"
                        }
                        (false, _) => "isolation off: one connection per relay for every contact",
                    }
                    .into(),
                );
                Vec::new()
            }
            Msg::Traffic {
                high_risk,
                cost,
                changed,
                isolation,
            } => {
                self.traffic = Some((high_risk, cost));
                self.isolation = isolation;
                if changed {
                    self.status = Some(if high_risk {
                        format!(
                            "high-risk mode on: {}; what you send waits for its slot",
                            cost_text(&cost)
                        )
                    } else {
                        "high-risk mode off: messages leave at once (paced)".into()
                    });
                }
                Vec::new()
            }
            Msg::Opened(Err(e)) => {
                match &mut self.screen {
                    Screen::Setup(f) => {
                        f.busy = false;
                        f.error = Some(e);
                    }
                    Screen::Unlock { error, busy, pass } => {
                        *busy = false;
                        pass.clear();
                        *error = Some(e);
                    }
                    Screen::Main | Screen::Choose { .. } => self.status = Some(e),
                }
                Vec::new()
            }
            Msg::InviteReady { one_time, link } => {
                self.popup = Some(Popup::Invite {
                    title: if one_time {
                        "One-time invite: hand it to one person".into()
                    } else {
                        "Contact address: publish it; every use is a separate contact".into()
                    },
                    link,
                    compact: false,
                });
                Vec::new()
            }
            Msg::SafetyReady(name, info) => {
                self.popup = Some(Popup::Safety { name, info });
                Vec::new()
            }
            Msg::FileProgress {
                direction,
                progress: p,
            } => {
                self.status = Some(file_bar(direction, p));
                Vec::new()
            }
            Msg::Done(r) => {
                self.status = Some(match r {
                    Ok(s) => s,
                    Err(e) => format!("error: {e}"),
                });
                let mut fx = vec![Effect::LoadContacts];
                if let Some(n) = self.current() {
                    fx.push(Effect::LoadMessages(n.to_string()));
                }
                fx
            }
        }
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.contacts.iter().position(|c| c.name == name)
    }

    /// The new name of `old` after the renames asked, if it was renamed; forgets those
    /// renames.
    fn follow_rename(&mut self, old: &str) -> Option<String> {
        let mut name = old.to_string();
        let mut moved = false;
        while let Some(i) = self.renames.iter().position(|(o, _)| *o == name) {
            name = self.renames.remove(i).1;
            moved = true;
        }
        moved.then_some(name)
    }

    /// A passphrase found without asking opens the profile at once (the unlock screen shows
    /// only that it is opening); a failed source is shown on the unlock screen, where the
    /// passphrase can still be typed.
    fn on_passphrase(&mut self, found: Result<Resolution, String>) -> Vec<Effect> {
        let Screen::Unlock { pass, error, busy } = &mut self.screen else {
            return Vec::new();
        };
        if *busy {
            return Vec::new();
        }
        match found {
            Ok(Resolution::Found(p)) => {
                pass.clear();
                *error = None;
                *busy = true;
                vec![Effect::Unlock(p)]
            }
            Ok(Resolution::Prompt) => Vec::new(),
            Err(e) => {
                *error = Some(e);
                Vec::new()
            }
        }
    }

    fn on_event(&mut self, ev: Event) -> Vec<Effect> {
        match ev {
            Event::Message(m) => {
                let mut fx = Vec::new();
                if self.bell {
                    fx.push(Effect::Bell);
                }
                if self.current() == Some(m.contact.as_str()) {
                    if self.scroll > 0 && self.new_marker.is_none() {
                        self.new_marker = Some(m.id);
                    }
                    // Reloading the open conversation also marks the message read, then
                    // reloads the list.
                    fx.push(Effect::LoadMessages(m.contact.clone()));
                    self.messages.push(m);
                } else {
                    fx.push(Effect::LoadContacts);
                }
                fx
            }
            Event::DeliveryChanged { contact, id, state } => {
                if let Some(m) = self.messages.iter_mut().find(|m| m.id == id) {
                    m.state = state;
                }
                // A receipt is the contact's first word back if it was still pending: the
                // list loses its "waiting for reply" mark.
                let pending = self.contacts.iter().any(|c| c.name == contact && c.pending);
                if state == DeliveryState::Delivered && pending {
                    vec![Effect::LoadContacts]
                } else {
                    Vec::new()
                }
            }
            Event::ContactAdded { name } => {
                self.status = Some(format!("new contact: {name}"));
                let mut fx = vec![Effect::LoadContacts];
                if self.bell {
                    fx.push(Effect::Bell);
                }
                fx
            }
            Event::Relay { up } => {
                self.relay_up = up;
                Vec::new()
            }
            Event::PrivateRoute { waiting } => {
                self.route_waiting = waiting;
                Vec::new()
            }
        }
    }

    fn select(&mut self, index: usize) -> Vec<Effect> {
        if self.contacts.is_empty() {
            return Vec::new();
        }
        let index = index.min(self.contacts.len() - 1);
        if index == self.selected && self.loaded.is_some() {
            return Vec::new();
        }
        self.selected = index;
        self.messages.clear();
        self.loaded = None;
        self.scroll = 0;
        self.search = None;
        // Unread messages of the newly opened conversation start below the marker, which
        // is placed when they are loaded.
        self.new_marker = None;
        self.unread_on_open = self.contacts[index].unread;
        // The list is reloaded once the messages are marked read (see Msg::Messages).
        match self.current() {
            Some(n) => vec![Effect::LoadMessages(n.to_string())],
            None => Vec::new(),
        }
    }

    fn on_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let action = self.keys.action(&k);
        if action == Some(Action::Quit) {
            self.quit = true;
            return vec![Effect::Quit];
        }
        match self.screen.clone() {
            Screen::Choose { .. } => self.on_choose_key(k),
            Screen::Setup(form) => self.on_setup_key(form, k, action),
            Screen::Unlock { .. } => self.on_unlock_key(k),
            Screen::Main => {
                if self.popup.is_some() {
                    return self.on_popup_key(k, action);
                }
                match self.mode {
                    Mode::Command | Mode::Search => self.on_command_key(k),
                    Mode::Normal => self.on_normal_key(k, action),
                    Mode::Insert => self.on_insert_key(k, action),
                }
            }
        }
    }

    fn on_choose_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let Screen::Choose {
            profiles,
            selected,
            new_name,
        } = &mut self.screen
        else {
            return Vec::new();
        };
        match k.code {
            KeyCode::Up | KeyCode::Char('k') => *selected = selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') | KeyCode::Tab => {
                *selected = (*selected + 1).min(profiles.len());
            }
            KeyCode::Enter => {
                return match profiles.get(*selected) {
                    Some(name) => vec![Effect::OpenProfile(name.clone())],
                    None => {
                        self.screen = Screen::Setup(SetupForm {
                            name: std::mem::take(new_name),
                            ..SetupForm::default()
                        });
                        Vec::new()
                    }
                };
            }
            _ => {}
        }
        Vec::new()
    }

    fn on_setup_key(
        &mut self,
        mut f: SetupForm,
        k: KeyEvent,
        action: Option<Action>,
    ) -> Vec<Effect> {
        if f.busy {
            return Vec::new();
        }
        let mut fx = Vec::new();
        match (k.code, action) {
            (_, Some(Action::Focus)) | (KeyCode::Down, _) => f.field = (f.field + 1) % 4,
            (KeyCode::Up, _) => f.field = (f.field + 3) % 4,
            (KeyCode::Enter, _) => {
                if f.field < 3 {
                    f.field += 1;
                } else if f.name.trim().is_empty() {
                    f.error = Some("the profile needs a name".into());
                    f.field = 0;
                } else if f.pass.is_empty() {
                    f.error = Some("the passphrase is empty".into());
                    f.field = 1;
                } else if f.pass != f.confirm {
                    f.error = Some("the passphrases differ".into());
                    f.confirm.clear();
                    f.field = 2;
                } else {
                    f.busy = true;
                    f.error = None;
                    fx.push(Effect::Setup {
                        name: f.name.trim().to_string(),
                        pass: Passphrase::new(f.pass.clone()),
                        relay: f.relay.trim().to_string(),
                    });
                }
            }
            (KeyCode::Backspace, _) => text::pop_grapheme(f.field_mut()),
            (KeyCode::Char(c), _) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                f.field_mut().push(c);
            }
            _ => {}
        }
        self.screen = Screen::Setup(f);
        fx
    }

    fn on_unlock_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let Screen::Unlock { pass, error, busy } = &mut self.screen else {
            return Vec::new();
        };
        if *busy {
            return Vec::new();
        }
        match k.code {
            KeyCode::Enter if !pass.is_empty() => {
                *busy = true;
                *error = None;
                return vec![Effect::Unlock(Passphrase::new(std::mem::take(pass)))];
            }
            KeyCode::Backspace => text::pop_grapheme(pass),
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => pass.push(c),
            _ => {}
        }
        Vec::new()
    }

    fn on_popup_key(&mut self, k: KeyEvent, action: Option<Action>) -> Vec<Effect> {
        let popup = self.popup.clone();
        match (popup, k.code) {
            (Some(Popup::ConfirmWipe), KeyCode::Char('y' | 'Y')) => {
                self.popup = None;
                self.quit = true;
                vec![Effect::Wipe]
            }
            (Some(Popup::ConfirmDelete(name)), KeyCode::Char('y' | 'Y')) => {
                self.popup = None;
                vec![Effect::DeleteHistory(name)]
            }
            (Some(Popup::ConfirmForget(name)), KeyCode::Char('y' | 'Y')) => {
                self.popup = None;
                vec![Effect::DeleteContact(name)]
            }
            (Some(Popup::Invite { link, .. }), KeyCode::Char('c')) => {
                self.status = Some(
                    "link sent to the terminal's clipboard (OSC 52; some terminals and tmux \
                     need it allowed)"
                        .into(),
                );
                vec![Effect::Copy(link)]
            }
            (
                Some(Popup::Invite {
                    title,
                    link,
                    compact,
                }),
                KeyCode::Char('z'),
            ) => {
                self.popup = Some(Popup::Invite {
                    title,
                    link,
                    compact: !compact,
                });
                Vec::new()
            }
            (Some(Popup::Safety { name, info }), KeyCode::Char('m')) => {
                self.popup = None;
                vec![Effect::MarkVerified(name, !info.verified)]
            }
            // The confirmation says so: any other key cancels.
            (Some(Popup::ConfirmWipe | Popup::ConfirmDelete(_) | Popup::ConfirmForget(_)), _) => {
                self.popup = None;
                Vec::new()
            }
            (_, KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q' | 'n')) => {
                self.popup = None;
                Vec::new()
            }
            _ if action == Some(Action::Escape) => {
                self.popup = None;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn page(&self) -> usize {
        10
    }

    fn common_action(&mut self, action: Option<Action>) -> Option<Vec<Effect>> {
        Some(match action? {
            Action::NextContact => self.select(self.selected + 1),
            Action::PrevContact => self.select(self.selected.saturating_sub(1)),
            Action::PageUp => {
                self.scroll += self.page();
                Vec::new()
            }
            Action::PageDown => {
                self.scroll = self.scroll.saturating_sub(self.page());
                if self.scroll == 0 {
                    self.new_marker = None;
                }
                Vec::new()
            }
            Action::Help => {
                self.popup = Some(Popup::Help);
                Vec::new()
            }
            _ => return None,
        })
    }

    fn on_insert_key(&mut self, k: KeyEvent, action: Option<Action>) -> Vec<Effect> {
        if self.focus == Focus::Contacts {
            match k.code {
                KeyCode::Up => return self.select(self.selected.saturating_sub(1)),
                KeyCode::Down => return self.select(self.selected + 1),
                KeyCode::Enter => {
                    self.focus = Focus::Input;
                    return Vec::new();
                }
                _ => {}
            }
        }
        if let Some(fx) = self.common_action(action) {
            return fx;
        }
        match action {
            Some(Action::Focus) => {
                self.focus = match self.focus {
                    Focus::Contacts => Focus::Input,
                    Focus::Input => Focus::Contacts,
                };
                return Vec::new();
            }
            Some(Action::Escape) => {
                if self.search.take().is_none() {
                    self.mode = Mode::Normal;
                }
                return Vec::new();
            }
            Some(Action::Newline) => {
                self.cursor.insert(&mut self.input, "\n");
                return Vec::new();
            }
            Some(Action::Send) => return self.submit_input(),
            _ => {}
        }
        match k.code {
            KeyCode::Up if self.input.is_empty() => self.select(self.selected.saturating_sub(1)),
            KeyCode::Down if self.input.is_empty() => self.select(self.selected + 1),
            _ if edit_of(&k).is_some() => {
                if let Some(e) = edit_of(&k) {
                    self.focus = Focus::Input;
                    self.cursor.apply(&mut self.input, e);
                }
                Vec::new()
            }
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                self.focus = Focus::Input;
                self.cursor
                    .insert(&mut self.input, c.encode_utf8(&mut [0; 4]));
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn submit_input(&mut self) -> Vec<Effect> {
        let text = self.input.trim_end().to_string();
        if text.is_empty() {
            return Vec::new();
        }
        // A line starting with ':' typed in insert mode is a command too.
        if let Some(cmd) = text.strip_prefix(':')
            && !cmd.starts_with(':')
        {
            self.input.clear();
            self.cursor.move_to_end();
            return self.run_command(cmd);
        }
        let Some(to) = self.current().map(str::to_string) else {
            self.status = Some("no contact selected: :invite or :accept LINK first".into());
            return Vec::new();
        };
        self.input.clear();
        self.cursor.move_to_end();
        self.scroll = 0;
        self.new_marker = None;
        vec![Effect::Send { to, text }]
    }

    fn on_normal_key(&mut self, k: KeyEvent, action: Option<Action>) -> Vec<Effect> {
        let g = std::mem::take(&mut self.pending_g);
        if let Some(fx) = self.common_action(action) {
            return fx;
        }
        match k.code {
            KeyCode::Char('j') | KeyCode::Down => self.select(self.selected + 1),
            KeyCode::Char('k') | KeyCode::Up => self.select(self.selected.saturating_sub(1)),
            KeyCode::Char('g') if g => {
                self.scroll = usize::MAX / 2;
                Vec::new()
            }
            KeyCode::Char('g') => {
                self.pending_g = true;
                Vec::new()
            }
            KeyCode::Char('G') => {
                self.scroll = 0;
                self.new_marker = None;
                Vec::new()
            }
            KeyCode::Char('i' | 'a') | KeyCode::Enter => {
                self.mode = Mode::Insert;
                self.focus = Focus::Input;
                Vec::new()
            }
            KeyCode::Char(':') => {
                self.mode = Mode::Command;
                self.command.clear();
                Vec::new()
            }
            KeyCode::Char('/') => {
                self.mode = Mode::Search;
                self.command.clear();
                Vec::new()
            }
            KeyCode::Char('?') => {
                self.popup = Some(Popup::Help);
                Vec::new()
            }
            KeyCode::Tab => {
                self.focus = match self.focus {
                    Focus::Contacts => Focus::Input,
                    Focus::Input => Focus::Contacts,
                };
                Vec::new()
            }
            KeyCode::Esc => {
                self.search = None;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn on_command_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        match k.code {
            KeyCode::Esc => {
                self.mode = Mode::Normal;
                self.command.clear();
                Vec::new()
            }
            KeyCode::Enter => {
                let line = std::mem::take(&mut self.command);
                let was = self.mode;
                self.mode = Mode::Normal;
                if was == Mode::Search {
                    self.search = (!line.is_empty()).then_some(line);
                    self.scroll = 0;
                    Vec::new()
                } else {
                    self.run_command(&line)
                }
            }
            KeyCode::Backspace if self.command.is_empty() => {
                self.mode = Mode::Normal;
                Vec::new()
            }
            KeyCode::Tab if self.mode == Mode::Command => {
                self.complete_path();
                Vec::new()
            }
            _ if edit_of(&k).is_some() => {
                if let Some(e) = edit_of(&k) {
                    self.command_cursor.apply(&mut self.command, e);
                }
                Vec::new()
            }
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                self.command_cursor
                    .insert(&mut self.command, c.encode_utf8(&mut [0; 4]));
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// Tab in the command line: completes the path of `:file` (super::complete).
    fn complete_path(&mut self) {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let at = self.command_cursor.pos(&self.command);
        match super::complete::complete_file(&self.command, at, home.as_deref()) {
            super::complete::Completion::Replace { line, cursor } => {
                self.command_cursor.set_at(&line, cursor);
                self.command = line;
            }
            super::complete::Completion::List(s) => self.status = Some(s),
            super::complete::Completion::Nothing(why) => self.status = Some(why.into()),
        }
    }

    /// Runs a `:` command line.
    pub fn run_command(&mut self, line: &str) -> Vec<Effect> {
        let mut parts = line.split_whitespace();
        let cmd = parts.next().unwrap_or_default();
        let args: Vec<&str> = parts.collect();
        let current = self.current().map(str::to_string);
        let need = |s: &mut Self| {
            s.status = Some("select a contact first".into());
            Vec::new()
        };
        match (cmd, args.as_slice()) {
            ("invite" | "address", args) => {
                let one_time = cmd == "invite";
                // `--file` takes the rest of the line, as typed, so that a path may hold spaces:
                // `:invite [NAME] [--file PATH]`.
                let at = args.iter().position(|a| *a == "--file");
                let name = &args[..at.unwrap_or(args.len())];
                let file = match at {
                    None => None,
                    Some(i) => match raw_rest(line, i + 2) {
                        "" => {
                            self.status = Some(format!(":{cmd} --file PATH: which file?"));
                            return Vec::new();
                        }
                        path => Some(PathBuf::from(path)),
                    },
                };
                if !one_time && !name.is_empty() {
                    self.status =
                        Some("a contact address is for many people: :address takes no name".into());
                    return Vec::new();
                }
                vec![Effect::Invite {
                    one_time,
                    name: (!name.is_empty()).then(|| name.join(" ")),
                    file,
                }]
            }
            ("accept", [_, ..]) => match split_accept(&args) {
                Ok((link, name)) => vec![Effect::Accept { link, name }],
                Err(e) => {
                    self.status = Some(e.into());
                    Vec::new()
                }
            },
            ("relay", [address]) => vec![Effect::SetRelay((*address).to_string())],
            ("highrisk" | "high-risk", [on @ ("on" | "off")]) => {
                vec![Effect::HighRisk(*on == "on")]
            }
            ("isolation", [on @ ("on" | "off")]) => vec![Effect::Isolation(*on == "on")],
            ("receipts", [on @ ("on" | "off")]) => match current {
                Some(n) => vec![Effect::Receipts(n, *on == "on")],
                None => need(self),
            },
            ("rename", new) if !new.is_empty() => match current {
                Some(old) => {
                    let new = new.join(" ");
                    self.renames.push((old.clone(), new.clone()));
                    vec![Effect::Rename { old, new }]
                }
                None => need(self),
            },
            ("verify", []) => match current {
                Some(n) => vec![Effect::Safety(n)],
                None => need(self),
            },
            ("disappear", [d]) => match (current, crate::timer::parse_timer(d)) {
                (Some(n), Ok(secs)) => vec![Effect::Disappear(n, secs)],
                (None, _) => need(self),
                (_, Err(e)) => {
                    self.status = Some(e);
                    Vec::new()
                }
            },
            ("search", q) => {
                self.search = (!q.is_empty()).then(|| q.join(" "));
                self.scroll = 0;
                Vec::new()
            }
            ("delete", []) => match current {
                Some(n) => {
                    self.popup = Some(Popup::ConfirmDelete(n));
                    Vec::new()
                }
                None => need(self),
            },
            ("forget", []) => match current {
                Some(n) => {
                    self.popup = Some(Popup::ConfirmForget(n));
                    Vec::new()
                }
                None => need(self),
            },
            (b @ ("block" | "unblock"), []) => match current {
                Some(n) => vec![Effect::Block(n, b == "block")],
                None => need(self),
            },
            ("file", args) if !args.is_empty() => match current {
                Some(to) => {
                    let keep_metadata = args.first() == Some(&"--keep-metadata");
                    // As typed: a name may hold two spaces in a row.
                    let path = raw_rest(line, 1 + usize::from(keep_metadata)).to_string();
                    if path.is_empty() {
                        self.status = Some("usage: :file [--keep-metadata] PATH".into());
                        return Vec::new();
                    }
                    let path = match path.strip_prefix("~/") {
                        Some(rest) => std::env::var_os("HOME")
                            .map_or_else(|| PathBuf::from(&path), |h| PathBuf::from(h).join(rest)),
                        None => PathBuf::from(path),
                    };
                    // Said before the upload: a kind hush does not strip is sent as is.
                    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    let stripped = !keep_metadata
                        && hush_core::files::strip::ImageKind::of_name(name).is_some();
                    self.status = Some(if hush_core::files::carries_metadata(name) && !stripped {
                        format!("sending the file; {}", hush_core::files::METADATA_WARNING)
                    } else {
                        "sending the file…".into()
                    });
                    vec![Effect::SendFile {
                        to,
                        path,
                        keep_metadata,
                    }]
                }
                None => need(self),
            },
            ("save", rest) if rest.len() <= 2 => match current {
                Some(from) => {
                    let (id, dir) = match rest {
                        [] => (None, None),
                        [one] => match one.trim_start_matches('#').parse::<i64>() {
                            Ok(id) => (Some(id), None),
                            Err(_) => (None, Some(*one)),
                        },
                        [id, dir] => match id.trim_start_matches('#').parse::<i64>() {
                            Ok(id) => (Some(id), Some(*dir)),
                            Err(_) => {
                                self.status = Some(":save [ID] [DIR]: ID is a file number".into());
                                return Vec::new();
                            }
                        },
                        _ => (None, None),
                    };
                    let dir = dir.map_or_else(default_save_dir, PathBuf::from);
                    vec![Effect::SaveFile { from, id, dir }]
                }
                None => need(self),
            },
            ("invites", []) => vec![Effect::ListInvites],
            ("revoke", [id]) => match id.trim_start_matches('#').parse::<i64>() {
                Ok(id) => vec![Effect::RevokeInvite(id)],
                Err(_) => {
                    self.status = Some(":revoke ID takes an invite number (see :invites)".into());
                    Vec::new()
                }
            },
            ("wipe", []) => {
                self.popup = Some(Popup::ConfirmWipe);
                Vec::new()
            }
            ("q" | "quit", []) => {
                self.quit = true;
                vec![Effect::Quit]
            }
            ("help", []) => {
                self.popup = Some(Popup::Help);
                Vec::new()
            }
            _ => {
                self.status = Some(format!("unknown command :{line} (see ? for help)"));
                Vec::new()
            }
        }
    }

    /// The delivery mark of an outgoing message.
    pub fn mark(state: DeliveryState) -> &'static str {
        match state {
            DeliveryState::Queued => "…",
            DeliveryState::OnRelay => "✓",
            DeliveryState::Delivered => "✓✓",
            DeliveryState::Received => "",
        }
    }
}

/// The text of `line` after its first `words` words, as typed: the spaces inside kept, the
/// ones around it dropped.
fn raw_rest(line: &str, words: usize) -> &str {
    let mut rest = line.trim_start();
    for _ in 0..words {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    rest.trim_end()
}
