//! Snapshot signatures: Ed25519 over the sidecar, with rotatable keys and an optional stable
//! identity that certifies them (`docs/signing.md`).
//!
//! What is signed: the sidecar's exact JSON without its `signature` field, behind a domain
//! prefix ([`snapshot_message`]). The sidecar holds the archive's size and blake3, and the
//! archive holds every byte restore writes and its index, every instruction restore follows;
//! so one signature over the sidecar commits to all of it, and it can be checked before a
//! single entry is read. A changed tag, host or count breaks it too: nothing in a signed
//! sidecar is left for a repository writer to edit.
//!
//! Keys: a signing key is an Ed25519 private key held in a store, in PKCS#8 PEM (as
//! `openssl genpkey -algorithm ed25519` writes it) or OpenSSH format, or a key of the
//! Vault/OpenBao transit engine. Each signature records who signed (`signer`), the key's
//! version, and its public key. A verifier never takes that public key on the record's word:
//! it derives the trusted key itself (from the store's version, the transit key's exported
//! public keys, or a certificate by an identity key it trusts) and compares.
//!
//! A *certificate* is an identity key's signature over one signing key ([`certificate_message`]:
//! agent, signer, version, public key). The identity key never rotates; signing keys do. A
//! verifier that knows only the identity's public key (`signing.trust`) checks the
//! certificate, then the snapshot's signature with the certified key.
//!
//! Invariants: private keys live in [`ed25519_dalek::SigningKey`] (zeroized on drop) and are
//! parsed from [`Secret`]s; no error here carries key material or the parser's view of it.
//! No cryptography is written here: Ed25519 is `ed25519-dalek`'s, key containers are
//! `pkcs8`'s and `ssh-key`'s.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The algorithm name recorded in signatures.
pub const ALGORITHM: &str = "ed25519";

/// The prefix of a public key in its text form (`ed25519:BASE64`).
const PUBLIC_PREFIX: &str = "ed25519:";

/// Domain separation: a signature over a snapshot can never pass for a certificate, nor the
/// other way round, nor for anything another program signs with the same key.
const SNAPSHOT_DOMAIN: &[u8] = b"agentbak snapshot signature v1\n";
const CERTIFICATE_DOMAIN: &[u8] = b"agentbak signing key certificate v1\n";

/// A snapshot's signature, as the sidecar records it. Holds public material only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Always `ed25519`.
    #[cfg_attr(feature = "schema", schemars(extend("const" = ALGORITHM)))]
    pub algorithm: String,
    /// Who signed: the key's handle (`local:agents/kevin/signing#private_key`) or the transit
    /// key (`transit:STORE/MOUNT/NAME`).
    pub signer: String,
    /// The signing key's version (the store's version of the handle, or the transit key's).
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub version: u64,
    /// The signing key's public key, `ed25519:BASE64` (informative: verifiers derive it).
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::archive::wellformed::PUBLIC_KEY))
    )]
    pub public_key: String,
    /// The Ed25519 signature of the sidecar without this field, base64.
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::archive::wellformed::SIGNATURE))
    )]
    pub value: String,
    /// The identity key's certificate of the signing key, when `signing.identity` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Certificate>,
}

/// An identity key's statement that a signing key (signer, version, public key) is the
/// agent's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// The identity's public key, `ed25519:BASE64`.
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::archive::wellformed::PUBLIC_KEY))
    )]
    pub identity: String,
    /// The identity's Ed25519 signature of the signing key (agent, signer, version, public
    /// key), base64.
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::archive::wellformed::SIGNATURE))
    )]
    pub value: String,
}

/// What can go wrong with a key or a signature; never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// A private key that is not an unencrypted Ed25519 key in a known container.
    #[error(
        "{0}: expected an Ed25519 private key in PKCS#8 PEM (`openssl genpkey -algorithm \
         ed25519`) or unencrypted OpenSSH format (`ssh-keygen -t ed25519 -N ''`)"
    )]
    PrivateKey(&'static str),
    /// A public key that is not `ed25519:BASE64` or `ssh-ed25519 AAAA…`.
    #[error("public key `{0}`: expected `ed25519:BASE64` (32 bytes) or `ssh-ed25519 AAAA…`")]
    PublicKey(String),
    /// A signature that does not verify, or is not 64 bytes of base64.
    #[error("{0}")]
    Invalid(String),
}

/// Parses an Ed25519 private key from a store value: PKCS#8 PEM or OpenSSH.
pub fn parse_private_key(value: &Secret) -> Result<SigningKey, SigningError> {
    let text = value
        .expose_str()
        .ok_or(SigningError::PrivateKey("the value is not text"))?
        .trim();
    if text.starts_with("-----BEGIN PRIVATE KEY-----") {
        return SigningKey::from_pkcs8_pem(text)
            .map_err(|_| SigningError::PrivateKey("not an Ed25519 PKCS#8 key"));
    }
    if text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
        let key = ssh_key::PrivateKey::from_openssh(text)
            .map_err(|_| SigningError::PrivateKey("an OpenSSH key that does not parse"))?;
        if key.is_encrypted() {
            return Err(SigningError::PrivateKey(
                "a passphrase-protected OpenSSH key (the store protects it; store it without one)",
            ));
        }
        let pair = key.key_data().ed25519().ok_or(SigningError::PrivateKey(
            "an OpenSSH key of another algorithm",
        ))?;
        return Ok(SigningKey::from_bytes(&pair.private.to_bytes()));
    }
    Err(SigningError::PrivateKey("an unknown key format"))
}

/// The text form of a public key: `ed25519:BASE64`.
pub fn public_key_text(key: &VerifyingKey) -> String {
    format!("{PUBLIC_PREFIX}{}", B64.encode(key.as_bytes()))
}

/// Parses a public key: `ed25519:BASE64` or an OpenSSH public key line (`ssh-ed25519 AAAA…
/// [comment]`).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, SigningError> {
    let bad = || SigningError::PublicKey(text.to_string());
    let text = text.trim();
    let bytes: [u8; 32] = if let Some(b64) = text.strip_prefix(PUBLIC_PREFIX) {
        B64.decode(b64)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?
    } else if text.starts_with("ssh-ed25519 ") {
        let key = ssh_key::PublicKey::from_openssh(text).map_err(|_| bad())?;
        key.key_data().ed25519().ok_or_else(bad)?.0
    } else {
        return Err(bad());
    };
    VerifyingKey::from_bytes(&bytes).map_err(|_| bad())
}

/// The bytes a snapshot signature covers: a domain prefix, then the sidecar's JSON without
/// its signature (`Sidecar::unsigned_json`).
pub fn snapshot_message(unsigned_sidecar: &[u8]) -> Vec<u8> {
    [SNAPSHOT_DOMAIN, unsigned_sidecar].concat()
}

/// The bytes a certificate covers: one line each for the agent, the signer, the version and
/// the public key.
pub fn certificate_message(agent: &str, signer: &str, version: u64, public_key: &str) -> Vec<u8> {
    let body = format!("agent {agent}\nsigner {signer}\nversion {version}\nkey {public_key}\n");
    [CERTIFICATE_DOMAIN, body.as_bytes()].concat()
}

/// Signs `message` with `key`: base64 of the 64-byte signature.
pub fn sign(key: &SigningKey, message: &[u8]) -> String {
    B64.encode(key.sign(message).to_bytes())
}

/// Checks a base64 signature over `message` by `key` (strict Ed25519: no malleable or
/// small-order forms).
pub fn verify(key: &VerifyingKey, message: &[u8], value: &str) -> Result<(), SigningError> {
    let bytes: [u8; 64] = B64
        .decode(value.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| SigningError::Invalid("the signature is not 64 bytes of base64".into()))?;
    let signature = ed25519_dalek::Signature::from_bytes(&bytes);
    key.verify_strict(message, &signature)
        .map_err(|_| SigningError::Invalid("the signature does not match".into()))
}

impl Certificate {
    /// Makes the identity's certificate of a signing key.
    pub fn issue(
        identity: &SigningKey,
        agent: &str,
        signer: &str,
        version: u64,
        public_key: &str,
    ) -> Certificate {
        Certificate {
            identity: public_key_text(&identity.verifying_key()),
            value: sign(
                identity,
                &certificate_message(agent, signer, version, public_key),
            ),
        }
    }

    /// Checks this certificate against the identity keys a verifier trusts; returns the
    /// certified signing key.
    pub fn check(
        &self,
        trusted: &[VerifyingKey],
        agent: &str,
        signature: &Signature,
    ) -> Result<VerifyingKey, SigningError> {
        // The sidecar's text is a repository writer's choice: named, never quoted, until it
        // parses as a public key.
        let identity = parse_public_key(&self.identity).map_err(|_| {
            SigningError::Invalid("the certificate's identity is not an Ed25519 public key".into())
        })?;
        if !trusted.contains(&identity) {
            return Err(SigningError::Invalid(format!(
                "the signing key is certified by identity {}, which `signing.trust` does not list",
                self.identity
            )));
        }
        let message = certificate_message(
            agent,
            &signature.signer,
            signature.version,
            &signature.public_key,
        );
        verify(&identity, &message, &self.value).map_err(|_| {
            SigningError::Invalid(format!(
                "the certificate by identity {} does not match the signing key",
                self.identity
            ))
        })?;
        parse_public_key(&signature.public_key).map_err(|_| {
            SigningError::Invalid("the signature's public key is not an Ed25519 public key".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8032 test 1's key, as `openssl pkey` writes it, and the same key in OpenSSH form.
    const PKCS8: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
        -----END PRIVATE KEY-----\n";

    fn key() -> SigningKey {
        parse_private_key(&Secret::from_slice(PKCS8.as_bytes())).unwrap()
    }

    #[test]
    fn pkcs8_pem_gives_the_rfc8032_key() {
        assert_eq!(
            hex(key().verifying_key().as_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }

    #[test]
    fn openssh_keys_parse_to_the_same_key() {
        let pair = ssh_key::private::Ed25519Keypair::from_seed(&key().to_bytes());
        let pem = ssh_key::PrivateKey::from(pair)
            .to_openssh(ssh_key::LineEnding::LF)
            .unwrap();
        let parsed = parse_private_key(&Secret::from_slice(pem.as_bytes())).unwrap();
        assert_eq!(parsed.verifying_key(), key().verifying_key());
        let private = ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(
            &key().to_bytes(),
        ));
        let line = ssh_key::PublicKey::from(&private).to_openssh().unwrap();
        assert_eq!(parse_public_key(&line).unwrap(), key().verifying_key());
    }

    #[test]
    fn other_values_are_refused_without_echoing_them() {
        for bad in [
            "hunter2-not-a-key",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        ] {
            let err = parse_private_key(&Secret::from_slice(bad.as_bytes())).unwrap_err();
            assert!(!err.to_string().contains("hunter2"), "{err}");
            assert!(!err.to_string().contains("AAAA"), "{err}");
        }
    }

    #[test]
    fn a_signature_covers_every_byte_and_its_domain() {
        let k = key();
        let message = snapshot_message(b"{\"id\":\"x\"}\n");
        let value = sign(&k, &message);
        verify(&k.verifying_key(), &message, &value).unwrap();
        let mut changed = message.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert!(verify(&k.verifying_key(), &changed, &value).is_err());
        // The same bytes as a certificate body do not verify as a snapshot, and back.
        let as_cert = [CERTIFICATE_DOMAIN, b"{\"id\":\"x\"}\n"].concat();
        assert!(verify(&k.verifying_key(), &as_cert, &value).is_err());
        assert!(verify(&k.verifying_key(), &message, "AAAA").is_err());
    }

    #[test]
    fn certificates_bind_agent_signer_version_and_key() {
        let identity = key();
        let signing = SigningKey::from_bytes(&[7; 32]);
        let public = public_key_text(&signing.verifying_key());
        let sig = Signature {
            algorithm: ALGORITHM.into(),
            signer: "local:a#k".into(),
            version: 2,
            public_key: public.clone(),
            value: String::new(),
            certificate: None,
        };
        let cert = Certificate::issue(&identity, "kevin", "local:a#k", 2, &public);
        let trusted = [identity.verifying_key()];
        assert_eq!(
            cert.check(&trusted, "kevin", &sig).unwrap(),
            signing.verifying_key()
        );
        assert!(cert.check(&trusted, "alice", &sig).is_err());
        assert!(cert.check(&[], "kevin", &sig).is_err());
        let other_version = Signature {
            version: 3,
            ..sig.clone()
        };
        assert!(cert.check(&trusted, "kevin", &other_version).is_err());
        let other_key = Signature {
            public_key: public_key_text(&SigningKey::from_bytes(&[8; 32]).verifying_key()),
            ..sig
        };
        assert!(cert.check(&trusted, "kevin", &other_key).is_err());
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }
}
