//! The engine's side of file transfers: the file commands ([`FileCommand`]), each one
//! statement or transaction of the store, and sending a descriptor as a message. Chunks
//! never pass through the engine (crate::files::driver moves them on its own connection).

use std::path::Path;

use hush_crypto::file::FileSecret;

use super::Engine;
use super::schedule::Pace;
use crate::api::{FileCommand, Response};
use crate::content::Content;
use crate::error::{Error, Result};
use crate::files::{DEFAULT_LIMIT_BYTES, FileDescriptor, FileError, MAX_FILE_LEN, summary};
use crate::store::FileState;
use crate::store::settings::Setting;

impl Engine {
    /// The profile's limit on received files (the default if unset).
    fn file_limit(&self) -> Result<u64> {
        match self.store.db().setting(Setting::FileLimit)? {
            Some(v) => v
                .parse()
                .map_err(|_| Error::StoreCorrupted("file limit setting")),
            None => Ok(DEFAULT_LIMIT_BYTES),
        }
    }

    pub(super) fn file_command(&mut self, c: FileCommand) -> Result<Response> {
        let db = self.store.db();
        match c {
            FileCommand::Offer {
                contact,
                path,
                name,
                size,
                digest,
                mtime,
            } => {
                let id = db.existing_contact(&contact)?;
                if db.contact_settings(id)?.blocked {
                    return Err(Error::InvalidArgument(
                        "the contact is blocked (unblock it to write)".into(),
                    ));
                }
                if size > MAX_FILE_LEN {
                    return Err(FileError::Oversized.into());
                }
                let relay = match self.configured_relay()? {
                    Some(r) => r,
                    None => self.config.local_relay.clone().ok_or(Error::NoRelay)?,
                };
                let descriptor = FileDescriptor {
                    name,
                    size,
                    digest,
                    secret: FileSecret::random(&mut self.rng),
                    relay,
                };
                descriptor.encode()?;
                let now = self.now.unix_secs();
                let file =
                    self.store
                        .db()
                        .insert_outgoing_file(id, &descriptor, &path, mtime, now)?;
                Ok(Response::File(Box::new(self.store.db().file(file)?)))
            }
            FileCommand::Uploaded { id } => {
                let info = db.file(id)?;
                if !info.outgoing || info.prefix < info.descriptor.chunk_count() {
                    return Err(Error::InvalidArgument("the file is not uploaded".into()));
                }
                if info.state != FileState::Uploading {
                    // Sent already (a driver that crashed after this step): nothing to do.
                    return Ok(Response::MessageId(0));
                }
                let contact = db.existing_contact(&info.contact)?;
                let settings = db.contact_settings(contact)?;
                let content = Content::File {
                    sent_at: self.now.unix_secs(),
                    disappear_secs: settings
                        .disappear_secs
                        .map_or(0, |d| u32::try_from(d).unwrap_or(u32::MAX)),
                    descriptor: info.descriptor.clone(),
                };
                let text = summary(&info.descriptor.name, info.descriptor.size);
                let row = self
                    .send_content(contact, &content, Some(&text), Pace::Fragments)?
                    .ok_or(Error::StoreCorrupted("message row missing"))?;
                self.store.db().set_file_message(id, row)?;
                self.store
                    .db()
                    .set_file_state(id, FileState::Sent, None, None, None)?;
                self.flush_due(None)?;
                Ok(Response::MessageId(row))
            }
            FileCommand::Progress { id, prefix } => {
                db.set_file_prefix(id, prefix)?;
                Ok(Response::Done)
            }
            FileCommand::Accept { id, dir, limit } => {
                let info = db.file(id)?;
                if info.outgoing {
                    return Err(Error::InvalidArgument("that file is one you sent".into()));
                }
                let limit = match limit {
                    Some(l) => l,
                    None => self.file_limit()?,
                };
                if info.descriptor.size > limit {
                    return Err(Error::FileOverLimit { limit });
                }
                if !Path::new(&dir).is_dir() {
                    return Err(Error::InvalidArgument("not a directory".into()));
                }
                match info.state {
                    FileState::Offered | FileState::Downloading | FileState::Failed => {}
                    FileState::Complete => {
                        return Err(Error::InvalidArgument("the file is saved already".into()));
                    }
                    FileState::Uploading | FileState::Sent => {
                        return Err(Error::StoreCorrupted("received file in a sending state"));
                    }
                }
                // A directory chosen before stays: the partial file is there.
                let keep = info.state == FileState::Downloading && info.dir.is_some();
                let dir = if keep { info.dir.clone() } else { Some(dir) };
                db.set_file_state(id, FileState::Downloading, None, dir.as_deref(), None)?;
                Ok(Response::File(Box::new(self.store.db().file(id)?)))
            }
            FileCommand::Finish { id, path, error } => {
                match (path, error) {
                    (_, Some(e)) => {
                        db.set_file_state(id, FileState::Failed, None, None, Some(e))?
                    }
                    (Some(p), None) => {
                        db.set_file_state(id, FileState::Complete, Some(&p), None, None)?;
                    }
                    (None, None) => {
                        return Err(Error::InvalidArgument(
                            "a finish needs a path or an error".into(),
                        ));
                    }
                }
                Ok(Response::Done)
            }
            FileCommand::Cleaned { id } => {
                db.set_file_cleaned(id)?;
                Ok(Response::Done)
            }
            FileCommand::SetLimit { bytes } => {
                match bytes {
                    Some(b) if (1..=MAX_FILE_LEN).contains(&b) => {
                        db.set_setting(Setting::FileLimit, &b.to_string())?;
                    }
                    Some(_) => {
                        return Err(Error::InvalidArgument(
                            "the limit must be between 1 byte and 64 GiB".into(),
                        ));
                    }
                    None => db.delete_setting(Setting::FileLimit)?,
                }
                Ok(Response::Count(self.file_limit()?))
            }
            FileCommand::Limit => Ok(Response::Count(self.file_limit()?)),
            FileCommand::Get { id } => Ok(Response::File(Box::new(db.file(id)?))),
            FileCommand::List { contact } => {
                let contact = contact.map(|c| db.existing_contact(&c)).transpose()?;
                Ok(Response::Files(db.files(contact)?))
            }
        }
    }
}
