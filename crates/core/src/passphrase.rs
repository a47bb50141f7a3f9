//! The store's passphrase and where it comes from, one order for every front end.
//!
//! [`resolve`] tries the non-interactive sources in this order and stops at the first one
//! that is configured:
//!
//! 1. the environment variable `HUSH_PASSPHRASE` ([`ENV_VAR`]), if set;
//! 2. the profile's `passphrase_command` (`config.toml`), if set, run as [`run_command`]
//!    describes;
//! 3. otherwise [`Resolution::Prompt`]: the front end must ask (the CLI prompts on the
//!    terminal, the TUI shows its unlock screen).
//!
//! A configured source that fails is an error, not a fall-through to the next one: a broken
//! `passphrase_command` must not silently turn into a prompt a script cannot answer.
//!
//! This module owns the passphrase while it is in memory ([`Passphrase`] zeroizes it and
//! never prints it) and must never put it, or anything a command printed, into an error,
//! a log line or a `Debug` string.

use std::ffi::OsString;
use std::fmt;
use std::process::{Command, Stdio};

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::profile::Profile;

/// The environment variable read first.
pub const ENV_VAR: &str = "HUSH_PASSPHRASE";

/// A passphrase, zeroized on drop. Its `Debug` is redacted; it has no `Display` and no
/// `Clone`, so a copy or a print is a visible decision at the call site.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Takes ownership of `text` (no copy is made).
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    /// The bytes that key the store (UTF-8).
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether it is shorter than [`SHORT_PASSPHRASE_CHARS`]: front ends warn when a
    /// profile is made with one (the store's key is only as strong as the passphrase).
    pub fn is_short(&self) -> bool {
        self.0.chars().count() < SHORT_PASSPHRASE_CHARS
    }
}

/// Passphrases with fewer characters than this get a warning when a profile is made.
pub const SHORT_PASSPHRASE_CHARS: usize = 12;

impl From<String> for Passphrase {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

impl From<&str> for Passphrase {
    fn from(text: &str) -> Self {
        Self::new(text.to_string())
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self(_) = self;
        f.write_str("Passphrase(<redacted>)")
    }
}

/// Constant-time in the contents (the length may show).
impl PartialEq for Passphrase {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

impl Eq for Passphrase {}

/// What [`resolve`] found.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Resolution {
    /// A non-interactive source gave the passphrase.
    Found(Passphrase),
    /// No non-interactive source is configured: the front end must ask the user.
    Prompt,
}

/// Why a configured source gave no passphrase. Messages never include the passphrase or
/// anything the command printed.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PassphraseError {
    /// `HUSH_PASSPHRASE` is set to the empty string.
    #[error("HUSH_PASSPHRASE is set but empty")]
    EnvEmpty,
    /// `HUSH_PASSPHRASE` is not valid UTF-8.
    #[error("HUSH_PASSPHRASE is not valid UTF-8")]
    EnvNotUtf8,
    /// `passphrase_command` cannot be split into words (see [`run_command`]).
    #[error("passphrase_command is not a valid command line: {0}")]
    CommandSyntax(&'static str),
    /// The program could not be started (not found, not executable).
    #[error("passphrase_command could not be started: {0}")]
    CommandStart(String),
    /// The command exited unsuccessfully: `Some(code)`, or `None` if a signal ended it.
    #[error("passphrase_command failed ({})", match .0 {
        Some(code) => format!("exit code {code}"),
        None => "ended by a signal".to_string(),
    })]
    CommandFailed(Option<i32>),
    /// The command printed nothing (or only a newline).
    #[error("passphrase_command printed nothing")]
    CommandEmpty,
    /// The command printed bytes that are not UTF-8.
    #[error("passphrase_command printed something that is not UTF-8")]
    CommandNotUtf8,
}

impl From<PassphraseError> for Error {
    fn from(e: PassphraseError) -> Self {
        Self::NoPassphrase(e.to_string())
    }
}

/// The passphrase of `profile` from the non-interactive sources, in the order of the module
/// documentation, reading `HUSH_PASSPHRASE` from this process's environment.
pub fn resolve(profile: &Profile) -> Result<Resolution> {
    resolve_with(std::env::var_os(ENV_VAR), profile)
}

/// [`resolve`] with the value of `HUSH_PASSPHRASE` given (`None`: not set). The profile's
/// configuration is read only if `env` is `None`.
pub fn resolve_with(env: Option<OsString>, profile: &Profile) -> Result<Resolution> {
    if let Some(value) = env {
        return Ok(Resolution::Found(from_env(value)?));
    }
    match profile.config()?.passphrase_command {
        Some(command) => Ok(Resolution::Found(run_command(&command)?)),
        None => Ok(Resolution::Prompt),
    }
}

/// The passphrase from the value of `HUSH_PASSPHRASE`, used as it is (nothing trimmed).
pub fn from_env(value: OsString) -> std::result::Result<Passphrase, PassphraseError> {
    let text = value.into_string().map_err(|raw| {
        wipe_os_string(raw);
        PassphraseError::EnvNotUtf8
    })?;
    if text.is_empty() {
        return Err(PassphraseError::EnvEmpty);
    }
    Ok(Passphrase::new(text))
}

#[cfg(unix)]
fn wipe_os_string(raw: OsString) {
    use std::os::unix::ffi::OsStringExt;
    raw.into_vec().zeroize();
}

#[cfg(not(unix))]
fn wipe_os_string(raw: OsString) {
    // No access to the bytes without a copy; dropping is all that can be done.
    drop(raw);
}

/// Runs `command` and takes the passphrase from its standard output.
///
/// How it is run: **no shell is involved.** The line is split into words the way a POSIX
/// shell splits a simple command, and nothing else: words are separated by whitespace,
/// `'...'` quotes literally, `"..."` quotes with `\"` and `\\` as escapes, and `\` outside
/// quotes escapes the next character. `$`, `~`, `*`, `|`, `;`, `&`, `<`, `>` and backquotes
/// have no meaning: they reach the program as they are. The first word is the program (found
/// in `PATH` if it has no `/`), the others its arguments. Whoever needs a pipeline writes
/// the shell explicitly: `sh -c 'pass show hush | head -n 1'`.
///
/// The command inherits the environment and standard error (so that an agent can prompt on
/// the terminal); its standard input is empty, so it cannot consume what is piped into hush.
///
/// The first line of its output is the passphrase (as `pass show` prints it: the secret
/// first, anything else after); the rest is dropped. An unsuccessful exit, an empty first
/// line and output that is not UTF-8 are errors ([`PassphraseError`]); none of them
/// includes the output, which is zeroized.
pub fn run_command(command: &str) -> std::result::Result<Passphrase, PassphraseError> {
    let words = split_words(command)?;
    let Some((program, args)) = words.split_first() else {
        return Err(PassphraseError::CommandSyntax("it is empty"));
    };
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| PassphraseError::CommandStart(e.kind().to_string()))?;
    let mut bytes = Zeroizing::new(out.stdout);
    if !out.status.success() {
        return Err(PassphraseError::CommandFailed(out.status.code()));
    }
    if let Some(end) = bytes.iter().position(|b| *b == b'\n') {
        // truncate keeps the allocation; the dropped tail is wiped with it later.
        bytes[end..].zeroize();
        bytes.truncate(end);
    }
    if bytes.is_empty() {
        return Err(PassphraseError::CommandEmpty);
    }
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => Ok(Passphrase::new(text)),
        Err(e) => {
            e.into_bytes().zeroize();
            Err(PassphraseError::CommandNotUtf8)
        }
    }
}

/// Splits a command line into words (the rules are in [`run_command`]).
fn split_words(line: &str) -> std::result::Result<Vec<String>, PassphraseError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(PassphraseError::CommandSyntax("unclosed ' quote")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => break,
                        },
                        Some(c) => word.push(c),
                        None => return Err(PassphraseError::CommandSyntax("unclosed \" quote")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(PassphraseError::CommandSyntax("it ends with \\")),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {

    use super::*;

    fn profile_with(config: Option<&str>) -> (tempfile::TempDir, Profile) {
        let dir = tempfile::tempdir().unwrap();
        let profile = Profile::new(dir.path(), "p").unwrap();
        std::fs::create_dir_all(profile.dir()).unwrap();
        if let Some(text) = config {
            std::fs::write(profile.config_path(), text).unwrap();
        }
        (dir, profile)
    }

    /// A `config.toml` with this command (a TOML literal string: no `'` in `command`).
    fn command_config(command: &str) -> String {
        format!("passphrase_command = '{command}'\n")
    }

    fn found(r: Resolution) -> Passphrase {
        match r {
            Resolution::Found(p) => p,
            Resolution::Prompt => panic!("no passphrase found"),
        }
    }

    #[test]
    fn debug_is_redacted() {
        let p = Passphrase::from("correct horse");
        assert_eq!(format!("{p:?}"), "Passphrase(<redacted>)");
        let r = Resolution::Found(p);
        assert!(!format!("{r:?}").contains("horse"));
    }

    #[test]
    fn env_is_taken_as_it_is() {
        let p = from_env(" spaced \n".into()).unwrap();
        assert_eq!(p.as_bytes(), b" spaced \n");
        assert_eq!(from_env("".into()), Err(PassphraseError::EnvEmpty));
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            let raw = OsString::from_vec(vec![b'a', 0xff]);
            assert_eq!(from_env(raw), Err(PassphraseError::EnvNotUtf8));
        }
    }

    #[test]
    fn command_output_minus_one_newline() {
        assert_eq!(run_command("echo secret").unwrap().as_bytes(), b"secret");
        // Only one newline goes, and nothing else is trimmed.
        assert_eq!(
            run_command("printf ' two words  '").unwrap().as_bytes(),
            b" two words  "
        );
        assert_eq!(run_command(r"printf 'x\r\n'").unwrap().as_bytes(), b"x\r");
        // As `pass show` prints an entry: the passphrase, then anything else.
        assert_eq!(
            run_command(r"printf 'пароль 密码\nuser: me\nurl: x\n'")
                .unwrap()
                .as_bytes(),
            "пароль 密码".as_bytes()
        );
        assert!(matches!(
            run_command(r"printf '\nsecond line only\n'"),
            Err(PassphraseError::CommandEmpty)
        ));
    }

    #[test]
    fn command_runs_without_a_shell() {
        // A shell would expand the variable, the glob and the substitution and run `true`.
        let p = run_command(r#"echo $HOME * `id` ; true "a \"b\"" 'c d' e\ f"#).unwrap();
        assert_eq!(
            std::str::from_utf8(p.as_bytes()).unwrap(),
            r#"$HOME * `id` ; true a "b" c d e f"#
        );
        // An explicit shell works for those who want one.
        assert_eq!(
            run_command("sh -c 'printf \"%s\\n\" pipe | tr a-z A-Z'")
                .unwrap()
                .as_bytes(),
            b"PIPE"
        );
    }

    #[test]
    fn command_failures_are_specific_and_never_show_the_output() {
        let cases = [
            (
                "sh -c 'echo leaked-secret; exit 3'",
                PassphraseError::CommandFailed(Some(3)),
            ),
            (
                "sh -c 'echo leaked-secret; kill -9 $$'",
                PassphraseError::CommandFailed(None),
            ),
            ("true", PassphraseError::CommandEmpty),
            ("echo", PassphraseError::CommandEmpty),
            (
                r"printf 'leaked-secret\377\n'",
                PassphraseError::CommandNotUtf8,
            ),
            (
                "hush-no-such-program-anywhere",
                PassphraseError::CommandStart("entity not found".into()),
            ),
            ("", PassphraseError::CommandSyntax("it is empty")),
            ("   ", PassphraseError::CommandSyntax("it is empty")),
            (
                "echo 'open",
                PassphraseError::CommandSyntax("unclosed ' quote"),
            ),
            (
                "echo \"open",
                PassphraseError::CommandSyntax("unclosed \" quote"),
            ),
            (
                "echo x\\",
                PassphraseError::CommandSyntax("it ends with \\"),
            ),
        ];
        for (command, want) in cases {
            let err = run_command(command).unwrap_err();
            assert_eq!(err, want, "{command}");
            let shown = format!("{err} {err:?} {}", Error::from(err.clone()));
            assert!(!shown.contains("leaked-secret"), "{shown}");
        }
    }

    #[test]
    fn order_env_then_command_then_prompt() {
        // Nothing configured: the front end must prompt.
        let (_d, plain) = profile_with(None);
        assert_eq!(resolve_with(None, &plain).unwrap(), Resolution::Prompt);
        let (_d, other) = profile_with(Some("notify = \"off\"\n"));
        assert_eq!(resolve_with(None, &other).unwrap(), Resolution::Prompt);

        // The command, when the environment has nothing.
        let (_d, cmd) = profile_with(Some(&command_config("echo from-command")));
        let p = found(resolve_with(None, &cmd).unwrap());
        assert_eq!(p.as_bytes(), b"from-command");

        // The environment first: the command is not even run.
        let (dir, env_first) = profile_with(None);
        let marker = dir.path().join("ran");
        std::fs::write(
            env_first.config_path(),
            command_config(&format!("touch {}", marker.display())),
        )
        .unwrap();
        let p = found(resolve_with(Some("from-env".into()), &env_first).unwrap());
        assert_eq!(p.as_bytes(), b"from-env");
        assert!(
            !marker.exists(),
            "the command ran although HUSH_PASSPHRASE is set"
        );
        // ... and so is a broken configuration not read.
        let (_d, broken) = profile_with(Some("bogus = 1\n"));
        let p = found(resolve_with(Some("from-env".into()), &broken).unwrap());
        assert_eq!(p.as_bytes(), b"from-env");
        assert!(matches!(
            resolve_with(None, &broken),
            Err(Error::Config { line: 1, .. })
        ));

        // A configured source that fails is an error, not a prompt.
        let (_d, failing) = profile_with(Some(&command_config("false")));
        let err = resolve_with(None, &failing).unwrap_err();
        assert!(matches!(err, Error::NoPassphrase(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "no passphrase: passphrase_command failed (exit code 1)"
        );
        let err = resolve_with(Some("".into()), &plain).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no passphrase: HUSH_PASSPHRASE is set but empty"
        );
    }

    #[test]
    fn equality() {
        assert_eq!(Passphrase::from("a"), Passphrase::from("a".to_string()));
        assert_ne!(Passphrase::from("a"), Passphrase::from("b"));
        assert_ne!(Passphrase::from("a"), Passphrase::from("ab"));
        assert!(Passphrase::from("").is_empty());
    }
}
