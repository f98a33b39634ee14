//! SnapshotFile::split (a stored snapshot file: bare envelope, or envelope and summary)
//! and MaintenanceSummary::decode on arbitrary bytes: never panics; a split file's parts
//! lie inside it and join back to the same bytes; an accepted summary survives
//! encode -> decode unchanged (as a value: postcard also takes some varints written
//! longer than needed, which readers compare by value only).
#![no_main]

use cairn::format::snapshot_file::{MaintenanceSummary, SnapshotFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parts) = SnapshotFile::split(data) {
        match parts.summary {
            Some(summary) => assert_eq!(SnapshotFile::join(parts.envelope, summary), data),
            None => assert_eq!(parts.envelope, data),
        }
    }
    if let Ok(s) = MaintenanceSummary::decode(data) {
        let enc = s.encode();
        let back = MaintenanceSummary::decode(&enc).expect("a re-encoded summary decodes");
        assert_eq!(back, s);
        assert_eq!(back.encode(), enc, "encoding is stable");
        assert!(s.paths.windows(2).all(|w| w[0] < w[1]));
    }
});
