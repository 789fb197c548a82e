//! The detection engine: known values in every encoding, provider rules, entropy findings.
//!
//! A [`Detector`] is built once from the manifest's `detect` section and, optionally, the
//! [`KnownValues`] to prove absent; it is `Sync`, so threads share it. It scans a whole buffer
//! ([`Detector::scan_bytes`]), any reader, or a stream fed in chunks of any size
//! ([`Detector::stream`]) with bounded memory and no blind spot at chunk boundaries.
//!
//! One scan of a buffer is two passes: one Aho-Corasick automaton holds every form of every
//! known value (`known`), another the keywords of every rule (`prefilter`); rule regexes run
//! only in windows around keyword hits (`rules`). Invariants, whatever the rule: a match inside
//! one of agentbak's own placeholders (`+agentbak:…+`) is never a finding; a finding carries a
//! masked preview, never a value; when two rules claim overlapping bytes the first in table
//! order wins, and the entropy rule comes last.
//!
//! Each region is also decoded (`decode`: base64, wrapped or not; UTF-16; percent-encoding;
//! `\u` and `\x` escapes) and the decoded text searched the same way; a match there is
//! reported at the offset and with the length of its encoded form. Only agentbak's own
//! placeholders are skipped: the exact grammar, and with a manifest ([`Detector::with_manifest`])
//! only the handles it declares or captured.

mod assign;
mod decode;
pub(crate) mod encode;
mod engine;
mod entropy;
mod finding;
mod known;
mod names;
mod prefilter;
mod rules;
mod stream;
mod sweep;

pub use encode::Encoding;
pub use engine::Placeholders;
pub use entropy::{looks_placeholder, looks_random, shannon};
pub use finding::{Allowlist, Finding, FindingKind, INLINE_ALLOW, Severity, fingerprint};
pub use known::{KnownValues, MIN_KNOWN_LEN};
pub use names::NameMasks;
pub use rules::{BUILTIN, ENTROPY, Gate, KNOWN_VALUE_RULE, MAX_REACH, NEGATIVES, Rule};
pub use stream::StreamScan;

use std::io::Read;

use crate::manifest::{Detect, EntropyAction, Manifest};
use rules::Compiled;

/// A `detect` section that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetectError {
    /// A custom rule's regex does not compile.
    #[error("detect rule `{id}`: invalid regex: {reason}")]
    Rule {
        /// The rule id.
        id: String,
        /// What the regex parser said.
        reason: String,
    },
    /// An allowlist entry is not a valid glob.
    #[error("detect.allow entry `{entry}`: {reason}")]
    Allow {
        /// The entry.
        entry: String,
        /// What is wrong.
        reason: String,
    },
}

/// What a rule or a known value is, for reports: id and description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// The id findings carry.
    pub id: String,
    /// One line on what it finds.
    pub description: String,
}

/// The detection engine, built once and shared by every scan.
#[derive(Debug)]
pub struct Detector {
    rules: Vec<Compiled>,
    prefilter: prefilter::Prefilter,
    known: Option<KnownValues>,
    allow: Allowlist,
    entropy_severity: Option<Severity>,
    placeholders: Placeholders,
}

impl Detector {
    /// Builds the engine from the manifest's `detect` section (builtin rules on or off, the
    /// entropy action, custom rules, the allowlist) and the known values to search for.
    pub fn new(config: &Detect, known: Option<KnownValues>) -> Result<Detector, DetectError> {
        let mut rules = Vec::new();
        if config.builtin {
            rules.extend(BUILTIN.iter().map(Compiled::builtin));
        }
        for custom in &config.rules {
            rules.push(Compiled::custom(custom)?);
        }
        let entropy_severity = match config.entropy {
            EntropyAction::Off => None,
            EntropyAction::Warn => Some(Severity::Warn),
            EntropyAction::Block => Some(Severity::Error),
        };
        if entropy_severity.is_some() {
            rules.push(Compiled::builtin(&ENTROPY));
        }
        let mut ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        ids.push(KNOWN_VALUE_RULE);
        ids.push(ENTROPY.id);
        let allow = Allowlist::new(&config.allow, &ids)?;
        Ok(Detector {
            prefilter: prefilter::Prefilter::new(&rules),
            rules,
            known: known.filter(|k| !k.is_empty() || !k.too_short().is_empty()),
            allow,
            entropy_severity,
            placeholders: Placeholders::default(),
        })
    }

    /// The rules of `config` that run on text only (credential-like assignments, and
    /// entropy when it blocks), without known values: what a scan of a binary stream (the
    /// snapshot's tar stream) leaves out, to run on each text file on its own. `None` when
    /// there is none.
    pub fn text_rules(config: &Detect) -> Result<Option<Detector>, DetectError> {
        let mut d = Detector::new(config, None)?;
        let blocks = d.entropy_severity == Some(Severity::Error);
        d.rules
            .retain(|r| r.text_only() && (r.id != ENTROPY.id || blocks));
        if d.rules.is_empty() {
            return Ok(None);
        }
        d.prefilter = prefilter::Prefilter::new(&d.rules);
        Ok(Some(d))
    }

    /// Skips only the placeholders `placeholders` accepts (see [`Placeholders`]); without
    /// this call any text in the exact placeholder grammar is skipped.
    pub fn with_placeholders(mut self, placeholders: Placeholders) -> Detector {
        self.placeholders = placeholders;
        self
    }

    /// Skips only the placeholders of the handles `manifest` declares (its `{agent}` filled)
    /// and of those under its capture target: the engine of a command that has a manifest.
    pub fn with_manifest(self, manifest: &Manifest) -> Detector {
        let declared = manifest
            .secrets
            .iter()
            .map(|r| r.handle.with_agent(&manifest.agent));
        self.with_placeholders(Placeholders::new(declared, manifest.capture_target()))
    }

    /// The builtin rules with default settings and no known values.
    pub fn builtin() -> Detector {
        Detector::new(&Detect::default(), None).expect("builtin rules compile")
    }

    /// The known values searched for, if any.
    pub fn known(&self) -> Option<&KnownValues> {
        self.known.as_ref()
    }

    /// Every rule this engine runs, in the order in which they win.
    pub fn rules(&self) -> Vec<RuleInfo> {
        let mut out: Vec<RuleInfo> = self
            .rules
            .iter()
            .map(|r| RuleInfo {
                id: r.id.clone(),
                description: r.description.clone(),
            })
            .collect();
        out.push(RuleInfo {
            id: KNOWN_VALUE_RULE.to_string(),
            description: "a known secret value (raw or encoded)".to_string(),
        });
        out
    }

    /// Scans a whole buffer. Findings are in offset order.
    pub fn scan_bytes(&self, path: &str, data: &[u8]) -> Vec<Finding> {
        let mut stream = self.stream(path);
        stream.scan_final(data);
        stream.finish()
    }

    /// A streaming scan: write chunks of any size; findings carry absolute byte offsets into
    /// the stream and are found across chunk boundaries; memory stays bounded.
    pub fn stream(&self, path: &str) -> StreamScan<'_> {
        StreamScan::new(self, path)
    }

    /// Scans a reader to its end with bounded memory.
    pub fn scan_reader(&self, path: &str, mut reader: impl Read) -> std::io::Result<Vec<Finding>> {
        let mut stream = self.stream(path);
        let mut buf = vec![0u8; stream::CHUNK];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            std::io::Write::write_all(&mut stream, &buf[..n])?;
        }
        Ok(stream.finish())
    }

    /// Bytes at the end of a chunk that rules leave for the next one: a match starting there
    /// could still grow, and a known value in decoded text must be whole (escaped as `\uXXXX`
    /// it is up to six times its length, three times its longest form).
    pub(crate) fn rule_lookahead(&self) -> usize {
        (MAX_REACH + prefilter::BEFORE + 64).max(3 * self.known_keep() + 64)
    }

    /// Bytes a buffer handed whole to a stream scan should leave free before its data (see
    /// [`StreamScan::write_owned`]).
    pub fn stream_headroom(&self) -> usize {
        stream::headroom(self)
    }

    /// Bytes a stream keeps so that a known value split across chunks is still found.
    pub(crate) fn known_keep(&self) -> usize {
        self.known.as_ref().map_or(0, |k| k.max_pattern_len())
    }
}

#[cfg(test)]
mod tests;
