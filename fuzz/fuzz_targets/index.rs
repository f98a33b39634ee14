//! IndexFile::decode on arbitrary bytes: never panics; what it accepts survives
//! encode -> decode unchanged. The encoding is fixed width, so it is canonical: encoding
//! a decoded version 2 or 3 file gives back exactly the input bytes (a version 1 file
//! comes back as version 2, with every start 0).
#![no_main]

use cairn::format::index::IndexFile;
use cairn::format::pack::VERSION_1;
use cairn::format::pack::{HEADER_LEN, MAX_BLOB};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(f) = IndexFile::decode(data) else {
        return;
    };
    for (_, entries) in &f.packs {
        for e in entries {
            assert!(e.offset as usize >= HEADER_LEN);
            assert!(e.end() <= MAX_BLOB as usize);
            assert!(data[0] != VERSION_1 || e.start == 0);
        }
    }
    let enc = f.encode();
    if data[0] != VERSION_1 {
        assert_eq!(enc, data, "fixed-width encoding is canonical");
    }
    let back = IndexFile::decode(&enc).expect("re-encoded index decodes");
    assert_eq!(back, f);
});
