//! Findings, their fingerprints, and the allowlist that silences accepted ones.
//!
//! Invariants: a [`Finding`] never holds a value: its preview is masked by
//! [`crate::secret::mask`], and its fingerprint is a keyed hash of the rule, the path, the
//! masked preview and the text before the secret on its line, never of the value. The
//! allowlist (manifest `detect.allow` and inline `agentbak:allow`) silences rule and entropy
//! findings only: a known value is a managed secret, and no entry can make it acceptable in a
//! file (SPEC.md "Snapshot" point 3).

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Serialize;

use super::DetectError;
use super::encode::Encoding;

/// The marker that silences findings on its line.
pub const INLINE_ALLOW: &str = "agentbak:allow";

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Reported; does not block (entropy findings under `detect.entropy: "warn"`).
    Warn,
    /// A secret: blocks a snapshot, makes `scan` exit 4.
    Error,
}

impl Severity {
    /// `warn` or `error`.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

/// What produced a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum FindingKind {
    /// One of the known values, in some encoding.
    KnownValue {
        /// Where the value lives (a handle), never the value.
        label: String,
        /// The form that was found.
        encoding: Encoding,
    },
    /// A builtin or custom pattern rule.
    Rule,
    /// A high-randomness value in a secret-looking assignment.
    Entropy,
}

/// One plaintext secret found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct Finding {
    /// Rule id (`known-value`, `github-pat`, `high-entropy`, a custom id).
    pub rule: String,
    /// The file, stream name or git path.
    pub path: String,
    /// 1-based line of the secret's first byte.
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub line: usize,
    /// 1-based column (in characters) of the secret's first byte.
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub column: usize,
    /// Byte offset of the secret in the scanned stream.
    pub offset: u64,
    /// Length of the secret in bytes.
    pub length: usize,
    /// How serious it is.
    pub severity: Severity,
    /// Masked preview, e.g. `ghp_…Qx (40 chars)`.
    pub preview: String,
    /// Stable id for allowlists and baselines (32 hex digits).
    #[cfg_attr(feature = "schema", schemars(pattern(r"^[0-9a-f]{32}$")))]
    pub fingerprint: String,
    /// What produced it.
    pub kind: FindingKind,
    /// The commit that added it (`scan --git`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// Key of the fingerprint hash: fixed, so fingerprints are stable across runs and hosts.
const FINGERPRINT_CONTEXT: &str = "agentbak 2026 finding fingerprint v2";

/// The fingerprint of a finding: a keyed hash of what locates it, not of the value. Two
/// halves of 16 hex digits: one of the rule, the masked preview and the text before the
/// secret on its line; one of the path. A finding is the same finding in `snapshot` (the gate
/// sees the tar stream), `verify` (tar paths, `state/…`) and `scan` (paths as given): each
/// names its path relative to the agent's state with [`Finding::relocate`], which replaces
/// the path half.
///
/// The line prefix is taken after its last NUL byte: in a tar stream, the text before a
/// file's first line is its header's NUL padding, which no file on disk has.
pub fn fingerprint(rule: &str, path: &str, preview: &str, line_prefix: &[u8]) -> String {
    let prefix = memchr::memrchr(0, line_prefix).map_or(line_prefix, |p| &line_prefix[p + 1..]);
    let mut hasher = blake3::Hasher::new_derive_key(FINGERPRINT_CONTEXT);
    for part in [
        rule.as_bytes(),
        preview.as_bytes(),
        prefix.trim_ascii_start(),
    ] {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let mut out = hasher.finalize().to_hex()[..16].to_string();
    out.push_str(&path_half(path));
    out
}

/// The path half of a fingerprint: `./` and `/` at the start do not count.
fn path_half(path: &str) -> String {
    let path = path.trim_start_matches("./").trim_start_matches('/');
    let mut hasher = blake3::Hasher::new_derive_key(FINGERPRINT_CONTEXT);
    hasher.update(b"path");
    hasher.update(path.as_bytes());
    hasher.finalize().to_hex()[..16].to_string()
}

impl Finding {
    /// Recomputes the fingerprint for `state_path`, the file's path relative to the agent's
    /// state (`notes/a.md` for the tar path `state/notes/a.md`); the reported path is left as
    /// it is.
    pub fn relocate(&mut self, state_path: &str) {
        if self.fingerprint.len() == 32 {
            self.fingerprint.truncate(16);
            self.fingerprint.push_str(&path_half(state_path));
        }
    }
}

impl super::Detector {
    /// Whether the manifest's `detect.allow` silences `finding`, whose file is `state_path`
    /// relative to the agent's state: its globs are matched against that path (the gate sees
    /// `state/…` tar paths, `scan` the paths it was given), its fingerprints against the
    /// finding's (see [`Finding::relocate`]). Known values are never silenced.
    pub fn allows_at(&self, finding: &Finding, state_path: &str) -> bool {
        self.allow.allows_at(finding, state_path)
    }
}

/// The manifest's `detect.allow`: path globs, rule ids and fingerprints.
#[derive(Debug, Default)]
pub struct Allowlist {
    globs: Option<GlobSet>,
    rules: Vec<String>,
    fingerprints: Vec<String>,
}

impl Allowlist {
    /// Sorts each entry: 32 hex digits is a fingerprint, an id in `rule_ids` is a rule, and
    /// anything else is a path glob (gitignore-like: `*.md` matches at any depth).
    pub fn new(entries: &[String], rule_ids: &[&str]) -> Result<Allowlist, DetectError> {
        let mut list = Allowlist::default();
        let mut globs = GlobSetBuilder::new();
        let mut any_glob = false;
        for entry in entries {
            if entry.len() == 32 && entry.bytes().all(|b| b.is_ascii_hexdigit()) {
                list.fingerprints.push(entry.to_ascii_lowercase());
            } else if rule_ids.contains(&entry.as_str()) {
                list.rules.push(entry.clone());
            } else {
                for pattern in glob_forms(entry) {
                    let glob = Glob::new(&pattern).map_err(|e| DetectError::Allow {
                        entry: entry.clone(),
                        reason: e.to_string(),
                    })?;
                    globs.add(glob);
                }
                any_glob = true;
            }
        }
        if any_glob {
            list.globs = Some(globs.build().map_err(|e| DetectError::Allow {
                entry: String::new(),
                reason: e.to_string(),
            })?);
        }
        Ok(list)
    }

    /// Whether the allowlist silences `finding`. Known values are never silenced.
    pub fn allows(&self, finding: &Finding) -> bool {
        self.allows_at(finding, &finding.path)
    }

    /// [`Allowlist::allows`], with the path globs matched against `path` instead of the
    /// finding's.
    pub fn allows_at(&self, finding: &Finding, path: &str) -> bool {
        if matches!(finding.kind, FindingKind::KnownValue { .. }) {
            return false;
        }
        self.rules.contains(&finding.rule)
            || self.fingerprints.contains(&finding.fingerprint)
            || self.globs.as_ref().is_some_and(|g| {
                let path = path.trim_start_matches("./");
                g.is_match(path)
            })
    }
}

/// A glob without `/` matches at any depth, as in `.gitignore`; a folder pattern also covers
/// what is below it.
fn glob_forms(entry: &str) -> Vec<String> {
    let trimmed = entry.trim_start_matches("./").trim_start_matches('/');
    let mut out = vec![trimmed.to_string()];
    if !trimmed.contains('/') {
        out.push(format!("**/{trimmed}"));
    }
    let base = trimmed.trim_end_matches('/');
    out.push(format!("{base}/**"));
    if !base.contains('/') {
        out.push(format!("**/{base}/**"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: &str, path: &str, kind: FindingKind) -> Finding {
        Finding {
            rule: rule.into(),
            path: path.into(),
            line: 1,
            column: 1,
            offset: 0,
            length: 40,
            severity: Severity::Error,
            preview: "ghp_…Qx (40 chars)".into(),
            fingerprint: fingerprint(rule, path, "ghp_…Qx (40 chars)", b"token: "),
            kind,
            commit: None,
        }
    }

    #[test]
    fn fingerprints_are_stable_and_path_sensitive() {
        let a = fingerprint("github-pat", "a.txt", "ghp_…Qx (40 chars)", b"x=");
        assert_eq!(
            a,
            fingerprint("github-pat", "a.txt", "ghp_…Qx (40 chars)", b"x=")
        );
        assert_ne!(
            a,
            fingerprint("github-pat", "b.txt", "ghp_…Qx (40 chars)", b"x=")
        );
        assert_eq!(a.len(), 32);
    }

    /// Issue 19: fingerprints differed between snapshot (the tar stream: path `<archive>`,
    /// the header's NUL padding before a first line), verify (`state/…`) and scan.
    #[test]
    fn relocated_fingerprints_agree_across_paths_and_tar_padding() {
        let scan = fingerprint(
            "github-pat",
            "./notes/a.md",
            "ghp_…Qx (40 chars)",
            b"token: ",
        );
        let mut gate = Finding {
            fingerprint: fingerprint(
                "github-pat",
                "<archive>",
                "ghp_…Qx (40 chars)",
                b"ustar\x0000kevin\0\0\0\0token: ",
            ),
            ..finding("github-pat", "state/notes/a.md", FindingKind::Rule)
        };
        assert_ne!(gate.fingerprint, scan);
        gate.relocate("notes/a.md");
        assert_eq!(gate.fingerprint, scan);
        assert_eq!(&scan[16..], path_half("notes/a.md"));
        assert_ne!(
            scan,
            fingerprint("github-pat", "notes/b.md", "ghp_…Qx (40 chars)", b"token: ")
        );
        let list = Allowlist::new(&["notes/*.md".into()], &["github-pat"]).unwrap();
        assert!(!list.allows(&gate), "state/notes/a.md is not notes/*.md");
        assert!(list.allows_at(&gate, "notes/a.md"));
    }

    #[test]
    fn allowlist_sorts_entries() {
        let f = finding("github-pat", "docs/guide.md", FindingKind::Rule);
        let ids = ["github-pat", "jwt"];
        assert!(
            Allowlist::new(&["jwt".into()], &ids)
                .unwrap()
                .allows(&finding("jwt", "x", FindingKind::Rule))
        );
        assert!(Allowlist::new(&["*.md".into()], &ids).unwrap().allows(&f));
        assert!(Allowlist::new(&["docs/".into()], &ids).unwrap().allows(&f));
        assert!(
            Allowlist::new(std::slice::from_ref(&f.fingerprint), &ids)
                .unwrap()
                .allows(&f)
        );
        assert!(!Allowlist::new(&["*.txt".into()], &ids).unwrap().allows(&f));
    }

    #[test]
    fn known_values_are_never_allowed() {
        let f = finding(
            "known-value",
            "docs/guide.md",
            FindingKind::KnownValue {
                label: "vault:a#b".into(),
                encoding: Encoding::Raw,
            },
        );
        let list = Allowlist::new(&["**".into(), "known-value".into()], &["known-value"]).unwrap();
        assert!(!list.allows(&f));
    }
}
