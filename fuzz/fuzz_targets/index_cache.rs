//! The index cache file (index::cache_file) on arbitrary bytes, sealed with a fixed key
//! or left as a planted file is: opening never panics and never reads past its bounds;
//! what opens holds the entries its header counts, its index files name packs it lists,
//! and every lookup stays inside the table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn dir() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("cairn-fuzz-index-cache-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("a folder for the cache file");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    cairn::index::open_for_fuzzing(data, dir());
});
