//! The environment store: `env:NAME` reads the variable `NAME` of this process.
//!
//! It is the runtime layer for ephemeral secrets (session tokens) that are re-issued rather
//! than restored. It has no versions (version `0`, created = the time it was read), no writes,
//! and an absent variable is [`StoreErrorKind::Missing`], never an empty value. A variable that
//! is set to the empty string is a value (the user set it).

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStringExt;

use chrono::Utc;

use super::{
    ENV_FIELD, SecretMeta, SecretStore, SecretVersion, StoreError, StoreErrorKind, VersionMeta,
};
use crate::secret::Secret;

/// The environment store.
#[derive(Debug)]
pub struct EnvStore {
    name: String,
}

impl EnvStore {
    /// An env store called `name`.
    pub fn new(name: &str) -> EnvStore {
        EnvStore {
            name: name.to_string(),
        }
    }
}

impl SecretStore for EnvStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "env"
    }

    fn read(&self, path: &str, version: Option<u64>) -> Result<SecretVersion, StoreError> {
        if version.is_some_and(|v| v != 0) {
            return Err(StoreError::new(
                &self.name,
                path,
                StoreErrorKind::Missing,
                "environment variables have no versions",
            ));
        }
        let value = std::env::var_os(path).ok_or_else(|| {
            StoreError::new(
                &self.name,
                path,
                StoreErrorKind::Missing,
                "the environment variable is not set",
            )
        })?;
        Ok(SecretVersion {
            fields: BTreeMap::from([(ENV_FIELD.to_string(), Secret::new(value.into_vec()))]),
            version: 0,
            created: Utc::now(),
        })
    }

    fn metadata(&self, path: &str) -> Result<SecretMeta, StoreError> {
        let read = self.read(path, None)?;
        Ok(SecretMeta {
            path: path.to_string(),
            current: 0,
            versions: vec![VersionMeta {
                version: 0,
                created: read.created,
                deleted: None,
                destroyed: false,
            }],
            changed: BTreeMap::new(),
        })
    }

    fn put_fields(
        &self,
        path: &str,
        _: &BTreeMap<String, Secret>,
        _: Option<u64>,
    ) -> Result<u64, StoreError> {
        Err(StoreError::new(
            &self.name,
            path,
            StoreErrorKind::Other,
            "the env store is read-only: set the variable in the environment of the process",
        ))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        // Names only: listing never reads a value.
        let mut names: Vec<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| k.starts_with(prefix))
            .collect();
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_variable_is_missing_not_empty() {
        let st = EnvStore::new("env");
        let err = st
            .get("AGENTBAK_TEST_SURELY_UNSET_VAR_42", ENV_FIELD, None)
            .unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Missing);
        // PATH is set in every test environment.
        let path = st.get("PATH", ENV_FIELD, None).unwrap();
        assert_eq!(path.version, 0);
        assert!(!path.value.is_empty());
        assert_eq!(
            st.put("PATH", ENV_FIELD, &Secret::default(), None)
                .unwrap_err()
                .kind,
            StoreErrorKind::Other
        );
    }
}
