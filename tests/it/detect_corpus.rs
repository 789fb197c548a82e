//! Recall and false positives of the builtin rules on a generated corpus: 45 providers ×
//! 6 contexts (JSON, YAML, dotenv, a log line, a markdown code block, a YAML block scalar),
//! and look-alikes in the same contexts. Acceptance (issue 3): recall ≥ 95 %, false
//! positives ≤ 5 %. Tokens are random, from a fixed seed.

use agentbak::detect::Detector;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick(&mut self, n: usize, alphabet: &str) -> String {
        let a = alphabet.as_bytes();
        (0..n)
            .map(|_| a[(self.next() % a.len() as u64) as usize] as char)
            .collect()
    }
}

const AN: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const W: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
const HEX: &str = "0123456789abcdef";
const DIG: &str = "0123456789";
const UP: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A fresh token of each provider.
fn tokens(r: &mut Rng) -> Vec<(&'static str, String)> {
    vec![
        ("github-pat", format!("ghp_{}", r.pick(36, AN))),
        ("github-oauth", format!("gho_{}", r.pick(36, AN))),
        ("github-app", format!("ghs_{}", r.pick(36, AN))),
        (
            "github-fine-grained",
            format!("github_pat_{}_{}", r.pick(22, AN), r.pick(59, AN)),
        ),
        ("gitlab", format!("glpat-{}", r.pick(20, W))),
        (
            "openai",
            format!("sk-proj-{}T3BlbkFJ{}", r.pick(74, W), r.pick(74, W)),
        ),
        ("anthropic", format!("sk-ant-api03-{}AA", r.pick(93, W))),
        ("openrouter", format!("sk-or-v1-{}", r.pick(64, HEX))),
        ("groq", format!("gsk_{}", r.pick(52, AN))),
        ("huggingface", format!("hf_{}", r.pick(34, AN))),
        ("replicate", format!("r8_{}", r.pick(37, AN))),
        ("perplexity", format!("pplx-{}", r.pick(48, AN))),
        ("xai", format!("xai-{}", r.pick(80, AN))),
        (
            "langsmith",
            format!("lsv2_pt_{}_{}", r.pick(32, HEX), r.pick(10, HEX)),
        ),
        ("npm", format!("npm_{}", r.pick(36, AN))),
        ("pypi", format!("pypi-AgEIcHlwaS5vcmc{}", r.pick(120, W))),
        ("rubygems", format!("rubygems_{}", r.pick(48, HEX))),
        ("dockerhub", format!("dckr_pat_{}", r.pick(27, AN))),
        (
            "slack-bot",
            format!(
                "xoxb-{}-{}-{}",
                r.pick(12, DIG),
                r.pick(13, DIG),
                r.pick(24, AN)
            ),
        ),
        (
            "slack-user",
            format!(
                "xoxp-{}-{}-{}-{}",
                r.pick(12, DIG),
                r.pick(12, DIG),
                r.pick(13, DIG),
                r.pick(32, AN)
            ),
        ),
        (
            "slack-webhook",
            format!(
                "https://hooks.slack.com/services/T{}/B{}/{}",
                r.pick(8, UP),
                r.pick(10, UP),
                r.pick(24, AN)
            ),
        ),
        (
            "discord-webhook",
            format!(
                "https://discord.com/api/webhooks/{}/{}",
                r.pick(19, DIG),
                r.pick(68, W)
            ),
        ),
        (
            "telegram",
            format!("{}:AA{}", r.pick(10, DIG), r.pick(33, AN)),
        ),
        ("linear", format!("lin_api_{}", r.pick(40, AN))),
        (
            "notion",
            format!("ntn_{}{}", r.pick(11, DIG), r.pick(35, AN)),
        ),
        ("figma", format!("figd_{}", r.pick(40, AN))),
        ("stripe", format!("sk_live_{}", r.pick(99, AN))),
        ("stripe-webhook", format!("whsec_{}", r.pick(32, AN))),
        ("shopify", format!("shpat_{}", r.pick(32, HEX))),
        ("square", format!("sq0atp-{}", r.pick(22, W))),
        (
            "sendgrid",
            format!("SG.{}.{}", r.pick(22, W), r.pick(43, W)),
        ),
        (
            "aws-key-id",
            format!("AKIA{}", r.pick(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")),
        ),
        ("google", format!("AIza{}", r.pick(35, W))),
        ("google-oauth", format!("GOCSPX-{}", r.pick(28, W))),
        ("digitalocean", format!("dop_v1_{}", r.pick(64, HEX))),
        ("databricks", format!("dapi{}", r.pick(32, HEX))),
        ("heroku", format!("HRKU-{}", r.pick(60, AN))),
        ("newrelic", format!("NRAK-{}", r.pick(27, UP))),
        ("supabase", format!("sbp_{}", r.pick(40, HEX))),
        ("sentry", format!("sntrys_{}", r.pick(120, AN))),
        (
            "grafana",
            format!("glsa_{}_{}", r.pick(32, AN), r.pick(8, HEX)),
        ),
        ("doppler", format!("dp.pt.{}", r.pick(43, AN))),
        ("pulumi", format!("pul-{}", r.pick(40, HEX))),
        ("vault", format!("hvs.{}", r.pick(90, W))),
        (
            "age",
            format!(
                "AGE-SECRET-KEY-1{}",
                r.pick(58, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L")
            ),
        ),
        (
            "jwt",
            format!(
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ{}.{}",
                r.pick(40, W),
                r.pick(43, W)
            ),
        ),
        (
            "database-url",
            format!("postgres://app:{}@db.internal:5432/app", r.pick(20, AN)),
        ),
    ]
}

/// Look-alikes: things every scanner meets in agent state that are not secrets.
fn look_alikes(r: &mut Rng) -> Vec<String> {
    vec![
        format!(
            "{}-{}-4{}-a{}-{}",
            r.pick(8, HEX),
            r.pick(4, HEX),
            r.pick(3, HEX),
            r.pick(3, HEX),
            r.pick(12, HEX)
        ),
        r.pick(40, HEX),
        r.pick(64, HEX),
        format!("sha512-{}==", r.pick(86, B64)),
        format!("data:image/png;base64,iVBORw0KGgo{}", r.pick(200, B64)),
        "${OPENAI_API_KEY}".to_string(),
        "<your-token>".to_string(),
        "YOUR_API_KEY".to_string(),
        "sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".to_string(),
        format!(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{} kevin@host",
            r.pick(43, B64)
        ),
        format!("age1{}", r.pick(58, "qpzry9x8gf2tvdw0s3jn54khce6mua7l")),
        "+agentbak:vault:agents/kevin/openai:api_key+".to_string(),
        format!("ghp_{}", r.pick(20, AN)),
        format!("sk_test_{}", r.pick(24, AN)),
        "AKIAIOSFODNN7EXAMPLE".to_string(),
        "https://api.example.org/v1/chat/completions?stream=true".to_string(),
        "user-profile-page-12".to_string(),
        format!("sha256:{}", r.pick(64, HEX)),
        "the agent summarised the tool output for the user".to_string(),
        "{{ vault_token }}".to_string(),
    ]
}

fn contexts(t: &str) -> Vec<String> {
    vec![
        format!("{{\"name\": \"svc\", \"value\": \"{t}\"}}\n"),
        format!("service:\n  value: {t}\n"),
        format!("VALUE={t}\n"),
        format!("2026-11-28T10:00:00Z INFO tool output: {t} (truncated)\n"),
        format!("Run:\n\n```bash\nexport VALUE={t}\n```\n"),
        format!("notes: |\n  the value is\n  {t}\n  end\n"),
    ]
}

#[test]
fn recall_at_least_95_percent_and_false_positives_at_most_5_percent() {
    let d = Detector::builtin();
    let mut rng = Rng(0x5eed_2026_1128_0003);
    let (mut found, mut total, mut missed) = (0, 0, Vec::new());
    for round in 0..3 {
        for (provider, token) in tokens(&mut rng) {
            for (i, doc) in contexts(&token).into_iter().enumerate() {
                total += 1;
                let hits = d.scan_bytes("doc", doc.as_bytes());
                let start = doc.find(&token).unwrap();
                let span = start..start + token.len();
                if hits.iter().any(|f| span.contains(&(f.offset as usize))) {
                    found += 1;
                } else {
                    missed.push(format!("{provider} ctx{i} round{round}"));
                }
            }
        }
    }
    let providers = tokens(&mut Rng(1)).len();
    assert!(providers >= 30, "{providers} providers");
    let recall = found as f64 / total as f64;
    assert!(recall >= 0.95, "recall {recall:.3}: missed {missed:?}");

    let (mut fp, mut negatives, mut noisy) = (0, 0, Vec::new());
    for _ in 0..3 {
        for look in look_alikes(&mut rng) {
            for doc in contexts(&look) {
                negatives += 1;
                let hits = d.scan_bytes("doc", doc.as_bytes());
                if !hits.is_empty() {
                    fp += 1;
                    noisy.push(format!(
                        "{look:?}: {:?}",
                        hits.iter().map(|h| &h.rule).collect::<Vec<_>>()
                    ));
                }
            }
        }
    }
    let rate = fp as f64 / negatives as f64;
    assert!(rate <= 0.05, "false positives {rate:.3}: {noisy:?}");
    println!("recall {found}/{total}, false positives {fp}/{negatives}; missed {missed:?}");
}
