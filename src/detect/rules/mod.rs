//! Pattern rules: the builtin provider table, the entropy rule, the manifest's custom rules,
//! and the gates that tell a credential from a look-alike.
//!
//! A rule is a regex plus the keywords that must occur near a match (the prefilter runs the
//! regex only around a keyword hit), and a [`Gate`] applied to the captured secret. The secret
//! is the capture group named `secret`, else group 1 (custom rules), else the whole match.
//! Invariants: builtin regexes are byte-oriented and ASCII-only (`unicode(false)`), so word
//! boundaries stay on the fast engines; every rule knows how long a match can get
//! ([`Compiled::reach`]), which bounds the search window around a keyword hit and the overlap
//! a stream keeps between chunks.

mod builtin;

pub use builtin::{BUILTIN, NEGATIVES};

use std::sync::OnceLock;

use base64::Engine;
use regex_automata::meta::Regex;
use regex_automata::util::syntax;
use regex_syntax::hir::{Hir, HirKind};

use super::DetectError;
use super::entropy::{looks_placeholder, looks_random};
use crate::manifest::CustomRule;

/// Longest match a window is sized for: longer matches of unbounded custom regexes may be cut.
pub const MAX_REACH: usize = 8192;

/// Builtin rules whose keyword is not where a match starts: their regexes run over a window
/// around each keyword hit. Every other builtin rule's match starts at its keyword, so its
/// regex runs anchored there, which costs a few bytes per hit instead of a window.
const WINDOWED: &[&str] = &[
    "openai-legacy-key",
    "discord-webhook",
    "telegram-bot-token",
    "terraform-cloud-token",
    "private-key",
    "sentry-dsn",
    "azure-ad-client-secret",
];

/// The test a captured secret must pass for a match to be a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// A provider token: not a placeholder (`xxxx`, `${VAR}`, `<token>`, repeated characters).
    Token,
    /// A provider token whose prefix is short (`fw_`, `secret_`): not a placeholder, and its
    /// body mixes at least two of lowercase, uppercase and digits, so that an identifier
    /// (`fw_updateconfigurationfile`) is not one.
    Mixed,
    /// A PEM block: its body is not elided (`...`, `xxxx`).
    Pem,
    /// A URL password: not a placeholder and not a stock word such as `password`.
    Url,
    /// A `Basic` header: base64 that decodes to `user:password`.
    Basic,
    /// A generic assignment: random enough to be a credential (see `entropy::looks_random`).
    Assignment,
    /// A value under a password-like key: a password (see `entropy::looks_password`).
    Password,
    /// An entropy finding: strictly random (see `entropy::looks_random`).
    Entropy,
    /// A custom rule: everything that is not one of agentbak's placeholders.
    Custom,
}

/// A rule as written in the builtin table.
#[derive(Debug)]
pub struct Rule {
    /// Stable id, shown in findings and accepted by allowlists.
    pub id: &'static str,
    /// What the rule finds, for reports.
    pub description: &'static str,
    /// Literals that occur in every match (case-insensitive when the regex starts `(?i)`).
    pub keywords: &'static [&'static str],
    /// The pattern.
    pub regex: &'static str,
    /// The test a captured secret must pass.
    pub gate: Gate,
    /// Texts that must yield a finding of this rule.
    pub positives: &'static [&'static str],
    /// Texts that must yield no finding of any rule.
    pub negatives: &'static [&'static str],
}

/// Builds a table entry; a function so the table stays one short block per rule.
pub(crate) const fn rule(
    id: &'static str,
    description: &'static str,
    keywords: &'static [&'static str],
    regex: &'static str,
    gate: Gate,
    positives: &'static [&'static str],
    negatives: &'static [&'static str],
) -> Rule {
    Rule {
        id,
        description,
        keywords,
        regex,
        gate,
        positives,
        negatives,
    }
}

/// The entropy rule: a long, strictly random value assigned to a secret-looking name. Its
/// findings have kind `entropy` and the severity `detect.entropy` gives them.
pub static ENTROPY: Rule = rule(
    "high-entropy",
    "high-randomness value assigned to a secret-looking name",
    &[
        "key",
        "secret",
        "token",
        "pass",
        "pwd",
        "auth",
        "cred",
        "session",
        "cookie",
        "signature",
        "salt",
    ],
    r#"(?i)(?:key|secret|token|pass|pwd|auth|cred|session|cookie|signature|salt)[A-Za-z0-9_.-]{0,20}["']?[ \t\x0b\x0c]{0,4}(?::=|=>|[:=])[ \t\x0b\x0c]{0,4}["'`]?(?P<secret>[^\s"'`,;\\]{16,400})"#,
    Gate::Entropy,
    &[
        "session_cookie = \"Qm9vZ2xlLWJhc2UtNjQtc2Vzc2lvbi1jb29raWU9eHl6\"",
        "\"signing_key\": \"pT8wL2vQ9xZr4sY7uB3nK6mJ1hG5fD0c\"",
    ],
    &[
        "\"cache_key\": \"user-profile-page-1\"",
        "\"key\": \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"",
    ],
);

/// Rule id of findings of known values.
pub const KNOWN_VALUE_RULE: &str = "known-value";

/// A rule ready to run.
///
/// A builtin rule's regex is compiled the first time a keyword hit needs it: most of the
/// table never runs on a given input (its keywords do not occur), and compiling all of it took
/// most of the start-up of every command that scans. The table is tested to compile.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub id: String,
    pub description: String,
    /// The pattern, for builtin rules (compiled on first use); custom rules are compiled
    /// when the detector is built, so that a bad one is reported then.
    pattern: &'static str,
    matcher: OnceLock<Matcher>,
    pub gate: Gate,
    /// Keywords and whether they compare case-insensitively.
    pub keywords: Vec<String>,
    pub case_insensitive: bool,
    /// Longest match, capped at [`MAX_REACH`].
    pub reach: usize,
    /// Every match starts at one of the keywords: run anchored at each keyword hit.
    pub anchored: bool,
    /// The fewest bytes the `secret` group matches (0 without one): assignments with a
    /// shorter value are passed over before the regex runs.
    pub min_secret: usize,
    /// The most bytes the `secret` group matches (`usize::MAX` when unbounded or without one).
    pub max_secret: usize,
}

/// A compiled regex and the capture group of its secret, if not the whole match.
#[derive(Debug)]
struct Matcher {
    regex: Regex,
    group: Option<usize>,
}

impl Compiled {
    pub(crate) fn builtin(rule: &Rule) -> Compiled {
        let hir = parse(rule.regex, false);
        let (min_secret, max_secret) = secret_len(hir.as_ref());
        Compiled {
            anchored: !WINDOWED.contains(&rule.id),
            id: rule.id.to_string(),
            description: rule.description.to_string(),
            reach: reach(hir.as_ref()),
            min_secret,
            max_secret,
            pattern: rule.regex,
            matcher: OnceLock::new(),
            gate: rule.gate,
            keywords: rule.keywords.iter().map(|k| k.to_string()).collect(),
            case_insensitive: rule.regex.starts_with("(?i)"),
        }
    }

    /// The rule's regex, compiled on first use.
    pub(crate) fn regex(&self) -> &Regex {
        &self.matcher().regex
    }

    /// The capture group of the secret, if not the whole match.
    pub(crate) fn group(&self) -> Option<usize> {
        self.matcher().group
    }

    fn matcher(&self) -> &Matcher {
        self.matcher.get_or_init(|| {
            let regex = Regex::builder()
                .syntax(syntax::Config::new().unicode(false).utf8(false))
                .build(self.pattern)
                .unwrap_or_else(|e| panic!("builtin rule {} does not compile: {e}", self.id));
            let group = secret_group(&regex, false);
            Matcher { regex, group }
        })
    }

    /// Whether the rule runs on text only: assignments and entropy, whose names are common
    /// words and whose values look like any random run of bytes in binary data.
    pub(crate) fn text_only(&self) -> bool {
        matches!(self.gate, Gate::Assignment | Gate::Password | Gate::Entropy)
    }

    pub(crate) fn custom(rule: &CustomRule) -> Result<Compiled, DetectError> {
        let regex = Regex::builder()
            .syntax(syntax::Config::new().utf8(false))
            .build(&rule.regex)
            .map_err(|e| DetectError::Rule {
                id: rule.id.clone(),
                reason: e.to_string(),
            })?;
        let group = secret_group(&regex, true);
        let hir = parse(&rule.regex, true);
        let (min_secret, max_secret) = secret_len(hir.as_ref());
        Ok(Compiled {
            anchored: false,
            id: rule.id.clone(),
            description: format!("custom rule {}", rule.id),
            reach: reach(hir.as_ref()),
            min_secret,
            max_secret,
            pattern: "",
            matcher: OnceLock::from(Matcher { regex, group }),
            gate: Gate::Custom,
            keywords: rule.keywords.clone().unwrap_or_default(),
            case_insensitive: true,
        })
    }
}

/// The capture group of the secret: the one named `secret`, else (custom rules) group 1.
fn secret_group(regex: &Regex, first_group: bool) -> Option<usize> {
    let info = regex.group_info();
    info.to_index(regex_automata::PatternID::ZERO, "secret")
        .or((first_group && info.group_len(regex_automata::PatternID::ZERO) > 1).then_some(1))
}

fn parse(pattern: &str, unicode: bool) -> Option<Hir> {
    regex_syntax::ParserBuilder::new()
        .unicode(unicode)
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()
}

/// The longest match a pattern (parsed) can produce, capped at [`MAX_REACH`].
fn reach(hir: Option<&Hir>) -> usize {
    hir.and_then(|hir| hir.properties().maximum_len())
        .map_or(MAX_REACH, |n| n.min(MAX_REACH))
}

/// The fewest and the most bytes the group named `secret` of a pattern (parsed) can match:
/// (0, `usize::MAX`) without one; the most is `usize::MAX` when unbounded.
fn secret_len(hir: Option<&Hir>) -> (usize, usize) {
    fn walk(hir: &Hir) -> Option<(usize, usize)> {
        match hir.kind() {
            HirKind::Capture(c) if c.name.as_deref() == Some("secret") => {
                let p = c.sub.properties();
                Some((
                    p.minimum_len().unwrap_or(0),
                    p.maximum_len().unwrap_or(usize::MAX),
                ))
            }
            HirKind::Capture(c) => walk(&c.sub),
            HirKind::Repetition(r) => walk(&r.sub),
            HirKind::Concat(all) | HirKind::Alternation(all) => all
                .iter()
                .filter_map(walk)
                .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1))),
            _ => None,
        }
    }
    hir.and_then(walk).unwrap_or((0, usize::MAX))
}

/// Whether a captured `secret` passes `gate`.
pub(crate) fn passes(gate: Gate, secret: &[u8]) -> bool {
    match gate {
        Gate::Token => !looks_placeholder(secret),
        Gate::Mixed => !looks_placeholder(secret) && mixed(secret),
        Gate::Pem => !elided(secret),
        Gate::Url => !looks_placeholder(secret) && !stock_password(secret),
        Gate::Basic => basic_credentials(secret),
        Gate::Assignment => looks_random(secret, false),
        Gate::Password => crate::detect::entropy::looks_password(secret),
        Gate::Entropy => looks_random(secret, true),
        Gate::Custom => !secret.starts_with(crate::handle::PLACEHOLDER_PREFIX.as_bytes()),
    }
}

fn elided(s: &[u8]) -> bool {
    let lower = s.to_ascii_lowercase();
    [&b"..."[..], "…".as_bytes(), b"xxxx", b"<"]
        .iter()
        .any(|w| memchr::memmem::find(&lower, w).is_some())
}

/// At least two of lowercase, uppercase and digits after the token's prefix (up to its last
/// `_`, `-` or `~`).
fn mixed(s: &[u8]) -> bool {
    let body = s
        .iter()
        .position(|b| b"_~".contains(b))
        .map_or(s, |p| &s[p + 1..]);
    let lower = body.iter().any(u8::is_ascii_lowercase);
    let upper = body.iter().any(u8::is_ascii_uppercase);
    let digit = body.iter().any(u8::is_ascii_digit);
    u8::from(lower) + u8::from(upper) + u8::from(digit) >= 2
}

/// A password documentation and local setups use: `user:password@`, `admin:admin@`.
fn stock_password(s: &[u8]) -> bool {
    const WORDS: &[&str] = &[
        "password", "passwd", "pass", "pwd", "secret", "changeme", "admin", "root", "guest",
        "test", "user", "postgres", "mysql", "default", "example", "demo",
    ];
    WORDS.iter().any(|w| s.eq_ignore_ascii_case(w.as_bytes()))
}

fn basic_credentials(s: &[u8]) -> bool {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s));
    match decoded {
        Ok(bytes) => match bytes.iter().position(|&b| b == b':') {
            Some(colon) => {
                let password = &bytes[colon + 1..];
                password.len() >= 3 && !looks_placeholder(password) && !stock_password(password)
            }
            None => false,
        },
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests;
