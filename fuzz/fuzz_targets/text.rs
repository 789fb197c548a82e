//! Fuzzes regex rules, the stray search and binary detection: no input may panic them, and
//! whatever they redact without a warning must rehydrate to the input byte for byte.
#![no_main]

use agentbak::manifest::Locator;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let locator = Locator::Regex(r"(?-u)token=([^\s;]+)".into());
    if let Err(broken) = agentbak::redact::round_trip_property("run.log", data, locator) {
        panic!("{broken}");
    }
});
