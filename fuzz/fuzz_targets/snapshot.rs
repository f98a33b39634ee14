//! Snapshot::decode on arbitrary bytes: never panics; what it accepts survives
//! encode -> decode unchanged.
#![no_main]

use cairn::format::snapshot::Snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = Snapshot::decode(data) else {
        return;
    };
    let _ = s.is_partial();
    let enc = s.encode();
    let back = Snapshot::decode(&enc).expect("re-encoded snapshot decodes");
    assert_eq!(back, s);
    assert_eq!(back.encode(), enc, "encoding is stable");
});
