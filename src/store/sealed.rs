//! An age-encrypted JSON document on disk: the file format of the local store and the cache.
//!
//! Invariants:
//! - The plaintext exists only in memory, in zeroized buffers; the file on disk is always a
//!   complete age file: a write goes to a temporary file in the same folder (`0600`, created
//!   exclusively), is synced, renamed over the target, and the folder is synced.
//! - Writers are serialized by an exclusive `flock` on `<file>.lock`, held from the read to the
//!   rename, so two concurrent read-modify-write cycles cannot lose an update.
//! - The identity is created on first use (`0600`, exclusively, so two first users agree on
//!   one key) in the age-keygen format, so `age -d -i IDENTITY FILE` opens the file by hand.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use crate::secret::Secret;

/// An age-encrypted file and the identity that opens it.
#[derive(Debug, Clone)]
pub(super) struct SealedFile {
    path: PathBuf,
    identity: PathBuf,
}

/// An I/O or crypto failure, as text that names the file and never a value.
pub(super) type SealError = String;

impl SealedFile {
    pub(super) fn new(path: &Path, identity: &Path) -> SealedFile {
        SealedFile {
            path: path.to_path_buf(),
            identity: identity.to_path_buf(),
        }
    }

    /// The decrypted contents, or `None` when the file does not exist yet.
    pub(super) fn read(&self) -> Result<Option<Zeroizing<Vec<u8>>>, SealError> {
        let ciphertext = match fs::read(&self.path) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", self.path.display())),
        };
        let identity = self.load_identity(false)?.ok_or_else(|| {
            format!(
                "{} exists but its identity {} is missing",
                self.path.display(),
                self.identity.display()
            )
        })?;
        let plain = age::decrypt(&identity, &ciphertext).map_err(|e| {
            format!(
                "{}: cannot decrypt with identity {}: {e}",
                self.path.display(),
                self.identity.display()
            )
        })?;
        Ok(Some(Zeroizing::new(plain)))
    }

    /// Read-modify-write under the file lock: `change` gets the current plaintext (if any) and
    /// returns the new plaintext, or `None` to leave the file untouched.
    pub(super) fn update<T>(
        &self,
        change: impl FnOnce(Option<&[u8]>) -> Result<(Option<Zeroizing<Vec<u8>>>, T), SealError>,
    ) -> Result<T, SealError> {
        let _lock = self.lock()?;
        let current = self.read()?;
        let (next, out) = change(current.as_ref().map(|c| c.as_slice()))?;
        if let Some(plain) = next {
            let identity = self
                .load_identity(true)?
                .ok_or_else(|| format!("cannot create identity {}", self.identity.display()))?;
            let ciphertext = age::encrypt(&identity.to_public(), &plain)
                .map_err(|e| format!("{}: cannot encrypt: {e}", self.path.display()))?;
            write_atomic(&self.path, &ciphertext)?;
        }
        Ok(out)
    }

    fn lock(&self) -> Result<File, SealError> {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".lock");
        let lock_path = PathBuf::from(name);
        ensure_parent(&lock_path)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| format!("{}: {e}", lock_path.display()))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| format!("{}: cannot lock: {e}", lock_path.display()))?;
        Ok(file)
    }

    fn load_identity(&self, create: bool) -> Result<Option<age::x25519::Identity>, SealError> {
        let shown = self.identity.display();
        let text = match fs::read(&self.identity) {
            Ok(t) => Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                return create_identity(&self.identity).map(Some);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{shown}: {e}")),
        };
        let text = std::str::from_utf8(&text).map_err(|_| format!("{shown}: not UTF-8"))?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .ok_or_else(|| format!("{shown}: no `AGE-SECRET-KEY-` line"))?;
        age::x25519::Identity::from_str(line)
            .map(Some)
            .map_err(|_| format!("{shown}: not a valid age identity"))
    }
}

/// Creates a new identity file exclusively; if another process won the race, uses its key.
fn create_identity(path: &Path) -> Result<age::x25519::Identity, SealError> {
    ensure_parent(path)?;
    let identity = age::x25519::Identity::generate();
    let text = Zeroizing::new(format!(
        "# created: {}\n# public key: {}\n{}\n",
        Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        identity.to_public(),
        identity.to_string().expose_secret()
    ));
    let opened = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match opened {
        Ok(mut f) => {
            f.write_all(text.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            sync_parent(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(identity)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let other = SealedFile::new(path, path);
            other
                .load_identity(false)?
                .ok_or_else(|| format!("{}: vanished while created", path.display()))
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn ensure_parent(path: &Path) -> Result<(), SealError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    Ok(())
}

use std::os::unix::fs::DirBuilderExt;

/// Temp file (exclusive, `0600`) + fsync + rename + fsync of the folder.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SealError> {
    ensure_parent(path)?;
    write_file_atomic(path, bytes, 0o600).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes `bytes` to `path` through a temporary file in the same folder (created exclusively
/// with `mode`), fsync, rename over `path`, and fsync of the folder: readers see the old file
/// or the new one, never a part.
pub(crate) fn write_file_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{file_name}.tmp-{}-{:x}",
        std::process::id(),
        super::jitter_seed()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_parent(path)
}

/// Fsyncs the folder that holds `path`, so a rename or a new file in it survives a crash.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all())
}

/// A [`Secret`] that serializes as base64 inside the sealed document, so values keep every byte.
#[derive(Clone, Debug)]
pub(super) struct SealedValue(pub Secret);

impl serde::Serialize for SealedValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let encoded =
            Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.0.expose()));
        s.serialize_str(&encoded)
    }
}

impl<'de> serde::Deserialize<'de> for SealedValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let encoded = Zeroizing::new(String::deserialize(d)?);
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_bytes())
            .map(|v| SealedValue(Secret::new(v)))
            .map_err(|_| serde::de::Error::custom("a stored value is not valid base64"))
    }
}

/// Serializes a document into a zeroized buffer.
pub(super) fn to_plain<T: serde::Serialize>(doc: &T) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let mut buf = Zeroizing::new(Vec::with_capacity(4096));
    serde_json::to_writer(&mut *buf, doc).map_err(|e| format!("cannot serialize: {e}"))?;
    Ok(buf)
}

/// Parses a document; the error names the file and the position, never the content.
pub(super) fn from_plain<T: serde::de::DeserializeOwned>(
    plain: &[u8],
    file: &Path,
) -> Result<T, SealError> {
    serde_json::from_slice(plain).map_err(|e| {
        format!(
            "{}: corrupt contents at line {} column {}",
            file.display(),
            e.line(),
            e.column()
        )
    })
}

/// Times are kept as microseconds since the epoch (no serde feature of chrono needed).
pub(super) fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The inverse of [`to_micros`].
pub(super) fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Reads a whole file into a zeroized buffer (for callers that hold values in files).
pub(crate) fn read_zeroized(path: &Path) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::new());
    File::open(path)?.read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn round_trip_creates_identity_and_file_0600() {
        let dir = tempfile::tempdir().unwrap();
        let file = SealedFile::new(&dir.path().join("s/x.age"), &dir.path().join("k/x.key"));
        assert!(file.read().unwrap().is_none());
        file.update(|old| {
            assert!(old.is_none());
            Ok((Some(Zeroizing::new(b"hello-plain".to_vec())), ()))
        })
        .unwrap();
        assert_eq!(file.read().unwrap().unwrap().as_slice(), b"hello-plain");
        for p in ["s/x.age", "k/x.key"] {
            let mode = fs::metadata(dir.path().join(p))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{p}");
        }
        let raw = fs::read(dir.path().join("s/x.age")).unwrap();
        assert!(!raw.windows(11).any(|w| w == b"hello-plain"));
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("s"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_wrong_identity_is_an_error_not_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let a = SealedFile::new(&dir.path().join("x.age"), &dir.path().join("a.key"));
        a.update(|_| Ok((Some(Zeroizing::new(b"{}".to_vec())), ())))
            .unwrap();
        let b = SealedFile::new(&dir.path().join("x.age"), &dir.path().join("b.key"));
        create_identity(&dir.path().join("b.key")).unwrap();
        let err = b.read().unwrap_err();
        assert!(err.contains("cannot decrypt"), "{err}");
    }
}
