//! Randomness tests: is a candidate string a credential, or a word, a reference, a digest or a
//! documentation placeholder?
//!
//! These gates keep the generic rules and the entropy findings quiet on look-alikes (SPEC.md
//! "Scan"; issue 3 lists them): `${VAR}` and `{{ var }}` references, `<your-token>`,
//! `YOUR_API_KEY`, `sk-xxxx…`, `changeme`, repeated or sequential characters, UUIDs and hex
//! digests. They look at the candidate only, never print it.

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
    "****",
    "fake",
    "notreal",
    "not-real",
    "todo",
    "+agentbak:",
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
    if s.starts_with(b"$") || wrapped(b'%', b'%') || wrapped(b'<', b'>') || wrapped(b'[', b']') {
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
    if strict {
        (s.len() >= 16 && bits >= 3.5 && n >= 2 && has_digit_or_symbol)
            || (s.len() >= 24 && bits >= 3.0 && n >= 2 && has_digit_or_symbol)
    } else {
        n >= 2 && has_digit_or_symbol && bits >= 2.5
    }
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
