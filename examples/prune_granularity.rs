//! How much of a repository's unused data a prune could reclaim at three granularities:
//! `prune_granularity REPO` (password in CAIRN_PASSWORD) plans a prune that leaves no
//! unused byte (`--max-unused 0`), changes nothing, and prints its figures as
//! `name bytes` lines:
//!
//! - `unused`: what that prune drops, blob by blob (packs deleted, plus the unused share
//!   of the packs it repacks);
//! - `whole_packs`: the packs no kept snapshot uses at all, which a prune that can only
//!   delete packs reclaims;
//! - `whole_frames`: that, plus the frames of partly used packs of which no blob is used,
//!   which a prune that can move sealed frames but not open them reclaims (the
//!   maintenance key's prune, format-spec/maintenance-key.md).
//!
//! Used by benches/prune.sh after its forget.

use cairn::ops::prune::{plan, PruneOptions};
use cairn::repo::KeySource;
use cairn::Repository;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

fn main() {
    let Some(location) = std::env::args().nth(1) else {
        eprintln!("usage: prune_granularity REPO (password in CAIRN_PASSWORD)");
        std::process::exit(2);
    };
    let password = std::env::var("CAIRN_PASSWORD").unwrap_or_default();
    let repo = Repository::open(&location, password.as_bytes(), &KeySource::Stored).unwrap_or_else(|e| {
        eprintln!("prune_granularity: {e}");
        std::process::exit(1);
    });
    let opts = PruneOptions { max_unused: 0.0, ..Default::default() };
    let p = plan(&repo, &opts, &AtomicBool::new(false)).unwrap_or_else(|e| {
        eprintln!("prune_granularity: {e}");
        std::process::exit(1);
    });
    let s = &p.packs;
    // The frames of repacked packs that hold a used blob, each with its sealed length.
    let used_frames: HashMap<_, u64> =
        s.moves.iter().map(|l| ((l.pack, l.entry.offset), u64::from(l.entry.length))).collect();
    let repacked = s.bytes_repack_used + s.bytes_repack_unused;
    let in_used_frames: u64 = used_frames.values().sum();
    println!("stored {}", s.bytes_delete + repacked + s.bytes_keep);
    println!("unused {}", s.bytes_delete + s.bytes_repack_unused);
    println!("whole_packs {}", s.bytes_delete);
    println!("whole_frames {}", s.bytes_delete + repacked - in_used_frames);
}
