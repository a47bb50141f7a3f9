//! The terminal UI: `hush` with no subcommand.
//!
//! Model/Update/View over the engine: [`app`] holds the state and the pure update function,
//! [`view`] draws it, [`keys`] maps keys, [`text`] cuts and edits text by grapheme cluster
//! and display width, [`qr`] draws QR codes. This driver owns the terminal, turns terminal
//! input and engine events into messages, and runs effects in tasks whose results come back
//! as messages, so drawing never waits on the network or the disk.
//!
//! Privacy defaults: notifications are a bare terminal bell, the terminal title is never
//! set, and the screen and scrollback are cleared on exit and on wipe.

pub mod app;
pub mod complete;
pub mod keys;
pub mod qr;
pub mod text;
pub mod view;

#[cfg(test)]
mod tests;

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use hush_core::profile::{DEFAULT_PROFILE, Notify};
use hush_core::{Handle, Options, Passphrase, Profile, Store, passphrase};
use hush_crypto::InviteKind;
use ratatui::crossterm::event::{self, Event as TermEvent, KeyEventKind};
use ratatui::crossterm::{cursor, execute, terminal};
use tokio::sync::mpsc;

use app::{App, Effect, Msg, Screen, SetupForm};
use keys::KeyMap;

type Tx = mpsc::UnboundedSender<Msg>;
type ControlSlot = Arc<OnceLock<crate::control::Server>>;

/// Runs the TUI until the user quits.
pub async fn run(profile: Profile, root: PathBuf, options: Options) -> anyhow::Result<()> {
    let config = profile.config()?;
    let overrides = config.keys.clone().into_iter().collect();
    let (keymap, bad) = KeyMap::with_overrides(&overrides);
    let bell = config.notify != Some(Notify::Off);
    let others = existing_profiles(&root);
    // The CLI opens the only profile when none is named, and passes the default name
    // otherwise: with several profiles and none named, the user chooses here. (It does not
    // say whether `--profile default` was typed; a missing profile named otherwise is
    // created on the setup screen, as asked.)
    let screen = if !profile.exists() && !others.is_empty() && profile.name() == DEFAULT_PROFILE {
        Screen::Choose {
            profiles: others,
            selected: 0,
            new_name: profile.name().to_string(),
        }
    } else if profile.exists() {
        Screen::Unlock {
            pass: String::new(),
            error: None,
            busy: false,
        }
    } else {
        Screen::Setup(SetupForm {
            name: profile.name().to_string(),
            ..SetupForm::default()
        })
    };
    let mut app = App::new(screen, profile.name(), keymap, bell);
    app.tz = jiff::tz::TimeZone::system();
    if !bad.is_empty() {
        app.status = Some(format!("unusable key bindings ignored: {}", bad.join(", ")));
    }
    // The same sources in the same order as the CLI. Resolved before the terminal is taken
    // over, so that a passphrase_command prompting on the terminal (a pinentry) can.
    let found = profile
        .exists()
        .then(|| passphrase::resolve(&profile).map_err(|e| e.to_string()));

    // Logs go to the profile's file, never to the screen.
    if profile.exists() {
        crate::cli::init_logging(&profile);
    }
    let mut terminal = ratatui::init();
    let _ = execute!(std::io::stdout(), event::EnableBracketedPaste);
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    spawn_input(tx.clone());
    #[cfg(feature = "test-hooks")]
    let clock_offset = options.clock_offset_secs;
    #[cfg(not(feature = "test-hooks"))]
    let clock_offset = 0;
    spawn_clock(tx.clone(), clock_offset);
    let mut driver = Driver {
        profile: profile.clone(),
        root,
        options,
        handle: Arc::new(OnceLock::new()),
        control: Arc::new(OnceLock::new()),
        tx: tx.clone(),
        wipe: None,
        latest_load: Arc::new([AtomicU64::new(0), AtomicU64::new(0)]),
    };
    if let Some(found) = found {
        for fx in app.update(Msg::Passphrase(found)) {
            driver.run(fx);
        }
    }
    let mut result = Ok(());
    loop {
        let mut max_scroll = 0;
        if let Err(e) = terminal.draw(|f| max_scroll = view::draw(f, &app)) {
            result = Err(e.into());
            break;
        }
        app.clamp_scroll(max_scroll);
        let Some(msg) = rx.recv().await else { break };
        for fx in app.update(msg) {
            driver.run(fx);
        }
        if app.quit {
            break;
        }
    }
    // Clear the screen before stopping the engine, which can take seconds: the conversation
    // must not stay visible after the user quit.
    let _ = execute!(std::io::stdout(), event::DisableBracketedPaste);
    ratatui::restore();
    clear_screen();
    // Commands from other processes stop before the engine does (and the socket goes).
    if let Some(server) = driver.control.get() {
        server.stop();
    }
    if let Some(h) = driver.handle.get() {
        h.shutdown().await;
    }
    // The wipe runs in a task; returning before it ends would drop it with the runtime and
    // leave the profile in place.
    if let Some(wipe) = driver.wipe.take() {
        let _ = wipe.await;
    }
    // A wipe leaves nothing on the terminal, not even a line saying so: whoever looks at
    // it afterwards sees a plain exit.
    result
}

/// The names of the profiles that exist under `root`, sorted.
fn existing_profiles(root: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("profiles"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| Profile::new(root, name).is_ok_and(|p| p.exists()))
        .collect();
    names.sort();
    names
}

/// Clears the screen and the scrollback so nothing of the conversation stays visible.
fn clear_screen() {
    let mut out = std::io::stdout();
    let _ = execute!(
        out,
        terminal::Clear(terminal::ClearType::All),
        terminal::Clear(terminal::ClearType::Purge),
        cursor::MoveTo(0, 0)
    );
    let _ = out.flush();
}

/// Terminal input runs on its own thread: reading the terminal blocks.
fn spawn_input(tx: Tx) {
    std::thread::spawn(move || {
        loop {
            let msg = match event::read() {
                Ok(ev) => match term_msg(ev) {
                    Some(msg) => msg,
                    None => continue,
                },
                Err(_) => return,
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
    });
}

/// The message for a terminal event, if any.
fn term_msg(ev: TermEvent) -> Option<Msg> {
    match ev {
        TermEvent::Key(k) if k.kind != KeyEventKind::Release => Some(Msg::Key(k)),
        TermEvent::Paste(s) => Some(Msg::Paste(s)),
        // A redraw, and nothing else: the status line (an error being read) stays.
        TermEvent::Resize(..) => Some(Msg::Resize),
        _ => None,
    }
}

/// The clock: a tick a second, so that disappearing messages leave the screen when they
/// expire. On the engine's clock: `offset` is its shift (test hooks), 0 otherwise.
fn spawn_clock(tx: Tx, offset: i64) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .saturating_add_signed(offset);
            if tx.send(Msg::Tick(now)).is_err() {
                return;
            }
        }
    });
}

struct Driver {
    profile: Profile,
    root: PathBuf,
    options: Options,
    handle: Arc<OnceLock<Handle>>,
    /// The control socket, served once the engine runs: CLI commands on this profile.
    control: ControlSlot,
    tx: Tx,
    /// The panic wipe in progress, awaited before exit.
    wipe: Option<tokio::task::JoinHandle<()>>,
    /// Numbers of the latest contact-list and conversation loads. Loads run in separate
    /// tasks and may finish out of order; only the latest one's result is shown, so an
    /// older list never replaces a newer one.
    latest_load: Arc<[AtomicU64; 2]>,
}

/// Which of [`Driver::latest_load`] a load uses.
fn load_slot(fx: &Effect) -> Option<usize> {
    match fx {
        Effect::LoadContacts => Some(0),
        Effect::LoadMessages(_) => Some(1),
        _ => None,
    }
}

impl Driver {
    /// Runs one effect in a task; its result comes back as a message.
    fn run(&mut self, fx: Effect) {
        let tx = self.tx.clone();
        let handle = self.handle.get().cloned();
        match fx {
            Effect::Bell => {
                let mut out = std::io::stdout();
                let _ = out.write_all(b"\x07");
                let _ = out.flush();
            }
            Effect::Copy(text) => {
                let mut out = std::io::stdout();
                let _ = out.write_all(osc52(&text).as_bytes());
                let _ = out.flush();
            }
            Effect::Quit => {}
            Effect::OpenProfile(name) => {
                let chosen = match Profile::new(&self.root, &name) {
                    Ok(p) if p.exists() => p,
                    _ => return,
                };
                let (config, config_error) = match chosen.config() {
                    Ok(c) => (c, None),
                    Err(e) => (Default::default(), Some(e.to_string())),
                };
                let overrides = config.keys.clone().into_iter().collect();
                let (keys, bad_keys) = KeyMap::with_overrides(&overrides);
                // As at start-up: a passphrase_command that prompts (a pinentry) may draw
                // over the TUI for a moment.
                let found = match config_error {
                    Some(e) => Err(e),
                    None => passphrase::resolve(&chosen).map_err(|e| e.to_string()),
                };
                crate::cli::init_logging(&chosen);
                self.profile = chosen;
                let _ = tx.send(Msg::ProfileChosen {
                    name,
                    keys,
                    bell: config.notify != Some(Notify::Off),
                    bad_keys,
                    found,
                });
            }
            Effect::Setup { name, pass, relay } => {
                // The profile is the one named in the form.
                let named = Profile::new(&self.root, &name)
                    .map_err(|e| e.to_string())
                    .and_then(|p| {
                        if p.exists() {
                            Err(format!(
                                "profile {name:?} exists; open it with hush --profile {name}"
                            ))
                        } else {
                            Ok(p)
                        }
                    });
                match named {
                    Ok(p) => self.profile = p,
                    Err(e) => {
                        let _ = tx.send(Msg::Opened(Err(e)));
                        return;
                    }
                }
                let (profile, root, options, slot) = self.open_args();
                let control = Arc::clone(&self.control);
                tokio::spawn(async move {
                    let r = setup(
                        profile.clone(),
                        root,
                        options,
                        slot,
                        pass,
                        relay,
                        tx.clone(),
                    )
                    .await
                    .inspect(|h| serve_control(&control, &profile, h));
                    let _ = tx.send(Msg::Opened(r.map(drop).map_err(|e| format!("{e:#}"))));
                });
            }
            Effect::Unlock(pass) => {
                let (profile, root, options, slot) = self.open_args();
                let control = Arc::clone(&self.control);
                tokio::spawn(async move {
                    let r = open(profile.clone(), root, options, slot, pass, tx.clone())
                        .await
                        .inspect(|h| serve_control(&control, &profile, h));
                    let _ = tx.send(Msg::Opened(r.map(drop).map_err(|e| format!("{e:#}"))));
                });
            }
            Effect::Wipe => {
                let profile = self.profile.clone();
                let control = Arc::clone(&self.control);
                self.wipe = Some(tokio::spawn(async move {
                    if let Some(server) = control.get() {
                        server.stop();
                    }
                    if let Some(h) = handle {
                        h.shutdown().await;
                    }
                    let r = Store::wipe(&profile).map(|()| "profile wiped".to_string());
                    let _ = tx.send(Msg::Done(r.map_err(|e| e.to_string())));
                }));
            }
            fx @ (Effect::SendFile { .. } | Effect::SaveFile { .. }) => {
                let Some(h) = handle else { return };
                tokio::spawn(async move {
                    let msg = file_call(&h, fx, &tx).await;
                    let _ = tx.send(msg);
                });
            }
            other => {
                let Some(h) = handle else { return };
                let latest = Arc::clone(&self.latest_load);
                let ticket = load_slot(&other)
                    .map(|slot| (slot, latest[slot].fetch_add(1, Ordering::SeqCst) + 1));
                tokio::spawn(async move {
                    if let Some(msg) = engine_call(&h, other).await {
                        let stale = ticket
                            .is_some_and(|(slot, n)| latest[slot].load(Ordering::SeqCst) != n);
                        if !stale {
                            let _ = tx.send(msg);
                        }
                    }
                });
            }
        }
    }

    fn open_args(&self) -> (Profile, PathBuf, Options, Arc<OnceLock<Handle>>) {
        (
            self.profile.clone(),
            self.root.clone(),
            self.options.clone(),
            Arc::clone(&self.handle),
        )
    }
}

/// The traffic mode and its cost, as a message.
async fn traffic(h: &Handle, changed: bool) -> Option<Msg> {
    match h.status().await {
        Ok(s) => Some(Msg::Traffic {
            high_risk: s.high_risk,
            cost: s.high_risk_cost,
            changed,
            isolation: s.isolation,
        }),
        Err(e) => Some(Msg::Done(Err(e.to_string()))),
    }
}

async fn engine_call(h: &Handle, fx: Effect) -> Option<Msg> {
    let done = |r: hush_core::Result<String>| Some(Msg::Done(r.map_err(|e| e.to_string())));
    match fx {
        Effect::LoadContacts => h.contacts().await.ok().map(Msg::Contacts),
        Effect::LoadMessages(name) => {
            let _ = h.mark_read(&name).await;
            let msgs = h.messages(&name, 1000).await.ok()?;
            Some(Msg::Messages(name, msgs))
        }
        Effect::Send { to, text } => {
            let sent = h.send(&to, &text).await;
            let waiting = matches!(h.status().await, Ok(s) if s.high_risk);
            done(sent.map(|_| {
                if waiting {
                    "waiting for a high-risk slot (not failed: it leaves at one)".into()
                } else {
                    String::new()
                }
            }))
        }
        Effect::HighRisk(on) => match h.set_high_risk(on).await {
            Ok(()) => traffic(h, true).await,
            Err(e) => done(Err(e)),
        },
        Effect::Isolation(on) => match h.set_isolation(on).await {
            Ok(()) => match h.status().await {
                Ok(s) => Some(Msg::IsolationSet {
                    on: s.isolation,
                    by_high_risk: s.isolation && !s.isolation_setting,
                }),
                Err(e) => done(Err(e)),
            },
            Err(e) => done(Err(e)),
        },
        Effect::LoadTraffic => traffic(h, false).await,
        Effect::Invite {
            one_time,
            name,
            file,
        } => {
            let kind = if one_time {
                InviteKind::OneTime
            } else {
                InviteKind::ContactAddress
            };
            let link = match h.create_invite(kind, name).await {
                Ok(link) => link,
                Err(e) => return done(Err(e)),
            };
            match file {
                None => Some(Msg::InviteReady { one_time, link }),
                Some(path) => Some(Msg::Done(
                    write_private(&path, &format!("{link}\n"))
                        .map(|()| {
                            format!("link written to {} (readable by you only)", path.display())
                        })
                        .map_err(|e| format!("writing {}: {e}", path.display())),
                )),
            }
        }
        Effect::SetRelay(address) => done(
            h.set_relay(&address)
                .await
                .map(|()| "relay set; new contacts and moved mailboxes use it".into()),
        ),
        Effect::Receipts(name, on) => done(h.set_receipts(&name, on).await.map(|()| {
            if on {
                format!("read receipts to {name} on")
            } else {
                format!("read receipts to {name} off")
            }
        })),
        Effect::Accept { link, name } => {
            let name = match name {
                Some(n) => n,
                None => {
                    let n = h.contacts().await.map(|c| c.len()).unwrap_or(0);
                    format!("contact-{}", n + 1)
                }
            };
            done(
                h.accept(&link, &name)
                    .await
                    .map(|()| format!("added {name}")),
            )
        }
        Effect::Rename { old, new } => done(h.rename(&old, &new).await.map(|()| "renamed".into())),
        Effect::Safety(name) => match h.safety(&name).await {
            Ok(info) => Some(Msg::SafetyReady(name, info)),
            Err(e) => done(Err(e)),
        },
        Effect::MarkVerified(name, v) => done(h.set_verified(&name, v).await.map(|()| {
            if v {
                "marked verified".into()
            } else {
                "verified mark removed".into()
            }
        })),
        Effect::Disappear(name, secs) => {
            done(h.set_disappear(&name, secs).await.map(|()| match secs {
                Some(s) => format!(
                    "messages disappear after {}",
                    humantime::format_duration(Duration::from_secs(s))
                ),
                None => "disappearing messages off".into(),
            }))
        }
        Effect::DeleteHistory(name) => done(
            h.delete_messages(&name)
                .await
                .map(|n| format!("deleted {n} messages on this device")),
        ),
        Effect::DeleteContact(name) => done(
            h.delete_contact(&name)
                .await
                .map(|()| format!("deleted {name}")),
        ),
        Effect::Block(name, on) => done(h.set_blocked(&name, on).await.map(|()| {
            if on {
                format!("blocked {name}: what they send is dropped unread")
            } else {
                format!("unblocked {name}")
            }
        })),
        Effect::ListInvites => done(h.invites().await.map(|list| invites_text(&list))),
        Effect::RevokeInvite(id) => done(
            h.revoke_invite(id)
                .await
                .map(|()| format!("invite #{id} revoked: it is no longer answered")),
        ),
        Effect::Setup { .. }
        | Effect::SendFile { .. }
        | Effect::SaveFile { .. }
        | Effect::Unlock(_)
        | Effect::Wipe
        | Effect::Bell
        | Effect::Copy(_)
        | Effect::OpenProfile(_)
        | Effect::Quit => None,
    }
}

/// `:file` and `:save`: the transfer, with its progress sent as it goes; the last message
/// says how it ended.
async fn file_call(h: &Handle, fx: Effect, tx: &mpsc::UnboundedSender<Msg>) -> Msg {
    use hush_core::files::{self, Progress};
    use hush_core::{FileCommand, Response};
    let r: anyhow::Result<String> = async {
        match fx {
            Effect::SendFile {
                to,
                path,
                keep_metadata,
            } => {
                let prepared =
                    tokio::task::spawn_blocking(move || files::prepare(to, &path, keep_metadata))
                        .await??;
                let Response::File(info) = h.file(prepared.command).await? else {
                    anyhow::bail!("unexpected engine answer");
                };
                let size = prepared.size;
                // Said when it ends (the progress bar holds the status bar until then).
                let note = match (&prepared.removed, prepared.warning) {
                    (Some(r), _) => format!(
                        "; removed its metadata: {} (:file --keep-metadata PATH sends it as is)",
                        r.describe()
                    ),
                    (None, Some(w)) => format!("; {w}"),
                    (None, None) => String::new(),
                };
                let id = info.id;
                files::upload(h, id, &mut |progress: Progress| {
                    let _ = tx.send(Msg::FileProgress {
                        direction: "send",
                        progress,
                    });
                })
                .await?;
                Ok(format!(
                    "file {id} sent ({}){note}",
                    files::human_size(size)
                ))
            }
            Effect::SaveFile { from, id, dir } => {
                let _ = h.sync().await;
                let Response::Files(list) = h
                    .file(FileCommand::List {
                        contact: Some(from),
                    })
                    .await?
                else {
                    anyhow::bail!("unexpected engine answer");
                };
                let complete = |f: &hush_core::store::FileInfo| {
                    f.state == hush_core::store::FileState::Complete
                };
                let latest_saved = list
                    .iter()
                    .rev()
                    .find(|f| !f.outgoing && complete(f))
                    .map(|f| (f.id, f.path.clone().unwrap_or_default()));
                let file = match id {
                    Some(id) => list.into_iter().find(|f| f.id == id),
                    None => list.into_iter().rev().find(|f| !f.outgoing && !complete(f)),
                };
                let file = match (file, latest_saved) {
                    (Some(f), _) => f,
                    // Every offer is saved: say where the latest went, not "no such file".
                    (None, Some((saved, path))) if id.is_none() => anyhow::bail!(
                        "every file from this contact is saved; the latest, file {saved}, is at {}",
                        crate::terminal_text::terminal_safe(&path)
                    ),
                    (None, _) => {
                        anyhow::bail!("no such file from this contact (see the conversation)")
                    }
                };
                let id = file.id;
                if file.state != hush_core::store::FileState::Complete {
                    let dir = std::path::absolute(&dir)?;
                    let dir = dir
                        .to_str()
                        .context("the directory must be UTF-8")?
                        .to_owned();
                    h.file(FileCommand::Accept {
                        id,
                        dir,
                        limit: None,
                    })
                    .await?;
                }
                let saved = files::download(h, id, &mut |progress: Progress| {
                    let _ = tx.send(Msg::FileProgress {
                        direction: "save",
                        progress,
                    });
                })
                .await?;
                Ok(format!(
                    "saved {}",
                    crate::terminal_text::terminal_safe(&saved.to_string_lossy())
                ))
            }
            _ => anyhow::bail!("not a file effect"),
        }
    }
    .await;
    Msg::Done(r.map_err(|e| e.to_string()))
}

/// Serves the control socket of the profile just opened (see `control`).
fn serve_control(control: &ControlSlot, profile: &Profile, handle: &Handle) {
    if let Some(server) = crate::control::Server::start(profile, handle.clone()) {
        let _ = control.set(server);
    }
}

/// The OSC 52 sequence that asks the terminal to put `text` on the clipboard.
fn osc52(text: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(text);
    format!("\x1b]52;c;{b64}\x07")
}

/// Writes `text` to a new or truncated file that only its owner can read (0600): an
/// invite link is a capability.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its mode through open; make it private too.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

async fn start_engine(
    store: Store,
    options: Options,
    slot: Arc<OnceLock<Handle>>,
    tx: Tx,
) -> anyhow::Result<Handle> {
    let (handle, mut events) = hush_core::start(store, options).await?;
    let _ = slot.set(handle.clone());
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if tx.send(Msg::Engine(ev)).is_err() {
                return;
            }
        }
    });
    Ok(handle)
}

async fn open(
    profile: Profile,
    _root: PathBuf,
    options: Options,
    slot: Arc<OnceLock<Handle>>,
    pass: Passphrase,
    tx: Tx,
) -> anyhow::Result<Handle> {
    let mut options = options;
    options.configure(&profile.config()?);
    let p = profile.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&p, pass.as_bytes()))
        .await
        .context("opening the store")??;
    start_engine(store, options, slot, tx).await
}

async fn setup(
    profile: Profile,
    _root: PathBuf,
    options: Options,
    slot: Arc<OnceLock<Handle>>,
    pass: Passphrase,
    relay: String,
    tx: Tx,
) -> anyhow::Result<Handle> {
    if !relay.is_empty() {
        relay.parse::<hush_proto::RelayAddress>().map_err(|_| {
            anyhow::anyhow!(
                "not a relay address (hush://PIN@HOST:PORT); leave it empty for the built-in relay"
            )
        })?;
    }
    let p = profile.clone();
    let store = tokio::task::spawn_blocking(move || Store::create(&p, pass.as_bytes()))
        .await
        .context("creating the store")??;
    crate::cli::init_logging(&profile);
    // Before the engine starts: with a relay of its own the profile never serves the
    // built-in one.
    if !relay.is_empty() {
        store.set_relay(&relay)?;
    }
    let mut options = options;
    options.configure(&profile.config()?);
    start_engine(store, options, slot, tx).await
}

/// The invites still answered, as one status text.
fn invites_text(list: &[hush_core::InviteInfo]) -> String {
    if list.is_empty() {
        return "no invites or addresses are answered (:invite, :address)".into();
    }
    let items: Vec<String> = list
        .iter()
        .map(|i| {
            let kind = match i.kind {
                hush_crypto::InviteKind::OneTime => "one-time",
                hush_crypto::InviteKind::ContactAddress => "address",
            };
            let name = i
                .name
                .as_deref()
                .map(|n| format!(" for {n}"))
                .unwrap_or_default();
            format!("#{} {kind}{name}, {} used", i.id, i.uses)
        })
        .collect();
    format!("invites: {} (:revoke ID stops one)", items.join(" · "))
}
