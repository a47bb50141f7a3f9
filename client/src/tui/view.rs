//! Drawing: a pure function of the [`App`] state onto a ratatui frame.
//!
//! Usable from 80x24 up; panes shrink, never overlap. Times are shown in the app's time
//! zone (the system's, from `TZ` or `/etc/localtime`), the day separators naming it.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Clear, List, ListItem, ListState, Paragraph};

use super::app::{App, Focus, Mode, Popup, Screen, SetupForm};
use super::keys::{Action, KeyMap};
use super::{qr, text};

/// Draws the whole UI. Returns how many lines the conversation can scroll up, which only
/// the view knows (it wraps the lines); the driver clamps [`App::scroll`] to it.
pub fn draw(f: &mut Frame<'_>, app: &App) -> usize {
    match &app.screen {
        Screen::Choose {
            profiles,
            selected,
            new_name,
        } => draw_choose(f, profiles, *selected, new_name),
        Screen::Setup(form) => draw_setup(f, form),
        Screen::Unlock { pass, error, busy } => draw_unlock(f, app, pass, error.as_deref(), *busy),
        Screen::Main => return draw_main(f, app),
    }
    0
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// A passphrase shorter than this gets a warning on the setup screen (not a refusal: the
/// choice is the user's).
pub const SHORT_PASSPHRASE: usize = 12;

/// `text` as lines of at most `width` columns, each styled by `style`.
fn wrapped(text: &str, width: u16, style: Style) -> Vec<Line<'static>> {
    text::wrap_text(text, usize::from(width).max(1))
        .into_iter()
        .map(|r| Line::styled(r, style))
        .collect()
}

fn draw_choose(f: &mut Frame<'_>, profiles: &[String], selected: usize, new_name: &str) {
    let width = 60.min(f.area().width);
    let mut lines = wrapped(
        "Several profiles live here. Which one?",
        width.saturating_sub(2),
        Style::new(),
    );
    lines.push(Line::from(""));
    let entries = profiles
        .iter()
        .map(|p| format!("  {p}"))
        .chain(std::iter::once(format!(
            "+ create a new profile ({new_name})"
        )));
    for (i, entry) in entries.enumerate() {
        let style = if i == selected {
            Style::new().add_modifier(Modifier::REVERSED)
        } else {
            Style::new()
        };
        lines.push(Line::styled(entry, style));
    }
    lines.push(Line::from(""));
    lines.push(Line::from("Up/Down choose, Enter opens, Ctrl-C quits.").dim());
    lines.push(Line::from("hush --profile NAME opens one directly.").dim());
    let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
    let area = centered(f.area(), width, height);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" hush: profiles "),
        ),
        area,
    );
}

fn draw_setup(f: &mut Frame<'_>, form: &SetupForm) {
    let width = 70.min(f.area().width);
    let inner = width.saturating_sub(2);
    let field = |i: usize, label: &str, value: String| {
        let style = if form.field == i {
            Style::new().add_modifier(Modifier::REVERSED)
        } else {
            Style::new()
        };
        Line::from(vec![
            Span::raw(format!("{label:<18}")),
            Span::styled(value, style),
        ])
    };
    let mut lines = vec![
        Line::from("Welcome to hush. Create your profile."),
        Line::from(""),
        field(0, "Profile name", form.name.clone() + " "),
        field(1, "Passphrase", "*".repeat(form.pass.chars().count()) + " "),
        field(
            2,
            "Passphrase again",
            "*".repeat(form.confirm.chars().count()) + " ",
        ),
        field(3, "Relay address", form.relay.clone() + " "),
        Line::from(""),
        Line::from("Leave the relay empty to use the built-in one on this machine.").dim(),
        Line::from("Tab/Up/Down move, Enter continues, Ctrl-C quits.").dim(),
    ];
    let short = form.pass.chars().count();
    if short > 0 && short < SHORT_PASSPHRASE {
        lines.extend(wrapped(
            &format!(
                "⚠ {short} characters are easy to guess for whoever takes this device; \
                 {SHORT_PASSPHRASE} or more (a few random words) are safer."
            ),
            inner,
            Style::new(),
        ));
    }
    if form.busy {
        lines.push(Line::from("Creating the encrypted store…"));
    }
    if let Some(e) = &form.error {
        lines.extend(wrapped(&format!("⚠ {e}"), inner, Style::new().bold()));
    }
    let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX).max(15);
    let area = centered(f.area(), width, height);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" hush: first run "),
        ),
        area,
    );
}

fn draw_unlock(f: &mut Frame<'_>, app: &App, pass: &str, error: Option<&str>, busy: bool) {
    let width = 60.min(f.area().width);
    let mut lines = vec![
        Line::from(format!("Profile {:?}", app.profile)),
        Line::from(vec![
            Span::raw("Passphrase: "),
            Span::styled(
                "*".repeat(pass.chars().count()) + " ",
                Style::new().add_modifier(Modifier::REVERSED),
            ),
        ]),
    ];
    if busy {
        lines.push(Line::from("Unlocking…"));
    }
    if let Some(e) = error {
        lines.extend(wrapped(
            &format!("⚠ {e}"),
            width.saturating_sub(2),
            Style::new().bold(),
        ));
    }
    let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX).max(8);
    let area = centered(f.area(), width, height);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" hush: unlock "),
        ),
        area,
    );
}

fn draw_main(f: &mut Frame<'_>, app: &App) -> usize {
    let (bar, message) = status_rows(app, f.area().width);
    let message_h = u16::try_from(message.len()).unwrap_or(u16::MAX);
    let [body, message_area, status] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(message_h),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let contacts_w = (body.width / 4).clamp(16, 30);
    let [left, right] =
        Layout::horizontal([Constraint::Length(contacts_w), Constraint::Min(20)]).areas(body);
    draw_contacts(f, app, left);

    let rows = input_rows(app, usize::from(right.width.saturating_sub(2)));
    let input_h = u16::try_from(rows.len())
        .unwrap_or(u16::MAX)
        .saturating_add(2)
        .min(body.height / 2)
        .max(3);
    let [conv, input] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(input_h)]).areas(right);
    let max_scroll = draw_conversation(f, app, conv);
    draw_input(f, app, input, rows);
    f.render_widget(Paragraph::new(bar).reversed(), status);
    f.render_widget(Clear, message_area);
    f.render_widget(Paragraph::new(message).bold(), message_area);
    if let Some(p) = &app.popup {
        draw_popup(f, p, &app.keys);
    }
    max_scroll
}

fn draw_contacts(f: &mut Frame<'_>, app: &App, area: Rect) {
    let items: Vec<ListItem<'_>> = app
        .contacts
        .iter()
        .map(|c| {
            let mut spans = vec![Span::raw(c.name.clone())];
            if c.verified {
                spans.push(Span::raw(" ✓").bold());
            }
            if c.disappear_secs.is_some() {
                spans.push(Span::raw(" ⏱"));
            }
            if c.pending {
                spans.push(Span::raw(" …").dim());
            }
            if c.unread > 0 {
                spans.push(Span::raw(format!(" ({})", c.unread)).bold());
            }
            ListItem::new(Line::from(spans))
        })
        .collect();
    let title = if app.focus == Focus::Contacts {
        " Contacts* "
    } else {
        " Contacts "
    };
    let list = if items.is_empty() {
        List::new(vec![
            ListItem::new("no contacts yet"),
            ListItem::new(":invite or"),
            ListItem::new(":accept LINK"),
        ])
    } else {
        List::new(items).highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    };
    let mut state = ListState::default();
    if !app.contacts.is_empty() {
        state.select(Some(app.selected));
    }
    f.render_stateful_widget(
        list.block(Block::default().borders(Borders::ALL).title(title)),
        area,
        &mut state,
    );
}

/// The day, the time of day and the zone's name of a message's time, in `tz`.
fn local_time(tz: &jiff::tz::TimeZone, unix: u64) -> (String, String, String) {
    let at = jiff::Timestamp::from_second(i64::try_from(unix).unwrap_or(i64::MAX))
        .unwrap_or(jiff::Timestamp::MAX)
        .to_zoned_datetime(tz.clone());
    let zone = match tz.iana_name() {
        // No zone configured: the times are UTC, say so.
        Some("Etc/Unknown") => "UTC".to_string(),
        Some(name) => name.to_string(),
        None => at.strftime("%Z").to_string(),
    };
    (
        at.strftime("%Y-%m-%d").to_string(),
        at.strftime("%H:%M").to_string(),
        zone,
    )
}

fn draw_conversation(f: &mut Frame<'_>, app: &App, area: Rect) -> usize {
    let title = match (app.current(), &app.search) {
        (Some(n), Some(q)) => format!(" {n} — search {q:?} (Esc clears) "),
        (Some(n), None) => {
            let timer = app
                .contacts
                .get(app.selected)
                .and_then(|c| c.disappear_secs)
                .map(|s| {
                    format!(
                        " — disappearing after {}",
                        humantime::format_duration(std::time::Duration::from_secs(s))
                    )
                })
                .unwrap_or_default();
            format!(" {n}{timer} ")
        }
        (None, _) => " hush ".to_string(),
    };
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let width = usize::from(inner.width.max(1));

    let mut lines: Vec<Line<'_>> = Vec::new();
    let mut last_day = None;
    let name = app.current().unwrap_or_default();
    let visible = app.visible_messages();
    if visible.is_empty() {
        lines.push(
            Line::from(if app.contacts.is_empty() {
                "Start with :invite (hand the link to someone)"
            } else if app.search.is_some() {
                "No message matches."
            } else {
                "No messages yet. Type and press Enter to send."
            })
            .dim(),
        );
        // One short line each, so that none is cut at 80 columns.
        if app.contacts.is_empty() {
            lines.push(Line::from("or :accept LINK (a link you were given).").dim());
            lines.push(Line::from("F1 lists every key and command.").dim());
        }
    }
    for m in visible {
        let (day, hm, zone) = local_time(&app.tz, m.sent_at);
        if last_day.as_ref() != Some(&day) {
            lines.push(
                Line::from(format!("── {day} ({zone}) ──"))
                    .dim()
                    .alignment(Alignment::Center),
            );
            last_day = Some(day);
        }
        if app.new_marker == Some(m.id) {
            lines.push(
                Line::from("── new messages below ──")
                    .bold()
                    .alignment(Alignment::Center),
            );
        }
        let time = format!("{hm} ");
        let (who, style) = if m.outgoing {
            ("me", Style::new().bold())
        } else {
            (name, Style::new().bold().italic())
        };
        let mark = if m.outgoing {
            format!(" {}", App::mark(m.state))
        } else {
            String::new()
        };
        let timer = if m.expires_at.is_some() { " ⏱" } else { "" };
        for (i, text_line) in m.body.split('\n').enumerate() {
            let prefix = if i == 0 {
                vec![
                    Span::raw(time.clone()).dim(),
                    Span::styled(format!("{who}: "), style),
                ]
            } else {
                vec![Span::raw("      ")]
            };
            // Wrap by hand so scrolling can count lines exactly; by display width, so that
            // wide characters are neither cut off nor pushed past the edge.
            let mut first = true;
            let lead = if i == 0 {
                text::width(&time) + text::width(who) + 2
            } else {
                6
            };
            let room = width.saturating_sub(lead).max(8);
            let chunks = text::wrap(text_line, room, width.saturating_sub(6).max(8));
            let n = chunks.len();
            for (j, chunk) in chunks.into_iter().enumerate() {
                let used = if first { lead } else { 6 } + text::width(&chunk);
                let mut spans = if first {
                    prefix.clone()
                } else {
                    vec![Span::raw("      ")]
                };
                first = false;
                spans.push(Span::raw(chunk));
                if j + 1 == n && i + 1 == m.body.split('\n').count() {
                    // The marks go on a row of their own when the text's last row leaves
                    // no room for them: cut off at the edge, a message would look sent
                    // with no state at all.
                    let marks = Span::raw(format!("{timer}{mark}")).dim();
                    if used + text::width(&marks.content) > width {
                        lines.push(Line::from(spans));
                        spans = vec![Span::raw("     "), marks];
                    } else {
                        spans.push(marks);
                    }
                }
                lines.push(Line::from(spans));
            }
        }
    }
    let height = usize::from(inner.height);
    let max_scroll = lines.len().saturating_sub(height);
    let scroll = app.scroll.min(max_scroll);
    let start = lines.len().saturating_sub(height + scroll);
    let end = (start + height).min(lines.len());
    let shown: Vec<Line<'_>> = lines[start..end].to_vec();
    f.render_widget(Paragraph::new(Text::from(shown)), inner);
    max_scroll
}

/// The cursor drawn in the input.
const CURSOR: &str = "▏";

/// The input box's text as screen rows, wrapped to `width` columns, with the cursor where
/// one types. Wrapped by hand so that the box grows to fit the text.
fn input_rows(app: &App, width: usize) -> Vec<String> {
    let (prefix, line, cursor) = match app.mode {
        Mode::Command => (":", &app.command, &app.command_cursor),
        Mode::Search => ("/", &app.command, &app.command_cursor),
        Mode::Insert | Mode::Normal => ("", &app.input, &app.cursor),
    };
    let mut shown = line.clone();
    if app.mode != Mode::Normal {
        shown.insert_str(cursor.pos(line), CURSOR);
    }
    text::wrap_text(&format!("{prefix}{shown}"), width.max(1))
}

fn draw_input(f: &mut Frame<'_>, app: &App, area: Rect, rows: Vec<String>) {
    let title = match app.mode {
        Mode::Command => " command ".to_string(),
        Mode::Search => " search ".to_string(),
        Mode::Insert | Mode::Normal => {
            let to = app.current().map_or(String::new(), |n| format!(" to {n} "));
            if app.focus == Focus::Input {
                format!("{to}*")
            } else {
                to
            }
        }
    };
    // When the box is at its largest, the row where one types stays in view, and below it
    // as much of the rest as fits.
    let room = usize::from(area.height.saturating_sub(2)).max(1);
    let at = rows
        .iter()
        .position(|r| r.contains(CURSOR))
        .unwrap_or(rows.len().saturating_sub(1));
    let mut start = rows.len().saturating_sub(room).min(at);
    if at >= start + room {
        start = at + 1 - room;
    }
    let shown: Vec<Line<'_>> = rows
        .into_iter()
        .skip(start)
        .take(room)
        .map(Line::from)
        .collect();
    f.render_widget(
        Paragraph::new(shown).block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}

/// Status messages (errors above all) take at most this many rows above the bar.
const STATUS_ROWS: usize = 4;

/// The status bar, and the status message: in the bar when it fits there, else on rows of
/// its own above it, wrapped, so that an error is read whole at 80 columns.
fn status_rows(app: &App, width: u16) -> (String, Vec<Line<'static>>) {
    let mode = match app.mode {
        Mode::Insert => "INSERT",
        Mode::Normal => "NORMAL",
        Mode::Command => "COMMAND",
        Mode::Search => "SEARCH",
    };
    let relay = if app.relay_up {
        "relay: connected"
    } else {
        "relay: offline"
    };
    // Messages to other relays wait (never sent directly): say so, and why.
    let relay = match &app.route_waiting {
        Some(why) => format!("{relay}, private route waiting ({why})"),
        None => relay.to_owned(),
    };
    let privacy = if app.bell {
        "privacy: bell only, no title"
    } else {
        "privacy: silent, no title"
    };
    // `?` is help in normal mode only; in insert mode it is a character.
    let help = if app.mode == Mode::Normal {
        "? help".to_string()
    } else {
        format!("{} help", app.keys.keys_for(Action::Help))
    };
    let bar = match app.traffic {
        Some((true, cost)) => {
            let traffic = format!("high-risk: {}", super::app::cost_short(&cost));
            let full = format!(" {mode} │ {relay} │ {traffic} │ {privacy} │ {help}");
            if text::width(&full) <= usize::from(width) {
                full
            } else {
                // The mode and its cost before the privacy note, which a narrow bar drops.
                format!(" {mode} │ {relay} │ {traffic} │ {help}")
            }
        }
        // Normal mode with per-contact isolation (high-risk mode always isolates).
        _ if app.isolation => {
            let full = format!(" {mode} │ {relay} │ isolated │ {privacy} │ {help}");
            if text::width(&full) <= usize::from(width) {
                full
            } else {
                format!(" {mode} │ {relay} │ isolated │ {help}")
            }
        }
        _ => format!(" {mode} │ {relay} │ {privacy} │ {help}"),
    };
    match app.status.as_deref().filter(|s| !s.is_empty()) {
        None => (bar, Vec::new()),
        Some(s) if text::width(&bar) + 3 + text::width(s) <= usize::from(width) => {
            (format!("{bar} │ {s}"), Vec::new())
        }
        Some(s) => {
            let mut rows = text::wrap_text(s, usize::from(width.saturating_sub(1)).max(1));
            if rows.len() > STATUS_ROWS {
                rows.truncate(STATUS_ROWS);
                if let Some(last) = rows.last_mut() {
                    last.push('…');
                }
            }
            (
                bar,
                rows.into_iter()
                    .map(|r| Line::from(format!(" {r}")))
                    .collect(),
            )
        }
    }
}

/// The help: the keys as bound now (the `[keys]` of config.toml applied), and the
/// commands.
fn help_rows(keys: &KeyMap) -> Vec<(String, &'static str)> {
    let k = |a: Action| keys.keys_for(a);
    vec![
        (k(Action::Send), "send (insert mode)"),
        (k(Action::Newline), "new line in the message"),
        (
            k(Action::NextContact),
            "next contact (Down on an empty input)",
        ),
        (k(Action::PrevContact), "previous contact (Up)"),
        (k(Action::Focus), "switch contacts / input"),
        (
            format!("{} / {}", k(Action::PageUp), k(Action::PageDown)),
            "scroll the conversation",
        ),
        (k(Action::Escape), "normal mode: j/k gg G i / :"),
        (
            "Left Right Home End".into(),
            "move; with Alt or Ctrl by word",
        ),
        (
            "Ctrl-A/E/U/W/K Del".into(),
            "start, end, cut: line, word, rest",
        ),
        (
            ":invite [NAME]  :address".into(),
            "one-time invite; contact address (--file)",
        ),
        (":accept LINK [NAME]".into(), "accept an invite"),
        (
            ":rename NAME  :verify".into(),
            "rename; safety number (m marks verified)",
        ),
        (
            ":disappear 1h|off  :receipts".into(),
            "disappearing messages; read receipts",
        ),
        (
            ":highrisk  :isolation on|off".into(),
            "cover traffic (data cost); a link per contact",
        ),
        (":relay ADDRESS".into(), "use this relay"),
        (":search TEXT  /TEXT".into(), "search the conversation"),
        (
            ":delete  :forget".into(),
            "delete the history; the contact (both ask)",
        ),
        (
            ":block  :unblock".into(),
            "drop what the contact sends, or stop",
        ),
        (
            ":invites  :revoke ID".into(),
            "invites still answered; stop one",
        ),
        (
            ":file PATH  :save [ID] [DIR]".into(),
            "send (Tab completes; --keep-metadata); save",
        ),
        (":wipe".into(), "panic wipe (asks first)"),
        (format!(":quit  {}", k(Action::Quit)), "quit"),
    ]
}

/// The keys of the invite view.
const INVITE_KEYS: &str = "c copies the link (OSC 52) · z switches the QR rendering · Esc closes";

/// An invite fills the screen without borders: the QR code when it fits, and the link on
/// whole rows at the left edge, so that a terminal selection copies nothing but the link
/// (over several rows it picks up only line breaks, which `:accept` removes).
fn draw_invite(f: &mut Frame<'_>, title: &str, link: &str, compact: bool) {
    let screen = f.area();
    let width = usize::from(screen.width).max(1);
    let link_rows: Vec<String> = link
        .chars()
        .collect::<Vec<_>>()
        .chunks(width)
        .map(|c| c.iter().collect())
        .collect();
    let hints = text::wrap_text(INVITE_KEYS, width);
    let title = wrapped(title, screen.width, Style::new().bold());
    let height = usize::from(screen.height);
    let fixed = title.len() + link_rows.len() + hints.len();
    let (code, note) = match qr::lines(link, compact) {
        Some(code)
            if code.len() + fixed <= height && code.first().map_or(0, Line::width) <= width =>
        {
            (code, None)
        }
        Some(code) => {
            let other = if compact { "the larger" } else { "the compact" };
            let need = code.len() + fixed;
            let note = format!(
                "(the QR code needs {need} rows: a taller terminal shows it, z tries {other} \
                 rendering)"
            );
            (Vec::new(), Some(note))
        }
        None => (Vec::new(), Some("(too long for a QR code)".to_string())),
    };
    let note = note.map_or_else(Vec::new, |n| wrapped(&n, screen.width, Style::new().dim()));
    // Blank rows between the parts when there is room for them.
    let used = fixed + code.len() + note.len();
    let gap = |n: usize| (used + n <= height).then(|| Line::from(""));
    let mut lines: Vec<Line<'_>> = title;
    lines.extend(gap(3));
    lines.extend(note);
    lines.extend(code.into_iter().map(|l| l.alignment(Alignment::Center)));
    lines.extend(gap(2));
    lines.extend(link_rows.into_iter().map(Line::from));
    lines.extend(gap(1));
    lines.extend(hints.into_iter().map(|h| Line::from(h).dim()));
    f.render_widget(Clear, screen);
    f.render_widget(Paragraph::new(lines), screen);
}

fn draw_popup(f: &mut Frame<'_>, popup: &Popup, keys: &KeyMap) {
    let screen = f.area();
    let (title, lines): (String, Vec<Line<'_>>) = match popup {
        Popup::Help => {
            let rows = help_rows(keys);
            let w = rows.iter().map(|(k, _)| text::width(k)).max().unwrap_or(0) + 2;
            (
                format!(" help ({} or ?; Esc closes) ", keys.keys_for(Action::Help)),
                rows.into_iter()
                    .map(|(k, v)| {
                        let pad = " ".repeat(w.saturating_sub(text::width(&k)));
                        Line::from(vec![Span::raw(k + &pad).bold(), Span::raw(v)])
                    })
                    .collect(),
            )
        }
        Popup::Invite {
            title,
            link,
            compact,
        } => {
            draw_invite(f, title, link, *compact);
            return;
        }
        Popup::Safety { name, info } => {
            let mut l = Vec::new();
            let qr = qr::lines(&info.qr, false).unwrap_or_default();
            if qr.len() as u16 + 8 <= screen.height {
                l.extend(qr.into_iter().map(|l| l.alignment(Alignment::Center)));
            }
            l.push(Line::from(info.digits.clone()).bold());
            l.push(Line::from(if info.verified {
                "verified ✓ — m removes the mark, Esc closes"
            } else {
                "compare with your contact in person; m marks verified, Esc closes"
            }));
            (format!(" safety number with {name} "), l)
        }
        Popup::ConfirmWipe => (
            " panic wipe ".into(),
            vec![
                Line::from("Destroy this profile's keys, contacts and messages now?").bold(),
                Line::from("This cannot be undone. y wipes, any other key cancels."),
            ],
        ),
        Popup::ConfirmDelete(name) => (
            " delete history ".into(),
            vec![Line::from(format!(
                "Delete every message with {name} on this device? y / n"
            ))],
        ),
        Popup::ConfirmForget(name) => (
            " delete contact ".into(),
            vec![
                Line::from(format!(
                    "Delete {name}: the contact, every message and its mailboxes?"
                ))
                .bold(),
                Line::from(
                    "They are not told. This cannot be undone. y deletes, any other key cancels.",
                ),
            ],
        ),
    };
    let w = lines
        .iter()
        .map(Line::width)
        .max()
        .unwrap_or(10)
        .saturating_add(4)
        .min(usize::from(screen.width)) as u16;
    // A line wider than the popup is wrapped here, by words and display width, so that the
    // popup's height counts its rows exactly and all of it shows.
    let inner = w.saturating_sub(2);
    let lines: Vec<Line<'_>> = lines
        .into_iter()
        .flat_map(|l| {
            if l.width() <= usize::from(inner) {
                return vec![l];
            }
            let style = l.spans.first().map_or(l.style, |s| l.style.patch(s.style));
            let plain: String = l.spans.iter().map(|s| s.content.as_ref()).collect();
            wrapped(&plain, inner, style)
        })
        .collect();
    let h = u16::try_from(lines.len() + 2)
        .unwrap_or(u16::MAX)
        .min(screen.height);
    let area = centered(screen, w, h);
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}
