//! `restore --include GLOB`: which entries a partial restore extracts.
//!
//! Globs are matched against the path relative to the state folder (`memory/notes.md`), with
//! `*` and `?` not crossing `/` and `**` crossing any number of folders (gitignore style). An
//! entry is selected when a glob matches its path **or one of its folders' paths**, so both
//! `memory` and `memory/**` select the whole `memory` folder. The folders above a selected
//! entry are created (with their archive modes and times), nothing else.
//!
//! A glob that selects no entry of the snapshot is a usage error naming it (exit 2): a typo
//! must not restore less than the operator believes.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::archive::{Index, state_relative};
use crate::error::{Error, Result};

/// The compiled `--include` globs.
#[derive(Debug, Clone)]
pub struct Include {
    patterns: Vec<String>,
    set: GlobSet,
}

impl Include {
    /// Compiles `patterns` (a leading `./` and a trailing `/` are dropped); a glob that does not
    /// parse, or none at all, is a usage error.
    pub fn new(patterns: &[String]) -> Result<Include> {
        if patterns.is_empty() {
            return Err(Error::Usage("--include needs at least one glob".into()));
        }
        let mut builder = GlobSetBuilder::new();
        for p in patterns {
            let clean = p.trim_start_matches("./").trim_end_matches('/');
            if clean.is_empty() || clean.starts_with('/') {
                return Err(Error::Usage(format!(
                    "--include `{p}`: give a path relative to the state folder (`memory/**`)"
                )));
            }
            let glob = GlobBuilder::new(clean)
                .literal_separator(true)
                .build()
                .map_err(|e| Error::Usage(format!("--include `{p}`: {}", e.kind())))?;
            builder.add(glob);
        }
        let set = builder
            .build()
            .map_err(|e| Error::Usage(format!("--include: {e}")))?;
        Ok(Include {
            patterns: patterns.to_vec(),
            set,
        })
    }

    /// The globs as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether the entry at `rel` (relative to the state folder) is restored: a glob matches
    /// it or one of its folders. The state folder itself (`""`) is always.
    pub fn selects(&self, rel: &Path) -> bool {
        rel.as_os_str().is_empty()
            || rel
                .ancestors()
                .filter(|a| !a.as_os_str().is_empty())
                .any(|a| self.set.is_match(a))
    }

    /// Refuses globs that select no entry of `index` (exit 2, naming each).
    pub fn check_matches(&self, index: &Index) -> Result<()> {
        let mut used = vec![false; self.patterns.len()];
        for entry in &index.entries {
            let Some(rel) = state_relative(&entry.path).filter(|r| !r.is_empty()) else {
                continue;
            };
            for i in self.set.matches(rel) {
                used[i] = true;
            }
        }
        let unused: Vec<String> = self
            .patterns
            .iter()
            .zip(&used)
            .filter(|(_, used)| !**used)
            .map(|(p, _)| format!("`{p}`"))
            .collect();
        if unused.is_empty() {
            return Ok(());
        }
        Err(Error::Usage(format!(
            "--include {} matches nothing in snapshot {} (globs are relative to the state \
             folder; `*` stops at `/`, `**` crosses folders): nothing was restored",
            unused.join(", "),
            index.snapshot_id
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(p: &[&str]) -> Include {
        Include::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn folders_and_globs_select_what_operators_expect() {
        let memory = inc(&["memory/**"]);
        assert!(memory.selects(Path::new("memory/notes.md")));
        assert!(memory.selects(Path::new("memory/a/b.md")));
        assert!(!memory.selects(Path::new("memory")));
        assert!(!memory.selects(Path::new("config.yaml")));
        assert!(memory.selects(Path::new("")));
        let folder = inc(&["memory/"]);
        assert!(folder.selects(Path::new("memory")));
        assert!(folder.selects(Path::new("memory/a/b.md")));
        let top = inc(&["*.yaml"]);
        assert!(top.selects(Path::new("config.yaml")));
        assert!(!top.selects(Path::new("sub/config.yaml")));
        assert!(inc(&["**/*.yaml"]).selects(Path::new("sub/config.yaml")));
        assert!(Include::new(&["/etc".to_string()]).is_err());
        assert!(Include::new(&["a[".to_string()]).is_err());
    }
}
