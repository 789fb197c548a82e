//! Every rule's vectors, run through the whole engine.

use super::*;
use crate::detect::{Detector, Finding};
use crate::manifest::Detect;

fn scan(text: &str) -> Vec<Finding> {
    static DETECTOR: std::sync::OnceLock<Detector> = std::sync::OnceLock::new();
    let detector = DETECTOR.get_or_init(|| {
        let config = Detect {
            entropy: crate::manifest::EntropyAction::Block,
            ..Detect::default()
        };
        Detector::new(&config, None).unwrap()
    });
    detector.scan_bytes("vector", text.as_bytes())
}

fn ids(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.rule.as_str()).collect()
}

#[test]
fn every_rule_vector_holds() {
    let mut failures = Vec::new();
    for rule in BUILTIN.iter().chain(std::iter::once(&ENTROPY)) {
        assert!(rule.positives.len() >= 2, "{}: two positives", rule.id);
        assert!(rule.negatives.len() >= 2, "{}: two negatives", rule.id);
        for p in rule.positives {
            let found = scan(p);
            if !found.iter().any(|f| f.rule == rule.id) {
                failures.push(format!(
                    "{}: missed positive {p:?}, got {:?}",
                    rule.id,
                    ids(&found)
                ));
            }
        }
        for n in rule.negatives {
            let found = scan(n);
            if !found.is_empty() {
                failures.push(format!(
                    "{}: negative {n:?} gave {:?}",
                    rule.id,
                    ids(&found)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn look_alikes_are_not_findings() {
    for text in NEGATIVES {
        let found = scan(text);
        assert!(found.is_empty(), "{text:?} gave {:?}", ids(&found));
    }
}

#[test]
fn at_least_forty_credential_kinds() {
    assert!(BUILTIN.len() >= 40, "{}", BUILTIN.len());
    let mut ids: Vec<&str> = BUILTIN.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), BUILTIN.len(), "rule ids are unique");
}

#[test]
fn every_rule_has_keywords_that_occur_in_its_positives() {
    for rule in BUILTIN {
        assert!(!rule.keywords.is_empty(), "{}", rule.id);
        for p in rule.positives {
            let lower = p.to_ascii_lowercase();
            assert!(
                rule.keywords
                    .iter()
                    .any(|k| lower.contains(&k.to_ascii_lowercase())),
                "{}: no keyword in {p:?}",
                rule.id
            );
        }
    }
}

#[test]
fn reach_is_bounded_for_bounded_patterns() {
    assert_eq!(reach(parse(r"ghp_[A-Za-z0-9]{36}", false).as_ref()), 40);
    assert_eq!(reach(parse(r"a+", false).as_ref()), MAX_REACH);
}

#[test]
fn basic_gate_needs_user_and_password() {
    assert!(passes(Gate::Basic, b"a2V2aW46czNjcjN0LXBhc3N3MHJkIQ=="));
    assert!(!passes(Gate::Basic, b"dXNlcm5hbWU="));
    assert!(!passes(Gate::Basic, b"not base64!"));
}

#[test]
fn secret_len_is_the_secret_group_shortest_and_longest_match() {
    assert_eq!(secret_len(parse(ENTROPY.regex, false).as_ref()), (16, 400));
    assert_eq!(
        secret_len(parse(r"(?P<secret>ab|c{3,})x", false).as_ref()),
        (2, usize::MAX)
    );
    assert_eq!(
        secret_len(parse(r"(?P<secret>ab|c{3,5})x", false).as_ref()),
        (2, 5)
    );
    assert_eq!(secret_len(parse(r"abc", false).as_ref()), (0, usize::MAX));
    let generic = BUILTIN.iter().find(|r| r.id == "generic-assignment");
    assert_eq!(
        secret_len(parse(generic.expect("rule").regex, false).as_ref()),
        (8, 200)
    );
}

#[test]
fn builtin_regexes_compile_on_first_use() {
    for rule in BUILTIN.iter().chain(std::iter::once(&ENTROPY)) {
        let compiled = Compiled::builtin(rule);
        assert!(
            compiled.matcher.get().is_none(),
            "{}: compiled early",
            rule.id
        );
        let named = rule.regex.contains("(?P<secret>");
        assert_eq!(
            compiled.group().is_some(),
            named,
            "{}: secret group",
            rule.id
        );
        assert!(compiled.matcher.get().is_some(), "{}", rule.id);
    }
}

#[test]
fn custom_rules_compile_when_the_detector_is_built() {
    let bad = CustomRule {
        id: "broken".into(),
        regex: "(unclosed".into(),
        keywords: None,
    };
    assert!(matches!(
        Compiled::custom(&bad),
        Err(DetectError::Rule { .. })
    ));
    let good = CustomRule {
        id: "ours".into(),
        regex: "ours_([a-z]{8})".into(),
        keywords: None,
    };
    let compiled = Compiled::custom(&good).unwrap();
    assert!(compiled.matcher.get().is_some());
    assert_eq!(compiled.group(), Some(1));
}

/// Issue 20: `KEY=` with nothing after it took the next line as its value, and the finding
/// landed on that line.
#[test]
fn empty_assignment_does_not_read_the_next_line() {
    for text in [
        "OPENAI_API_KEY=\nOPENAI_BASE_URL=https://api.openai.com/v1?x=Zk9q2Xv7",
        "  password:\n    - PGDATA=/var/lib/postgresql/data/pgdata-v16",
        "token:\r\n  expires_at: 2026-06-01T09:13:00.123456+00:00",
    ] {
        let found = scan(text);
        assert!(found.is_empty(), "{text:?} gave {:?}", ids(&found));
    }
    assert_eq!(
        ids(&scan("OPENAI_API_KEY=\nDB_PASSWORD=h7#Kq2!vLx9")),
        ["generic-assignment"]
    );
    assert_eq!(scan("OPENAI_API_KEY=\nDB_PASSWORD=h7#Kq2!vLx9")[0].line, 2);
}

/// Issue 19: the regex of a rule init wrote (stored in the manifest and the archive's index)
/// matched the generic assignment rule, so `verify` flagged agentbak's own index.
#[test]
fn rule_sources_and_handles_are_not_findings() {
    for text in [
        r#"      "regex": "\\bGITHUB_TOKEN=([A-Za-z0-9_]+)","#,
        r#""locator": {"regex": "\\bGITHUB_TOKEN=([A-Za-z0-9…]+)"}, "handle": "vault:agents/kevin/github#token""#,
        "  - regex: 'token: ([A-Za-z0-9._-]{20,})'",
        r#"    "secret": "vault:agents/kevin/github#token","#,
        r#"{"secret": "local:agents/kevin/captured#github-pat-3f9a0c12d4e5"}"#,
    ] {
        let found = scan(text);
        assert!(found.is_empty(), "{text:?} gave {:?}", ids(&found));
    }
}

/// Regression: a two-byte keyword (`Q~`) made the exact prefilter pass leave Teddy for a plain
/// automaton, and snapshots twice as slow. Every builtin keyword is at least the anchor long.
#[test]
fn every_builtin_keyword_is_long_enough_for_the_vectorized_search() {
    for rule in BUILTIN {
        for k in rule.keywords {
            assert!(
                k.len() >= crate::detect::prefilter::ANCHOR_LEN,
                "{}: keyword {k:?} is shorter than {} bytes",
                rule.id,
                crate::detect::prefilter::ANCHOR_LEN
            );
        }
    }
}
