//! Randomness tests: is a candidate string a credential, or a word, a reference, a digest or a
//! documentation placeholder?
//!
//! These gates keep the generic rules and the entropy findings quiet on look-alikes (SPEC.md
//! "Scan"; issues 3 and 20 list them): `${VAR}` and `{{ var }}` references, `<your-token>`,
//! `YOUR_API_KEY`, `sk-xxxx…`, `changeme`, redacted forms (`ghp_…abcd`, `sk-proj-****`,
//! `[MASKED]`), documentation tokens (jwt.io's), repeated characters, UUIDs and hex digests;
//! and, for assignments, references to where a secret lives rather than the secret: code
//! (`os.environ["X"]`, `self.token`, `get_token(…)`), secret-store addresses (`vault:…`,
//! `op://…`, `arn:aws:secretsmanager:…`, `ENC[…]`, agentbak handles) and regex sources (an
//! agentbak rule in a manifest or index). They look at the candidate only, never print it.

use std::sync::OnceLock;

use aho_corasick::AhoCorasick;

/// Shannon entropy of `s` in bits per byte.
pub fn shannon(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Words that mark documentation and test values, compared case-insensitively.
const PLACEHOLDER_WORDS: &[&str] = &[
    "xxxx",
    "example",
    "your",
    "redacted",
    "dummy",
    "sample",
    "changeme",
    "change_me",
    "placeholder",
    "replace",
    "insert",
    "${",
    "{{",
    "%(",
    "$(",
    "...",
    "…",
    "\\u2026",
    "\\u2022",
    "•",
    "***",
    "masked",
    "filtered",
    "change-me",
    "fake",
    "notreal",
    "not-real",
    "todo",
    "+agentbak:",
    // The jwt.io example token (its payload and signature): documentation everywhere.
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIy",
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
];

/// Whether `s` reads as a placeholder rather than a credential: a documentation marker, a
/// variable reference, or a run of one repeated character.
pub fn looks_placeholder(s: &[u8]) -> bool {
    static WORDS: OnceLock<AhoCorasick> = OnceLock::new();
    let words = WORDS.get_or_init(|| {
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(PLACEHOLDER_WORDS)
            .expect("placeholder words build")
    });
    if words.is_match(s) {
        return true;
    }
    let wrapped = |a: u8, b: u8| s.first() == Some(&a) && s.last() == Some(&b);
    // `<password>` and `<your token>@host` (cut where a value ends), also escaped as Go's
    // `json.Marshal` and HTML write it.
    let angle = (s.starts_with(b"<") && s.contains(&b'>'))
        || s.starts_with(b"\\u003c")
        || s.starts_with(b"\\u003C")
        || s.starts_with(b"&lt;");
    if s.starts_with(b"$") || angle || wrapped(b'%', b'%') || wrapped(b'[', b']') {
        return true;
    }
    longest_run(s) >= 6 || (s.len() >= 16 && distinct(s) < 6)
}

/// Whether a value in a secret-looking assignment is random enough to be a credential.
///
/// `strict` (the entropy findings): at least 16 bytes and 3.5 bits per byte, or 24 bytes of
/// hex-like text at 3.0. Otherwise (the generic assignment rule): at least 8 bytes, two
/// character classes of which one is a digit or a symbol, and 2.5 bits per byte. Both refuse
/// placeholders, UUIDs, hex digests of common lengths, paths and plain words.
pub fn looks_random(s: &[u8], strict: bool) -> bool {
    // Cheapest tests first: most candidates are short, digests, paths or identifiers.
    let min = if strict { 16 } else { 8 };
    if s.len() < min || is_uuid(s) || is_digest(s) || is_path(s) {
        return false;
    }
    if (strict && is_identifier(s)) || looks_placeholder(s) {
        return false;
    }
    let classes = classes(s);
    let has_digit_or_symbol = classes.digit || classes.symbol;
    let n = classes.lower as u8 + classes.upper as u8 + classes.digit as u8 + classes.symbol as u8;
    let bits = shannon(s);
    let random = if strict {
        (s.len() >= 16 && bits >= 3.5 && n >= 2 && has_digit_or_symbol)
            || (s.len() >= 24 && bits >= 3.0 && n >= 2 && has_digit_or_symbol)
    } else {
        n >= 2 && has_digit_or_symbol && bits >= 2.5
    };
    // Last, and only for what would pass: most candidates fail the tests above.
    random && !looks_reference(s)
}

/// Whether a value under a password-like key (`password`, `passwd`, `passphrase`) is a
/// password: what [`looks_random`] accepts, and also letters only when long and irregular
/// enough (`TrqpLmzoXekWuvbsNyaH`), which a person or a generator picks; never a placeholder, a
/// reference, a path, a stock word or an identifier made of words (`PasswordField`).
pub fn looks_password(s: &[u8]) -> bool {
    if looks_random(s, false) {
        return true;
    }
    if s.len() < 12 || !s.iter().all(u8::is_ascii_alphabetic) {
        return false;
    }
    if looks_placeholder(s) || looks_reference(s) || is_camel_words(s) {
        return false;
    }
    shannon(s) >= 3.3
}

/// `PasswordField`, `userPassword`: words joined in camel case, each capital starting a word
/// of at least three letters.
fn is_camel_words(s: &[u8]) -> bool {
    if !s.iter().any(u8::is_ascii_uppercase) {
        return false;
    }
    let mut word = 0;
    for (i, b) in s.iter().enumerate() {
        if b.is_ascii_uppercase() {
            if i > 0 && word < 3 {
                return false;
            }
            word = 1;
        } else {
            word += 1;
        }
    }
    word >= 3
}

/// Secret-store addresses: the value names where the secret lives.
const STORE_PREFIXES: &[&str] = &[
    "vault:",
    "op://",
    "arn:aws",
    "arn:",
    "env:",
    "os.environ",
    "secretsmanager:",
    "ssm:",
    "ssm://",
    "awssm:",
    "gcpsm:",
    "gcp-secret:",
    "sm://",
    "azkv:",
    "keyvault:",
    "@microsoft.keyvault(",
    "sops:",
    "kms:",
    "keyring:",
    "doppler:",
    "bw:",
    "pass:",
    "file:",
    "enc[",
    "projects/",
    "secret/data/",
    "kv/data/",
];

/// Whether a value names where a secret is rather than holding it: a secret-store address
/// (`vault:…`, `op://…`, `arn:aws:…`, sops' `ENC[…]`, an agentbak handle `STORE:PATH#FIELD`),
/// code that reads one (`os.environ["X"]`, `self.api_key`, `get_token(…)`), the tail of a
/// shell expansion (`${X:?required}` read from its `:`), or a regex source (a rule of
/// agentbak's own manifest or index). Values are cut where an assignment's value ends (at
/// spaces, quotes, `,`, `;`, `\`).
pub fn looks_reference(s: &[u8]) -> bool {
    let prefixed = |p: &&str| {
        s.get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p.as_bytes()))
    };
    if STORE_PREFIXES.iter().any(prefixed) {
        return true;
    }
    is_handle(s) || is_code_reference(s) || is_regex_source(s) || is_expansion_tail(s)
}

/// An agentbak handle: `store:path#field` with an optional `@version`, path segments of
/// name characters.
fn is_handle(s: &[u8]) -> bool {
    let Some(colon) = s.iter().position(|&b| b == b':') else {
        return false;
    };
    let Some(hash) = s.iter().rposition(|&b| b == b'#') else {
        return false;
    };
    let name = |b: &u8| b.is_ascii_alphanumeric() || b"_-.".contains(b);
    let store = &s[..colon];
    let path = &s[colon + 1..hash.max(colon + 1)];
    let field = &s[hash + 1..];
    let field = field.split(|&b| b == b'@').next().unwrap_or_default();
    !store.is_empty()
        && store[0].is_ascii_lowercase()
        && store.iter().all(name)
        && path.contains(&b'/')
        && path
            .iter()
            .all(|b| name(b) || *b == b'/' || *b == b'{' || *b == b'}')
        && !field.is_empty()
        && field.iter().all(name)
}

/// Code that reads a secret: a dotted (or `::`) path of identifiers (`self.api_key`,
/// `settings.OPENAI_API_KEY`, `process.env.TOKEN`), or an identifier path followed by a call
/// or subscript (`os.getenv(`, `get_token(app_id`, `os.environ[`). Each identifier must read
/// as one (snake, SCREAMING or camel case words), so a random token with a dot is not one.
fn is_code_reference(s: &[u8]) -> bool {
    let end = s
        .iter()
        .position(|&b| b == b'(' || b == b'[')
        .unwrap_or(s.len());
    let (path, call) = (&s[..end], end < s.len());
    let path = path.strip_suffix(b"?").unwrap_or(path);
    let mut segments = 0;
    let mut rest = path;
    while !rest.is_empty() {
        let cut = rest
            .iter()
            .position(|&b| b == b'.' || b == b':')
            .unwrap_or(rest.len());
        if !is_word_identifier(&rest[..cut]) {
            return false;
        }
        segments += 1;
        rest = &rest[cut..];
        rest = rest
            .strip_prefix(b"::")
            .or_else(|| rest.strip_prefix(b"."))
            .unwrap_or(rest);
        if rest.first().is_some_and(|&b| b == b'.' || b == b':') {
            return false;
        }
    }
    segments >= 2 || (segments == 1 && call)
}

/// `snake_case`, `SCREAMING_CASE`, `camelCase` or `PascalCase` words (each hump two or more
/// letters), with digits only at the end of a word: `api_key2`, `getInstallationToken`,
/// `OPENAI_API_KEY`; not `x9Kq` or `aB3dE5`.
fn is_word_identifier(s: &[u8]) -> bool {
    if s.is_empty() || s[0].is_ascii_digit() {
        return false;
    }
    if s.iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        || s.iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
    {
        return s.split(|&b| b == b'_').all(|w| {
            let letters = w.iter().take_while(|b| b.is_ascii_alphabetic()).count();
            w[letters..].iter().all(u8::is_ascii_digit) && (w.is_empty() || letters > 0)
        });
    }
    // Camel or Pascal case: humps of an optional capital then two or more lowercase letters.
    let mut i = 0;
    while i < s.len() {
        let start = i;
        if s[i].is_ascii_uppercase() {
            i += 1;
        }
        let lower = s[i..].iter().take_while(|b| b.is_ascii_lowercase()).count();
        i += lower;
        if lower < 2 && !(start == 0 && lower >= 1) {
            return false;
        }
    }
    true
}

/// A regex source: character-class ranges or escapes that only patterns hold.
fn is_regex_source(s: &[u8]) -> bool {
    const MARKS: &[&[u8]] = &[
        b"a-z", b"A-Z", b"0-9", b"a-f", b"\\s", b"\\S", b"\\d", b"\\w", b"\\b", b"(?i", b"(?P<",
        b"]+", b"]*", b"]{",
    ];
    MARKS.iter().any(|m| memchr::memmem::find(s, m).is_some())
}

/// The tail of a shell expansion read from its `:` (`${X:?required}`, `${X:-default}`): a
/// closing brace without an opening one.
fn is_expansion_tail(s: &[u8]) -> bool {
    s.ends_with(b"}") && !s.contains(&b'{')
}

struct Classes {
    lower: bool,
    upper: bool,
    digit: bool,
    symbol: bool,
}

fn classes(s: &[u8]) -> Classes {
    Classes {
        lower: s.iter().any(u8::is_ascii_lowercase),
        upper: s.iter().any(u8::is_ascii_uppercase),
        digit: s.iter().any(u8::is_ascii_digit),
        symbol: s.iter().any(|b| !b.is_ascii_alphanumeric()),
    }
}

/// A file path: absolute, home- or dot-relative, or a Windows drive path.
fn is_path(s: &[u8]) -> bool {
    s.starts_with(b"/")
        || s.starts_with(b"~/")
        || s.starts_with(b"./")
        || s.starts_with(b"../")
        || (s.len() > 2 && s[0].is_ascii_alphabetic() && s[1] == b':' && s[2] == b'\\')
}

/// An identifier made of words and small numbers (`user-profile-page-1`, `cacheKeyV2`):
/// high per-character entropy, but no randomness.
fn is_identifier(s: &[u8]) -> bool {
    let segments: Vec<&[u8]> = s
        .split(|b| b"-_.:/ ".contains(b))
        .filter(|seg| !seg.is_empty())
        .collect();
    segments.len() >= 2
        && segments.iter().all(|seg| {
            let word = seg.len() <= 12
                && seg.iter().all(u8::is_ascii_alphabetic)
                && seg[1..].iter().all(u8::is_ascii_lowercase);
            let upper = seg.len() <= 12 && seg.iter().all(u8::is_ascii_uppercase);
            let number = seg.len() <= 4 && seg.iter().all(u8::is_ascii_digit);
            word || upper || number
        })
}

/// `8-4-4-4-12` hex.
pub fn is_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Hex of a git SHA-1, SHA-256 or SHA-512 length.
pub fn is_digest(s: &[u8]) -> bool {
    matches!(s.len(), 40 | 64 | 128) && s.iter().all(u8::is_ascii_hexdigit)
}

fn longest_run(s: &[u8]) -> usize {
    let mut best = 0;
    let mut run = 0;
    let mut prev = None;
    for &b in s {
        if Some(b) == prev {
            run += 1;
        } else {
            run = 1;
            prev = Some(b);
        }
        best = best.max(run);
    }
    best
}

fn distinct(s: &[u8]) -> usize {
    let mut seen = [false; 256];
    s.iter().for_each(|&b| seen[b as usize] = true);
    seen.iter().filter(|&&x| x).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_uniform_and_constant_text() {
        assert_eq!(shannon(b"aaaa"), 0.0);
        assert!((shannon(b"abcd") - 2.0).abs() < 1e-9);
    }

    #[test]
    fn placeholders_are_recognised() {
        for p in [
            "${OPENAI_API_KEY}",
            "<your-token>",
            "YOUR_API_KEY",
            "sk-xxxxxxxxxxxxxxxxxxxx",
            "changeme",
            "{{ vault_token }}",
            "%APPDATA%",
            "+agentbak:vault:a/b:c+",
            "aaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(looks_placeholder(p.as_bytes()), "{p}");
        }
        assert!(!looks_placeholder(b"Zq8vN2xT5mK9pL3w"));
    }

    /// Issue 20: the generic assignment rule flagged references, redacted forms and the
    /// jwt.io token (10.8% false positives on an agent corpus).
    #[test]
    fn references_redactions_and_doc_tokens_are_not_random() {
        for v in [
            "os.environ[",
            "os.environ/OPENAI_API_KEY",
            "os.getenv(",
            "std::env::var(",
            "ENV.fetch(",
            "self.password",
            "settings.OPENAI_API_KEY",
            "process.env.SLACK_BOT_TOKEN",
            "get_installation_token(app_id",
            "vault:secret/data/agents/kevin#openai_api_key",
            "vault:agents/kevin/github#token",
            "local:agents/kevin/captured#github-pat-3f9a0c12d4e5",
            "op://dev/github-pat/token",
            "arn:aws:ssm:eu-west-1:123456789012:parameter/agent/slack-token",
            "ENC[AES256_GCM",
            "projects/agent-prod/secrets/openai-key/versions/latest",
            "@Microsoft.KeyVault(SecretUri=https://agentkv.vault.azure.net/secrets/db-password/)",
            "env:GITHUB_TOKEN",
            "?required}",
            "([A-Za-z0-9_]+)",
            "(?i)api[_-]?key",
            "ghp_\\u2026abcd",
            "sk-proj-***...***Qx9A",
            "[MASKED]",
            "\\u003cpassword\\u003e",
            "<password>@db.internal",
            "change-me-please-123",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        ] {
            assert!(!looks_random(v.as_bytes(), false), "{v}");
        }
        // Random values with dots, colons, brackets or hashes are still secrets.
        for v in [
            "x9Kq.Lm3Z-pT8w",
            "aB3dE5fG.hJ7kL9",
            "h7#Kq2!vLx9",
            "Zq8vN2xT:5mK9pL3w",
            "p4ss[w0rd]Xy",
            "mT3k-Q9vL-x2Pz",
        ] {
            assert!(looks_random(v.as_bytes(), false), "{v}");
        }
    }

    #[test]
    fn randomness_gate() {
        assert!(looks_random(b"Zq8vN2xT5mK9pL3wR7", true));
        assert!(looks_random(b"hunter2!", false));
        assert!(!looks_random(b"password", false), "a plain word");
        assert!(!looks_random(b"123e4567-e89b-12d3-a456-426614174000", true));
        assert!(!looks_random(
            b"da39a3ee5e6b4b0d3255bfef95601890afd80709",
            true
        ));
        assert!(!looks_random(b"/usr/local/share/data", false));
        assert!(!looks_random(b"user-profile-page-1", true));
        assert!(
            looks_random(b"user-profile-page-1", false),
            "a passphrase is a password"
        );
    }
}
