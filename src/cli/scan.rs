//! `agentbak scan`: build the detector (manifest `detect` section and known values when a
//! manifest is in reach), pick the source, call `ops::scan`, render, choose the exit code.
//!
//! Exit codes: 4 when a finding of severity `error` remains; 6 when `--known-from-store`
//! could not fetch a handle's current value (each such handle is listed, as a note and under
//! `unresolved` in JSON); 3 when a file could not be read; 0 otherwise. Warn-level findings
//! (entropy under `detect.entropy: "warn"`) are shown but do not fail the run: that is what
//! `warn` means, and a pre-commit hook must not block on them.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::{Cli, ScanArgs, ScanFormat, load_manifest, write_stdout};
use crate::detect::Detector;
use crate::error::{Error, ExitCode, Report as _, Result};
use crate::manifest::{DEFAULT_MANIFEST, Detect, ENV_MANIFEST, find_manifest_path};
use crate::ops::scan::{self, ScanReport};
use crate::report::scan as render;
use crate::store::Stores;

/// How often `--follow` polls a quiet file.
const POLL: Duration = Duration::from_millis(200);

pub(super) fn scan(cli: &Cli, args: &ScanArgs) -> Result<ExitCode> {
    let format = match (args.format, cli.json) {
        (ScanFormat::Human, true) => ScanFormat::Json,
        (f, _) => f,
    };
    let (detector, notes, unresolved, own) = build_detector(cli, args.known_from_store)?;
    if let Some(known) = detector.known() {
        for label in known.too_short() {
            tracing::warn!(handle = %label, "value shorter than 8 bytes: cannot be proven absent");
        }
    }
    if let Some(file) = &args.follow {
        return follow(&detector, file, format);
    }
    let mut report = run(&detector, args, &own)?;
    report.notes.extend(notes);
    report.unresolved = unresolved;
    let text = match format {
        ScanFormat::Human => render::human(&report, std::io::stdout().is_terminal()),
        ScanFormat::Json => render::json(&report),
        ScanFormat::Sarif => render::sarif(&report, &detector.rules()),
    };
    write_stdout(text.as_bytes())?;
    Ok(report.exit_code())
}

/// The detector for this run: the manifest's settings and values if a manifest is in reach
/// (`-m`, `AGENTBAK_MANIFEST`, or an existing `./agentbak.json`; `--known-from-store` needs
/// one), else the defaults; the notes on declared values that could not be read; and the
/// handles whose store value could not be fetched; and agentbak's own files (the manifest and
/// its repository), where only known values are findings.
fn build_detector(
    cli: &Cli,
    from_store: bool,
) -> Result<(Detector, Vec<String>, Vec<String>, scan::OwnFiles)> {
    let explicit = from_store
        || cli.manifest.is_some()
        || std::env::var_os(ENV_MANIFEST).is_some_and(|v| !v.is_empty());
    if !explicit && !Path::new(DEFAULT_MANIFEST).exists() {
        return Ok((
            Detector::new(&Detect::default(), None)?,
            Vec::new(),
            Vec::new(),
            scan::OwnFiles::default(),
        ));
    }
    let manifest = load_manifest(cli.manifest.as_deref())?;
    let own = scan::OwnFiles::of(&find_manifest_path(cli.manifest.as_deref()), &manifest);
    let stores = from_store
        .then(|| Stores::from_manifest(&manifest))
        .transpose()?;
    let known = scan::known_values(&manifest, stores.as_ref());
    for note in &known.notes {
        tracing::warn!("{note}");
    }
    tracing::info!(
        values = known.values.len(),
        "known values from the manifest"
    );
    Ok((
        Detector::new(&manifest.detect, Some(known.values))?.with_manifest(&manifest),
        known.notes,
        known.unresolved,
        own,
    ))
}

fn run(detector: &Detector, args: &ScanArgs, own: &scan::OwnFiles) -> Result<ScanReport> {
    let sources = [
        !args.paths.is_empty() && args.git.is_none() && !args.staged,
        args.stdin,
        args.git.is_some(),
        args.staged,
    ];
    if sources.iter().filter(|&&s| s).count() > 1 {
        return Err(Error::Usage(
            "choose one source: PATH..., --stdin, --git [RANGE], --staged or --follow FILE".into(),
        ));
    }
    // With --git or --staged, a PATH names the repository.
    let repo = args
        .paths
        .first()
        .cloned()
        .unwrap_or_else(|| PathBuf::from("."));
    if args.stdin {
        return scan::scan_reader(detector, "<stdin>", std::io::stdin().lock());
    }
    if let Some(range) = &args.git {
        return scan::scan_git(detector, &repo, Some(range.as_str()));
    }
    if args.staged {
        return scan::scan_staged(detector, &repo);
    }
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    scan::scan_paths_own(detector, &paths, 0, own)
}

/// `--follow`: one line per finding on stdout as it is found, until SIGINT or SIGTERM.
fn follow(detector: &Detector, file: &Path, format: ScanFormat) -> Result<ExitCode> {
    if format == ScanFormat::Sarif {
        return Err(Error::Usage(
            "--follow writes one line per finding: use --format human or json".into(),
        ));
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Error::io("<signal handler>", e))?;
    }
    let color = std::io::stdout().is_terminal();
    let mut write_error = None;
    let summary = scan::follow(detector, file, &stop, POLL, &mut |f| {
        let line = match format {
            ScanFormat::Json => render::json_line(&f),
            _ => render::human_line(&f, color) + "\n",
        };
        if let Err(e) = write_stdout(line.as_bytes()) {
            write_error.get_or_insert(e);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    })?;
    if let Some(e) = write_error {
        return Err(e);
    }
    tracing::info!(
        findings = summary.findings,
        bytes = summary.bytes,
        "follow stopped"
    );
    Ok(if summary.errors > 0 {
        ExitCode::SecretsFound
    } else {
        ExitCode::Success
    })
}
