//! Typed errors and the one place that maps them to exit codes.
//!
//! Every failure the library can report is a variant of [`Error`]. Variants carry what a user
//! needs to act (a path, a manifest line, a handle) and never a secret value: the secret type
//! has no `Display`, so a value cannot be formatted into a message by accident.
//!
//! The exit codes are the contract of `SPEC.md` ("Exit codes"); `docs/exit-codes.md` is the
//! user-facing copy of the table in [`ExitCode`].

use std::path::PathBuf;

use crate::manifest::ManifestError;
use crate::store::StoreErrorKind;

/// The documented exit codes of `agentbak`, in one place.
///
/// When several outcomes apply at once (for example `verify` finds a leak and a corrupt
/// archive), the most severe wins; [`ExitCode::severity`] defines that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ExitCode {
    /// Success.
    Success = 0,
    /// The command could not complete; nothing partial is left behind.
    Error = 1,
    /// Usage error: bad flags, bad manifest.
    Usage = 2,
    /// Done with warnings: the work was done, but something needs attention.
    Warnings = 3,
    /// Secrets found: plaintext secrets would remain, or `scan`/`verify` found some.
    SecretsFound = 4,
    /// Integrity failure: a snapshot is corrupt, tampered with, or cannot be decrypted.
    Integrity = 5,
    /// Unresolved handles: a handle could not be fetched.
    Unresolved = 6,
    /// Locked: another run holds the repository.
    Locked = 7,
}

impl ExitCode {
    /// The numeric process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Rank used to pick one code when several outcomes apply: a higher rank wins.
    ///
    /// Order, most severe first: integrity (5) > secrets found (4) > unresolved (6) >
    /// error (1) > usage (2) > locked (7) > warnings (3) > success (0). A corrupt backup is
    /// the worst news for an auditor; a leak comes next because it is a live exposure.
    pub fn severity(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::Warnings => 1,
            ExitCode::Locked => 2,
            ExitCode::Usage => 3,
            ExitCode::Error => 4,
            ExitCode::Unresolved => 5,
            ExitCode::SecretsFound => 6,
            ExitCode::Integrity => 7,
        }
    }

    /// The more severe of two codes.
    pub fn worst(self, other: ExitCode) -> ExitCode {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }
}

/// A number that is not one of the documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not an agentbak exit code (0 to 7)")]
pub struct UnknownExitCode(pub u8);

impl TryFrom<u8> for ExitCode {
    type Error = UnknownExitCode;

    fn try_from(n: u8) -> Result<ExitCode, UnknownExitCode> {
        Ok(match n {
            0 => ExitCode::Success,
            1 => ExitCode::Error,
            2 => ExitCode::Usage,
            3 => ExitCode::Warnings,
            4 => ExitCode::SecretsFound,
            5 => ExitCode::Integrity,
            6 => ExitCode::Unresolved,
            7 => ExitCode::Locked,
            other => return Err(UnknownExitCode(other)),
        })
    }
}

/// Reports carry their exit code as the number the process exits with.
impl serde::Serialize for ExitCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u8(self.code())
    }
}

/// What every command's report shares: the exit code its outcome calls for. `cli` renders a
/// report and exits with this code; the commands never compute one themselves.
pub trait Report {
    /// The exit code of this outcome (see [`ExitCode`]).
    fn exit_code(&self) -> ExitCode;
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

/// Every error the library reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifest could not be read, parsed or validated.
    #[error(transparent)]
    Manifest(#[from] ManifestError),

    /// A handle or placeholder did not parse.
    #[error(transparent)]
    Handle(#[from] crate::handle::HandleError),

    /// Bad command-line usage that clap cannot express.
    #[error("{0}")]
    Usage(String),

    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An archive is corrupt, truncated, tampered with, or cannot be decrypted.
    #[error(transparent)]
    Integrity(#[from] crate::archive::IntegrityError),

    /// Another run holds the repository lock.
    #[error(
        "the repository is locked by {holder} (lock file {path}); wait for that run to finish (`snapshot --wait SECS` waits for it)"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Who holds it: pid, host and start time, as the lock file says.
        holder: String,
    },

    /// An age recipient that does not parse (recipients are public keys, safe to show).
    #[error("encryption recipient `{recipient}`: {reason}")]
    Recipient {
        /// The recipient as written.
        recipient: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A decryption identity that is missing or does not parse. Never quotes the key.
    #[error("identity {origin}: {reason}")]
    Identity {
        /// Where the identity came from (a path, a handle) or the archive that needs one.
        origin: String,
        /// What is wrong.
        reason: String,
    },

    /// An entry that cannot be written into an archive as given.
    #[error("archive entry `{path}`: {reason}")]
    Entry {
        /// The entry's path.
        path: String,
        /// What is wrong.
        reason: String,
    },

    /// A snapshot id or `latest` that names no snapshot of the repository.
    #[error("no snapshot `{id}` in {repository} (see `agentbak list`)")]
    SnapshotNotFound {
        /// The id asked for.
        id: String,
        /// The repository folder.
        repository: PathBuf,
    },
    /// A secret store failed; the error names the store, the path and the kind, never a value.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A file could not be redacted or rehydrated (boxed: it is the largest error).
    #[error(transparent)]
    Redact(Box<crate::redact::RedactError>),

    /// The manifest's `detect` section cannot be used (a custom rule's regex, an allow glob).
    #[error(transparent)]
    Detect(#[from] crate::detect::DetectError),

    /// `git` failed for `scan --git` / `--staged` (not a repository, a bad range).
    #[error("{0}")]
    Git(String),

    /// A restore target that cannot be used as asked (not empty, not a folder).
    #[error("restore target {path}: {reason}")]
    Target {
        /// The target folder.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },

    /// A restore target that is, holds or lies inside what agentbak needs: the repository, the
    /// manifest, a store's file (issue 17). Refused before anything is touched.
    #[error("restore target {target} {relation} {what} {path}; restore elsewhere")]
    ProtectedTarget {
        /// The target as given, with what it resolves to when that differs.
        target: String,
        /// `is`, `holds` or `lies inside`.
        relation: &'static str,
        /// What would be replaced: `the repository`, `the identity of store `local``.
        what: String,
        /// Its path, with what it resolves to when that differs.
        path: String,
    },

    /// A decryption identity named by a handle that could not be fetched.
    #[error("identity {handle}: {status}; without it the archive cannot be decrypted")]
    IdentityUnresolved {
        /// The handle.
        handle: String,
        /// The resolver's status and detail (never a value).
        status: String,
    },

    /// An error whose message named a file whose name holds a secret, with that secret
    /// masked (`detect::NameMasks`); it keeps the exit code of the error it replaces.
    #[error("{message}")]
    Masked {
        /// The message, masked.
        message: String,
        /// The exit code of the original error.
        code: ExitCode,
    },
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The exit code of this error: the one place where errors meet exit codes.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Manifest(_) | Error::Handle(_) | Error::Usage(_) | Error::Detect(_) => {
                ExitCode::Usage
            }
            Error::Recipient { .. } | Error::Identity { .. } | Error::ProtectedTarget { .. } => {
                ExitCode::Usage
            }
            Error::Io { .. }
            | Error::Redact(_)
            | Error::Git(_)
            | Error::Entry { .. }
            | Error::SnapshotNotFound { .. }
            | Error::Target { .. } => ExitCode::Error,
            Error::IdentityUnresolved { .. } => ExitCode::Unresolved,
            Error::Integrity(_) => ExitCode::Integrity,
            Error::Masked { code, .. } => *code,
            Error::Locked { .. } => ExitCode::Locked,
            // A handle that cannot be fetched is "unresolved" (SPEC exit 6); a store that is
            // misconfigured or lost a write race is a plain error.
            Error::Store(e) => match e.kind {
                StoreErrorKind::Missing
                | StoreErrorKind::Forbidden
                | StoreErrorKind::Sealed
                | StoreErrorKind::Unavailable
                | StoreErrorKind::Unreachable => ExitCode::Unresolved,
                StoreErrorKind::KvV1 | StoreErrorKind::Conflict | StoreErrorKind::Other => {
                    ExitCode::Error
                }
            },
        }
    }
}

impl From<crate::redact::RedactError> for Error {
    fn from(e: crate::redact::RedactError) -> Self {
        Error::Redact(Box::new(e))
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ExitCode; 8] = [
        ExitCode::Success,
        ExitCode::Error,
        ExitCode::Usage,
        ExitCode::Warnings,
        ExitCode::SecretsFound,
        ExitCode::Integrity,
        ExitCode::Unresolved,
        ExitCode::Locked,
    ];

    #[test]
    fn codes_match_the_spec_table() {
        let codes: Vec<u8> = ALL.iter().map(|c| c.code()).collect();
        assert_eq!(codes, vec![0, 1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn codes_round_trip_through_their_numbers_and_nothing_else_is_one() {
        for c in ALL {
            assert_eq!(ExitCode::try_from(c.code()), Ok(c));
            assert_eq!(serde_json::to_string(&c).unwrap(), c.code().to_string());
        }
        for n in 8..=u8::MAX {
            assert_eq!(ExitCode::try_from(n), Err(UnknownExitCode(n)));
        }
    }

    #[test]
    fn severity_is_a_total_order() {
        let mut ranks: Vec<u8> = ALL.iter().map(|c| c.severity()).collect();
        ranks.sort_unstable();
        ranks.dedup();
        assert_eq!(ranks.len(), ALL.len());
    }

    #[test]
    fn worst_prefers_integrity_over_leaks_over_unresolved() {
        use ExitCode::*;
        for (a, b, worst) in [
            (Unresolved, SecretsFound, SecretsFound),
            (SecretsFound, Integrity, Integrity),
            (Warnings, Success, Warnings),
            (Success, Unresolved, Unresolved),
        ] {
            assert_eq!(a.worst(b), worst, "{a:?} and {b:?}");
            assert_eq!(b.worst(a), worst, "{b:?} and {a:?}");
        }
    }

    #[test]
    fn manifest_errors_are_usage_errors() {
        let err = Error::Usage("x".into());
        assert_eq!(err.exit_code(), ExitCode::Usage);
        assert_eq!(
            Error::Git("not a repository".into()).exit_code(),
            ExitCode::Error
        );
    }
}
