//! How the CLI reports a failure: one line of text on stderr (`hush: <message>`), or under
//! `--json` one JSON object `{"code": ..., "message": ...}`, and an exit code by kind. The
//! codes and exit codes are stable (README, "Errors and exit codes"); the messages are for
//! people and may change. Messages carry no names, texts or links (hush-core's errors never
//! do, and the CLI's own say what was wrong, not with what).

use std::process::ExitCode;

use hush_core::Error;

/// A mistake in how the CLI was called, found by the CLI itself (not by clap or the engine).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// A usage error as an `anyhow::Error`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Usage(message.into()).into()
}

/// What kind of failure: its stable code and exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Anything else.
    Other,
    /// Arguments the CLI cannot use (clap's errors included).
    Usage,
    /// A link that is not a usable invite.
    InvalidLink,
    /// An invite this profile made itself.
    OwnInvite,
    /// An invite from someone already a contact.
    AlreadyContact,
    /// The passphrase does not open the store.
    WrongPassphrase,
    /// No passphrase source gave one.
    NoPassphrase,
    /// No such profile, contact or invite.
    NotFound,
    /// The name or profile exists already.
    Exists,
    /// The relay could not be reached.
    RelayUnreachable,
    /// The relay's certificate does not match the pin of its address.
    CertificateMismatch,
    /// The relay speaks another protocol version.
    RelayVersionMismatch,
    /// The profile's SOCKS5 proxy is unreachable or refused.
    ProxyFailed,
    /// Another hush process holds the profile.
    ProfileBusy,
    /// The store is damaged.
    StoreDamaged,
    /// The profile was made by a hush of protocol version 1.
    ProfileTooOld,
    /// A file transfer was refused or failed (docs/PROTOCOL.md 7a): its name is the code.
    File(hush_core::files::FileError),
    /// Private routing through the own relay failed; nothing went directly (the message
    /// names the reason).
    PrivateRoute,
}

impl Kind {
    /// The stable code in `--json` errors.
    pub fn code(self) -> &'static str {
        match self {
            Self::Other => "error",
            Self::Usage => "usage",
            Self::InvalidLink => "invalid_link",
            Self::OwnInvite => "own_invite",
            Self::AlreadyContact => "already_contact",
            Self::WrongPassphrase => "wrong_passphrase",
            Self::NoPassphrase => "no_passphrase",
            Self::NotFound => "not_found",
            Self::Exists => "exists",
            Self::RelayUnreachable => "relay_unreachable",
            Self::CertificateMismatch => "certificate_mismatch",
            Self::RelayVersionMismatch => "relay_version_mismatch",
            Self::ProxyFailed => "proxy_failed",
            Self::ProfileBusy => "profile_busy",
            Self::StoreDamaged => "store_damaged",
            Self::ProfileTooOld => "profile_too_old",
            Self::File(e) => e.name(),
            Self::PrivateRoute => "private_route_waiting",
        }
    }

    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Other
            | Self::OwnInvite
            | Self::AlreadyContact
            | Self::NoPassphrase
            | Self::Exists
            | Self::StoreDamaged
            | Self::ProfileTooOld => 1,
            Self::Usage | Self::InvalidLink => 2,
            Self::WrongPassphrase => 3,
            Self::NotFound => 4,
            Self::RelayUnreachable | Self::RelayVersionMismatch | Self::PrivateRoute => 5,
            Self::CertificateMismatch => 6,
            Self::ProfileBusy => 7,
            Self::ProxyFailed => 8,
            Self::File(e) => file_exit_code(e),
        }
    }

    fn of_core(e: &Error) -> Self {
        match e {
            Error::WrongPassphrase => Self::WrongPassphrase,
            Error::NoPassphrase(_) => Self::NoPassphrase,
            Error::StoreCorrupted(_) => Self::StoreDamaged,
            Error::ProfileFromProtocol1 => Self::ProfileTooOld,
            Error::ProfileBusy => Self::ProfileBusy,
            Error::ProfileExists | Error::DuplicateContact => Self::Exists,
            Error::NoProfile
            | Error::UnknownContact
            | Error::UnknownInvite
            | Error::UnknownFile => Self::NotFound,
            Error::File(e) => Self::File(*e),
            Error::FileOverLimit { .. } => Self::File(hush_core::files::FileError::OverLimit),
            Error::InvalidProfileName | Error::InvalidArgument(_) => Self::Usage,
            Error::Crypto(
                hush_crypto::Error::InvalidInvite(_)
                | hush_crypto::Error::InviteChecksum
                | hush_crypto::Error::UnusableRelay(_),
            ) => Self::InvalidLink,
            Error::OwnInvite => Self::OwnInvite,
            Error::AlreadyContact => Self::AlreadyContact,
            Error::RelayUnreachable => Self::RelayUnreachable,
            Error::CertificateMismatch => Self::CertificateMismatch,
            Error::RelayVersionMismatch => Self::RelayVersionMismatch,
            Error::ProxyFailed => Self::ProxyFailed,
            Error::PrivateRoute(_) => Self::PrivateRoute,
            _ => Self::Other,
        }
    }

    /// The kind of a failure the CLI ended with.
    pub fn of(e: &anyhow::Error) -> Self {
        if let Some(core) = e.downcast_ref::<Error>() {
            Self::of_core(core)
        } else if e.downcast_ref::<Usage>().is_some() {
            Self::Usage
        } else {
            Self::Other
        }
    }
}

/// Exit codes of file failures: 9 the sender's file is unusable (a hostile or broken
/// descriptor or chunk, a digest that does not match), 10 larger than the user's limit, 11
/// the relay does not have or take the chunks, 12 the source changed while being sent, 13 a
/// photo's metadata could not be removed.
fn file_exit_code(e: hush_core::files::FileError) -> u8 {
    use hush_core::files::FileError as F;
    match e {
        F::OverLimit => 10,
        F::ChunkMissing | F::RelayRefused => 11,
        F::SourceChanged => 12,
        F::Unstrippable => 13,
        _ => 9,
    }
}

/// The stderr line (newline included) of a failure of `kind`, text or JSON.
pub fn render(kind: Kind, message: &str, json: bool) -> String {
    let message = message.trim_end();
    if json {
        format!(
            "{}\n",
            serde_json::json!({"code": kind.code(), "message": message})
        )
    } else {
        format!("hush: {message}\n")
    }
}

/// Prints `message` as a failure of `kind` (text or JSON) and returns its exit code.
pub fn report(kind: Kind, message: &str, json: bool) -> ExitCode {
    eprint!("{}", render(kind, message, json));
    ExitCode::from(kind.exit_code())
}

/// Prints an error the CLI ended with once: its own message, not the chain of its sources
/// (hush-core's messages already include what they wrap).
pub fn report_error(e: &anyhow::Error, json: bool) -> ExitCode {
    report(Kind::of(e), &e.to_string(), json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invite_error_prints_its_text_once() {
        let e: anyhow::Error =
            Error::from(hush_crypto::Error::InvalidInvite("not base64url")).into();
        assert_eq!(e.to_string(), "invalid invite: not base64url");
        assert_eq!(Kind::of(&e), Kind::InvalidLink);
    }

    #[test]
    fn exit_codes_of_the_documented_kinds_differ() {
        let kinds = [
            Kind::Usage,
            Kind::WrongPassphrase,
            Kind::NotFound,
            Kind::RelayUnreachable,
            Kind::CertificateMismatch,
            Kind::ProfileBusy,
            Kind::ProxyFailed,
        ];
        let mut codes: Vec<u8> = kinds.iter().map(|k| k.exit_code()).collect();
        codes.push(Kind::Other.exit_code());
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), kinds.len() + 1);
    }
}
