//! `agentbak init`: render what [`ops::init`](crate::ops::init) did.

use std::fmt::Write as _;

use super::{Cli, InitArgs, StoreKind, write_stdout};
use crate::error::{Error, ExitCode, Report as _, Result};
use crate::manifest::find_manifest_path;
use crate::ops::init::{InitOptions, InitReport, StoreChoice, init as run_init};
use crate::report::columns;

pub(super) fn init(cli: &Cli, args: &InitArgs) -> Result<ExitCode> {
    let opts = InitOptions {
        manifest: find_manifest_path(cli.manifest.as_deref()),
        state: args.state.clone(),
        agent: args.agent.clone(),
        store: match args.store {
            StoreKind::Local => StoreChoice::Local,
            StoreKind::Vault => StoreChoice::Vault,
        },
        discover: args.discover,
        import: args.import,
        force: args.force,
    };
    let report = run_init(&opts)?;
    let out = if cli.json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&report).map_err(|e| Error::Usage(e.to_string()))?
        )
    } else {
        human(&report, args.discover)
    };
    write_stdout(out.as_bytes())?;
    Ok(report.exit_code())
}

fn human(r: &InitReport, discover: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wrote {} (agent `{}`) and its schema {}",
        r.manifest.display(),
        r.agent,
        r.schema.display()
    );
    if let (Some(path), Some(identity)) = (&r.store.path, &r.store.identity) {
        let state = if r.store.created { "created" } else { "kept" };
        let _ = writeln!(
            out,
            "local store {} ({state}), opened by {}\n  keep a copy of that identity off this host: without it the store cannot be read",
            path.display(),
            identity.display()
        );
    }
    if let Some(address) = &r.store.address {
        let _ = writeln!(out, "vault store at {address}, KV v2 mount `secret`");
    }
    if discover {
        discovered(&mut out, r);
    }
    if !r.attention.is_empty() {
        let _ = writeln!(out, "\nneeds attention:");
        for a in &r.attention {
            let at = a.line.map(|l| format!(":{l}")).unwrap_or_default();
            let _ = writeln!(out, "  {}{at}: {}", a.file, a.message);
        }
    }
    match &r.imported {
        Some(items) => {
            let _ = writeln!(out, "\nimport into the store:");
            for line in super::secrets::push_lines(items).lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        None if discover && !r.found.is_empty() => {
            let _ = writeln!(
                out,
                "\nthe values are not in the store yet: `agentbak secrets push` (or `init --discover --import`) stores them"
            );
        }
        None => {}
    }
    let _ = writeln!(out, "\nnext: agentbak snapshot");
    out
}

/// The table of secrets found, and the exclusions.
fn discovered(out: &mut String, r: &InitReport) {
    let files = r
        .found
        .iter()
        .map(|f| f.file.as_str())
        .collect::<std::collections::BTreeSet<_>>();
    let _ = writeln!(
        out,
        "\nfound {} secret location(s) in {} of {} file(s) (values masked):",
        r.found.len(),
        files.len(),
        r.files
    );
    let mut rows = vec![vec![
        "FILE".to_string(),
        "LOCATOR".into(),
        "HANDLE".into(),
        "FOUND BY".into(),
        "PREVIEW".into(),
    ]];
    for f in &r.found {
        let mut handle = f.handle.clone();
        if f.shared {
            handle.push_str(" (same value as above)");
        }
        if f.ephemeral {
            handle.push_str(" (ephemeral: several values)");
        }
        rows.push(vec![
            f.file.clone(),
            f.locator.clone(),
            handle,
            f.reason.clone(),
            f.preview.clone(),
        ]);
    }
    if !r.found.is_empty() {
        out.push_str(&columns(&rows, "  "));
    }
    if !r.exclude.is_empty() {
        let _ = writeln!(
            out,
            "excluded (caches, temporary files): {}",
            r.exclude.join(", ")
        );
    }
}
