//! Handles and placeholders.
//!
//! A *handle* names where a secret lives: `STORE:PATH[?version=N]#FIELD` for key/value stores
//! (Vault, the local store) and `STORE:NAME` for the environment store. A *placeholder* is the
//! text that replaces a secret value inside a redacted file:
//!
//! ```text
//! +agentbak:vault:agents/kevin/openai:api_key+
//! +agentbak:vault:agents/kevin/openai@3:api_key+
//! +agentbak:env:SESSION_TOKEN+
//! ```
//!
//! The placeholder alphabet is letters, digits and `. _ - / : @ +` only, so it needs no
//! escaping in JSON, YAML (plain, block and flow), TOML, dotenv, INI or a shell-sourced file,
//! and no `#`, which some dotenv parsers treat as a comment anywhere. The `+` at both ends
//! delimits it even when a value was embedded in a longer token. `docs/handles.md` is the
//! user-facing definition.

use std::fmt;
use std::str::FromStr;

/// The text every placeholder starts with.
pub const PLACEHOLDER_PREFIX: &str = "+agentbak:";

/// The template a handle path may carry, filled with the manifest's agent name.
pub const AGENT_TEMPLATE: &str = "{agent}";

/// A parsed handle.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle {
    /// The store name: the scheme of the handle, a key of the manifest's `stores`.
    pub store: String,
    /// What the handle points at inside the store.
    pub target: Target,
}

/// The part of a handle after the store name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// A field of a versioned key/value secret.
    Kv {
        /// Slash-separated path of the secret.
        path: String,
        /// A pinned version; `None` means the current version at fetch time.
        version: Option<u64>,
        /// The field inside the secret.
        field: String,
    },
    /// A variable of the environment store.
    Env {
        /// The variable name.
        name: String,
    },
}

/// A handle or placeholder that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid handle `{input}`: {reason}; expected `STORE:PATH[?version=N]#FIELD` or `STORE:NAME`"
)]
pub struct HandleError {
    /// The text that was given (a handle is not secret).
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

fn err(input: &str, reason: impl Into<String>) -> HandleError {
    HandleError {
        input: input.to_string(),
        reason: reason.into(),
    }
}

fn is_store_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && s.len() <= 64
}

/// Whether `s` is a valid store name (lowercase letter, then lowercase letters, digits, `_`, `-`).
pub fn valid_store_name(s: &str) -> bool {
    is_store_name(s)
}

fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
}

fn check_path(input: &str, path: &str) -> Result<(), HandleError> {
    if path.is_empty() {
        return Err(err(input, "the path is empty"));
    }
    for segment in path.split('/') {
        let bare = segment.replace(AGENT_TEMPLATE, "agent");
        if segment.is_empty() {
            return Err(err(
                input,
                "the path has an empty segment (`//` or a leading or trailing `/`)",
            ));
        }
        if segment == "." || segment == ".." {
            return Err(err(input, "the path may not contain `.` or `..` segments"));
        }
        if !is_word(&bare) {
            return Err(err(
                input,
                format!(
                    "path segment `{segment}` may hold only letters, digits, `.`, `_`, `-` and `{{agent}}`"
                ),
            ));
        }
    }
    Ok(())
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Handle {
    /// Parses a handle as written in a manifest or on the command line.
    pub fn parse(input: &str) -> Result<Handle, HandleError> {
        let (store, rest) = input
            .split_once(':')
            .ok_or_else(|| err(input, "missing `:` after the store name"))?;
        if !is_store_name(store) {
            return Err(err(
                input,
                format!(
                    "store name `{store}` must start with a lowercase letter and hold only lowercase letters, digits, `_` and `-`"
                ),
            ));
        }
        let Some((locator, field)) = rest.split_once('#') else {
            if rest.contains('?') {
                return Err(err(input, "a version needs a `#FIELD`"));
            }
            if !is_env_name(rest) {
                return Err(err(
                    input,
                    "a handle without `#FIELD` names an environment variable: letters, digits and `_`, not starting with a digit",
                ));
            }
            return Ok(Handle {
                store: store.to_string(),
                target: Target::Env {
                    name: rest.to_string(),
                },
            });
        };
        if !is_word(field) {
            return Err(err(
                input,
                "the field after `#` must be non-empty and hold only letters, digits, `.`, `_` and `-`",
            ));
        }
        let (path, version) = match locator.split_once('?') {
            None => (locator, None),
            Some((path, query)) => {
                let n = query
                    .strip_prefix("version=")
                    .ok_or_else(|| err(input, "the only query is `?version=N`"))?;
                let n: u64 = n
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| err(input, "the version must be a whole number ≥ 1"))?;
                (path, Some(n))
            }
        };
        check_path(input, path)?;
        Ok(Handle {
            store: store.to_string(),
            target: Target::Kv {
                path: path.to_string(),
                version,
                field: field.to_string(),
            },
        })
    }

    /// Whether the handle names an environment variable (`STORE:NAME`).
    pub fn is_env(&self) -> bool {
        matches!(self.target, Target::Env { .. })
    }

    /// The handle with `{agent}` in its path replaced by `agent`.
    pub fn with_agent(&self, agent: &str) -> Handle {
        let mut h = self.clone();
        if let Target::Kv { path, .. } = &mut h.target {
            *path = path.replace(AGENT_TEMPLATE, agent);
        }
        h
    }

    /// The same handle with its version set (or cleared).
    pub fn at_version(&self, v: Option<u64>) -> Handle {
        let mut h = self.clone();
        if let Target::Kv { version, .. } = &mut h.target {
            *version = v;
        }
        h
    }

    /// The placeholder that stands for this handle in a redacted file.
    pub fn placeholder(&self) -> String {
        match &self.target {
            Target::Env { name } => format!("{PLACEHOLDER_PREFIX}{}:{name}+", self.store),
            Target::Kv {
                path,
                version,
                field,
            } => {
                let v = version.map(|v| format!("@{v}")).unwrap_or_default();
                format!("{PLACEHOLDER_PREFIX}{}:{path}{v}:{field}+", self.store)
            }
        }
    }

    /// Parses a complete placeholder back into its handle.
    pub fn from_placeholder(text: &str) -> Result<Handle, HandleError> {
        let inner = text
            .strip_prefix(PLACEHOLDER_PREFIX)
            .and_then(|t| t.strip_suffix('+'))
            .ok_or_else(|| {
                err(
                    text,
                    "a placeholder starts with `+agentbak:` and ends with `+`",
                )
            })?;
        let parts: Vec<&str> = inner.split(':').collect();
        let canonical = match parts.as_slice() {
            [store, name] => format!("{store}:{name}"),
            [store, path, field] => match path.rsplit_once('@') {
                Some((p, v)) => format!("{store}:{p}?version={v}#{field}"),
                None => format!("{store}:{path}#{field}"),
            },
            _ => {
                return Err(err(
                    text,
                    "a placeholder has two or three `:`-separated parts",
                ));
            }
        };
        Handle::parse(&canonical).map_err(|e| err(text, e.reason))
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Env { name } => write!(f, "{}:{name}", self.store),
            Target::Kv {
                path,
                version,
                field,
            } => {
                write!(f, "{}:{path}", self.store)?;
                if let Some(v) = version {
                    write!(f, "?version={v}")?;
                }
                write!(f, "#{field}")
            }
        }
    }
}

impl FromStr for Handle {
    type Err = HandleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Handle::parse(s)
    }
}

impl serde::Serialize for Handle {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Handle {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Handle::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A placeholder found in a text: its byte range and the handle it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceholderMatch {
    /// Byte range of the whole placeholder, delimiters included.
    pub range: std::ops::Range<usize>,
    /// The handle it names.
    pub handle: Handle,
}

/// Every well-formed placeholder in `text`, in order. Text that starts like a placeholder but
/// does not parse is skipped: it is not ours.
pub fn find_placeholders(text: &[u8]) -> Vec<PlaceholderMatch> {
    let prefix = PLACEHOLDER_PREFIX.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(pos) = find(&text[i..], prefix) {
        let start = i + pos;
        let body = start + prefix.len();
        let end = text[body..]
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || b"._-/:@{}".contains(b)))
            .map(|n| body + n);
        match end {
            Some(end) if text[end] == b'+' => {
                let candidate = std::str::from_utf8(&text[start..=end]).unwrap_or("");
                if let Ok(handle) = Handle::from_placeholder(candidate) {
                    out.push(PlaceholderMatch {
                        range: start..end + 1,
                        handle,
                    });
                    i = end + 1;
                    continue;
                }
                i = body;
            }
            _ => i = body,
        }
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Handle {
        Handle::parse(s).unwrap()
    }

    #[test]
    fn parses_kv_handles_with_and_without_version() {
        let a = h("vault:agents/kevin/openai#api_key");
        assert_eq!(a.store, "vault");
        assert_eq!(
            a.target,
            Target::Kv {
                path: "agents/kevin/openai".into(),
                version: None,
                field: "api_key".into()
            }
        );
        let b = h("vault:agents/kevin/openai?version=3#api_key");
        assert!(matches!(
            b.target,
            Target::Kv {
                version: Some(3),
                ..
            }
        ));
        assert_eq!(b.to_string(), "vault:agents/kevin/openai?version=3#api_key");
        assert_eq!(a.to_string(), "vault:agents/kevin/openai#api_key");
    }

    #[test]
    fn parses_env_handles() {
        let e = h("env:SESSION_TOKEN");
        assert!(e.is_env());
        assert_eq!(e.to_string(), "env:SESSION_TOKEN");
    }

    #[test]
    fn rejects_malformed_handles_with_a_reason() {
        for (bad, why) in [
            ("vault", "missing `:`"),
            ("Vault:a#b", "store name"),
            ("vault:a/../b#f", "`..`"),
            ("vault:a//b#f", "empty segment"),
            ("vault:a#", "field"),
            ("vault:a?version=0#f", "≥ 1"),
            ("vault:a?v=2#f", "`?version=N`"),
            ("vault:a b#f", "path segment"),
            ("env:1ABC", "environment variable"),
            ("vault:a?version=2", "needs a `#FIELD`"),
        ] {
            let e = Handle::parse(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn agent_template_is_filled() {
        let t = h("vault:agents/{agent}/openai#api_key");
        assert_eq!(
            t.with_agent("kevin").to_string(),
            "vault:agents/kevin/openai#api_key"
        );
    }

    #[test]
    fn placeholder_round_trips() {
        for s in [
            "vault:agents/kevin/openai#api_key",
            "vault:agents/kevin/openai?version=12#api_key",
            "local:anthropic#key",
            "env:SESSION_TOKEN",
        ] {
            let handle = h(s);
            let p = handle.placeholder();
            assert!(
                p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-/:@+".contains(&b)),
                "{p}"
            );
            assert_eq!(Handle::from_placeholder(&p).unwrap(), handle);
        }
        assert_eq!(
            h("vault:a/b?version=2#f").placeholder(),
            "+agentbak:vault:a/b@2:f+"
        );
    }

    #[test]
    fn finds_placeholders_inside_text() {
        let a = h("vault:agents/kevin/openai#api_key");
        let b = h("env:TOKEN");
        let text = format!(
            "x={} and postgres://u:{}@host +agentbak:broken +agentbak:",
            a.placeholder(),
            b.placeholder()
        );
        let found = find_placeholders(text.as_bytes());
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].handle, a);
        assert_eq!(found[1].handle, b);
        assert_eq!(&text[found[0].range.clone()], a.placeholder());
    }
}
