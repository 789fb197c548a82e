//! Benchmark of issue 5's acceptance: redacting a 10 MiB JSON file with 1,000 secrets must
//! take less than 200 ms. Prints the measured time next to that reference and the ratio.
//! Run it with `scripts/bench-redact.sh` (or `cargo bench --bench redact`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use agentbak::handle::Handle;
use agentbak::manifest::Locator;
use agentbak::redact::{Rule, redact_file, rehydrate_file};

const SIZE: usize = 10 << 20;
const SECRETS: usize = 1000;
const TARGET_MS: f64 = 200.0;
const RUNS: usize = 7;

/// A small deterministic generator, so every run measures the same document.
struct Lcg(u64);

impl Lcg {
    fn token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ALPHABET[(self.0 >> 33) as usize % ALPHABET.len()] as char
            })
            .collect()
    }
}

/// A pretty-printed agent memory file: a thousand service entries with a key each, and
/// notes (escaped quotes, unicode) filling it to 10 MiB.
fn document() -> (String, Vec<Rule>) {
    let mut rng = Lcg(42);
    let mut doc = String::with_capacity(SIZE + 4096);
    let mut rules = Vec::with_capacity(SECRETS);
    doc.push_str("{\n  \"services\": [\n");
    for i in 0..SECRETS {
        let key = format!("sk-{}", rng.token(48));
        let sep = if i + 1 < SECRETS { "," } else { "" };
        doc.push_str(&format!(
            "    {{\"name\": \"svc-{i}\", \"api_key\": \"{key}\", \"retries\": 3}}{sep}\n"
        ));
        rules.push(Rule {
            locator: Locator::Json(format!("/services/{i}/api_key")),
            handle: Handle::parse(&format!("vault:bench/svc{i}#api_key")).unwrap(),
        });
    }
    doc.push_str("  ],\n  \"memory\": [\n");
    let mut n = 0;
    while doc.len() < SIZE {
        let text = rng.token(120);
        doc.push_str(&format!(
            "    {{\"id\": {n}, \"text\": \"said \\\"{text}\\\" — ok\", \"tags\": [\"a\", \"b\"]}},\n"
        ));
        n += 1;
    }
    doc.push_str("    {\"id\": -1}\n  ]\n}\n");
    (doc, rules)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let (doc, rules) = document();
    let mib = doc.len() as f64 / (1 << 20) as f64;
    let mut redact_times = Vec::new();
    let mut result = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        let red = redact_file("memory.json", doc.as_bytes(), &rules, &[]).unwrap();
        redact_times.push(start.elapsed());
        result = Some(red);
    }
    let red = result.unwrap();
    assert_eq!(red.values.len(), SECRETS);
    let values: HashMap<_, _> = red.values.iter().cloned().collect();
    let mut rehydrate_times = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let back = rehydrate_file("memory.json", &red.output, &red.replacements, &values).unwrap();
        rehydrate_times.push(start.elapsed());
        assert_eq!(back.len(), doc.len());
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let r = ms(median(redact_times));
    let h = ms(median(rehydrate_times));
    println!("benchmark                               measured   reference   ratio");
    println!(
        "redact_file    {mib:.1} MiB JSON, {SECRETS} secrets  {r:8.1} ms  < {TARGET_MS:.0} ms   {:.2}",
        r / TARGET_MS
    );
    println!(
        "rehydrate_file {mib:.1} MiB JSON, {SECRETS} secrets  {h:8.1} ms  < {TARGET_MS:.0} ms   {:.2}",
        h / TARGET_MS
    );
    println!("(median of {RUNS} runs; redaction includes the stray search and the re-parse check)");
}
