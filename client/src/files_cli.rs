//! The file commands of the CLI: `send-file`, `files`, `get-file` (README, "Files").
//!
//! Owns: turning the arguments into hush-core file commands, the progress display (a bar
//! with ETA on stderr for people, one JSON object per event on stdout under `--json`), and
//! what is printed at the end. Chunks move in hush-core (`hush_core::files::driver`).
//! Must never print a file's secret or digest-derived names, and prints received names only
//! neutralised ([`hush_core::files::safe_name`]) and terminal-safe.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hush_core::files::{self, Progress, human_size, safe_name};
use hush_core::store::{FileInfo, FileState};
use hush_core::{Error, FileCommand, Handle, Response};
use serde_json::json;

use crate::failure::usage;
use crate::terminal_text::terminal_safe;

/// Prints progress: under `--json` one event per persisted step on stdout; otherwise a bar
/// with the rate and time left, redrawn on stderr.
struct Meter<'a> {
    json: bool,
    out: &'a mut (dyn Write + Send),
    err: &'a mut (dyn Write + Send),
    started: Instant,
    /// Bytes already done when this run started (a resumed transfer).
    at_start: Option<u64>,
}

impl<'a> Meter<'a> {
    fn new(json: bool, out: &'a mut (dyn Write + Send), err: &'a mut (dyn Write + Send)) -> Self {
        Self {
            json,
            out,
            err,
            started: Instant::now(),
            at_start: None,
        }
    }

    fn show(&mut self, p: Progress, direction: &str) {
        let base = *self.at_start.get_or_insert(p.bytes);
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            (p.bytes.saturating_sub(base)) as f64 / secs
        } else {
            0.0
        };
        let left = p.size.saturating_sub(p.bytes);
        let eta = (rate > 0.0).then(|| (left as f64 / rate).ceil() as u64);
        if self.json {
            let _ = writeln!(
                self.out,
                "{}",
                json!({
                    "event": "progress", "direction": direction, "id": p.id,
                    "chunks_done": p.done, "chunks": p.total,
                    "bytes_done": p.bytes, "bytes": p.size, "eta_secs": eta,
                    "waiting": p.waiting,
                })
            );
        } else {
            let width = 30usize;
            let filled = if p.total == 0 {
                width
            } else {
                (usize::try_from(p.done).unwrap_or(0) * width)
                    / usize::try_from(p.total).unwrap_or(1)
            };
            let eta = eta.map_or_else(
                || "--:--".to_owned(),
                |s| format!("{}:{:02}", s / 60, s % 60),
            );
            let _ = write!(
                self.err,
                "\r{direction} [{}{}] {:>3}% {} / {}  ETA {eta} ",
                "#".repeat(filled),
                ".".repeat(width - filled.min(width)),
                (p.bytes * 100).checked_div(p.size).unwrap_or(100),
                human_size(p.bytes),
                human_size(p.size),
            );
            if let Some(why) = p.waiting {
                let _ = write!(self.err, " waiting: {why}");
            }
            let _ = self.err.flush();
        }
    }
}

async fn file(h: &Handle, cmd: FileCommand) -> anyhow::Result<FileInfo> {
    match h.file(cmd).await? {
        Response::File(f) => Ok(*f),
        _ => Err(Error::UnexpectedResponse("File").into()),
    }
}

/// `hush send-file CONTACT PATH` (or `--resume ID`): offers, uploads, sends the descriptor.
pub(crate) async fn send_file(
    h: &Handle,
    target: SendTarget,
    json: bool,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let resumed = matches!(target, SendTarget::Resume(_));
    let info = match target {
        SendTarget::New {
            contact,
            path,
            keep_metadata,
        } => {
            let prepared =
                tokio::task::spawn_blocking(move || files::prepare(contact, &path, keep_metadata))
                    .await
                    .map_err(|_| anyhow::anyhow!("reading the file failed"))??;
            if !json {
                if let Some(removed) = &prepared.removed {
                    writeln!(
                        err,
                        "note: removed the image's metadata: {} (--keep-metadata sends it as is)",
                        removed.describe()
                    )?;
                }
                if let Some(warning) = prepared.warning {
                    writeln!(err, "note: {warning}")?;
                }
            }
            let removed = prepared.removed.map(|r| r.kinds);
            let info = file(h, prepared.command).await?;
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"event": "offered", "id": info.id, "chunks": info.descriptor.chunk_count(), "bytes": info.descriptor.size, "metadata_removed": removed})
                )?;
            }
            info
        }
        SendTarget::Resume(id) => file(h, FileCommand::Get { id }).await?,
    };
    let id = info.id;
    if json && resumed {
        writeln!(
            out,
            "{}",
            json!({"event": "offered", "id": id, "chunks": info.descriptor.chunk_count(), "bytes": info.descriptor.size})
        )?;
    }
    let mut meter = Meter::new(json, out, err);
    files::upload(h, id, &mut |p| meter.show(p, "send")).await?;
    if !json {
        writeln!(meter.err)?;
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(20), h.flush()).await;
    if json {
        writeln!(meter.out, "{}", json!({"event": "sent", "id": id}))?;
    } else {
        writeln!(meter.out, "sent file {id}")?;
    }
    Ok(())
}

/// What `send-file` sends.
pub(crate) enum SendTarget {
    New {
        contact: String,
        path: PathBuf,
        /// Send a JPEG or PNG with its metadata.
        keep_metadata: bool,
    },
    Resume(i64),
}

fn row_json(f: &FileInfo) -> serde_json::Value {
    json!({
        "id": f.id,
        "contact": f.contact,
        "direction": if f.outgoing { "out" } else { "in" },
        "name": safe_name(&f.descriptor.name),
        "bytes": f.descriptor.size,
        "state": f.state.as_str(),
        "chunks_done": f.prefix,
        "chunks": f.descriptor.chunk_count(),
        "path": f.path,
        "error": f.error.map(|e| e.name()),
    })
}

/// `hush files [CONTACT]`: the transfers, oldest first.
pub(crate) async fn list(
    h: &Handle,
    contact: Option<String>,
    json: bool,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let _ = h.sync().await;
    let Response::Files(rows) = h.file(FileCommand::List { contact }).await? else {
        return Err(Error::UnexpectedResponse("Files").into());
    };
    for f in &rows {
        if json {
            writeln!(out, "{}", row_json(f))?;
        } else {
            writeln!(
                out,
                "{:>4}  {}  {}  {}  {}  {}{}",
                f.id,
                if f.outgoing { "to  " } else { "from" },
                terminal_safe(&f.contact),
                terminal_safe(&safe_name(&f.descriptor.name)),
                human_size(f.descriptor.size),
                f.state.as_str(),
                f.error
                    .map(|e| format!(" ({})", e.name()))
                    .unwrap_or_default(),
            )?;
        }
    }
    Ok(())
}

/// `hush get-file ID --dir DIR [--max-size BYTES]`: accepts, downloads, verifies, saves.
pub(crate) async fn get_file(
    h: &Handle,
    id: i64,
    dir: &Path,
    max_size: Option<u64>,
    json: bool,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let _ = h.sync().await;
    let dir = std::path::absolute(dir)?;
    let dir_text = dir
        .to_str()
        .ok_or_else(|| usage("the directory's path must be UTF-8"))?
        .to_owned();
    let info = file(h, FileCommand::Get { id }).await?;
    if info.state != FileState::Complete {
        file(
            h,
            FileCommand::Accept {
                id,
                dir: dir_text,
                limit: max_size,
            },
        )
        .await?;
    }
    let mut meter = Meter::new(json, out, err);
    let saved = files::download(h, id, &mut |p| meter.show(p, "get")).await?;
    if !json {
        writeln!(meter.err)?;
    }
    let shown = saved.to_string_lossy();
    if json {
        writeln!(
            meter.out,
            "{}",
            json!({"event": "saved", "id": id, "path": shown})
        )?;
    } else {
        writeln!(meter.out, "saved {}", terminal_safe(&shown))?;
    }
    Ok(())
}

/// `hush file-limit [SIZE|default]`: shows or sets the profile's limit on received files.
pub(crate) async fn limit(
    h: &Handle,
    set: Option<String>,
    json: bool,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let cmd = match set.as_deref() {
        None => FileCommand::Limit,
        Some("default") => FileCommand::SetLimit { bytes: None },
        Some(text) => FileCommand::SetLimit {
            bytes: Some(files::parse_size(text).ok_or_else(|| {
                usage("a size is bytes or a number with B, KiB, MiB, GiB, KB, MB or GB")
            })?),
        },
    };
    let Response::Count(bytes) = h.file(cmd).await? else {
        return Err(Error::UnexpectedResponse("Count").into());
    };
    if json {
        writeln!(out, "{}", json!({"file_limit_bytes": bytes}))?;
    } else {
        writeln!(
            out,
            "limit for received files: {} ({bytes} bytes)",
            human_size(bytes)
        )?;
    }
    Ok(())
}
