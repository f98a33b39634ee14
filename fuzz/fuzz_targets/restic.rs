//! The restic reader's parsers (pack header, index, tree, snapshot, key file, config, the
//! version 2 file encoding, Go-quoted names) and its MAC check on arbitrary bytes: none
//! panics or allocates past its bounds, whatever a hostile restic repository holds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cairn::restic::format::parse_all_for_fuzzing(data);
    let _ = cairn::restic::open_for_fuzzing(data);
});
