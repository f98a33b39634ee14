//! The S3 store's answer parsers (object listings, version listings, error documents,
//! lock dates) on arbitrary text: a hostile or broken store must never make them panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    let found = cairn::backend::s3::parse_answers_for_fuzzing(&body);
    assert!(found <= data.len() + 2, "more found than the body could hold");
});
