//! Errors of redaction and rehydration.
//!
//! Every variant names the file and where in it (line and column, byte offset, locator,
//! handle) and what to do, never the text found there: a parse error in a credentials file
//! would otherwise print the credential.

use crate::handle::Handle;
use crate::manifest::Locator;

use super::Format;

/// Why a file could not be redacted or rehydrated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedactError {
    /// The file is not valid in the format its rule declares.
    #[error(
        "{path}:{line}:{column}: not valid {format} ({reason}); fix the file or the rule's locator kind"
    )]
    Parse {
        /// The file.
        path: String,
        /// The format it was read as.
        format: Format,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// What the parser expected.
        reason: String,
    },

    /// A locator names something that is not a string.
    #[error("{path}: {locator} names {found}, not a string; point the rule at the secret itself")]
    NotAString {
        /// The file.
        path: String,
        /// The rule's locator.
        locator: Locator,
        /// What it names.
        found: &'static str,
    },

    /// A locator is malformed for its format.
    #[error("{path}: invalid locator {locator}: {reason}")]
    BadLocator {
        /// The file.
        path: String,
        /// The rule's locator.
        locator: Locator,
        /// What is wrong.
        reason: String,
    },

    /// A structured rule was applied to a binary file.
    #[error(
        "{path} is a binary file (NUL bytes or invalid UTF-8 in its first 8 KiB); only a `whole_file` rule fits it, not {locator} (a SQLite database takes `sqlite` rules; or leave the file out with `exclude`)"
    )]
    NotText {
        /// The file.
        path: String,
        /// The rule's locator.
        locator: Locator,
    },

    /// Rules of two formats were declared for one file.
    #[error("{path}: rules {first} and {second} read the file as two different formats")]
    MixedFormats {
        /// The file.
        path: String,
        /// One rule's locator.
        first: Locator,
        /// The other rule's locator.
        second: Locator,
    },

    /// Two rules claim overlapping bytes.
    #[error("{path}: rules {first} and {second} claim overlapping bytes at offset {offset}")]
    Overlap {
        /// The file.
        path: String,
        /// One rule's locator.
        first: Locator,
        /// The other rule's locator.
        second: Locator,
        /// Where the second range starts.
        offset: usize,
    },

    /// Redaction produced a file its own parser cannot read back with the placeholder at the
    /// locator: a stray value was part of the file's syntax (a TOML bare key, a value spanning
    /// two JSON strings).
    #[error(
        "{path}: replacing a value would break the {format} structure near line {line}, column {column} (a known value is part of the file's syntax, such as a key); rename it or exclude the file"
    )]
    BrokeStructure {
        /// The file.
        path: String,
        /// Its format.
        format: Format,
        /// 1-based line of the problem in the redacted file.
        line: usize,
        /// 1-based column.
        column: usize,
    },

    /// No value was given for a handle that the file needs.
    #[error("{path}: no value for {handle}")]
    MissingValue {
        /// The file.
        path: String,
        /// The handle.
        handle: Box<Handle>,
    },

    /// The redacted file does not hold the placeholder its record says.
    #[error(
        "{path}: no placeholder of {handle} at byte {offset}; the archive's file and index disagree"
    )]
    NoPlaceholder {
        /// The file.
        path: String,
        /// The handle.
        handle: Box<Handle>,
        /// Where the record says the placeholder is.
        offset: usize,
    },

    /// A value cannot be written where its placeholder sits.
    #[error("{path}: the value of {handle} cannot be written at byte {offset}: {reason}")]
    Unrepresentable {
        /// The file.
        path: String,
        /// The handle.
        handle: Box<Handle>,
        /// Where its placeholder is.
        offset: usize,
        /// Why (the context's rule, not the value).
        reason: &'static str,
    },

    /// A whole binary file's value is not base64, as its record says it must be.
    #[error("{path}: the value of {handle} is not base64, but the file is binary")]
    NotBase64 {
        /// The file.
        path: String,
        /// The handle.
        handle: Box<Handle>,
    },

    /// A SQLite database could not be read, redacted or written (`crate::sqlite`).
    #[error("{path}: SQLite: {reason}")]
    Sqlite {
        /// The file.
        path: String,
        /// What went wrong (SQLite's message, a table or column name; never a cell's value).
        reason: String,
    },

    /// The rehydrated file does not parse, or does not hold the new value at its locator.
    #[error("{path}: after rehydration, {what}; the file was not written")]
    Verify {
        /// The file.
        path: String,
        /// What did not hold (a locator and line, never a value).
        what: String,
    },
}
