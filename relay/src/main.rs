//! The `hush-relay` binary: `init`, `run` and `check`.
//!
//! Owns: the command line, logging setup (the relay's own messages only; dependencies are
//! silenced because their messages can carry peer addresses), signal handling, and turning
//! errors into exit codes. Must never print the private key or any user data.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use hush_relay::config::{Config, DEFAULT_METRICS_LISTEN, LoopbackAddr, template};
use hush_relay::server::Relay;
use hush_relay::tls::Identity;
use tokio::signal::unix::{SignalKind, signal};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "hush-relay", version, about = "hush relay server")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a relay directory: Ed25519 key, self-signed certificate, commented config.
    /// Prints the relay address to give to clients.
    Init {
        /// Directory to create (must not contain a config yet).
        #[arg(long)]
        dir: PathBuf,
        /// host:port clients will use (a DNS name or IP, and the UDP port).
        #[arg(long)]
        public_address: String,
        /// UDP address to bind [default: 0.0.0.0 and the port of --public-address].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Loopback TCP address of /health and /metrics (another one for each relay on the
        /// machine).
        #[arg(long, default_value = DEFAULT_METRICS_LISTEN)]
        metrics_listen: LoopbackAddr,
    },
    /// Run the relay until SIGTERM or SIGINT.
    Run {
        /// Path to config.toml.
        #[arg(long, env = "HUSH_RELAY_CONFIG")]
        config: PathBuf,
    },
    /// Validate the configuration, certificate and key, that the ports and the data
    /// directory are usable, and reach the JetStream cluster if it is the backend; print the
    /// relay address.
    Check {
        /// Path to config.toml.
        #[arg(long, env = "HUSH_RELAY_CONFIG")]
        config: PathBuf,
        /// Check only the files, not the ports and the data directory (for a config whose
        /// relay is running).
        #[arg(long)]
        config_only: bool,
    },
}

fn write_new(path: &Path, contents: &str, private: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

fn address(identity: &Identity, public: &str) -> anyhow::Result<hush_proto::RelayAddress> {
    let text = format!("hush://{}@{public}", identity.pin()?);
    text.parse()
        .with_context(|| "public_address must be host:port (IPv6 in brackets)")
}

fn init(
    dir: &Path,
    public_address: &str,
    listen: Option<SocketAddr>,
    metrics_listen: LoopbackAddr,
) -> anyhow::Result<()> {
    let host = public_address
        .rsplit_once(':')
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or(public_address);
    let identity = Identity::generate(host)?;
    let addr = address(&identity, public_address)?;
    // Clients connect to the public port; without a port mapping in between, that is the
    // port to bind.
    let listen = listen.unwrap_or(SocketAddr::from(([0, 0, 0, 0], addr.port)));
    let config = dir.join("config.toml");
    if config.exists() {
        bail!("{} already exists; refusing to overwrite", config.display());
    }
    std::fs::create_dir_all(dir.join("data"))
        .with_context(|| format!("creating {}", dir.display()))?;
    write_new(&dir.join("key.pem"), &identity.key_pem(), true)?;
    write_new(&dir.join("cert.pem"), &identity.cert_pem(), false)?;
    write_new(
        &config,
        &template(listen, public_address, metrics_listen),
        false,
    )?;
    println!("created {}", dir.display());
    println!("relay address: {addr}");
    println!(
        "start it with: hush-relay run --config {}",
        config.display()
    );
    Ok(())
}

fn load(config: &Path) -> anyhow::Result<(Config, Identity)> {
    let cfg = Config::load(config)?;
    let identity = Identity::load(&cfg.cert, &cfg.key)?;
    Ok((cfg, identity))
}

fn init_logging(cfg: &Config) {
    let filter =
        tracing_subscriber::EnvFilter::new(format!("off,hush_relay={}", cfg.log.level.directive()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
}

async fn run(config: &Path) -> anyhow::Result<()> {
    let (cfg, identity) = load(config)?;
    // The same checks as `check`, so that a failure names the address or path at fault.
    cfg.check_resources()?;
    init_logging(&cfg);
    tracing::info!(version = %env!("CARGO_PKG_VERSION"), "hush-relay starting");
    // Installed before the relay starts, so that no signal in between takes its default
    // action (for SIGHUP: terminate at once, without a word in the log).
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let relay = Relay::start(&cfg, &identity).await?;
    // The relay address is not logged: `check` prints it, and logs stay free of addresses.
    let trigger = relay.shutdown_trigger();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
                // Nothing is reloaded: every setting shapes state built at startup (sockets,
                // store, limits), and a half-applied reload would be worse than none.
                _ = hup.recv() => {
                    tracing::warn!("SIGHUP ignored: restart to reload the configuration");
                    continue;
                }
            }
            break;
        }
        let _ = trigger.send(true);
    });
    relay.wait().await?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each once, without a backtrace. `{:#}` would print
/// an I/O cause twice: the relay's errors already end their message with their source.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Init {
            dir,
            public_address,
            listen,
            metrics_listen,
        } => init(&dir, &public_address, listen, metrics_listen),
        Cmd::Check {
            config,
            config_only,
        } => {
            let (cfg, identity) = load(&config)?;
            if !config_only {
                cfg.check_resources()?;
            }
            #[cfg(feature = "jetstream")]
            if let (hush_relay::config::Backend::Jetstream, Some(js)) =
                (cfg.storage.backend, &cfg.jetstream)
            {
                let summary = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .context("starting the async runtime")?
                    .block_on(hush_relay::store::jetstream::check(js, &cfg.limits))?;
                println!("{summary}");
            }
            println!("{}: ok", config.display());
            match &cfg.public_address {
                Some(p) => println!("relay address: {}", address(&identity, p)?),
                None => println!("relay pin: {}", identity.pin()?),
            }
            Ok(())
        }
        Cmd::Run { config } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?
            .block_on(run(&config)),
    }
}
