//! The control socket: CLI commands on a profile another hush process holds.
//!
//! One process at a time opens a profile (its lock). A process that keeps it open with a
//! running engine (the terminal UI, `hush recv --wait`) listens on `control.sock` in the
//! profile's directory; a CLI command on that profile connects there instead of failing
//! with "in use", sends its arguments (and the text of `send` read from its standard input),
//! and prints what comes back: the same output, error and exit code as if it had run
//! itself, produced by the same code (`cli::run_remote`).
//!
//! Access: the socket is made inside the profile's directory (0700), set to 0600, and each
//! side checks the other's user id; anyone who can connect is the user who can read the
//! store files anyway. No passphrase travels: the holder has the store open. Bounds: one
//! request per connection, of at most [`MAX_REQUEST`] bytes, read within [`READ_TIMEOUT`],
//! at most [`MAX_CONNECTIONS`] at once. This module never logs a request or a reply (they
//! hold names and message text).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hush_core::{Error, Handle, Profile};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

/// The socket's file name in the profile's directory.
const SOCKET_NAME: &str = "control.sock";
/// The largest request accepted (arguments and a message read from standard input).
const MAX_REQUEST: u64 = 1 << 20;
/// The largest reply read (a long history).
const MAX_REPLY: u64 = 64 << 20;
/// How long a connection may take to send its request, and the holder to take a reply.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are closed unanswered.
const MAX_CONNECTIONS: usize = 4;

/// A command line for the holder: the arguments as typed (after the program name).
#[derive(Serialize, Deserialize)]
pub(crate) struct Request {
    pub args: Vec<String>,
    /// What `send` without TEXT read from the caller's standard input.
    pub stdin: Option<String>,
}

/// What the command printed, and its exit code.
#[derive(Serialize, Deserialize)]
pub(crate) struct Reply {
    pub stdout: String,
    pub stderr: String,
    pub exit: u8,
}

fn socket_path(profile: &Profile) -> PathBuf {
    profile.dir().join(SOCKET_NAME)
}

/// Whether the process at the other end runs as this process's user.
fn same_user(stream: &UnixStream) -> bool {
    stream
        .peer_cred()
        .is_ok_and(|c| c.uid() == rustix::process::getuid().as_raw())
}

/// Serves the control socket of a profile this process holds, until dropped (which removes
/// the socket).
pub(crate) struct Server {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
    /// Once stopped, the path may be another holder's socket: never removed again.
    stopped: AtomicBool,
}

impl Server {
    /// Starts serving `profile` (which this process holds) with `handle`; `None`, with a
    /// log line, if the socket cannot be made (the process goes on without it).
    pub fn start(profile: &Profile, handle: Handle) -> Option<Self> {
        let path = socket_path(profile);
        let listener = match bind(&path) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("control socket not served: {e}");
                return None;
            }
        };
        let task = tokio::spawn(accept_loop(listener, profile.clone(), handle));
        Some(Self {
            path,
            task,
            stopped: AtomicBool::new(false),
        })
    }

    /// Stops serving and removes the socket (again on drop). Called before the engine
    /// stops and the profile's lock is released, so the socket never outlives the holder.
    pub fn stop(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Makes the socket at `path`, readable and writable by this user only. A socket file left
/// by a process that died is replaced; one that answers is not.
fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.symlink_metadata().is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another process answers on the profile's control socket",
            ));
        }
        std::fs::remove_file(path)?;
    }
    // The directory is the owner's only (0700), so the moment between bind and chmod
    // exposes nothing.
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

async fn accept_loop(listener: UnixListener, profile: Profile, handle: Handle) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors, most likely: wait instead of spinning.
                tracing::warn!("control socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        if !same_user(&stream) {
            continue;
        }
        let (profile, handle) = (profile.clone(), handle.clone());
        tokio::spawn(async move {
            let _slot = slot;
            serve_one(stream, &profile, &handle).await;
        });
    }
}

/// Reads one request, runs it, answers, closes.
async fn serve_one(mut stream: UnixStream, profile: &Profile, handle: &Handle) {
    let mut buf = Vec::new();
    let mut limited = (&mut stream).take(MAX_REQUEST + 1);
    match tokio::time::timeout(READ_TIMEOUT, limited.read_to_end(&mut buf)).await {
        Ok(Ok(n)) if n as u64 <= MAX_REQUEST => {}
        _ => return,
    }
    let Ok(request) = serde_json::from_slice::<Request>(&buf) else {
        return;
    };
    let reply = crate::cli::run_remote(request, profile, handle).await;
    let Ok(bytes) = serde_json::to_vec(&reply) else {
        return;
    };
    let write = async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(READ_TIMEOUT, write).await;
}

/// A connection to the process holding a profile.
pub(crate) struct Client(UnixStream);

impl Client {
    /// Connects to the holder of `profile`, if one serves it (as this user).
    pub async fn connect(profile: &Profile) -> Option<Self> {
        let path = socket_path(profile);
        if path.symlink_metadata().is_err() {
            return None;
        }
        let stream = tokio::time::timeout(READ_TIMEOUT, UnixStream::connect(&path))
            .await
            .ok()?
            .ok()?;
        same_user(&stream).then_some(Self(stream))
    }

    /// Sends `request` and waits for the reply (as long as the command takes: `recv --wait`
    /// waits there). A holder that goes away meanwhile is reported as the profile in use.
    pub async fn ask(self, request: &Request) -> anyhow::Result<Reply> {
        let Self(mut stream) = self;
        let bytes = serde_json::to_vec(request)?;
        if bytes.len() as u64 > MAX_REQUEST {
            return Err(crate::failure::usage(
                "too long to pass to the hush process holding the profile",
            ));
        }
        let exchange = async {
            stream.write_all(&bytes).await?;
            stream.shutdown().await?;
            let mut buf = Vec::new();
            (&mut stream).take(MAX_REPLY).read_to_end(&mut buf).await?;
            std::io::Result::Ok(buf)
        };
        let buf = exchange.await.map_err(|_| Error::ProfileBusy)?;
        Ok(serde_json::from_slice(&buf).map_err(|_| Error::ProfileBusy)?)
    }
}
