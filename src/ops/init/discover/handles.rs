//! The handle of each discovered secret.
//!
//! Invariants: the same value gets the same handle wherever it was found; other values get
//! `STORE:agents/{agent}/<file path without extension>#<key>`, numbered when taken, made of
//! sanitized segments that always parse; an ephemeral rule gets an `env:` handle, since no
//! stored version fits all its values.

use std::collections::BTreeSet;

use crate::handle::{AGENT_TEMPLATE, Handle};
use crate::secret::Secret;

use super::{Candidate, Discovered};

/// Gives every candidate its handle: the same value gets the same handle; otherwise
/// `STORE:agents/{agent}/<file path without extension>#<key>`, numbered when taken.
pub(super) fn name_handles(candidates: Vec<Candidate>, store: &str) -> Vec<Discovered> {
    // Values stay in `Secret`s (zeroized); a state has tens of secrets, so a list will do.
    let mut by_value: Vec<(Secret, Handle)> = Vec::new();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::with_capacity(candidates.len());
    for c in candidates {
        let (handle, shared) = if c.ephemeral {
            let name = env_name(&variable_word(&c.name, &c.reason));
            let text = format!("env:{name}");
            taken.insert(text.clone());
            (
                Handle::parse(&text).expect("an env name is a valid handle"),
                false,
            )
        } else if let Some((_, h)) = by_value.iter().find(|(v, _)| *v == c.value) {
            (h.clone(), true)
        } else {
            let path = handle_path(&c.file);
            let field = sanitize(&c.name, false);
            let base = format!("{store}:agents/{AGENT_TEMPLATE}/{path}#{field}");
            let mut text = base.clone();
            let mut n = 2;
            while taken.contains(&text) {
                text = format!("{base}-{n}");
                n += 1;
            }
            taken.insert(text.clone());
            let handle = Handle::parse(&text).expect("sanitized segments make a valid handle");
            by_value.push((c.value.clone(), handle.clone()));
            (handle, false)
        };
        out.push(Discovered {
            file: c.file,
            files: c.files,
            locator: c.locator,
            handle,
            value: c.value,
            ephemeral: c.ephemeral,
            reason: c.reason,
            shared,
        });
    }
    out
}

/// The handle path of a state file: its path without the extension, each segment sanitized
/// (`config/credentials.json` → `config/credentials`, `.env` → `env`).
/// A glob rule's handle path is its fixed folders (`sessions/**/*.jsonl` → `sessions`), or
/// `files` when nothing before the glob is fixed.
fn handle_path(file: &str) -> String {
    let glob = |s: &str| s.contains(['*', '?', '[', '{']);
    if glob(file) {
        let fixed: Vec<String> = file
            .split('/')
            .take_while(|s| !glob(s))
            .map(|s| sanitize(s, true))
            .collect();
        return if fixed.is_empty() {
            "files".into()
        } else {
            fixed.join("/")
        };
    }
    let without_ext = match file.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() && !stem.ends_with('/') => stem,
        _ => file,
    };
    without_ext
        .split('/')
        .map(|s| sanitize(s, true))
        .collect::<Vec<_>>()
        .join("/")
}

/// Keeps letters, digits, `_`, `-` (and `.` inside a field); everything else becomes `_`.
/// Path segments are lowercased and lose leading dots.
fn sanitize(s: &str, segment: bool) -> String {
    let s = if segment {
        s.trim_start_matches('.').to_ascii_lowercase()
    } else {
        s.to_string()
    };
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || (c == '.' && !segment) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let out = out.trim_matches('_').to_string();
    if out.is_empty() || out == "." || out == ".." {
        "value".into()
    } else {
        out
    }
}

/// Anchor words that name no variable of their own: `token=…`, `key: …`.
const GENERIC_WORDS: &[&str] = &[
    "token",
    "key",
    "secret",
    "password",
    "passwd",
    "pass",
    "auth",
    "apikey",
    "api_key",
    "api-key",
    "credential",
    "value",
];

/// Rule ids that name a kind of token, not a provider.
const GENERIC_RULES: &[&str] = &[
    "jwt",
    "bearer-token",
    "basic-auth-header",
    "url-credentials",
    "database-url",
    "private-key",
    "key name",
];

/// The word an ephemeral handle's variable is named after: the anchor, prefixed with the
/// provider the finding's rule names when the anchor is generic (`token` found by
/// `github-pat` → `github_token`), so two agents' `token=` lines do not share `env:TOKEN`.
fn variable_word(word: &str, rule: &str) -> String {
    let generic = GENERIC_WORDS.contains(&word.to_ascii_lowercase().as_str());
    let weak = GENERIC_RULES.contains(&rule) || super::classify::WEAK_RULES.contains(&rule);
    match rule.split('-').next() {
        Some(provider) if generic && !weak && !provider.is_empty() => format!("{provider}_{word}"),
        _ => word.to_string(),
    }
}

/// The environment variable of an ephemeral handle: the anchor word in upper case, ending in
/// `_TOKEN` unless it names a kind of credential already.
fn env_name(word: &str) -> String {
    let mut name: String = word
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    if !["TOKEN", "KEY", "SECRET", "PASSWORD"]
        .iter()
        .any(|s| name.ends_with(s))
    {
        name.push_str("_TOKEN");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::super::structured::{field_name, last_token};
    use super::*;
    use crate::redact::Format;

    #[test]
    fn handle_paths_and_fields_are_valid_segments() {
        assert_eq!(handle_path("config/credentials.json"), "config/credentials");
        assert_eq!(handle_path(".env"), "env");
        assert_eq!(handle_path("sessions/**/*.jsonl"), "sessions");
        assert_eq!(handle_path("**/*.jsonl"), "files");
        assert_eq!(handle_path("keys/id_rsa"), "keys/id_rsa");
        assert_eq!(handle_path("a b/.hidden.yaml"), "a_b/hidden");
        assert_eq!(
            field_name(Format::Json, "/openai/api~1key"),
            "openai_api/key"
        );
        assert_eq!(sanitize("openai_api/key", false), "openai_api_key");
        assert_eq!(last_token(Format::Yaml, "/providers/0"), "providers");
        assert_eq!(env_name("Bearer"), "BEARER_TOKEN");
        assert_eq!(env_name("api-key"), "API_KEY");
        // Ephemeral handles are named after the variable, or the provider of a generic word.
        assert_eq!(
            env_name(&variable_word("GH_TOKEN", "github-pat")),
            "GH_TOKEN"
        );
        assert_eq!(
            env_name(&variable_word("token", "github-pat")),
            "GITHUB_TOKEN"
        );
        assert_eq!(env_name(&variable_word("token", "jwt")), "TOKEN");
        assert_eq!(
            env_name(&variable_word("Bearer", "bearer-token")),
            "BEARER_TOKEN"
        );
    }
}
