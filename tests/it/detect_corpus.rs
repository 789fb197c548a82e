//! Recall and false positives of `agentbak scan` (the real binary, builtin rules, no
//! manifest) on a held-out corpus of agent state: tests/fixtures/agent-corpus, made by
//! scripts/gen-agent-corpus.py from the providers' published token formats (never from
//! agentbak's rule regexes) with a fixed seed. 80 credential kinds, each in three of eleven
//! contexts (JSON-escaped tool output in Claude Code and Codex transcripts, `declare -x`
//! dumps, curl -v logs, MCP and Codex configs, .env, YAML, Kubernetes Secrets, shell
//! history, notes), base64-hidden secrets, and look-alikes (references, redacted forms,
//! documentation tokens, placeholders, empty assignments, ids and digests).
//!
//! Scoring (the same as scripts/score-agent-corpus.py, which scores gitleaks side by side in
//! scripts/bench-gitleaks.sh): a labelled secret is found when a finding of severity `error`
//! lies on one of its lines; a look-alike is a false positive when one does; so is a finding
//! on a line no label covers. Targets (issue 20): recall ≥ 98 % on live-looking secrets,
//! ≥ 90 % on base64-hidden ones, false positives ≤ 1 %.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use assert_cmd::Command;

/// Recall on base64-hidden secrets: issue 20's target (the decoders reach 15 of 15).
const BASE64_RECALL_FLOOR: f64 = 0.90;

struct Label {
    file: String,
    lines: std::ops::RangeInclusive<u64>,
    kind: String,
    class: String,
}

fn labels(corpus: &Path) -> Vec<Label> {
    let text = std::fs::read_to_string(corpus.join("labels.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| Label {
            file: l["file"].as_str().unwrap().to_string(),
            lines: l["line"].as_u64().unwrap()..=l["end"].as_u64().unwrap(),
            kind: l["kind"].as_str().unwrap().to_string(),
            class: l["class"].as_str().unwrap().to_string(),
        })
        .collect()
}

/// (path, line) → rules of the blocking findings there.
fn findings(corpus: &Path) -> BTreeMap<(String, u64), Vec<String>> {
    let out = Command::cargo_bin("agentbak")
        .unwrap()
        .env_remove("AGENTBAK_MANIFEST")
        .env_remove("RUST_LOG")
        .current_dir(corpus.join("files"))
        .args(["scan", ".", "--format", "json"])
        .assert()
        .code(4)
        .get_output()
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut at: BTreeMap<(String, u64), Vec<String>> = BTreeMap::new();
    for f in doc["findings"].as_array().unwrap() {
        if f["severity"] != "error" {
            continue;
        }
        let path = f["path"].as_str().unwrap().trim_start_matches("./");
        at.entry((path.to_string(), f["line"].as_u64().unwrap()))
            .or_default()
            .push(f["rule"].as_str().unwrap().to_string());
    }
    at
}

#[test]
fn agent_corpus_recall_at_least_98_percent_and_false_positives_at_most_1_percent() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agent-corpus");
    let labels = labels(&corpus);
    let at = findings(&corpus);
    let mut covered = BTreeSet::new();
    let mut hit: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let (mut looks, mut noisy, mut missed) = (0, Vec::new(), Vec::new());
    for l in &labels {
        let rules: Vec<&String> = l
            .lines
            .clone()
            .flat_map(|n| {
                covered.insert((l.file.clone(), n));
                at.get(&(l.file.clone(), n)).into_iter().flatten()
            })
            .collect();
        if l.class == "lookalike" {
            looks += 1;
            if !rules.is_empty() {
                noisy.push(format!(
                    "{} {}:{} {rules:?}",
                    l.kind,
                    l.file,
                    l.lines.start()
                ));
            }
        } else {
            let e = hit.entry(l.class.as_str()).or_default();
            e.1 += 1;
            if rules.is_empty() {
                missed.push(format!(
                    "{} {} {}:{}",
                    l.class,
                    l.kind,
                    l.file,
                    l.lines.start()
                ));
            } else {
                e.0 += 1;
            }
        }
    }
    for (key, rules) in &at {
        if !covered.contains(key) {
            noisy.push(format!("stray {}:{} {rules:?}", key.0, key.1));
        }
    }
    let ratio = |(a, b): (usize, usize)| a as f64 / b as f64;
    let live = hit["live"];
    let base64 = hit["base64"];
    let fp = noisy.len() as f64 / looks as f64;
    println!(
        "live recall {}/{} ({:.1}%), base64 recall {}/{} ({:.1}%), false positives {}/{looks} \
         ({:.1}%)\nmissed: {missed:#?}\nnoisy: {noisy:#?}",
        live.0,
        live.1,
        100.0 * ratio(live),
        base64.0,
        base64.1,
        100.0 * ratio(base64),
        noisy.len(),
        100.0 * fp
    );
    // The corpus is what the docs say it is: enough kinds, secrets and look-alikes.
    assert!(live.1 >= 200 && base64.1 >= 10 && looks >= 200);
    let kinds: BTreeSet<&str> = labels
        .iter()
        .filter(|l| l.class == "live")
        .map(|l| l.kind.as_str())
        .collect();
    assert!(kinds.len() >= 72, "{} kinds", kinds.len());
    assert!(ratio(live) >= 0.98, "live recall {:?}: {missed:#?}", live);
    assert!(
        ratio(base64) >= BASE64_RECALL_FLOOR,
        "base64 recall {base64:?}: {missed:#?}"
    );
    assert!(fp <= 0.01, "false positives {fp:.3}: {noisy:#?}");
}
