//! Moving a file's chunks between the disk and a relay: the I/O around [`Transfer`].
//!
//! Owns: one relay connection per transfer, of its own (never the messaging connection;
//! through a SOCKS5 proxy with a username drawn for this transfer, so Tor gives it its own
//! circuit), reading and sealing chunks of the source, opening and writing chunks of the
//! destination at their offsets, retries, the digest check and the final rename, and the
//! deletion of a received file's chunks. Progress goes to the engine (which persists it)
//! through the [`Handle`]; a crash at any point resumes from what was persisted.
//! With private routing (the default) every chunk request to a relay other than the
//! profile's own goes through the own relay, sealed to the chunks' relay
//! (docs/PROTOCOL.md II.4.4), on a connection of the transfer's own; it never falls back to
//! a direct connection: a failure there ends the run with its reason (a progress event says
//! `waiting`), and the transfer resumes when asked again. In high-risk mode chunk requests
//! always go that way, one at a time, each started after a random exponential gap
//! ([`CHUNK_GAP_MEAN`]), so a transfer is no burst.
//! Must never hold more than [`WINDOW`] chunks in memory, never write outside the chosen
//! directory (every path is `dir` joined with one [`safe_name`] component), and never leave
//! a file under its final name whose digest did not match.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hush_crypto::file::CHUNK_PAYLOAD;
use hush_proto::forward::{Destination, VerifiedKey};
use hush_proto::{ChunkId, ChunkSecret, ErrorCode, RelayAddress};
use hush_transport::{RelayClient, Route, relay_error};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use super::offer::Source;
use super::{FileError, Transfer, WINDOW, safe_name};
use crate::api::{FileCommand, Handle, Response};
use crate::error::{Error, Result};
use crate::profile::{Network, Routing};
use crate::store::{FileInfo, FileState};

/// Where a transfer is, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// File id.
    pub id: i64,
    /// Chunks done.
    pub done: u32,
    /// Chunks in all.
    pub total: u32,
    /// File bytes done (approximately: whole chunks).
    pub bytes: u64,
    /// File size.
    pub size: u64,
    /// The transfer stopped and waits for this reason (a stable name such as
    /// `own_relay_unreachable`, `forward_key_refused`, `forward_unreachable`: private
    /// routing failed and nothing was sent directly); `None` while it runs.
    pub waiting: Option<&'static str>,
}

/// Transport failures in a row before a transfer gives up for now (it resumes later).
const MAX_FAILURES: u32 = 12;
/// High-risk mode: the mean of the random exponential gap before each chunk request. Two
/// seconds is about what one 256 KiB chunk takes on a 1 Mbit/s link (a slow Tor circuit),
/// so a paced transfer looks like a slow one rather than a burst; it costs a 50 MB file (191
/// chunks) about 6.4 minutes of gaps, and its deletion as long again (SECURITY.md).
pub const CHUNK_GAP_MEAN: Duration = Duration::from_secs(2);
/// Chunks written between two syncs of the partial file and persisted progress.
const PERSIST_EVERY: u32 = 8;

async fn file_info(h: &Handle, id: i64) -> Result<FileInfo> {
    match h.file(FileCommand::Get { id }).await? {
        Response::File(f) => Ok(*f),
        _ => Err(Error::UnexpectedResponse("File")),
    }
}

fn route(network: Network) -> Result<Route> {
    Ok(match network {
        Network::Quic => Route::Quic,
        Network::Tcp => Route::Tcp,
        Network::Socks5(proxy) => {
            let mut token = [0u8; 16];
            crate::store::os_random(&mut token)?;
            Route::Socks5(hush_transport::Socks5 {
                proxy,
                username: hex::encode(token),
            })
        }
    })
}

/// How this profile's chunk requests for one relay travel.
struct Plan {
    route: Route,
    /// The local address to connect from (the profile's `bind`).
    bind: Option<std::net::IpAddr>,
    /// The own relay, when the requests go through it (private routing to another relay).
    via: Option<RelayAddress>,
    /// High-risk mode: one request at a time, after random gaps.
    pace: Option<ChaCha20Rng>,
}

impl Plan {
    /// The plan for chunks held by `relay`: through the own relay under private routing
    /// (always in high-risk mode) unless `relay` is the own relay (by pin).
    async fn for_relay(h: &Handle, relay: &RelayAddress) -> Result<Self> {
        let status = h.status().await?;
        let own = status
            .home_relay
            .as_deref()
            .and_then(|a| a.parse::<RelayAddress>().ok());
        let via = via(status.high_risk, h.routing(), own, relay);
        // The built-in relay is this machine's loopback: nothing a proxy could reach.
        let route = if via.is_some() && status.home_relay_local {
            Route::Quic
        } else {
            route(h.network())?
        };
        let pace = if status.high_risk {
            Some(ChaCha20Rng::from_seed(crate::driver::os_seed()?))
        } else {
            None
        };
        Ok(Self {
            route,
            bind: h.bind(),
            via,
            pace,
        })
    }

    fn window(&self) -> usize {
        if self.pace.is_some() { 1 } else { WINDOW }
    }

    /// Waits the next paced gap (high-risk mode); at once otherwise.
    async fn gap(&mut self) {
        if let Some(rng) = &mut self.pace {
            tokio::time::sleep(crate::engine::exponential(rng, CHUNK_GAP_MEAN)).await;
        }
    }

    /// What a run that gave up after many transport failures reports.
    fn unreachable(&self) -> Error {
        if self.via.is_some() {
            Error::PrivateRoute("own_relay_unreachable")
        } else {
            Error::RelayUnreachable
        }
    }
}

/// The relay a transfer's chunk requests go through, if any: the own relay, under private
/// routing (always in high-risk mode), when the chunks are on another relay (another pin:
/// one relay under two names is one relay). Without an own relay there is nothing to go
/// through.
fn via(
    high_risk: bool,
    routing: Routing,
    own: Option<RelayAddress>,
    chunks: &RelayAddress,
) -> Option<RelayAddress> {
    let private = high_risk || routing == Routing::Private;
    own.filter(|own| private && own.pin != chunks.pin)
}

/// A transfer's connection: to the chunks' relay, or to the own relay with the chunks'
/// relay's verified forwarding key.
#[derive(Clone)]
struct ChunkLink {
    client: Arc<RelayClient>,
    forward: Option<Arc<(Destination, VerifiedKey)>>,
}

impl ChunkLink {
    async fn connect(relay: &RelayAddress, plan: &Plan) -> Result<Self> {
        let Some(own) = &plan.via else {
            let client = connect(relay, plan).await?;
            return Ok(Self {
                client,
                forward: None,
            });
        };
        let client = match connect(own, plan).await {
            Ok(c) => c,
            Err(Error::ProxyFailed) => return Err(Error::ProxyFailed),
            Err(_) => return Err(Error::PrivateRoute("own_relay_unreachable")),
        };
        let dest =
            Destination::new(relay.clone()).map_err(|_| Error::PrivateRoute("bad_destination"))?;
        let key =
            tokio::time::timeout(Duration::from_secs(20), client.fetch_forward_key(&dest)).await;
        match key {
            Ok(Ok(key)) => Ok(Self {
                client,
                forward: Some(Arc::new((dest, key))),
            }),
            Ok(Err(e)) => {
                client.close();
                Err(private_error(&e))
            }
            Err(_) => {
                client.close();
                Err(Error::PrivateRoute("forward_unreachable"))
            }
        }
    }

    fn is_private(&self) -> bool {
        self.forward.is_some()
    }

    fn is_dead(&self) -> bool {
        self.client
            .quic_connection()
            .is_some_and(|c| c.close_reason().is_some())
    }

    async fn put(
        &self,
        id: ChunkId,
        data: &[u8],
    ) -> std::result::Result<bool, hush_transport::Error> {
        match &self.forward {
            Some(f) => self.client.forward_put_chunk(&f.0, &f.1, id, data).await,
            None => self.client.put_chunk(id, data).await,
        }
    }

    async fn get(
        &self,
        secret: ChunkSecret,
    ) -> std::result::Result<Vec<u8>, hush_transport::Error> {
        match &self.forward {
            Some(f) => self.client.forward_get_chunk(&f.0, &f.1, secret).await,
            None => self.client.get_chunk(secret).await,
        }
    }

    async fn delete(&self, secret: ChunkSecret) -> std::result::Result<(), hush_transport::Error> {
        match &self.forward {
            Some(f) => self.client.forward_delete_chunk(&f.0, &f.1, secret).await,
            None => self.client.delete_chunk(secret).await,
        }
    }
}

/// A failure on the way through the own relay, by its reason.
fn private_error(e: &hush_transport::Error) -> Error {
    match crate::link::private_route_reason(e) {
        Some(why) => Error::PrivateRoute(why),
        None => Error::CertificateMismatch,
    }
}

async fn connect(relay: &RelayAddress, plan: &Plan) -> Result<Arc<RelayClient>> {
    match tokio::time::timeout(
        Duration::from_secs(20),
        RelayClient::connect_via_from(relay, &plan.route, plan.bind),
    )
    .await
    {
        Ok(Ok(c)) => Ok(Arc::new(c)),
        Ok(Err(hush_transport::Error::PinMismatch)) => Err(Error::CertificateMismatch),
        Ok(Err(hush_transport::Error::Proxy(_) | hush_transport::Error::ProxyUnreachable)) => {
            Err(Error::ProxyFailed)
        }
        Ok(Err(_)) | Err(_) => Err(Error::RelayUnreachable),
    }
}

/// What one chunk's attempt came to.
enum Attempt {
    Done,
    /// Try again after this long (a busy relay, a dropped connection).
    Retry(Duration, bool),
    Fatal(Error),
}

fn classify(e: &hush_transport::Error, private: bool) -> Attempt {
    if private {
        // The own relay's refusals, and the destination's plain ones about the sealing:
        // the path is broken for now; wait with the reason, never go direct.
        let forwarding =
            relay_error(e).is_some_and(|f| (0x0500..0x0600).contains(&f.code.to_u16()));
        if forwarding || matches!(e, hush_transport::Error::ForwardAnswerUnsealable) {
            return Attempt::Fatal(private_error(e));
        }
        // A relay on the path from before forwarded chunks (docs/PROTOCOL.md II.4.4) does
        // not know the kind (`UnknownKind`), or reads one frame and finds a chunk after it
        // (`Oversized`).
        if relay_error(e)
            .is_some_and(|f| matches!(f.code, ErrorCode::UnknownKind | ErrorCode::Oversized))
        {
            return Attempt::Fatal(Error::PrivateRoute("forward_chunks_unsupported"));
        }
    }
    match relay_error(e).map(|f| (f.code, f.arg)) {
        Some((ErrorCode::ChunkBusy | ErrorCode::RateLimited, ms)) => {
            Attempt::Retry(Duration::from_millis(u64::from(ms.clamp(1, 10_000))), false)
        }
        Some((ErrorCode::ChunkNotFound, _)) => Attempt::Fatal(FileError::ChunkMissing.into()),
        Some((ErrorCode::ChunkStoreFull | ErrorCode::ChunksUnsupported, _)) => {
            Attempt::Fatal(FileError::RelayRefused.into())
        }
        Some((ErrorCode::ShuttingDown | ErrorCode::Internal, _)) | None => {
            Attempt::Retry(Duration::from_millis(200), true)
        }
        Some((other, _)) => Attempt::Fatal(Error::Relay(other.name().into())),
    }
}

/// What a run reports to and persists through.
struct Sink<'a> {
    h: &'a Handle,
    id: i64,
    size: u64,
    /// A download's partial file: synced before progress is persisted.
    sync: Option<&'a File>,
    on_progress: &'a mut (dyn FnMut(Progress) + Send),
}

impl Sink<'_> {
    /// Says that the transfer stopped and waits for `why`.
    fn waiting(&mut self, t: &Transfer, why: &'static str) {
        let mut p = progress_of(self.id, t, self.size);
        p.waiting = Some(why);
        (self.on_progress)(p);
    }

    async fn persist(&mut self, t: &Transfer) -> Result<()> {
        if let Some(f) = self.sync {
            // What is persisted must be on disk first.
            f.sync_data()?;
        }
        let (id, prefix) = (self.id, t.prefix());
        self.h.file(FileCommand::Progress { id, prefix }).await?;
        (self.on_progress)(progress_of(id, t, self.size));
        Ok(())
    }
}

/// Runs `transfer` to completion with `work` for each chunk, reconnecting on transport
/// failures; every few chunks (and at the end) the prefix is persisted through `sink`. A
/// failure of private routing is said as a `waiting` progress event before it is returned.
async fn run<W, Fut>(
    relay: &RelayAddress,
    plan: &mut Plan,
    transfer: &mut Transfer,
    work: W,
    sink: &mut Sink<'_>,
) -> Result<()>
where
    W: Fn(ChunkLink, u32) -> Fut,
    Fut: std::future::Future<Output = Attempt> + Send + 'static,
{
    let r = run_chunks(relay, plan, transfer, work, sink).await;
    if let Err(Error::PrivateRoute(why)) = &r {
        sink.waiting(transfer, why);
    }
    r
}

async fn run_chunks<W, Fut>(
    relay: &RelayAddress,
    plan: &mut Plan,
    transfer: &mut Transfer,
    work: W,
    sink: &mut Sink<'_>,
) -> Result<()>
where
    W: Fn(ChunkLink, u32) -> Fut,
    Fut: std::future::Future<Output = Attempt> + Send + 'static,
{
    let mut client = ChunkLink::connect(relay, plan).await?;
    let mut failures = 0u32;
    let mut tasks: JoinSet<(u32, Attempt)> = JoinSet::new();
    let mut since_persist = 0u32;
    while !transfer.is_complete() {
        while let Some(i) = transfer.poll_next() {
            plan.gap().await;
            let fut = work(client.clone(), i);
            tasks.spawn(async move { (i, fut.await) });
        }
        let Some(joined) = tasks.join_next().await else {
            return Err(Error::UnexpectedResponse("transfer stalled"));
        };
        let (i, attempt) = joined.map_err(|_| Error::Io("a chunk task failed".into()))?;
        match attempt {
            Attempt::Done => {
                failures = 0;
                if transfer.handle_done(i).is_some() {
                    since_persist += 1;
                    if since_persist >= PERSIST_EVERY || transfer.is_complete() {
                        sink.persist(transfer).await?;
                        since_persist = 0;
                    }
                }
            }
            Attempt::Retry(wait, reconnect) => {
                transfer.handle_failed(i);
                failures += 1;
                if failures > MAX_FAILURES {
                    tasks.abort_all();
                    return Err(plan.unreachable());
                }
                tokio::time::sleep(wait * failures.min(10)).await;
                if reconnect
                    && (client.is_dead() || failures > 2)
                    && let Ok(c) = ChunkLink::connect(relay, plan).await
                {
                    client = c;
                }
            }
            Attempt::Fatal(e) => {
                tasks.abort_all();
                return Err(e);
            }
        }
    }
    Ok(())
}

fn progress_of(id: i64, t: &Transfer, size: u64) -> Progress {
    Progress {
        id,
        done: t.done(),
        total: t.count(),
        bytes: (u64::from(t.done()) * CHUNK_PAYLOAD as u64).min(size),
        size,
        waiting: None,
    }
}

pub(super) fn modified_secs(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// Measures a file to send: its size, SHA-256 and modification time, reading it once in
/// 1 MiB pieces.
///
/// # Errors
/// [`Error::Io`] if it cannot be read.
pub fn measure(path: &Path) -> Result<(u64, [u8; 32], u64)> {
    let mut f = File::open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(Error::InvalidArgument("not a regular file".into()));
    }
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, h.finalize().into(), modified_secs(&meta)))
}

pub(super) fn read_at(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        f.read_exact_at(buf, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Seek, SeekFrom};
        let mut f = f.try_clone()?;
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(buf)
    }
}

fn write_at(f: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        f.write_all_at(buf, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = f.try_clone()?;
        f.seek(SeekFrom::Start(offset))?;
        f.write_all(buf)
    }
}

/// Uploads file `id` (offered with [`FileCommand::Offer`]) from where it stopped, then sends
/// its descriptor in the conversation.
///
/// # Errors
/// [`FileError::SourceChanged`] if the source changed since the offer; relay and transport
/// errors (the transfer stays resumable unless the relay refused it).
pub async fn upload(
    h: &Handle,
    id: i64,
    on_progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<()> {
    let info = file_info(h, id).await?;
    if !info.outgoing {
        return Err(Error::InvalidArgument("that file was sent to you".into()));
    }
    if info.state != FileState::Uploading {
        return Ok(());
    }
    let d = info.descriptor.clone();
    let path = PathBuf::from(info.path.clone().unwrap_or_default());
    let source = {
        let d = d.clone();
        let mtime = info.source_mtime;
        tokio::task::spawn_blocking(move || Source::open(&path, &d, mtime))
            .await
            .map_err(|_| Error::Io("reading the file failed".into()))??
    };
    let mut plan = Plan::for_relay(h, &d.relay).await?;
    let mut transfer = Transfer::resume(d.chunk_count(), info.prefix, plan.window());
    on_progress(progress_of(id, &transfer, d.size));
    let shared = Arc::new(d.clone());
    let work = |client: ChunkLink, i: u32| {
        let (source, d) = (source.clone(), shared.clone());
        let chunk_id = d.secret.chunk(i).id();
        async move {
            let sealed = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
                let mut plain = vec![0u8; d.chunk_plain_len(i)];
                source.read_at(&mut plain, u64::from(i) * CHUNK_PAYLOAD as u64)?;
                let mut rng = ChaCha20Rng::from_seed(crate::driver::os_seed()?);
                Ok(d.secret.seal_chunk(i, &plain, &mut rng)?)
            })
            .await;
            let sealed = match sealed {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Attempt::Fatal(e),
                Err(_) => return Attempt::Fatal(Error::Io("reading the file failed".into())),
            };
            match client.put(chunk_id, &sealed).await {
                Ok(_) => Attempt::Done,
                Err(e) => classify(&e, client.is_private()),
            }
        }
    };
    let mut sink = Sink {
        h,
        id,
        size: d.size,
        sync: None,
        on_progress,
    };
    let result = run(&d.relay, &mut plan, &mut transfer, work, &mut sink).await;
    if let Err(Error::File(FileError::RelayRefused)) = &result {
        h.file(FileCommand::Finish {
            id,
            path: None,
            error: Some(FileError::RelayRefused),
        })
        .await?;
    }
    result?;
    h.file(FileCommand::Uploaded { id }).await?;
    Ok(())
}

/// The partial file of a download: hidden, beside where the file will be saved.
pub(crate) fn part_path(dir: &Path, safe: &str, id: i64) -> PathBuf {
    dir.join(format!(".{safe}.{id}.hushpart"))
}

/// `dir/name`, or `dir/stem (n).ext` if that exists: the first free one is linked to the
/// verified partial file, which is then removed, so no existing file is ever replaced.
fn save_as(dir: &Path, safe: &str, part: &Path) -> Result<PathBuf> {
    let (stem, ext) = match safe.rfind('.') {
        Some(i) if i > 0 => (&safe[..i], &safe[i..]),
        _ => (safe, ""),
    };
    for n in 0..10_000u32 {
        let name = if n == 0 {
            safe.to_owned()
        } else {
            format!("{stem} ({n}){ext}")
        };
        let target = dir.join(&name);
        match std::fs::hard_link(part, &target) {
            Ok(()) => {
                std::fs::remove_file(part)?;
                return Ok(target);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            // A file system without hard links: check and rename (racy only against this
            // user's own processes in this directory).
            Err(_) if !target.exists() => {
                std::fs::rename(part, &target)?;
                return Ok(target);
            }
            Err(_) => {}
        }
    }
    Err(Error::InvalidArgument(
        "no free name in the directory".into(),
    ))
}

fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// Downloads received file `id` (accepted with [`FileCommand::Accept`]) from where it
/// stopped, verifies it, saves it under its neutralised name in the chosen directory and
/// deletes its chunks from the relay. Returns where it was saved.
///
/// # Errors
/// [`FileError::ChunkCorrupt`], [`FileError::DigestMismatch`], [`FileError::ChunkMissing`]
/// (nothing is left on disk then), relay and transport errors (resumable).
pub async fn download(
    h: &Handle,
    id: i64,
    on_progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<PathBuf> {
    let info = file_info(h, id).await?;
    let d = info.descriptor.clone();
    let dir = PathBuf::from(info.dir.clone().unwrap_or_default());
    let safe = safe_name(&d.name);
    let saved = match info.state {
        FileState::Complete => PathBuf::from(info.path.clone().unwrap_or_default()),
        FileState::Downloading => {
            let part = part_path(&dir, &safe, id);
            match fetch(h, &info, &part, on_progress).await {
                Ok(()) => {}
                Err(e @ Error::File(_)) => {
                    let _ = std::fs::remove_file(&part);
                    let f = if let Error::File(f) = e {
                        f
                    } else {
                        FileError::Malformed
                    };
                    h.file(FileCommand::Finish {
                        id,
                        path: None,
                        error: Some(f),
                    })
                    .await?;
                    return Err(f.into());
                }
                Err(e) => return Err(e),
            }
            let target = save_as(&dir, &safe, &part)?;
            let shown = target.to_string_lossy().into_owned();
            h.file(FileCommand::Finish {
                id,
                path: Some(shown),
                error: None,
            })
            .await?;
            target
        }
        _ => return Err(Error::InvalidArgument("accept the file first".into())),
    };
    if !info.cleaned {
        delete_chunks(h, &d).await?;
        h.file(FileCommand::Cleaned { id }).await?;
    }
    Ok(saved)
}

async fn fetch(
    h: &Handle,
    info: &FileInfo,
    part: &Path,
    on_progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<()> {
    let d = Arc::new(info.descriptor.clone());
    let id = info.id;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(part)?;
    if out.metadata()?.len() != d.size {
        out.set_len(d.size)?;
    }
    let out = Arc::new(out);
    let mut plan = Plan::for_relay(h, &d.relay).await?;
    let mut transfer = Transfer::resume(d.chunk_count(), info.prefix, plan.window());
    on_progress(progress_of(id, &transfer, d.size));
    let work = |client: ChunkLink, i: u32| {
        let (out, d) = (out.clone(), d.clone());
        async move {
            let chunk = match client.get(d.secret.chunk(i).secret).await {
                Ok(c) => c,
                Err(e) => return classify(&e, client.is_private()),
            };
            let written = tokio::task::spawn_blocking(move || -> Result<()> {
                let plain = d
                    .secret
                    .open_chunk(i, &chunk, d.chunk_plain_len(i))
                    .map_err(|_| FileError::ChunkCorrupt)?;
                write_at(&out, &plain, u64::from(i) * CHUNK_PAYLOAD as u64)?;
                Ok(())
            })
            .await;
            match written {
                Ok(Ok(())) => Attempt::Done,
                Ok(Err(e)) => Attempt::Fatal(e),
                Err(_) => Attempt::Fatal(Error::Io("writing the file failed".into())),
            }
        }
    };
    let mut sink = Sink {
        h,
        id,
        size: d.size,
        sync: Some(&out),
        on_progress,
    };
    run(&d.relay, &mut plan, &mut transfer, work, &mut sink).await?;
    out.sync_all()?;
    if sha256_file(part)? != d.digest {
        return Err(FileError::DigestMismatch.into());
    }
    Ok(())
}

async fn delete_chunks(h: &Handle, d: &super::FileDescriptor) -> Result<()> {
    let mut plan = Plan::for_relay(h, &d.relay).await?;
    let link = ChunkLink::connect(&d.relay, &plan).await?;
    for i in 0..d.chunk_count() {
        plan.gap().await;
        match link.delete(d.secret.chunk(i).secret).await {
            Ok(()) => {}
            Err(e) if relay_error(&e).is_some_and(|f| f.code == ErrorCode::ChunkNotFound) => {}
            Err(e) if link.is_private() => {
                link.client.close();
                return Err(private_error(&e));
            }
            Err(_) => return Err(Error::RelayUnreachable),
        }
    }
    link.client.close();
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests

    use super::*;

    fn relay(pin: u8, host: &str) -> RelayAddress {
        let mut a: RelayAddress = format!("hush://{}@{host}:4433", "A".repeat(43))
            .parse()
            .unwrap();
        a.pin.0 = [pin; 32];
        a
    }

    /// Seen to fail with high-risk mode left out of the choice (a direct profile in
    /// high-risk mode fetched chunks straight from the other relay).
    #[test]
    fn chunks_go_through_the_own_relay_unless_direct_outside_high_risk_or_already_there() {
        let own = relay(1, "own.example");
        let other = relay(2, "other.example");
        let same_under_another_name = relay(1, "127.0.0.9");
        for (high_risk, routing, chunks, through) in [
            (false, Routing::Private, &other, true),
            (false, Routing::Direct, &other, false),
            (true, Routing::Direct, &other, true),
            (true, Routing::Private, &other, true),
            (false, Routing::Private, &own, false),
            (true, Routing::Private, &same_under_another_name, false),
        ] {
            assert_eq!(
                via(high_risk, routing, Some(own.clone()), chunks).is_some(),
                through,
                "{high_risk} {routing:?}"
            );
        }
        assert!(via(true, Routing::Private, None, &other).is_none());
    }
}
