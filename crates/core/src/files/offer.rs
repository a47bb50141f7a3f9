//! Preparing a file to send, the one path every front end takes: the source's path and name
//! checked, a JPEG's or PNG's metadata removed (unless the user keeps it), the bytes that
//! will be sent measured, and the [`FileCommand::Offer`] built.
//!
//! Owns: the choice between sending the file as is and sending its stripped copy, and the
//! same choice again when an upload resumes ([`Source::open`]).
//! Must never write a stripped copy to disk: it is made in memory (at most
//! [`MAX_STRIP_LEN`]), and made again from the source on resume, which must then give the
//! bytes of the descriptor's digest or the upload stops with [`FileError::SourceChanged`].

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::strip::{ImageKind, MAX_STRIP_LEN, Removed, strip};
use super::{FileDescriptor, FileError, METADATA_WARNING, carries_metadata, descriptor};
use crate::api::FileCommand;
use crate::error::{Error, Result};

/// A file ready to offer: the command, and what the user should be told.
#[derive(Debug)]
pub struct Prepared {
    /// [`FileCommand::Offer`] for the engine.
    pub command: FileCommand,
    /// Size of what will be sent.
    pub size: u64,
    /// A JPEG or PNG stripped: what was removed.
    pub removed: Option<Removed>,
    /// The file is sent with its own metadata (another kind, or kept on request).
    pub warning: Option<&'static str>,
}

/// Prepares `path` to be sent to `contact`; blocking (it reads the file once).
/// `keep_metadata` sends a JPEG or PNG as is.
///
/// # Errors
/// [`Error::InvalidArgument`] if the path or name is not UTF-8, the name is longer than 255
/// bytes or the file is not a regular file; [`FileError::Unstrippable`] for a JPEG or PNG
/// that could not be stripped; [`Error::Io`] if it cannot be read.
pub fn prepare(contact: String, path: &Path, keep_metadata: bool) -> Result<Prepared> {
    let path = std::path::absolute(path)?;
    let text = path
        .to_str()
        .ok_or_else(|| Error::InvalidArgument("the file's path must be UTF-8".into()))?
        .to_owned();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::InvalidArgument("the file's name must be UTF-8".into()))?
        .to_owned();
    if name.len() > descriptor::MAX_NAME_LEN {
        return Err(Error::InvalidArgument(
            "the file's name is longer than 255 bytes".into(),
        ));
    }
    let image = ImageKind::of_name(&name).filter(|_| !keep_metadata);
    let (size, digest, mtime, removed) = match image {
        Some(kind) => {
            let (stripped, mtime) = read_stripped(&path, kind)?;
            let size = stripped.bytes.len() as u64;
            let digest = Sha256::digest(&stripped.bytes).into();
            (size, digest, mtime, Some(stripped.removed))
        }
        None => {
            let (size, digest, mtime) = super::driver::measure(&path)?;
            (size, digest, mtime, None)
        }
    };
    let warning = (removed.is_none() && carries_metadata(&name)).then_some(METADATA_WARNING);
    Ok(Prepared {
        command: FileCommand::Offer {
            contact,
            path: text,
            name,
            size,
            digest,
            mtime,
        },
        size,
        removed,
        warning,
    })
}

fn regular(f: &File) -> Result<std::fs::Metadata> {
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(Error::InvalidArgument("not a regular file".into()));
    }
    Ok(meta)
}

/// The stripped copy of `path` and the source's modification time (both from one open).
fn read_stripped(path: &Path, kind: ImageKind) -> Result<(super::strip::Stripped, u64)> {
    let f = File::open(path)?;
    let meta = regular(&f)?;
    if meta.len() > MAX_STRIP_LEN {
        return Err(FileError::Unstrippable.into());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // One byte more than the bound: a file that grew since is refused, not cut.
    f.take(MAX_STRIP_LEN + 1).read_to_end(&mut bytes)?;
    Ok((strip(kind, &bytes)?, super::driver::modified_secs(&meta)))
}

/// What an upload reads its chunks from.
pub(crate) enum Source {
    /// The file as it is on disk.
    File(File),
    /// Its stripped copy, in memory.
    Memory(Vec<u8>),
}

impl Source {
    /// The bytes of an offered file `d`, from `path`: the file itself if it still has the
    /// offered size, or else (a JPEG or PNG that was stripped) its stripped copy, which must
    /// have the descriptor's digest. The source's modification time must be `mtime`.
    ///
    /// # Errors
    /// [`FileError::SourceChanged`] if it is not what was offered.
    pub(crate) fn open(path: &Path, d: &FileDescriptor, mtime: Option<u64>) -> Result<Arc<Self>> {
        let f = File::open(path)?;
        let meta = f.metadata()?;
        if Some(super::driver::modified_secs(&meta)) != mtime {
            return Err(FileError::SourceChanged.into());
        }
        if meta.len() == d.size {
            return Ok(Arc::new(Self::File(f)));
        }
        let kind = ImageKind::of_name(&d.name).ok_or(FileError::SourceChanged)?;
        let (stripped, _) = read_stripped(path, kind).map_err(|e| match e {
            Error::File(FileError::Unstrippable) => FileError::SourceChanged.into(),
            e => e,
        })?;
        let digest: [u8; 32] = Sha256::digest(&stripped.bytes).into();
        if stripped.bytes.len() as u64 != d.size || digest != d.digest {
            return Err(FileError::SourceChanged.into());
        }
        Ok(Arc::new(Self::Memory(stripped.bytes)))
    }

    /// Fills `buf` from `offset`.
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match self {
            Self::File(f) => super::driver::read_at(f, buf, offset),
            Self::Memory(b) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                let part = start
                    .checked_add(buf.len())
                    .and_then(|end| b.get(start..end))
                    .ok_or(std::io::ErrorKind::UnexpectedEof)?;
                buf.copy_from_slice(part);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_crypto::file::FileSecret;
    use hush_testkit::photo;

    fn offered(p: &Prepared) -> (FileDescriptor, u64) {
        let FileCommand::Offer {
            name,
            size,
            digest,
            mtime,
            ..
        } = &p.command
        else {
            panic!("not an offer");
        };
        let d = FileDescriptor {
            name: name.clone(),
            size: *size,
            digest: *digest,
            secret: FileSecret::from_bytes([1; 32]),
            relay: "hush://AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8@relay.example.org:4433"
                .parse()
                .unwrap(),
        };
        (d, *mtime)
    }

    fn bytes_of(s: &Source, len: u64) -> Vec<u8> {
        let mut b = vec![0; usize::try_from(len).unwrap()];
        s.read_at(&mut b, 0).unwrap();
        b
    }

    /// What is offered is what a resumed upload reads: the stripped copy, made again in
    /// memory, for a photo; the file itself for a photo kept as is and for other kinds; and
    /// a photo edited since is refused. Seen failing: with `Source::open` comparing only the
    /// size of the stripped copy (not its digest), the edited photo of the same size was
    /// accepted.
    #[test]
    fn a_resume_reads_exactly_what_was_offered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("صورة 📸.jpg");
        let jpeg = photo::jpeg(40, 30, 9);
        std::fs::write(&path, &jpeg).unwrap();
        let p = prepare("bob".into(), &path, false).unwrap();
        assert!(
            p.removed
                .as_ref()
                .is_some_and(|r| r.kinds.contains(&"EXIF"))
        );
        assert_eq!(p.warning, None);
        let (d, mtime) = offered(&p);
        let s = Source::open(&path, &d, Some(mtime)).unwrap();
        assert!(matches!(*s, Source::Memory(_)));
        let sent = bytes_of(&s, d.size);
        assert_eq!(photo::has_secrets(&sent), Vec::<String>::new());
        assert_eq!(<[u8; 32]>::from(Sha256::digest(&sent)), d.digest);
        // Reads past the end fail instead of inventing bytes.
        let mut over = vec![0; 2];
        assert!(s.read_at(&mut over, d.size - 1).is_err());

        // Kept as is: the file itself, with the warning.
        let kept = prepare("bob".into(), &path, true).unwrap();
        assert_eq!(kept.removed, None);
        assert!(kept.warning.is_some());
        let (dk, mk) = offered(&kept);
        assert_eq!(dk.size, jpeg.len() as u64);
        assert!(matches!(
            *Source::open(&path, &dk, Some(mk)).unwrap(),
            Source::File(_)
        ));

        // Edited since (same length, same time, other pixels): refused.
        let mut edited = jpeg.clone();
        let last = edited.len() - 3;
        edited[last] ^= 0x01;
        std::fs::write(&path, &edited).unwrap();
        let f = File::options().write(true).open(&path).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime))
            .unwrap();
        assert!(matches!(
            Source::open(&path, &d, Some(mtime)),
            Err(Error::File(FileError::SourceChanged))
        ));

        // A name longer than 255 bytes (refused before the file is opened: Linux would not
        // make one), and a directory, are usage errors.
        let long = dir.path().join(format!("{}.txt", "長".repeat(90)));
        assert!(matches!(
            prepare("bob".into(), &long, false),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            prepare("bob".into(), dir.path(), false),
            Err(Error::InvalidArgument(_))
        ));
    }
}
