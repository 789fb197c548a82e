//! `scan --follow FILE`: a runtime monitor with `tail -F` semantics.
//!
//! The file is scanned from its start, then polled: new bytes go through one detector stream,
//! which is flushed up to the last complete line whenever the writer pauses, so each finding
//! is reported once, as soon as its line is complete. A file that shrinks or whose first bytes
//! change (truncated or rewritten in place) or whose path now names another inode (rotation)
//! is reopened from its start with a fresh stream;
//! before switching, what is left of a rotated file is read to its end. A missing file is
//! waited for. The loop ends when `stop` is set (SIGINT/SIGTERM in the CLI).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::detect::{Detector, Finding, StreamScan};
use crate::error::{Error, Result};

/// What a follow session saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FollowSummary {
    /// Findings reported.
    pub findings: usize,
    /// Findings of severity `error`.
    pub errors: usize,
    /// Bytes read.
    pub bytes: u64,
    /// Times the file was reopened after truncation or rotation.
    pub reopened: usize,
}

struct Open<'d> {
    file: File,
    inode: (u64, u64),
    /// The first bytes read: if they change, the file was rewritten in place, even when it
    /// grew back past the old size between two polls.
    head: Vec<u8>,
    stream: StreamScan<'d>,
}

/// Bytes of the file's start kept to notice a rewrite.
const HEAD: usize = 256;

/// Follows `path` until `stop` is set, calling `on_finding` once per finding.
pub fn follow(
    detector: &Detector,
    path: &Path,
    stop: &AtomicBool,
    poll: Duration,
    on_finding: &mut dyn FnMut(Finding),
) -> Result<FollowSummary> {
    let name = path.to_string_lossy().into_owned();
    let mut summary = FollowSummary::default();
    let mut emit = |findings: Vec<Finding>, summary: &mut FollowSummary| {
        for f in findings {
            summary.findings += 1;
            summary.errors += usize::from(f.severity == crate::detect::Severity::Error);
            on_finding(f);
        }
    };
    let mut current: Option<Open<'_>> = None;
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        if current.is_none() {
            current = open(detector, path, &name)?;
        }
        let Some(open_file) = current.as_mut() else {
            std::thread::sleep(poll);
            continue;
        };
        let read = drain(open_file, &mut buf, stop).map_err(|e| Error::io(path, e))?;
        summary.bytes += read;
        open_file.stream.flush().map_err(|e| Error::io(path, e))?;
        emit(open_file.stream.take_findings(), &mut summary);
        if read > 0 {
            continue; // the writer is active: read again before sleeping
        }
        match changed(path, open_file) {
            Change::Same => std::thread::sleep(poll),
            Change::Truncated | Change::Rotated => {
                let old = current.take().expect("a file is open");
                emit(old.stream.finish(), &mut summary);
                summary.reopened += 1;
            }
        }
    }
    if let Some(open_file) = current {
        emit(open_file.stream.finish(), &mut summary);
    }
    Ok(summary)
}

fn open<'d>(detector: &'d Detector, path: &Path, name: &str) -> Result<Option<Open<'d>>> {
    match File::open(path) {
        Ok(file) => {
            let meta = file.metadata().map_err(|e| Error::io(path, e))?;
            Ok(Some(Open {
                file,
                inode: (meta.dev(), meta.ino()),
                head: Vec::new(),
                stream: detector.stream(name),
            }))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Reads what is available now into the stream.
fn drain(open: &mut Open<'_>, buf: &mut [u8], stop: &AtomicBool) -> std::io::Result<u64> {
    let mut total = 0u64;
    loop {
        let n = match open.file.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 || stop.load(Ordering::Relaxed) {
            return Ok(total);
        }
        if open.head.len() < HEAD {
            let take = (HEAD - open.head.len()).min(n);
            open.head.extend_from_slice(&buf[..take]);
        }
        open.stream.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Whether the bytes at the file's start differ from those first read.
fn rewritten(open: &Open<'_>) -> bool {
    let mut now = vec![0u8; open.head.len()];
    match open.file.read_exact_at(&mut now, 0) {
        Ok(()) => now != open.head,
        Err(_) => true,
    }
}

enum Change {
    Same,
    Truncated,
    Rotated,
}

fn changed(path: &Path, open: &mut Open<'_>) -> Change {
    let position = open.file.stream_position().unwrap_or(0);
    match std::fs::metadata(path) {
        Ok(meta) if (meta.dev(), meta.ino()) != open.inode => Change::Rotated,
        // Same inode, shorter: truncated in place (`> file`, logrotate copytruncate).
        Ok(meta) if meta.len() < position => Change::Truncated,
        Ok(_) if rewritten(open) => Change::Truncated,
        Ok(_) => Change::Same,
        Err(_) => Change::Same, // moved away, new one not yet created: keep the old one
    }
}
