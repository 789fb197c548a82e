//! Fuzzes the yaml redactor through `redact_file`: no input may panic it, and whatever it
//! redacts without a warning must rehydrate to the input byte for byte.
#![no_main]

use agentbak::manifest::Locator;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for pointer in ["/a", "/a/0", "/b"] {
        if let Err(broken) =
            agentbak::redact::round_trip_property("c.yaml", data, Locator::Yaml(pointer.into()))
        {
            panic!("{broken}");
        }
    }
});
