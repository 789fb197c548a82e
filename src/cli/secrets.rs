//! `agentbak secrets set|get|ls|status|push`: manage values in the stores.
//!
//! Values enter only through stdin (`set`) and leave only through stdout with `get --reveal`;
//! every other output shows metadata and masked previews.

use std::fmt::Write as _;
use std::io::{IsTerminal, Read};

use chrono::Utc;
use zeroize::Zeroizing;

use super::{Cli, SecretsCommand, load_manifest, write_stdout};
use crate::error::{Error, ExitCode, Result};
use crate::handle::Handle;
use crate::manifest::Manifest;
use crate::ops::secrets::push::{PushItem, PushOutcome, push};
use crate::ops::secrets::status::{HandleStatus, Rotation, handle_status};
use crate::secret::Secret;
use crate::store::{Address, ResolveOptions, Status, Stores, resolve_one};

/// Runs one `secrets` subcommand.
pub(super) fn run(cli: &Cli, cmd: &SecretsCommand) -> Result<ExitCode> {
    let manifest = load_manifest(cli.manifest.as_deref())?;
    let stores = Stores::from_manifest(&manifest)?;
    match cmd {
        SecretsCommand::Set { handle, trim } => set(cli, &manifest, &stores, handle, *trim),
        SecretsCommand::Get { handle, reveal } => get(cli, &manifest, &stores, handle, *reveal),
        SecretsCommand::Ls { store } => ls(cli, &stores, store.as_deref()),
        SecretsCommand::Status => status(cli, &manifest, &stores),
        SecretsCommand::Push => push_cmd(cli, &manifest, &stores),
    }
}

fn parse(manifest: &Manifest, stores: &Stores, text: &str) -> Result<Handle> {
    let handle = Handle::parse(text)?.with_agent(&manifest.agent);
    if stores.get(&handle.store).is_none() {
        return Err(Error::Usage(format!(
            "store `{}` is not defined in the manifest's `stores`",
            handle.store
        )));
    }
    Ok(handle)
}

fn set(cli: &Cli, m: &Manifest, stores: &Stores, text: &str, trim: bool) -> Result<ExitCode> {
    let handle = parse(m, stores, text)?;
    let a = Address::of(&handle);
    if handle.is_env() {
        return Err(Error::Usage(format!(
            "`{handle}` is an env handle: set the variable in the environment instead"
        )));
    }
    if a.version.is_some() {
        return Err(Error::Usage(format!(
            "`{handle}` pins a version; `set` writes a new version of the unpinned handle"
        )));
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(Error::Usage(
            "`secrets set` reads the value from stdin, never from argv: redirect a file or \
             pipe it from a password manager (e.g. `pass show x | agentbak secrets set H`)"
                .into(),
        ));
    }
    let mut buf = Zeroizing::new(Vec::new());
    stdin
        .lock()
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("<stdin>", e))?;
    if trim {
        let cut = if buf.ends_with(b"\r\n") {
            2
        } else {
            usize::from(buf.ends_with(b"\n"))
        };
        let keep = buf.len() - cut;
        buf.truncate(keep);
    }
    if buf.is_empty() {
        return Err(Error::Usage(
            "no value on stdin: refusing to store an empty value".into(),
        ));
    }
    let value = Secret::from_slice(&buf);
    let store = stores.for_handle(&handle)?;
    let version = store.put(&a.path, &a.field, &value, None)?;
    let out = if cli.json {
        serde_json::json!({ "handle": handle.to_string(), "version": version, "bytes": value.len() })
            .to_string()
    } else {
        format!(
            "{handle}: stored as version {version} ({} bytes)",
            value.len()
        )
    };
    write_stdout(format!("{out}\n").as_bytes())?;
    Ok(ExitCode::Success)
}

fn get(cli: &Cli, m: &Manifest, stores: &Stores, text: &str, reveal: bool) -> Result<ExitCode> {
    let handle = parse(m, stores, text)?;
    let r = resolve_one(stores, &handle, &ResolveOptions::default());
    let Some(value) = &r.value else {
        let message = match &r.status {
            Status::Missing { message }
            | Status::Forbidden { message }
            | Status::Unreachable { message }
            | Status::Other { message } => message.clone(),
            _ => String::new(),
        };
        if cli.json {
            let doc = serde_json::json!({ "handle": handle.to_string(), "status": &r.status });
            write_stdout(format!("{doc}\n").as_bytes())?;
        } else {
            super::logging::report(
                cli.log_format,
                "ERROR",
                &format!("agentbak: {handle}: {message}\n"),
            );
        }
        return Ok(r.status.exit_code());
    };
    let (version, when, label) = match &r.status {
        Status::Resolved { version, created } => (*version, *created, "created"),
        Status::FromCache {
            version,
            fetched_at,
            ..
        } => (*version, *fetched_at, "fetched (from cache)"),
        _ => unreachable!("a value comes only with a resolved status"),
    };
    if cli.json {
        let mut doc = serde_json::json!({
            "handle": handle.to_string(),
            "status": r.status,
            "bytes": value.len(),
        });
        if reveal {
            doc["value"] = match value.expose_str() {
                Some(s) => serde_json::Value::String(s.to_string()),
                None => serde_json::Value::Null,
            };
        }
        write_stdout(format!("{doc}\n").as_bytes())?;
        return Ok(ExitCode::Success);
    }
    let meta = format!(
        "handle:  {handle}\nversion: {version}\n{label}: {}\n",
        when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    if reveal {
        // stdout carries exactly the value, so `get --reveal` can feed another program.
        if !cli.quiet {
            eprint!("{meta}");
        }
        write_stdout(value.expose())?;
    } else {
        let shown = format!(
            "{meta}value:   hidden, {} bytes (--reveal prints it)\n",
            value.len()
        );
        write_stdout(shown.as_bytes())?;
    }
    Ok(ExitCode::Success)
}

fn ls(cli: &Cli, stores: &Stores, only: Option<&str>) -> Result<ExitCode> {
    let names: Vec<&str> = match only {
        Some(name) if stores.get(name).is_none() => {
            return Err(Error::Usage(format!("no store `{name}` in the manifest")));
        }
        Some(name) => vec![name],
        None => stores
            .names()
            .filter(|n| stores.get(n).map(|s| s.kind()) != Some("env"))
            .collect(),
    };
    let mut rows = Vec::new();
    for name in names {
        let store = stores.get(name).expect("checked above");
        for path in store.list("")? {
            rows.push((name.to_string(), path));
        }
    }
    let out = if cli.json {
        let doc: Vec<_> = rows
            .iter()
            .map(|(s, p)| serde_json::json!({ "store": s, "path": p }))
            .collect();
        format!("{}\n", serde_json::Value::Array(doc))
    } else {
        rows.iter().fold(String::new(), |mut acc, (s, p)| {
            let _ = writeln!(acc, "{s}:{p}");
            acc
        })
    };
    write_stdout(out.as_bytes())?;
    Ok(ExitCode::Success)
}

fn status(cli: &Cli, m: &Manifest, stores: &Stores) -> Result<ExitCode> {
    // `{agent}` filled in, as snapshot and verify show handles.
    let mut handles: Vec<Handle> = m
        .secrets
        .iter()
        .map(|r| r.handle.with_agent(&m.agent))
        .collect();
    handles.sort();
    handles.dedup();
    let report = handle_status(
        stores,
        &handles,
        m.rotation.max_age_days,
        &ResolveOptions::default(),
        Utc::now(),
    );
    let mut code = ExitCode::Success;
    for s in &report {
        code = code.worst(match (&s.status, s.rotation) {
            (st, _) if !st.is_resolved() => st.exit_code(),
            (Status::FromCache { .. }, _) | (_, Rotation::Overdue) => ExitCode::Warnings,
            _ => ExitCode::Success,
        });
    }
    let out = if cli.json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&report).map_err(|e| Error::Usage(e.to_string()))?
        )
    } else {
        status_table(&report)
    };
    write_stdout(out.as_bytes())?;
    Ok(code)
}

fn status_table(report: &[HandleStatus]) -> String {
    let width = report
        .iter()
        .map(|s| s.handle.to_string().len())
        .max()
        .unwrap_or(6)
        .max(6);
    // VERSION is the secret's current version; SINCE and CHANGED say where this field's value
    // was first written, which is what its age counts from.
    let mut out = format!(
        "{:width$}  {:11}  {:>7}  {:>7}  {:20}  {:>7}  ROTATION\n",
        "HANDLE", "STATUS", "VERSION", "SINCE", "CHANGED", "AGE"
    );
    for s in report {
        let version = match &s.status {
            Status::Resolved { version, .. } | Status::FromCache { version, .. } => {
                version.to_string()
            }
            _ => "-".into(),
        };
        let since = s.changed_version.map_or("-".into(), |v| v.to_string());
        let changed = match (&s.status, s.changed_at) {
            (Status::FromCache { .. }, _) => "(cache)".into(),
            (_, Some(t)) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            (_, None) => "-".into(),
        };
        let age = s.age_days.map_or("-".into(), |d| format!("{d:.1}d"));
        let _ = writeln!(
            out,
            "{:width$}  {:11}  {version:>7}  {since:>7}  {changed:20}  {age:>7}  {}",
            s.handle.to_string(),
            s.status.label(),
            s.rotation.label()
        );
    }
    for s in report {
        if let Status::Missing { message }
        | Status::Forbidden { message }
        | Status::Unreachable { message }
        | Status::Other { message } = &s.status
        {
            let _ = writeln!(out, "{}: {message}", s.handle);
        }
    }
    out
}

fn push_cmd(cli: &Cli, m: &Manifest, stores: &Stores) -> Result<ExitCode> {
    let report = push(m, stores, false);
    let out = if cli.json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&report).map_err(|e| Error::Usage(e.to_string()))?
        )
    } else {
        push_lines(&report)
    };
    write_stdout(out.as_bytes())?;
    Ok(crate::ops::secrets::push::exit_code(&report))
}

/// One line per handle: pushed, in store, skipped or failed, with a masked preview.
pub(super) fn push_lines(report: &[PushItem]) -> String {
    report.iter().fold(String::new(), |mut acc, i| {
        let files: Vec<String> = i.files.iter().map(|f| f.display().to_string()).collect();
        let from = if files.is_empty() {
            String::new()
        } else {
            format!(" (from {})", files.join(", "))
        };
        let line = match &i.outcome {
            PushOutcome::Pushed { version, preview } => {
                format!(
                    "pushed   {} as version {version}: {preview}{from}",
                    i.handle
                )
            }
            PushOutcome::InStore { version } => {
                format!("in store {} at version {version}{from}", i.handle)
            }
            PushOutcome::Skipped { reason } => format!("skipped  {}: {reason}", i.handle),
            PushOutcome::Failed { message } => format!("failed   {}: {message}", i.handle),
        };
        let _ = writeln!(acc, "{line}");
        acc
    })
}
