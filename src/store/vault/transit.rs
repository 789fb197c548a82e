//! The transit engine of a Vault/OpenBao store: sign with a key the server keeps, and read the
//! public keys of its versions (`docs/signing.md`).
//!
//! Signatures come back as `vault:vN:BASE64`; for an `ed25519` key without `prehashed` the
//! base64 is the plain 64-byte Ed25519 signature over the input, so anyone with the public key
//! checks it offline. Public keys are read from the key's description (`GET
//! transit/keys/NAME`), which also tells the oldest version the engine still accepts.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use vaultrs::api::transit::responses::ReadKeyData;

use super::{VaultStore, errors};
use crate::store::{StoreError, StoreErrorKind, Transit, TransitKeys};

impl Transit for VaultStore {
    fn sign(&self, mount: &str, name: &str, message: &[u8]) -> Result<(u64, String), StoreError> {
        let at = format!("{mount}/keys/{name}");
        let input = B64.encode(message);
        let answer = self.run(&at, |client| async move {
            vaultrs::transit::data::sign(&*client, mount, name, &input, None)
                .await
                .map_err(|e| errors::classify(&e))
        })?;
        parse_signature(&answer.signature).ok_or_else(|| {
            self.err(
                &at,
                (
                    StoreErrorKind::Other,
                    "the transit engine answered a signature that is not `vault:vN:BASE64` of \
                     64 bytes (is the key of type ed25519?)"
                        .into(),
                ),
            )
        })
    }

    fn public_keys(&self, mount: &str, name: &str) -> Result<TransitKeys, StoreError> {
        let at = format!("{mount}/keys/{name}");
        let key = self.run(&at, |client| async move {
            vaultrs::transit::key::read(&*client, mount, name)
                .await
                .map_err(|e| errors::classify(&e))
        })?;
        let ReadKeyData::Asymmetric(versions) = key.keys else {
            return Err(self.err(
                &at,
                (
                    StoreErrorKind::Other,
                    "the transit key is symmetric; signing needs a key of type ed25519".into(),
                ),
            ));
        };
        let keys = versions
            .into_iter()
            .filter_map(|(v, entry)| Some((v.parse().ok()?, entry.public_key)))
            .collect();
        Ok(TransitKeys {
            keys,
            min_version: key.min_decryption_version,
        })
    }
}

/// `vault:vN:BASE64` → (N, BASE64) when BASE64 is 64 bytes.
fn parse_signature(text: &str) -> Option<(u64, String)> {
    let (version, b64) = text.strip_prefix("vault:v")?.split_once(':')?;
    let version = version.parse().ok()?;
    (B64.decode(b64).ok()?.len() == 64).then(|| (version, b64.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_parse_with_their_version() {
        let sig = B64.encode([1u8; 64]);
        assert_eq!(
            parse_signature(&format!("vault:v3:{sig}")),
            Some((3, sig.clone()))
        );
        assert_eq!(
            parse_signature(&format!("vault:v3:{}", B64.encode([1u8; 32]))),
            None
        );
        assert_eq!(parse_signature(&format!("vault:vx:{sig}")), None);
        assert_eq!(parse_signature(&format!("v3:{sig}")), None);
    }
}
