//! The known values of a manifest: the values at its declared locations, read from the state.
//!
//! Every locator is read by the redaction engine's parsers (`redact::values_at`), the same ones
//! the snapshot uses; a file that cannot be read is listed in [`KnownFromManifest::notes`] so a
//! report says what was not searched.
//! Invariant: values go straight into [`Secret`]s and are labelled by their handle.

use std::path::Path;

use crate::detect::KnownValues;
use crate::manifest::{Locator, Manifest};
use crate::redact::values_at;
use crate::secret::Secret;

/// Known values read from a manifest's state, and what could not be read.
#[derive(Debug)]
pub struct KnownFromManifest {
    /// The values, labelled by handle.
    pub values: KnownValues,
    /// Rules whose values were not read, and why.
    pub notes: Vec<String>,
}

/// Largest file read for a value: a secret file is small; a huge one is not a value.
const MAX_VALUE_FILE: u64 = 16 * 1024 * 1024;

/// Reads every declared value from the manifest's state folder.
pub fn known_values(manifest: &Manifest) -> KnownFromManifest {
    let mut values: Vec<(String, Secret)> = Vec::new();
    let mut notes = Vec::new();
    for (index, rule) in manifest.secrets.iter().enumerate() {
        let label = rule.handle.with_agent(&manifest.agent).to_string();
        let locator = rule.locator();
        let files = match rule.files_in(&manifest.state) {
            Ok(files) => files,
            Err(reason) => {
                notes.push(format!("secrets[{index}] ({label}): {reason}"));
                continue;
            }
        };
        for file in files {
            match read_values(&file, &locator) {
                Ok(found) => values.extend(found.into_iter().map(|v| (label.clone(), v))),
                Err(e) => notes.push(format!("{}: {e}", file.display())),
            }
        }
    }
    KnownFromManifest {
        values: KnownValues::new(values),
        notes,
    }
}

fn read_values(path: &Path, locator: &Locator) -> std::io::Result<Vec<Secret>> {
    let size = std::fs::metadata(path)?.len();
    if size > MAX_VALUE_FILE {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_VALUE_FILE} bytes; not read for values"
        )));
    }
    let content = Secret::new(std::fs::read(path)?);
    let mut out = values_at(&path.display().to_string(), content.expose(), locator)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    if *locator == Locator::WholeFile {
        // A store usually holds a whole-file value without the file's final newline.
        let bytes = content.expose();
        if let Some(t) = bytes
            .strip_suffix(b"\n")
            .map(|b| b.strip_suffix(b"\r").unwrap_or(b))
        {
            out.push(Secret::from_slice(t));
        }
    }
    Ok(out)
}
