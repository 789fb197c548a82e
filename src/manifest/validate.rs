//! Checks beyond syntax: handles that fit their stores, locators that fit their format, globs
//! and regexes that compile, no duplicate rules, a `signing` section that names usable keys.
//! The layout checks (no folder holds another, symlinks resolved) are in `layout`.

use std::collections::BTreeSet;
use std::str::FromStr;

use super::load::locate;
use super::{Locator, Manifest, Problem, StoreConfig};
use crate::handle::{self, Target};

pub(super) struct Collector<'a> {
    pub(super) text: &'a [u8],
    pub(super) problems: Vec<Problem>,
}

impl Collector<'_> {
    pub(super) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let field = field.into();
        let (line, column) = locate(self.text, &field);
        self.problems.push(Problem {
            line,
            column,
            field,
            message: message.into(),
        });
    }
}

fn glob_error(glob: &str) -> Option<String> {
    globset::Glob::new(glob).err().map(|e| e.kind().to_string())
}

/// Parses a cache TTL such as `90s`, `30m`, `24h`, `7d`.
pub fn parse_ttl(s: &str) -> Option<std::time::Duration> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = n.parse().ok()?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(n.checked_mul(unit)?))
}

fn bad_relative(file: &str) -> bool {
    file.starts_with('/') || file.split('/').any(|c| c == "..")
}

impl Manifest {
    pub(super) fn validate(&self, text: &[u8]) -> Vec<Problem> {
        let mut c = Collector {
            text,
            problems: Vec::new(),
        };
        if self.version != 1 {
            c.push(
                "/version",
                format!("unsupported version {}; expected 1", self.version),
            );
        }
        if self.agent.is_empty()
            || !self
                .agent
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
        {
            c.push(
                "/agent",
                "expected a non-empty name of letters, digits, `.`, `_` and `-`",
            );
        }
        for (key, globs) in [("include", &self.include), ("exclude", &self.exclude)] {
            for (i, g) in globs.iter().enumerate() {
                if let Some(e) = glob_error(g) {
                    c.push(format!("/{key}/{i}"), format!("invalid glob: {e}"));
                }
            }
        }
        self.validate_encryption(&mut c);
        self.validate_stores(&mut c);
        self.validate_secrets(&mut c);
        self.validate_detect(&mut c);
        self.validate_signing(&mut c);
        self.validate_capture(&mut c);
        if !(1..=19).contains(&self.compression.level) {
            c.push("/compression/level", "expected a zstd level from 1 to 19");
        }
        c.problems
    }

    fn validate_signing(&self, c: &mut Collector<'_>) {
        let Some(s) = &self.signing else { return };
        match (&s.key, &s.transit) {
            (Some(_), Some(_)) => {
                c.push("/signing", "expected one of `key` or `transit`, not both")
            }
            // A verify-only manifest (an auditor's) may know nothing but the identity.
            (None, None) if s.trust.is_empty() => c.push(
                "/signing",
                "expected `key` (a handle of an Ed25519 private key), `transit`, or `trust`",
            ),
            _ => {}
        }
        for (field, handle) in [("key", &s.key), ("identity", &s.identity)] {
            let Some(h) = handle else { continue };
            let at = format!("/signing/{field}");
            if h.is_env() {
                c.push(
                    &at,
                    "expected a handle of a key/value store (`STORE:PATH#FIELD`), not `env:`",
                );
            } else if !self.stores.contains_key(&h.store) {
                c.push(&at, format!("no store named `{}` in `stores`", h.store));
            } else if matches!(
                &h.target,
                crate::handle::Target::Kv {
                    version: Some(_),
                    ..
                }
            ) {
                c.push(
                    &at,
                    "a signing key handle names no version: each version of it is a key version",
                );
            }
        }
        if let Some(t) = &s.transit {
            if !matches!(self.stores.get(&t.store), Some(StoreConfig::Vault(_))) {
                c.push(
                    "/signing/transit/store",
                    format!(
                        "expected the name of a `vault` store; `{}` is not one",
                        t.store
                    ),
                );
            }
            if t.key.is_empty() || t.key.contains('/') {
                c.push("/signing/transit/key", "expected a transit key name");
            }
        }
        for (i, key) in s.trust.iter().enumerate() {
            if let Err(e) = crate::signing::parse_public_key(key) {
                c.push(format!("/signing/trust/{i}"), e.to_string());
            }
        }
    }

    fn validate_capture(&self, c: &mut Collector<'_>) {
        let Some(capture) = &self.capture else { return };
        match self.stores.get(&capture.store) {
            Some(StoreConfig::Env(_)) => c.push(
                "/capture/store",
                format!(
                    "store `{}` is an env store: captured secrets need a key/value store",
                    capture.store
                ),
            ),
            None => c.push(
                "/capture/store",
                format!("`stores` defines no store `{}`", capture.store),
            ),
            Some(_) => {}
        }
        let path = capture.path.trim_matches('/');
        if path.is_empty()
            || path
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            c.push(
                "/capture/path",
                "expected a secret path such as `agents/{agent}/captured`",
            );
        }
    }

    fn validate_encryption(&self, c: &mut Collector<'_>) {
        let Some(enc) = &self.encryption else { return };
        if enc.recipients.is_empty() {
            c.push(
                "/encryption/recipients",
                "expected at least one recipient (remove `encryption` for unencrypted archives)",
            );
        }
        for (i, r) in enc.recipients.iter().enumerate() {
            let ok = age::x25519::Recipient::from_str(r).is_ok()
                || age::ssh::Recipient::from_str(r).is_ok();
            if !ok {
                c.push(
                    format!("/encryption/recipients/{i}"),
                    "expected an age recipient (`age1…`) or an `ssh-ed25519 …`/`ssh-rsa …` public key",
                );
            }
        }
    }

    fn validate_stores(&self, c: &mut Collector<'_>) {
        for (name, store) in &self.stores {
            let at = format!("/stores/{name}");
            if !handle::valid_store_name(name) {
                c.push(
                    &at,
                    "a store name starts with a lowercase letter and holds only lowercase letters, digits, `_` and `-`",
                );
            }
            match store {
                StoreConfig::Vault(v) => {
                    if let Some(addr) = &v.address
                        && !(addr.starts_with("http://") || addr.starts_with("https://"))
                    {
                        c.push(
                            format!("{at}/address"),
                            "expected an http:// or https:// URL",
                        );
                    }
                    if v.mount.is_empty() || v.mount.starts_with('/') || v.mount.ends_with('/') {
                        c.push(
                            format!("{at}/mount"),
                            "expected a mount path such as `secret`",
                        );
                    }
                    if v.timeout_s == Some(0) {
                        c.push(
                            format!("{at}/timeout_s"),
                            "expected a timeout of at least 1 second",
                        );
                    }
                    if let Some(cache) = &v.cache
                        && parse_ttl(&cache.ttl).is_none()
                    {
                        c.push(
                            format!("{at}/cache/ttl"),
                            "expected a duration such as `90s`, `30m`, `24h` or `7d`",
                        );
                    }
                }
                StoreConfig::Local(l) => {
                    if l.max_versions.is_some_and(|n| n < 2) {
                        c.push(
                            format!("{at}/max_versions"),
                            "expected at least 2 (the current and the previous version)",
                        );
                    }
                }
                StoreConfig::Env(_) => {}
            }
        }
    }

    fn validate_secrets(&self, c: &mut Collector<'_>) {
        let mut seen = BTreeSet::new();
        for (i, rule) in self.secrets.iter().enumerate() {
            let at = format!("/secrets/{i}");
            if rule.file.is_empty() || bad_relative(&rule.file) {
                c.push(
                    format!("{at}/file"),
                    "expected a path or glob relative to `state`, without `..`",
                );
            } else if let Some(e) = glob_error(&rule.file) {
                c.push(format!("{at}/file"), format!("invalid glob: {e}"));
            }
            let locators = rule.locators();
            if locators.len() != 1 {
                c.push(
                    &at,
                    format!(
                        "expected exactly one locator of json, yaml, toml, env, ini, regex, whole_file, sqlite; found {}",
                        locators.len()
                    ),
                );
            } else {
                let loc = &locators[0];
                if rule.whole_file == Some(false) {
                    c.push(
                        format!("{at}/whole_file"),
                        "expected `true` (leave the field out when the value is not the whole file)",
                    );
                } else if let Some(msg) = locator_problem(loc) {
                    c.push(format!("{at}/{}", loc.field()), msg);
                }
                if !seen.insert((rule.file.clone(), loc.clone())) {
                    c.push(
                        format!("{at}/{}", loc.field()),
                        format!(
                            "duplicate rule: `{}` with {loc} is already declared",
                            rule.file
                        ),
                    );
                }
            }
            let handle_at = format!("{at}/handle");
            match self.stores.get(&rule.handle.store) {
                None => {
                    let known: Vec<&str> = self.stores.keys().map(String::as_str).collect();
                    c.push(
                        handle_at,
                        format!(
                            "handle `{}` names store `{}`, which `stores` does not define (defined: {})",
                            rule.handle,
                            rule.handle.store,
                            if known.is_empty() { "none".to_string() } else { known.join(", ") }
                        ),
                    );
                }
                Some(store) => {
                    let is_env_store = matches!(store, StoreConfig::Env(_));
                    match (&rule.handle.target, is_env_store) {
                        (Target::Env { .. }, false) => c.push(
                            handle_at,
                            format!(
                                "store `{}` is a {} store: expected `{}:PATH#FIELD`",
                                rule.handle.store,
                                store.kind(),
                                rule.handle.store
                            ),
                        ),
                        (Target::Kv { .. }, true) => c.push(
                            handle_at,
                            format!(
                                "store `{}` is an env store: expected `{}:NAME`",
                                rule.handle.store, rule.handle.store
                            ),
                        ),
                        _ => {}
                    }
                }
            }
        }
    }

    fn validate_detect(&self, c: &mut Collector<'_>) {
        let mut ids = BTreeSet::new();
        for (i, rule) in self.detect.rules.iter().enumerate() {
            let at = format!("/detect/rules/{i}");
            if rule.id.is_empty() {
                c.push(format!("{at}/id"), "expected a non-empty rule id");
            } else if !ids.insert(rule.id.as_str()) {
                c.push(
                    format!("{at}/id"),
                    format!("duplicate rule id `{}`", rule.id),
                );
            }
            if let Err(e) = regex::bytes::Regex::new(&rule.regex) {
                c.push(
                    format!("{at}/regex"),
                    format!("invalid regex: {}", first_line(&e.to_string())),
                );
            }
            if rule
                .keywords
                .as_ref()
                .is_some_and(|k| k.iter().any(String::is_empty))
            {
                c.push(
                    format!("{at}/keywords"),
                    "keywords must be non-empty strings",
                );
            }
        }
        for (i, a) in self.detect.allow.iter().enumerate() {
            if a.is_empty() {
                c.push(
                    format!("/detect/allow/{i}"),
                    "expected a path glob, rule id or fingerprint",
                );
            } else if let Some(e) = glob_error(a) {
                c.push(format!("/detect/allow/{i}"), format!("invalid glob: {e}"));
            }
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim().to_string()
}

fn locator_problem(loc: &Locator) -> Option<String> {
    match loc {
        Locator::Json(p) | Locator::Yaml(p) | Locator::Toml(p) => (!p.starts_with('/'))
            .then(|| "expected a JSON Pointer such as `/openai/api_key`".to_string()),
        Locator::Env(k) => (k.is_empty()
            || !k
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch)))
        .then(|| "expected a dotenv key such as `GITHUB_TOKEN`".to_string()),
        Locator::Ini(k) => (k.is_empty() || k.starts_with('.') || k.ends_with('.'))
            .then(|| "expected `section.key` (or `key` outside any section)".to_string()),
        Locator::Regex(r) => match regex::bytes::Regex::new(r) {
            Err(e) => Some(format!("invalid regex: {}", first_line(&e.to_string()))),
            Ok(re) if re.captures_len() < 2 => {
                Some("expected a capture group: group 1 is the secret value".to_string())
            }
            Ok(_) => None,
        },
        Locator::WholeFile => None,
        Locator::Sqlite(cells) => {
            if cells.table.is_empty() || cells.column.is_empty() {
                Some("expected a `table` and a `column`".to_string())
            } else if cells.filter.keys().any(String::is_empty) {
                Some("expected column names as the keys of `where`".to_string())
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_ttl("24h").unwrap().as_secs(), 86400);
        assert_eq!(parse_ttl("7d").unwrap().as_secs(), 7 * 86400);
        assert!(parse_ttl("24").is_none());
        assert!(parse_ttl("h").is_none());
        assert!(parse_ttl("1w").is_none());
    }
}
