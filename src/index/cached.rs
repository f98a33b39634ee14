//! Loading the index through this machine's cache file, so that memory stays bounded at
//! any repository size: the entries live sorted in the file (`cache_file.rs`) and are
//! mapped, not loaded.
//!
//! The cache file records which index files it was made from and which packs each names,
//! so a load reads only the index files written since, and decides without reading the
//! others which packs still count (the rules of `load.rs`: live, and stored):
//! - a pack the file included that no longer counts (prune deleted it, or the index files
//!   naming it went) has its entries dropped when the file is written anew;
//! - a pack it left out that counts again (a pack put back) cannot be added from the
//!   file, so every index file is read again and the file made from scratch;
//! - the entries of new index files stay in memory beside the file, up to
//!   [`OVERLAY_FILES`] files and [`OVERLAY_ENTRIES`] entries; beyond, the file is written
//!   anew by merging the two.
//!
//! Made from scratch, entries are sorted in runs of [`RUN_ENTRIES`] spilled beside the
//! cache file, then merged, so building costs the same bounded memory as using. When the
//! cache file cannot be written (no space, no cache folder) the index loads into memory
//! as without a cache.

use super::cache_file::{self, Contents, Run, Source};
use super::load::{for_each_index_file, skipped, Coverage};
use super::{Index, IndexBuilder, IndexLoad, Table};
use crate::error::Result;
use crate::id::{IndexId, PackId};
use crate::repo::{IndexCache, Repository};
use std::collections::HashSet;
use std::path::Path;
use zeroize::Zeroizing;

/// Entries sorted in memory at once while the cache file is made (62 MiB; a few in unit
/// tests, so that they merge runs).
const RUN_ENTRIES: usize = if cfg!(test) { 50 } else { 2 << 20 };
/// New index files whose entries stay in memory beside the cache file.
const OVERLAY_FILES: usize = if cfg!(test) { 2 } else { 64 };
/// New entries that stay in memory beside the cache file (31 MiB).
const OVERLAY_ENTRIES: usize = 1 << 20;

enum Attempt {
    Loaded(Box<(Index, IndexLoad, Coverage)>),
    /// A pack the cache file left out counts again: read every index file.
    FromScratch,
    /// The cache file could not be written or read back: load into memory instead.
    CacheFailed,
}

/// The index through the cache file at `path`, or `None` if the cache cannot be used.
/// `stored` are the packs listed before `names`, the index files. A repository that
/// reads the store only makes the file anew from every index file.
pub(super) fn load(
    repo: &Repository,
    path: &Path,
    stored: &HashSet<PackId>,
    names: &[String],
) -> Result<Option<(Index, IndexLoad, Coverage)>> {
    let key = repo.keys().index_cache_key();
    let repo_id = repo.config().repo_id;
    let mut base = match repo.index_cache() {
        IndexCache::Rebuild => None,
        _ => cache_file::open(path, &key, &repo_id),
    };
    loop {
        let from_cache = base.is_some();
        match attempt(repo, path, &key, stored, names, base.take())? {
            Attempt::Loaded(loaded) => return Ok(Some(*loaded)),
            Attempt::FromScratch if from_cache => {}
            Attempt::FromScratch | Attempt::CacheFailed => return Ok(None),
        }
    }
}

fn attempt(
    repo: &Repository,
    path: &Path,
    key: &Zeroizing<[u8; 32]>,
    stored: &HashSet<PackId>,
    names: &[String],
    mut base: Option<cache_file::Cached>,
) -> Result<Attempt> {
    let repo_id = repo.config().repo_id;
    let listed: HashSet<IndexId> = names.iter().filter_map(|n| IndexId::from_hex(n).ok()).collect();
    let mut coverage = Coverage::default();
    let mut known: HashSet<IndexId> = HashSet::new();
    let mut builder = match &mut base {
        Some(b) => {
            for r in &b.files {
                known.insert(r.id);
                if listed.contains(&r.id) {
                    let packs = r.packs.iter().map(|&i| b.packs[i as usize]);
                    coverage.add(r.id, r.attested.then(|| r.supersedes.clone()), packs);
                }
            }
            // The builder numbers packs as the file does; the index keeps its list.
            IndexBuilder::with_packs(std::mem::take(&mut b.packs))
        }
        None => IndexBuilder::default(),
    };
    let new_names: Vec<String> = names
        .iter()
        .filter(|n| IndexId::from_hex(n).map_or(true, |id| !known.contains(&id)))
        .cloned()
        .collect();

    let (mut runs, mut spill_failed, mut too_many, mut opened) = (Vec::new(), false, None, 0usize);
    let damaged = for_each_index_file(repo, &new_names, |id, file, attested| {
        opened += 1;
        coverage.add_file(id, &file, attested);
        for (pack, list) in &file.packs {
            let added = if stored.contains(pack) {
                builder.add_pack(*pack, list)
            } else {
                builder.add_pack(*pack, &[])
            };
            if let Err(e) = added {
                too_many.get_or_insert(e);
            }
        }
        if builder.entry_count() >= RUN_ENTRIES && !spill_failed {
            match Run::write(path, &builder.take_sorted(|_| true)) {
                Ok(run) => runs.push(run),
                Err(_) => spill_failed = true,
            }
        }
    })?;
    if let Some(e) = too_many {
        return Err(e);
    }
    if spill_failed {
        return Ok(Attempt::CacheFailed);
    }
    let included: Vec<bool> = builder.packs.iter().map(|p| coverage.live(p) && stored.contains(p)).collect();
    let changed = |keep_was: bool| {
        base.as_ref().is_some_and(|b| {
            b.included.iter().zip(&included).any(|(was, now)| *was == keep_was && was != now)
        })
    };
    if changed(false) {
        return Ok(Attempt::FromScratch);
    }
    let load = coverage.report(stored, damaged);
    let rewrite = base.is_none()
        || changed(true)
        || !runs.is_empty()
        || opened > OVERLAY_FILES
        || builder.entry_count() > OVERLAY_ENTRIES;
    let overlay = builder.take_sorted(|p| included[p as usize]);
    let index = |packs: Vec<PackId>, tables: Vec<Table>| Index {
        packs,
        tables,
        files: load.files.clone(),
        skipped_files: skipped(&load),
    };
    if !rewrite {
        let b = base.expect("a cache file when not rewritten");
        let mut tables = vec![b.table];
        if !overlay.is_empty() {
            tables.push(Table::owned(overlay));
        }
        let idx = index(builder.packs, tables);
        return Ok(Attempt::Loaded(Box::new((idx, load, coverage))));
    }

    let records = coverage.records(|p| builder.pack_slots[p]);
    let at_most =
        base.as_ref().map_or(0, |b| b.table.len()) + runs.iter().map(Run::len).sum::<usize>() + overlay.len();
    let mut sources: Vec<Source<'_>> = Vec::new();
    if let Some(b) = &base {
        sources.push(Box::new(b.table.checked_iter()));
    }
    for r in &runs {
        match r.source() {
            Ok(s) => sources.push(s),
            Err(_) => return Ok(Attempt::CacheFailed),
        }
    }
    sources.push(Box::new(overlay.into_iter().map(Ok)));
    let contents = Contents { packs: &builder.packs, included: &included, files: &records };
    let keep = |p: u32| included[p as usize];
    let written = cache_file::write(path, key, &repo_id, contents, sources, &keep, at_most);
    drop(runs);
    drop(base);
    match written {
        Ok(c) => Ok(Attempt::Loaded(Box::new((index(c.packs, vec![c.table]), load, coverage)))),
        Err(_) => Ok(Attempt::CacheFailed),
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::FileType;
    use crate::format::index::IndexFile;
    use crate::id::BlobId;
    use crate::index::{for_each_pack_list, load_pack_lists, Index};
    use crate::pack::BlobWriter;
    use crate::repo::{IndexCache, InitOptions, Repository};

    fn repo(dir: &std::path::Path) -> Repository {
        let loc = dir.join("r");
        Repository::init(loc.to_str().unwrap(), b"pw", &InitOptions::default(), None).unwrap()
    }

    /// Store `n` small blobs in one run (one new index file); their ids.
    fn save(repo: &Repository, n: usize, seed: u8) -> Vec<BlobId> {
        let blobs: Vec<Vec<u8>> =
            (0..n).map(|i| format!("blob {seed} {i} ").repeat(40).into_bytes()).collect();
        let ids: Vec<BlobId> = blobs.iter().map(|b| BlobId::Chunk(repo.keys().chunk_id(b))).collect();
        BlobWriter::run(repo, Index::default(), |w| {
            for (id, b) in ids.iter().zip(&blobs) {
                w.save(*id, b).unwrap();
            }
        })
        .unwrap();
        ids
    }

    fn reopen(repo: &Repository, how: IndexCache) -> Repository {
        Repository::open(repo.backend().location().as_str(), b"pw", &Default::default())
            .unwrap()
            .with_index_cache(how)
    }

    /// The index loaded without the cache, for comparison.
    fn uncached(repo: &Repository) -> Index {
        let plain = reopen(repo, IndexCache::Off);
        assert!(plain.index_cache_path().is_none());
        let idx = Index::load(&plain).unwrap();
        assert!(!idx.is_mapped());
        idx
    }

    fn assert_same(cached: &Index, plain: &Index, ids: &[BlobId]) {
        for id in ids {
            assert_eq!(cached.locations(id), plain.locations(id), "{id}");
            assert!(!cached.locations(id).is_empty(), "{id} is found");
        }
    }

    /// The fuzz target's harness reaches the parser behind the checks: a real cache file,
    /// its MAC dropped and the harness's own made, opens and finds every entry; left as
    /// it is, its MAC (made with this repository's key) does not check.
    #[test]
    fn the_fuzz_harness_opens_a_real_cache_file_it_seals_itself() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo(dir.path());
        save(&repo, 300, 1);
        let idx = Index::load(&repo).unwrap();
        assert!(idx.is_mapped());
        let bytes = std::fs::read(repo.index_cache_path().unwrap()).unwrap();
        let fuzz_dir = tempfile::tempdir().unwrap();
        let unsealed = [&[1u8][..], &bytes[..bytes.len() - 32]].concat();
        assert_eq!(crate::index::open_for_fuzzing(&unsealed, fuzz_dir.path()), 300);
        let as_is = [&[0u8][..], &bytes].concat();
        assert_eq!(crate::index::open_for_fuzzing(&as_is, fuzz_dir.path()), 0);
    }

    #[test]
    fn the_cached_index_answers_as_the_index_files_do() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo(dir.path());
        let path = repo.index_cache_path().expect("a cache folder");
        let mut ids = save(&repo, 120, 1);
        ids.extend(save(&repo, 80, 2));
        // Built from scratch, in runs of 50 entries merged into the file.
        let idx = Index::load(&repo).unwrap();
        assert!(idx.is_mapped() && path.exists());
        assert_eq!(idx.tables.len(), 1);
        assert_eq!(idx.len(), 200);
        assert_same(&idx, &uncached(&repo), &ids);
        assert!(!idx.contains(&BlobId::Chunk(repo.keys().chunk_id(b"never stored"))));
        assert_eq!(idx.files.len(), 2);

        // A new index file: its entries in memory beside the mapped table.
        ids.extend(save(&repo, 30, 3));
        let idx = Index::load(&repo).unwrap();
        assert_eq!(idx.tables.len(), 2, "cached table and the new file's entries");
        assert!(idx.tables[0].is_mapped() && !idx.tables[1].is_mapped());
        assert_same(&idx, &uncached(&repo), &ids);

        // Beyond two new files (in tests), the file is written anew with all of them.
        ids.extend(save(&repo, 10, 4));
        ids.extend(save(&repo, 10, 5));
        let idx = Index::load(&repo).unwrap();
        assert_eq!(idx.tables.len(), 1);
        assert_eq!(idx.len(), 250);
        assert_same(&idx, &uncached(&repo), &ids);
        assert_eq!(idx.files.len(), 5);
    }

    /// A cache folder that cannot be written (here a path under a regular file) makes the
    /// load give up on the cache, both when it spills runs and when it writes the file, so
    /// that the index loads into memory instead; it never fails the command.
    #[test]
    fn a_cache_folder_that_cannot_be_written_falls_back_to_memory() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo(dir.path());
        let blocker = dir.path().join("not-a-folder");
        std::fs::write(&blocker, b"").unwrap();
        let path = blocker.join("index-cache");
        for n in [30, 120] {
            save(&repo, n, n as u8);
            let stored = super::super::load::stored_packs(&repo).unwrap();
            let names = repo.list_named_objects(FileType::Index).unwrap();
            assert!(super::load(&repo, &path, &stored, &names).unwrap().is_none(), "{n} entries");
        }
    }

    #[test]
    fn a_pack_that_goes_leaves_the_cached_index_and_one_put_back_returns() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo(dir.path());
        let first = save(&repo, 30, 1);
        let second = save(&repo, 30, 2);
        Index::load(&repo).unwrap();
        let (packs, _) = load_pack_lists(&repo).unwrap();
        let (gone, _) = packs.iter().find(|(_, e)| e.iter().any(|e| e.id == first[0])).unwrap();
        let name = gone.to_hex();
        let bytes = repo.backend().read(FileType::Pack, &name, u64::MAX).unwrap();
        repo.backend().remove(FileType::Pack, &name).unwrap();

        let idx = Index::load(&repo).unwrap();
        assert!(first.iter().all(|id| !idx.contains(id)), "entries of a pack not stored are dropped");
        assert_same(&idx, &uncached(&repo), &second);

        // Put back: the cache file left its entries out, so it is made again from scratch.
        repo.backend().write(FileType::Pack, &name, &bytes).unwrap();
        let idx = Index::load(&repo).unwrap();
        assert!(idx.is_mapped());
        assert_same(&idx, &uncached(&repo), &[first, second].concat());
    }

    #[test]
    fn a_damaged_or_foreign_cache_file_is_never_believed() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo(dir.path());
        let ids = save(&repo, 300, 1);
        let path = repo.index_cache_path().unwrap();
        Index::load(&repo).unwrap();
        let good = std::fs::read(&path).unwrap();

        // One entry's byte changed: the header and tables still check, the page does not.
        let mut bytes = good.clone();
        bytes[super::cache_file::tests::HEADER + 31 * 140 + 3] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let idx = Index::load(&repo).unwrap();
        assert!(idx.is_mapped(), "opened: the damage is in an entry");
        // The page fails when first read; from then on the file answers nothing.
        let found = ids.iter().filter(|id| idx.contains(id)).count();
        assert!(found < ids.len(), "the damaged page answers nothing: {found} found");
        assert!(!path.exists(), "and the file is removed");
        assert_same(&Index::load(&repo).unwrap(), &uncached(&repo), &ids);

        // The tables after the entries changed, cut short, or another repository's file.
        let mut tail = good.clone();
        let at = tail.len() - 40;
        tail[at] ^= 1;
        let other = tempfile::tempdir().unwrap();
        let other_repo = self::repo(other.path());
        save(&other_repo, 10, 9);
        Index::load(&other_repo).unwrap();
        let foreign = std::fs::read(other_repo.index_cache_path().unwrap()).unwrap();
        for bad in [tail, good[..good.len() - 1].to_vec(), foreign] {
            std::fs::write(&path, &bad).unwrap();
            let idx = Index::load(&repo).unwrap();
            assert_same(&idx, &uncached(&repo), &ids);
            assert_ne!(std::fs::read(&path).unwrap(), bad, "replaced by a new file");
        }
    }

    /// Commands that verify the store (check, repair) make the cache file anew: a file
    /// made before an index file was damaged still holds that file's entries, and must not
    /// hide the damage.
    #[test]
    fn reading_the_store_only_makes_the_cache_file_anew() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo(dir.path());
        let first = save(&repo, 40, 1);
        let second = save(&repo, 40, 2);
        let before = Index::load(&repo).unwrap();
        assert!(before.is_mapped() && first.iter().all(|id| before.contains(id)));
        drop(before);
        let damaged = damage_the_file_holding(&repo, &first[0]);
        let cached = Index::load(&repo).unwrap();
        assert!(
            first.iter().all(|id| cached.contains(id)),
            "the cache file does not read the index files it holds"
        );
        drop(cached);

        let store_only = reopen(&repo, IndexCache::Use).reading_the_store_only();
        assert_eq!(store_only.index_cache(), IndexCache::Rebuild);
        let (idx, load) = Index::load_reporting(&store_only).unwrap();
        assert!(idx.is_mapped(), "made anew, and mapped: memory stays bounded");
        assert_eq!(load.damaged.len(), 1);
        assert_eq!(load.damaged[0].0, damaged);
        assert!(first.iter().all(|id| !idx.contains(id)), "the damaged file's entries are gone");
        assert_same(&idx, &uncached(&repo), &second);
        drop(idx);
        // And the next command uses the file the verifying one made.
        let idx = Index::load(&repo).unwrap();
        assert!(first.iter().all(|id| !idx.contains(id)));
    }

    /// Flip a byte of the index file that holds `id`; its name.
    fn damage_the_file_holding(repo: &Repository, id: &BlobId) -> String {
        for name in repo.list_named_objects(FileType::Index).unwrap() {
            let file =
                crate::index::load_index_file(repo, &crate::id::IndexId::from_hex(&name).unwrap()).unwrap();
            if file.packs.iter().any(|(_, list)| list.iter().any(|e| e.id == *id)) {
                let mut bytes = repo.backend().read(FileType::Index, &name, u64::MAX).unwrap();
                let at = bytes.len() / 2;
                bytes[at] ^= 1;
                repo.backend().remove(FileType::Index, &name).unwrap();
                repo.backend().write(FileType::Index, &name, &bytes).unwrap();
                return name;
            }
        }
        panic!("no index file holds {id}")
    }

    /// Read again a file at a time, every pack's list is the one `load_pack_lists` makes,
    /// a pack named by two files included (its lists merged once both are read).
    #[test]
    fn pack_lists_read_a_file_at_a_time_are_whole() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo(dir.path());
        save(&repo, 70, 1);
        save(&repo, 30, 2);
        let (whole, _) = load_pack_lists(&repo).unwrap();
        // A second file naming the first pack again, with part of its entries.
        let (pack, list) = whole.iter().max_by_key(|(_, l)| l.len()).unwrap();
        let again = IndexFile { supersedes: Vec::new(), packs: vec![(*pack, list[..10].to_vec())] };
        repo.save_index(&again).unwrap();
        save(&repo, 20, 3);

        let (_, load, coverage) = Index::load_with_coverage(&repo).unwrap();
        assert_eq!(coverage.times_named(pack), 2);
        let mut seen = std::collections::HashMap::new();
        let damaged = for_each_pack_list(&repo, &load.files, &coverage, |p, l| {
            assert!(seen.insert(p, l).is_none(), "each pack once");
        })
        .unwrap();
        assert!(damaged.is_empty());
        let (expected, _) = load_pack_lists(&repo).unwrap();
        assert_eq!(seen, expected);
        assert_eq!(seen[pack].len(), list.len(), "the repeated entries counted once");
    }
}
