//! Deep `verify` against the stock tools (issue 8: ≥ 80 % of the speed of `zstd -d | b3sum`).
//!
//! `cargo bench --bench verify` (or `scripts/bench-verify.sh`) writes a snapshot of about
//! 500 MiB of generated agent state (set `AGENTBAK_BENCH_MIB`) into a real repository, then
//! times, alternating, best of two (set `AGENTBAK_BENCH_ROUNDS` for more):
//! - `ops::verify` of it: blake3 of the archive, zstd -d, tar, blake3 of every entry against
//!   the index, index schema, and the leak scan of every byte with the builtin rules;
//! - `zstd -d -c ARCHIVE | b3sum`: decompression and one hash, the floor.
//!
//! It prints seconds, MiB/s of state, the speed ratio and the load average: on a busy machine
//! the numbers are advice, not a verdict. No assertion.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use agentbak::archive::{
    ArchiveEntry, ArchiveWriter, EntryData, EntryMeta, ReadOptions, SIDECAR_FORMAT, Sidecar,
    SnapshotInfo, WriterOptions, read_archive,
};
use agentbak::error::ExitCode;
use agentbak::manifest::Manifest;
use agentbak::ops::verify::{Selection, VerifyOptions, verify};
use agentbak::repo::{Repository, SnapshotId, host_name};
use agentbak::store::Stores;

/// Reproducible data without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One generated file: logs and JSON (compressible text) and binary blobs (incompressible).
fn file(rng: &mut Rng, n: u64) -> (String, Vec<u8>) {
    let (name, size) = match n % 4 {
        0 => (format!("logs/agent-{n}.log"), 4 << 20),
        1 => (format!("memory/memory-{n}.json"), 256 << 10),
        2 => (format!("blobs/blob-{n}.bin"), 2 << 20),
        _ => (format!("config/config-{n}.toml"), 4 << 10),
    };
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        if name.ends_with(".bin") {
            data.extend_from_slice(&rng.next().to_le_bytes());
        } else {
            let line = format!(
                "2026-11-28T22:55:{:02}Z INFO task={} step={} tokens={} note=\"agent state line\"\n",
                rng.next() % 60,
                rng.next() % 1000,
                rng.next() % 50,
                rng.next() % 100_000
            );
            data.extend_from_slice(line.as_bytes());
        }
    }
    data.truncate(size);
    (name, data)
}

fn snapshot(repo: &Repository, mib: u64) -> Sidecar {
    let created_at = chrono::Utc::now();
    let id = SnapshotId::new(created_at);
    let lock = repo.lock(None, "bench").unwrap();
    let mut pending = repo.begin(&lock, &id, false).unwrap();
    let archive = pending.archive_name().to_string();
    let mut writer = ArchiveWriter::new(pending.file(), &WriterOptions::default(), None).unwrap();
    let meta = EntryMeta {
        mode: 0o600,
        mtime: created_at.timestamp(),
    };
    let dir = EntryMeta {
        mode: 0o700,
        mtime: created_at.timestamp(),
    };
    writer.append_dir("", dir).unwrap();
    for d in ["logs", "memory", "blobs", "config"] {
        writer.append_dir(d, dir).unwrap();
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut written, mut n) = (0u64, 0u64);
    while written < mib << 20 {
        let (name, data) = file(&mut rng, n);
        writer
            .append_file(&name, meta, data.len() as u64, data.as_slice())
            .unwrap();
        written += data.len() as u64;
        n += 1;
    }
    let info = SnapshotInfo {
        agent: "bench".into(),
        snapshot_id: id.to_string(),
        created_at,
    };
    let w = writer.finish(info, vec![]).unwrap();
    let sidecar = Sidecar {
        format: SIDECAR_FORMAT,
        id: id.to_string(),
        agent: "bench".into(),
        host: host_name(),
        created_at,
        tags: vec![],
        tool_version: env!("CARGO_PKG_VERSION").into(),
        archive,
        size: w.size,
        blake3: w.blake3,
        counts: w.counts,
        encrypted: false,
        degraded: vec![],
        tree: None,
        stored: None,
        chunk_key: None,
        signature: None,
    };
    pending.commit(&sidecar).unwrap();
    sidecar
}

fn timed(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; there are no test cases here.
    }
    let mib: u64 = std::env::var("AGENTBAK_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentbak.json");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(
            br#"{ "version": 1, "agent": "bench", "state": "./state", "repository": "./backups" }"#,
        )
        .unwrap();
    let manifest = Manifest::load(&path).unwrap();
    let repo = Repository::open_or_create(&manifest.repository).unwrap();
    let sidecar = snapshot(&repo, mib);
    let archive = repo.archive_path(&sidecar);
    let stores = Stores::from_manifest(&manifest).unwrap();
    let ours = || {
        let options = VerifyOptions {
            selection: Selection::Latest,
            ..VerifyOptions::default()
        };
        let report = verify(&manifest, &stores, &options).unwrap();
        assert_eq!(report.exit_code, ExitCode::Success, "{report:#?}");
        assert!(report.snapshots[0].deep);
    };
    let stock = || {
        let script = format!("zstd -q -d -c '{}' | b3sum > /dev/null", archive.display());
        assert!(
            Command::new("sh")
                .arg("-c")
                .arg(&script)
                .status()
                .unwrap()
                .success()
        );
    };
    // Attribution: the same read with no scan (what the archive layer costs on its own).
    let read_only = || {
        let options = ReadOptions {
            name: "bench".into(),
            expected: Some(sidecar.digest()),
            ..ReadOptions::default()
        };
        let mut ignore = |_: &ArchiveEntry, _: &mut EntryData<'_>| Ok(());
        let file = std::fs::File::open(&archive).unwrap();
        read_archive(file, &options, &mut ignore).unwrap();
    };
    stock(); // warm the page cache
    let rounds: usize = std::env::var("AGENTBAK_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let (mut best_ours, mut best_stock, mut best_read) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..rounds.max(1) {
        best_ours = best_ours.min(timed(ours));
        best_stock = best_stock.min(timed(stock));
        best_read = best_read.min(timed(read_only));
    }
    let size = std::fs::metadata(Path::new(&archive)).unwrap().len() as f64 / (1 << 20) as f64;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "state {mib} MiB, archive {size:.1} MiB; {cores} cores, load average {}",
        load.trim()
    );
    println!(
        "agentbak verify (deep, leak scan)  {best_ours:>6.2}s  {:>6.0} MiB/s",
        mib as f64 / best_ours
    );
    println!(
        "  read_archive alone, no scan      {best_read:>6.2}s  {:>6.0} MiB/s",
        mib as f64 / best_read
    );
    println!(
        "zstd -d | b3sum                    {best_stock:>6.2}s  {:>6.0} MiB/s",
        mib as f64 / best_stock
    );
    println!(
        "speed of verify vs the reference: {:.0} % (goal: >= 80 %)",
        100.0 * best_stock / best_ours
    );
}
