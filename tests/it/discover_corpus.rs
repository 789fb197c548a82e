//! Discovery precision and recall on a corpus of realistic agent configurations
//! (`tests/fixtures/agent-configs/<agent>/state`): Codex `config.toml`, `auth.json` and
//! session transcripts, Claude Code `settings.json`, `.credentials.json` and `.claude.json`,
//! MCP configs with `env` blocks, a LiteLLM `config.yaml`, a docker-compose `.env`, LangGraph
//! and CrewAI configs, an identity agent's accounts. Each agent's `labels.json` lists the
//! secrets, as manifest rules: `{"file", "<locator kind>": "<pointer or key>"}`; for a text
//! file, `"regex"` names the words the rule must anchor on (`GH_TOKEN=`).
//!
//! The values follow the providers' published formats and were generated at random once for
//! this corpus; none is live. The corpus holds as many look-alikes as secrets: references
//! (`os.environ/…`, `${…}`, `env:`, `op://`, ARNs), hints, header names, ids, public keys.

use std::collections::BTreeSet;
use std::path::Path;

use agentbak::detect::Detector;
use agentbak::manifest::{Detect, Locator};
use agentbak::ops::init::discover::{check, discover};

/// A labelled or discovered secret: file, locator kind, pointer/key (for `regex`: the label's
/// anchor words, matched against the pattern).
type Site = (String, String, String);

fn corpus() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agent-configs")
}

fn labels(agent: &Path) -> Vec<Site> {
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(agent.join("labels.json")).unwrap()).unwrap();
    doc["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let file = l["file"].as_str().unwrap().to_string();
            let (kind, at) = l
                .as_object()
                .unwrap()
                .iter()
                .find(|(k, _)| *k != "file")
                .unwrap();
            (file, kind.clone(), at.as_str().unwrap().to_string())
        })
        .collect()
}

/// Precision and recall over every agent of the corpus, with the misses named.
fn measure() -> (usize, usize, usize, Vec<String>) {
    let detector = Detector::new(&Detect::default(), None).unwrap();
    let (mut tp, mut fp, mut fns) = (0, 0, 0);
    let mut notes = Vec::new();
    let mut agents: Vec<_> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("labels.json").is_file())
        .collect();
    agents.sort();
    assert!(agents.len() >= 8, "the corpus has its agents");
    for agent in agents {
        let name = agent.file_name().unwrap().to_string_lossy().to_string();
        let state = agent.join("state");
        let mut d = discover(&state, "local", &detector).unwrap();
        let found = std::mem::take(&mut d.found);
        let found = check(&state, found, &mut d.attention);
        let want: BTreeSet<Site> = labels(&agent).into_iter().collect();
        let mut matched: BTreeSet<Site> = BTreeSet::new();
        for f in &found {
            for file in &f.files {
                let hit = want.iter().find(|(wf, kind, at)| {
                    wf == file
                        && match &f.locator {
                            Locator::Regex(p) => kind == "regex" && p.contains(at.as_str()),
                            l => l.field() == kind && l.text() == Some(at.as_str()),
                        }
                });
                match hit {
                    Some(site) => {
                        matched.insert(site.clone());
                    }
                    None => {
                        fp += 1;
                        notes.push(format!("{name}: false positive {file} {}", f.locator));
                    }
                }
            }
        }
        tp += matched.len();
        for miss in want.difference(&matched) {
            fns += 1;
            notes.push(format!("{name}: missed {} {} {}", miss.0, miss.1, miss.2));
        }
    }
    (tp, fp, fns, notes)
}

#[test]
fn discovery_precision_and_recall_on_the_agent_config_corpus() {
    let (tp, fp, fns, notes) = measure();
    let precision = tp as f64 / (tp + fp) as f64;
    let recall = tp as f64 / (tp + fns) as f64;
    eprintln!(
        "discovery on the agent-config corpus: {tp} true positives, {fp} false positives, \
         {fns} missed; precision {precision:.3}, recall {recall:.3}\n{}",
        notes.join("\n")
    );
    assert!(tp >= 45, "the corpus labels at least 45 secrets: {tp}");
    assert!(precision >= 0.95, "precision {precision:.3}: {notes:#?}");
    assert!(recall >= 0.95, "recall {recall:.3}: {notes:#?}");
}
