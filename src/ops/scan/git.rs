//! `scan --git [RANGE]` and `scan --staged`: every added line, read from `git log -p` or
//! `git diff --cached` with zero context lines.
//!
//! The diff is parsed by hunk header counts, not by line prefixes alone, so an added line
//! that itself starts with `+++ ` or `diff --git` is content, not a header. Added lines of one
//! file in one commit are scanned together (multi-line keys stay whole) in pieces of at most
//! [`MAX_PIECE`] bytes; a finding's `line` is its line in the file at that commit, its
//! `offset` counts bytes of those added lines, and `commit` names the commit.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use super::{ScanReport, add_known_notes};
use crate::detect::Detector;
use crate::error::{Error, Result};

/// Added text held before it is scanned, so a huge added file keeps memory bounded.
const MAX_PIECE: usize = 8 * 1024 * 1024;

/// Marks a commit line in our `--format`: a NUL cannot start a diff line.
const COMMIT_MARK: &[u8] = b"\0commit ";

/// Scans every line added by the commits in `range` (all refs when `None`) of the repository
/// at `dir`.
pub fn scan_git(detector: &Detector, dir: &Path, range: Option<&str>) -> Result<ScanReport> {
    let mut args = vec![
        "log",
        "-p",
        "--no-color",
        "--no-ext-diff",
        "--no-renames",
        "--unified=0",
        "--format=format:%x00commit %H",
    ];
    match range {
        Some(r) if !r.is_empty() => args.push(r),
        _ => args.push("--all"),
    }
    run(detector, dir, &args)
}

/// Scans the lines added by the staged changes of the repository at `dir`.
pub fn scan_staged(detector: &Detector, dir: &Path) -> Result<ScanReport> {
    run(
        detector,
        dir,
        &[
            "diff",
            "--cached",
            "--no-color",
            "--no-ext-diff",
            "--no-renames",
            "--unified=0",
        ],
    )
}

fn run(detector: &Detector, dir: &Path, args: &[&str]) -> Result<ScanReport> {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "core.quotePath=false"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Git(format!("cannot run git: {e}")))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut parser = DiffScan::new(detector);
    let read = parser.read(BufReader::new(stdout));
    let output = child
        .wait_with_output()
        .map_err(|e| Error::Git(format!("git did not finish: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(Error::Git(format!(
            "`git {}` failed in {}: {}",
            args.join(" "),
            dir.display(),
            stderr.trim()
        )));
    }
    read.map_err(|e| Error::io("<git output>", e))?;
    let mut report = parser.finish();
    report.sort();
    add_known_notes(detector, &mut report);
    Ok(report)
}

/// The added lines of one file in one commit.
#[derive(Default)]
struct Piece {
    text: Vec<u8>,
    /// Line number in the file of each added line, in order.
    lines: Vec<usize>,
}

struct DiffScan<'d> {
    detector: &'d Detector,
    report: ScanReport,
    commit: Option<String>,
    path: Option<String>,
    piece: Piece,
    /// Lines left in the current hunk: (old, new).
    hunk: Option<(usize, usize)>,
    next_line: usize,
}

impl<'d> DiffScan<'d> {
    fn new(detector: &'d Detector) -> DiffScan<'d> {
        DiffScan {
            detector,
            report: ScanReport::default(),
            commit: None,
            path: None,
            piece: Piece::default(),
            hunk: None,
            next_line: 0,
        }
    }

    fn read(&mut self, mut reader: impl BufRead) -> std::io::Result<()> {
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            self.line(&line);
        }
        self.flush();
        Ok(())
    }

    fn line(&mut self, line: &[u8]) {
        if let Some((old, new)) = self.hunk {
            match line.first() {
                Some(b'+') if new > 0 => {
                    self.added(&line[1..]);
                    self.set_hunk(old, new - 1);
                    return;
                }
                Some(b'-') if old > 0 => {
                    self.set_hunk(old - 1, new);
                    return;
                }
                Some(b'\\') => return,
                _ => self.hunk = None,
            }
        }
        if line.first() == Some(&b'\\') {
            return; // "\ No newline at end of file" after a hunk's last line
        }
        if let Some(sha) = line.strip_prefix(COMMIT_MARK) {
            self.flush();
            self.commit = Some(String::from_utf8_lossy(sha).into_owned());
        } else if line.starts_with(b"diff --git ") {
            self.flush();
            self.path = None;
        } else if let Some(path) = line.strip_prefix(b"+++ ") {
            let path = path.strip_prefix(b"b/").unwrap_or(path);
            self.path = (path != b"/dev/null").then(|| String::from_utf8_lossy(path).into_owned());
        } else if line.starts_with(b"@@ ")
            && let Some((old, new, start)) = hunk_header(line)
        {
            self.set_hunk(old, new);
            self.next_line = start;
        }
    }

    fn set_hunk(&mut self, old: usize, new: usize) {
        self.hunk = (old, new).ne(&(0, 0)).then_some((old, new));
    }

    fn added(&mut self, content: &[u8]) {
        if self.path.is_none() {
            return;
        }
        self.piece.text.extend_from_slice(content);
        self.piece.text.push(b'\n');
        self.piece.lines.push(self.next_line);
        self.next_line += 1;
        if self.piece.text.len() >= MAX_PIECE {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let piece = std::mem::take(&mut self.piece);
        let Some(path) = &self.path else { return };
        if piece.text.is_empty() {
            return;
        }
        self.report.files += 1;
        self.report.bytes += piece.text.len() as u64;
        for mut f in self.detector.scan_bytes(path, &piece.text) {
            f.line = piece.lines.get(f.line - 1).copied().unwrap_or(f.line);
            f.commit = self.commit.clone();
            self.report.findings.push(f);
        }
    }

    fn finish(self) -> ScanReport {
        self.report
    }
}

/// `@@ -a[,b] +c[,d] @@`: (old count, new count, first new line).
fn hunk_header(line: &[u8]) -> Option<(usize, usize, usize)> {
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split(' ');
    parts.next()?; // @@
    let old = parts.next()?.strip_prefix('-')?;
    let new = parts.next()?.strip_prefix('+')?;
    let count = |s: &str| -> Option<(usize, usize)> {
        match s.split_once(',') {
            Some((start, n)) => Some((start.parse().ok()?, n.parse().ok()?)),
            None => Some((s.parse().ok()?, 1)),
        }
    };
    let (_, old_n) = count(old)?;
    let (new_start, new_n) = count(new)?;
    Some((old_n, new_n, new_start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunk_headers_parse_with_and_without_counts() {
        assert_eq!(hunk_header(b"@@ -0,0 +1,3 @@"), Some((0, 3, 1)));
        assert_eq!(hunk_header(b"@@ -5 +7 @@ fn x()"), Some((1, 1, 7)));
        assert_eq!(hunk_header(b"@@ -2,2 +1,0 @@"), Some((2, 0, 1)));
    }

    #[test]
    fn added_lines_that_look_like_headers_are_content() {
        let d = Detector::builtin();
        let mut scan = DiffScan::new(&d);
        let diff = b"\0commit abc123\n\ndiff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -0,0 +1,2 @@\n++++ b/evil\n+k=ghp_R4nd0mT0k3nV4lu3Abcdefghij0123456789\n";
        scan.read(&diff[..]).unwrap();
        let report = scan.finish();
        assert_eq!(report.findings.len(), 1);
        let f = &report.findings[0];
        assert_eq!(
            (f.path.as_str(), f.line, f.commit.as_deref()),
            ("x", 2, Some("abc123"))
        );
    }
}
