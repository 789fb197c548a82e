//! Vault credentials: where the token comes from, AppRole login, and renewal for long runs.
//!
//! The token is obtained lazily, on the first request, so building the stores of a manifest
//! never touches the network. A session remembers when its token expires; when less than half
//! of its lease is left, a renewable token is renewed (`auth/token/renew-self`) and an AppRole
//! token that cannot be renewed is replaced by a fresh login. The token lives in the vaultrs
//! client only; it is never logged, and errors name the file or variable it came from.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::manifest::VaultAuth;
use crate::store::StoreErrorKind;

/// Where credentials come from.
#[derive(Debug, Clone)]
pub(super) enum Credentials {
    /// A token from a file or `VAULT_TOKEN` (read at first use).
    Token { file: Option<PathBuf> },
    /// AppRole: role id and secret id from files or `VAULT_ROLE_ID` / `VAULT_SECRET_ID`.
    AppRole {
        role_id_file: Option<PathBuf>,
        secret_id_file: Option<PathBuf>,
        mount: String,
    },
}

impl Credentials {
    pub(super) fn from_config(auth: Option<&VaultAuth>) -> Credentials {
        match auth {
            None => Credentials::Token { file: None },
            Some(VaultAuth::Token { token_file }) => Credentials::Token {
                file: token_file.clone(),
            },
            Some(VaultAuth::Approle {
                role_id_file,
                secret_id_file,
                mount,
            }) => Credentials::AppRole {
                role_id_file: role_id_file.clone(),
                secret_id_file: secret_id_file.clone(),
                mount: mount.clone().unwrap_or_else(|| "approle".into()),
            },
        }
    }
}

/// The state of the current token.
#[derive(Debug, Default)]
pub(super) struct Session {
    /// Whether a token has been set on the client.
    pub started: bool,
    /// When the token expires; `None` for tokens without a TTL (root) or unknown.
    pub expires: Option<Instant>,
    /// The lease the token was last given.
    pub lease: Duration,
    /// Whether `renew-self` can extend it.
    pub renewable: bool,
}

impl Session {
    /// Whether the token should be renewed or replaced before the next request.
    pub(super) fn needs_refresh(&self, now: Instant) -> bool {
        match self.expires {
            Some(expires) => expires.saturating_duration_since(now) < self.lease / 2,
            None => false,
        }
    }

    pub(super) fn set_lease(&mut self, lease_secs: u64, renewable: bool) {
        self.started = true;
        self.lease = Duration::from_secs(lease_secs);
        self.renewable = renewable;
        self.expires = (lease_secs > 0).then(|| Instant::now() + self.lease);
    }
}

/// Reads a credential from a file (trimmed), else from an environment variable.
pub(super) fn read_credential(
    file: Option<&Path>,
    var: &str,
    what: &str,
) -> Result<Zeroizing<String>, (StoreErrorKind, String)> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            (
                StoreErrorKind::Forbidden,
                format!("{what}: {}: {e}", path.display()),
            )
        })?;
        let text = Zeroizing::new(text);
        let trimmed = Zeroizing::new(text.trim().to_string());
        if trimmed.is_empty() {
            return Err((
                StoreErrorKind::Forbidden,
                format!("{what}: {} is empty", path.display()),
            ));
        }
        return Ok(trimmed);
    }
    // Wrapped at once, so that the untrimmed copy is wiped too (the environment's own copy
    // is out of reach).
    match std::env::var(var).map(Zeroizing::new) {
        Ok(v) if !v.trim().is_empty() => Ok(Zeroizing::new(v.trim().to_string())),
        _ => Err((
            StoreErrorKind::Forbidden,
            format!("no {what}: set {var} or name a file in the store's `auth`"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_when_less_than_half_the_lease_is_left() {
        let mut s = Session::default();
        s.set_lease(100, true);
        assert!(!s.needs_refresh(Instant::now()));
        assert!(s.needs_refresh(Instant::now() + Duration::from_secs(51)));
        let mut root = Session::default();
        root.set_lease(0, false);
        assert!(!root.needs_refresh(Instant::now() + Duration::from_secs(1_000_000)));
    }

    #[test]
    fn credentials_from_files_are_trimmed_and_errors_name_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "tok-123\n").unwrap();
        assert_eq!(
            read_credential(Some(&f), "X", "token").unwrap().as_str(),
            "tok-123"
        );
        std::fs::write(&f, "\n").unwrap();
        let (kind, msg) = read_credential(Some(&f), "X", "token").unwrap_err();
        assert_eq!(kind, StoreErrorKind::Forbidden);
        assert!(msg.contains("is empty"), "{msg}");
        let (_, msg) =
            read_credential(None, "AGENTBAK_SURELY_UNSET_TOKEN_VAR", "token").unwrap_err();
        assert!(msg.contains("AGENTBAK_SURELY_UNSET_TOKEN_VAR"), "{msg}");
    }
}
