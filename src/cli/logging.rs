//! Logging to stderr with `tracing`: text or JSON lines, level from `-v`/`-q`/`RUST_LOG`.
//!
//! Log events carry paths, handles and counts, never values: the secret type has no
//! `Display`, and its `Debug` is redacted.

use tracing_subscriber::EnvFilter;

use super::LogFormat;

pub(super) fn init(verbose: u8, quiet: bool, format: LogFormat) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    // RUST_LOG refines the flags (e.g. `RUST_LOG=agentbak::store=debug`); it never silences -q.
    // Other crates (the HTTP client, TLS) stay at `warn` whatever RUST_LOG says: their debug
    // events may carry request bodies, and only agentbak's own events are audited for values.
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() && !quiet => {
            let ours: Vec<String> = spec
                .split(',')
                .map(str::trim)
                .filter_map(|d| match d {
                    "trace" | "debug" | "info" | "warn" | "error" | "off" => {
                        Some(format!("agentbak={d}"))
                    }
                    d if d.starts_with("agentbak") => Some(d.to_string()),
                    _ => None,
                })
                .collect();
            let ours = if ours.is_empty() {
                format!("agentbak={level}")
            } else {
                ours.join(",")
            };
            EnvFilter::new(format!("{ours},warn"))
        }
        _ => EnvFilter::new(format!("agentbak={level},warn")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder
            .without_time()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Writes a command's report lines to stderr: as they are in text mode; with
/// `--log-format json`, each line becomes one JSON object shaped like the log events
/// (`timestamp`, `level`, `fields.message`), so that a log shipper can parse all of stderr.
/// A line's level comes from its prefix (`agentbak: secret:` and `snapshot refused` are
/// errors, `warning:` warnings, `note:` info), else `default` (e.g. `ERROR` for the final error
/// line of a failed command).
pub(super) fn report(format: LogFormat, default: &str, text: &str) {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    if format == LogFormat::Text {
        let _ = err.write_all(text.as_bytes());
        return;
    }
    for line in text.lines().filter(|l| !l.is_empty()) {
        let rest = line.strip_prefix("agentbak: ").unwrap_or(line);
        let (level, message) = [
            ("secret: ", "ERROR"),
            ("warning: ", "WARN"),
            ("note: ", "INFO"),
        ]
        .iter()
        .find_map(|(p, level)| rest.strip_prefix(p).map(|m| (*level, m)))
        .unwrap_or_else(|| {
            let level = if rest.starts_with("snapshot refused") {
                "ERROR"
            } else {
                default
            };
            (level, rest)
        });
        let event = serde_json::json!({
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "level": level,
            "fields": { "message": message },
        });
        let _ = writeln!(err, "{event}");
    }
}
