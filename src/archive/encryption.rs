//! age recipients (for writing) and identities (for reading).
//!
//! Recipients are public keys: `age1…` (X25519) or `ssh-ed25519 …` / `ssh-rsa …`. They may be
//! shown in errors. An identity is a private key: an age identity file (`AGE-SECRET-KEY-1…`
//! lines, `#` comments) or an unencrypted OpenSSH private key. Its bytes arrive as a
//! [`Secret`] (from a file, or from a store through a handle) and no error ever quotes them.

use std::io::BufReader;
use std::path::Path;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// Parsed age recipients of an archive.
pub struct Recipients(Vec<Box<dyn age::Recipient + Send>>);

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recipients({})", self.0.len())
    }
}

impl Recipients {
    /// Parses recipients as the manifest's `encryption.recipients` lists them.
    pub fn parse<S: AsRef<str>>(recipients: &[S]) -> Result<Recipients> {
        if recipients.is_empty() {
            return Err(Error::Recipient {
                recipient: String::new(),
                reason:
                    "no recipients: encryption needs at least one `age1…` or `ssh-ed25519 …` key"
                        .into(),
            });
        }
        let mut out: Vec<Box<dyn age::Recipient + Send>> = Vec::new();
        for text in recipients {
            let text = text.as_ref().trim();
            let bad = |reason: String| Error::Recipient {
                recipient: text.to_string(),
                reason,
            };
            if text.starts_with("age1") {
                let r = text
                    .parse::<age::x25519::Recipient>()
                    .map_err(|e| bad(e.to_string()))?;
                out.push(Box::new(r));
            } else if text.starts_with("ssh-") {
                let r = text
                    .parse::<age::ssh::Recipient>()
                    .map_err(|e| bad(format!("{e:?}")))?;
                out.push(Box::new(r));
            } else {
                return Err(bad(
                    "expected an age X25519 key (`age1…`) or an SSH public key (`ssh-ed25519 …`)"
                        .into(),
                ));
            }
        }
        Ok(Recipients(out))
    }

    pub(crate) fn as_dyn(&self) -> impl Iterator<Item = &dyn age::Recipient> {
        self.0.iter().map(|r| r.as_ref() as &dyn age::Recipient)
    }
}

/// A decryption identity: the keys of an age identity file, or one SSH private key.
pub struct Identity(Vec<Box<dyn age::Identity + Send + Sync>>);

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity([REDACTED; {} keys])", self.0.len())
    }
}

const SSH_PRIVATE_KEY: &[u8] = b"-----BEGIN OPENSSH PRIVATE KEY-----";

impl Identity {
    /// Parses an identity. `origin` names where it came from (a path or a handle) for errors.
    pub fn parse(bytes: &Secret, origin: &str) -> Result<Identity> {
        let bad = |reason: &str| Error::Identity {
            origin: origin.to_string(),
            reason: reason.to_string(),
        };
        let data = bytes.expose();
        let start = data
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(0);
        if data[start..].starts_with(SSH_PRIVATE_KEY) {
            let key = age::ssh::Identity::from_buffer(BufReader::new(data), None)
                .map_err(|_| bad("not a readable OpenSSH private key"))?;
            return match key {
                age::ssh::Identity::Unencrypted(_) => Ok(Identity(vec![Box::new(key)])),
                age::ssh::Identity::Encrypted(_) => Err(bad(
                    "the SSH key is passphrase-protected; use an unencrypted copy or an age identity",
                )),
                age::ssh::Identity::Unsupported(_) => {
                    Err(bad("this SSH key type is not supported by age"))
                }
            };
        }
        // IdentityFile's own errors name a line number, never the line's content.
        let file = age::IdentityFile::from_buffer(BufReader::new(data))
            .map_err(|e| bad(&e.to_string()))?;
        let keys = file
            .into_identities()
            .map_err(|_| bad("unsupported identity type"))?;
        if keys.is_empty() {
            return Err(bad("no `AGE-SECRET-KEY-1…` line found"));
        }
        Ok(Identity(keys))
    }

    /// Reads and parses an identity file.
    pub fn from_file(path: &Path) -> Result<Identity> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Identity::parse(&Secret::new(bytes), &path.display().to_string())
    }

    pub(crate) fn as_dyn(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.0.iter().map(|i| i.as_ref() as &dyn age::Identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn recipients_parse_and_refuse_garbage() {
        let id = age::x25519::Identity::generate();
        let r = Recipients::parse(&[id.to_public().to_string()]).unwrap();
        assert_eq!(r.0.len(), 1);
        let err = Recipients::parse(&["nope"]).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        assert!(Recipients::parse::<String>(&[]).is_err());
    }

    #[test]
    fn identity_errors_never_quote_the_key() {
        let id = age::x25519::Identity::generate();
        let key = id.to_string().expose_secret().to_string();
        let good = Identity::parse(&Secret::from(format!("# c\n{key}\n")), "k").unwrap();
        assert!(!format!("{good:?}").contains(&key[15..]));
        let broken = format!("{key}\n{}\n", &key[..40]);
        let err = Identity::parse(&Secret::from(broken), "k").unwrap_err();
        assert!(!err.to_string().contains(&key[15..40]), "{err}");
    }
}
