//! `agentbak verify`: build the options (selection, identity, checks), call `ops::verify`,
//! render the report, return its exit code (0 clean, 3 attention, 4 secrets, 5 integrity,
//! 6 unresolved; the most severe wins).

use std::io::IsTerminal;

use super::{Cli, VerifyArgs, load_manifest, write_stdout};
use crate::error::{ExitCode, Report as _, Result};
use crate::ops::verify::{self, Selection, VerifyOptions};
use crate::report::verify as render;
use crate::store::Stores;

pub(super) fn verify(cli: &Cli, args: &VerifyArgs) -> Result<ExitCode> {
    let manifest = load_manifest(cli.manifest.as_deref())?;
    let stores = Stores::from_manifest(&manifest)?;
    let identity = match &args.identity {
        Some(text) if !text.is_empty() => Some(verify::load_identity(text, &stores)?),
        _ => None,
    };
    let selection = if args.all {
        Selection::All
    } else if args.snapshots.is_empty() {
        Selection::Latest
    } else {
        Selection::Ids(args.snapshots.clone())
    };
    let options = VerifyOptions {
        selection,
        identity: identity.as_ref(),
        check_handles: args.check_handles,
        against_store: args.against_store,
        allow_unsigned: args.allow_unsigned,
        ..VerifyOptions::default()
    };
    let report = verify::verify(&manifest, &stores, &options)?;
    let text = if cli.json {
        render::json(&report)
    } else {
        render::human(&report, std::io::stdout().is_terminal())
    };
    write_stdout(text.as_bytes())?;
    Ok(report.exit_code())
}
