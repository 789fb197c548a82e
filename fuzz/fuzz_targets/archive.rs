//! Fuzzes the archive reader on arbitrary bytes: no input may panic it, and an entry it hands
//! to the visitor always has a clean path under `state/` (no `..`, not absolute).
#![no_main]

use agentbak::archive::{ArchiveEntry, ReadOptions, read_archive};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = ReadOptions {
        name: "fuzz".into(),
        max_bytes: Some(1 << 20),
        ..ReadOptions::default()
    };
    let mut visit = |entry: &ArchiveEntry, body: &mut dyn std::io::Read| {
        assert!(entry.path == "state" || entry.path.starts_with("state/"), "{}", entry.path);
        assert!(!entry.path.split('/').any(|c| c == ".." || c.is_empty()), "{}", entry.path);
        std::io::copy(body, &mut std::io::sink()).map(|_| ()).map_err(|e| {
            agentbak::error::Error::io("fuzz", e)
        })
    };
    let _ = read_archive(data, &options, &mut visit);
});
