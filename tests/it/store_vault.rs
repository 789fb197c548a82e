//! The Vault store and the resolver against a real OpenBao dev server: every status comes
//! from a real condition (versions, deletes, policies, AppRole, namespaces, a KV v1 mount, a
//! sealed or stopped server, and faults injected by a proxy).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::OpenBao;
use crate::common::proxy::{Fault, Proxy};
use agentbak::handle::Handle;
use agentbak::manifest::{VaultAuth, VaultConfig};
use agentbak::secret::Secret;
use agentbak::store::{
    Cache, ResolveOptions, RetryPolicy, SecretStore, Status, StoreErrorKind, Stores, VaultStore,
    VersionChoice, resolve, resolve_histories, resolve_one,
};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn config(addr: &str, token_file: &Path) -> VaultConfig {
    VaultConfig {
        address: Some(addr.to_string()),
        mount: "secret".into(),
        namespace: None,
        ca_cert: None,
        tls_verify: true,
        timeout_s: Some(2),
        auth: Some(VaultAuth::Token {
            token_file: Some(token_file.to_path_buf()),
        }),
        cache: None,
    }
}

fn stores_with(store: VaultStore) -> Stores {
    let mut s = Stores::new("kevin");
    s.insert(Box::new(store));
    s
}

fn h(s: &str) -> Handle {
    Handle::parse(s).unwrap()
}

fn fast() -> ResolveOptions {
    ResolveOptions {
        retry: RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(20),
            max: Duration::from_millis(100),
        },
        ..ResolveOptions::default()
    }
}

fn text(v: &Secret) -> String {
    String::from_utf8(v.expose().to_vec()).unwrap()
}

fn s(v: &str) -> Secret {
    Secret::from(v.to_string())
}

struct Setup {
    bao: OpenBao,
    dir: tempfile::TempDir,
    root_token: PathBuf,
}

fn setup() -> Setup {
    let bao = OpenBao::start();
    let dir = tempfile::tempdir().unwrap();
    let root_token = write(dir.path(), "root.token", &format!("{}\n", bao.token));
    Setup {
        bao,
        dir,
        root_token,
    }
}

#[test]
fn versions_previous_pinned_and_check_and_set() {
    let t = setup();
    let vault = VaultStore::new("vault", &config(&t.bao.addr, &t.root_token)).unwrap();
    for v in ["key-one", "key-two", "key-three"] {
        vault
            .put("agents/kevin/openai", "api_key", &s(v), None)
            .unwrap();
    }
    // A put of another field keeps api_key.
    assert_eq!(
        vault
            .put("agents/kevin/openai", "org", &s("org-1"), None)
            .unwrap(),
        4
    );
    let cur = vault.get("agents/kevin/openai", "api_key", None).unwrap();
    assert_eq!((cur.version, text(&cur.value).as_str()), (4, "key-three"));
    assert!(cur.created.timestamp() > 0);
    let v1 = vault
        .get("agents/kevin/openai", "api_key", Some(1))
        .unwrap();
    assert_eq!(text(&v1.value), "key-one");
    let meta = vault.metadata("agents/kevin/openai").unwrap();
    assert_eq!(meta.current, 4);
    assert_eq!(meta.versions.len(), 4);
    assert!(
        meta.versions
            .windows(2)
            .all(|w| w[0].created <= w[1].created)
    );

    let stores = stores_with(vault);
    let handle = h("vault:agents/{agent}/openai#api_key");
    let prev = ResolveOptions {
        version: VersionChoice::Previous,
        ..fast()
    };
    let r = resolve_one(&stores, &handle, &prev);
    assert!(
        matches!(r.status, Status::Resolved { version: 3, .. }),
        "{r:?}"
    );
    assert_eq!(text(r.value.as_ref().unwrap()), "key-three");
    let pinned = ResolveOptions {
        version: VersionChoice::Pinned(BTreeMap::from([(handle.clone(), 2)])),
        ..fast()
    };
    let r = resolve_one(&stores, &handle, &pinned);
    assert_eq!(text(r.value.as_ref().unwrap()), "key-two");

    let vault = stores.get("vault").unwrap();
    let err = vault
        .put("agents/kevin/openai", "api_key", &s("stale"), Some(2))
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Conflict, "{err}");
    assert_eq!(
        vault
            .put("agents/kevin/new", "k", &s("n"), Some(0))
            .unwrap(),
        1
    );
    // The vault CLI sees what the store wrote.
    let out = t
        .bao
        .cli(&["kv", "get", "-field=org", "secret/agents/kevin/openai"]);
    assert_eq!(out.trim(), "org-1");
    assert_eq!(
        vault.list("agents/").unwrap(),
        vec![
            "agents/kevin/new".to_string(),
            "agents/kevin/openai".to_string()
        ]
    );
}

#[test]
fn deleted_and_destroyed_versions_are_missing() {
    let t = setup();
    let vault = VaultStore::new("vault", &config(&t.bao.addr, &t.root_token)).unwrap();
    for v in ["one", "two", "three"] {
        vault.put("p", "k", &s(v), None).unwrap();
    }
    t.bao.cli(&["kv", "delete", "-versions=2", "secret/p"]);
    t.bao.cli(&["kv", "destroy", "-versions=1", "secret/p"]);
    let e2 = vault.get("p", "k", Some(2)).unwrap_err();
    assert_eq!(e2.kind, StoreErrorKind::Missing);
    assert!(e2.message.contains("version 2 was deleted"), "{e2}");
    let e1 = vault.get("p", "k", Some(1)).unwrap_err();
    assert!(e1.message.contains("version 1 was destroyed"), "{e1}");
    let meta = vault.metadata("p").unwrap();
    assert!(meta.version(2).unwrap().deleted.is_some());
    assert!(meta.version(1).unwrap().destroyed);
    assert_eq!(meta.previous(), None);

    t.bao.cli(&["kv", "delete", "secret/p"]);
    let stores = stores_with(vault);
    let r = resolve_one(&stores, &h("vault:p#k"), &fast());
    assert!(
        matches!(&r.status, Status::Missing { message } if message.contains("version 3 was deleted")),
        "{r:?}"
    );
    assert_eq!(r.attempts, 1, "404 is never retried");
    assert!(r.value.is_none());
    // Writing after a deleted current version continues the numbering.
    assert_eq!(
        stores
            .get("vault")
            .unwrap()
            .put("p", "k", &s("four"), None)
            .unwrap(),
        4
    );
}

#[test]
fn restricted_token_is_forbidden_and_not_retried() {
    let t = setup();
    t.bao.cli_with_stdin(
        &["policy", "write", "limited", "-"],
        Some(b"path \"secret/data/allowed/*\" { capabilities = [\"read\"] }\n"),
    );
    t.bao
        .cli(&["kv", "put", "secret/allowed/x", "k=allowed-value"]);
    t.bao
        .cli(&["kv", "put", "secret/denied/x", "k=denied-value"]);
    let token = t
        .bao
        .cli(&["token", "create", "-policy=limited", "-field=token"]);
    let token_file = write(t.dir.path(), "limited.token", token.trim());
    let proxy = Proxy::start(&t.bao.addr);
    let stores = stores_with(VaultStore::new("vault", &config(&proxy.addr, &token_file)).unwrap());
    let ok = resolve_one(&stores, &h("vault:allowed/x#k"), &fast());
    assert_eq!(text(ok.value.as_ref().unwrap()), "allowed-value");
    let before = proxy.requests();
    let r = resolve_one(&stores, &h("vault:denied/x#k"), &fast());
    assert!(matches!(r.status, Status::Forbidden { .. }), "{r:?}");
    assert_eq!(r.attempts, 1);
    assert_eq!(proxy.requests() - before, 1, "one request, no retry on 403");
    let err = stores
        .get("vault")
        .unwrap()
        .put("allowed/x", "k", &s("new"), None)
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Forbidden);
}

#[test]
fn approle_login_and_token_renewal() {
    let t = setup();
    t.bao.cli_with_stdin(
        &["policy", "write", "reader", "-"],
        Some(b"path \"secret/data/*\" { capabilities = [\"read\"] }\n"),
    );
    t.bao.cli(&["auth", "enable", "approle"]);
    t.bao.cli(&[
        "write",
        "auth/approle/role/agent",
        "token_policies=reader",
        "token_ttl=4s",
        "token_max_ttl=120s",
    ]);
    let role_id = t
        .bao
        .cli(&["read", "-field=role_id", "auth/approle/role/agent/role-id"]);
    let secret_id = t.bao.cli(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/approle/role/agent/secret-id",
    ]);
    let role_file = write(t.dir.path(), "role_id", role_id.trim());
    let secret_file = write(t.dir.path(), "secret_id", secret_id.trim());
    t.bao
        .cli(&["kv", "put", "secret/app/db", "password=approle-value"]);
    let mut cfg = config(&t.bao.addr, &t.root_token);
    cfg.auth = Some(VaultAuth::Approle {
        role_id_file: Some(role_file),
        secret_id_file: Some(secret_file),
        mount: None,
    });
    let stores = stores_with(VaultStore::new("vault", &cfg).unwrap());
    // Reads across 3 × the token's 4 s TTL: each needs a renewed (or new) token.
    for _ in 0..4 {
        let r = resolve_one(&stores, &h("vault:app/db#password"), &fast());
        assert_eq!(text(r.value.as_ref().expect("resolved")), "approle-value");
        std::thread::sleep(Duration::from_secs(3));
    }
    // The AppRole token has only the reader policy.
    let err = stores
        .get("vault")
        .unwrap()
        .put("app/db", "password", &s("x"), None)
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Forbidden);
}

#[test]
fn namespace_header_selects_the_namespace() {
    let t = setup();
    t.bao.cli(&["namespace", "create", "team"]);
    t.bao.cli(&[
        "secrets",
        "enable",
        "-namespace=team",
        "-path=secret",
        "kv-v2",
    ]);
    t.bao
        .cli(&["kv", "put", "-namespace=team", "secret/ns/x", "k=in-team"]);
    let mut cfg = config(&t.bao.addr, &t.root_token);
    cfg.namespace = Some("team".into());
    let team = VaultStore::new("vault", &cfg).unwrap();
    assert_eq!(text(&team.get("ns/x", "k", None).unwrap().value), "in-team");
    let root = VaultStore::new("vault", &config(&t.bao.addr, &t.root_token)).unwrap();
    assert_eq!(
        root.get("ns/x", "k", None).unwrap_err().kind,
        StoreErrorKind::Missing
    );
}

#[test]
fn kv_v1_mount_gets_a_clear_hint() {
    let t = setup();
    t.bao
        .cli(&["secrets", "enable", "-path=kv1", "-version=1", "kv"]);
    t.bao.cli(&["kv", "put", "kv1/x", "k=v"]);
    let mut cfg = config(&t.bao.addr, &t.root_token);
    cfg.mount = "kv1".into();
    let store = VaultStore::new("vault", &cfg).unwrap();
    let err = store.get("x", "k", None).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::KvV1, "{err}");
    assert!(err.message.contains("KV version 1"), "{err}");
}

#[test]
fn sealed_vault_is_retried_then_unreachable() {
    let t = setup();
    let stores =
        stores_with(VaultStore::new("vault", &config(&t.bao.addr, &t.root_token)).unwrap());
    stores
        .get("vault")
        .unwrap()
        .put("p", "k", &s("v"), None)
        .unwrap();
    t.bao.cli(&["operator", "seal"]);
    let r = resolve_one(&stores, &h("vault:p#k"), &fast());
    assert!(
        matches!(&r.status, Status::Unreachable { message } if message.contains("sealed")),
        "{r:?}"
    );
    assert_eq!(r.attempts, 4, "sealed is retried up to the bound");
}

#[test]
fn stopped_server_falls_back_to_cache_until_ttl() {
    let mut t = setup();
    let cache_path = t.dir.path().join("cache/vault.cache.age");
    let mut stores =
        stores_with(VaultStore::new("vault", &config(&t.bao.addr, &t.root_token)).unwrap());
    stores.set_cache(
        "vault",
        Cache::open("vault", &cache_path, Duration::from_secs(3)),
    );
    let vault = stores.get("vault").unwrap();
    vault.put("a", "k", &s("cached-value-a"), None).unwrap();
    vault
        .put("gone", "k", &s("cached-value-gone"), None)
        .unwrap();
    let handles = [h("vault:a#k"), h("vault:gone#k")];
    let first = resolve(&stores, &handles, &fast());
    assert!(
        first
            .iter()
            .all(|r| matches!(r.status, Status::Resolved { .. })),
        "{first:?}"
    );
    let raw = std::fs::read(&cache_path).unwrap();
    assert!(
        !raw.windows(12).any(|w| w == b"cached-value"),
        "cache is encrypted"
    );

    // A 404 is an answer: the cache must not bring a deleted secret back.
    t.bao.cli(&["kv", "metadata", "delete", "secret/gone"]);
    let r = resolve_one(&stores, &h("vault:gone#k"), &fast());
    assert!(matches!(r.status, Status::Missing { .. }), "{r:?}");

    t.bao.stop();
    let down = resolve(&stores, &[h("vault:a#k"), h("vault:never#k")], &fast());
    assert!(
        matches!(down[0].status, Status::FromCache { version: 1, .. }),
        "{:?}",
        down[0]
    );
    assert_eq!(text(down[0].value.as_ref().unwrap()), "cached-value-a");
    assert!(
        matches!(down[1].status, Status::Unreachable { .. }),
        "{:?}",
        down[1]
    );
    assert!(down[1].value.is_none());

    std::thread::sleep(Duration::from_secs(4));
    let expired = resolve_one(&stores, &h("vault:a#k"), &fast());
    assert!(
        matches!(expired.status, Status::Unreachable { .. }),
        "{expired:?}"
    );
    assert!(expired.value.is_none());
}

#[test]
fn faults_from_the_proxy_are_retried_or_not_as_they_should() {
    let t = setup();
    let proxy = Proxy::start(&t.bao.addr);
    let mut cfg = config(&proxy.addr, &t.root_token);
    cfg.timeout_s = Some(1);
    let stores = stores_with(VaultStore::new("vault", &cfg).unwrap());
    stores
        .get("vault")
        .unwrap()
        .put("p", "k", &s("through-proxy"), None)
        .unwrap();
    let handle = h("vault:p#k");

    for (faults, attempts) in [
        (vec![Fault::Status(503), Fault::Status(503)], 3),
        (vec![Fault::Status(429)], 2),
        (vec![Fault::Reset], 2),
        (
            vec![Fault::Status(502), Fault::Reset, Fault::Status(500)],
            4,
        ),
        (vec![Fault::Delay(Duration::from_millis(1500))], 2),
    ] {
        proxy.fail_next(&faults);
        let r = resolve_one(&stores, &handle, &fast());
        assert!(
            matches!(r.status, Status::Resolved { version: 1, .. }),
            "{faults:?}: {r:?}"
        );
        assert_eq!(r.attempts, attempts, "{faults:?}");
        assert_eq!(text(r.value.as_ref().unwrap()), "through-proxy");
    }

    proxy.fail_next(&[Fault::Status(403)]);
    let r = resolve_one(&stores, &handle, &fast());
    assert!(matches!(r.status, Status::Forbidden { .. }), "{r:?}");
    assert_eq!(r.attempts, 1);

    // A server that always answers too slowly: per-request timeouts, retries, then the
    // deadline ends the run.
    proxy.set_always(Some(Fault::Delay(Duration::from_secs(3))));
    let slow = ResolveOptions {
        deadline: Duration::from_millis(2500),
        ..fast()
    };
    let r = resolve_one(&stores, &handle, &slow);
    assert!(matches!(r.status, Status::Unreachable { .. }), "{r:?}");
    assert!(r.value.is_none());
    proxy.set_always(Some(Fault::Status(503)));
    let r = resolve_one(&stores, &handle, &fast());
    assert!(matches!(r.status, Status::Unreachable { .. }), "{r:?}");
    assert_eq!(r.attempts, 4);
}

#[test]
fn resolver_fetches_1000_handles_over_200_paths_once_per_path() {
    let t = setup();
    let proxy = Proxy::start(&t.bao.addr);
    let stores =
        stores_with(VaultStore::new("vault", &config(&proxy.addr, &t.root_token)).unwrap());
    seed_200_paths(&t.bao);
    // Warm the session (token look-up) so that the count below is data requests only.
    let warm = resolve_one(&stores, &h("vault:fleet/agent-0/creds#f0"), &fast());
    assert!(warm.status.is_resolved());
    let handles: Vec<Handle> = (0..200)
        .flat_map(|p| (0..5).map(move |f| h(&format!("vault:fleet/agent-{p}/creds#f{f}"))))
        .collect();
    let before = proxy.requests();
    let out = resolve(&stores, &handles, &ResolveOptions::default());
    assert_eq!(out.len(), 1000);
    for (r, handle) in out.iter().zip(&handles) {
        assert_eq!(&r.handle, handle);
        assert!(
            matches!(r.status, Status::Resolved { version: 1, .. }),
            "{r:?}"
        );
        let agentbak::handle::Target::Kv { path, field, .. } = &handle.target else {
            unreachable!()
        };
        assert_eq!(text(r.value.as_ref().unwrap()), format!("{path}:{field}"));
    }
    assert_eq!(
        proxy.requests() - before,
        200,
        "one request per distinct path"
    );
}

/// 200 secrets of 5 fields each, written with vaultrs directly (one request per path).
pub fn seed_200_paths(bao: &OpenBao) {
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
        for p in 0..200 {
            let path = format!("fleet/agent-{p}/creds");
            let data: BTreeMap<String, String> = (0..5)
                .map(|f| (format!("f{f}"), format!("{path}:f{f}")))
                .collect();
            vaultrs::kv2::set(&client, "secret", &path, &data)
                .await
                .unwrap();
        }
    });
}

#[test]
fn history_reads_the_metadata_once_and_each_kept_version_once() {
    let t = setup();
    let proxy = Proxy::start(&t.bao.addr);
    let vault = VaultStore::new("vault", &config(&proxy.addr, &t.root_token)).unwrap();
    let both = BTreeMap::from([
        ("user".to_string(), s("user-one")),
        ("pass".to_string(), s("pass-one")),
    ]);
    assert_eq!(
        vault.put_fields("p", &both, Some(0)).unwrap(),
        1,
        "one version"
    );
    assert_eq!(vault.put("p", "pass", &s("pass-two"), None).unwrap(), 2);
    assert_eq!(vault.put("p", "pass", &s("pass-three"), None).unwrap(), 3);
    t.bao.cli(&["kv", "delete", "-versions=2", "secret/p"]);
    let stores = stores_with(vault);
    let before = proxy.requests();
    let out = resolve_histories(&stores, &[h("vault:p#user"), h("vault:p#pass")], &fast());
    // The metadata, then versions 1 and 3 (2 is deleted), for both fields together.
    assert_eq!(proxy.requests() - before, 3);
    let seen = |i: usize| -> Vec<(String, u64)> {
        out[i]
            .values
            .iter()
            .map(|v| (text(&v.value), v.since.version))
            .collect()
    };
    assert_eq!(seen(0), vec![("user-one".to_string(), 1)]);
    assert_eq!(
        seen(1),
        vec![("pass-one".to_string(), 1), ("pass-three".to_string(), 3)]
    );
    assert!(matches!(out[0].status, Status::Resolved { version: 3, .. }));
    // Per field: the user's value dates from version 1, the password's from 3.
    assert_eq!(out[0].changed.map(|c| c.version), Some(1));
    assert_eq!(out[1].changed.map(|c| c.version), Some(3));
    let older: Vec<u64> = out[1].older().iter().map(|v| v.since.version).collect();
    assert_eq!(older, vec![1]);
}

#[test]
fn a_token_without_metadata_access_still_gets_the_current_value() {
    let t = setup();
    t.bao.cli_with_stdin(
        &["policy", "write", "data-only", "-"],
        Some(b"path \"secret/data/app/*\" { capabilities = [\"read\"] }\n"),
    );
    t.bao.cli(&["kv", "put", "secret/app/x", "k=first-value"]);
    t.bao.cli(&["kv", "put", "secret/app/x", "k=second-value"]);
    let token = t
        .bao
        .cli(&["token", "create", "-policy=data-only", "-field=token"]);
    let token_file = write(t.dir.path(), "data-only.token", token.trim());
    let stores = stores_with(VaultStore::new("vault", &config(&t.bao.addr, &token_file)).unwrap());
    let out = resolve_histories(&stores, &[h("vault:app/x#k")], &fast());
    assert!(
        matches!(out[0].status, Status::Resolved { version: 2, .. }),
        "{:?}",
        out[0].status
    );
    assert_eq!(text(out[0].value.as_ref().unwrap()), "second-value");
    assert_eq!(out[0].values.len(), 1, "the current version only");
}
