//! The manifest's secret rules as the snapshot applies them: `{agent}` filled into each
//! handle, each `file` glob compiled once.

use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::manifest::{Manifest, SecretRule};
use crate::redact::Rule;

/// The rules of the manifest with `{agent}` filled and their file globs compiled.
pub(super) struct Rules {
    pub(super) rules: Vec<(SecretRule, Handle, globset::GlobMatcher)>,
}

impl Rules {
    pub(super) fn new(m: &Manifest) -> Result<Rules> {
        let mut rules = Vec::new();
        for rule in &m.secrets {
            let glob = rule
                .file_matcher()
                .map_err(|e| Error::Usage(format!("secret rule file `{}`: {e}", rule.file)))?;
            rules.push((rule.clone(), rule.handle.with_agent(&m.agent), glob));
        }
        Ok(Rules { rules })
    }

    /// The rules whose `file` matches `rel`, as redaction rules.
    pub(super) fn for_file(&self, rel: &str) -> Vec<(usize, Rule)> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, (_, _, glob))| glob.is_match(rel))
            .map(|(i, (rule, handle, _))| {
                (
                    i,
                    Rule {
                        locator: rule.locator(),
                        handle: handle.clone(),
                    },
                )
            })
            .collect()
    }

    pub(super) fn handles(&self) -> Vec<Handle> {
        let mut out: Vec<Handle> = self
            .rules
            .iter()
            .filter(|(r, _, _)| !r.ephemeral)
            .map(|(_, h, _)| h.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    pub(super) fn is_ephemeral(&self, handle: &Handle) -> bool {
        self.rules
            .iter()
            .any(|(r, h, _)| h == handle && r.ephemeral)
    }
}
