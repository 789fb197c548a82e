//! Writing one attempt's archive: every entry of the walk, redacted, into the tar + zstd
//! (+ age) stream, while the leak gate scans the exact tar stream on its own thread.
//!
//! Rule files are archived from the bytes the known values were read from when they were
//! kept ([`Known::take_held`]); one read again must still hold those values, else the attempt
//! stops with [`Changed`] and the caller starts over (the gate would search for stale values).
//! Other text files up to [`MAX_IN_MEMORY`] are read whole, so stray known values become
//! placeholders; larger ones stream from disk, and the gate still sees every byte.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::sync::Arc;

use zeroize::{Zeroize, Zeroizing};

use super::known::{Changed, Known};
use super::rules::Rules;
use super::{MAX_IN_MEMORY, Redacted, SnapshotReport, gate};
use crate::archive::{
    ArchiveWriter, Body, Counts, EntryMeta, INDEX_PATH, Recipients, SecretLocation, SnapshotInfo,
    WriterOptions, default_threads,
};
use crate::detect::{Detector, Finding, NameMasks, Severity};
use crate::error::{Error, Result};
use crate::manifest::{Locator, Manifest};
use crate::ops::walk::{Entry, EntryKind, Walk};
use crate::redact::{
    Blocker, RedactWarning, Replacement, Rule, Source, StrayMatcher, StrayReader, WarningKind,
    is_binary, redact_file_with,
};

/// What the archive stream came to.
pub(super) struct Archived {
    /// Size of the archive.
    pub size: u64,
    /// Its blake3, lowercase hex.
    pub blake3: String,
    /// What it holds.
    pub counts: Counts,
    /// Whether every file went in whole (a large file that changed size did not).
    pub complete: bool,
    /// The files archived as text (redacted): where a finding can be captured.
    pub text_files: BTreeSet<String>,
}

/// Everything one attempt writes with.
pub(super) struct Input<'a> {
    pub m: &'a Manifest,
    pub rules: &'a Rules,
    pub walked: &'a Walk,
    pub recipients: Option<&'a Recipients>,
    pub masks: &'a NameMasks,
    /// The rules the tar stream's gate leaves out (it is binary), run on each text file.
    pub text_rules: Option<&'a Detector>,
    pub info: SnapshotInfo,
    /// How the sink is named in errors (the temporary file, or `<dry run>`).
    pub name: String,
    /// Advanced by each file's size as it is done.
    pub progress: Option<&'a indicatif::ProgressBar>,
}

/// Writes the archive into `sink` and fills the report's redactions, findings and counts.
pub(super) fn write(
    input: Input<'_>,
    known: &mut Known,
    detector: Arc<Detector>,
    sink: &mut dyn Write,
    report: &mut SnapshotReport,
) -> Result<Result<Archived, Changed>> {
    let writer_options = WriterOptions {
        level: input.m.compression.level,
        threads: default_threads(),
        recipients: input.recipients,
        name: input.name.clone(),
    };
    let gate = gate::Gate::new(detector);
    let mut observer = gate.clone();
    let writer = ArchiveWriter::new(sink, &writer_options, Some(&mut observer))?;
    let name = input.name.clone();
    let written = match write_entries(input, known, &gate, writer, None, report)? {
        Ok(written) => written,
        Err(changed) => return Ok(Err(changed)),
    };
    drop(observer);
    gate_verdict(gate, report, &written.blockers);
    let (sink, size, digest) = written.closed;
    sink.flush().map_err(|e| Error::io(&name, e))?;
    report.archive_size = size;
    report.new_bytes = written.counts.bytes;
    Ok(Ok(Archived {
        size,
        blake3: crate::archive::hex(&digest),
        counts: written.counts,
        complete: written.complete,
        text_files: written.text_files,
    }))
}

/// What one attempt's snapshot into the incremental repository came to.
pub(super) struct Packed {
    /// The chunks, the tree and the new packs, not committed yet.
    pub finished: super::packs::Finished,
    /// Whether every file went in whole.
    pub complete: bool,
    /// The files read as text: where a finding can be captured.
    pub text_files: BTreeSet<String>,
}

/// Writes the snapshot into the incremental repository through `chunker`, taking unchanged
/// files from `cache`; fills the report as [`write`] does.
pub(super) fn write_packs(
    input: Input<'_>,
    known: &mut Known,
    detector: Arc<Detector>,
    chunker: super::packs::Chunker<'_>,
    cache: Option<&super::cache::FilesCache>,
    report: &mut SnapshotReport,
) -> Result<Result<Packed, Changed>> {
    let gate = gate::Gate::new(detector);
    let mut observer = gate.clone();
    let writer = ArchiveWriter::with_body(chunker, Some(&mut observer), input.name.clone());
    let mut reuse = |entry: &Entry, chunker: &mut super::packs::Chunker<'_>| {
        let cached = cache?.files.get(&entry.rel)?;
        if cached.stat != entry.stat {
            return None;
        }
        let ids = cached.chunk_ids()?;
        chunker.adopt(&ids).then(|| Unread {
            size: cached.size,
            blake3: cached.blake3.clone(),
            secrets: cached.secrets.clone(),
        })
    };
    let written = match write_entries(input, known, &gate, writer, Some(&mut reuse), report)? {
        Ok(written) => written,
        Err(changed) => return Ok(Err(changed)),
    };
    drop(observer);
    gate_verdict(gate, report, &written.blockers);
    let finished = written.closed.finish(written.index)?;
    report.archive_size = finished.stored_bytes;
    report.new_bytes = finished.new_bytes;
    Ok(Ok(Packed {
        finished,
        complete: written.complete,
        text_files: written.text_files,
    }))
}

/// A file the parent snapshot holds unchanged: its entry, chunks and secret locations come
/// from there, and it is not read.
pub(super) struct Unread {
    /// Its size in the archive (redacted).
    pub size: u64,
    /// The blake3 of that content.
    pub blake3: String,
    /// Its secret locations in the parent snapshot.
    pub secrets: Vec<SecretLocation>,
}

/// Takes a walked file from the parent snapshot, if it can (the incremental repository).
pub(super) type Reuse<'a, B> = &'a mut dyn FnMut(&Entry, &mut B) -> Option<Unread>;

/// What the entries of one attempt came to, with the closed body.
pub(super) struct WrittenEntries<C> {
    pub closed: C,
    pub index: crate::archive::Index,
    pub counts: Counts,
    pub complete: bool,
    pub text_files: BTreeSet<String>,
    pub blockers: Vec<Blocker>,
}

/// Writes every entry of the walk into `writer`, then the index; fills the report's
/// redactions and findings.
pub(super) fn write_entries<B: Body>(
    input: Input<'_>,
    known: &mut Known,
    gate: &gate::Gate,
    mut writer: ArchiveWriter<'_, B>,
    mut reuse: Option<Reuse<'_, B>>,
    report: &mut SnapshotReport,
) -> Result<Result<WrittenEntries<B::Closed>, Changed>> {
    let mut locations = Vec::new();
    let mut blockers: Vec<Blocker> = Vec::new();
    let mut complete = true;
    let mut text_files = BTreeSet::new();
    // File contents, read whole, one file after another; zeroized when the attempt ends.
    let mut read_buf = Zeroizing::new(Vec::new());
    let mut files = 0u64;
    let mut done = |size: u64| {
        if let Some(bar) = input.progress {
            files += 1;
            bar.inc(size);
            bar.set_message(format!("{files} files"));
        }
    };
    for entry in &input.walked.entries {
        let meta = EntryMeta {
            mode: entry.mode,
            mtime: entry.mtime as i64,
        };
        let size = match &entry.kind {
            EntryKind::Dir => {
                gate.begin_entry(&entry.rel);
                writer.append_dir(&entry.rel, meta)?;
                gate.end_entry(0);
                continue;
            }
            EntryKind::Symlink { target } => {
                gate.begin_entry(&entry.rel);
                writer.append_symlink(&entry.rel, meta, target)?;
                gate.end_entry(0);
                continue;
            }
            EntryKind::File { size } => *size,
        };
        let file_rules: Vec<Rule> = input
            .rules
            .for_file(&entry.rel)
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        let database = if is_captured_database(entry, &file_rules) {
            let held = known.take_held_database(&entry.rel);
            match redact_database(entry, held, &file_rules, known, &input) {
                Ok(Ok(database)) => Some(database),
                Ok(Err(changed)) => return Ok(Err(changed)),
                // A backup that does not happen is a failure too: a database SQLite cannot
                // copy or read (damaged, locked too long) goes in as its bytes, through the
                // gate, and says so. One with declared cells cannot: their values are unread.
                Err(e) if file_rules.is_empty() => {
                    report.warnings.push(format!(
                        "{e}; archived as its bytes, not through a consistent copy"
                    ));
                    None
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            None
        };
        if let Some(mut archived) = database {
            gate.begin_entry(&entry.rel);
            let image = archived.copy.image().map_err(|reason| Error::Entry {
                path: entry.rel.clone(),
                reason,
            })?;
            let len = image.len();
            writer.append_file(&entry.rel, meta, len, image.reader())?;
            drop(image);
            gate.end_entry(len);
            text_files.insert(entry.rel.clone());
            report.findings.extend(archived.findings);
            let redacted = archived.redacted;
            blockers.extend(redacted.blockers);
            let file = (
                entry.rel.as_str(),
                redacted.replacements,
                &redacted.warnings[..],
            );
            record(file, &input, known, report, &mut locations);
            done(size);
            continue;
        }
        if file_rules.is_empty()
            && let Some(reuse) = reuse.as_mut()
            && let Some(unread) = reuse(entry, writer.body_mut())
        {
            writer.record_unread(&entry.rel, meta, unread.size, unread.blake3)?;
            report.reused_files += 1;
            done(size);
            locations.extend(unread.secrets);
            continue;
        }
        gate.begin_entry(&entry.rel);
        if file_rules.is_empty() && size > MAX_IN_MEMORY {
            let result = stream_file(
                &mut writer,
                entry,
                meta,
                size,
                &known.stray,
                input.text_rules,
            );
            match result {
                Ok(streamed) => {
                    gate.end_entry(streamed.size);
                    if streamed.text {
                        text_files.insert(entry.rel.clone());
                    }
                    report.findings.extend(streamed.findings);
                    let file = (entry.rel.as_str(), streamed.replacements, &[][..]);
                    record(file, &input, known, report, &mut locations);
                }
                Err(e) => {
                    gate.end_entry(0);
                    report.warnings.push(e.to_string());
                    complete = false;
                }
            }
            done(size);
            continue;
        }
        let held = if file_rules.is_empty() {
            None
        } else {
            known.take_held(&entry.rel)
        };
        let bytes: &[u8] = match &held {
            Some(bytes) => bytes,
            None => {
                read_into(entry, &mut read_buf)?;
                &read_buf
            }
        };
        let redacted = redact_file_with(&entry.rel, bytes, &file_rules, &known.stray)?;
        if held.is_none()
            && !file_rules.is_empty()
            && let Err(changed) = known.check_unchanged(&entry.rel, &redacted.values)
        {
            return Ok(Err(changed));
        }
        if !is_binary(bytes) {
            text_files.insert(entry.rel.clone());
            if let Some(text_rules) = input.text_rules {
                report.findings.extend(blocking(
                    text_rules.scan_bytes(&entry.rel, &redacted.output),
                ));
            }
        }
        blockers.extend(redacted.blockers);
        let len = redacted.output.len() as u64;
        writer.append_bytes(&entry.rel, meta, &redacted.output)?;
        gate.end_entry(len);
        done(size);
        let file = (
            entry.rel.as_str(),
            redacted.replacements,
            &redacted.warnings[..],
        );
        record(file, &input, known, report, &mut locations);
    }
    gate.begin_entry(INDEX_PATH);
    let (closed, index, counts) = writer.close(input.info, locations)?;
    report.files = counts.files;
    report.dirs = counts.dirs;
    report.symlinks = counts.symlinks;
    report.bytes = counts.bytes;
    Ok(Ok(WrittenEntries {
        closed,
        index,
        counts,
        complete,
        text_files,
        blockers,
    }))
}

/// Whether a walked file is archived through a SQLite copy: a database, unless a
/// `whole_file` rule makes it one secret.
pub(super) fn is_captured_database(entry: &Entry, rules: &[Rule]) -> bool {
    entry.sqlite && !rules.iter().any(|r| r.locator == Locator::WholeFile)
}

/// A database redacted in its copy, ready to archive.
struct Database {
    copy: crate::sqlite::Copy,
    redacted: crate::sqlite::Redacted,
    /// What the text rules found in its text cells.
    findings: Vec<Finding>,
}

/// Takes a SQLite database's consistent copy (`crate::sqlite`; the one `held` from reading its
/// declared values, else a new one) and redacts it inside its
/// cells: declared cells, stray known values, and each text cell through the text rules (the
/// gate scans the image, where a cell's text may be cut across pages). A second read whose
/// declared values changed stops the attempt, as for any rule file.
fn redact_database(
    entry: &Entry,
    held: Option<crate::sqlite::Copy>,
    rules: &[Rule],
    known: &Known,
    input: &Input<'_>,
) -> std::result::Result<Result<Database, Changed>, crate::redact::RedactError> {
    let read_again = held.is_none();
    let mut copy = match held {
        Some(copy) => copy,
        None => crate::sqlite::Copy::capture(&entry.path, &entry.rel)?,
    };
    let mut findings = Vec::new();
    let mut scan = |cell: &[u8]| {
        if let Some(text_rules) = input.text_rules {
            findings.extend(blocking(text_rules.scan_bytes(&entry.rel, cell)));
        }
    };
    let redacted = crate::sqlite::redact(&entry.rel, &mut copy, rules, &known.stray, &mut scan)?;
    if read_again
        && !rules.is_empty()
        && let Err(changed) = known.check_unchanged(&entry.rel, &redacted.values)
    {
        return Ok(Err(changed));
    }
    Ok(Ok(Database {
        copy,
        redacted,
        findings,
    }))
}

/// Waits for the gate and puts its verdict, and the blockers, into the report.
pub(super) fn gate_verdict(gate: gate::Gate, report: &mut SnapshotReport, blockers: &[Blocker]) {
    let (findings, entropy) = gate.finish();
    report.findings.extend(findings);
    report.entropy_warnings = entropy;
    report.blockers = blockers
        .iter()
        .map(|b| {
            format!(
                "{}@{}: a value of {} in a binary file, which cannot be redacted: exclude the \
                 file (`exclude`) or declare it whole (a `whole_file` rule); a known value \
                 cannot be allowed (`detect.allow` accepts findings, not declared values)",
                b.path, b.offset, b.handle
            )
        })
        .collect();
}

/// One file's redaction: its path, its records and its redaction warnings.
type FileRedaction<'a> = (&'a str, Vec<Replacement>, &'a [RedactWarning]);

/// Records a file's redaction: its placeholders for the index, and for the report (with its
/// redaction warnings).
fn record(
    (rel, replacements, warnings): FileRedaction<'_>,
    input: &Input<'_>,
    known: &Known,
    report: &mut SnapshotReport,
    locations: &mut Vec<SecretLocation>,
) {
    let (masks, rules) = (input.masks, input.rules);
    for r in replacements {
        report.redacted.push(Redacted {
            file: rel.to_string(),
            locator: match &r.source {
                Source::Rule(l) => l.to_string(),
                Source::Stray => "stray".to_string(),
            },
            handle: r.handle.to_string(),
            count: r.offsets.len(),
        });
        locations.push(SecretLocation {
            file: format!("state/{rel}"),
            locator: match &r.source {
                Source::Rule(l) => Some(l.clone()),
                Source::Stray => None,
            },
            store_version: known.versions.get(&r.handle).copied(),
            ephemeral: rules.is_ephemeral(&r.handle),
            handle: r.handle.clone(),
            context: serde_json::to_value(&r).expect("a replacement serializes"),
        });
    }
    for w in warnings {
        match w.kind {
            WarningKind::NotFound if rules.only_globs(&w.path, &w.locator) => {}
            WarningKind::NotFound => report
                .warnings
                .push(format!("{}: declared {} found no value", w.path, w.locator)),
            WarningKind::Inexact => tracing::info!(
                "{}: {} is written with an unusual escaping; a restore writes it the usual way",
                masks.mask(&w.path),
                w.locator
            ),
        }
    }
}

/// Reads a file into `buf`, reusing its memory: a fresh buffer per file costs a page fault and
/// a zeroed page every 4 KiB. A buffer grown past [`MAX_IN_MEMORY`] (a large file with rules)
/// is released afterwards, so memory stays flat.
fn read_into(entry: &Entry, buf: &mut Vec<u8>) -> Result<()> {
    if buf.capacity() > MAX_IN_MEMORY as usize {
        buf.zeroize();
        *buf = Vec::new();
    }
    buf.clear();
    File::open(&entry.path)
        .and_then(|mut f| f.read_to_end(buf))
        .map(drop)
        .map_err(|e| Error::io(&entry.path, e))
}

/// The findings that block.
fn blocking(findings: Vec<Finding>) -> impl Iterator<Item = Finding> {
    findings
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
}

/// A large file as it went into the archive.
struct Streamed {
    /// Its size in the archive.
    size: u64,
    /// Whether it is text (stray known values were replaced).
    text: bool,
    replacements: Vec<Replacement>,
    /// What the text rules found in it.
    findings: Vec<Finding>,
}

/// Streams a large file into the archive: the first `size` bytes (its size when the walk saw
/// it: an agent's transcript grows while it is read), with stray known values replaced in a
/// text file. A first pass learns the redacted size, which the tar header needs first; a file
/// with nothing to replace then goes in as it is. A file that changed in between is reported.
fn stream_file<B: Body>(
    writer: &mut ArchiveWriter<'_, B>,
    entry: &Entry,
    meta: EntryMeta,
    size: u64,
    stray: &StrayMatcher,
    text_rules: Option<&Detector>,
) -> Result<Streamed> {
    let open = || {
        File::open(&entry.path)
            .map(|f| f.take(size))
            .map_err(|e| Error::io(&entry.path, e))
    };
    let text = {
        let mut head = Vec::with_capacity(SNIFF_LEN);
        open()?
            .take(SNIFF_LEN as u64)
            .read_to_end(&mut head)
            .map_err(|e| Error::io(&entry.path, e))?;
        let text = !is_binary(&head);
        head.zeroize();
        text
    };
    let mut streamed = Streamed {
        size,
        text,
        replacements: Vec::new(),
        findings: Vec::new(),
    };
    let text_rules = text_rules.filter(|_| text);
    if !text || (stray.is_empty() && text_rules.is_none()) {
        writer.append_file(&entry.rel, meta, size, open()?)?;
        return Ok(streamed);
    }
    // The first pass: the redacted size, and the text rules' findings.
    let mut first = StrayReader::new(open()?, &entry.rel, stray);
    let redacted_size = match text_rules {
        Some(rules) => {
            let mut scan = rules.stream(&entry.rel);
            let n = std::io::copy(&mut first, &mut scan).map_err(|e| Error::io(&entry.path, e))?;
            streamed.findings.extend(blocking(scan.finish()));
            n
        }
        None => std::io::copy(&mut first, &mut std::io::sink())
            .map_err(|e| Error::io(&entry.path, e))?,
    };
    if first.replacements().is_empty() {
        writer.append_file(&entry.rel, meta, size, open()?)?;
        return Ok(streamed);
    }
    let mut second = StrayReader::new(open()?, &entry.rel, stray);
    writer.append_file(&entry.rel, meta, redacted_size, &mut second)?;
    streamed.size = redacted_size;
    streamed.replacements = second.into_replacements();
    Ok(streamed)
}

/// How much of a large file decides whether it is text (as [`is_binary`] reads it).
const SNIFF_LEN: usize = 8192;

/// The redacted bytes of a large text file, as [`stream_file`] archives them: for capture.
pub(super) fn redacted_stream<'m>(
    entry: &Entry,
    size: u64,
    stray: &'m StrayMatcher,
) -> Result<StrayReader<'m, std::io::Take<File>>> {
    let file = File::open(&entry.path).map_err(|e| Error::io(&entry.path, e))?;
    Ok(StrayReader::new(file.take(size), &entry.rel, stray))
}
