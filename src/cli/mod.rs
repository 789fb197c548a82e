//! The command line: clap types, one thin file per command.
//!
//! Each command builds options from its flags, calls `ops`, and renders the report. Only this
//! module prints, and only `main` exits.

mod check;
mod completions;
mod diff;
mod discover;
mod export;
mod init;
mod list;
mod logging;
mod ls;
mod prune;
mod restore;
mod scan;
mod secrets;
mod snapshot;
mod stats;
mod verify;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::error::{Error, ExitCode, Result};
use crate::manifest::{Manifest, find_manifest_path};

/// Back up the state of long-lived AI agents without their secrets; restore it with fresh
/// credentials.
#[derive(Debug, Parser)]
#[command(name = "agentbak", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The manifest [default: $AGENTBAK_MANIFEST, else ./agentbak.json].
    #[arg(short = 'm', long, global = true, value_name = "PATH")]
    pub manifest: Option<PathBuf>,

    /// Machine output on stdout: one JSON document, or JSON lines for streams.
    #[arg(long, global = true)]
    pub json: bool,

    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// More detail on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands of SPEC.md.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write agentbak.json (with $schema) for an agent's state folder.
    Init(InitArgs),
    /// Find secrets the manifest has no rule for; --update adds the rules.
    Discover(DiscoverArgs),
    /// Make a snapshot: redact secrets to handles, prove none remain, archive. Prints its id.
    Snapshot(SnapshotArgs),
    /// List snapshots, newest last.
    List,
    /// Restore a snapshot into a folder; with --rehydrate, fetch current secret values.
    Restore(RestoreArgs),
    /// List a snapshot's files: type, mode, size, time, path, secret placeholders.
    Ls(LsArgs),
    /// Compare two snapshots: files added, removed, changed; handles rotated.
    Diff(DiffArgs),
    /// Check snapshots for audits: integrity, leaks, handles, rotation age.
    Verify(VerifyArgs),
    /// Check the whole repository's integrity (every agent, no key): packs, index, refs.
    Check(check::CheckArgs),
    /// Show sizes and dedup: snapshots, logical bytes, unique chunks, packs.
    Stats,
    /// Write one snapshot as one self-contained archive (tar + zstd, + age), for migration.
    Export(ExportArgs),
    /// Find plaintext secrets in files, folders, stdin, logs and git history.
    Scan(ScanArgs),
    /// Apply the retention policy: delete snapshots that no rule keeps.
    Prune(PruneArgs),
    /// Delete the named snapshots (e.g. one that `verify` found holding a secret).
    Forget(ForgetArgs),
    /// Manage secret values in the stores.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Print shell completions.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout.
    Man,
}

/// `agentbak init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The agent's state folder.
    #[arg(long, value_name = "DIR", default_value = "./state")]
    pub state: PathBuf,
    /// The agent's name [default: the state folder's parent name].
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// The store that new handles point into.
    #[arg(long, value_enum, default_value_t = StoreKind::Local)]
    pub store: StoreKind,
    /// Find secrets in the state and write a rule and handle for each.
    #[arg(long)]
    pub discover: bool,
    /// Store the values found by --discover in the store.
    #[arg(long, requires = "discover")]
    pub import: bool,
    /// Overwrite an existing manifest.
    #[arg(long)]
    pub force: bool,
}

/// `agentbak discover`.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Write the proposed rules into the manifest (its other bytes are kept).
    #[arg(long)]
    pub update: bool,
    /// Also store the values of the new rules (implies --update).
    #[arg(long)]
    pub import: bool,
}

/// `init --store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// The embedded age-encrypted file store.
    Local,
    /// HashiCorp Vault or OpenBao (KV v2).
    Vault,
}

/// `agentbak snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Report what would be redacted and any blocker; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Store values that the store lacks as new versions before the snapshot.
    #[arg(long)]
    pub push_secrets: bool,
    /// Wait up to SECS for another run's lock instead of exiting 7.
    #[arg(long, value_name = "SECS")]
    pub wait: Option<u64>,
}

/// `agentbak restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot id, or `latest`.
    #[arg(default_value = "latest", value_name = "ID", conflicts_with = "from")]
    pub snapshot: String,
    /// The folder to restore into.
    #[arg(long, value_name = "DIR")]
    pub target: PathBuf,
    /// Fetch every handle's value from its store and put it back in place.
    #[arg(long)]
    pub rehydrate: bool,
    /// Replace a non-empty target.
    #[arg(long)]
    pub force: bool,
    /// Age identity file, or a handle holding one [env: AGENTBAK_IDENTITY].
    #[arg(long, value_name = "FILE|HANDLE", env = "AGENTBAK_IDENTITY")]
    pub identity: Option<String>,
    /// Resolve and report; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Use the secret versions recorded at snapshot time.
    #[arg(long, requires = "rehydrate", conflicts_with = "previous")]
    pub pin: bool,
    /// Use the version before the current one (rotation grace period).
    #[arg(long, requires = "rehydrate")]
    pub previous: bool,
    /// Accept a snapshot without a signature although the manifest configures `signing`.
    #[arg(long)]
    pub allow_unsigned: bool,
    /// Restore a standalone archive file (`agentbak export`) instead; FILE.json beside it is
    /// its sidecar.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Restore only the entries matching GLOB, relative to the state (`memory/**`); repeatable.
    #[arg(long = "include", value_name = "GLOB")]
    pub include: Vec<String>,
}

/// `agentbak ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Snapshot id, or `latest`.
    #[arg(value_name = "ID")]
    pub snapshot: String,
    /// Only this file, or this folder and what it holds (relative to the state).
    #[arg(value_name = "PATH")]
    pub path: Option<String>,
    /// Age identity file, or a handle holding one [env: AGENTBAK_IDENTITY].
    #[arg(long, value_name = "FILE|HANDLE", env = "AGENTBAK_IDENTITY")]
    pub identity: Option<String>,
    /// Accept a snapshot without a signature although the manifest configures `signing`.
    #[arg(long)]
    pub allow_unsigned: bool,
}

/// `agentbak diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older snapshot (id, prefix, or `latest`).
    #[arg(value_name = "ID1")]
    pub from: String,
    /// The newer snapshot (id, prefix, or `latest`).
    #[arg(value_name = "ID2")]
    pub to: String,
    /// Age identity file, or a handle holding one [env: AGENTBAK_IDENTITY].
    #[arg(long, value_name = "FILE|HANDLE", env = "AGENTBAK_IDENTITY")]
    pub identity: Option<String>,
    /// Accept snapshots without a signature although the manifest configures `signing`.
    #[arg(long)]
    pub allow_unsigned: bool,
}

/// `agentbak export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Snapshot id, or `latest`.
    #[arg(default_value = "latest", value_name = "ID")]
    pub snapshot: String,
    /// The archive to write (`.tar.zst`, or `.tar.zst.age` when the manifest encrypts); its
    /// sidecar goes beside it as `FILE.json`. Never replaces a file.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Age identity file, or a handle holding one [env: AGENTBAK_IDENTITY].
    #[arg(long, value_name = "FILE|HANDLE", env = "AGENTBAK_IDENTITY")]
    pub identity: Option<String>,
    /// Accept a snapshot without a signature although the manifest configures `signing`.
    #[arg(long)]
    pub allow_unsigned: bool,
}

/// `agentbak verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Snapshot ids (default: the newest).
    #[arg(value_name = "ID", conflicts_with = "all")]
    pub snapshots: Vec<String>,
    /// Verify every snapshot.
    #[arg(long)]
    pub all: bool,
    /// Age identity file, or a handle holding one [env: AGENTBAK_IDENTITY].
    #[arg(long, value_name = "FILE|HANDLE", env = "AGENTBAK_IDENTITY")]
    pub identity: Option<String>,
    /// Per handle: resolves now, version at snapshot vs now, rotation age.
    #[arg(long)]
    pub check_handles: bool,
    /// Search for the current and previous value of every handle, in every encoding.
    #[arg(long)]
    pub against_store: bool,
    /// Accept snapshots without a signature although the manifest configures `signing`.
    #[arg(long)]
    pub allow_unsigned: bool,
}

/// `agentbak scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files and folders to scan (folders recursively).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Scan standard input.
    #[arg(long)]
    pub stdin: bool,
    /// Scan every added line of the commits in RANGE (all history when no range is given).
    #[arg(long, value_name = "RANGE", num_args = 0..=1, default_missing_value = "")]
    pub git: Option<String>,
    /// Scan the staged changes (for a pre-commit hook).
    #[arg(long)]
    pub staged: bool,
    /// Follow a growing log like `tail -F`; one alert per finding; runs until stopped.
    #[arg(long, value_name = "FILE")]
    pub follow: Option<PathBuf>,
    /// Also search for the current and previous values held by the manifest's stores.
    #[arg(long)]
    pub known_from_store: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ScanFormat::Human)]
    pub format: ScanFormat,
}

/// `scan --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScanFormat {
    /// Lines for people.
    Human,
    /// JSON.
    Json,
    /// SARIF 2.1.0.
    Sarif,
}

/// `agentbak prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Keep the N newest snapshots.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours.
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N weeks.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years.
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot with this tag (repeatable).
    #[arg(long = "keep-tag", value_name = "TAG")]
    pub keep_tags: Vec<String>,
    /// Show what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Age identity file, or a handle holding one, to repack encrypted packs (without it,
    /// only packs that are wholly unused are deleted) [env: AGENTBAK_IDENTITY].
    #[arg(long, value_name = "FILE|HANDLE", env = "AGENTBAK_IDENTITY")]
    pub identity: Option<String>,
}

/// `agentbak forget`.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Snapshots to delete: ids, unique id prefixes, or `latest`.
    #[arg(required = true, value_name = "ID")]
    pub snapshots: Vec<String>,
    /// Show what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `agentbak secrets ...`.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Store a new version; the value is read from stdin byte for byte, never from argv.
    Set {
        /// The handle to write.
        handle: String,
        /// Drop one trailing newline (`\n` or `\r\n`) from stdin.
        #[arg(long)]
        trim: bool,
    },
    /// Show a handle's metadata (version, created time); the value only with --reveal.
    Get {
        /// The handle to read.
        handle: String,
        /// Print the value on stdout.
        #[arg(long)]
        reveal: bool,
    },
    /// List secret paths of a store (all stores by default).
    Ls {
        /// The store name.
        store: Option<String>,
    },
    /// Every handle of the manifest: exists, version, age, rotation due.
    Status,
    /// Store values that the state holds and the store lacks.
    Push,
}

/// Parses the arguments, runs the command, and returns the exit code. `main` is only this.
pub fn run() -> ExitCode {
    crate::hardening::disable_core_dumps();
    let cli = Cli::parse();
    logging::init(cli.verbose, cli.quiet, cli.log_format);
    match dispatch(&cli) {
        Ok(code) => code,
        Err(err) => {
            if !is_broken_pipe(&err) {
                logging::report(cli.log_format, "ERROR", &format!("agentbak: {err}\n"));
                return err.exit_code();
            }
            ExitCode::Success
        }
    }
}

fn is_broken_pipe(err: &Error) -> bool {
    matches!(err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
}

fn dispatch(cli: &Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Completions { shell } => completions::completions(*shell),
        Command::Man => completions::man(),
        Command::Init(args) => init::init(cli, args),
        Command::Discover(args) => discover::discover(cli, args),
        Command::Scan(args) => scan::scan(cli, args),
        Command::Snapshot(args) => snapshot::snapshot(cli, args),
        Command::List => list::list(cli),
        Command::Restore(args) => restore::restore(cli, args),
        Command::Ls(args) => ls::ls(cli, args),
        Command::Diff(args) => diff::diff(cli, args),
        Command::Verify(args) => verify::verify(cli, args),
        Command::Check(args) => check::check(cli, args),
        Command::Stats => stats::stats(cli),
        Command::Export(args) => export::export(cli, args),
        Command::Prune(args) => prune::prune(cli, args),
        Command::Forget(args) => prune::forget(cli, args),
        Command::Secrets(cmd) => secrets::run(cli, cmd),
    }
}

/// Finds and loads the manifest as `-m`, `AGENTBAK_MANIFEST` or `./agentbak.json` says.
pub fn load_manifest(flag: Option<&Path>) -> Result<Manifest> {
    let path = find_manifest_path(flag);
    let manifest = Manifest::load(&path)?;
    tracing::debug!(path = %path.display(), "manifest loaded");
    Ok(manifest)
}

/// Writes `bytes` to stdout; a closed pipe is reported as an I/O error that `run` treats as
/// success (ripgrep's convention).
pub(crate) fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("<stdout>", e))
}

pub(crate) fn command() -> clap::Command {
    Cli::command()
}
