//! Discovery precision: whether a string value under a key is a secret.
//!
//! Pass 1 sees every string value of a structured file with its key. This module decides, from
//! the key's words and the value's shape, which of them are secrets:
//! - **References are never secrets**, whatever the key or rule: `os.environ/OPENAI_API_KEY`
//!   (LiteLLM), `${VAR}`, `$VAR`, `env:X`, `vault:…`, `op://…`, `arn:aws:secretsmanager:…`,
//!   a bare variable name (`AZURE_OPENAI_API_KEY`), `Bearer ${TOKEN}`.
//! - **Metadata keys are not secrets** unless a provider rule fires in the value: a key whose
//!   last word is `hint`, `name`, `url`, `path`, `file`, `id`, `header`, `type`, … describes
//!   a secret without being one (`password_hint`, `csrf_token_name`, `session_id`). `secret_id`
//!   (Vault AppRole) stays a secret.
//! - **Password-like keys** (`password`, `passwd`, `passphrase`, `pwd`, `db_password`,
//!   `secret`, `client_secret`) hold secrets even when the value is letters only or a
//!   passphrase of words (`correct horse battery staple`): people choose passwords, and a
//!   randomness test misses what people choose. Placeholders and non-values (`changeme`,
//!   `true`, `null`) are still not.
//! - **Other credential keys** (`token`, `api_key`, `access_key`, `auth`, …) hold a secret when
//!   the value is random enough ([`looks_random`]) or a long mixed-case random string.
//!
//! Provider rules (a token's published format) are trusted; the generic rules
//! (`generic-assignment`, `high-entropy`) only where the key allows. Nothing here prints or
//! keeps a value.

use crate::detect::{looks_placeholder, looks_random, shannon};

/// Rules whose hits are guesses from a key and a value's randomness, not a published format.
pub(super) const WEAK_RULES: &[&str] = &["generic-assignment", "high-entropy"];

/// A key whose last word is one of these describes a secret (its name, where it is, when it
/// expires) rather than holding one.
const METADATA_WORDS: &[&str] = &[
    "hint",
    "hints",
    "name",
    "names",
    "url",
    "uri",
    "urls",
    "path",
    "paths",
    "file",
    "filename",
    "files",
    "dir",
    "directory",
    "id",
    "ids",
    "env",
    "var",
    "variable",
    "header",
    "headers",
    "type",
    "kind",
    "mode",
    "method",
    "format",
    "prefix",
    "suffix",
    "length",
    "len",
    "count",
    "limit",
    "limits",
    "expiry",
    "expires",
    "expiration",
    "at",
    "ttl",
    "timeout",
    "version",
    "scope",
    "scopes",
    "provider",
    "endpoint",
    "host",
    "port",
    "helper",
    "command",
    "cmd",
    "source",
    "location",
    "field",
    "label",
    "description",
    "enabled",
    "required",
    "policy",
    "strategy",
    "store",
    "backend",
    "template",
    "pattern",
    "algorithm",
    "alg",
    "encoding",
    "size",
    "ref",
    "reference",
    "usage",
    "budget",
    "tokenizer",
    "public",
    // A digest verifies a secret without being one (`password_hash`, a users table's column).
    "hash",
    "hashed",
    "digest",
    "checksum",
];

/// Words that make a key a password's: any value a person could type is a secret.
const PASSWORD_WORDS: &[&str] = &["password", "passwd", "passphrase", "pwd", "pass", "pw"];

/// Words that make a key a credential's by themselves.
const CREDENTIAL_WORDS: &[&str] = &[
    "token",
    "secret",
    "apikey",
    "credential",
    "credentials",
    "bearer",
    "cookie",
    "auth",
    "authorization",
    "pat",
    "privatekey",
    "accesskey",
    "webhook",
];

/// Word pairs that make a key a credential's (`api_key`, `x-api-key`, `private_key`).
const CREDENTIAL_PAIRS: &[(&str, &str)] = &[
    ("api", "key"),
    ("access", "key"),
    ("secret", "key"),
    ("private", "key"),
    ("signing", "key"),
    ("master", "key"),
    ("encryption", "key"),
    ("license", "key"),
    ("session", "key"),
    ("client", "secret"),
    ("secret", "id"),
];

/// Values that say "no value here".
const NON_VALUES: &[&str] = &[
    "true", "false", "null", "none", "nil", "yes", "no", "on", "off", "required", "optional",
    "unset", "empty", "n/a", "na", "tbd", "secret", "password", "token",
];

/// Whether the value under key `leaf` is a secret, given the rule that fired inside it (if
/// any). Returns the reason to report: the rule id, or `key name`.
pub(super) fn classify(leaf: &str, value: &[u8], rule: Option<&str>) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if text.is_empty() || is_reference(text) {
        return None;
    }
    let words = key_words(leaf);
    let kind = key_kind(&words);
    match rule {
        Some(id) if !WEAK_RULES.contains(&id) => return Some(id.to_string()),
        Some(id) => {
            // The generic rules read the key from the text; here the key's words are known,
            // and one that names no credential (`LANGFUSE_PUBLIC_KEY`, `custom_auth_hook`'s
            // neighbours) does not make its value one.
            return match kind {
                KeyKind::Metadata | KeyKind::Other => None,
                KeyKind::Password => password_value(text).then(|| id.to_string()),
                KeyKind::Credential => token_value(text, false).then(|| id.to_string()),
                KeyKind::Headers => header_values(text).then(|| id.to_string()),
            };
        }
        None => {}
    }
    let secret = match kind {
        KeyKind::Password => password_value(text),
        KeyKind::Credential => token_value(text, true),
        KeyKind::Headers => header_values(text),
        KeyKind::Metadata | KeyKind::Other => false,
    };
    secret.then(|| "key name".to_string())
}

/// Whether `key` (a column's name, a key/value row's key) names a credential or a password:
/// the key half of [`classify`]'s judgement, for a database's columns.
pub(super) fn names_credential(key: &str) -> bool {
    matches!(
        key_kind(&key_words(key)),
        KeyKind::Password | KeyKind::Credential
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    /// Describes a secret (`password_hint`, `token_url`, `session_id`).
    Metadata,
    /// Holds a password (`password`, `db_password`, `client_secret`).
    Password,
    /// Holds a token or key (`api_key`, `access_token`).
    Credential,
    /// Holds HTTP headers as `name=value` pairs (`OTEL_EXPORTER_OTLP_HEADERS`).
    Headers,
    /// Anything else.
    Other,
}

fn key_kind(words: &[String]) -> KeyKind {
    let has = |w: &str| words.iter().any(|x| x == w);
    let last = words.last().map(String::as_str).unwrap_or("");
    let pair = |a: &str, b: &str| words.windows(2).any(|p| p[0] == a && p[1] == b);
    if pair("secret", "id") && last == "id" {
        // Vault AppRole's SecretID is a password.
        return KeyKind::Password;
    }
    if last == "headers" {
        return KeyKind::Headers;
    }
    if METADATA_WORDS.contains(&last) || has("public") || has("tokens") && last != "token" {
        return KeyKind::Metadata;
    }
    if PASSWORD_WORDS.iter().any(|w| has(w)) || last == "secret" {
        return KeyKind::Password;
    }
    let credential = CREDENTIAL_WORDS.iter().any(|w| has(w))
        || CREDENTIAL_PAIRS.iter().any(|(a, b)| pair(a, b))
        || (words.len() == 1 && last == "key");
    if credential {
        KeyKind::Credential
    } else {
        KeyKind::Other
    }
}

/// The lowercase words of a key: split at `_`, `-`, `.`, spaces and camelCase humps
/// (`apiKeyHelper` → `api`, `key`, `helper`; `OPENAI_API_KEY` → `openai`, `api`, `key`).
pub(super) fn key_words(key: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = key.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            continue;
        }
        // A hump: lower→Upper, or the last capital of an acronym before a lowercase letter.
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1);
        let hump = c.is_uppercase()
            && !cur.is_empty()
            && (prev.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit())
                || next.is_some_and(|n| n.is_lowercase()) && prev.is_some_and(char::is_uppercase));
        if hump {
            words.push(std::mem::take(&mut cur));
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// A pointer to a secret kept elsewhere, not the secret: a variable, a vault path, a secret
/// manager's ARN, a 1Password reference, with or without an auth scheme before it.
pub(super) fn is_reference(value: &str) -> bool {
    let v = value.trim();
    let v = ["Bearer ", "bearer ", "Basic ", "Token ", "token "]
        .iter()
        .find_map(|p| v.strip_prefix(p))
        .unwrap_or(v)
        .trim();
    const PREFIXES: &[&str] = &[
        "os.environ/",
        "os.environ[",
        "os.getenv(",
        "process.env.",
        "env:",
        "env.",
        "vault:",
        "op://",
        "arn:aws:secretsmanager:",
        "arn:aws:ssm:",
        "arn:aws:kms:",
        "secretsmanager:",
        "ssm:",
        "keyring:",
        "keychain:",
        "file:",
        "sops:",
        "gcp-secret:",
        "projects/",
        "azurekeyvault:",
        "@Microsoft.KeyVault(",
        "$(",
        "${",
        "{{",
        "%(",
        "<",
    ];
    if PREFIXES.iter().any(|p| v.starts_with(p)) {
        return true;
    }
    // `$VAR`, `%VAR%`.
    if let Some(rest) = v.strip_prefix('$')
        && !rest.is_empty()
        && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return true;
    }
    if v.len() > 2 && v.starts_with('%') && v.ends_with('%') {
        return true;
    }
    is_variable_name(v)
}

/// `OPENAI_API_KEY`: capitals, digits and at least one underscore, as environment variables
/// are named; a value like that names where a secret is, it is not one.
fn is_variable_name(v: &str) -> bool {
    v.len() >= 3
        && v.contains('_')
        && v.starts_with(|c: char| c.is_ascii_uppercase())
        && v.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// A value under a password-like key: anything a person could have typed, except
/// placeholders, non-values and bare numbers of less than 8 digits.
fn password_value(v: &str) -> bool {
    let lower = v.to_ascii_lowercase();
    if v.chars().count() < 6 || NON_VALUES.contains(&lower.as_str()) || v.contains('\n') {
        return false;
    }
    if looks_placeholder(v.as_bytes()) || is_header_name(v) && v.starts_with(char::is_uppercase) {
        return false;
    }
    true
}

/// A value under a token-like key: random enough to be a credential. `letters`: also a long
/// mixed-case string of letters and digits with a high entropy (tokens without symbols).
fn token_value(v: &str, letters: bool) -> bool {
    let b = v.as_bytes();
    if is_header_name(v) || is_ulid(b) || v.contains(' ') && !v.contains('=') {
        return false;
    }
    if is_identifier(v) {
        return false;
    }
    // Under a credential key a UUID or a long hex string is a key (Pinecone, Serper, Heroku),
    // not a digest.
    let hex = b.len() >= 32 && b.iter().all(u8::is_ascii_hexdigit);
    if looks_random(b, false) || hex || is_uuid(b) {
        return true;
    }
    letters
        && b.len() >= 20
        && b.iter().all(u8::is_ascii_alphanumeric)
        && b.iter().any(u8::is_ascii_uppercase)
        && b.iter().any(u8::is_ascii_lowercase)
        && shannon(b) >= 3.5
        && !looks_placeholder(b)
}

/// `name=value[,name=value]` headers where a value is random enough to be a credential
/// (`x-honeycomb-team=…`, `Authorization=Bearer …`).
fn header_values(v: &str) -> bool {
    v.split(',').any(|pair| {
        pair.split_once('=').is_some_and(|(_, value)| {
            let value = value.trim();
            let value = value.strip_prefix("Bearer ").unwrap_or(value);
            !is_reference(value) && token_value(value, true)
        })
    })
}

/// Words and module paths (`custom_auth.user_api_key_auth`, `usage-based-routing-v2`):
/// lowercase words of at most 12 letters and short numbers, joined by `_`, `.`, `-`, `:`.
fn is_identifier(v: &str) -> bool {
    let segments: Vec<&str> = v
        .split(['_', '.', '-', ':', '/'])
        .filter(|s| !s.is_empty())
        .collect();
    segments.len() >= 2
        && segments.iter().all(|s| {
            (s.len() <= 12 && s.chars().all(|c| c.is_ascii_lowercase()))
                || (s.len() <= 3 && s.chars().all(|c| c.is_ascii_alphanumeric()))
        })
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// An HTTP header name: words of letters joined by `-` (`X-CSRF-Token`, `x-api-key`).
fn is_header_name(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    parts.len() >= 2
        && v.len() <= 40
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 16 && p.chars().all(|c| c.is_ascii_alphabetic()))
        && (parts.iter().all(|p| header_word(p)) || v.starts_with("x-"))
}

/// A word of a header name as people write them: `Content`, `Type`, `X`, `API`, `WWW`. A
/// random mix of cases (`BxReCase`, a generated password's piece) is none.
fn header_word(p: &str) -> bool {
    let mut chars = p.chars();
    let first_upper = chars.next().is_some_and(|c| c.is_ascii_uppercase());
    let title = first_upper && chars.all(|c| c.is_ascii_lowercase());
    let acronym = p.len() <= 4 && p.chars().all(|c| c.is_ascii_uppercase());
    title || acronym
}

/// A ULID: 26 characters of Crockford base32, the first at most `7`.
fn is_ulid(b: &[u8]) -> bool {
    b.len() == 26
        && b[0] <= b'7'
        && b.iter().all(|c| {
            c.is_ascii_digit()
                || (c.is_ascii_uppercase() && !matches!(c, b'I' | b'L' | b'O' | b'U'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_words_split_at_separators_and_humps() {
        assert_eq!(key_words("apiKeyHelper"), ["api", "key", "helper"]);
        assert_eq!(key_words("OPENAI_API_KEY"), ["openai", "api", "key"]);
        assert_eq!(key_words("x-api-key"), ["x", "api", "key"]);
        assert_eq!(key_words("HTTPProxyToken"), ["http", "proxy", "token"]);
        assert_eq!(key_words("csrf_token_name"), ["csrf", "token", "name"]);
    }

    #[test]
    fn references_hints_headers_and_ids_are_not_secrets() {
        let not = [
            ("api_key", "os.environ/OPENAI_API_KEY"),
            ("api_key", "${OPENAI_API_KEY}"),
            ("token", "$GITHUB_TOKEN"),
            ("password", "env:DB_PASSWORD"),
            ("token", "vault:secret/data/agent#token"),
            ("password", "op://Private/Postgres/password"),
            (
                "secret",
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:agent-Ab12Cd",
            ),
            ("Authorization", "Bearer ${SENTRY_TOKEN}"),
            ("env_key", "AZURE_OPENAI_API_KEY"),
            ("csrf_token_name", "X-CSRF-Token"),
            ("header", "X-Api-Key"),
            ("password_hint", "the usual one"),
            ("session_id", "01J9ZQ4X3K8M2N6P5R7T9V1W3Y"),
            ("session_id", "0b6c2f1e-3d4a-4e5f-9a8b-7c6d5e4f3a2b"),
            ("token_url", "https://auth.example.net/oauth/token"),
            ("password", "changeme"),
            ("password", "true"),
            ("tokenizer", "cl100k_base"),
            ("max_tokens", "4096"),
            ("author", "Jane Q. Doe"),
            // A digest verifies a password; it is not one (a users table's column).
            (
                "password_hash",
                "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            ),
        ];
        for (key, value) in not {
            assert_eq!(
                classify(key, value.as_bytes(), None),
                None,
                "{key}: {value}"
            );
            assert_eq!(
                classify(key, value.as_bytes(), Some("generic-assignment")),
                None,
                "{key}: {value} (generic hit)"
            );
        }
    }

    #[test]
    fn column_names_that_name_credentials() {
        for yes in [
            "api_token",
            "password",
            "OPENAI_API_KEY",
            "github_token",
            "secret",
            "key",
        ] {
            assert!(names_credential(yes), "{yes}");
        }
        for no in [
            "email",
            "password_hash",
            "token_count",
            "name",
            "value",
            "content",
        ] {
            assert!(!names_credential(no), "{no}");
        }
    }

    #[test]
    fn letters_only_and_passphrase_passwords_are_secrets() {
        let yes = [
            ("password", "qWmZpTrXvLkYhNbGsJdF"),
            // Letters and dashes without a digit, 2 % of `rand 8-rand 8-rand 6`: once taken
            // for a header name, which made the quickstart's snapshot capture it (exit 3).
            ("password", "UPSAnMwO-BxReCase-VkmxGb"),
            ("passphrase", "correct horse battery staple"),
            ("db_password", "correct-horse-battery-staple"),
            ("passwd", "tgmkqzvnrbwy"),
            ("secret", "RlKxWqPzMvNbTyHs"),
            ("client_secret", "qWmZpTrXvLkYhNbGsJdF"),
            ("secret_id", "0b6c2f1e-3d4a-4e5f-9a8b-7c6d5e4f3a2b"),
            ("api_key", "Zq8vN2xT5mK9pL3wR7"),
            ("accessToken", "qWmZpTrXvLkYhNbGsJdFcEaU"),
        ];
        for (key, value) in yes {
            assert!(
                classify(key, value.as_bytes(), None).is_some(),
                "{key}: {value}"
            );
        }
        // Regression (issue 19, about 1 run in 9): random letters-only passwords, every time.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..500 {
            let pw: String = (0..20)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let letters = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
                    letters[(seed % 52) as usize] as char
                })
                .collect();
            assert!(classify("password", pw.as_bytes(), None).is_some());
        }
        // A provider rule is trusted whatever the key.
        assert_eq!(
            classify("name", b"ghp_Zq8vN2xT5mK9pL3wR7", Some("github-pat")).as_deref(),
            Some("github-pat")
        );
    }
}
