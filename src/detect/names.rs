//! Secrets in names: file and folder names, link targets, archive entry names.
//!
//! A token can be a file name (`sessions/ghp_….json`, issue 17). Such a name is a finding of
//! its own, and it must never be printed as is — not on stderr, not in `--json`, not in a log
//! line or an error. [`NameMasks::scan`] scans names as one text, one name per line, and
//! returns the findings and the masks: each secret found in a name with its masked preview.
//! [`NameMasks::apply`] then replaces every such secret in any text that may show a name: a
//! relative path, an absolute one, a report line, an error message. `snapshot`, `verify` and
//! `scan` all mask through it.
//!
//! Invariant: after `apply`, a text holds no secret that the scan found in a name. Secrets are
//! replaced longest first, so a secret that contains another (or a whole name that holds
//! several) is never left half masked; a match that does not fall on character boundaries
//! masks its whole name. The secrets are held as [`Secret`]s: `Debug` shows only their number.

use std::borrow::Cow;
use std::fmt;

use super::{Detector, Finding};
use crate::secret::Secret;

/// Secrets found in names, each with what is shown instead.
#[derive(Clone, Default)]
pub struct NameMasks {
    /// (the secret as it appears in a name, its masked form), longest secret first.
    pairs: Vec<(Secret, String)>,
}

impl fmt::Debug for NameMasks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NameMasks({} secret(s))", self.pairs.len())
    }
}

impl NameMasks {
    /// Scans `names` with `detector` (as one text under `label`, one name per line). Each
    /// finding's `path` is the name it was found in, masked; its `line` is the name's place
    /// in `names`, from 1.
    pub fn scan(detector: &Detector, label: &str, names: &[String]) -> (Vec<Finding>, NameMasks) {
        let text = names.join("\n");
        let mut found = detector.scan_bytes(label, text.as_bytes());
        let mut starts = Vec::with_capacity(names.len());
        let mut at = 0u64;
        for n in names {
            starts.push(at);
            at += n.len() as u64 + 1;
        }
        let mut masks = NameMasks::default();
        for f in &found {
            let line = f.line.saturating_sub(1);
            let Some(name) = names.get(line) else {
                continue;
            };
            let start = (f.offset - starts[line]) as usize;
            let end = (start + f.length).min(name.len());
            match name.get(start..end) {
                Some(secret) if !secret.is_empty() => masks.add(secret, &f.preview),
                _ => masks.add(name, &format!("<a name of {} bytes>", name.len())),
            }
        }
        masks.sort();
        for f in &mut found {
            if let Some(name) = names.get(f.line.saturating_sub(1)) {
                f.path = masks.mask(name).into_owned();
            }
        }
        (found, masks)
    }

    fn add(&mut self, secret: &str, masked: &str) {
        if !self
            .pairs
            .iter()
            .any(|(s, _)| s.expose() == secret.as_bytes())
        {
            self.pairs
                .push((Secret::from(secret.to_string()), masked.to_string()));
        }
    }

    fn sort(&mut self) {
        self.pairs.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
    }

    /// Adds the masks of `other`.
    pub fn extend(&mut self, other: NameMasks) {
        for (secret, masked) in other.pairs {
            if !self.pairs.iter().any(|(s, _)| *s == secret) {
                self.pairs.push((secret, masked));
            }
        }
        self.sort();
    }

    /// Whether no name held a secret.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// `text` with every secret found in a name replaced by its masked form.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for (secret, masked) in &self.pairs {
            let Some(s) = secret.expose_str() else {
                continue;
            };
            if out.contains(s) {
                out = Cow::Owned(out.replace(s, masked));
            }
        }
        out
    }

    /// Masks `text` in place (see [`NameMasks::mask`]).
    pub fn apply(&self, text: &mut String) {
        if let Cow::Owned(masked) = self.mask(text) {
            *text = masked;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOLDER: &str = "ghp_FolderTok3nAbcdefghijklmnopqrstuvw12";
    const FILE: &str = "ghp_PlantedNameTok3nAbcdefghijklmnopq123";

    fn names() -> Vec<String> {
        vec![
            "notes.md".to_string(),
            FOLDER.to_string(),
            format!("{FOLDER}/x.txt"),
            format!("{FOLDER}/{FILE}.json"),
        ]
    }

    #[test]
    fn every_secret_in_a_name_is_masked_wherever_the_name_appears() {
        let (found, masks) = NameMasks::scan(&Detector::builtin(), "<names>", &names());
        assert_eq!(found.len(), 4, "{found:?}");
        assert_eq!(found[0].line, 2);
        for f in &found {
            assert!(!f.path.contains(FOLDER) && !f.path.contains(FILE), "{f:?}");
        }
        // A text that holds the folder and, after it, the file: both go, whatever the order
        // of the masks (a mask of the folder's whole path would leave the file's token).
        let absolute = format!("/srv/state/{FOLDER}/{FILE}.json: permission denied");
        let shown = masks.mask(&absolute);
        assert!(!shown.contains(FOLDER) && !shown.contains(FILE), "{shown}");
        assert!(shown.starts_with("/srv/state/ghp_"), "{shown}");
        assert!(shown.ends_with(".json: permission denied"), "{shown}");
        assert_eq!(masks.mask("notes.md"), "notes.md");
        assert!(!format!("{masks:?}").contains("ghp_"));
    }

    #[test]
    fn a_clean_tree_has_no_masks() {
        let (found, masks) = NameMasks::scan(
            &Detector::builtin(),
            "<names>",
            &["a.md".to_string(), "b/c.json".to_string()],
        );
        assert!(found.is_empty() && masks.is_empty());
        assert!(matches!(masks.mask("a.md"), Cow::Borrowed(_)));
    }
}
