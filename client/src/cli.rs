//! The scripting CLI. See README ("CLI") for every command and its `--json` output.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use clap::{Parser, Subcommand};
#[cfg(feature = "test-hooks")]
use hush_core::CrashPoint;
use hush_core::passphrase::{self, Passphrase, Resolution};
use hush_core::profile::{DEFAULT_PROFILE, data_root};
use hush_core::{DeliveryState, Error, Handle, Options, Profile, Store};
use hush_crypto::InviteKind;
use serde_json::json;

use crate::failure::{self, Kind, usage};
use crate::terminal_text::terminal_safe;

#[derive(Parser, Debug)]
#[command(
    name = "hush",
    version,
    about = "End-to-end encrypted, metadata-minimising messenger"
)]
struct Cli {
    /// Profile to use (isolated keys, contacts and messages).
    /// (Default: `default`; the terminal UI opens the only profile there is if `default`
    /// does not exist.)
    #[arg(long, global = true)]
    profile: Option<String>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the profile: a new encrypted store (passphrase asked twice, or HUSH_PASSPHRASE).
    Init,
    /// Relay settings.
    Relay {
        #[command(subcommand)]
        action: RelayAction,
    },
    /// Make a one-time invite: a link and a QR code to hand to one person.
    Invite {
        /// Name for the contact this invite will create.
        #[arg(long)]
        name: Option<String>,
        /// Work a source pays per first message, in bits (0..=28; default 16): each bit
        /// doubles what a flood of the invite's mailbox costs.
        #[arg(long, value_name = "BITS")]
        stamp_bits: Option<u8>,
    },
    /// Make a contact address: a multi-use link (a tip line) to publish.
    Address {
        /// Work a source pays per first message, in bits (0..=28; default 16).
        #[arg(long, value_name = "BITS")]
        stamp_bits: Option<u8>,
    },
    /// List the invites still answered (one-time links nobody used yet, contact addresses);
    /// `invites revoke ID` stops answering one.
    Invites {
        #[command(subcommand)]
        action: Option<InvitesAction>,
    },
    /// Accept an invite link or contact address.
    Accept {
        /// The `hush:` link.
        link: String,
        /// Your name for this contact.
        #[arg(long)]
        name: String,
    },
    /// List contacts.
    Contacts,
    /// Send a message (TEXT, or standard input if omitted).
    Send {
        /// Contact name.
        name: String,
        /// The message.
        text: Option<String>,
    },
    /// Send a file: encrypted on this device, uploaded as equal-size chunks, then offered in
    /// the conversation. --resume ID continues an interrupted upload.
    SendFile {
        /// Contact name.
        #[arg(required_unless_present = "resume")]
        name: Option<String>,
        /// The file.
        #[arg(required_unless_present = "resume")]
        path: Option<PathBuf>,
        /// Continue the upload of this file id instead.
        #[arg(long, value_name = "ID", conflicts_with_all = ["name", "path"])]
        resume: Option<i64>,
        /// Send a JPEG or PNG as it is: without this, its EXIF, XMP, IPTC, comments and
        /// text chunks are removed first (losslessly, in memory).
        #[arg(long, conflicts_with = "resume")]
        keep_metadata: bool,
    },
    /// List file transfers (of one contact, or all), oldest first.
    Files {
        /// Contact name.
        name: Option<String>,
    },
    /// Save a received file into DIR (resumes an interrupted download); the digest is
    /// checked before it is saved, and the relay's chunks are deleted afterwards.
    GetFile {
        /// File id (from `hush files`).
        id: i64,
        /// The directory to save it in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Refuse a file larger than this (bytes, or e.g. 500MiB, 4GiB), over the profile's
        /// limit (`hush file-limit`, default 2 GiB).
        #[arg(long, value_name = "SIZE", value_parser = parse_size_arg)]
        max_size: Option<u64>,
    },
    /// Show or set the profile's limit on received files (SIZE: bytes, or e.g. 500MiB,
    /// 4GiB; `default`: back to 2 GiB). `get-file --max-size` overrides it for one file.
    FileLimit {
        /// The new limit.
        size: Option<String>,
    },
    /// Receive: fetch what arrived, optionally wait for more, print new messages.
    Recv {
        /// Seconds to keep listening for pushed messages.
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Show the conversation with a contact (oldest first).
    History {
        /// Contact name.
        name: String,
        /// How many of the latest messages.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show a contact's safety number (digits and QR); --mark records that you checked it.
    Verify {
        /// Contact name.
        name: String,
        /// Mark the contact verified.
        #[arg(long, conflicts_with = "unmark")]
        mark: bool,
        /// Remove the verified mark.
        #[arg(long)]
        unmark: bool,
    },
    /// Set the disappearing-message timer of a conversation (e.g. 30s, 1h, 7d) or "off".
    Disappear {
        /// Contact name.
        name: String,
        /// Duration or "off".
        duration: String,
    },
    /// Rename a contact.
    Rename {
        /// Current name.
        old: String,
        /// New name.
        new: String,
    },
    /// Turn delivery receipts to a contact on or off.
    Receipts {
        /// Contact name.
        name: String,
        /// "on" or "off".
        setting: String,
    },
    /// Delete a contact: the relationship, its history and its mailboxes.
    Delete {
        /// Contact name.
        name: String,
    },
    /// Block a contact: it stays in the list, what it sends is dropped unread, it gets no
    /// receipts and nothing can be sent to it. --undo unblocks it.
    Block {
        /// Contact name.
        name: String,
        /// Unblock.
        #[arg(long)]
        undo: bool,
    },
    /// Panic wipe: destroy this profile's keys, contacts and messages. Refused while another
    /// hush process has the profile open, unless --force.
    Wipe {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Wipe even while another hush process has the profile open (its key file is
        /// destroyed first; that process keeps what it holds in memory until it exits).
        #[arg(long)]
        force: bool,
    },
    /// List the profiles of this data root.
    Profiles,
    /// Turn high-risk traffic mode on or off for this profile: deposits and fetches only at
    /// random times that do not depend on what you do, with cover envelopes in between
    /// (costs bandwidth and latency: see `hush status`).
    HighRisk {
        /// "on" or "off".
        setting: String,
    },
    /// Turn per-contact isolation on or off for this profile's normal mode: each contact's
    /// fetches, subscriptions and deposits on connections of their own (one per contact and
    /// two-hour window, each way), through SOCKS5 a Tor circuit each. High-risk mode always
    /// isolates; "off" then only applies once it is off.
    Isolation {
        /// "on" or "off".
        setting: String,
    },
    /// The traffic mode and what it costs, isolation, the outbox, the relays' connection
    /// state.
    Status,
}

#[derive(Subcommand, Debug)]
enum InvitesAction {
    /// Stop answering an invite: its link makes no contact any more, and its mailboxes are
    /// no longer fetched.
    Revoke {
        /// The id `hush invites` shows.
        id: i64,
    },
}

#[derive(Subcommand, Debug)]
enum RelayAction {
    /// Use the relay at ADDRESS (hush://PIN@HOST:PORT) for new invites. Connects once to
    /// check it answers with the pinned certificate, unless --no-check.
    Set {
        /// Relay address printed by `hush-relay init`.
        address: String,
        /// Set it without connecting (a relay not running yet).
        #[arg(long)]
        no_check: bool,
    },
    /// Show the relay new invites point to, and whether it answers.
    Show,
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // The arguments did not parse, so neither did --json: look for it by hand.
            if std::env::args().skip(1).any(|a| a == "--json") {
                return failure::report(Kind::Usage, &e.kind().to_string(), true);
            }
            let _ = e.print();
            return ExitCode::from(Kind::Usage.exit_code());
        }
    };
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return failure::report(Kind::Other, &format!("cannot start: {e}"), json);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => failure::report_error(&e, json),
    }
}

/// The traffic mode and its cost, as `hush status --json` and `hush high-risk --json` print
/// them.
/// `--max-size`: bytes, or a size with a unit (hush_core::files::parse_size).
fn parse_size_arg(text: &str) -> Result<u64, String> {
    hush_core::files::parse_size(text)
        .ok_or_else(|| "a size is bytes or a number with B, KiB, MiB, GiB, KB, MB or GB".into())
}

fn traffic_json(status: &hush_core::Status) -> serde_json::Value {
    let c = &status.high_risk_cost;
    json!({
        "mode": if status.high_risk { "high-risk" } else { "normal" },
        "isolation": status.isolation,
        "isolation_setting": status.isolation_setting,
        "high_risk_cost": {
            "up_bytes_per_day": c.up_bytes_per_day,
            "down_bytes_per_day": c.down_bytes_per_day,
            "send_latency_secs": c.send_latency_secs,
            "receive_latency_secs": c.receive_latency_secs,
        },
    })
}

/// The traffic mode and its cost in one line (the TUI's status bar says the same).
pub(crate) fn traffic_line(status: &hush_core::Status) -> String {
    let c = &status.high_risk_cost;
    let mb = |b: u64| b as f64 / 1e6;
    let cost = format!(
        "{:.1} MB/day up, {:.1} MB/day down, about {} s to send an envelope and {} s to receive",
        mb(c.up_bytes_per_day),
        mb(c.down_bytes_per_day),
        c.send_latency_secs,
        c.receive_latency_secs
    );
    if status.high_risk {
        format!("mode: high-risk ({cost})")
    } else {
        format!("mode: normal (high-risk would cost {cost})")
    }
}

/// Whether contacts are kept on connections of their own, in one line.
pub(crate) fn isolation_line(status: &hush_core::Status) -> &'static str {
    match (status.isolation, status.high_risk, status.isolation_setting) {
        (true, true, false) => {
            "isolation: on while high-risk mode is (set off for normal mode): a connection per contact and two-hour window"
        }
        (true, _, _) => {
            "isolation: on: a connection per contact and two-hour window, for fetches and for deposits"
        }
        (false, _, _) => {
            "isolation: off: one connection per relay watches every contact's mailboxes"
        }
    }
}

/// The names of the profiles that exist under `root`, sorted.
fn profile_names(root: &std::path::Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(root.join("profiles")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| Profile::new(root, name).is_ok_and(|p| p.exists()))
        .collect();
    names.sort();
    names
}

/// The profile, if exactly one exists under `root`.
fn only_profile(root: &std::path::Path) -> Option<Profile> {
    match profile_names(root).as_slice() {
        [one] => Profile::new(root, one).ok(),
        _ => None,
    }
}

// Without the embedded relay there is nothing to set from `root`.
#[cfg_attr(not(feature = "embedded-relay"), allow(unused_mut, unused_variables))]
fn engine_options(root: PathBuf) -> Options {
    let mut options = Options::default();
    #[cfg(feature = "embedded-relay")]
    {
        options.local_relay = Some(std::sync::Arc::new(crate::local_relay::EmbeddedRelay::new(
            root,
        )));
    }
    with_test_hooks(options)
}

/// Test hooks from the environment, only in builds with the `test-hooks` feature (the
/// end-to-end tests'): `HUSH_TEST_CRASH_AT` (`before-commit`, `before-ack`) aborts the
/// process there, `HUSH_CLOCK_OFFSET_SECS` shifts this process's clock (epoch rotation and
/// catch-up). A release build ignores both variables.
#[cfg(feature = "test-hooks")]
fn with_test_hooks(mut options: Options) -> Options {
    options.crash_at = std::env::var("HUSH_TEST_CRASH_AT")
        .ok()
        .and_then(|v| CrashPoint::parse(&v));
    options.clock_offset_secs = std::env::var("HUSH_CLOCK_OFFSET_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // `HUSH_TEST_DEPOSIT_MEAN_MS` / `HUSH_TEST_FETCH_MEAN_MS`: high-risk slots this often on
    // average (the real-process traffic check runs minutes, not hours).
    let ms = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
    };
    if let Some(d) = ms("HUSH_TEST_DEPOSIT_MEAN_MS") {
        options.traffic.deposit_mean = d;
    }
    if let Some(d) = ms("HUSH_TEST_FETCH_MEAN_MS") {
        options.traffic.fetch_mean = d;
    }
    options
}

#[cfg(not(feature = "test-hooks"))]
fn with_test_hooks(options: Options) -> Options {
    options
}

pub(crate) fn init_logging(profile: &Profile) {
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(profile.log_path())
    else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HUSH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,hush_core=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .try_init();
}

/// The passphrase from the resolver's non-interactive sources (see
/// [`hush_core::passphrase`]), else a prompt on the terminal (twice if `confirm`).
fn passphrase(profile: &Profile, confirm: bool) -> anyhow::Result<Passphrase> {
    if let Resolution::Found(p) = passphrase::resolve(profile)? {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::NoPassphrase(
            "set HUSH_PASSPHRASE or passphrase_command, or run in a terminal".into(),
        )
        .into());
    }
    let first = Passphrase::new(rpassword::prompt_password("Passphrase: ")?);
    if confirm {
        let again = Passphrase::new(rpassword::prompt_password("Passphrase again: ")?);
        if first != again {
            return Err(usage("the passphrases differ"));
        }
    }
    Ok(first)
}

struct Session {
    handle: Handle,
}

impl Session {
    async fn open(profile: &Profile, root: PathBuf) -> anyhow::Result<Self> {
        if !profile.exists() {
            return Err(Error::NoProfile.into());
        }
        let pass = passphrase(profile, false)?;
        let store = Store::open(profile, pass.as_bytes())?;
        init_logging(profile);
        let mut options = engine_options(root);
        options.configure(&profile.config()?);
        let (handle, _events) = hush_core::start(store, options).await?;
        Ok(Self { handle })
    }

    async fn close(self) {
        self.handle.shutdown().await;
    }
}

/// `relay set` on a profile no process holds: checks the relay (unless told not to) and
/// writes the setting straight into the store.
async fn set_relay_offline(
    profile: &Profile,
    address: &str,
    no_check: bool,
    json: bool,
) -> anyhow::Result<()> {
    if !profile.exists() {
        return Err(Error::NoProfile.into());
    }
    let pass = passphrase(profile, false)?;
    let store = Store::open(profile, pass.as_bytes())?;
    if !no_check {
        let parsed: hush_proto::RelayAddress = address.trim().parse().map_err(|_| {
            Error::InvalidArgument("not a relay address (hush://PIN@HOST:PORT)".into())
        })?;
        let config = profile.config()?;
        hush_core::check_relay_from(&parsed, config.network(), config.bind).await?;
    }
    store.set_relay(address)?;
    if json {
        println!("{}", json!({"relay": address.trim()}));
    } else {
        println!("new invites will use {}", address.trim());
    }
    Ok(())
}

fn qr(text: &str) -> anyhow::Result<String> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::L)
        .map_err(|e| anyhow!("QR code: {e}"))?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .build())
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let root = data_root();
    let profile = Profile::new(&root, cli.profile.as_deref().unwrap_or(DEFAULT_PROFILE))?;
    let json = cli.json;
    let Some(command) = cli.command else {
        if !std::io::stdout().is_terminal() {
            return Err(usage(
                "the terminal UI needs a terminal; see `hush --help` for the commands",
            ));
        }
        // A profile created under another name in the first-run screen is found again.
        let profile = match (&cli.profile, profile.exists()) {
            (None, false) => only_profile(&root).unwrap_or(profile),
            _ => profile,
        };
        crate::tui::run(profile, root.clone(), engine_options(root)).await?;
        return Ok(ExitCode::SUCCESS);
    };
    match command {
        Command::Init => {
            let pass = passphrase(&profile, true)?;
            drop(Store::create(&profile, pass.as_bytes())?);
            let warning = pass.is_short().then(|| {
                format!(
                    "the passphrase is shorter than {} characters: anyone who gets this device's files can guess it more easily",
                    passphrase::SHORT_PASSPHRASE_CHARS
                )
            });
            if json {
                let mut v = json!({"profile": profile.name(), "created": true});
                if let Some(w) = &warning {
                    v["warning"] = json!(w);
                }
                println!("{v}");
            } else {
                println!("created profile {:?}", profile.name());
                if let Some(w) = &warning {
                    eprintln!("hush: warning: {w}");
                }
            }
        }
        Command::Profiles => {
            let names = profile_names(&root);
            if json {
                let v: Vec<_> = names
                    .iter()
                    .map(|n| json!({"name": n, "default": n == DEFAULT_PROFILE}))
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else if names.is_empty() {
                println!("no profiles yet (hush init)");
            } else {
                for n in &names {
                    println!("{n}");
                }
            }
        }
        Command::Wipe { yes, force } => {
            if !profile.exists() {
                return Err(Error::NoProfile.into());
            }
            if !yes {
                if !std::io::stdin().is_terminal() {
                    return Err(usage("refusing to wipe without confirmation: pass --yes"));
                }
                eprint!(
                    "This destroys profile {:?}: its keys, contacts and messages, for good. Type the profile name to confirm: ",
                    profile.name()
                );
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                if line.trim() != profile.name() {
                    return Err(usage("not confirmed; nothing was wiped"));
                }
            }
            if force {
                Store::wipe(&profile)?;
            } else {
                Store::wipe_unused(&profile)?;
            }
            // The built-in relay serves this data root's profiles: with none left, what it
            // holds (its key, undelivered envelopes, deposit times) goes too.
            #[cfg(feature = "embedded-relay")]
            if profile_names(&root).is_empty() {
                crate::local_relay::remove_unused(&root)?;
            }
            if json {
                println!("{}", json!({"profile": profile.name(), "wiped": true}));
            } else {
                println!("wiped profile {:?}", profile.name());
            }
        }
        other => {
            // A hush process holding the profile (the terminal UI, `recv --wait`) runs the
            // command for us; asked first, so that no passphrase is needed then.
            if let Some(served) = crate::control::Client::connect(&profile).await {
                return served_elsewhere(served, &other).await;
            }
            // Setting the relay needs no engine: starting one on a profile without a relay
            // would serve (and create) the built-in relay just to be told not to.
            if let Command::Relay {
                action: RelayAction::Set { address, no_check },
            } = &other
            {
                set_relay_offline(&profile, address, *no_check, json).await?;
                return Ok(ExitCode::SUCCESS);
            }
            let s = Session::open(&profile, root).await?;
            // A process that stays a while serves the other commands on its profile.
            let server = match other {
                Command::Recv { wait } if wait > 0 => {
                    crate::control::Server::start(&profile, s.handle.clone())
                }
                _ => None,
            };
            let mut io = Io {
                out: &mut std::io::stdout(),
                err: &mut std::io::stderr(),
                stdin: None,
            };
            let result = command_with_engine(other, &s.handle, json, &mut io).await;
            drop(server);
            s.close().await;
            result?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `command` in the process that holds the profile and prints what it answers: the
/// same output, errors and exit code as if it had run here.
async fn served_elsewhere(
    served: crate::control::Client,
    command: &Command,
) -> anyhow::Result<ExitCode> {
    // Clap parsed every argument as UTF-8 already; they go as typed and are parsed there
    // again, by the same code.
    let args = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| usage("arguments must be UTF-8"))?;
    let stdin = match command {
        Command::Send { text: None, .. } => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            Some(s)
        }
        _ => None,
    };
    let reply = served.ask(&crate::control::Request { args, stdin }).await?;
    std::io::stdout().write_all(reply.stdout.as_bytes())?;
    std::io::stderr().write_all(reply.stderr.as_bytes())?;
    Ok(ExitCode::from(reply.exit))
}

/// Runs a command line another process of this user sent over the control socket, parsed
/// as [`main`] parses its own, on this process's engine (`served` is its profile).
pub(crate) async fn run_remote(
    request: crate::control::Request,
    served: &Profile,
    h: &Handle,
) -> crate::control::Reply {
    let crate::control::Request { args, stdin } = request;
    let json = args.iter().any(|a| a == "--json");
    let refuse = |kind: Kind, message: &str| crate::control::Reply {
        stdout: String::new(),
        stderr: failure::render(kind, message, json),
        exit: kind.exit_code(),
    };
    let cli = match Cli::try_parse_from(std::iter::once("hush".to_string()).chain(args)) {
        Ok(c) => c,
        Err(e) => return refuse(Kind::Usage, &e.kind().to_string()),
    };
    if cli.profile.as_deref().unwrap_or(DEFAULT_PROFILE) != served.name() {
        return refuse(Kind::Usage, "this process serves another profile");
    }
    let command = match cli.command {
        None | Some(Command::Init | Command::Wipe { .. } | Command::Profiles) => {
            return refuse(
                Kind::Usage,
                "the terminal UI, init, wipe and profiles do not run in another hush process",
            );
        }
        Some(c) => c,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut io = Io {
        out: &mut out,
        err: &mut err,
        // Never this process's own input (a terminal UI's): what the caller read, or nothing.
        stdin: Some(stdin.unwrap_or_default()),
    };
    let exit = match command_with_engine(command, h, cli.json, &mut io).await {
        Ok(()) => 0,
        Err(e) => {
            let kind = Kind::of(&e);
            err.extend_from_slice(failure::render(kind, &e.to_string(), cli.json).as_bytes());
            kind.exit_code()
        }
    };
    crate::control::Reply {
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
        exit,
    }
}

/// Where a command's output goes, and the text `send` without TEXT sends.
struct Io<'a> {
    out: &'a mut (dyn Write + Send),
    err: &'a mut (dyn Write + Send),
    /// `None`: read this process's standard input.
    stdin: Option<String>,
}

async fn command_with_engine(
    command: Command,
    h: &Handle,
    json: bool,
    io: &mut Io<'_>,
) -> anyhow::Result<()> {
    match command {
        Command::Relay {
            action: RelayAction::Set { address, no_check },
        } => {
            if !no_check {
                let parsed: hush_proto::RelayAddress = address.trim().parse().map_err(|_| {
                    Error::InvalidArgument("not a relay address (hush://PIN@HOST:PORT)".into())
                })?;
                hush_core::check_relay_from(&parsed, h.network(), h.bind()).await?;
            }
            h.set_relay(&address).await?;
            if json {
                writeln!(io.out, "{}", json!({"relay": address.trim()}))?;
            } else {
                writeln!(io.out, "new invites will use {}", address.trim())?;
            }
        }
        Command::Invite { name, stamp_bits } => {
            let link = h
                .create_invite_with(InviteKind::OneTime, name, stamp_bits)
                .await?;
            print_link(&link, "one-time", json, io)?;
        }
        Command::Address { stamp_bits } => {
            let link = h
                .create_invite_with(InviteKind::ContactAddress, None, stamp_bits)
                .await?;
            print_link(&link, "address", json, io)?;
        }
        Command::Relay {
            action: RelayAction::Show,
        } => {
            let status = h.status().await?;
            let Some(address) = status.home_relay else {
                return Err(Error::NoRelay.into());
            };
            let parsed: hush_proto::RelayAddress = address
                .parse()
                .map_err(|_| Error::StoreCorrupted("configured relay address"))?;
            let check = hush_core::check_relay_from(&parsed, h.network(), h.bind()).await;
            let state = match &check {
                Ok(()) => "reachable",
                Err(Error::CertificateMismatch) => "certificate_mismatch",
                Err(Error::RelayVersionMismatch) => "version_mismatch",
                Err(Error::ProxyFailed) => "proxy_failed",
                Err(_) => "unreachable",
            };
            if json {
                writeln!(
                    io.out,
                    "{}",
                    json!({"relay": address, "built_in": status.home_relay_local, "state": state,
                           "private_route_waiting": status.private_route})
                )?;
            } else {
                writeln!(io.out, "{address}")?;
                if status.home_relay_local {
                    writeln!(
                        io.out,
                        "the built-in relay, served on loopback by a running hush"
                    )?;
                }
                match check {
                    Ok(()) => writeln!(io.out, "reachable")?,
                    Err(e) => writeln!(io.out, "{e}")?,
                }
            }
        }
        Command::Invites { action: None } => {
            let list = h.invites().await?;
            let kind = |k: InviteKind| match k {
                InviteKind::OneTime => "one-time",
                InviteKind::ContactAddress => "address",
            };
            if json {
                let v: Vec<_> = list
                    .iter()
                    .map(|i| {
                        json!({"id": i.id, "kind": kind(i.kind), "name": i.name, "created": i.created,
                               "expires": i.expires(), "uses": i.uses})
                    })
                    .collect();
                writeln!(io.out, "{}", serde_json::Value::Array(v))?;
            } else if list.is_empty() {
                writeln!(io.out, "no invites answered (hush invite, hush address)")?;
            } else {
                for i in &list {
                    let name = i.name.as_deref().map(terminal_safe).unwrap_or_default();
                    let expires = i
                        .expires()
                        .map(|t| format!(", expires {}", utc(t)))
                        .unwrap_or_default();
                    writeln!(
                        io.out,
                        "{}  {}  {}  made {}, used {}{}",
                        i.id,
                        kind(i.kind),
                        if name.is_empty() { "-" } else { &name },
                        utc(i.created),
                        i.uses,
                        expires
                    )?;
                }
            }
        }
        Command::Invites {
            action: Some(InvitesAction::Revoke { id }),
        } => {
            h.revoke_invite(id).await?;
            if json {
                writeln!(io.out, "{}", json!({"revoked": id}))?;
            } else {
                writeln!(
                    io.out,
                    "invite {id} revoked: its link makes no contact any more"
                )?;
            }
        }
        Command::Accept { link, name } => {
            h.accept(&link, &name).await?;
            let _ = tokio::time::timeout(Duration::from_secs(20), h.flush()).await;
            // This contact's own envelopes decide, not other relays' backlogs.
            let left = h.outbox_for(&name).await?;
            if json {
                writeln!(
                    io.out,
                    "{}",
                    json!({"contact": name, "handshake": if left == 0 {"on-relay"} else {"queued"}})
                )?;
            } else if left == 0 {
                // What the inviter does with it cannot be known here: a one-time link that
                // someone else used already is never answered.
                writeln!(
                    io.out,
                    "added {name:?}; the handshake is on the relay. You can write now; the contact shows \"waiting for reply\" until the inviter answers (a one-time link someone else already used is never answered)"
                )?;
            } else {
                // Why it waits: one status read names the first reason that applies.
                let status = h.status().await?;
                if let Some(why) = status.private_route {
                    writeln!(
                        io.out,
                        "added {name:?}; private routing through your relay failed ({why}), and nothing is sent around it (routing = \"private\" in config.toml): the handshake is queued and will be sent by the next hush command"
                    )?;
                } else if status.high_risk {
                    writeln!(
                        io.out,
                        "added {name:?}; the handshake waits for a high-risk slot, sent while hush runs (the terminal UI, or hush recv --wait)"
                    )?;
                } else if status.proxy_failed > 0 {
                    writeln!(
                        io.out,
                        "added {name:?}; the SOCKS5 proxy (socks5 in config.toml) is unreachable or refused the connection, and nothing is ever sent around it: the handshake is queued and will be sent by the next hush command"
                    )?;
                } else if status.certificate_mismatch > 0 {
                    writeln!(
                        io.out,
                        "added {name:?}; the inviter's relay answered with a certificate that does not match the link's pin (interception, or the relay's key changed): the handshake is queued and will be retried by the next hush command"
                    )?;
                } else {
                    writeln!(
                        io.out,
                        "added {name:?}; the relay is unreachable: the handshake is queued and will be sent by the next hush command"
                    )?;
                }
            }
        }
        Command::Contacts => {
            let contacts = h.contacts().await?;
            if json {
                let v: Vec<_> = contacts
                    .iter()
                    .map(|c| {
                        json!({"name": c.name, "verified": c.verified, "disappear_secs": c.disappear_secs,
                               "unread": c.unread, "pending": c.pending})
                    })
                    .collect();
                writeln!(io.out, "{}", serde_json::Value::Array(v))?;
            } else if contacts.is_empty() {
                writeln!(io.out, "no contacts yet (hush invite, hush accept)")?;
            } else {
                for c in contacts {
                    let mut marks = Vec::new();
                    if c.verified {
                        marks.push("verified".to_string());
                    }
                    if let Some(d) = c.disappear_secs {
                        marks.push(format!(
                            "disappearing {}",
                            humantime::format_duration(Duration::from_secs(d))
                        ));
                    }
                    if c.pending {
                        marks.push("waiting for reply".into());
                    }
                    if c.unread > 0 {
                        marks.push(format!("{} unread", c.unread));
                    }
                    writeln!(
                        io.out,
                        "{}{}",
                        terminal_safe(&c.name),
                        if marks.is_empty() {
                            String::new()
                        } else {
                            format!("  ({})", marks.join(", "))
                        }
                    )?;
                }
            }
        }
        Command::Send { name, text } => {
            let text = match text.or_else(|| io.stdin.take()) {
                Some(t) => t,
                None => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s)?;
                    s
                }
            };
            if text.is_empty() {
                return Err(usage("nothing to send"));
            }
            let id = h.send(&name, &text).await?;
            if let Ok(flushed) = tokio::time::timeout(Duration::from_secs(20), h.flush()).await {
                flushed?;
            }
            // This message's own state: other, older entries may still wait in the outbox
            // (a retry not due yet) while this one reached the relay.
            let state = h
                .messages(&name, 64)
                .await?
                .into_iter()
                .find(|m| m.id == id)
                .map_or(DeliveryState::Queued, |m| m.state);
            // Why a queued message waits: for its high-risk slot (not a failure), or for
            // private routing.
            let (high_risk, waiting) = if state == DeliveryState::Queued {
                let status = h.status().await?;
                let why = if status.high_risk {
                    Some("high_risk_slot".to_string())
                } else {
                    status.private_route
                };
                (status.high_risk, why)
            } else {
                (false, None)
            };
            if json {
                let mut v = json!({"id": id, "contact": name, "state": state.as_str()});
                if let Some(why) = &waiting {
                    v["waiting"] = json!(why);
                }
                writeln!(io.out, "{v}")?;
            } else if state != DeliveryState::Queued {
                writeln!(io.out, "sent")?;
            } else if high_risk {
                writeln!(
                    io.out,
                    "waiting: high-risk mode sends it at one of its random slots, while hush runs (the terminal UI, or hush recv --wait)"
                )?;
            } else if let Some(why) = waiting {
                writeln!(
                    io.out,
                    "queued: private routing through your relay failed ({why}), and nothing is sent around it (routing = \"private\" in config.toml); it will be sent by the next hush command"
                )?;
            } else if h.status().await?.proxy_failed > 0 {
                writeln!(
                    io.out,
                    "queued: the SOCKS5 proxy (socks5 in config.toml) is unreachable or refused the connection, and nothing is ever sent around it; it will be sent by the next hush command"
                )?;
            } else if h.status().await?.certificate_mismatch > 0 {
                writeln!(
                    io.out,
                    "queued: the relay's certificate does not match its address's pin (interception, or the relay's key changed); it will be retried by the next hush command"
                )?;
            } else {
                writeln!(
                    io.out,
                    "queued: the relay is unreachable; it will be sent by the next hush command"
                )?;
            }
        }
        Command::SendFile {
            name,
            path,
            resume,
            keep_metadata,
        } => {
            let target = match (resume, name, path) {
                (Some(id), _, _) => crate::files_cli::SendTarget::Resume(id),
                (None, Some(contact), Some(path)) => crate::files_cli::SendTarget::New {
                    contact,
                    path,
                    keep_metadata,
                },
                _ => return Err(usage("send-file needs CONTACT PATH, or --resume ID")),
            };
            crate::files_cli::send_file(h, target, json, io.out, io.err).await?;
        }
        Command::Files { name } => crate::files_cli::list(h, name, json, io.out).await?,
        Command::FileLimit { size } => crate::files_cli::limit(h, size, json, io.out).await?,
        Command::GetFile { id, dir, max_size } => {
            crate::files_cli::get_file(h, id, &dir, max_size, json, io.out, io.err).await?;
        }
        Command::Recv { wait } => {
            let ok = h.sync().await?;
            if wait > 0 {
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            // What arrived is taken first: a short disappearing timer must not run out while
            // the receipts wait for their pacing. Receipts and handshake replies produced
            // while receiving then go out before exit.
            let msgs = h.take_unshown().await?;
            let _ = tokio::time::timeout(Duration::from_secs(10), h.flush()).await;
            if json {
                let v: Vec<_> = msgs
                    .iter()
                    .map(|m| json!({"contact": m.contact, "text": m.body, "sent_at": m.sent_at, "expires_at": m.expires_at}))
                    .collect();
                writeln!(io.out, "{}", serde_json::Value::Array(v))?;
            } else {
                for m in &msgs {
                    writeln!(
                        io.out,
                        "{}: {}",
                        terminal_safe(&m.contact),
                        terminal_safe(&m.body)
                    )?;
                }
            }
            if !ok {
                writeln!(
                    io.err,
                    "hush: warning: a relay could not be reached; some messages may be missing"
                )?;
            }
        }
        Command::History { name, limit } => {
            let msgs = h.messages(&name, limit).await?;
            if json {
                let v: Vec<_> = msgs
                    .iter()
                    .map(|m| json!({"id": m.id, "outgoing": m.outgoing, "text": m.body, "sent_at": m.sent_at,
                                    "state": m.state.as_str(), "expires_at": m.expires_at}))
                    .collect();
                writeln!(io.out, "{}", serde_json::Value::Array(v))?;
            } else {
                let name = terminal_safe(&name);
                for m in &msgs {
                    let who = if m.outgoing { "me" } else { name.as_str() };
                    let state = if m.outgoing {
                        format!("  [{}]", m.state.as_str())
                    } else {
                        String::new()
                    };
                    writeln!(io.out, "{who}: {}{state}", terminal_safe(&m.body))?;
                }
            }
        }
        Command::Verify { name, mark, unmark } => {
            if mark || unmark {
                h.set_verified(&name, mark).await?;
            }
            let s = h.safety(&name).await?;
            if json {
                writeln!(
                    io.out,
                    "{}",
                    json!({"contact": name, "safety_number": s.digits, "qr": s.qr, "verified": s.verified})
                )?;
            } else {
                writeln!(io.out, "{}", qr(&s.qr)?)?;
                writeln!(
                    io.out,
                    "safety number with {}:\n  {}",
                    terminal_safe(&name),
                    s.digits
                )?;
                writeln!(
                    io.out,
                    "{}",
                    if s.verified {
                        "marked verified"
                    } else {
                        "not verified: compare in person, then run with --mark"
                    }
                )?;
            }
        }
        Command::Disappear { name, duration } => {
            let secs = crate::timer::parse_timer(&duration).map_err(usage)?;
            h.set_disappear(&name, secs).await?;
            if json {
                writeln!(
                    io.out,
                    "{}",
                    json!({"contact": name, "disappear_secs": secs})
                )?;
            } else {
                match secs {
                    Some(s) => writeln!(
                        io.out,
                        "messages with {} now disappear after {}",
                        terminal_safe(&name),
                        humantime::format_duration(Duration::from_secs(s))
                    )?,
                    None => writeln!(
                        io.out,
                        "disappearing messages off for {}",
                        terminal_safe(&name)
                    )?,
                }
            }
        }
        Command::Rename { old, new } => {
            h.rename(&old, &new).await?;
            if json {
                writeln!(io.out, "{}", json!({"old": old, "new": new}))?;
            } else {
                writeln!(io.out, "renamed")?;
            }
        }
        Command::HighRisk { setting } => {
            let on = match setting.as_str() {
                "on" => true,
                "off" => false,
                _ => return Err(usage("high-risk takes \"on\" or \"off\"")),
            };
            h.set_high_risk(on).await?;
            let status = h.status().await?;
            if json {
                writeln!(io.out, "{}", traffic_json(&status))?;
            } else {
                writeln!(io.out, "{}", traffic_line(&status))?;
            }
        }
        Command::Isolation { setting } => {
            let on = match setting.as_str() {
                "on" => true,
                "off" => false,
                _ => return Err(usage("isolation takes \"on\" or \"off\"")),
            };
            h.set_isolation(on).await?;
            let status = h.status().await?;
            if json {
                writeln!(io.out, "{}", traffic_json(&status))?;
            } else {
                writeln!(io.out, "{}", isolation_line(&status))?;
            }
        }
        Command::Status => {
            let status = h.status().await?;
            if json {
                let mut v = traffic_json(&status);
                v["outbox"] = json!(status.outbox);
                v["relays"] = json!(status.relays);
                v["relays_up"] = json!(status.relays_up);
                writeln!(io.out, "{v}")?;
            } else {
                writeln!(io.out, "{}", traffic_line(&status))?;
                writeln!(io.out, "{}", isolation_line(&status))?;
                if status.outbox > 0 {
                    let why = if status.high_risk {
                        "waiting for their slots"
                    } else {
                        "waiting for a relay"
                    };
                    writeln!(io.out, "outbox: {} envelopes {why}", status.outbox)?;
                } else {
                    writeln!(io.out, "outbox: empty")?;
                }
                writeln!(
                    io.out,
                    "relays: {} of {} connected",
                    status.relays_up, status.relays
                )?;
            }
        }
        Command::Receipts { name, setting } => {
            let on = match setting.as_str() {
                "on" => true,
                "off" => false,
                _ => return Err(usage("receipts take \"on\" or \"off\"")),
            };
            h.set_receipts(&name, on).await?;
            if json {
                writeln!(io.out, "{}", json!({"contact": name, "receipts": on}))?;
            } else {
                writeln!(io.out, "receipts {}", if on { "on" } else { "off" })?;
            }
        }
        Command::Delete { name } => {
            h.delete_contact(&name).await?;
            if json {
                writeln!(io.out, "{}", json!({"contact": name, "deleted": true}))?;
            } else {
                writeln!(io.out, "deleted {} and its history", terminal_safe(&name))?;
            }
        }
        Command::Block { name, undo } => {
            h.set_blocked(&name, !undo).await?;
            if json {
                writeln!(io.out, "{}", json!({"contact": name, "blocked": !undo}))?;
            } else if undo {
                writeln!(io.out, "unblocked {}", terminal_safe(&name))?;
            } else {
                writeln!(
                    io.out,
                    "blocked {}: what it sends is dropped unread",
                    terminal_safe(&name)
                )?;
            }
        }
        Command::Init | Command::Wipe { .. } | Command::Profiles => {}
    }
    Ok(())
}

/// Unix seconds as a UTC time to the minute.
fn utc(secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(secs);
    let mut s = humantime::format_rfc3339_seconds(t).to_string();
    s.truncate(16);
    format!("{} UTC", s.replace('T', " "))
}

fn print_link(link: &str, kind: &str, json: bool, io: &mut Io<'_>) -> anyhow::Result<()> {
    if json {
        writeln!(io.out, "{}", json!({"kind": kind, "link": link}))?;
    } else {
        writeln!(io.out, "{}", qr(link)?)?;
        writeln!(io.out, "{link}")?;
    }
    Ok(())
}
