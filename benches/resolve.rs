//! Resolver benchmark: 1,000 handles over 200 paths from a local OpenBao dev server, the
//! resolver (de-duplication, 16 concurrent requests) side by side with a sequential baseline
//! that makes one request per handle. Prints times, request counts and the ratio.
//!
//! Run with `scripts/bench-resolve.sh` (or `cargo bench --bench resolve`).

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use agentbak::handle::Handle;
use agentbak::manifest::{VaultAuth, VaultConfig};
use agentbak::store::{ResolveOptions, Stores, VaultStore, resolve};

const PATHS: usize = 200;
const FIELDS: usize = 5;
const RUNS: usize = 5;
const BUDGET: Duration = Duration::from_secs(2);

fn main() {
    let bao = common::OpenBao::start();
    let proxy = common::proxy::Proxy::start(&bao.addr);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, &bao.token).unwrap();
    seed(&bao);
    // Requests go through the counting proxy so the report can show how many were made.
    let store = |addr: &str| {
        let cfg = VaultConfig {
            address: Some(addr.to_string()),
            mount: "secret".into(),
            namespace: None,
            ca_cert: None,
            tls_verify: true,
            timeout_s: Some(10),
            auth: Some(VaultAuth::Token {
                token_file: Some(token.clone()),
            }),
            cache: None,
        };
        let mut s = Stores::new("bench");
        s.insert(Box::new(VaultStore::new("vault", &cfg).unwrap()));
        s
    };
    let handles: Vec<Handle> = (0..PATHS)
        .flat_map(|p| {
            (0..FIELDS)
                .map(move |f| Handle::parse(&format!("vault:fleet/agent-{p}/creds#f{f}")).unwrap())
        })
        .collect();

    let direct = store(&bao.addr);
    let counted = store(&proxy.addr);
    // Warm both (token look-up, connection pool).
    resolve(&direct, &handles[..1], &ResolveOptions::default());
    resolve(&counted, &handles[..1], &ResolveOptions::default());

    let mut resolver_times = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let out = resolve(&direct, &handles, &ResolveOptions::default());
        resolver_times.push(t.elapsed());
        assert!(out.iter().all(|r| r.status.is_resolved()));
    }
    let vault = direct.get("vault").unwrap();
    let mut baseline_times = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        for h in &handles {
            let agentbak::handle::Target::Kv { path, field, .. } = &h.target else {
                unreachable!()
            };
            vault.get(path, field, None).unwrap();
        }
        baseline_times.push(t.elapsed());
    }
    let before = proxy.requests();
    resolve(&counted, &handles, &ResolveOptions::default());
    let resolver_requests = proxy.requests() - before;

    let med = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (r, b) = (med(&mut resolver_times), med(&mut baseline_times));
    println!(
        "resolve {} handles over {PATHS} paths, local OpenBao, median of {RUNS} runs",
        handles.len()
    );
    println!(
        "  baseline (sequential, one request per handle): {:>8.3} s  {:>5} requests",
        b.as_secs_f64(),
        handles.len()
    );
    println!(
        "  resolver (de-duplicated, 16 concurrent):       {:>8.3} s  {:>5} requests",
        r.as_secs_f64(),
        resolver_requests
    );
    println!(
        "  ratio: resolver is {:.1}x faster",
        b.as_secs_f64() / r.as_secs_f64()
    );
    println!(
        "  budget {} s: {}",
        BUDGET.as_secs(),
        if r < BUDGET { "met" } else { "MISSED" }
    );
}

fn seed(bao: &common::OpenBao) {
    use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
    let client = VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(&bao.addr)
            .token(&bao.token)
            .build()
            .unwrap(),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for p in 0..PATHS {
            let path = format!("fleet/agent-{p}/creds");
            let data: BTreeMap<String, String> = (0..FIELDS)
                .map(|f| (format!("f{f}"), format!("value-{p}-{f}")))
                .collect();
            vaultrs::kv2::set(&client, "secret", &path, &data)
                .await
                .unwrap();
        }
    });
}
