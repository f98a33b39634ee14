//! Config::decode on arbitrary bytes: never panics; what it accepts validates and
//! survives encode -> decode unchanged.
#![no_main]

use cairn::format::config::{Config, REPO_FORMAT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(c) = Config::decode(data) else {
        return;
    };
    assert_eq!(c.format, REPO_FORMAT);
    c.validate().expect("a decoded config validates");
    let enc = c.encode();
    let back = Config::decode(&enc).expect("re-encoded config decodes");
    assert_eq!(back, c);
    assert_eq!(back.encode(), enc, "encoding is stable");
});
