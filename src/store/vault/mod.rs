//! HashiCorp Vault / OpenBao, KV version 2, through `vaultrs`.
//!
//! The store owns a small tokio runtime and blocks on it, so the rest of the crate stays
//! synchronous; [`crate::store::resolve`] gets concurrency by calling it from several threads.
//! Settings are explicit: the address, namespace (vaultrs does not read `VAULT_NAMESPACE`), CA
//! certificate and timeout (vaultrs has none by default; ours is 10 s) come from the manifest,
//! else from the `VAULT_*` variables the vault CLI reads.
//!
//! A read returns the data *and* the version's metadata in one request (`kv2::read` drops the
//! metadata, so this calls `ReadSecretRequest` through `exec_with_result`). A read that finds
//! nothing checks once whether the mount is KV version 1, so that mistake gets a clear hint
//! instead of "missing" for every handle.
//!
//! Every `VaultClient` is built by [`http::vault_client`] over the client of [`http::build`],
//! never by `VaultClient::new`: the token goes only to the configured origin (redirects
//! elsewhere are refused, see the `http` module).

mod errors;
mod http;
mod session;
mod transit;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, OnceCell};
use vaultrs::api::kv2::requests::{ReadSecretRequest, SetSecretRequest, SetSecretRequestOptions};
use vaultrs::api::kv2::responses::{ReadSecretResponse, SecretVersionMetadata};
use vaultrs::client::{Client, VaultClient, VaultClientSettings};
use vaultrs::error::ClientError;

use self::session::{Credentials, Session};
use super::{
    PathHistory, SecretMeta, SecretStore, SecretVersion, StoreError, StoreErrorKind, VersionMeta,
};
use crate::error::Error;
use crate::manifest::VaultConfig;
use crate::secret::Secret;

/// Default timeout of one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Versions of one path read at once by a history.
const HISTORY_CONCURRENCY: usize = 8;

/// How often a put re-reads and retries when another writer changed the secret in between.
const PUT_ATTEMPTS: usize = 5;

type Failure = (StoreErrorKind, String);

/// A Vault or OpenBao KV v2 store.
pub struct VaultStore {
    name: String,
    mount: String,
    rt: tokio::runtime::Runtime,
    settings: VaultClientSettings,
    /// The HTTP client of every `VaultClient` this store makes (shared connection pool).
    http: reqwest::Client,
    client: RwLock<Arc<http::TokenClient>>,
    session: Mutex<Session>,
    credentials: Credentials,
    /// `Some(failure)` once the mount is known not to be KV v2.
    mount_check: OnceCell<Option<Failure>>,
}

impl fmt::Debug for VaultStore {
    // The settings hold the token: show only what is safe.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultStore")
            .field("name", &self.name)
            .field("address", &self.settings.address.as_str())
            .field("mount", &self.mount)
            .field("namespace", &self.settings.namespace)
            .finish_non_exhaustive()
    }
}

fn env_nonempty(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

impl VaultStore {
    /// A store as the manifest configures it. No request is made until the first use.
    pub fn new(name: &str, config: &VaultConfig) -> Result<VaultStore, Error> {
        let usage = |m: String| Error::Usage(format!("store `{name}`: {m}"));
        let address = config
            .address
            .clone()
            .or_else(|| env_nonempty("VAULT_ADDR"))
            .ok_or_else(|| usage("no address: set `address` or VAULT_ADDR".into()))?;
        let parsed = address
            .parse()
            .map_err(|e| usage(format!("address `{address}`: {e}")))?;
        let ca_certs = config
            .ca_cert
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .or_else(|| env_nonempty("VAULT_CACERT"))
            .into_iter()
            .collect();
        let settings = VaultClientSettings {
            address: parsed,
            ca_certs,
            identity: None,
            timeout: Some(
                config
                    .timeout_s
                    .map(Duration::from_secs)
                    .unwrap_or(DEFAULT_TIMEOUT),
            ),
            token: String::new(),
            verify: config.tls_verify,
            version: 1,
            wrapping: false,
            namespace: config
                .namespace
                .clone()
                .or_else(|| env_nonempty("VAULT_NAMESPACE")),
            proxy: None,
        };
        if !settings.verify {
            // vaultrs warned here when it built the client; we build it now (see `http`).
            tracing::warn!(
                store = name,
                "TLS certificate verification is off (`tls_verify: false`)"
            );
        }
        let http = http::build(&settings).map_err(usage)?;
        let client = http::vault_client(settings.clone(), &http);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("agentbak-vault")
            .enable_all()
            .build()
            .map_err(|e| Error::io("<tokio runtime>", e))?;
        Ok(VaultStore {
            name: name.to_string(),
            mount: config.mount.clone(),
            rt,
            settings,
            http,
            client: RwLock::new(Arc::new(client)),
            session: Mutex::new(Session::default()),
            credentials: Credentials::from_config(config.auth.as_ref()),
            mount_check: OnceCell::new(),
        })
    }

    fn err(&self, path: &str, (kind, message): Failure) -> StoreError {
        StoreError::new(&self.name, path, kind, message)
    }

    /// Runs one request on the store's runtime with a fresh session.
    fn run<T, F, Fut>(&self, path: &str, request: F) -> Result<T, StoreError>
    where
        F: FnOnce(Arc<http::TokenClient>) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        self.rt.block_on(async {
            let client = self.session_client().await.map_err(|f| self.err(path, f))?;
            quiet(request(client)).await.map_err(|f| self.err(path, f))
        })
    }

    async fn session_client(&self) -> Result<Arc<http::TokenClient>, Failure> {
        let mut session = self.session.lock().await;
        if !session.started {
            self.start(&mut session).await?;
        } else if session.needs_refresh(Instant::now()) {
            self.refresh(&mut session).await?;
        }
        Ok(self.current())
    }

    fn current(&self) -> Arc<http::TokenClient> {
        self.client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_token(&self, token: &str) {
        let mut settings = self.settings.clone();
        settings.token = token.to_string();
        let client = http::vault_client(settings, &self.http);
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(client);
    }

    async fn start(&self, session: &mut Session) -> Result<(), Failure> {
        match &self.credentials {
            Credentials::Token { file } => {
                let token = session::read_credential(file.as_deref(), "VAULT_TOKEN", "token")?;
                self.set_token(&token);
                match quiet(vaultrs::token::lookup_self(&*self.current())).await {
                    Ok(info) => session.set_lease(info.ttl, info.renewable.unwrap_or(false)),
                    Err(e) => {
                        let (kind, message) = errors::classify(&e);
                        if kind.is_transient() {
                            return Err((kind, message));
                        }
                        // A token may lack `lookup-self`; requests will show whether it works.
                        tracing::debug!(store = %self.name, %message, "token look-up failed");
                        session.set_lease(0, false);
                    }
                }
                Ok(())
            }
            Credentials::AppRole { .. } => self.login(session).await,
        }
    }

    async fn login(&self, session: &mut Session) -> Result<(), Failure> {
        let Credentials::AppRole {
            role_id_file,
            secret_id_file,
            mount,
        } = &self.credentials
        else {
            return Err((
                StoreErrorKind::Forbidden,
                "the token expired and cannot be renewed".into(),
            ));
        };
        let role = session::read_credential(role_id_file.as_deref(), "VAULT_ROLE_ID", "role id")?;
        let secret =
            session::read_credential(secret_id_file.as_deref(), "VAULT_SECRET_ID", "secret id")?;
        let auth = quiet(vaultrs::auth::approle::login(
            &*self.current(),
            mount,
            &role,
            &secret,
        ))
        .await
        .map_err(|e| {
            let (kind, message) = errors::classify(&e);
            (kind, format!("AppRole login at `auth/{mount}`: {message}"))
        })?;
        let token = zeroize::Zeroizing::new(auth.client_token);
        self.set_token(&token);
        session.set_lease(auth.lease_duration, auth.renewable);
        tracing::debug!(store = %self.name, lease_s = auth.lease_duration, "AppRole login");
        Ok(())
    }

    async fn refresh(&self, session: &mut Session) -> Result<(), Failure> {
        if session.renewable {
            match quiet(vaultrs::token::renew_self(&*self.current(), None)).await {
                Ok(auth) => {
                    session.set_lease(auth.lease_duration, auth.renewable);
                    tracing::debug!(store = %self.name, lease_s = auth.lease_duration, "token renewed");
                    return Ok(());
                }
                Err(e) => {
                    let message = errors::classify(&e).1;
                    tracing::debug!(store = %self.name, %message, "token renewal failed");
                }
            }
        }
        match self.credentials {
            Credentials::AppRole { .. } => self.login(session).await,
            // A fixed token that cannot be renewed: keep using it until the server says no.
            Credentials::Token { .. } => {
                session.expires = None;
                Ok(())
            }
        }
    }

    /// Whether the mount is KV v2; asked once, only after a read found nothing.
    async fn mount_problem(&self, client: &VaultClient) -> Option<Failure> {
        self.mount_check
            .get_or_init(|| async { check_mount(client, &self.mount).await })
            .await
            .clone()
    }

    async fn read_async(
        &self,
        client: &VaultClient,
        path: &str,
        version: Option<u64>,
    ) -> Result<SecretVersion, Failure> {
        let endpoint = ReadSecretRequest::builder()
            .mount(self.mount.as_str())
            .path(path)
            .version(version)
            .build()
            .map_err(|e| (StoreErrorKind::Other, e.to_string()))?;
        let res: ReadSecretResponse = match vaultrs::api::exec_with_result(client, endpoint).await {
            Ok(r) => r,
            Err(e) => {
                let failure = errors::classify(&e);
                if failure.0 == StoreErrorKind::Missing
                    && let Some(problem) = self.mount_problem(client).await
                {
                    return Err(problem);
                }
                return Err(failure);
            }
        };
        into_version(res)
    }
}

/// Reads one version of `path` for a history: `None` when it was deleted or destroyed
/// meanwhile. Owns its inputs so that it can run as a task of its own.
async fn read_version(
    client: Arc<http::TokenClient>,
    mount: String,
    path: String,
    version: u64,
) -> Result<Option<SecretVersion>, Failure> {
    let endpoint = ReadSecretRequest::builder()
        .mount(mount.as_str())
        .path(path.as_str())
        .version(Some(version))
        .build()
        .map_err(|e| (StoreErrorKind::Other, e.to_string()))?;
    let read = match vaultrs::api::exec_with_result(&**client, endpoint).await {
        Ok(res) => into_version(res),
        Err(e) => Err(errors::classify(&e)),
    };
    match read {
        Ok(v) => Ok(Some(v)),
        Err((StoreErrorKind::Missing, _)) => Ok(None),
        Err(failure) => Err(failure),
    }
}

/// Runs a vaultrs future with its own logging silenced: vaultrs logs every 403/404 at ERROR
/// level (and rustify every request at DEBUG), which would make a cron run noisy with lines
/// that repeat what our typed errors already say.
fn quiet<F: Future>(f: F) -> tracing::instrument::WithDispatch<F> {
    use tracing::instrument::WithSubscriber;
    f.with_subscriber(tracing::subscriber::NoSubscriber::default())
}

/// Turns a read answer into fields, moving each string into a `Secret` without a copy.
fn into_version(res: ReadSecretResponse) -> Result<SecretVersion, Failure> {
    let meta = res.metadata;
    if meta.destroyed || !meta.deletion_time.is_empty() {
        return Err((
            StoreErrorKind::Missing,
            format!("version {} was deleted or destroyed", meta.version),
        ));
    }
    let serde_json::Value::Object(map) = res.data else {
        return Err((
            StoreErrorKind::Missing,
            format!("version {} holds no data", meta.version),
        ));
    };
    let fields = map
        .into_iter()
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::String(s) => Secret::from(s),
                // A non-string field is kept as its JSON text.
                other => Secret::from(other.to_string()),
            };
            (k, value)
        })
        .collect();
    Ok(SecretVersion {
        fields,
        version: meta.version,
        created: parse_time(&meta.created_time),
    })
}

fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// Asks `sys/internal/ui/mounts/MOUNT` (readable with any token that can use the mount) for
/// the engine type and version. Unknown answers are not a problem: the read error stands.
async fn check_mount(client: &VaultClient, mount: &str) -> Option<Failure> {
    let settings = client.settings();
    let url = format!(
        "{}/v1/sys/internal/ui/mounts/{mount}",
        settings.address.as_str().trim_end_matches('/')
    );
    let mut request = client
        .http()
        .http
        .get(url)
        .header("X-Vault-Request", "true");
    if !settings.token.is_empty() {
        // Marked sensitive: reqwest and hyper leave it out of their `Debug` output.
        let mut token = reqwest::header::HeaderValue::from_str(&settings.token).ok()?;
        token.set_sensitive(true);
        request = request.header("X-Vault-Token", token);
    }
    if let Some(ns) = &settings.namespace {
        request = request.header("X-Vault-Namespace", ns.as_str());
    }
    let body = request.send().await.ok()?.text().await.ok()?;
    let doc: serde_json::Value = serde_json::from_str(&body).ok()?;
    let data = doc.get("data")?;
    let kind = data.get("type").and_then(|t| t.as_str()).unwrap_or("");
    let version = data
        .pointer("/options/version")
        .and_then(|v| v.as_str())
        .unwrap_or("1");
    (kind == "kv" && version != "2").then(|| {
        (
            StoreErrorKind::KvV1,
            format!(
                "mount `{mount}` is a KV version 1 engine; agentbak needs KV version 2 \
                 (upgrade it with `vault kv enable-versioning {mount}`, or point `mount` at a \
                 kv-v2 engine)"
            ),
        )
    })
}

impl SecretStore for VaultStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "vault"
    }

    fn transit(&self) -> Option<&dyn super::Transit> {
        Some(self)
    }

    fn read(&self, path: &str, version: Option<u64>) -> Result<SecretVersion, StoreError> {
        self.run(path, |client| async move {
            self.read_async(&client, path, version).await
        })
    }

    fn metadata(&self, path: &str) -> Result<SecretMeta, StoreError> {
        self.run(path, |client| async move {
            let m = match vaultrs::kv2::read_metadata(&*client, &self.mount, path).await {
                Ok(m) => m,
                Err(e) => {
                    let failure = errors::classify(&e);
                    if failure.0 == StoreErrorKind::Missing
                        && let Some(problem) = self.mount_problem(&client).await
                    {
                        return Err(problem);
                    }
                    return Err(failure);
                }
            };
            let mut versions: Vec<VersionMeta> = m
                .versions
                .iter()
                .filter_map(|(v, meta)| {
                    Some(VersionMeta {
                        version: v.parse().ok()?,
                        created: parse_time(&meta.created_time),
                        deleted: (!meta.deletion_time.is_empty())
                            .then(|| parse_time(&meta.deletion_time)),
                        destroyed: meta.destroyed,
                    })
                })
                .collect();
            versions.sort_by_key(|v| v.version);
            Ok(SecretMeta {
                path: path.to_string(),
                current: m.current_version,
                versions,
                changed: BTreeMap::new(),
            })
        })
    }

    fn history(&self, path: &str) -> Result<PathHistory, StoreError> {
        let meta = match self.metadata(path) {
            Ok(m) => m,
            // A policy may grant `data/` but not `metadata/`: the current version is then all
            // that can be known, and is still worth knowing.
            Err(e) if e.kind == StoreErrorKind::Forbidden => {
                let current = self.read(path, None)?;
                tracing::debug!(store = %self.name, path, "no metadata access: current version only");
                return Ok(PathHistory {
                    meta: SecretMeta {
                        path: path.to_string(),
                        current: current.version,
                        versions: vec![VersionMeta {
                            version: current.version,
                            created: current.created,
                            deleted: None,
                            destroyed: false,
                        }],
                        changed: BTreeMap::new(),
                    },
                    versions: vec![current],
                });
            }
            Err(e) => return Err(e),
        };
        let live: Vec<u64> = meta
            .versions
            .iter()
            .filter(|m| m.is_live())
            .map(|m| m.version)
            .collect();
        // The versions of one path are read concurrently (a few at a time), in one session:
        // a snapshot's history of a path costs about two round trips, not one per version.
        let versions = self.run(path, |client| async move {
            let mut out = Vec::with_capacity(live.len());
            for chunk in live.chunks(HISTORY_CONCURRENCY) {
                let mut set = tokio::task::JoinSet::new();
                for &v in chunk {
                    // A spawned task does not inherit `quiet`: wrap each one.
                    let read =
                        read_version(client.clone(), self.mount.clone(), path.to_string(), v);
                    set.spawn(quiet(read));
                }
                while let Some(joined) = set.join_next().await {
                    match joined {
                        Ok(Ok(Some(read))) => out.push(read),
                        // Deleted between the two requests: no longer a kept version.
                        Ok(Ok(None)) => {}
                        Ok(Err(failure)) => return Err(failure),
                        Err(e) => {
                            return Err((
                                StoreErrorKind::Other,
                                format!("a read task failed: {e}"),
                            ));
                        }
                    }
                }
            }
            out.sort_by_key(|v: &SecretVersion| v.version);
            Ok(out)
        })?;
        Ok(PathHistory { meta, versions })
    }

    fn put_fields(
        &self,
        path: &str,
        new: &BTreeMap<String, Secret>,
        cas: Option<u64>,
    ) -> Result<u64, StoreError> {
        let mut texts: Vec<(&str, &str)> = Vec::with_capacity(new.len());
        for (field, value) in new {
            let text = value.expose_str().ok_or_else(|| {
                self.err(
                    path,
                    (
                        StoreErrorKind::Other,
                        format!(
                            "Vault stores text: the value of field `{field}` is not valid UTF-8"
                        ),
                    ),
                )
            })?;
            texts.push((field, text));
        }
        for _ in 0..PUT_ATTEMPTS {
            let (fields, current) = self.current_fields(path)?;
            if let Some(expected) = cas
                && expected != current
            {
                return Err(self.err(
                    path,
                    (
                        StoreErrorKind::Conflict,
                        format!(
                            "check-and-set expected version {expected}, the current is {current}"
                        ),
                    ),
                ));
            }
            match self.write(path, fields, &texts, current) {
                Ok(meta) => return Ok(meta.version),
                // Someone wrote in between: read again and merge onto their version.
                Err(e) if e.kind == StoreErrorKind::Conflict && cas.is_none() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(self.err(
            path,
            (
                StoreErrorKind::Conflict,
                format!("{PUT_ATTEMPTS} concurrent writers won in a row; try again"),
            ),
        ))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let folder = match prefix.rfind('/') {
            Some(i) => &prefix[..=i],
            None => "",
        };
        let mut out = Vec::new();
        let mut queue = vec![folder.to_string()];
        while let Some(dir) = queue.pop() {
            let dir_ref = dir.as_str();
            let keys = self.run(dir_ref, move |client| async move {
                match vaultrs::kv2::list(&*client, &self.mount, dir_ref).await {
                    Ok(keys) => Ok(keys),
                    Err(e) => match errors::classify(&e) {
                        (StoreErrorKind::Missing, _) => Ok(Vec::new()),
                        failure => Err(failure),
                    },
                }
            })?;
            for key in keys {
                let full = format!("{dir}{key}");
                if key.ends_with('/') {
                    queue.push(full);
                } else if full.starts_with(prefix) {
                    out.push(full);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

impl VaultStore {
    /// The current fields and version; a path that never existed is version 0, and a path
    /// whose current version was deleted keeps its version number with no fields.
    fn current_fields(&self, path: &str) -> Result<(BTreeMap<String, Secret>, u64), StoreError> {
        match self.read(path, None) {
            Ok(v) => Ok((v.fields, v.version)),
            Err(e) if e.kind == StoreErrorKind::Missing => match self.metadata(path) {
                Ok(m) => Ok((BTreeMap::new(), m.current)),
                Err(e) if e.kind == StoreErrorKind::Missing => Ok((BTreeMap::new(), 0)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    fn write(
        &self,
        path: &str,
        fields: BTreeMap<String, Secret>,
        new: &[(&str, &str)],
        cas: u64,
    ) -> Result<SecretVersionMetadata, StoreError> {
        let mut data = serde_json::Map::new();
        for (k, v) in &fields {
            let s = v
                .expose_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(v.expose()).into_owned());
            data.insert(k.clone(), serde_json::Value::String(s));
        }
        for (field, text) in new {
            data.insert(
                field.to_string(),
                serde_json::Value::String(text.to_string()),
            );
        }
        let cas = u32::try_from(cas).map_err(|_| {
            self.err(
                path,
                (StoreErrorKind::Other, "version number too large".into()),
            )
        })?;
        self.run(path, |client| async move {
            let endpoint = SetSecretRequest::builder()
                .mount(self.mount.as_str())
                .path(path)
                .data(serde_json::Value::Object(data))
                .options(SetSecretRequestOptions { cas })
                .build()
                .map_err(|e| (StoreErrorKind::Other, e.to_string()))?;
            vaultrs::api::exec_with_result(&*client, endpoint)
                .await
                .map_err(|e: ClientError| errors::classify(&e))
        })
    }
}
