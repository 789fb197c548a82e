//! The manifest: model, loading with line/column errors, path resolution and validation.
//!
//! [`Manifest::load`] is the one entry point: it finds the file (`-m`, `AGENTBAK_MANIFEST`,
//! `./agentbak.json`), parses it, checks it beyond syntax, and resolves every path relative to
//! the manifest's folder. Anything wrong is a [`ManifestError`] that names the file, the line
//! and column, the field (as a JSON Pointer) and what was expected; the command exits 2.

mod layout;
mod load;
mod model;
mod validate;

pub use layout::real_path;
pub(crate) use layout::shown;
pub use load::{DEFAULT_MANIFEST, ENV_MANIFEST, find_manifest_path};
pub use model::*;
pub use validate::parse_ttl;

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, 0 when the problem has no position (the file is missing).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The field, as a JSON Pointer (`/secrets/2/handle`); empty for the whole document.
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
}

/// A manifest that could not be used: every problem found, each with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// The manifest file.
    pub path: PathBuf,
    /// What is wrong with it; never empty.
    pub problems: Vec<Problem>,
}

impl ManifestError {
    pub(crate) fn single(path: PathBuf, problem: Problem) -> Self {
        ManifestError {
            path,
            problems: vec![problem],
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if p.line == 0 {
                write!(f, "{path}: {}", p.message)?;
            } else if p.field.is_empty() {
                write!(f, "{path}:{}:{}: {}", p.line, p.column, p.message)?;
            } else {
                write!(
                    f,
                    "{path}:{}:{}: field `{}`: {}",
                    p.line, p.column, p.field, p.message
                )?;
            }
        }
        Ok(())
    }
}
