//! A repository the size of a large one, for the index benchmark: `many_blobs REPO N`
//! (password in CAIRN_PASSWORD) adds index files naming N made-up chunks, 256 to a pack,
//! 100,000 to an index file, as a repository of N chunks has, and puts a sparse file as
//! long as its entries need under each pack's name so the packs count as stored (REPO is
//! a local folder; the files are made directly, without the store's syncs, as hundreds of
//! thousands of them would take long). No chunk's data is stored: the repository's own
//! snapshots stay restorable, commands that only look blobs up (a backup deciding what is
//! new, a restore finding its chunks) see an index of N more entries, and `check` without
//! `--read-data` finds every pack whole (reading one finds zeros, as it should report).

use cairn::format::index::IndexFile;
use cairn::format::pack::Entry;
use cairn::id::{BlobId, ChunkId, PackId};
use cairn::repo::KeySource;
use cairn::Repository;

const PER_PACK: u64 = 256;
const PER_FILE: u64 = 100_000 / PER_PACK * PER_PACK;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(location), Some(count)) = (args.first(), args.get(1).and_then(|n| n.parse::<u64>().ok()))
    else {
        eprintln!("usage: many_blobs REPO N (password in CAIRN_PASSWORD)");
        std::process::exit(2);
    };
    let password = std::env::var("CAIRN_PASSWORD").unwrap_or_default();
    let repo = Repository::open(location, password.as_bytes(), &KeySource::Stored).unwrap_or_else(|e| {
        eprintln!("many_blobs: {e}");
        std::process::exit(1);
    });
    use rayon::prelude::*;
    let files = count.div_ceil(PER_FILE);
    (0..files).into_par_iter().for_each(|f| {
        let first = f * PER_FILE;
        let last = (first + PER_FILE).min(count);
        let mut packs = Vec::new();
        for p in (first..last).step_by(PER_PACK as usize) {
            let pack = PackId(*blake3::hash(format!("many_blobs pack {p}").as_bytes()).as_bytes());
            let entries: Vec<Entry> = (p..(p + PER_PACK).min(last))
                .enumerate()
                .map(|(i, n)| Entry {
                    id: BlobId::Chunk(ChunkId(*blake3::hash(&n.to_le_bytes()).as_bytes())),
                    offset: 40 + i as u32 * 20_000,
                    length: 20_000,
                    raw_length: 30_000,
                    start: 0,
                })
                .collect();
            let name = pack.to_hex();
            let dir = std::path::Path::new(location).join("data").join(&name[..2]);
            std::fs::create_dir_all(&dir).expect("make a pack folder");
            let end = entries.iter().map(|e: &Entry| e.offset as u64 + e.length as u64).max().unwrap_or(0);
            std::fs::File::create(dir.join(&name)).and_then(|f| f.set_len(end)).expect("make a pack file");
            packs.push((pack, entries));
        }
        repo.save_index(&IndexFile { supersedes: Vec::new(), packs }).expect("store an index file");
    });
    println!("{count} blobs in {files} index files added");
}
