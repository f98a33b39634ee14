//! Lock::decode on arbitrary bytes: never panics; what it accepts survives
//! encode -> decode unchanged.
#![no_main]

use cairn::format::lock::Lock;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(l) = Lock::decode(data) else {
        return;
    };
    let enc = l.encode();
    let back = Lock::decode(&enc).expect("re-encoded lock decodes");
    assert_eq!(back, l);
    assert_eq!(back.encode(), enc, "encoding is stable");
});
