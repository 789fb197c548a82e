//! `agentbak export`: picks the snapshot, finds the identity, calls `ops::export`, renders.

use super::{Cli, ExportArgs, load_manifest, write_stdout};
use crate::error::{ExitCode, Report as _, Result};
use crate::ops::export::{ExportOptions, export as run};
use crate::repo::Repository;
use crate::store::Stores;

pub(super) fn export(cli: &Cli, args: &ExportArgs) -> Result<ExitCode> {
    let manifest = load_manifest(cli.manifest.as_deref())?;
    let stores = Stores::from_manifest(&manifest)?;
    let repo = Repository::open(&manifest.repository)?;
    let listing = repo.list_for(&manifest.agent)?;
    let sidecar = repo.resolve(&listing, &args.snapshot)?;
    let identity = match (&args.identity, sidecar.encrypted) {
        (Some(given), true) => Some(crate::ops::identity::load_identity(given, &stores)?),
        _ => None,
    };
    let options = ExportOptions {
        manifest: &manifest,
        stores: &stores,
        identity: identity.as_ref(),
        allow_unsigned: args.allow_unsigned,
    };
    let report = run(&repo, sidecar, &args.output, &options)?;
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    if cli.json {
        let mut out = serde_json::to_vec_pretty(&report).expect("an export report serializes");
        out.push(b'\n');
        write_stdout(&out)?;
    } else {
        write_stdout(
            format!(
                "exported {} to {} ({} bytes{}); sidecar {}\n",
                report.snapshot,
                report.file.display(),
                report.size,
                if report.encrypted {
                    ", age-encrypted"
                } else {
                    ""
                },
                report.sidecar.display()
            )
            .as_bytes(),
        )?;
    }
    Ok(report.exit_code())
}
