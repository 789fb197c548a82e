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

    /// Whether every rule of `locator` that matches `rel` names its files by a glob: such a
    /// rule finds no value in most of the files it matches (a token in one session of many),
    /// and saying so for each would make every run exit 3.
    pub(super) fn only_globs(&self, rel: &str, locator: &crate::manifest::Locator) -> bool {
        let is_glob = |f: &str| f.contains(['*', '?', '[', '{']);
        self.rules
            .iter()
            .filter(|(r, _, g)| g.is_match(rel) && r.locator() == *locator)
            .all(|(r, _, _)| is_glob(&r.file))
    }

    /// Whether the agent rewrites the value of `handle` itself (`"owner": "agent"`).
    pub(super) fn is_agent_owned(&self, handle: &Handle) -> bool {
        self.rules
            .iter()
            .any(|(r, h, _)| h == handle && r.owner == crate::manifest::Owner::Agent)
    }

    pub(super) fn is_ephemeral(&self, handle: &Handle) -> bool {
        self.rules
            .iter()
            .any(|(r, h, _)| h == handle && r.ephemeral)
    }
}
