//! LogEntry::decode and log entry names on arbitrary bytes: never panic; what decodes
//! survives encode -> decode unchanged.
#![no_main]

use cairn::format::log::{self, LogEntry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok((seq, hash)) = log::parse_name(text) {
            assert_eq!(log::parse_name(&log::name(seq, &hash)).unwrap(), (seq, hash));
        }
    }
    let Ok(e) = LogEntry::decode(data) else {
        return;
    };
    let enc = e.encode();
    let back = LogEntry::decode(&enc).expect("re-encoded log entry decodes");
    assert_eq!(back, e);
    assert_eq!(back.encode(), enc, "encoding is stable");
});
