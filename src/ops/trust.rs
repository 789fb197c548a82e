//! What restore and verify trust in a snapshot: only what the *restoring* manifest declares.
//!
//! Whoever can write the repository (a shared drive, a bucket, an rsync target) can forge an
//! index. The sidecar's blake3 is a checksum anyone can recompute, and age encryption
//! authenticates nothing (anyone can encrypt to the manifest's public recipients). So an index
//! is only a list of *requests*: restore fills a placeholder only when the handle it names is
//! one the restoring manifest declares — a secret rule's handle (`{agent}` filled), compared
//! by store, path and field, whatever version the index pins; an `env:` handle only for a
//! variable a rule names. Anything else makes the whole snapshot untrustworthy (exit 5,
//! nothing written): an index that asks for the operator's `VAULT_TOKEN` or another agent's
//! secret was not written by this agent's snapshot.
//!
//! What this check cannot see without a signature: *where* a declared handle's value goes. A
//! forged index can move a declared value into another file of the same state. Signing
//! closes that: [`sign`] signs a sidecar at snapshot time, and a [`SignatureVerifier`] checks
//! one before any entry of its archive is read, trusting only keys it derives itself (the
//! store's versions of the key handle, the transit key's public keys, or a certificate by an
//! identity in `signing.trust`), never the key a signature names. `docs/security.md` states
//! the residual risk of unsigned repositories; `docs/signing.md` the key life cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use crate::archive::{Index, IntegrityError, IntegrityProblem, Sidecar};
use crate::error::Error;
use crate::handle::{Handle, Target};
use crate::manifest::{Manifest, Signing, TransitKey};
use crate::signing::{self, Certificate, Signature, SigningError};
use crate::store::{Address, StoreError, StoreErrorKind, Stores, Transit, TransitKeys};

/// The handles a manifest declares, as restore may fill them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeclaredHandles {
    /// `(store, path, field)` of every key/value handle, `{agent}` filled, version dropped.
    kv: BTreeSet<(String, String, String)>,
    /// `(store, name)` of every environment handle.
    env: BTreeSet<(String, String)>,
    /// `(store, path)` of the capture secret: each of its fields is a secret snapshot
    /// captured from this agent's state (docs/living-agents.md).
    captured: Option<(String, String)>,
}

impl DeclaredHandles {
    /// The handles of the manifest's secret rules, and the fields of its capture path.
    pub fn from_manifest(m: &Manifest) -> DeclaredHandles {
        let mut out =
            DeclaredHandles::from_handles(m.secrets.iter().map(|r| r.handle.with_agent(&m.agent)));
        out.captured = m.capture_target();
        out
    }

    /// These handles (already with `{agent}` filled).
    pub fn from_handles(handles: impl IntoIterator<Item = Handle>) -> DeclaredHandles {
        let mut out = DeclaredHandles::default();
        for h in handles {
            match h.target {
                Target::Kv { path, field, .. } => {
                    out.kv.insert((h.store, path, field));
                }
                Target::Env { name } => {
                    out.env.insert((h.store, name));
                }
            }
        }
        out
    }

    /// Whether restore may fill a placeholder of `handle`. A pinned version of a declared
    /// handle is the agent's own secret still: it is allowed.
    pub fn allows(&self, handle: &Handle) -> bool {
        match &handle.target {
            Target::Kv { path, field, .. } => {
                self.kv
                    .contains(&(handle.store.clone(), path.clone(), field.clone()))
                    || self
                        .captured
                        .as_ref()
                        .is_some_and(|(store, p)| *store == handle.store && p == path)
            }
            Target::Env { name } => self.env.contains(&(handle.store.clone(), name.clone())),
        }
    }

    /// Every secret record of `index` that asks for a handle not declared here, as
    /// `file: handle` lines. A record's handle and the handle its rehydration context names
    /// are both checked: rehydration writes under either spelling.
    pub fn undeclared(&self, index: &Index) -> Vec<String> {
        let mut out = Vec::new();
        for loc in &index.secrets {
            if !self.allows(&loc.handle) {
                out.push(format!("{}: {}", loc.file, loc.handle));
                continue;
            }
            // The context's own handle, when it has one that parses; one that does not parse
            // is refused later by the rehydration plan.
            if let Some(text) = loc.context.get("handle").and_then(|h| h.as_str()) {
                match Handle::parse(text) {
                    Ok(h) if !self.allows(&h) => {
                        out.push(format!("{}: {} (in its context)", loc.file, h));
                    }
                    _ => {}
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Refuses an index that asks for an undeclared handle: exit 5, naming every record.
    pub fn check(&self, index: &Index, archive: &str) -> Result<(), Error> {
        let undeclared = self.undeclared(index);
        if undeclared.is_empty() {
            return Ok(());
        }
        Err(Error::Integrity(IntegrityError {
            archive: archive.to_string(),
            problem: IntegrityProblem::Undeclared(undeclared),
        }))
    }
}

/// What a snapshot's signature turned out to be, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignatureStatus {
    /// Signed by a key the manifest trusts.
    Signed {
        /// The signing key (handle or transit key).
        signer: String,
        /// Its version.
        version: u64,
        /// The identity that certified it, when the certificate was what vouched for it.
        #[serde(skip_serializing_if = "Option::is_none")]
        certified_by: Option<String>,
    },
    /// No signature: the index's locations are not authenticated (accepted only without
    /// `signing` in the manifest, or with `--allow-unsigned`).
    Unsigned,
    /// The signature must not be trusted (a report's view of a failed check).
    Invalid {
        /// Why.
        reason: String,
    },
    /// Signed, but not checked: the manifest configures no `signing`, or (with
    /// `--allow-unsigned`) the key version it names is no longer in the store.
    NotChecked {
        /// The signing key the signature names.
        signer: String,
        /// Its version.
        version: u64,
        /// Why it was not checked.
        reason: String,
    },
}

impl SignatureStatus {
    /// One line for people: `signed by X version N`, `unsigned: …`.
    pub fn describe(&self) -> String {
        match self {
            SignatureStatus::Signed {
                signer,
                version,
                certified_by,
            } => {
                let by = certified_by
                    .as_ref()
                    .map(|i| format!(", certified by identity {i}"))
                    .unwrap_or_default();
                format!("signed by {signer} version {version}{by}")
            }
            SignatureStatus::Unsigned => "unsigned: locations not authenticated".to_string(),
            SignatureStatus::Invalid { reason } => format!("invalid: {reason}"),
            SignatureStatus::NotChecked {
                signer,
                version,
                reason,
            } => format!("signed by {signer} version {version}, not checked: {reason}"),
        }
    }
}

/// The signer name of a transit key: `transit:STORE/MOUNT/NAME`.
fn transit_signer(t: &TransitKey) -> String {
    format!("transit:{}/{}/{}", t.store, t.mount, t.key)
}

fn transit_of<'s>(stores: &'s Stores, t: &TransitKey) -> Result<&'s dyn Transit, Error> {
    stores
        .get(&t.store)
        .and_then(|s| s.transit())
        .ok_or_else(|| {
            Error::Usage(format!(
                "signing.transit: store `{}` is not a vault store with a transit engine",
                t.store
            ))
        })
}

/// The current version of a key held under `handle`, parsed.
fn key_at(
    stores: &Stores,
    handle: &Handle,
    version: Option<u64>,
) -> Result<Result<(u64, ed25519_dalek::SigningKey), SigningError>, StoreError> {
    let address = Address::of(handle);
    let value = stores
        .for_handle(handle)?
        .get(&address.path, &address.field, version)?;
    Ok(signing::parse_private_key(&value.value).map(|k| (value.version, k)))
}

fn bad_key(what: &str, handle: &Handle, e: SigningError) -> Error {
    Error::Usage(format!("signing.{what} {handle}: {e}"))
}

/// Signs `sidecar` as the manifest's `signing` says: with the current version of the key
/// handle or the transit key, certified by the identity key when one is set. Refuses a
/// current version that `signing.revoked` lists (rotate the key first).
pub fn sign(m: &Manifest, stores: &Stores, sidecar: &Sidecar) -> Result<Signature, Error> {
    let cfg = m
        .signing
        .as_ref()
        .ok_or_else(|| Error::Usage("the manifest configures no `signing`".into()))?;
    let message = signing::snapshot_message(&sidecar.unsigned_json());
    let (signer, version, public_key, value) = match (&cfg.key, &cfg.transit) {
        (Some(key), _) => {
            let handle = key.with_agent(&m.agent);
            let (version, key) =
                key_at(stores, &handle, None)?.map_err(|e| bad_key("key", &handle, e))?;
            let public = signing::public_key_text(&key.verifying_key());
            (
                handle.to_string(),
                version,
                public,
                signing::sign(&key, &message),
            )
        }
        (None, Some(t)) => {
            let transit = transit_of(stores, t)?;
            let (version, value) = transit.sign(&t.mount, &t.key, &message)?;
            let keys = transit.public_keys(&t.mount, &t.key)?;
            let public = keys.keys.get(&version).ok_or_else(|| {
                Error::Usage(format!(
                    "signing.transit: key `{}` signed with version {version} but lists no \
                     public key for it",
                    t.key
                ))
            })?;
            (
                transit_signer(t),
                version,
                format!("ed25519:{public}"),
                value,
            )
        }
        (None, None) => {
            return Err(Error::Usage(
                "`signing` names no `key` or `transit`: this manifest can verify snapshots but \
                 not sign them"
                    .into(),
            ));
        }
    };
    if cfg.revoked.contains(&version) {
        return Err(Error::Usage(format!(
            "the current version {version} of the signing key {signer} is listed in \
             `signing.revoked`: rotate the key before the next snapshot"
        )));
    }
    let certificate = match &cfg.identity {
        Some(identity) => {
            let handle = identity.with_agent(&m.agent);
            let (_, key) =
                key_at(stores, &handle, None)?.map_err(|e| bad_key("identity", &handle, e))?;
            Some(Certificate::issue(
                &key,
                &m.agent,
                &signer,
                version,
                &public_key,
            ))
        }
        None => None,
    };
    Ok(Signature {
        algorithm: signing::ALGORITHM.to_string(),
        signer,
        version,
        public_key,
        value,
        certificate,
    })
}

/// Checks sidecars' signatures against what the restoring manifest trusts. Keys read from a
/// store, and a transit key's public keys, are kept for the run, so verifying many snapshots
/// reads each once.
pub struct SignatureVerifier<'a> {
    cfg: Option<&'a Signing>,
    agent: &'a str,
    stores: &'a Stores,
    trusted: Vec<VerifyingKey>,
    keys: Mutex<BTreeMap<u64, Result<VerifyingKey, String>>>,
    /// The transit key's public keys, read once per run.
    transit: Mutex<Option<TransitKeys>>,
}

impl std::fmt::Debug for SignatureVerifier<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureVerifier")
            .field("signing", &self.cfg.is_some())
            .field("trusted", &self.trusted.len())
            .finish()
    }
}

impl<'a> SignatureVerifier<'a> {
    /// The verifier of `m`'s `signing` section (none: signatures are reported, not required).
    pub fn new(m: &'a Manifest, stores: &'a Stores) -> SignatureVerifier<'a> {
        let trusted = m
            .signing
            .iter()
            .flat_map(|s| &s.trust)
            // The manifest's validation already refused keys that do not parse.
            .filter_map(|k| signing::parse_public_key(k).ok())
            .collect();
        SignatureVerifier {
            cfg: m.signing.as_ref(),
            agent: &m.agent,
            stores,
            trusted,
            keys: Mutex::new(BTreeMap::new()),
            transit: Mutex::new(None),
        }
    }

    /// Checks `sidecar`'s signature. `Err` when it must not be trusted: unsigned while the
    /// manifest configures signing (unless `allow_unsigned`), a bad signature, a revoked or
    /// unknown key (exit 5); or when the key could not be read (a store error, exit 6).
    pub fn check(&self, sidecar: &Sidecar, allow_unsigned: bool) -> Result<SignatureStatus, Error> {
        let fail = |reason: String| {
            Error::Integrity(IntegrityError {
                archive: sidecar.id.clone(),
                problem: IntegrityProblem::Signature(reason),
            })
        };
        let Some(cfg) = self.cfg else {
            return Ok(match &sidecar.signature {
                None => SignatureStatus::Unsigned,
                Some(s) => SignatureStatus::NotChecked {
                    signer: s.signer.clone(),
                    version: s.version,
                    reason: "the manifest configures no `signing`".into(),
                },
            });
        };
        let Some(sig) = &sidecar.signature else {
            if allow_unsigned {
                return Ok(SignatureStatus::Unsigned);
            }
            return Err(fail(
                "the snapshot is unsigned and the manifest configures `signing`; pass \
                 --allow-unsigned to accept it anyway (only if nobody else can write the \
                 repository)"
                    .into(),
            ));
        };
        if sig.algorithm != signing::ALGORITHM {
            return Err(fail(
                "an unknown signature algorithm (agentbak signs with ed25519)".into(),
            ));
        }
        let configured = match (&cfg.key, &cfg.transit) {
            (Some(k), _) => Some(k.with_agent(self.agent).to_string()),
            (None, Some(t)) => Some(transit_signer(t)),
            (None, None) => None,
        };
        if cfg.revoked.contains(&sig.version)
            && configured.as_deref().is_none_or(|c| c == sig.signer)
        {
            return Err(fail(format!(
                "signed by {} version {}, which `signing.revoked` lists",
                sig.signer, sig.version
            )));
        }
        let message = signing::snapshot_message(&sidecar.unsigned_json());
        let signed = |certified_by: Option<String>| SignatureStatus::Signed {
            signer: sig.signer.clone(),
            version: sig.version,
            certified_by,
        };
        // A certificate by a trusted identity needs no store. One by an identity the manifest
        // does not trust (an identity replaced since) leaves the signing key to vouch, when
        // the manifest names one.
        let mut certificate_problem = None;
        if let (Some(cert), false) = (&sig.certificate, self.trusted.is_empty()) {
            match cert.check(&self.trusted, self.agent, sig) {
                Ok(key) => {
                    signing::verify(&key, &message, &sig.value).map_err(|e| fail(e.to_string()))?;
                    return Ok(signed(Some(cert.identity.clone())));
                }
                Err(e) => certificate_problem = Some(e.to_string()),
            }
        }
        let Some(configured) = configured else {
            return Err(fail(certificate_problem.unwrap_or_else(|| {
                "no certificate by an identity in `signing.trust`, and no signing key to \
                 check the signature with"
                    .into()
            })));
        };
        if sig.signer != configured {
            return Err(fail(format!(
                "signed by {}, but the manifest's signing key is {configured}",
                sig.signer
            )));
        }
        let key = match self.trusted_key(cfg, sig.version)? {
            Ok(key) => key,
            Err(Unverifiable::Retired(reason)) => return Err(fail(reason)),
            Err(Unverifiable::Gone(reason)) if allow_unsigned => {
                return Ok(SignatureStatus::NotChecked {
                    signer: sig.signer.clone(),
                    version: sig.version,
                    reason,
                });
            }
            Err(Unverifiable::Gone(reason)) => {
                return Err(fail(format!(
                    "{reason}; the snapshot cannot be authenticated (--allow-unsigned accepts it)"
                )));
            }
        };
        signing::verify(&key, &message, &sig.value).map_err(|e| {
            fail(format!(
                "{e} (signer {} version {}): the sidecar or the signature was changed",
                sig.signer, sig.version
            ))
        })?;
        Ok(signed(None))
    }

    /// The public key of `version` of the configured key, as the store or the transit engine
    /// says (cached for the run).
    fn trusted_key(
        &self,
        cfg: &Signing,
        version: u64,
    ) -> Result<Result<VerifyingKey, Unverifiable>, Error> {
        if let Some(t) = &cfg.transit {
            let mut cached = self.transit.lock().unwrap_or_else(|p| p.into_inner());
            let keys = match &mut *cached {
                Some(keys) => keys,
                empty => empty.insert(transit_of(self.stores, t)?.public_keys(&t.mount, &t.key)?),
            };
            if version < keys.min_version {
                return Ok(Err(Unverifiable::Retired(format!(
                    "signed by version {version} of transit key `{}`, below its \
                     min_decryption_version {} (retired)",
                    t.key, keys.min_version
                ))));
            }
            return Ok(match keys.keys.get(&version) {
                Some(public) => signing::parse_public_key(&format!("ed25519:{public}"))
                    .map_err(|e| Unverifiable::Gone(e.to_string())),
                None => Err(Unverifiable::Gone(format!(
                    "transit key `{}` has no version {version}",
                    t.key
                ))),
            });
        }
        let Some(handle) = cfg.key.as_ref().map(|k| k.with_agent(self.agent)) else {
            return Ok(Err(Unverifiable::Gone("no signing key".into())));
        };
        let mut cache = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = cache.get(&version) {
            return Ok(known.clone().map_err(Unverifiable::Gone));
        }
        let found = match key_at(self.stores, &handle, Some(version)) {
            Ok(Ok((_, key))) => Ok(key.verifying_key()),
            Ok(Err(e)) => Err(format!("version {version} of {handle}: {e}")),
            Err(e) if e.kind == StoreErrorKind::Missing => Err(format!(
                "version {version} of the signing key {handle} is not in its store any more"
            )),
            Err(e) => return Err(e.into()),
        };
        cache.insert(version, found.clone());
        Ok(found.map_err(Unverifiable::Gone))
    }
}

/// Why a signature's key could not be had.
enum Unverifiable {
    /// The key version is gone or unreadable: the signature cannot be checked.
    Gone(String),
    /// The engine retired the version: a signature by it fails.
    Retired(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::SecretLocation;

    fn h(s: &str) -> Handle {
        Handle::parse(s).unwrap()
    }

    fn index(records: &[(&str, &str, Option<&str>)]) -> Index {
        Index {
            format: 1,
            tool_version: "0".into(),
            agent: "kevin".into(),
            snapshot_id: "x".into(),
            created_at: "2026-12-01T00:00:00Z".parse().unwrap(),
            entries: Vec::new(),
            secrets: records
                .iter()
                .map(|(file, handle, context)| SecretLocation {
                    file: (*file).into(),
                    locator: None,
                    handle: h(handle),
                    store_version: None,
                    ephemeral: false,
                    context: match context {
                        Some(c) => serde_json::json!({ "handle": c }),
                        None => serde_json::json!({}),
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn only_declared_handles_pass_whatever_version_they_pin() {
        let d = DeclaredHandles::from_handles([
            h("vault:agents/kevin/openai#api_key"),
            h("env:SESSION_TOKEN"),
        ]);
        assert!(d.allows(&h("vault:agents/kevin/openai#api_key")));
        assert!(d.allows(&h("vault:agents/kevin/openai?version=3#api_key")));
        assert!(d.allows(&h("env:SESSION_TOKEN")));
        for other in [
            "env:VAULT_TOKEN",
            "vault:agents/alice/openai#api_key",
            "vault:agents/kevin/openai#other",
            "local:agents/kevin/openai#api_key",
            "other:SESSION_TOKEN",
        ] {
            assert!(!d.allows(&h(other)), "{other}");
        }
    }

    #[test]
    fn forged_records_are_named_and_refused() {
        let d = DeclaredHandles::from_handles([h("local:agents/kevin/openai#api_key")]);
        let ok = index(&[(
            "state/a.json",
            "local:agents/kevin/openai#api_key",
            Some("local:agents/kevin/openai#api_key"),
        )]);
        assert!(d.check(&ok, "s").is_ok());
        let forged = index(&[
            ("state/public.md", "env:VAULT_TOKEN", None),
            (
                "state/public.md",
                "local:agents/alice/admin#password",
                Some("local:agents/alice/admin#password"),
            ),
            // A declared record whose context asks for another handle.
            (
                "state/a.json",
                "local:agents/kevin/openai#api_key",
                Some("env:VAULT_TOKEN"),
            ),
        ]);
        let err = d.check(&forged, "s").unwrap_err();
        assert_eq!(err.exit_code(), crate::error::ExitCode::Integrity);
        let text = err.to_string();
        for want in [
            "state/public.md: env:VAULT_TOKEN",
            "state/public.md: local:agents/alice/admin#password",
            "state/a.json: env:VAULT_TOKEN (in its context)",
        ] {
            assert!(text.contains(want), "{text}");
        }
    }
}
