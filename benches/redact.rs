//! Benchmarks of redaction, each printed next to its reference with the ratio. Run them with
//! `scripts/bench-redact.sh` (or `cargo bench --bench redact [-- one|many]`).
//!
//! - `one`: issue 5's acceptance, a 10 MiB JSON file with 1,000 secrets in under 200 ms.
//! - `many`: issue 18's many-secrets axis, a snapshot's redaction pass over 5,000 files with
//!   500 declared secrets known, each file searched for every known value in every form.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use agentbak::handle::Handle;
use agentbak::manifest::Locator;
use agentbak::redact::{
    RedactedFile, Rule, StrayMatcher, redact_file, redact_file_with, rehydrate_file,
};
use agentbak::secret::Secret;

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
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    if wants("one") {
        one_file();
    }
    if wants("many") {
        many_files();
    }
}

fn one_file() {
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

const FILES: usize = 5000;
const DECLARED: usize = 500;
const MANY_RUNS: usize = 3;

/// One file of the state: its path, bytes and the rules that apply to it.
struct StateFile {
    path: String,
    bytes: Vec<u8>,
    rules: Vec<Rule>,
}

/// An agent state of 5,000 files: one small JSON config per service (500, each declaring
/// its key), and 4,500 logs, memory JSON files and notes of 2 to 6 KiB; one file in ten of
/// those holds a stray copy of some key (raw in logs and notes, inside a string in JSON).
fn state() -> (Vec<StateFile>, Vec<(Handle, Secret)>) {
    let mut rng = Lcg(7);
    let mut files = Vec::with_capacity(FILES);
    let mut known = Vec::with_capacity(DECLARED);
    for i in 0..DECLARED {
        let value = format!("sk-{}", rng.token(40));
        let handle = Handle::parse(&format!("vault:agents/bench/svc{i}#api_key")).unwrap();
        let doc = format!(
            "{{\n  \"name\": \"svc-{i}\",\n  \"api_key\": \"{value}\",\n  \"endpoint\": \"https://svc-{i}.internal/v1\",\n  \"notes\": \"{}\"\n}}\n",
            rng.token(200)
        );
        files.push(StateFile {
            path: format!("services/svc-{i}/config.json"),
            bytes: doc.into_bytes(),
            rules: vec![Rule {
                locator: Locator::Json("/api_key".into()),
                handle: handle.clone(),
            }],
        });
        known.push((handle, Secret::from(value)));
    }
    for n in 0..FILES - DECLARED {
        let stray = (n % 10 == 0).then(|| known[(n * 7) % DECLARED].1.expose().to_vec());
        let stray = stray.map(|v| String::from_utf8(v).unwrap());
        let target = 2048 + (n % 5) * 1024;
        let (path, bytes) = match n % 3 {
            0 => {
                let mut text = String::new();
                let mut line = 0;
                while text.len() < target {
                    let extra = match (&stray, line) {
                        (Some(v), 3) => format!(" auth={v}"),
                        _ => String::new(),
                    };
                    text.push_str(&format!(
                        "2026-11-29T10:{:02}:{:02}Z INFO tool call id={} status=ok{extra}\n",
                        line % 60,
                        n % 60,
                        rng.token(24)
                    ));
                    line += 1;
                }
                (format!("logs/run-{n}.log"), text)
            }
            1 => {
                let mut text = String::from("{\"memory\": [\n");
                let mut id = 0;
                while text.len() < target {
                    let said = match (&stray, id) {
                        (Some(v), 2) => format!("the key is {v}"),
                        _ => rng.token(60),
                    };
                    text.push_str(&format!(
                        "  {{\"id\": {id}, \"text\": \"{said}\", \"tags\": [\"a\"]}},\n"
                    ));
                    id += 1;
                }
                text.push_str("  {\"id\": -1}\n]}\n");
                (format!("memory/m-{n}.json"), text)
            }
            _ => {
                let mut text = String::from("# Notes\n\n");
                while text.len() < target {
                    text.push_str(&format!("- {} {}\n", rng.token(30), rng.token(50)));
                }
                if let Some(v) = &stray {
                    text.push_str(&format!("- pasted: {v}\n"));
                }
                (format!("notes/n-{n}.md"), text)
            }
        };
        files.push(StateFile {
            path,
            bytes: bytes.into_bytes(),
            rules: Vec::new(),
        });
    }
    (files, known)
}

/// Redacts every file of the state with `redact`; returns the time and the placeholders
/// written (a check that every variant did the same work).
fn pass(files: &[StateFile], redact: &dyn Fn(&StateFile) -> usize) -> (Duration, usize) {
    let start = Instant::now();
    let written = files.iter().map(redact).sum();
    (start.elapsed(), written)
}

fn many_files() {
    let (files, known) = state();
    let mib = files.iter().map(|f| f.bytes.len()).sum::<usize>() as f64 / (1 << 20) as f64;
    let count = |r: &RedactedFile<'_>| r.replacements.iter().map(|r| r.offsets.len()).sum();
    let floor = |f: &StateFile| count(&redact_file(&f.path, &f.bytes, &f.rules, &[]).unwrap());
    let per_file =
        |f: &StateFile| count(&redact_file(&f.path, &f.bytes, &f.rules, &known).unwrap());
    // The matcher is built inside the pass, so its cost is counted (and shown apart).
    let mut build = Vec::new();
    let once = |fs: &[StateFile]| {
        let start = Instant::now();
        let matcher = StrayMatcher::new(&known);
        let built = start.elapsed();
        let written: usize = fs
            .iter()
            .map(|f| count(&redact_file_with(&f.path, &f.bytes, &f.rules, &matcher).unwrap()))
            .sum();
        (built, written)
    };
    let mut times: [Vec<Duration>; 3] = Default::default();
    let mut written = [0; 3];
    for _ in 0..MANY_RUNS {
        for (i, redact) in [&floor as &dyn Fn(&StateFile) -> usize, &per_file]
            .into_iter()
            .enumerate()
        {
            let (t, w) = pass(&files, redact);
            times[i].push(t);
            written[i] = w;
        }
        let start = Instant::now();
        let (built, w) = once(&files);
        times[2].push(start.elapsed());
        build.push(built);
        written[2] = w;
    }
    assert_eq!(written[0], DECLARED, "one placeholder per declared key");
    assert_eq!(
        written[1],
        DECLARED + (FILES - DECLARED).div_ceil(10),
        "and one per stray copy"
    );
    assert_eq!(written[2], written[1], "the same placeholders either way");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let [floor_t, per_file_t, once_t] = times.map(|t| ms(median(t)));
    let build_t = ms(median(build));
    println!(
        "redaction pass: {FILES} files ({mib:.1} MiB), {DECLARED} declared secrets known (median of {MANY_RUNS} alternating runs)"
    );
    println!("  no known values (floor)                  {floor_t:9.1} ms");
    println!(
        "  known values, automaton built per file   {per_file_t:9.1} ms   {:.2}x the floor",
        per_file_t / floor_t
    );
    println!(
        "  known values, StrayMatcher built once    {once_t:9.1} ms   {:.2}x the floor, {:.1}x faster than per file (build: {build_t:.1} ms)",
        once_t / floor_t,
        per_file_t / once_t
    );
}
