//! Archive throughput against the stock tools, side by side (issue 6: snapshot ≤ 1.3× of
//! `tar | zstd -3 -T0`; issue 8: deep verify ≥ 80% of the speed of `zstd -d | b3sum`).
//!
//! `cargo bench --bench archive` generates a state tree (default 256 MiB; set
//! `AGENTBAK_BENCH_MIB`), then times, on the same tree and the same machine, in one run:
//! - write: `ArchiveWriter` (tar → zstd -3, all cores → file, blake3 of every file and of the
//!   archive) vs `tar -c | zstd -3 -T0 > file`;
//! - read: `read_archive` (blake3 of the archive, zstd -d, tar, blake3 of every entry, index
//!   check) vs `zstd -d | b3sum`.
//!
//! It prints seconds, MiB/s and the ratio, and the process's peak RSS. No assertion: a noisy
//! machine makes timings advice, not a test.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use agentbak::archive::{
    ArchiveEntry, ArchiveWriter, EntryData, EntryMeta, ReadOptions, SnapshotInfo, WriterOptions,
    read_archive,
};

/// A small xorshift generator: reproducible data without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Logs (compressible text), JSON documents, config files and binary blobs (incompressible),
/// about `mib` MiB in all.
fn generate(root: &Path, mib: u64) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let target = mib << 20;
    let mut written = 0u64;
    let mut n = 0u64;
    while written < target {
        let dir = root.join(format!("d{:03}", n % 64));
        std::fs::create_dir_all(&dir).unwrap();
        let (name, size) = match n % 4 {
            0 => (format!("agent-{n}.log"), 4 << 20),
            1 => (format!("memory-{n}.json"), 256 << 10),
            2 => (format!("blob-{n}.bin"), 2 << 20),
            _ => (format!("config-{n}.toml"), 4 << 10),
        };
        let mut out = BufWriter::new(File::create(dir.join(&name)).unwrap());
        let mut left: u64 = size;
        while left > 0 {
            let chunk = if name.ends_with(".bin") {
                let words: Vec<u8> = (0..1024).flat_map(|_| rng.next().to_le_bytes()).collect();
                words
            } else {
                format!(
                    "2026-11-28T22:55:{:02}Z INFO task={} step={} tokens={} note=\"agent state line\"\n",
                    rng.next() % 60,
                    rng.next() % 1000,
                    rng.next() % 50,
                    rng.next() % 100_000
                )
                .into_bytes()
            };
            let take = chunk.len().min(left as usize);
            out.write_all(&chunk[..take]).unwrap();
            left -= take as u64;
        }
        written += size;
        n += 1;
    }
}

fn write_ours(state: &Path, out: &Path) -> u64 {
    let file = File::create(out).unwrap();
    let options = WriterOptions::default();
    let mut writer = ArchiveWriter::new(BufWriter::new(file), &options, None).unwrap();
    for entry in walkdir::WalkDir::new(state).sort_by_file_name() {
        let entry = entry.unwrap();
        let rel = entry
            .path()
            .strip_prefix(state)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let meta = entry.metadata().unwrap();
        let em = EntryMeta {
            mode: std::os::unix::fs::PermissionsExt::mode(&meta.permissions()),
            mtime: std::os::unix::fs::MetadataExt::mtime(&meta),
        };
        if meta.is_dir() {
            writer.append_dir(&rel, em).unwrap();
        } else {
            let f = File::open(entry.path()).unwrap();
            writer.append_file(&rel, em, meta.len(), f).unwrap();
        }
    }
    let info = SnapshotInfo {
        agent: "bench".into(),
        snapshot_id: "20261128T225501Z-00000000".into(),
        created_at: chrono::Utc::now(),
    };
    let written = writer.finish(info, vec![]).unwrap();
    written.size
}

fn read_ours(archive: &Path) {
    let options = ReadOptions {
        name: "bench".into(),
        ..ReadOptions::default()
    };
    let mut ignore = |_: &ArchiveEntry, _: &mut EntryData<'_>| Ok(());
    let report = read_archive(File::open(archive).unwrap(), &options, &mut ignore).unwrap();
    report.ensure_clean("bench").unwrap();
}

fn sh(script: &str) {
    let status = Command::new("sh").arg("-c").arg(script).status().unwrap();
    assert!(status.success(), "{script}");
}

fn timed(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn row(what: &str, ours: f64, stock: f64, mib: f64, reference: &str) {
    println!(
        "{what:<6} agentbak {ours:>7.2}s ({:>6.0} MiB/s) | {reference:<22} {stock:>7.2}s ({:>6.0} MiB/s) | ratio {:.2}",
        mib / ours,
        mib / stock,
        ours / stock
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; there are no test cases here.
    }
    let mib: u64 = std::env::var("AGENTBAK_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    generate(&state, mib);
    let d = dir.path().display();
    sh(&format!("cat {d}/state/*/* > /dev/null")); // warm the page cache for both sides
    let ours_out = dir.path().join("ours.tar.zst");
    let stock_out = dir.path().join("stock.tar.zst");
    let w_ours = timed(|| {
        write_ours(&state, &ours_out);
    });
    let rss = peak_rss_mib();
    let w_stock = timed(|| {
        sh(&format!(
            "tar -cf - -C {d} state | zstd -q -3 -T0 -o {d}/stock.tar.zst"
        ))
    });
    let r_ours = timed(|| read_ours(&ours_out));
    let r_stock = timed(|| {
        sh(&format!(
            "zstd -q -d -c {d}/ours.tar.zst | b3sum > /dev/null"
        ))
    });
    let size = |p: &Path| std::fs::metadata(p).unwrap().len() as f64 / (1 << 20) as f64;
    println!(
        "state {mib} MiB; archive: agentbak {:.1} MiB, tar|zstd {:.1} MiB",
        size(&ours_out),
        size(&stock_out)
    );
    row("write", w_ours, w_stock, mib as f64, "tar | zstd -3 -T0");
    row("read", r_ours, r_stock, mib as f64, "zstd -d | b3sum");
    println!("peak RSS after write: {rss:.1} MiB");
}
