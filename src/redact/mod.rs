//! Format-preserving redaction and rehydration (SPEC "Snapshot" points 1 and 2, "Restore").
//!
//! [`redact_file`] replaces every declared secret of one file by its handle's placeholder,
//! **editing only the bytes of the value**: each format's [`Redactor`] finds the byte range
//! of the value at a locator (a JSON Pointer, a dotenv key, `section.key`, a regex group, the
//! whole file), and the driver copies every other byte verbatim. Every other occurrence of a
//! known value in a text file — raw, or as JSON, YAML, TOML or dotenv escape it — becomes the
//! same placeholder; in a binary file it is a [`Blocker`] instead, since an edit would corrupt
//! the file.
//!
//! [`rehydrate_file`] puts values back: each placeholder the redaction wrote gets its value
//! encoded for the context it sits in (JSON string escaping, the YAML scalar style, the TOML
//! string kind, the dotenv quoting), switching to a quoted style only when the value no longer
//! fits the original one, so that the real loaders (python-dotenv, bash, configparser, PyYAML,
//! tomllib) read exactly the value; a value its format cannot carry is refused. The rehydrated
//! file is then parsed again to prove it is valid and holds the new value at each locator.
//! Every escaping is defined once, in `crate::detect::encode`, which the leak gate searches
//! with: a form written here is a form the gate finds.
//!
//! Invariants:
//! - A [`Replacement`] holds no value and no hash of one: the locator, the handle, the byte
//!   offsets of its placeholders in the redacted file, and the format context (a scalar style,
//!   a quote kind, an escape flavour) needed to restore the original bytes.
//! - Rehydrating an unrotated value gives back the original file byte for byte, except where
//!   redaction reported [`WarningKind::Inexact`] (an unusual escaping it cannot reproduce
//!   without storing the value).
//! - Errors name the file, the line and column, the locator or the handle — never the text
//!   they found (`error.rs`).
//!
//! The driver lives in `file.rs`; one module per format; `stray.rs` finds known values
//! outside declared locations, with a [`StrayMatcher`] built once per run (a snapshot) and
//! given to [`redact_file_with`] for each file. `docs/redaction.md` is the user-facing page.

mod dotenv;
mod error;
mod file;
mod ini;
mod json;
mod property;
mod regex;
mod stray;
mod stream;
mod toml;
mod whole;
mod yaml;

use std::ops::Range;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::handle::Handle;
use crate::manifest::Locator;
use crate::secret::Secret;

pub use error::RedactError;
pub use file::{
    check_rehydratable, is_binary, redact_file, redact_file_with, rehydrate_file, values_at,
};
pub use property::round_trip_property;
pub use stray::{MIN_STRAY_LEN, StrayMatcher};
pub use stream::StrayReader;

/// One declared rule applied to one file: where the value sits and the handle it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Where the value sits in the file.
    pub locator: Locator,
    /// The handle whose placeholder replaces the value.
    pub handle: Handle,
}

/// What put a placeholder in a redacted file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A declared rule, by its locator.
    Rule(Locator),
    /// A known value found outside the declared locations (SPEC "Snapshot" point 2).
    Stray,
}

/// A record of placeholders that one locator (or the stray search) wrote for one handle in one
/// context. Stored in the archive index; it holds no value and no hash of a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replacement {
    /// The declared locator, or `stray`.
    pub source: Source,
    /// The handle whose placeholder was written.
    pub handle: Handle,
    /// Byte offset of each placeholder in the redacted file; their count is the number of
    /// spans replaced.
    pub offsets: Vec<usize>,
    /// How the value was written there, so that rehydration can write it the same way.
    pub context: Context,
}

/// How a value was written in its file: what rehydration needs to encode a value the same way.
///
/// Every variant describes syntax (a quote kind, a scalar style, an indentation), never the
/// value. A few flags depend on the value's class (a YAML plain scalar that read as a number,
/// a JSON string that escaped its non-ASCII characters); they are what a byte-identical
/// restore needs and reveal no more than the original file's layout did.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum Context {
    /// Bytes as they are: a regex group, or a stray value found unescaped.
    Raw,
    /// Inside a JSON string.
    Json(json::JsonStyle),
    /// A YAML scalar.
    Yaml(yaml::YamlStyle),
    /// A TOML string.
    Toml(toml::TomlStyle),
    /// A dotenv value.
    Dotenv(dotenv::DotenvStyle),
    /// An INI value.
    Ini(ini::IniStyle),
    /// The whole file.
    WholeFile(whole::WholeStyle),
    /// A cell of a SQLite database (`crate::sqlite`): the placeholders' offsets are in the
    /// cell's text, where the value sits as `inner` says.
    SqliteCell(Box<SqliteCell>),
}

/// Where a placeholder of a SQLite database sits: the cell, and how the value is written in
/// its text. Table and column names are the database's own; no value, no hash of one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SqliteCell {
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
    /// The row, by rowid.
    pub rowid: i64,
    /// Whether the cell is a BLOB (of UTF-8 text) rather than a TEXT.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blob: bool,
    /// How the value is written inside the cell's text (raw, or a stray value's escaping).
    pub inner: Context,
}

pub use dotenv::DotenvStyle;
pub use ini::IniStyle;
pub use json::JsonStyle;
pub use toml::TomlStyle;
pub use whole::{Encoding, WholeStyle};
pub use yaml::{BlockStyle, YamlStyle};

/// The result of redacting one file.
#[derive(Debug, Default)]
pub struct RedactedFile<'a> {
    /// The file with placeholders in place of values: the input itself when nothing was
    /// replaced (most files), so that it is not copied.
    pub output: std::borrow::Cow<'a, [u8]>,
    /// One record per (source, handle, context), for the archive index.
    pub replacements: Vec<Replacement>,
    /// The decoded values found at declared locations, for the store sync check and the
    /// leak gate. Duplicates (same handle, same value) appear once.
    pub values: Vec<(Handle, Secret)>,
    /// Things that need attention but did not stop the redaction.
    pub warnings: Vec<RedactWarning>,
    /// Known values inside a binary file, which redaction cannot edit: the snapshot must stop.
    pub blockers: Vec<Blocker>,
}

/// Something that needs attention in a redacted file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactWarning {
    /// The file, as given to [`redact_file`].
    pub path: String,
    /// The declared locator concerned.
    pub locator: Locator,
    /// What happened.
    pub kind: WarningKind,
}

/// The kinds of [`RedactWarning`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningKind {
    /// The declared rule found no value in the file.
    NotFound,
    /// The value was written in a way rehydration cannot reproduce byte for byte (for example
    /// a JSON `\u0041` escape for `A`, or a YAML plain scalar folded over several lines): a
    /// restore writes the same value with the format's usual escaping.
    Inexact,
}

/// A known value found inside a binary file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// The file, as given to [`redact_file`].
    pub path: String,
    /// Byte offset of the occurrence.
    pub offset: usize,
    /// The handle of the value found.
    pub handle: Handle,
}

/// The formats a file can be parsed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// RFC 8259 JSON.
    Json,
    /// YAML 1.2.
    Yaml,
    /// TOML 1.0.
    Toml,
    /// A dotenv file.
    Dotenv,
    /// An INI file.
    Ini,
}

impl Format {
    /// The format a locator requires, if any (`regex` and `whole_file` fit any file).
    pub fn of_locator(locator: &Locator) -> Option<Format> {
        match locator {
            Locator::Json(_) => Some(Format::Json),
            Locator::Yaml(_) => Some(Format::Yaml),
            Locator::Toml(_) => Some(Format::Toml),
            Locator::Env(_) => Some(Format::Dotenv),
            Locator::Ini(_) => Some(Format::Ini),
            Locator::Regex(_) | Locator::WholeFile | Locator::Sqlite(_) => None,
        }
    }

    /// The format a file name suggests, for files that only stray values touch.
    pub fn of_path(path: &str) -> Option<Format> {
        let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
        let ext = name.rsplit_once('.').map(|(_, e)| e);
        match ext {
            Some("json") => Some(Format::Json),
            Some("yaml" | "yml") => Some(Format::Yaml),
            Some("toml") => Some(Format::Toml),
            Some("ini" | "cfg" | "conf") => Some(Format::Ini),
            _ if name == ".env" || name.starts_with(".env.") || name.ends_with(".env") => {
                Some(Format::Dotenv)
            }
            _ => None,
        }
    }

    /// The redactor of this format.
    pub fn redactor(self) -> &'static dyn Redactor {
        match self {
            Format::Json => &json::Json,
            Format::Yaml => &yaml::Yaml,
            Format::Toml => &toml::Toml,
            Format::Dotenv => &dotenv::Dotenv,
            Format::Ini => &ini::Ini,
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
            Format::Toml => "TOML",
            Format::Dotenv => "dotenv",
            Format::Ini => "INI",
        })
    }
}

/// One structured format: finds where values sit. Encoding a value back is done by the
/// format's [`Context`] variant, so that a record read back from an index needs no parser.
pub trait Redactor: Sync {
    /// The format this redactor reads.
    fn format(&self) -> Format;

    /// Parses `text` and returns, for each locator (a pointer, a key, `section.key`, in its
    /// format's syntax), every place its value sits, in file order. A locator that names
    /// nothing gets an empty list; one that names something other than a string is an error.
    fn locate(&self, text: &str, locators: &[&str]) -> Result<Vec<Vec<Site>>, FormatError>;

    /// Every locator that names a string value in `text`, in file order, each once: what
    /// `init --discover` offers to [`Redactor::locate`] to find secrets it has no rule for.
    fn keys(&self, text: &str) -> Result<Vec<String>, FormatError>;
}

/// One place a value sits: the bytes to replace, the decoded value, and how it is written.
#[derive(Debug)]
pub struct Site {
    /// The bytes of the value, inside its quotes or block: what a placeholder replaces.
    pub range: Range<usize>,
    /// The decoded value.
    pub value: Secret,
    /// How the value is written there.
    pub context: Context,
}

/// Why a format could not read a file or a locator. Carries positions, never text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// The file is not valid in this format.
    Parse {
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// What the parser expected; never the offending text.
        reason: String,
    },
    /// A locator names a value that is not a string (a number, a table, an alias).
    NotAString {
        /// Index of the locator in the call.
        locator: usize,
        /// What it names instead.
        found: &'static str,
    },
    /// A locator is not valid for this format.
    BadLocator {
        /// Index of the locator in the call.
        locator: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// What replaces a placeholder on rehydration: `before` bytes before it and `after` bytes after
/// it are replaced too (a change of quoting style), by `bytes`.
pub(crate) struct Splice {
    pub(crate) before: usize,
    pub(crate) after: usize,
    pub(crate) bytes: Zeroizing<Vec<u8>>,
}

impl Splice {
    /// The value's bytes go exactly where the placeholder is.
    pub(crate) fn inside(bytes: Vec<u8>) -> Splice {
        Splice {
            before: 0,
            after: 0,
            bytes: Zeroizing::new(bytes),
        }
    }

    /// The value's bytes replace the placeholder and the `before`/`after` bytes around it.
    pub(crate) fn widened(before: usize, after: usize, bytes: Vec<u8>) -> Splice {
        Splice {
            before,
            after,
            bytes: Zeroizing::new(bytes),
        }
    }
}

/// A value that cannot be written in a context; the reason names the context, not the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unfit(pub(crate) &'static str);

impl Context {
    /// Encodes `value` for this context.
    pub(crate) fn encode(&self, value: &[u8]) -> Result<Splice, Unfit> {
        match self {
            Context::Raw => Ok(Splice::inside(value.to_vec())),
            Context::Json(style) => json::encode(style, value),
            Context::Yaml(style) => yaml::encode(style, value),
            Context::Toml(style) => toml::encode(style, value),
            Context::Dotenv(style) => dotenv::encode(style, value),
            Context::Ini(style) => ini::encode(style, value),
            Context::WholeFile(_) => Ok(Splice::inside(value.to_vec())),
            Context::SqliteCell(cell) => cell.inner.encode(value),
        }
    }
}

/// The text of a value, for formats that hold only text.
pub(crate) fn utf8(value: &[u8]) -> Result<&str, Unfit> {
    std::str::from_utf8(value).map_err(|_| Unfit("the value is not UTF-8 text"))
}

/// Keeps a parser's message only up to its first quote or colon: parsers like to quote the
/// offending input, and that input may be a secret.
pub(crate) fn scrub(reason: &str) -> String {
    let first_line = reason.lines().next().unwrap_or("");
    let cut = first_line
        .find(['`', '\'', '"', ':'])
        .unwrap_or(first_line.len());
    let kept = first_line[..cut].trim();
    if kept.is_empty() {
        "syntax error".to_string()
    } else {
        kept.to_string()
    }
}

/// 1-based line and character column of a byte offset (shared by the line-based formats).
pub(crate) fn position(text: &str, offset: usize) -> (usize, usize) {
    crate::json_span::line_col(text.as_bytes(), offset)
}

#[cfg(test)]
mod tests;
