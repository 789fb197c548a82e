//! Fuzzes handle parsing: no input may panic it, a parsed handle prints back to text that
//! parses to the same handle, and its placeholder parses back to it too.
#![no_main]

use agentbak::handle::Handle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(h) = Handle::parse(text) {
        let again = Handle::parse(&h.to_string()).expect("a printed handle parses");
        assert_eq!(again, h);
        let back = Handle::from_placeholder(&h.placeholder()).expect("a placeholder parses");
        assert_eq!(back, h);
    }
    let _ = agentbak::handle::find_placeholders(data);
});
