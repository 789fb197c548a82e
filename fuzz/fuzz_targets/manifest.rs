//! Fuzzes manifest loading: no input may panic the parser or the validator, and an error
//! always names a position inside the input.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = agentbak::manifest::Manifest::parse(Path::new("fuzz.json"), data) {
        let lines = data.iter().filter(|b| **b == b'\n').count() + 1;
        for p in &e.problems {
            assert!(p.line <= lines, "line {} past the end ({lines} lines)", p.line);
        }
    }
});
