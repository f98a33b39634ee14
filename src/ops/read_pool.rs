//! Threads for work that waits on the store: pack reads from a remote store (check
//! --read-data, restore), and removing many objects (forget).
//!
//! Rayon's pool has one thread per core, which keeps a local disk busy. A remote store
//! answers each read after a round trip, so with one fetch per core in flight the cores
//! mostly wait: such work runs in a pool as wide as the store's `read_parallelism`.
//! Measured with check --read-data of 293 MB from s3s-fs on loopback (2 cores):
//! 2 threads 3.40 s, 4 threads 2.48 s, 8 threads 2.01 s.
//!
//! Restore reads blob by blob, and 8 threads working on 8 parts of the file list in tree
//! order evicted each other's packs from the remote pack cache (3.2 s with 2 threads, 4.0 s
//! with 8, same corpus). So a remote restore first orders its files by the pack their data
//! starts in (then 8 threads restored it in 2.8 s), and its threads now take the files in
//! that order while the packs are fetched ahead of them (`pack::prefetch`).

use crate::error::{Error, ErrorKind, Result};
use crate::repo::Repository;

/// Run `work` (which uses rayon's parallel iterators) with enough threads for the
/// repository's store.
pub fn install<T: Send>(repo: &Repository, work: impl FnOnce() -> T + Send) -> Result<T> {
    install_at_least(repo.backend().read_parallelism(), work)
}

/// Threads for removing many objects: a removal waits on a round trip or, in a local
/// folder, on syncing the folder, and overlapping syncs of one folder share the journal's
/// commits. Removing 9,909 snapshots from a local folder (benches/history.sh): 2.20 s one
/// at a time, 0.93-1.03 s with 8 threads, no better with 16.
const REMOVAL_THREADS: usize = 8;

/// Run `work` (rayon's parallel iterators over removals) with enough threads to keep the
/// store busy.
pub fn install_for_removals<T: Send>(repo: &Repository, work: impl FnOnce() -> T + Send) -> Result<T> {
    install_at_least(repo.backend().write_parallelism().max(REMOVAL_THREADS), work)
}

/// Run `work` with at least `threads` threads (and never fewer than rayon's pool has).
fn install_at_least<T: Send>(threads: usize, work: impl FnOnce() -> T + Send) -> Result<T> {
    if threads <= rayon::current_num_threads() {
        return Ok(work());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot start reading threads: {e}")))?;
    Ok(pool.install(work))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;

    #[test]
    fn a_store_that_wants_more_reads_gets_more_threads() {
        let cores = rayon::current_num_threads();
        assert_eq!(install_at_least(1, rayon::current_num_threads).unwrap(), cores);
        assert_eq!(install_at_least(cores + 6, rayon::current_num_threads).unwrap(), cores + 6);
        assert_eq!(crate::backend::local::LocalBackend::new("/nowhere").read_parallelism(), 1);
    }
}
