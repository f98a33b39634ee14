//! A long history for benchmarks: `history REPO N` stores N snapshots in REPO (password in
//! CAIRN_PASSWORD), each a copy of the newest one with its time one hour earlier than the
//! one before, as hourly backups of an unchanged tree over N hours would leave. Only
//! snapshot objects are written: the tree and data they name are the newest snapshot's.

use cairn::repo::KeySource;
use cairn::Repository;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(location), Some(count)) = (args.first(), args.get(1).and_then(|n| n.parse::<i64>().ok()))
    else {
        eprintln!("usage: history REPO N (password in CAIRN_PASSWORD)");
        std::process::exit(2);
    };
    let password = std::env::var("CAIRN_PASSWORD").unwrap_or_default();
    let repo = Repository::open(location, password.as_bytes(), &KeySource::Stored).unwrap_or_else(|e| {
        eprintln!("history: {e}");
        std::process::exit(1);
    });
    let snaps = repo.snapshots().expect("read the snapshots");
    let Some((_, newest)) = snaps.last() else {
        eprintln!("history: {location} has no snapshot to copy");
        std::process::exit(1);
    };
    let start = newest.time.secs;
    use rayon::prelude::*;
    (1..=count).into_par_iter().for_each(|i| {
        let mut s = newest.clone();
        s.time.secs = start - i * 3600;
        repo.save_snapshot(&s).expect("store a snapshot");
    });
    println!("{count} snapshots stored");
}
