//! `export`: one snapshot as one self-contained archive file, for a migration or an off-site
//! copy: `FILE.tar.zst` (age-encrypted to the manifest's recipients as `FILE.tar.zst.age`),
//! which stock `zstd -d | tar -x` opens, with a format-1 sidecar beside it (`FILE.json`),
//! which `restore --from FILE` checks.
//!
//! The snapshot's signature is checked before anything is written, and every file is checked
//! against its index while the archive is written (the stream goes through the archive
//! reader on its way out), so an export is never a copy of damage. The new sidecar is signed
//! again when the manifest configures `signing`: it vouches for a file whose content was just
//! checked against a signed tree.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::archive::{
    ArchiveEntry, EntryData, EntryVisitor, HashingWriter, Identity, ReadOptions, Recipients,
    SIDECAR_FORMAT, Sidecar, hex, read_archive,
};
use crate::error::{Error, Report, Result};
use crate::manifest::Manifest;
use crate::ops::trust::{SignatureStatus, SignatureVerifier};
use crate::repo::Repository;
use crate::repo::rebuild::with_content;
use crate::repo::{ENCRYPTED_SUFFIX, PLAIN_SUFFIX};
use crate::store::Stores;

/// What `export` wrote.
#[derive(Debug, Serialize)]
pub struct ExportReport {
    /// The snapshot.
    pub snapshot: String,
    /// The archive file.
    pub file: PathBuf,
    /// Its sidecar.
    pub sidecar: PathBuf,
    /// The archive's size.
    pub size: u64,
    /// Whether it is age-encrypted.
    pub encrypted: bool,
    /// The source snapshot's signature.
    pub signature: SignatureStatus,
    /// Whether the new sidecar is signed.
    pub signed: bool,
    /// What deserves attention (exit 3).
    pub warnings: Vec<String>,
}

impl Report for ExportReport {
    fn exit_code(&self) -> crate::error::ExitCode {
        if self.warnings.is_empty() {
            crate::error::ExitCode::Success
        } else {
            crate::error::ExitCode::Warnings
        }
    }
}

/// What `export` needs besides the snapshot.
pub struct ExportOptions<'a> {
    /// The manifest (recipients, signing).
    pub manifest: &'a Manifest,
    /// Its stores (the signing key).
    pub stores: &'a Stores,
    /// The identity, when the repository is encrypted.
    pub identity: Option<&'a Identity>,
    /// Accept an unsigned snapshot although the manifest configures signing.
    pub allow_unsigned: bool,
}

/// Writes snapshot `sidecar` of `repo` to `out` (and its sidecar beside it).
pub fn export(
    repo: &Repository,
    sidecar: &Sidecar,
    out: &Path,
    options: &ExportOptions<'_>,
) -> Result<ExportReport> {
    let m = options.manifest;
    let verifier = SignatureVerifier::new(m, options.stores);
    let signature = verifier.check(sidecar, options.allow_unsigned)?;
    let recipients = match &m.encryption {
        Some(e) => Some(Recipients::parse(&e.recipients)?),
        None => None,
    };
    let sidecar_path = sidecar_path(out);
    for path in [out, sidecar_path.as_path()] {
        if path.exists() {
            return Err(Error::io(
                path,
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "will not replace an existing file",
                ),
            ));
        }
    }
    let partial = out.with_file_name(format!(
        ".{}.partial",
        out.file_name()
            .map_or_else(|| "export".into(), |n| n.to_string_lossy())
    ));
    let result = write(
        repo,
        sidecar,
        out,
        &partial,
        recipients.as_ref(),
        options.identity,
    );
    let (size, blake3) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = fs::remove_file(&partial);
            return Err(e);
        }
    };
    fs::rename(&partial, out).map_err(|e| Error::io(out, e))?;
    let encrypted = recipients.is_some();
    let mut exported = Sidecar {
        format: SIDECAR_FORMAT,
        archive: format!(
            "{}{}",
            sidecar.id,
            if encrypted {
                ENCRYPTED_SUFFIX
            } else {
                PLAIN_SUFFIX
            }
        ),
        size,
        blake3,
        encrypted,
        tree: None,
        stored: None,
        chunk_key: None,
        signature: None,
        ..sidecar.clone()
    };
    let mut warnings = Vec::new();
    if m.signing.is_some() {
        match crate::ops::trust::sign(m, options.stores, &exported) {
            Ok(sig) => exported.signature = Some(sig),
            Err(e) => warnings.push(format!(
                "the exported sidecar is not signed ({e}); `restore --from` then needs \
                 --allow-unsigned"
            )),
        }
    }
    write_new(&sidecar_path, &exported.to_json())?;
    Ok(ExportReport {
        snapshot: sidecar.id.clone(),
        file: out.to_path_buf(),
        sidecar: sidecar_path,
        size,
        encrypted,
        signed: exported.signature.is_some(),
        signature,
        warnings,
    })
}

/// `FILE.json` beside `FILE`.
pub fn sidecar_path(archive: &Path) -> PathBuf {
    let mut name = archive.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// Writes the archive stream into `partial`, through age when `recipients` are given, while
/// the archive reader checks every entry; returns the file's size and blake3.
fn write(
    repo: &Repository,
    sidecar: &Sidecar,
    out: &Path,
    partial: &Path,
    recipients: Option<&Recipients>,
    identity: Option<&Identity>,
) -> Result<(u64, String)> {
    let _ = fs::remove_file(partial);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(partial)
        .map_err(|e| Error::io(partial, e))?;
    let hashed = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, file));
    let mut sink = match recipients {
        None => Sink::Plain(hashed),
        Some(recipients) => {
            let encryptor = age::Encryptor::with_recipients(recipients.as_dyn()).map_err(|e| {
                Error::Recipient {
                    recipient: String::new(),
                    reason: e.to_string(),
                }
            })?;
            Sink::Age(
                encryptor
                    .wrap_output(hashed)
                    .map_err(|e| Error::io(partial, e))?,
            )
        }
    };
    let name = sidecar.id.clone();
    with_content(repo, sidecar, identity, |input| {
        let mut tee = Tee {
            inner: input,
            out: &mut sink,
            error: None,
        };
        let read = ReadOptions {
            name: name.clone(),
            expected: sidecar.content_digest(),
            identity,
            max_bytes: Some(sidecar.counts.bytes),
        };
        let report = read_archive(&mut tee, &read, &mut Skip)?;
        if let Some(e) = tee.error {
            return Err(Error::io(out, e));
        }
        report.ensure_clean(&name)
    })?;
    let hashed = match sink {
        Sink::Plain(hashed) => hashed,
        Sink::Age(w) => w.finish().map_err(|e| Error::io(partial, e))?,
    };
    let (buf, size, digest) = hashed.into_parts();
    let file = buf
        .into_inner()
        .map_err(|e| Error::io(partial, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(partial, e))?;
    Ok((size, hex(&digest)))
}

type Hashed = HashingWriter<io::BufWriter<File>>;

/// Where the exported stream goes.
enum Sink {
    Plain(Hashed),
    Age(age::stream::StreamWriter<Hashed>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Age(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Age(w) => w.flush(),
        }
    }
}

/// Writes a new private file.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// Takes no entry's content: the reader hashes and checks each one.
struct Skip;

impl EntryVisitor for Skip {
    fn visit(&mut self, _: &ArchiveEntry, _: &mut EntryData<'_>) -> Result<()> {
        Ok(())
    }
}

/// Copies what is read to `out`; a write error is kept for after the read.
struct Tee<'a> {
    inner: &'a mut (dyn Read + Send),
    out: &'a mut Sink,
    error: Option<io::Error>,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.error.is_none()
            && let Err(e) = self.out.write_all(&buf[..n])
        {
            self.error = Some(e);
        }
        Ok(n)
    }
}
